//! Serving a router on a listener, with graceful shutdown.

use axum::Router;

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the requests in flight
/// (a document being landed is landed and answered) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
