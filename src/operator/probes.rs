//! The operators' listeners, apart from the API: Prometheus metrics
//! (`--metrics-listen`) and probes (`--health-listen`: gRPC health,
//! `/healthz`, `/readyz`). Plaintext HTTP/1.1 and HTTP/2, few connections,
//! nothing that changes state. They serve until the server has drained, so
//! probes see it go NOT_SERVING rather than vanish.

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

use crate::operator::metrics::{Metrics, Sources};
use crate::store::Store;

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

/// OpenMetrics, unless the scraper asks for Prometheus's text format
/// 0.0.4 only (`Accept: text/plain;version=0.0.4`).
async fn scrape(
    State((metrics, sources)): State<(Arc<Metrics>, Arc<Sources>)>,
    headers: http::HeaderMap,
) -> Response<Body> {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let text = metrics.render(&sources).await;
    let plain = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    let (content_type, text) = match plain {
        true => (
            "text/plain; version=0.0.4; charset=utf-8",
            crate::operator::metrics::to_text_format(&text),
        ),
        false => (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            text,
        ),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(text))
        .unwrap_or_default()
}

/// What the HTTP probes read.
pub struct Probes {
    pub store: Arc<Store>,
    pub shutting_down: tokio::sync::watch::Receiver<bool>,
}

/// `/healthz` (liveness: 503 once the store has failed, which only a restart
/// mends), `/readyz` (readiness: 503 also while shutting down), and gRPC
/// health (`grpc_health`, the same statuses as on the main port).
pub fn health_router(grpc_health: Router, probes: Arc<Probes>) -> Router {
    Router::new()
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .with_state(probes)
        .merge(grpc_health)
        // Replaces the gRPC router's (which answers any path with HTTP 200
        // and grpc-status UNIMPLEMENTED): a misspelt probe path must fail.
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "not found: probes are /healthz, /readyz and grpc.health.v1.Health\n".into(),
            )
        })
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::from(body))
        .unwrap_or_default()
}

async fn live(State(probes): State<Arc<Probes>>) -> Response<Body> {
    match probes.store.failure() {
        Some(cause) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store failed: {cause}; restart the server\n"),
        ),
        None => text(StatusCode::OK, "ok\n".into()),
    }
}

async fn ready(State(probes): State<Arc<Probes>>) -> Response<Body> {
    if let Some(cause) = probes.store.failure() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: store failed: {cause}\n"),
        );
    }
    if *probes.shutting_down.borrow() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".into(),
        );
    }
    text(StatusCode::OK, "ready\n".into())
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn status(router: &Router, path: &str) -> StatusCode {
        let request = http::Request::get(path).body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn readiness_ends_when_shutdown_starts_and_liveness_does_not() {
        let store = tokio::task::spawn_blocking(|| Store::open(&crate::store::Engine::Memory))
            .await
            .unwrap()
            .unwrap();
        let (shutdown, shutting_down) = tokio::sync::watch::channel(false);
        let router = health_router(
            Router::new(),
            Arc::new(Probes {
                store,
                shutting_down,
            }),
        );
        assert_eq!(status(&router, "/readyz").await, StatusCode::OK);
        assert_eq!(status(&router, "/healthz").await, StatusCode::OK);
        shutdown.send(true).unwrap();
        assert_eq!(
            status(&router, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(status(&router, "/healthz").await, StatusCode::OK);
        assert_eq!(status(&router, "/other").await, StatusCode::NOT_FOUND);
    }
}
