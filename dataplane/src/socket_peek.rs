//! A non-blocking look at a socket's receive side, for pooled upstream connections: the only
//! `unsafe` in the workspace. monoio exposes no non-blocking peek, and waiting for readiness
//! with a zero timeout costs a timer tick (up to 1 ms per reused connection), which capped
//! proxy throughput at a third of what the core could do (docs/BENCHMARKS.md).
#![expect(
    unsafe_code,
    reason = "the crate's one unsafe call: a non-blocking MSG_PEEK"
)]

use std::os::fd::AsRawFd;

/// What the receive side of an idle connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// Nothing to read: the connection is idle and open.
    Idle,
    /// The peer closed it (or it failed).
    Closed,
    /// The peer sent bytes nobody asked for.
    Unsolicited,
}

/// Peeks at one byte without waiting and without consuming it.
pub fn peek(socket: &impl AsRawFd) -> Peek {
    let mut byte = 0u8;
    // SAFETY: `socket` is borrowed for the duration of the call, so its descriptor is open;
    // the buffer is one valid, writable byte that outlives the call; MSG_PEEK leaves the
    // data in the socket and MSG_DONTWAIT makes the call return at once.
    let n = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            (&raw mut byte).cast::<libc::c_void>(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    match n {
        0 => Peek::Closed,
        n if n > 0 => Peek::Unsolicited,
        _ => match std::io::Error::last_os_error().kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Peek::Idle,
            _ => Peek::Closed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn peeks_tell_idle_unsolicited_and_closed_apart() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        assert_eq!(peek(&client), Peek::Idle);
        server.write_all(b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(peek(&client), Peek::Unsolicited);
        assert_eq!(peek(&client), Peek::Unsolicited, "a peek consumes nothing");
        drop(server);
        let client2 = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server2, _) = listener.accept().unwrap();
        drop(server2);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(peek(&client2), Peek::Closed);
    }
}
