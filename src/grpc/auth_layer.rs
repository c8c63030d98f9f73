//! The tower layer that admits every gRPC call: it extracts the call's
//! credentials (the `authorization` header, the client certificate of a
//! mutual-TLS connection), asks the application to admit the call, and puts
//! the [`Caller`] into the request for the handlers, or answers the refusal.
//! An admitted call also holds one of its caller's share of the calls in
//! progress until its response is ready.
//! Health checks and reflection need no credentials.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::body::Body;
use tonic::transport::server::TlsConnectInfo;
use tower::{Layer, Service};

use crate::app::admission::auth::{unauthenticated, CertIdentities, Credentials};
use crate::app::App;
use crate::domain::policy::actions;
use crate::door::connections::ConnectionInfo;
use crate::door::origin::Origin;

/// Paths that need no credentials: probes and API discovery.
/// The origin of a request that came without one.
static NO_ORIGIN: Origin = Origin {
    door: "",
    source_address: String::new(),
    user_agent: String::new(),
};

const OPEN_PATHS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/aliasd.v1.DiagnosticsService/",
];

/// The action a gRPC path invokes (`/aliasd.v1.KeyService/CreateKey` ->
/// `kms:CreateKey`), if it is one of the API's; a made-up path gives None, so
/// it can neither grow the throttle's buckets nor fill the audit log.
pub fn action_of(path: &str) -> Option<&'static str> {
    let method = path.rsplit('/').next()?;
    // ReEncrypt is two actions; it is throttled under the first.
    if method == "ReEncrypt" {
        return Some(actions::RE_ENCRYPT_FROM);
    }
    actions::ALL
        .iter()
        .copied()
        .find(|action| action.strip_prefix("kms:") == Some(method))
}

/// The identities of the client certificate of a mutual-TLS connection. The
/// TLS layer has already verified the certificate against --tls-client-ca.
pub fn client_identities<B>(request: &Request<B>) -> Option<CertIdentities> {
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<ConnectionInfo>>()
        .and_then(|info| info.peer_certs())?;
    CertIdentities::of_der(certs.first()?.as_ref())
}

/// The credentials a gRPC request carries.
pub fn credentials<B>(request: &Request<B>) -> Credentials {
    let bearer = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| unauthenticated("The authorization header must be 'Bearer TOKEN'."))
        });
    Credentials {
        bearer,
        certificate: client_identities(request),
        signature: None,
        refused: None,
    }
}

/// Admits every call through the application (see the module comment).
#[derive(Clone)]
pub struct AuthLayer {
    pub app: Arc<App>,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            app: self.app.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    app: Arc<App>,
}

impl<S> Service<Request<Body>> for AuthService<S>
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
        let path = request.uri().path();
        if OPEN_PATHS.iter().any(|open| path.starts_with(open)) {
            return Box::pin(self.inner.call(request));
        }
        // Put there by the request layer; a test that stacks this layer
        // alone has none.
        let origin = request.extensions().get::<Origin>().unwrap_or(&NO_ORIGIN);
        let x_request_id = request
            .headers()
            .get(crate::door::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // Admitted, and within the caller's share of the calls in progress
        // (held until the response is ready: a principal whose bodies
        // stall holds only its own share).
        let admitted = self
            .app
            .admit(
                &credentials(&request),
                action_of(path),
                origin,
                &x_request_id,
            )
            .and_then(|caller| {
                let slot = self
                    .app
                    .admission
                    .calls
                    .for_caller(&caller, &origin.source_address)?;
                Ok((caller, slot))
            });
        match admitted {
            Ok((caller, slot)) => {
                request.extensions_mut().insert(caller);
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move {
                    let response = inner.call(request).await;
                    drop(slot);
                    response
                })
            }
            Err(error) => {
                let response = super::status(error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_come_from_the_method() {
        assert_eq!(
            action_of("/aliasd.v1.KeyService/CreateKey"),
            Some("kms:CreateKey")
        );
        assert_eq!(action_of("/aliasd.v1.KeyService/MadeUp"), None);
        assert_eq!(action_of("/"), None);
    }
}
