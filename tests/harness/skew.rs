//! A peer whose clock is behind, as the other members see it: a TCP proxy in front of a real
//! member's plain-HTTP peer port. Every request passes through to the real member untouched
//! (raft messages, snapshots, streams) except etcd's clock probe, `GET /raft/probing`, which
//! the proxy answers itself the way etcd's handler does (`{"OK":true,"Now":<time>}`), with a
//! time `behind` in the past. The member dialing through the proxy is real etcd and measures
//! and logs the drift itself ("prober found high clock drift"); all members of a test share
//! one wall clock, which no namespace shifts, so this is the one way to show it a skewed peer.
//!
//! Every other request is forwarded with `Connection: close`, so that a connection that
//! carried raft traffic never comes back to the pool for a probe, and is then spliced both
//! ways until either side closes.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

/// The proxy; stops accepting when dropped (connections already spliced end with their peers).
pub struct SkewProxy {
    /// The port it listens on (127.0.0.1): advertise it as the member's peer URL.
    pub port: u16,
    listener: TcpListener,
}

/// The bound on a request head (etcd's are a few hundred bytes).
const HEAD_MAX: usize = 64 << 10;

impl SkewProxy {
    /// Listens on a free port of 127.0.0.1, in front of `127.0.0.1:upstream`.
    pub fn start(upstream: u16, behind: Duration) -> SkewProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let l = listener.try_clone().unwrap();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, behind);
                });
            }
        });
        SkewProxy { port, listener }
    }
}

impl Drop for SkewProxy {
    fn drop(&mut self) {
        // Unblocks the accept loop: the listener's socket is shut, the loop's clone errors out.
        // SAFETY: shutdown(2) on a descriptor this struct owns.
        unsafe {
            libc::shutdown(std::os::fd::AsRawFd::as_raw_fd(&self.listener), libc::SHUT_RDWR);
        }
    }
}

/// One client connection: probes answered here, anything else handed to the member.
fn serve(mut client: TcpStream, upstream: u16, behind: Duration) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_head(&mut client, &mut buf)? else { return Ok(()) };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        if head.starts_with("GET /raft/probing ") {
            buf.drain(..end);
            let now = time::OffsetDateTime::now_utc() - behind;
            let now = now.format(&time::format_description::well_known::Rfc3339).unwrap();
            let body = format!("{{\"OK\":true,\"Now\":\"{now}\"}}\n");
            write!(
                client,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )?;
            continue;
        }
        let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
        let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
        let mut out = format!("{}\r\nConnection: close\r\n", lines.next().unwrap_or_default());
        for h in lines.filter(|h| !h.to_ascii_lowercase().starts_with("connection:")) {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        up.write_all(out.as_bytes())?;
        up.write_all(&buf[end..])?;
        return splice(client, up);
    }
}

/// Reads into `buf` until it holds a whole request head; its length (through the blank line),
/// or `None` when the client closed first.
fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > HEAD_MAX {
            return Err(std::io::Error::other("request head too long"));
        }
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Copies both ways until either side closes.
fn splice(client: TcpStream, up: TcpStream) -> std::io::Result<()> {
    let (mut c2, mut u2) = (client.try_clone()?, up.try_clone()?);
    let t = std::thread::spawn(move || {
        let _ = std::io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(Shutdown::Write);
    });
    let (mut c, mut u) = (client, up);
    let _ = std::io::copy(&mut c, &mut u);
    let _ = u.shutdown(Shutdown::Write);
    let _ = t.join();
    Ok(())
}
