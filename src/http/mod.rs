//! The HTTP compatibility door (`--http-listen`): the AWS KMS JSON 1.1
//! protocol at `POST /` ([`aws`]) and Huawei Cloud KMS v1.0 under
//! `/v1.0/{project_id}/kms/` ([`huawei`]), for clients that already speak a
//! cloud KMS dialect (boto3, the aws CLI, Huawei's SDK, curl).
//!
//! This module owns what both dialects share: the listener (the same
//! connection limits and TLS options as gRPC, HTTP/1.1 and HTTP/2), routing,
//! the request body (bounded in size and time), the x-request-id, bounds on
//! requests in progress (a request holds the share its headers claim while
//! its body arrives, see [`App::claim_slot`]), and graceful shutdown. Each dialect only translates
//! its wire format to the application layer ([`crate::app`]) and renders the
//! answer or the error; neither keeps a rule of its own.

pub mod aws;
pub mod huawei;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::routing::{any, get, post};
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use tokio::sync::Semaphore;
use tokio_stream::StreamExt;
use tower::ServiceExt;

use crate::app::admission::auth::{CertIdentities, Claim};
use crate::app::{App, Call, Credentials, Slot};
use crate::domain::{Error, Reason};
use crate::door::connections::{ConnectionInfo, Incoming};
use crate::door::origin::{Origin, TrustedProxies};
use crate::door::{Door, REQUEST_ID_HEADER};
use crate::operator::metrics::{self, Metrics};

/// The largest request body taken (as gRPC's largest message).
pub const MAX_BODY_BYTES: usize = crate::door::MAX_REQUEST_BYTES;

/// An HTTP response, as the dialects build them.
pub type HttpResponse = Response<Body>;

/// A request whose body has arrived, as the dialects see it.
#[derive(Debug)]
pub struct HttpRequest {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Who sent it: the client's address (the key of its budget of
    /// audited refusals, one per address however many connections it
    /// opens), user agent and door.
    pub origin: Origin,
    /// The x-request-id of the request (the caller's, or a fresh UUID),
    /// also returned in the response.
    pub x_request_id: String,
    /// The client certificate's identities, on a mutual-TLS connection.
    pub certificate: Option<CertIdentities>,
}

/// What a connection tells the handlers about itself (in every request's
/// extensions).
#[derive(Clone)]
pub struct Connection {
    pub info: ConnectionInfo,
    /// The client certificate's identities, on a mutual-TLS connection.
    pub certificate: Option<CertIdentities>,
}

/// What the routes share.
#[derive(Clone)]
struct Shared {
    app: Arc<App>,
    body_timeout: Duration,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    trusted_proxies: Arc<TrustedProxies>,
}

/// A JSON response with a content type (`application/x-amz-json-1.1`,
/// `application/json;charset=UTF-8`).
pub fn json_response(
    status: StatusCode,
    content_type: &'static str,
    value: &serde_json::Value,
) -> HttpResponse {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// A dialect of the HTTP door (as garage's `ApiHandler`): how its requests
/// name operations and carry credentials, how it runs an admitted
/// operation, and how it renders answers and errors. The skeleton every
/// request goes through (claim, body, credentials, admission, run, render)
/// is written once, in [`serve_dialect`]; a dialect file holds only its
/// shapes and names.
pub trait Dialect: Sized + Send + Sync + 'static {
    /// An operation, as a request names it.
    type Operation: Send + Sync;
    /// The door, in metrics.
    const DOOR: Door;

    /// The operation a request names (by its method, path and headers), or
    /// why it names none.
    fn operation(method: &Method, uri: &Uri, headers: &HeaderMap)
        -> Result<Self::Operation, Error>;
    /// Its name as a metric label.
    fn label(operation: &Self::Operation) -> &'static str;
    /// The policy action admission throttles it under.
    fn action(operation: &Self::Operation) -> &'static str;
    /// The project the request names, if the dialect has projects
    /// (admission checks that the caller may use it).
    fn project(_operation: &Self::Operation) -> Option<&str> {
        None
    }
    /// Who the headers say sent the request, before the body arrives.
    fn claim(headers: &HeaderMap) -> Claim;
    /// The credentials the whole request carries.
    fn credentials(app: &App, request: &HttpRequest) -> Credentials;
    /// Runs an admitted operation: the answer, or an error.
    fn run(
        app: &Arc<App>,
        call: &Call,
        operation: &Self::Operation,
        request: &HttpRequest,
    ) -> impl Future<Output = Result<HttpResponse, Error>> + Send;
    /// An error as the dialect renders it.
    fn render_error(error: &Error) -> HttpResponse;
    /// What the dialect adds to every answer (AWS: its request id header).
    fn finish(_response: &mut HttpResponse, _request_id: &str) {}
}

/// One request of dialect `D`, through the skeleton every dialect shares.
async fn serve_dialect<D: Dialect>(shared: Shared, request: Request<Body>) -> HttpResponse {
    let operation = D::operation(request.method(), request.uri(), request.headers());
    let label = operation.as_ref().map_or("unknown", D::label);
    // The span's method: the operation, or what was asked for.
    let name = match &operation {
        Ok(_) => label.to_owned(),
        Err(_) => format!("{} {}", request.method(), request.uri().path()),
    };
    let manners = Manners {
        claim: D::claim,
        render_error: D::render_error,
    };
    shared
        .serve(
            request,
            name,
            (D::DOOR, label),
            manners,
            |app, request| async move {
                let mut response = match operation {
                    Ok(operation) => admitted::<D>(&app, &operation, &request)
                        .await
                        .unwrap_or_else(|error| D::render_error(&error)),
                    Err(error) => D::render_error(&error),
                };
                D::finish(&mut response, &request.x_request_id);
                response
            },
        )
        .await
}

/// Authenticates and admits a request of `D`, then runs its operation.
async fn admitted<D: Dialect>(
    app: &Arc<App>,
    operation: &D::Operation,
    request: &HttpRequest,
) -> Result<HttpResponse, Error> {
    let credentials = D::credentials(app, request);
    let caller = app.admit_in_project(
        &credentials,
        Some(D::action(operation)),
        D::project(operation),
        &request.origin,
        &request.x_request_id,
    )?;
    let call = Call::new(caller, request.x_request_id.clone(), request.origin.clone());
    D::run(app, &call, operation, request).await
}

/// What the shared request handling needs before a dialect runs: who the
/// headers claim, and how to render an error.
#[derive(Clone, Copy)]
struct Manners {
    claim: fn(&HeaderMap) -> Claim,
    render_error: fn(&Error) -> HttpResponse,
}

/// The HTTP router of both dialects.
fn router(door: Shared) -> Router {
    Router::new()
        // Other methods on these paths get the dialect's answer, not an
        // empty 405.
        .route("/", post(aws_entry).fallback(unknown_path))
        .route("/ping", get(ping).fallback(unknown_path))
        .route(huawei::PATH, any(huawei_entry))
        .fallback(unknown_path)
        .with_state(door)
}

async fn aws_entry(State(shared): State<Shared>, request: Request<Body>) -> HttpResponse {
    serve_dialect::<aws::Aws>(shared, request).await
}

async fn huawei_entry(State(shared): State<Shared>, request: Request<Body>) -> HttpResponse {
    serve_dialect::<huawei::Huawei>(shared, request).await
}

/// `GET /ping`: answers 204 and does nothing else, through the same
/// request handling as the dialects (the benchmark's baseline).
async fn ping(State(door): State<Shared>, request: Request<Body>) -> HttpResponse {
    door.serve(
        request,
        "ping".to_owned(),
        (Door::Http, "ping"),
        Manners {
            claim: |_| Claim::Nothing,
            render_error: aws::error_response,
        },
        |_, _| async {
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_default()
        },
    )
    .await
}

/// A path neither dialect has: Huawei's KMS.0201 under `/v1.0/`, else
/// AWS's UnknownOperationException, both 404.
async fn unknown_path(uri: Uri, method: Method, headers: HeaderMap) -> HttpResponse {
    let id = crate::door::request_id(&headers);
    let error = Error::new(
        Reason::UNKNOWN_OPERATION,
        format!("No operation at {method} {}.", uri.path()),
    );
    let mut response = if uri.path().starts_with("/v1") {
        huawei::error_response(&error)
    } else {
        aws::error_response(&error)
    };
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert(REQUEST_ID_HEADER, id);
    response
}

/// The value of `name` in an `Authorization: ALGORITHM name=value, ...`
/// header, read without checking anything else.
pub fn authorization_part<'h>(
    headers: &'h HeaderMap,
    algorithm: &str,
    name: &str,
) -> Option<&'h str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let rest = value.strip_prefix(algorithm)?.strip_prefix(' ')?;
    rest.split(',').find_map(|part| {
        let (key, value) = part.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

fn with_request_id(mut response: HttpResponse, id: &str) -> HttpResponse {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

impl Shared {
    /// Serves one request of a dialect: reads it, runs `handler`, and logs
    /// the outcome (as the gRPC layer does: ERROR only for server faults).
    /// `claim` reads who the headers say sent the request, before the body
    /// arrives: the share of capacity its body may hold while arriving.
    async fn serve<F, Fut>(
        &self,
        request: Request<Body>,
        operation: String,
        (door, label): (Door, &'static str),
        Manners {
            claim,
            render_error,
        }: Manners,
        handler: F,
    ) -> HttpResponse
    where
        F: FnOnce(Arc<App>, HttpRequest) -> Fut,
        Fut: Future<Output = HttpResponse>,
    {
        let started = std::time::Instant::now();
        let remote = request
            .extensions()
            .get::<Connection>()
            .and_then(|c| c.info.tcp.remote_addr());
        let origin = self.trusted_proxies.origin(door, remote, request.headers());
        let x_request_id = crate::door::request_id(request.headers())
            .to_str()
            .unwrap_or_default()
            .to_owned();
        let span = crate::door::call_span(
            &operation,
            &x_request_id,
            remote,
            &origin,
            request.headers(),
        );
        let app = self.app.clone();
        let in_flight = self.metrics.in_flight(door);
        let claimed = claim(request.headers());
        let work = async move {
            let received = match self.app.claim_slot(&claimed, &origin.source_address) {
                Ok(slot) => {
                    self.receive(request, x_request_id.clone(), origin, slot)
                        .await
                }
                Err(error) => Err(error),
            };
            let response = match received {
                Ok((request, in_progress)) => {
                    let response = handler(app, request).await;
                    drop(in_progress);
                    response
                }
                Err(error) => render_error(&error),
            };
            let status = response.status().as_u16();
            self.metrics.call(
                door,
                label,
                metrics::Status::Http(status),
                response.extensions().get::<Reason>().copied(),
                started.elapsed(),
            );
            drop(in_flight);
            let latency_ms = crate::door::rounded_ms(started.elapsed());
            let reason = response
                .extensions()
                .get::<Reason>()
                .map(|r| r.as_str())
                .unwrap_or_default();
            if response.status().is_server_error() {
                tracing::error!(http_status = status, reason, latency_ms, "call failed");
            } else if reason.is_empty() {
                tracing::info!(http_status = status, latency_ms, "call");
            } else {
                tracing::info!(http_status = status, reason, latency_ms, "call");
            }
            with_request_id(response, &x_request_id)
        };
        tracing::Instrument::instrument(work, span).await
    }

    /// Reads the body (at most [`MAX_BODY_BYTES`], within the body
    /// timeout) while holding `slot`, the share the headers' claim gives,
    /// then takes a slot of the door's in-flight bound for the work.
    async fn receive(
        &self,
        request: Request<Body>,
        x_request_id: String,
        origin: Origin,
        slot: Slot,
    ) -> Result<(HttpRequest, InProgress), Error> {
        let (parts, body) = request.into_parts();
        let connection = parts.extensions.get::<Connection>().cloned();
        // The connection is busy (not idle) until the answer is made.
        let call = connection.as_ref().map(|c| c.info.call_started());
        let body = match tokio::time::timeout(
            self.body_timeout,
            axum::body::to_bytes(body, MAX_BODY_BYTES),
        )
        .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => {
                return Err(Error::new(
                    Reason::REQUEST_TOO_LARGE,
                    format!("The request body is larger than {MAX_BODY_BYTES} bytes, or broken."),
                ))
            }
            Err(_) => {
                return Err(Error::new(
                    Reason::REQUEST_BODY_TIMEOUT,
                    format!(
                        "The request body did not arrive within {} s.",
                        self.body_timeout.as_secs()
                    ),
                ))
            }
        };
        let permit = self.in_flight.clone().try_acquire_owned().map_err(|_| {
            Error::new(
                Reason::SERVER_BUSY,
                "The server has the most requests in progress it takes (--max-in-flight); retry shortly.",
            )
        })?;
        Ok((
            HttpRequest {
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
                body,
                origin,
                x_request_id,
                certificate: connection.and_then(|c| c.certificate),
            },
            InProgress {
                _slot: slot,
                _permit: permit,
                _call: call,
            },
        ))
    }
}

/// A request being served: it holds a slot of the in-flight bound and keeps
/// its connection from counting as idle until it is dropped.
struct InProgress {
    _slot: Slot,
    _permit: tokio::sync::OwnedSemaphorePermit,
    _call: Option<crate::door::connections::CallInProgress>,
}

/// How the HTTP door serves.
pub struct HttpSettings {
    pub body_timeout: Duration,
    /// How long an HTTP/1.1 client may take to send a request's headers.
    pub header_timeout: Duration,
    pub metrics: Arc<Metrics>,
    pub max_in_flight: usize,
    /// TLS, with the same certificate, key and client CA as gRPC.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long in-flight requests get to finish once shutdown starts.
    pub drain: Duration,
    /// Whose forwarded headers name the client (`--trusted-proxies`).
    pub trusted_proxies: Arc<TrustedProxies>,
}

/// Serves both dialects on `incoming` until `shutdown` completes, then lets
/// in-flight requests finish (for at most `settings.drain`).
pub async fn serve(
    app: Arc<App>,
    incoming: Incoming,
    settings: HttpSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = router(Shared {
        app,
        body_timeout: settings.body_timeout,
        in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
        metrics: settings.metrics,
        trusted_proxies: settings.trusted_proxies,
    });
    let connections = ConnectionSettings {
        name: "HTTP",
        header_timeout: settings.header_timeout,
        tls: settings.tls,
        drain: settings.drain,
    };
    serve_router(router, incoming, connections, shutdown).await
}

/// How a listener of HTTP routes (the HTTP door, the console) serves its
/// connections.
pub struct ConnectionSettings {
    /// The listener's name in log lines.
    pub name: &'static str,
    /// How long an HTTP/1.1 client may take to send a request's headers.
    pub header_timeout: Duration,
    /// TLS, with the same certificate, key and client CA as gRPC.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long in-flight requests get to finish once shutdown starts.
    pub drain: Duration,
}

/// Serves `router` on `incoming` (HTTP/1.1 and HTTP/2, TLS if configured,
/// each request carrying its [`Connection`]) until `shutdown` completes,
/// then lets in-flight requests finish (for at most `settings.drain`).
pub async fn serve_router(
    router: Router,
    mut incoming: Incoming,
    settings: ConnectionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let name = settings.name;
    let tls = settings.tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    // Without a timer hyper does not time header reads at all: a half-sent
    // header block would hold its connection until the idle timeout.
    builder
        .http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            next = incoming.next() => match next {
                Some(Ok(stream)) => stream,
                Some(Err(error)) => {
                    tracing::debug!(%error, "{name} accept failed");
                    continue;
                }
                None => break,
            },
        };
        let info = tonic::transport::server::Connected::connect_info(&stream);
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let peer = info.tcp.remote_addr();
            match tls {
                None => {
                    let service = per_connection(
                        router,
                        Connection {
                            info,
                            certificate: None,
                        },
                    );
                    let connection =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(?peer, %error, "{name} connection ended with an error");
                    }
                }
                Some(acceptor) => {
                    let stream = match acceptor.accept(stream).await {
                        Ok(stream) => stream,
                        Err(error) => {
                            // A client with the wrong CA, name or certificate:
                            // what its operator needs to see.
                            tracing::info!(?peer, %error, "{name}: TLS handshake failed");
                            return;
                        }
                    };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|cert| CertIdentities::of_der(cert.as_ref()));
                    let service = per_connection(router, Connection { info, certificate });
                    let connection =
                        builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                    if let Err(error) = watcher.watch(connection.into_owned()).await {
                        tracing::debug!(?peer, %error, "{name} connection ended with an error");
                    }
                }
            }
        });
    }
    drop(incoming);
    if tokio::time::timeout(settings.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("{name}: drain timeout passed; closing the remaining connections");
    }
}

/// The router, with the connection's facts put into every request.
fn per_connection(
    router: Router,
    connection: Connection,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = HttpResponse,
    Error = Infallible,
    Future = impl Future<Output = Result<HttpResponse, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(connection.clone());
        router.clone().oneshot(request.map(Body::new))
    })
}

/// The rustls configuration of the HTTP listener, from the gRPC TLS flags:
/// the server's certificate and key and, with a client CA, optional client
/// certificates that must chain to it.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
    client_ca: Option<&std::path::Path>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(ca)?) {
                let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The most items a page of the HTTP dialects' listings holds (`Limit`,
/// `limit`).
pub const MAX_PAGE_LIMIT: i64 = 100;

/// A page-size parameter as both dialects take it: 1..=[`MAX_PAGE_LIMIT`],
/// or None (each dialect words the refusal its own way).
pub fn page_limit(limit: i64) -> Option<i32> {
    (1..=MAX_PAGE_LIMIT)
        .contains(&limit)
        .then(|| i32::try_from(limit).ok())
        .flatten()
}

/// Both dialects' shared reading of a JSON body: an object, or
/// MALFORMED_BODY. An empty body is an empty object.
pub fn json_object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Error::new(
            Reason::MALFORMED_BODY,
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(Error::new(
            Reason::MALFORMED_BODY,
            format!("The request body is not valid JSON: {e}."),
        )),
    }
}
