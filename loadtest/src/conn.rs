//! A blocking keep-alive HTTP/1.1 connection for set-up and probe requests (minting, revoking,
//! promoting, readiness): never on the measured path, which is `engine`.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// One keep-alive HTTP/1.1 connection with a blocking request/response exchange.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    pub fn post(&mut self, path: &str, bearer: &str, body: &str) -> io::Result<(u16, Value)> {
        self.exchange("POST", path, bearer, body)
    }

    pub fn get(&mut self, path: &str, bearer: &str) -> io::Result<(u16, Value)> {
        self.exchange("GET", path, bearer, "")
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        bearer: &str,
        body: &str,
    ) -> io::Result<(u16, Value)> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: loadtest\r\nAuthorization: Bearer {bearer}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let (status, body) = self.raw(req.as_bytes())?;
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    /// Writes `request` as it is and returns the answer's status and body.
    pub fn raw(&mut self, request: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request)?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        loop {
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
            }
            self.buf.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = resp.parse(&self.buf) else {
                continue;
            };
            let len = crate::framing::content_length(resp.headers);
            if self.buf.len() < head + len {
                continue;
            }
            return Ok((resp.code.unwrap_or(0), self.buf[head..head + len].to_vec()));
        }
    }
}
