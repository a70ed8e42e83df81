//! Phase 1, the connection: accept (with the per-core connection limit and the shutdown
//! tick), read and frame requests (head and body limits, `Expect: 100-continue`, head and
//! idle timeouts), serve every pipelined request already buffered, then write their answers
//! at once (after their audit records commit, in sync durability). Each framed request goes
//! to [`crate::routing`]; an event stream a handler hands back is relayed here, because the
//! connection owns the socket.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt, Canceller};
use monoio::net::{TcpListener, TcpStream};

use crate::http::{self, BodyFraming, Head, HttpError, Method};
use crate::relay::events::Relay;
use crate::routing::Refusal;
use crate::worker::Worker;

/// Longest wait for an audit commit in sync mode; past it the connection is closed without
/// an answer (a decision must not be returned unrecorded).
const SYNC_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle waits wake this often to notice shutdown.
const IDLE_TICK: Duration = Duration::from_millis(250);

/// One connection's buffers and framing state.
struct Conn {
    stream: TcpStream,
    /// Bytes read and not yet consumed by a served request.
    buf: Vec<u8>,
    /// Answers waiting to be written.
    out: Vec<u8>,
    chunked: http::Chunked,
    remote: String,
    /// When the first byte of the request being received arrived.
    started: Option<Instant>,
    continue_sent: bool,
}

/// What serving the buffered requests decided.
enum Served {
    /// Keep reading.
    More,
    /// Write what is queued, then close.
    Close,
    /// The client is gone or a write failed: drop the connection now.
    Gone,
}

impl Worker {
    /// Accepts connections until the data plane stops, then lets open ones finish within
    /// the drain bound.
    pub(crate) async fn serve(self: Rc<Self>, listener: TcpListener) {
        'accept: loop {
            // A cancelable accept survives the shutdown tick: under io_uring, dropping an
            // in-flight accept could lose a connection the kernel already accepted.
            let canceller = Canceller::new();
            let mut accept = std::pin::pin!(listener.cancelable_accept(canceller.handle()));
            let accepted = loop {
                monoio::select! {
                    r = &mut accept => break r,
                    _ = monoio::time::sleep(Duration::from_millis(100)) => {
                        if self.shared.stopping.load(Ordering::Acquire) {
                            let _ = canceller.cancel();
                            // A connection accepted during the race is closed: we are stopping.
                            let _ = accept.await;
                            break 'accept;
                        }
                    }
                }
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(_) => {
                    // EMFILE and friends fail at once: back off instead of spinning the core.
                    monoio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            self.admit(stream, peer);
            // Under steady load an accept completes before every shutdown tick, so the
            // tick alone would never see the flag. The connection just accepted is still
            // served (its answer closes it).
            if self.shared.stopping.load(Ordering::Acquire) {
                break 'accept;
            }
        }
        // Stop queueing new connections in the kernel, then let open ones finish their
        // current request, within the drain bound.
        drop(listener);
        let deadline = Instant::now() + self.config.drain_timeout;
        while self.open.get() > 0 && Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Serves an accepted connection on its own task, or refuses it past the per-core limit.
    fn admit(self: &Rc<Self>, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        if self.open.get() >= self.config.max_connections_per_core {
            monoio::spawn(refuse(stream, self.config.write_timeout));
            return;
        }
        self.open.set(self.open.get() + 1);
        self.shared.connections.fetch_add(1, Ordering::AcqRel);
        let me = Rc::clone(self);
        monoio::spawn(async move {
            me.connection(stream, peer).await;
            me.open.set(me.open.get() - 1);
            me.shared.connections.fetch_sub(1, Ordering::AcqRel);
        });
    }

    async fn connection(&self, stream: TcpStream, peer: SocketAddr) {
        let mut c = Conn {
            stream,
            buf: Vec::with_capacity(4096),
            out: Vec::with_capacity(4096),
            chunked: http::Chunked::default(),
            remote: peer.to_string(),
            started: None,
            continue_sent: false,
        };
        // Head, body and framing overhead of one request may not exceed this.
        let max_buffer = http::MAX_HEAD_BYTES + self.config.max_body + 64 * 1024;
        loop {
            // Serve every complete request already buffered (pipelining), then write once.
            let mut close = match self.serve_buffered(&mut c).await {
                Served::Gone => return,
                Served::Close => true,
                Served::More => false,
            };
            if !close && c.buf.len() > max_buffer {
                Refusal::TooLarge.write(&mut c.out, true);
                close = true;
            }
            if !close && !c.continue_sent && wants_continue(&c.buf, self.config.max_body) {
                c.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                c.continue_sent = true;
            }
            if !c.out.is_empty() && !self.committed().await {
                return;
            }
            if !c.out.is_empty() && !self.flush(&mut c.stream, &mut c.out).await {
                return;
            }
            if close || !self.read_more(&mut c).await {
                return;
            }
        }
    }

    /// Serves the complete requests at the start of the buffer, queueing their answers, and
    /// relays an event stream a handler hands back (answers queued before it go first).
    async fn serve_buffered(&self, c: &mut Conn) -> Served {
        loop {
            let (head, consumed, is_chunked) = match self.frame(&c.buf, &mut c.chunked) {
                Ok(Some(framed)) => framed,
                Ok(None) => return Served::More,
                Err(e) => {
                    Refusal::Http(e).write(&mut c.out, true);
                    return Served::Close;
                }
            };
            c.started = None;
            c.continue_sent = false;
            let body: &[u8] = if is_chunked {
                &c.chunked.body
            } else {
                body_of(&c.buf, &head, consumed)
            };
            let close = head.close
                || self.shared.stopping.load(Ordering::Acquire)
                || self.shared.draining.load(Ordering::Acquire);
            let started = Instant::now();
            let from = c.out.len();
            let mut relay = None;
            self.handle(
                &c.buf, &head, body, &c.remote, close, &mut c.out, &mut relay,
            )
            .await;
            let method = match head.method {
                Some(Method::Get) => 0,
                Some(Method::Post) => 1,
                _ => 2,
            };
            self.metrics().request(
                crate::metrics::route_index(&c.buf[head.path.clone()]),
                method,
                crate::metrics::status_index(&c.out[from..]),
                started.elapsed(),
            );
            c.buf.drain(..consumed);
            c.chunked.reset();
            if let Some(job) = relay
                && !self.relay_after_queued(c, job).await
            {
                return Served::Gone;
            }
            if close {
                return Served::Close;
            }
        }
    }

    /// Writes the answers queued before a relayed stream, then relays it.
    async fn relay_after_queued(&self, c: &mut Conn, job: Relay) -> bool {
        if !c.out.is_empty()
            && (!self.committed().await || !self.flush(&mut c.stream, &mut c.out).await)
        {
            return false;
        }
        self.relay(&mut c.stream, job).await
    }

    /// Waits for more bytes and reads them: the head timeout runs from the first byte of a
    /// request, the idle timeout between requests. False: close the connection (timed out,
    /// stopping while idle, or the peer is gone).
    async fn read_more(&self, c: &mut Conn) -> bool {
        let idle = c.buf.is_empty();
        let deadline = if idle {
            Instant::now() + self.config.idle_timeout
        } else {
            *c.started.get_or_insert_with(Instant::now) + self.config.header_timeout
        };
        let ready = loop {
            if idle && self.shared.stopping.load(Ordering::Acquire) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break false;
            }
            let slice = if idle { left.min(IDLE_TICK) } else { left };
            match monoio::time::timeout(slice, c.stream.readable(false)).await {
                Ok(Ok(())) => break true,
                Ok(Err(_)) => return false,
                Err(_) => {}
            }
        };
        if !ready {
            if !idle {
                Refusal::HeadTimeout.write(&mut c.out, true);
                let out = std::mem::take(&mut c.out);
                let _ =
                    monoio::time::timeout(self.config.write_timeout, c.stream.write_all(out)).await;
            }
            return false;
        }
        if c.buf.capacity() - c.buf.len() < 4096 {
            c.buf.reserve(8192);
        }
        let len = c.buf.len();
        let (res, slice) = c
            .stream
            .read(std::mem::take(&mut c.buf).slice_mut(len..))
            .await;
        c.buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => false,
            Ok(_) => {
                c.started.get_or_insert_with(Instant::now);
                true
            }
        }
    }

    /// In sync durability: waits until every record this core pushed so far is committed
    /// (one wait covers all pipelined answers). `false`: not within the timeout.
    pub(crate) async fn committed(&self) -> bool {
        let Some(watch) = &self.shared.commit_watch else {
            return true;
        };
        let ticket = self.audit.borrow().last_ticket();
        match watch.wait(ticket) {
            None => true,
            Some(rx) => matches!(
                monoio::time::timeout(SYNC_COMMIT_TIMEOUT, rx).await,
                Ok(Ok(()))
            ),
        }
    }

    /// A complete request at the start of `buf`: its head, total length, and whether the body
    /// was de-chunked into `chunked.body`.
    fn frame(
        &self,
        buf: &[u8],
        chunked: &mut http::Chunked,
    ) -> Result<Option<(Head, usize, bool)>, HttpError> {
        let Some((head, head_len)) = http::parse_head(buf, self.config.max_body)? else {
            return Ok(None);
        };
        match head.body {
            BodyFraming::Empty => Ok(Some((head, head_len, false))),
            BodyFraming::Length(n) if buf.len() >= head_len + n => {
                Ok(Some((head, head_len + n, false)))
            }
            BodyFraming::Length(_) => Ok(None),
            BodyFraming::Chunked => match chunked.decode(&buf[head_len..], self.config.max_body)? {
                Some(used) => Ok(Some((head, head_len + used, true))),
                None => Ok(None),
            },
        }
    }

    /// Writes the queued answers; false when the client is gone or does not read. A client
    /// that never reads must not hold the connection (and its buffer): the write has a
    /// deadline. `out` comes back empty, its allocation kept.
    pub(crate) async fn flush(&self, stream: &mut TcpStream, out: &mut Vec<u8>) -> bool {
        let write = monoio::time::timeout(
            self.config.write_timeout,
            stream.write_all(std::mem::take(out)),
        )
        .await;
        let Ok((res, back)) = write else {
            return false;
        };
        *out = back;
        out.clear();
        res.is_ok()
    }

    /// Writes `bytes` within the write timeout; false when the client is gone.
    pub(crate) async fn send_to_agent(&self, stream: &mut TcpStream, bytes: Vec<u8>) -> bool {
        let write = monoio::time::timeout(self.config.write_timeout, stream.write_all(bytes)).await;
        matches!(write, Ok((Ok(_), _)))
    }
}

fn body_of<'a>(buf: &'a [u8], head: &Head, consumed: usize) -> &'a [u8] {
    match head.body {
        BodyFraming::Length(n) => &buf[consumed - n..consumed],
        _ => &[],
    }
}

/// Answers a connection past the per-core limit with 503 and closes it.
async fn refuse(mut stream: TcpStream, write_timeout: Duration) {
    let mut out = Vec::new();
    Refusal::TooManyConnections.write(&mut out, true);
    let _ = monoio::time::timeout(write_timeout, stream.write_all(out)).await;
}

/// True when `buf` holds a complete head asking `Expect: 100-continue` whose body has not
/// started to arrive.
fn wants_continue(buf: &[u8], max_body: usize) -> bool {
    matches!(http::parse_head(buf, max_body), Ok(Some((head, len))) if head.expect_continue && buf.len() == len)
}
