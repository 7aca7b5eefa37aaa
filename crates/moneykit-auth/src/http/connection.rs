//! Per-connection timing: how long a client may take to send a request head, separately
//! from how long a connection may sit idle between requests.
//!
//! hyper has one timer for both (`header_read_timeout` also runs while a kept-alive
//! connection waits for its next request), and hyper-util's protocol detection runs before
//! that timer starts, so a connection that never sends a byte is never timed out at all.
//! A short timer (slowloris defence) would then close idle connections that clients and
//! load balancers expect to reuse — a client sending its next request just as the server
//! closes gets a reset instead of a token, and a load balancer whose idle timeout is longer
//! than the server's (AWS ALB: 60 s) answers its clients with 502s.
//!
//! So hyper's timer is set to the keep-alive timeout, and [`HeadDeadline`] adds the short
//! one: the first request head (on HTTP/2, the first stream) must arrive within the header
//! timeout of the connection opening, and every later HTTP/1 head within the header timeout
//! of its first byte. HTTP/2 multiplexes, so its later streams have no such deadline;
//! instead [`drive`] closes any connection, HTTP/2 included, that has had no request open
//! for the keep-alive timeout — gracefully (an HTTP/2 GOAWAY), since a client may be about
//! to reuse it. hyper's HTTP/1 timer stays as a backstop.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// What the HTTP/2 connection preface starts with; an HTTP/1 request line cannot.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Requests whose head has been read, and responses that are ready, on one connection.
/// Equal counts mean the connection waits for its next request head.
#[derive(Debug, Default)]
pub struct RequestCount {
    heads: AtomicU64,
    responses: AtomicU64,
    /// Set by the first HTTP/2 request: a stopping server tells HTTP/2 clients with a
    /// GOAWAY, and HTTP/1 ones with `Connection: close` on their next response.
    http2: AtomicBool,
}

impl RequestCount {
    /// Called when a request head has been parsed (the router is about to see it).
    pub fn head_received(&self, version: http::Version) {
        if version == http::Version::HTTP_2 && !self.http2.load(Ordering::Relaxed) {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.heads.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the connection speaks HTTP/2 (known from its first request on).
    pub fn is_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// Called when the response to a request is ready to be written.
    pub fn response_ready(&self) {
        self.responses.fetch_add(1, Ordering::Relaxed);
    }

    /// Completes once the connection has served a request and then had none open for
    /// `keep_alive` (up to a quarter more). Before its first request a connection is
    /// [`HeadDeadline`]'s. Checked a few times per timeout instead of on every request,
    /// so the hot path pays nothing for it.
    pub async fn idle(&self, keep_alive: Duration) {
        self.quiet_for(keep_alive, 1).await;
    }

    /// Completes once the connection has had no request open for `period` (up to a
    /// quarter more), counting only after it has served `served` requests.
    async fn quiet_for(&self, period: Duration, served: u64) {
        const CHECKS: u32 = 4;
        let tick = (period / CHECKS).max(Duration::from_millis(10));
        let (mut seen, mut was_idle, mut quiet) = (self.heads(), false, 0);
        loop {
            tokio::time::sleep(tick).await;
            let heads = self.heads();
            let idle = heads >= served && self.awaiting_head();
            // Idle at both ends of the tick and no request begun in between: idle through.
            quiet = if was_idle && idle && heads == seen {
                quiet + 1
            } else {
                0
            };
            if quiet == CHECKS {
                return;
            }
            (seen, was_idle) = (heads, idle);
        }
    }

    fn heads(&self) -> u64 {
        self.heads.load(Ordering::Relaxed)
    }

    fn awaiting_head(&self) -> bool {
        self.heads() == self.responses.load(Ordering::Relaxed)
    }
}

/// Which protocol the connection speaks, as far as its first bytes tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// This many bytes matched the HTTP/2 preface so far.
    Detecting(usize),
    Http1,
    Http2,
}

/// An I/O stream that fails its reads once a request head has taken longer than the
/// header timeout; see the module docs.
pub struct HeadDeadline<S> {
    io: S,
    requests: Arc<RequestCount>,
    limit: Duration,
    /// The running deadline, and the head count when it was armed: once that count moves
    /// on, the head it was waiting for has arrived.
    timer: Pin<Box<Sleep>>,
    armed_for: Option<u64>,
    protocol: Protocol,
}

impl<S> HeadDeadline<S> {
    /// Wraps a freshly accepted stream: its first request head is due within `limit`.
    pub fn new(io: S, requests: Arc<RequestCount>, limit: Duration) -> Self {
        let armed_for = Some(requests.heads());
        Self {
            io,
            requests,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
            armed_for,
            protocol: Protocol::Detecting(0),
        }
    }

    fn detect(&mut self, bytes: &[u8]) {
        if let Protocol::Detecting(matched) = self.protocol {
            let wanted = &H2_PREFACE[matched..];
            let n = wanted.len().min(bytes.len());
            self.protocol = if bytes[..n] != wanted[..n] {
                Protocol::Http1
            } else if matched + n == H2_PREFACE.len() {
                Protocol::Http2
            } else {
                Protocol::Detecting(matched + n)
            };
        }
    }

    /// Updates the deadline after a read that returned `read` new bytes, and says whether
    /// it has passed. On HTTP/2 only the first deadline runs: bytes on an idle HTTP/2
    /// connection (PING, WINDOW_UPDATE) start no request head.
    fn expired(&mut self, read: usize, cx: &mut Context<'_>) -> bool {
        let heads = self.requests.heads();
        if self.armed_for.is_some_and(|armed| armed != heads) {
            self.armed_for = None;
        }
        if self.protocol != Protocol::Http2
            && self.armed_for.is_none()
            && read > 0
            && self.requests.awaiting_head()
        {
            self.timer.as_mut().reset(Instant::now() + self.limit);
            self.armed_for = Some(heads);
        }
        self.armed_for.is_some() && self.timer.as_mut().poll(cx).is_ready()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.detect(&buf.filled()[before..]);
        }
        if self.expired(read, cx) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received within the header timeout",
            )));
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How long a connection may idle, and how long it gets to close once asked to.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// No request open for this long: the connection is closed.
    pub keep_alive: Duration,
    /// How long a connection closed for idling gets to finish (an HTTP/2 client acks the
    /// GOAWAY's PING within a round trip; one that does not is dropped after this).
    pub close_grace: Duration,
    /// How long requests in flight get when the server stops.
    pub shutdown_grace: Duration,
}

/// Completes once `stop` is true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Serves `connection` to its end: closes it gracefully once idle for the keep-alive
/// timeout or when `stop` turns true, and drops it if it has not finished within the
/// grace period after that.
pub async fn drive<C>(
    connection: C,
    requests: &RequestCount,
    timing: Timing,
    mut stop: watch::Receiver<bool>,
) where
    C: GracefulConnection,
{
    tokio::pin!(connection);
    let grace = tokio::select! {
        // Client resets and timeouts end connections; nothing to report.
        _ = connection.as_mut() => return,
        () = requests.idle(timing.keep_alive) => timing.close_grace,
        () = stopped(&mut stop) => timing.shutdown_grace,
    };
    let deadline = Instant::now() + grace;
    if *stop.borrow() && !requests.is_http2() {
        // HTTP/1 has no GOAWAY: closing a kept-alive connection now would race the
        // client's next request, which would meet a reset. Instead each response from
        // here on says `Connection: close` (hyper closes after writing it), and only a
        // connection that stays quiet is closed, between requests.
        tokio::select! {
            _ = connection.as_mut() => return,
            () = requests.quiet_for(STOP_LINGER, 0) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout_at(deadline, connection).await;
}

/// How long a stopping server waits for an idle HTTP/1 connection's next request, to
/// answer it with `Connection: close` rather than close under it.
const STOP_LINGER: Duration = Duration::from_millis(400);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    async fn read_some(conn: &mut HeadDeadline<tokio::io::DuplexStream>) -> io::Result<usize> {
        let mut buf = [0u8; 64];
        conn.read(&mut buf).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_times_out() {
        let (_client, server) = duplex(64);
        let mut conn = HeadDeadline::new(server, Arc::default(), Duration::from_secs(5));
        let error = read_some(&mut conn).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_between_requests_is_not_timed_but_a_started_head_is() {
        let (mut client, server) = duplex(64);
        let requests = Arc::new(RequestCount::default());
        let mut conn = HeadDeadline::new(server, requests.clone(), Duration::from_secs(5));
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(read_some(&mut conn).await.unwrap() > 0);
        requests.head_received(http::Version::HTTP_11);
        requests.response_ready();

        // Idle for a minute: the read just waits.
        let idle = tokio::time::timeout(Duration::from_secs(60), read_some(&mut conn)).await;
        assert!(idle.is_err(), "still waiting, not failed");

        // The next head starts and stalls: cut off 5 s after its first byte.
        client.write_all(b"GET / HT").await.unwrap();
        assert!(read_some(&mut conn).await.unwrap() > 0);
        let started = Instant::now();
        let error = read_some(&mut conn).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bodies_are_not_timed() {
        let (mut client, server) = duplex(64);
        let requests = Arc::new(RequestCount::default());
        let mut conn = HeadDeadline::new(server, requests.clone(), Duration::from_secs(5));
        client.write_all(b"POST / HTTP/1.1\r\n\r\n").await.unwrap();
        read_some(&mut conn).await.unwrap();
        requests.head_received(http::Version::HTTP_11); // the handler now reads the body, slowly
        tokio::time::sleep(Duration::from_secs(30)).await;
        client.write_all(b"a=b").await.unwrap();
        assert_eq!(read_some(&mut conn).await.unwrap(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn an_http2_connection_must_open_a_stream_in_time_and_is_not_timed_after() {
        // The preface alone does not stop the clock.
        let (mut client, server) = duplex(64);
        let mut conn = HeadDeadline::new(server, Arc::default(), Duration::from_secs(5));
        client.write_all(H2_PREFACE).await.unwrap();
        read_some(&mut conn).await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(60), read_some(&mut conn)).await;
        let error = read.expect("cut off, not left open").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);

        // Once a stream is open, frames on the idle connection start no deadline: closing
        // it is up to `drive`.
        let (mut client, server) = duplex(64);
        let requests = Arc::new(RequestCount::default());
        let mut conn = HeadDeadline::new(server, requests.clone(), Duration::from_secs(5));
        client.write_all(H2_PREFACE).await.unwrap();
        read_some(&mut conn).await.unwrap();
        requests.head_received(http::Version::HTTP_11);
        requests.response_ready();
        client.write_all(b"ping").await.unwrap();
        read_some(&mut conn).await.unwrap();
        let idle = tokio::time::timeout(Duration::from_secs(60), read_some(&mut conn)).await;
        assert!(idle.is_err(), "still waiting, not failed");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_once_no_request_has_been_open_for_the_keep_alive() {
        let requests = RequestCount::default();
        let keep_alive = Duration::from_secs(80);
        let never = tokio::time::timeout(keep_alive * 3, requests.idle(keep_alive)).await;
        assert!(never.is_err(), "not before its first request");

        let idle = requests.idle(keep_alive);
        tokio::pin!(idle);
        requests.head_received(http::Version::HTTP_11);
        // A request open for longer than the keep-alive timeout is not idling.
        let busy = tokio::time::timeout(keep_alive * 2, idle.as_mut()).await;
        assert!(busy.is_err());
        requests.response_ready();
        // Another request before the timeout starts it again.
        let early = tokio::time::timeout(keep_alive / 2, idle.as_mut()).await;
        assert!(early.is_err());
        requests.head_received(http::Version::HTTP_11);
        requests.response_ready();
        let answered = Instant::now();
        idle.await;
        let waited = answered.elapsed();
        assert!(
            waited >= keep_alive && waited <= keep_alive * 5 / 4,
            "{waited:?}"
        );
    }
}
