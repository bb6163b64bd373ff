//! Serving a router on a listener: HTTP/1.1 connections under a cap, with a header-read timeout,
//! request bodies with idle and total timeouts, and a graceful shutdown bounded in time.

use crate::timed_body::TimedBody;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// How [`serve_with`] treats connections. [`Default`] is what `tarn serve` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// A request's head (request line and headers) must arrive whole within this, counted from
    /// when the server starts reading it: on a new connection, and between the requests of a
    /// kept-alive one. Past it the connection is closed.
    pub header_read_timeout: Duration,
    /// A request body from which no data comes for this long, while the server waits for it, is
    /// answered 408 `body_timeout`.
    pub body_idle_timeout: Duration,
    /// A request body not complete this long after its request's head arrived is answered 408
    /// `body_timeout`.
    pub body_total_timeout: Duration,
    /// Connections open at once. Connections past it wait in the listen backlog (they are not
    /// accepted, so hold no file descriptor) until an open one closes.
    pub max_connections: usize,
    /// After the shutdown signal, how long open connections get to finish the requests they
    /// carry; those still open then are dropped.
    pub shutdown_timeout: Duration,
}

/// The default cap on connections, when the file-descriptor limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

/// File descriptors left to everything but connections (stores, clamd, logs, the audit trail).
const RESERVED_FDS: u64 = 256;

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            body_total_timeout: Duration::from_secs(300),
            max_connections: default_max_connections(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// [`DEFAULT_MAX_CONNECTIONS`], or fewer when the process's soft `RLIMIT_NOFILE` would not leave
/// [`RESERVED_FDS`] descriptors for the rest (never fewer than 64).
pub fn default_max_connections() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    connections_for(limit)
}

fn connections_for(nofile: Option<u64>) -> usize {
    match nofile {
        None => DEFAULT_MAX_CONNECTIONS,
        Some(n) => (n.saturating_sub(RESERVED_FDS).max(64) as usize).min(DEFAULT_MAX_CONNECTIONS),
    }
}

/// [`serve_with`] the [`ServeConfig::default`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, ServeConfig::default()).await
}

/// Serves `app` on `listener` (HTTP/1.1) until `shutdown` resolves, under the limits of
/// `config`. Each request carries its connection's peer address
/// (`ConnectInfo<SocketAddr>`). On shutdown it stops accepting, lets the open connections
/// finish the requests they carry (a document being landed is landed and answered; idle
/// connections close at once) for at most `config.shutdown_timeout`, then drops those left and
/// returns.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: ServeConfig,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(
        config.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    // connections watch this to start their graceful shutdown
    let (closing, closing_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        // a slot first: past the cap, connections wait in the backlog, not in this process
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // e.g. out of file descriptors: let some close before trying again
                        tracing::warn!(error = %e, "accepting a connection failed; retrying in a second");
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let app = app.clone();
        let (idle, total) = (config.body_idle_timeout, config.body_total_timeout);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(|body| TimedBody::new(body, idle, total));
            req.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut app.clone(), req)
        });
        let http = http.clone();
        let mut closing = closing_rx.clone();
        conns.spawn(async move {
            let _slot = slot;
            let mut conn = pin!(http.serve_connection(TokioIo::new(stream), service));
            tokio::select! {
                done = conn.as_mut() => return log_end(peer, done),
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            log_end(peer, conn.await)
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let open = conns.len();
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = conns.len(),
            "connections still open {}s after the shutdown signal are dropped",
            config.shutdown_timeout.as_secs_f64()
        );
        conns.shutdown().await;
    }
    Ok(())
}

fn log_end(peer: SocketAddr, done: hyper::Result<()>) {
    if let Err(e) = done {
        tracing::debug!(%peer, error = %e, "connection ended");
    }
}

/// Errors of one connection that was never ours to serve (as `axum::serve` treats them).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_leaves_room_under_the_fd_limit() {
        assert_eq!(connections_for(None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connections_for(Some(1_048_576)), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(connections_for(Some(1024)), 768);
        assert_eq!(connections_for(Some(100)), 64);
        let d = ServeConfig::default();
        assert!(d.max_connections >= 64 && d.max_connections <= DEFAULT_MAX_CONNECTIONS);
        assert!(d.header_read_timeout < d.body_idle_timeout);
        assert!(d.body_idle_timeout < d.body_total_timeout);
    }
}
