//! The etcd client's side: where etcd is ([`EtcdConfig`]), TLS to it, and
//! user/password sign-in with a token every call carries, renewed when
//! etcd refuses it.

use std::sync::Arc;

use tonic::transport::Channel;

use super::backend::unavailable;
use super::etcdserverpb as pb;
use super::etcdserverpb::auth_client::AuthClient;
use crate::domain::Error;

/// The channel every etcd call goes through: it carries the auth token.
pub(super) type AuthChannel =
    tonic::service::interceptor::InterceptedService<Channel, TokenInterceptor>;

/// Adds the current auth token (if any) to each call as `token` metadata.
#[derive(Clone)]
pub struct TokenInterceptor(pub(super) Arc<std::sync::RwLock<Option<String>>>);

impl tonic::service::Interceptor for TokenInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let token = self.0.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(token) = token {
            if let Ok(value) = token.parse() {
                request.metadata_mut().insert("token", value);
            }
        }
        Ok(request)
    }
}

/// etcd user/password authentication: a token, renewed when etcd refuses it.
pub(super) struct Auth {
    pub(super) user: Option<(String, String)>,
    /// Sign-ins so far.
    pub(super) sign_ins: std::sync::atomic::AtomicU64,
    pub(super) token: Arc<std::sync::RwLock<Option<String>>>,
    pub(super) client: AuthClient<Channel>,
}

impl Auth {
    pub(super) async fn sign_in(&self) -> Result<(), Error> {
        let Some((name, password)) = self.user.clone() else {
            return Ok(());
        };
        let token = self
            .client
            .clone()
            .authenticate(pb::AuthenticateRequest { name, password })
            .await
            .map_err(|status| unavailable("sign-in", status.message()))?
            .into_inner()
            .token;
        *self.token.write().unwrap_or_else(|p| p.into_inner()) = Some(token);
        self.sign_ins
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Whether `status` says the token is missing or stale (then signs in
    /// again): the call may be repeated, it was not served.
    pub(super) async fn renewed(&self, status: &tonic::Status) -> bool {
        let stale = self.user.is_some()
            && matches!(
                status.code(),
                tonic::Code::Unauthenticated | tonic::Code::InvalidArgument
            )
            && status.message().contains("token");
        stale && self.sign_in().await.is_ok()
    }
}

/// Where the backend's etcd is.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `http://host:port` or `https://host:port`, one or more.
    pub endpoints: Vec<String>,
    /// Every key this store writes begins with it (several deployments can
    /// share a cluster under different prefixes).
    pub prefix: String,
    /// For https endpoints: the CA that signed etcd's certificates (PEM;
    /// None: the system's roots), and a client certificate and key (PEM)
    /// for an etcd that asks for one.
    pub ca: Option<std::path::PathBuf>,
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// An etcd user and password, for an etcd with authentication on.
    pub user: Option<(String, String)>,
}

impl EtcdConfig {
    /// Plain endpoints under `prefix`.
    pub fn plain(endpoints: Vec<String>, prefix: &str) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            prefix: prefix.to_owned(),
            ca: None,
            client_cert: None,
            user: None,
        }
    }

    pub(super) fn tls(&self) -> Result<tonic::transport::ClientTlsConfig, Error> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| Error::internal(format!("cannot read {}: {e}", path.display())))
        };
        let mut tls = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let Some((cert, key)) = &self.client_cert {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(tls)
    }
}

/// One range read for a background task (the mirror's load, the
/// follower's catch-up): its answer, or None after renewing a lapsed token
/// (the task starts over).
pub(super) async fn range_once(
    kv: &mut super::etcdserverpb::kv_client::KvClient<AuthChannel>,
    auth: &Auth,
    request: pb::RangeRequest,
) -> Option<pb::RangeResponse> {
    match kv.range(request).await {
        Ok(response) => Some(response.into_inner()),
        Err(status) => {
            auth.renewed(&status).await;
            None
        }
    }
}
