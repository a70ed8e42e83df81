//! The hello-world baseline: the least work an HTTP/1.1 server on monoio can do per request.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{ListenerOpts, TcpListener, TcpStream};

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}";

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    addr: SocketAddr,
    threads: usize,
    duration: Duration,
}

impl Options {
    /// Parses `--addr`, `--threads`, `--duration-s` (the server stops by itself).
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut o = Self {
            addr: ([127, 0, 0, 1], 9999).into(),
            threads: 1,
            duration: Duration::from_secs(600),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--addr" => {
                    o.addr = value
                        .parse()
                        .map_err(|_| format!("--addr: not an address: {value}"))?
                }
                "--threads" => {
                    o.threads = value
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or("--threads: a positive integer")?
                }
                "--duration-s" => {
                    o.duration = Duration::from_secs(
                        value.parse().map_err(|_| "--duration-s: whole seconds")?,
                    );
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        if !o.addr.ip().is_loopback() {
            return Err("--addr must be a loopback address".into());
        }
        Ok(o)
    }
}

/// Serves until the duration ends.
pub fn run(opts: &Options) -> io::Result<()> {
    let deadline = Instant::now() + opts.duration;
    let threads: Vec<_> = (0..opts.threads)
        .map(|i| {
            let addr = opts.addr;
            std::thread::spawn(move || -> io::Result<()> {
                let _ = monoio::utils::bind_to_cpu_set([i]);
                let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()?;
                rt.block_on(async move {
                    let opts = ListenerOpts::new()
                        .reuse_port(true)
                        .reuse_addr(true)
                        .backlog(4096);
                    let listener = TcpListener::bind_with_config(addr, &opts)?;
                    loop {
                        let left = deadline.saturating_duration_since(Instant::now());
                        match monoio::time::timeout(left, listener.accept()).await {
                            Ok(Ok((stream, _))) => {
                                let _ = stream.set_nodelay(true);
                                monoio::spawn(serve(stream));
                            }
                            Ok(Err(_)) => monoio::time::sleep(Duration::from_millis(20)).await,
                            Err(_) => return Ok(()),
                        }
                    }
                })
            })
        })
        .collect();
    eprintln!(
        "hello baseline on {} ({} thread(s))",
        opts.addr, opts.threads
    );
    for t in threads {
        t.join()
            .map_err(|_| io::Error::other("server thread panicked"))??;
    }
    Ok(())
}

async fn serve(mut stream: TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut out: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Answer every complete request buffered (pipelining), then write once.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let Ok(httparse::Status::Complete(head)) = req.parse(&buf) else {
                break;
            };
            let body = crate::framing::content_length(req.headers);
            if buf.len() < head + body {
                break;
            }
            buf.drain(..head + body);
            out.extend_from_slice(RESPONSE);
        }
        if !out.is_empty() {
            let (res, back) = stream.write_all(std::mem::take(&mut out)).await;
            out = back;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        let len = buf.len();
        let (res, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if !matches!(res, Ok(n) if n > 0) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn options_parse_and_refuse_non_loopback() {
        let o = Options::parse(&args(&["--addr", "127.0.0.1:1234", "--threads", "2"])).unwrap();
        assert_eq!((o.addr.port(), o.threads), (1234, 2));
        assert!(
            Options::parse(&args(&["--addr", "10.0.0.1:80"]))
                .unwrap_err()
                .contains("loopback")
        );
        assert!(Options::parse(&args(&["--threads", "0"])).is_err());
        assert!(
            Options::parse(&args(&["--bogus", "1"]))
                .unwrap_err()
                .contains("unknown option")
        );
    }
}
