//! The tower layer around every call: x-request-id in and out, one tracing
//! span per call (method, x-request-id, peer, status, latency), the call
//! and its messages counted in the metrics, deadlines
//! answered as DEADLINE_EXCEEDED, and over-large requests answered as
//! INVALID_ARGUMENT.
//!
//! Deadlines: tonic answers an expired `grpc-timeout` with CANCELLED, which
//! service meshes retry as if the client had gone away. This layer sits
//! inside tonic's own timer and fires 1 ms earlier, so callers get
//! DEADLINE_EXCEEDED. A change whose deadline passes may still commit: retry
//! it with the same request_id.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::sync::Semaphore;
use tonic::body::Body;
use tonic::transport::server::TlsConnectInfo;

use crate::door::connections::ConnectionInfo;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::domain::{Error, Reason};
use crate::door::origin::TrustedProxies;
use crate::door::{call_span, request_id, rounded_ms, Door, REQUEST_ID_HEADER};
use crate::operator::grpc_metrics::{self, MessageCounter, MethodId};
use crate::operator::metrics::{Metrics, Status};

/// Calls that need no credentials (probes, API discovery) have a bound of
/// their own: a busy API cannot starve probes, and nobody can hold memory
/// through them without limit.
fn is_open_service(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
        || path.starts_with("/grpc.reflection.")
        || path.starts_with("/aliasd.v1.DiagnosticsService/")
}

/// Calls to the open services in progress at once, at most.
const MAX_OPEN_SERVICE_CALLS: usize = 256;

#[derive(Debug, Clone)]
pub struct RequestContextLayer {
    max_message_bytes: usize,
    request_body_timeout: Duration,
    in_flight: Arc<Semaphore>,
    max_in_flight: usize,
    open_in_flight: Arc<Semaphore>,
    /// Warns that calls are refused for want of room, once in a while.
    busy: Arc<crate::door::connections::RateLimitedWarning>,
    metrics: Arc<Metrics>,
    /// Whose forwarded headers name the client (`--trusted-proxies`).
    trusted_proxies: Arc<TrustedProxies>,
}

impl RequestContextLayer {
    /// Requests up to `max_message_bytes`, whose bodies arrive within
    /// `request_body_timeout`, at most `max_in_flight` at once; the
    /// forwarded headers of `trusted_proxies` name the client.
    pub fn new(
        max_message_bytes: usize,
        request_body_timeout: Duration,
        max_in_flight: usize,
        metrics: Arc<Metrics>,
        trusted_proxies: Arc<TrustedProxies>,
    ) -> RequestContextLayer {
        RequestContextLayer {
            max_message_bytes,
            request_body_timeout,
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            max_in_flight,
            open_in_flight: Arc::new(Semaphore::new(MAX_OPEN_SERVICE_CALLS)),
            busy: Arc::new(crate::door::connections::RateLimitedWarning::default()),
            metrics,
            trusted_proxies,
        }
    }
}

impl<S> Layer<S> for RequestContextLayer {
    type Service = RequestContext<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestContext {
            inner,
            bounds: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RequestContext<S> {
    inner: S,
    bounds: RequestContextLayer,
}

/// A response body that keeps its call counted as in progress on its
/// connection until the body ends (a watch stream lasts long after its
/// headers), so that the connection is not closed as idle meanwhile. A
/// stream's outcome is known only when it ends (its trailers): then, or
/// when the body is dropped unfinished (the client went away: CANCELLED),
/// the call is counted and logged. The messages sent are counted as they
/// go.
struct CountedBody {
    inner: Body,
    _call: Option<crate::door::connections::CallInProgress>,
    stream_end: Option<StreamEnd>,
    sent: Option<MessageCounter>,
}

/// What a stream's end reports.
struct StreamEnd {
    metrics: Arc<Metrics>,
    method: String,
    method_id: MethodId,
    started: Instant,
    span: tracing::Span,
}

impl StreamEnd {
    fn report(self, trailers: Option<&http::HeaderMap>) {
        let (code, reason, ours) = match trailers {
            Some(trailers) => outcome(trailers),
            None => (tonic::Code::Cancelled, None, false),
        };
        let _entered = self.span.enter();
        finish(
            &self.metrics,
            (&self.method, self.method_id),
            code,
            reason,
            ours,
            self.started,
        );
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        if let Some(end) = self.stream_end.take() {
            end.report(None);
        }
    }
}

impl http_body::Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                if let (Some(sent), Some(data)) = (&mut self.sent, frame.data_ref()) {
                    sent.saw(data);
                }
            }
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                if let Some(end) = self.stream_end.take() {
                    end.report(frame.trailers_ref());
                }
            }
            // Ended without trailers: as tonic reads it, OK.
            Poll::Ready(None) => {
                if let Some(end) = self.stream_end.take() {
                    end.report(Some(&http::HeaderMap::new()));
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that must end before its deadline: one that stalls is
/// cut off with INVALID_ARGUMENT (REQUEST_BODY_TIMEOUT), which tonic
/// answers with, so the stream and its buffers are freed. The messages
/// received are counted as they arrive.
struct TimedBody {
    inner: Body,
    received: Option<MessageCounter>,
    /// When the body must have arrived by.
    due: tokio::time::Instant,
    /// The timer, made only when the body is not all there at once (a
    /// unary call's body mostly is: no timer to register and cancel).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    timeout: Duration,
    ended: bool,
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(received)) = (&polled, &mut this.received) {
            if let Some(data) = frame.data_ref() {
                received.saw(data);
            }
        }
        if this.ended {
            return polled;
        }
        match polled {
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(frame) => Poll::Ready(frame),
            Poll::Pending
                if this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(this.due)))
                    .as_mut()
                    .poll(cx)
                    .is_ready() =>
            {
                this.ended = true;
                Poll::Ready(Some(Err(crate::grpc::status(Error::invalid(
                    Reason::REQUEST_BODY_TIMEOUT,
                    "request",
                    format!(
                        "The request body did not arrive in full within {:?}.",
                        this.timeout
                    ),
                )))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Parses `grpc-timeout`: at most 8 digits and a unit (H M S m u n).
pub fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount * 3600),
        "M" => Duration::from_secs(amount * 60),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn error_response(error: Error) -> Response<Body> {
    crate::grpc::status(error).into_http()
}

/// tonic answers an unknown method with a bare UNIMPLEMENTED; say which.
fn explain_unimplemented(response: Response<Body>, method: &str) -> Response<Body> {
    let headers = response.headers();
    if grpc_code(headers) != tonic::Code::Unimplemented || headers.contains_key("grpc-message") {
        return response;
    }
    error_response(Error::new(
        Reason::UNKNOWN_METHOD,
        format!(
            "Unknown method {}; `grpcurl -plaintext HOST:PORT list` shows the services and \
             `describe SERVICE` their methods.",
            crate::domain::names::quoted(method)
        ),
    ))
}

/// The connection a request came on (accepted by [`crate::door::connections::incoming`]),
/// over plain TCP or TLS.
pub fn connection<B>(request: &Request<B>) -> Option<&ConnectionInfo> {
    let extensions = request.extensions();
    extensions.get::<ConnectionInfo>().or_else(|| {
        extensions
            .get::<TlsConnectInfo<ConnectionInfo>>()
            .map(|tls| tls.get_ref())
    })
}

/// The Ping of DiagnosticsService: logged as other calls are (the
/// benchmark's baseline must cost what a call costs).
const PING_PATH: &str = "/aliasd.v1.DiagnosticsService/Ping";

/// A call's outcome from the headers (or trailers) that carry its status:
/// the code, the reason of a refusal (from the status details, failures
/// only), and whether the status is one of ours (it has our details).
fn outcome(headers: &http::HeaderMap) -> (tonic::Code, Option<Reason>, bool) {
    let code = grpc_code(headers);
    let reason = match code {
        tonic::Code::Ok => None,
        _ => tonic::Status::from_header_map(headers)
            .and_then(|status| {
                tonic_types::StatusExt::get_details_error_info(&status).map(|info| info.reason)
            })
            .and_then(|reason| Reason::from_name(&reason)),
    };
    (
        code,
        reason,
        headers.contains_key("grpc-status-details-bin"),
    )
}

/// Counts an answered call in the metrics (its method, its status, the
/// reason of a refusal) and logs it, in the call's span. `method`: the
/// request's path, and the method it names.
fn finish(
    metrics: &Metrics,
    (method, method_id): (&str, MethodId),
    code: tonic::Code,
    reason: Option<Reason>,
    ours: bool,
    started: Instant,
) {
    let took = started.elapsed();
    metrics.call(
        Door::Grpc,
        grpc_metrics::path(method_id),
        Status::Grpc(super::code_name(code)),
        reason,
        took,
    );
    metrics.grpc.handled(method_id, code, took.as_secs_f64());
    let latency_ms = rounded_ms(took);
    let status = super::code_name(code);
    let reason = reason.map(Reason::as_str).unwrap_or_default();
    // ERROR only for faults of ours (they carry our ErrorInfo): a client
    // that resets its stream mid-body makes tonic answer UNKNOWN, and must
    // not be able to write error lines.
    if ours && matches!(status, "INTERNAL" | "UNKNOWN" | "DATA_LOSS") {
        tracing::error!(status, reason, latency_ms, "call failed");
    } else if is_open_service(method) && method != PING_PATH {
        // Probes and API discovery: frequent and routine.
        tracing::debug!(status, reason, latency_ms, "call");
    } else if reason.is_empty() {
        tracing::info!(status, latency_ms, "call");
    } else {
        tracing::info!(status, reason, latency_ms, "call");
    }
}

/// The peer of a request, over plain TCP or TLS.
pub fn peer_addr<B>(request: &Request<B>) -> Option<std::net::SocketAddr> {
    connection(request).and_then(|info| info.tcp.remote_addr())
}

/// The status of a response whose status travels in its headers (an error
/// before the first message); otherwise it follows in the trailers: OK here.
fn grpc_code(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .map(|code| tonic::Code::from_bytes(code.as_bytes()))
        .unwrap_or(tonic::Code::Ok)
}

/// The text of a percent-encoded `grpc-message` header.
fn grpc_message(headers: &http::HeaderMap) -> String {
    headers
        .get("grpc-message")
        .map(|raw| {
            percent_encoding::percent_decode(raw.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

/// tonic refuses some client mistakes itself, in words of its own:
/// - an over-large request, with OUT_OF_RANGE, before our codec sees it;
/// - broken gRPC framing (a compressed flag without `grpc-encoding`, a flag
///   byte that is neither 0 nor 1, a frame cut short, a body that does not
///   decompress, no message at all), with INTERNAL, as if the server were at
///   fault, and logged as an error;
/// - a body that decompresses past the size limit, with RESOURCE_EXHAUSTED.
///
/// Callers get INVALID_ARGUMENT (REQUEST_TOO_LARGE or MALFORMED_REQUEST)
/// with an ErrorInfo, like any other bad input.
fn rewrite_client_errors(response: Response<Body>, limit: usize) -> Response<Body> {
    let headers = response.headers();
    let code = grpc_code(headers);
    if !matches!(
        code,
        tonic::Code::OutOfRange | tonic::Code::Internal | tonic::Code::ResourceExhausted
    ) {
        return response;
    }
    let message = grpc_message(headers);
    let too_large = match code {
        tonic::Code::OutOfRange => message.starts_with("Error, decoded message length too large"),
        tonic::Code::ResourceExhausted => message.starts_with("Error decompressing: size limit"),
        _ => false,
    };
    if too_large {
        return error_response(Error::invalid(
            Reason::REQUEST_TOO_LARGE,
            "request",
            format!("The request message is larger than the {limit} bytes this server accepts."),
        ));
    }
    let malformed = code == tonic::Code::Internal
        && [
            "protocol error: received message with",
            "Unexpected EOF decoding stream",
            "Error decompressing",
            "Missing request message",
        ]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    if malformed {
        return error_response(Error::invalid(
            Reason::MALFORMED_REQUEST,
            "request",
            format!("The request is not a well-formed gRPC message: {message}."),
        ));
    }
    response
}

/// Whether a content-type is gRPC's: `application/grpc`, alone or followed
/// by `+format` or `;parameters`.
fn is_grpc_content_type(headers: &http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match value.get(..16) {
        Some(start) if start.eq_ignore_ascii_case("application/grpc") => {
            matches!(value.as_bytes().get(16), None | Some(b'+') | Some(b';'))
        }
        _ => false,
    }
}

/// The gRPC spec's answer to a request that is not gRPC: HTTP 415, so that
/// a plain HTTP client does not read a gRPC error (HTTP 200) as success.
fn unsupported_media_type() -> Response<Body> {
    let mut response = Response::new(Body::default());
    *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    response
}

impl<S> Service<Request<Body>> for RequestContext<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let id = request_id(request.headers());
        request.headers_mut().insert(REQUEST_ID_HEADER, id.clone());
        let deadline = grpc_timeout(request.headers());
        let peer = peer_addr(&request);
        let origin = self
            .bounds
            .trusted_proxies
            .origin(Door::Grpc, peer, request.headers());
        let method = request.uri().path().to_owned();
        let method_id = grpc_metrics::method_id(&method);
        let span = call_span(
            &method,
            id.to_str().unwrap_or_default(),
            peer,
            &origin,
            request.headers(),
        );
        request.extensions_mut().insert(origin);
        // The clone that was made ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.bounds.max_message_bytes;
        let grpc = is_grpc_content_type(request.headers());
        let changes = crate::grpc::auth_layer::action_of(&method)
            .is_some_and(|action| crate::domain::policy::actions::CHANGES.contains(&action));
        // Held until the response (its headers) is ready.
        let (pool, max_in_flight) = if is_open_service(&method) {
            (&self.bounds.open_in_flight, MAX_OPEN_SERVICE_CALLS)
        } else {
            (&self.bounds.in_flight, self.bounds.max_in_flight)
        };
        let permit = pool.clone().try_acquire_owned();
        let busy = self.bounds.busy.clone();
        let metrics = self.bounds.metrics.clone();
        let call_in_progress = connection(&request).map(ConnectionInfo::call_started);
        let timeout = self.bounds.request_body_timeout;
        let (received, sent) = match grpc {
            true => {
                let (received, sent) = metrics.grpc.messages(method_id);
                (Some(received), Some(sent))
            }
            false => (None, None),
        };
        request = request.map(|body| {
            Body::new(TimedBody {
                inner: body,
                received: received.map(MessageCounter::new),
                due: tokio::time::Instant::now() + timeout,
                deadline: None,
                timeout,
                ended: false,
            })
        });
        Box::pin(
            async move {
                let started = Instant::now();
                let _in_flight = metrics.in_flight(Door::Grpc);
                if !grpc {
                    let mut response = unsupported_media_type();
                    response.headers_mut().insert(REQUEST_ID_HEADER, id);
                    tracing::info!(http_status = 415, "not a gRPC request (content-type)");
                    return Ok(response);
                }
                metrics.grpc.started(method_id);
                let Ok(_permit) = permit else {
                    if let Some(held_back) = busy.due() {
                        tracing::warn!(
                            max_in_flight,
                            held_back,
                            "calls in progress at their limit (--max-in-flight)"
                        );
                    }
                        let mut response = error_response(Error::new(
                            Reason::SERVER_BUSY,
                            format!(
                                "The server has {max_in_flight} calls in progress, the most it \
                                 takes (--max-in-flight); retry shortly."
                            ),
                        ));
                    response.headers_mut().insert(REQUEST_ID_HEADER, id);
                    let (code, reason, ours) = outcome(response.headers());
                    finish(&metrics, (&method, method_id), code, reason, ours, started);
                    return Ok(response);
                };
                // A call that only reads committed nothing, whenever its
                // deadline passed.
                let late = |error: Error| match changes {
                    true => error_response(error),
                    false => error_response(error.of_a_read()),
                };
                let response = match deadline {
                    // Already expired: nothing can be done in time.
                    Some(deadline) if deadline.is_zero() => late(Error::new(
                        Reason::DEADLINE_EXCEEDED,
                        "The call's deadline had passed when it arrived.",
                    )),
                    Some(deadline) => {
                        let call = inner.call(request);
                        let ours = deadline.saturating_sub(Duration::from_millis(1));
                        match tokio::time::timeout(ours, call).await {
                            Ok(response) => response?,
                            Err(_) => late(Error::new(
                                Reason::DEADLINE_EXCEEDED,
                                format!("The call's deadline of {deadline:?} passed before it finished."),
                            )),
                        }
                    }
                    None => inner.call(request).await?,
                };
                let response = rewrite_client_errors(response, limit);
                let mut response = explain_unimplemented(response, &method);
                response.headers_mut().insert(REQUEST_ID_HEADER, id);
                // A stream that started has its status in its trailers:
                // counted and logged when it ends.
                let started_stream = grpc_metrics::is_server_streaming(method_id)
                    && !response.headers().contains_key("grpc-status");
                let stream_end = match started_stream {
                    true => Some(StreamEnd {
                        metrics: metrics.clone(),
                        method: method.clone(),
                        method_id,
                        started,
                        span: tracing::Span::current(),
                    }),
                    false => {
                        let (code, reason, ours) = outcome(response.headers());
                        finish(&metrics, (&method, method_id), code, reason, ours, started);
                        None
                    }
                };
                Ok(response.map(|body| {
                    Body::new(CountedBody {
                        inner: body,
                        _call: call_in_progress,
                        stream_end,
                        sent: sent.map(MessageCounter::new),
                    })
                }))
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn grpc_timeouts_parse() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-timeout", HeaderValue::from_static("250m"));
        assert_eq!(grpc_timeout(&headers), Some(Duration::from_millis(250)));
        headers.insert("grpc-timeout", HeaderValue::from_static("3S"));
        assert_eq!(grpc_timeout(&headers), Some(Duration::from_secs(3)));
        headers.insert("grpc-timeout", HeaderValue::from_static("123456789S"));
        assert_eq!(grpc_timeout(&headers), None);
        headers.insert("grpc-timeout", HeaderValue::from_static("5x"));
        assert_eq!(grpc_timeout(&headers), None);
    }

    #[tokio::test]
    async fn a_call_past_its_deadline_is_answered_deadline_exceeded() {
        let slow = tower::service_fn(|_request: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, std::convert::Infallible>(Response::new(Body::default()))
        });
        let mut service = RequestContextLayer::new(
            1024,
            Duration::from_secs(10),
            16,
            Arc::new(Metrics::new()),
            Arc::default(),
        )
        .layer(slow);
        let request = Request::builder()
            .uri("/aliasd.v1.KeyService/CreateKey")
            .header("content-type", "application/grpc")
            .header("grpc-timeout", "20m")
            .body(Body::default())
            .unwrap();
        let started = Instant::now();
        let response = service.call(request).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(grpc_code(response.headers()), tonic::Code::DeadlineExceeded);
        assert!(response.headers().contains_key(REQUEST_ID_HEADER));
    }

    #[test]
    fn only_grpc_content_types_are_grpc() {
        let with = |value: &'static str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_grpc_content_type(&headers)
        };
        assert!(with("application/grpc"));
        assert!(with("application/grpc+proto"));
        assert!(with("application/grpc;charset=utf-8"));
        assert!(!with("application/grpcx"));
        assert!(!with("application/json"));
        assert!(!with("text/plain"));
        assert!(!is_grpc_content_type(&http::HeaderMap::new()));
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-message", HeaderValue::from_static("a%20b%25c%2"));
        assert_eq!(grpc_message(&headers), "a b%c%2");
    }
}
