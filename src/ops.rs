//! The operators' listeners, apart from the API: Prometheus metrics
//! (`--metrics-listen`). Plaintext HTTP/1.1 and HTTP/2, few connections,
//! nothing that changes state.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use axum::Router;
use http::{header, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::metrics::{Metrics, Sources};

/// Connections an operators' listener serves at once; more wait in the
/// kernel's backlog.
const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send its request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>, sources: Arc<Sources>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state((metrics, sources))
}

async fn scrape(State((metrics, sources)): State<(Arc<Metrics>, Arc<Sources>)>) -> Response<Body> {
    let text = metrics.render(&sources).await;
    Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
        .body(Body::from(text))
        .unwrap_or_default()
}

/// Serves `router` on `listener` until `shutdown` completes; requests in
/// progress then get a second to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::debug!(%error, "operators' listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                router.clone().oneshot(request.map(Body::new))
            });
        let connection = builder
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
}
