//! Serving one listener, the public one and the admin one alike: the accept loop with its
//! connection caps (in all, and per source address), TLS, the per-connection timing of
//! the `connection` module, and a graceful stop. One function for both, so the
//! admin listener cannot fall behind the public one's protections again.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

use super::connection::{HeadDeadline, RequestCount, Timing, drive};
use super::extract::{ClientAddr, PresentedCertificate};
use super::mtls::CertificateSource;
use crate::http::tls::ReloadingConfig;
use crate::net::Cidr;
use crate::net::source_key;

/// Limits applied per connection, before a request reaches the router.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Longest time a client may take to send a request head: the first within this
    /// long of connecting, every later one within this long of its first byte (slowloris
    /// defence).
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may wait for its next request. Longer than the
    /// idle timeout of load balancers in front (AWS ALB: 60 s), so they never reuse a
    /// connection the server is closing. Zero: one request per connection.
    pub keep_alive_timeout: Duration,
    /// Hard cap on the request head (request line + headers) a connection buffers; beyond
    /// it the HTTP layer answers a bare 431. The router's own, lower cap
    /// ([`Limits::max_header_bytes`](super::Limits::max_header_bytes)) answers first, with the JSON body.
    pub max_header_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// Behind a proxy: the header whose last value is the client's address (e.g.
    /// `X-Forwarded-For`). Unset: the TCP peer is the client.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// Most connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most connections one source (an IPv6 one by its /64) may hold at once, so one
    /// cannot take every slot; more are closed as they are accepted. Peers in
    /// `trusted_proxies` are exempt: every client behind them arrives from them. Zero: no
    /// cap.
    pub max_connections_per_address: usize,
    /// The proxies in front. When set, `client_ip_header` is believed only from these
    /// peers; from any other the TCP peer is the client. Empty: believed from any peer.
    pub trusted_proxies: Vec<Cidr>,
    /// Where client certificates come from (the TLS handshake, a trusted proxy's
    /// header) and how they are judged.
    pub certificates: Arc<CertificateSource>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(75),
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
            client_ip_header: None,
            max_connections: 10_000,
            max_connections_per_address: 512,
            trusted_proxies: Vec::new(),
            certificates: Arc::default(),
        }
    }
}

/// An HTTP/2 connection that has sent no frame for this long is sent a PING…
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// …and closed if the ack does not come within this long: a peer that vanished while a
/// stream was open does not hold its connection until TCP gives up.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a listener is in its life. It only moves forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Accepting and keeping connections alive.
    Serving,
    /// Shutting down soon: still accepting, but every HTTP/1 response says
    /// `Connection: close`, so clients reconnect (through a load balancer, elsewhere).
    Draining,
    /// Not accepting: finishing the requests in flight.
    Stopping,
}

/// Serves `router` on `listener` until `phase` reaches [`Phase::Stopping`], then stops
/// accepting and gives the connections open up to the shutdown grace period to finish.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    tls: Option<Arc<ReloadingConfig>>,
    mut phase: watch::Receiver<Phase>,
) {
    // Never marked seen: in each connection's clone, "changed" then means "no longer
    // serving" (one atomic load per response, no lock).
    let leaving = phase.clone();
    let builder = http_builder(&limits);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_address = Arc::new(PerAddress::new(limits.max_connections_per_address));
    let timing = Timing {
        keep_alive: limits.keep_alive_timeout,
        close_grace: limits.header_read_timeout,
        shutdown_grace: limits.shutdown_grace,
    };
    let (stop, stop_rx) = watch::channel(false);
    let limits = Arc::new(limits);
    let accepted = |stream: TcpStream, peer: SocketAddr, slot: OwnedSemaphorePermit| {
        // Before any TLS work: one source's connections past its cap cost a close only.
        let proxy = limits.trusted_proxies.iter().any(|p| p.contains(peer.ip()));
        let held = if proxy {
            None
        } else {
            match per_address.hold(peer.ip()) {
                Ok(held) => held,
                Err(Full) => {
                    warn_once_at_cap(peer.ip(), limits.max_connections_per_address);
                    return;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            limits: limits.clone(),
            router: router.clone(),
            builder: builder.clone(),
            timing,
            stop: stop_rx.clone(),
            leaving: leaving.clone(),
        };
        let tls = tls.as_ref().map(|t| t.current());
        tokio::spawn(async move {
            connection.serve(stream, peer, tls).await;
            drop((slot, held));
        });
    };
    loop {
        // At the connection cap, stop accepting: new connections wait in the kernel's
        // backlog instead of taking memory and file descriptors here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            () = until_stopping(&mut phase) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = until_stopping(&mut phase) => break,
        };
        accepted(stream, peer, slot);
    }
    // Connections the kernel completed before the stop have clients already writing
    // their requests: dropping the listener would reset them. Serve those (their answers
    // say `Connection: close`), then close the listener: later clients are refused.
    while let Some(Ok((stream, peer))) = listener.accept().now_or_never() {
        match slots.clone().try_acquire_owned() {
            Ok(slot) => accepted(stream, peer, slot),
            Err(_) => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stop_rx);
    if tokio::time::timeout(timing.shutdown_grace, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing remaining connections");
    }
}

/// Completes when the phase reaches [`Phase::Stopping`] (or its sender is gone).
async fn until_stopping(phase: &mut watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p == Phase::Stopping).await;
}

/// A proxy in front that is not in `--trusted-proxy` reaches the per-address cap under
/// ordinary load, and its clients then see connections closed: say so, once.
fn warn_once_at_cap(ip: IpAddr, limit: usize) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            peer = %ip,
            limit,
            "a source address holds --max-connections-per-address connections; its further \
             connections are closed as they arrive. If a proxy in front connects from it, \
             list the proxy with --trusted-proxy"
        );
    }
    tracing::debug!(peer = %ip, "connection closed: over the per-address cap");
}

/// hyper's settings for both protocols.
fn http_builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let keep_alive = limits.keep_alive_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's one timer also runs while a connection idles between requests, so it is
        // the keep-alive timeout; `HeadDeadline` bounds the request heads.
        .header_read_timeout(keep_alive.max(limits.header_read_timeout))
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(!keep_alive.is_zero());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(H2_PING_INTERVAL)
        .keep_alive_timeout(H2_PING_TIMEOUT)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// What one accepted connection is served with.
struct Connection {
    limits: Arc<ConnectionLimits>,
    router: axum::Router,
    builder: auto::Builder<TokioExecutor>,
    timing: Timing,
    stop: watch::Receiver<bool>,
    leaving: watch::Receiver<Phase>,
}

impl Connection {
    async fn serve(
        self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        let header_timeout = self.limits.header_read_timeout;
        match tls {
            None => self.serve_io(stream, peer, None).await,
            Some(config) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream));
                if let Ok(Ok(stream)) = handshake.await {
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| self.limits.certificates.from_tls(chain))
                        .map(|c| PresentedCertificate(Arc::new(c)));
                    self.serve_io(stream, peer, certificate).await;
                }
            }
        }
    }

    async fn serve_io<I>(self, io: I, peer: SocketAddr, certificate: Option<PresentedCertificate>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let requests = Arc::new(RequestCount::default());
        let (heads, responses) = (requests.clone(), requests.clone());
        let leaving = self.leaving.clone();
        let limits = self.limits.clone();
        let router = self
            .router
            .map_request(move |mut request: hyper::Request<hyper::body::Incoming>| {
                heads.head_received(request.version());
                let source = ClientAddr::resolve(
                    request.headers(),
                    peer.ip(),
                    limits.client_ip_header.as_ref(),
                    &limits.trusted_proxies,
                );
                // The connection's own certificate, else one a trusted proxy forwarded.
                let presented = certificate.clone().or_else(|| {
                    limits
                        .certificates
                        .from_header(request.headers(), peer.ip(), &limits.trusted_proxies)
                        .map(|c| PresentedCertificate(Arc::new(c)))
                });
                let extensions = request.extensions_mut();
                extensions.insert(source);
                if let Some(presented) = presented {
                    extensions.insert(presented);
                }
                request
            })
            .map_response(move |mut response: axum::response::Response| {
                responses.response_ready();
                // Draining or stopping: an HTTP/1 client learns not to send another
                // request here. The phase only moves away from serving, so "changed" means
                // leaving; a closed channel too.
                if leaving.has_changed().unwrap_or(true) && !responses.is_http2() {
                    response.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                response
            });
        let io = HeadDeadline::new(io, requests.clone(), self.limits.header_read_timeout);
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
        drive(connection, &requests, self.timing, self.stop).await;
    }
}

/// Connections held per source ([`source_key`]), for the per-address cap. Only sources
/// with a connection open have an entry, so it is bounded by the connection cap.
struct PerAddress {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// The source is at its cap.
struct Full;

impl PerAddress {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            held: Mutex::default(),
        }
    }

    /// Counts one more connection from `ip`: a guard that releases it when dropped, `None`
    /// when there is no cap.
    fn hold(self: &Arc<Self>, ip: IpAddr) -> Result<Option<Held>, Full> {
        if self.limit == 0 {
            return Ok(None);
        }
        let key = source_key(ip);
        let mut held = self.held.lock().expect("not poisoned");
        let count = held.entry(key).or_default();
        if *count >= self.limit {
            return Err(Full);
        }
        *count += 1;
        Ok(Some(Held {
            table: self.clone(),
            key,
        }))
    }
}

/// One connection counted against its source.
struct Held {
    table: Arc<PerAddress>,
    key: IpAddr,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.table.held.lock().expect("not poisoned");
        if let Some(count) = held.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_address_cap_counts_ipv6_by_64_and_releases_on_drop() {
        let table = Arc::new(PerAddress::new(2));
        let a = table.hold("2001:db8::1".parse().unwrap()).ok().flatten();
        let b = table.hold("2001:db8::2".parse().unwrap()).ok().flatten();
        assert!(a.is_some() && b.is_some());
        assert!(
            table.hold("2001:db8::ffff:3".parse().unwrap()).is_err(),
            "same /64"
        );
        assert!(
            table.hold("2001:db8:0:1::1".parse().unwrap()).is_ok(),
            "next /64"
        );
        drop(a);
        assert!(table.hold("2001:db8::3".parse().unwrap()).is_ok());
        drop(b);
        assert_eq!(
            table.held.lock().unwrap().len(),
            0,
            "no entry once nothing is held"
        );
        let uncapped = Arc::new(PerAddress::new(0));
        assert!(matches!(
            uncapped.hold("192.0.2.1".parse().unwrap()),
            Ok(None)
        ));
    }
}
