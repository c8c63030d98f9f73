//! The web console (`--console-listen`): server-rendered HTML for
//! operators, with no JavaScript build step. Per account it shows the keys
//! with their aliases, an alias's history from the change log, the live
//! change stream (server-sent events fed by WatchAliases), the audit log
//! with filters, and the server's health; a principal allowed to change
//! aliases also gets forms to create, re-point, rename and delete them,
//! each carrying the etag it was shown (a stale one is refused).
//!
//! It is a door like the others: every page calls the application's use
//! cases as the signed-in principal, so authorization, throttling and audit
//! apply unchanged. Who is looking: with an auth file, a principal who
//! logged in with a bearer token (the session cookie maps a random id to
//! the principal's name, see [`session`]) or whose client certificate
//! names it; without one, anyone, as at the other doors. Every POST carries
//! its session's CSRF token. The requests that run a use case are counted
//! in the call metrics under door `console` and their route
//! ([`counted_route`]).

pub mod html;
mod pages;
pub mod session;
mod sse;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::routing::{get, post};
use axum::Router;
use http::request::Parts;
use http::{header, HeaderValue, Response, StatusCode};

use self::session::{Holder, Session, Sessions};
use crate::app::{App, Call, Credentials};
use crate::domain::error::Code;
use crate::domain::policy::Caller;
use crate::domain::{Error, Reason};
use crate::door::connections::Incoming;
use crate::door::origin::{Origin, TrustedProxies};
use crate::door::Door;
use crate::http::{Connection, ConnectionSettings};
use crate::operator::metrics::{self, Metrics};

/// The largest form body taken.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// How the console serves.
pub struct ConsoleSettings {
    /// TLS, with the same certificate, key and client CA as gRPC.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How long an HTTP/1.1 client may take to send a request's headers.
    pub header_timeout: Duration,
    /// How long in-flight requests get to finish once shutdown starts.
    pub drain: Duration,
    /// Whose forwarded headers name the client (`--trusted-proxies`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Where each call is counted.
    pub metrics: Arc<Metrics>,
}

/// What the pages share.
#[derive(Clone)]
struct Console {
    app: Arc<App>,
    sessions: Arc<Sessions>,
    /// Served over TLS: the session cookie is `Secure`.
    secure: bool,
}

/// Serves the console on `incoming` until `shutdown` completes.
pub async fn serve(
    app: Arc<App>,
    incoming: Incoming,
    settings: ConsoleSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let edge = Edge {
        trusted_proxies: settings.trusted_proxies,
        metrics: settings.metrics,
    };
    let router = router(app, settings.tls.is_some(), edge);
    let connections = ConnectionSettings {
        name: "console",
        header_timeout: settings.header_timeout,
        tls: settings.tls,
        drain: settings.drain,
    };
    crate::http::serve_router(router, incoming, connections, shutdown).await
}

/// The console's routes.
fn router(app: Arc<App>, secure: bool, edge: Edge) -> Router {
    let console = Console {
        app,
        sessions: Arc::new(Sessions::default()),
        secure,
    };
    Router::new()
        .route("/", get(pages::index))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/alias", get(pages::alias))
        .route("/alias/create", post(pages::create_alias))
        .route("/alias/update", post(pages::update_alias))
        .route("/alias/rename", post(pages::rename_alias))
        .route("/alias/delete", post(pages::delete_alias))
        .route("/stream", get(sse::page))
        .route("/events", get(sse::events))
        .route("/audit", get(pages::audit))
        .route("/health", get(pages::health))
        .fallback(|| async {
            reply(
                StatusCode::NOT_FOUND,
                html::page("Not found", None, r#"<p><a href="/">The console</a></p>"#),
            )
        })
        .layer(middleware::from_fn_with_state(edge, in_call_span))
        .with_state(console)
}

/// What every request passes through before its page: who sent it, and
/// where its call is counted.
#[derive(Clone)]
struct Edge {
    trusted_proxies: Arc<TrustedProxies>,
    metrics: Arc<Metrics>,
}

/// The x-request-id of a console request.
#[derive(Clone)]
struct RequestId(String);

/// The routes that run a use case (a page that calls the application, a
/// form's change, a login), each its own `method` label in the call
/// metrics. The login form, logout and paths the console does not have are
/// not counted; a fixed set keeps the label bounded whatever a client asks.
const COUNTED_ROUTES: [&str; 11] = [
    "GET /",
    "POST /login",
    "GET /alias",
    "POST /alias/create",
    "POST /alias/update",
    "POST /alias/rename",
    "POST /alias/delete",
    "GET /stream",
    "GET /events",
    "GET /audit",
    "GET /health",
];

/// The label a request is counted under, if it is counted.
fn counted_route(method: &http::Method, path: &str) -> Option<&'static str> {
    COUNTED_ROUTES
        .into_iter()
        .find(|route| route.split_once(' ') == Some((method.as_str(), path)))
}

/// Every request in the span every door's calls have (its method is the
/// console's path, never its query or body), with its x-request-id in
/// and out, one log line of its outcome, and, for a route that runs a use
/// case, its call counted (with the refusal's reason a page carries).
async fn in_call_span(
    axum::extract::State(edge): axum::extract::State<Edge>,
    mut request: Request,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let route = counted_route(request.method(), request.uri().path());
    let in_flight = route.map(|_| edge.metrics.in_flight(Door::Console));
    let id = crate::door::request_id(request.headers());
    let id_text = id.to_str().unwrap_or_default().to_owned();
    let peer = request
        .extensions()
        .get::<Connection>()
        .and_then(|c| c.info.tcp.remote_addr());
    let origin = edge
        .trusted_proxies
        .origin(Door::Console, peer, request.headers());
    let method = format!("console {} {}", request.method(), request.uri().path());
    let span = crate::door::call_span(&method, &id_text, peer, &origin, request.headers());
    request.extensions_mut().insert(RequestId(id_text));
    request.extensions_mut().insert(origin);
    let work = async move {
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        if let Some(route) = route {
            edge.metrics.call(
                Door::Console,
                route,
                metrics::Status::Http(status),
                response.extensions().get::<Reason>().copied(),
                started.elapsed(),
            );
        }
        drop(in_flight);
        let latency_ms = crate::door::rounded_ms(started.elapsed());
        if response.status().is_server_error() {
            tracing::error!(http_status = status, latency_ms, "call failed");
        } else {
            tracing::info!(http_status = status, latency_ms, "call");
        }
        response
            .headers_mut()
            .insert(crate::door::REQUEST_ID_HEADER, id);
        response
    };
    tracing::Instrument::instrument(work, span).await
}

/// An answer given instead of a page (boxed: a response is large).
type Diverted = Box<Response<Body>>;

/// Who is looking at a page, admitted by the application.
struct Visit {
    call: Call,
    /// The session (None only for a request refused before one exists).
    session: Session,
    /// A session made for this request, to be given to the browser.
    set_cookie: Option<String>,
}

impl Visit {
    /// Whether the caller may be allowed `action` on some resource: the
    /// console offers its form (the call is authorized as any other).
    fn may(&self, action: &str) -> bool {
        match &self.call.caller {
            Caller::Anonymous => true,
            Caller::Principal(principal) => principal.may_be_allowed(action),
        }
    }

    /// The frame's view of who is looking.
    fn viewer<'a>(&'a self, account: &'a str) -> html::Viewer<'a> {
        html::Viewer {
            principal: self.call.caller.name(),
            account,
            logout_csrf: matches!(
                self.session.holder,
                Holder::Login(..) | Holder::Certificate(_)
            )
            .then_some(self.session.csrf.as_str()),
        }
    }
}

impl Console {
    /// Where the request came from (put there by [`in_call_span`]).
    fn origin(parts: &Parts) -> Origin {
        parts
            .extensions
            .get::<Origin>()
            .cloned()
            .unwrap_or_default()
    }

    fn x_request_id(parts: &Parts) -> String {
        parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default()
    }

    /// The credentials of the connection itself: its client certificate.
    fn certificate_credentials(parts: &Parts) -> Credentials {
        Credentials {
            certificate: parts
                .extensions
                .get::<Connection>()
                .and_then(|c| c.certificate.clone()),
            ..Credentials::default()
        }
    }

    /// Admits the holder of `session` to `action`, if the session still
    /// stands for someone: Ok(None) when it does not (expired login, a
    /// principal gone from the auth file, another certificate).
    fn admit_session(
        &self,
        parts: &Parts,
        session: &Session,
        action: Option<&'static str>,
    ) -> Result<Option<Caller>, Error> {
        let admitted = match &session.holder {
            Holder::Pending => return Ok(None),
            Holder::Login(name, token_sha256) => {
                self.app.admit_principal(name, token_sha256, action)
            }
            Holder::Open if self.app.authenticator.is_none() => self.app.admit(
                &Credentials::default(),
                action,
                &Self::origin(parts),
                &Self::x_request_id(parts),
            ),
            Holder::Open => return Ok(None),
            Holder::Certificate(name) => match self.app.admit(
                &Self::certificate_credentials(parts),
                action,
                &Self::origin(parts),
                &Self::x_request_id(parts),
            ) {
                Ok(caller) if caller.name() == name => Ok(caller),
                Ok(_) => return Ok(None),
                Err(error) => Err(error),
            },
        };
        match admitted {
            Ok(caller) => Ok(Some(caller)),
            Err(error) if error.reason.spec().code == Code::Unauthenticated => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Who is looking at a page (to do `action`): the holder of the
    /// session cookie; else, on a server without an auth file, anyone (a
    /// new session); else the principal the client certificate names (a
    /// new session); else nobody, and the answer is the way to the login
    /// form.
    fn visit(&self, parts: &Parts, action: Option<&'static str>) -> Result<Visit, Diverted> {
        let call =
            |caller: Caller| Call::new(caller, Self::x_request_id(parts), Self::origin(parts));
        if let Some(session) =
            session::cookie_id(&parts.headers).and_then(|id| self.sessions.get(&id))
        {
            match self.admit_session(parts, &session, action) {
                Ok(Some(caller)) => {
                    return Ok(Visit {
                        call: call(caller),
                        session,
                        set_cookie: None,
                    })
                }
                Ok(None) if session.holder != Holder::Pending => self.sessions.close(&session.id),
                Ok(None) => {}
                Err(error) => return Err(Box::new(refusal(&error))),
            }
        }
        let (holder, caller) = if self.app.authenticator.is_none() {
            let caller = self
                .app
                .admit(
                    &Credentials::default(),
                    action,
                    &Self::origin(parts),
                    &Self::x_request_id(parts),
                )
                .map_err(|error| Box::new(refusal(&error)))?;
            (Holder::Open, caller)
        } else {
            let credentials = Self::certificate_credentials(parts);
            if credentials.certificate.is_none() {
                return Err(Box::new(to_login()));
            }
            match self.app.admit(
                &credentials,
                action,
                &Self::origin(parts),
                &Self::x_request_id(parts),
            ) {
                Ok(caller) => (Holder::Certificate(caller.name().to_owned()), caller),
                Err(error) if error.reason.spec().code == Code::Unauthenticated => {
                    return Err(Box::new(to_login()))
                }
                Err(error) => return Err(Box::new(refusal(&error))),
            }
        };
        let session = self.sessions.open(holder);
        Ok(Visit {
            call: call(caller),
            set_cookie: Some(session::set_cookie(&session, self.secure)),
            session,
        })
    }

    /// Who sends a form (to do `action`): the holder of an existing
    /// session whose CSRF token the form carries; anything else is refused
    /// with 403 before the application is asked.
    fn visit_with_form(
        &self,
        parts: &Parts,
        action: Option<&'static str>,
        form: &std::collections::HashMap<String, String>,
    ) -> Result<Visit, Diverted> {
        let session = session::cookie_id(&parts.headers).and_then(|id| self.sessions.get(&id));
        let given = form.get("csrf").map(String::as_str).unwrap_or_default();
        let Some(session) = session.filter(|s| session::same_token(given, &s.csrf)) else {
            return Err(Box::new(forbidden_form()));
        };
        match self.admit_session(parts, &session, action) {
            Ok(Some(caller)) => Ok(Visit {
                call: Call::new(caller, Self::x_request_id(parts), Self::origin(parts)),
                session,
                set_cookie: None,
            }),
            Ok(None) => {
                self.sessions.close(&session.id);
                Err(Box::new(to_login()))
            }
            Err(error) => Err(Box::new(refusal(&error))),
        }
    }
}

/// A form body's fields (at most [`MAX_FORM_BYTES`]).
async fn form(body: Body) -> Result<std::collections::HashMap<String, String>, Response<Body>> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                html::page("Form too large", None, ""),
            )
        })?;
    Ok(html::fields(&String::from_utf8_lossy(&bytes)))
}

/// The HTTP status the console answers an application error with.
fn status_of(error: &Error) -> StatusCode {
    match error.reason.spec().code {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Internal | Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A page that says why a request was refused.
fn refusal(error: &Error) -> Response<Body> {
    refused(
        error,
        reply(
            status_of(error),
            html::page("Refused", None, &html::error_box(error)),
        ),
    )
}

/// `response`, answering a request the application refused with `error`:
/// its reason goes with it to the call metrics.
fn refused(error: &Error, mut response: Response<Body>) -> Response<Body> {
    response.extensions_mut().insert(error.reason);
    response
}

/// 403 for a form without its session's CSRF token.
fn forbidden_form() -> Response<Body> {
    let error = Error::new(
        Reason::ACCESS_DENIED,
        "The form does not carry this session's CSRF token; load the page again and resend it.",
    );
    let page = html::page(
        "Refused",
        None,
        &format!(
            "{}<p><a href=\"/\">The console</a></p>",
            html::error_box(&error)
        ),
    );
    refused(&error, reply(StatusCode::FORBIDDEN, page))
}

/// 303 to `location`.
fn see_other(location: &str, set_cookie: Option<String>) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, location)
        .header(header::CACHE_CONTROL, "no-store");
    if let Some(cookie) = set_cookie {
        response = response.header(header::SET_COOKIE, cookie);
    }
    response.body(Body::empty()).unwrap_or_default()
}

/// The way to the login form.
fn to_login() -> Response<Body> {
    see_other("/login", None)
}

/// An HTML page, with the headers every console page has: no caching, no
/// framing, no referrer, and a content security policy that allows no
/// script but the page's own.
fn reply(status: StatusCode, html: String) -> Response<Body> {
    reply_with(status, html, None, None)
}

/// [`reply`] giving the browser a session cookie, and allowing the inline
/// script that carries `script_nonce`.
fn reply_with(
    status: StatusCode,
    html: String,
    set_cookie: Option<String>,
    script_nonce: Option<&str>,
) -> Response<Body> {
    let script = script_nonce.map_or("'none'".to_owned(), |nonce| format!("'nonce-{nonce}'"));
    let policy = format!(
        "default-src 'none'; script-src {script}; style-src 'unsafe-inline'; connect-src 'self'; \
         img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer");
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        response = response.header(header::CONTENT_SECURITY_POLICY, policy);
    }
    if let Some(cookie) = set_cookie {
        response = response.header(header::SET_COOKIE, cookie);
    }
    response.body(Body::from(html)).unwrap_or_default()
}
