//! Authentication: the auth file, bearer tokens, client-certificate
//! identities, and the tower layer that puts the caller into every request.
//!
//! The auth file (TOML) names principals. Each has an account, bearer tokens
//! kept only as SHA-256 hashes, client-certificate identities (a SPIFFE URI
//! SAN or a subject CN), and policy statements. It is re-read on SIGHUP; a bad
//! file then keeps the old one in force.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::domain::policy::{actions, Caller, Principal, Statement};
use crate::domain::{Error, Reason};
use crate::throttle::{ThrottleSettings, Throttler};

/// Paths that need no credentials: probes and API discovery.
const OPEN_PATHS: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    principals: Vec<PrincipalEntry>,
    #[serde(default)]
    throttle: Option<ThrottleSettings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalEntry {
    name: String,
    account: String,
    /// SHA-256 (hex) of each bearer token.
    token_sha256: Option<OneOrMany>,
    /// Client-certificate identities: a URI SAN (spiffe://...) or a subject CN.
    tls_identity: Option<OneOrMany>,
    #[serde(default)]
    statements: Vec<StatementEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementEntry {
    actions: OneOrMany,
    resources: OneOrMany,
}

/// A parsed, validated auth file.
#[derive(Debug, Default)]
pub struct AuthConfig {
    by_name: HashMap<String, Arc<Principal>>,
    by_token_hash: HashMap<String, Arc<Principal>>,
    /// `tls_identity` values that are URIs (SPIFFE ids): matched only by a
    /// certificate's URI SANs.
    by_uri: HashMap<String, Arc<Principal>>,
    /// Every other `tls_identity`: matched only by a subject CN.
    by_common_name: HashMap<String, Arc<Principal>>,
    pub throttle: Option<ThrottleSettings>,
}

fn invalid(path: &Path, message: String) -> Error {
    Error::internal(format!("auth file {}: {message}", path.display()))
}

impl AuthConfig {
    pub fn load(path: &Path) -> Result<AuthConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(path, format!("cannot read it: {e}")))?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<AuthConfig, Error> {
        let file: AuthFile = toml::from_str(text).map_err(|e| invalid(path, e.to_string()))?;
        let mut config = AuthConfig {
            throttle: file.throttle,
            ..AuthConfig::default()
        };
        let mut names = std::collections::HashSet::new();
        for entry in file.principals {
            if entry.name.is_empty() || !names.insert(entry.name.clone()) {
                return Err(invalid(
                    path,
                    format!("principal name {:?} is empty or used twice", entry.name),
                ));
            }
            if !crate::config::is_arn_segment(&entry.account) {
                return Err(invalid(
                    path,
                    format!(
                        "principal {}: account {:?} must be 1..64 of A-Z a-z 0-9 -",
                        entry.name, entry.account
                    ),
                ));
            }
            let statements = entry
                .statements
                .into_iter()
                .map(|s| Statement {
                    actions: s.actions.into_vec(),
                    resources: s.resources.into_vec(),
                })
                .collect();
            let principal = Arc::new(Principal {
                name: entry.name.clone(),
                account: entry.account,
                statements,
            });
            config
                .by_name
                .insert(principal.name.clone(), principal.clone());
            for hash in entry
                .token_sha256
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
            {
                let hash = hash.to_ascii_lowercase();
                if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        path,
                        format!("principal {}: token_sha256 must be 64 hex digits (sha256sum of the token)", entry.name),
                    ));
                }
                if config
                    .by_token_hash
                    .insert(hash, principal.clone())
                    .is_some()
                {
                    return Err(invalid(
                        path,
                        format!("principal {}: a token hash is used twice", entry.name),
                    ));
                }
            }
            for identity in entry
                .tls_identity
                .map(OneOrMany::into_vec)
                .unwrap_or_default()
            {
                let table = if is_uri(&identity) {
                    &mut config.by_uri
                } else {
                    &mut config.by_common_name
                };
                if table.insert(identity.clone(), principal.clone()).is_some() {
                    return Err(invalid(
                        path,
                        format!("tls_identity {identity:?} is used twice"),
                    ));
                }
            }
        }
        Ok(config)
    }

    /// The principal of a bearer token.
    fn by_token(&self, token: &str) -> Option<Arc<Principal>> {
        let hash: String = Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.by_token_hash.get(&hash).cloned()
    }

    /// The principal of a client certificate. URI SANs match only URI
    /// identities and a subject CN only the others, so that a CN such as
    /// `spiffe://...` can never pose as a workload's SPIFFE id. A certificate
    /// whose identities name more than one principal is refused.
    fn by_certificate(&self, certificate: &CertIdentities) -> Result<Arc<Principal>, Error> {
        let (table, identities) = if certificate.uris.is_empty() {
            (&self.by_common_name, &certificate.common_names)
        } else {
            (&self.by_uri, &certificate.uris)
        };
        let mut found: Vec<Arc<Principal>> = Vec::new();
        for principal in identities.iter().filter_map(|id| table.get(id)) {
            if !found.iter().any(|p| p.name == principal.name) {
                found.push(principal.clone());
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(unauthenticated(format!(
                "The client certificate ({}) is not the identity of any principal.",
                certificate.describe()
            ))),
            _ => Err(unauthenticated(format!(
                "The client certificate ({}) names several principals ({}); a certificate must \
                 identify exactly one.",
                certificate.describe(),
                found
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The caller of a request: a bearer token wins over a client
    /// certificate; neither known is UNAUTHENTICATED.
    pub fn authenticate(&self, request: &Request<Body>) -> Result<Arc<Principal>, Error> {
        if let Some(value) = request.headers().get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .filter(|t| !t.is_empty());
            return match token {
                Some(token) => self.by_token(token).ok_or_else(|| {
                    unauthenticated("The bearer token is not known to this server.")
                }),
                None => Err(unauthenticated(
                    "The authorization header must be 'Bearer TOKEN'.",
                )),
            };
        }
        match client_identities(request) {
            Some(certificate) if !certificate.is_empty() => self.by_certificate(&certificate),
            _ => Err(unauthenticated(
                "The call carries no credentials: send 'authorization: Bearer TOKEN' or a client certificate.",
            )),
        }
    }
}

/// The auth file in force, and where to re-read it from.
pub struct Authenticator {
    path: PathBuf,
    current: RwLock<Arc<AuthConfig>>,
    /// Moves on every successful reload.
    generation: AtomicU64,
}

impl Authenticator {
    pub fn load(path: &Path) -> Result<Authenticator, Error> {
        Ok(Authenticator {
            path: path.to_owned(),
            current: RwLock::new(Arc::new(AuthConfig::load(path)?)),
            generation: AtomicU64::new(0),
        })
    }

    pub fn current(&self) -> Arc<AuthConfig> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the file; on any error the old configuration stays.
    pub fn reload(&self) -> Result<(), Error> {
        let fresh = AuthConfig::load(&self.path)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// A check that a long-lived call (a watch) may go on: once the auth
    /// file has been reloaded, `principal` must still exist, in the same
    /// account, and still be allowed `action` on `resource`.
    pub fn still_allowed(
        self: &Arc<Self>,
        principal: &Principal,
        action: &'static str,
        resource: String,
    ) -> impl Fn() -> Result<(), Error> + Send + Sync + 'static {
        let auth = self.clone();
        let (name, account) = (principal.name.clone(), principal.account.clone());
        let opened_under = self.generation.load(Ordering::SeqCst);
        move || {
            if auth.generation.load(Ordering::SeqCst) == opened_under {
                return Ok(());
            }
            match auth.current().by_name.get(&name) {
                Some(now) if now.account == account => {
                    Caller::Principal(now.clone()).authorize(action, &resource)
                }
                _ => Err(unauthenticated(format!(
                    "Principal '{name}' is no longer in the auth file; the watch ends."
                ))),
            }
        }
    }
}

fn unauthenticated(message: impl Into<String>) -> Error {
    Error::new(Reason::UNAUTHENTICATED, message)
}

/// Whether an identity is a URI (it starts with a scheme, as `spiffe:`):
/// such identities are matched only against URI SANs, never a CN.
fn is_uri(identity: &str) -> bool {
    match identity.split_once(':') {
        Some((scheme, _)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// What a client certificate says about who holds it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CertIdentities {
    /// Its URI SANs (SPIFFE ids).
    pub uris: Vec<String>,
    /// Its subject CNs; they count only when there is no URI SAN.
    pub common_names: Vec<String>,
}

impl CertIdentities {
    fn is_empty(&self) -> bool {
        self.uris.is_empty() && self.common_names.is_empty()
    }

    fn describe(&self) -> String {
        let uris = self.uris.iter().map(|u| format!("URI SAN {u}"));
        let cns = self.common_names.iter().map(|c| format!("CN {c}"));
        uris.chain(cns).collect::<Vec<_>>().join(", ")
    }

    /// The identities of a DER certificate; None if it does not parse.
    pub fn of_der(der: &[u8]) -> Option<CertIdentities> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut identities = CertIdentities::default();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = name {
                    identities.uris.push((*uri).to_owned());
                }
            }
        }
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                identities.common_names.push(cn.to_owned());
            }
        }
        Some(identities)
    }
}

/// The identities of the client certificate of a mutual-TLS connection. The
/// TLS layer has already verified the certificate against --tls-client-ca.
pub fn client_identities(request: &Request<Body>) -> Option<CertIdentities> {
    let certs = request
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.peer_certs())?;
    CertIdentities::of_der(certs.first()?.as_ref())
}

/// The action a gRPC path invokes (`/aliasd.v1.KeyService/CreateKey` ->
/// `kms:CreateKey`), if it is one of the API's; a made-up path gives None, so
/// it can neither grow the throttle's buckets nor fill the audit log.
pub fn action_of(path: &str) -> Option<&'static str> {
    let method = path.rsplit('/').next()?;
    actions::ALL
        .iter()
        .copied()
        .find(|action| action.strip_prefix("kms:") == Some(method))
}

/// Puts the [`Caller`] into every request (or refuses it), and applies the
/// throttle.
#[derive(Clone)]
pub struct AuthLayer {
    pub authenticator: Option<Arc<Authenticator>>,
    pub throttler: Arc<Throttler>,
    /// The account of anonymous calls (no auth file).
    pub default_account: String,
    pub audit: Arc<dyn Fn(Denial) + Send + Sync>,
    /// Limits how many unauthenticated calls per peer address are audited.
    pub denial_budget: Arc<Throttler>,
}

/// A call refused before it reached a handler, for the audit log.
#[derive(Debug, Clone)]
pub struct Denial {
    pub principal: String,
    pub account: String,
    pub action: String,
    pub x_request_id: String,
    pub error: Error,
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl AuthLayer {
    /// The caller and account of a request, or the error to answer with.
    fn admit(&self, request: &Request<Body>) -> Result<Caller, (Error, String, String)> {
        // One snapshot of the auth file for both checks of this call.
        let config = self.authenticator.as_ref().map(|auth| auth.current());
        let (caller, account) = match &config {
            None => (Caller::Anonymous, self.default_account.clone()),
            Some(config) => match config.authenticate(request) {
                Ok(principal) => {
                    let account = principal.account.clone();
                    (Caller::Principal(principal), account)
                }
                Err(error) => {
                    return Err((
                        error,
                        "unauthenticated".into(),
                        self.default_account.clone(),
                    ))
                }
            },
        };
        if let Some(action) = action_of(request.uri().path()) {
            let throttle = config.as_ref().and_then(|c| c.throttle.as_ref());
            if let Err(error) = self.throttler.admit(&account, action, throttle) {
                return Err((error, caller.name().to_owned(), account));
            }
        }
        Ok(caller)
    }
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
        match self.layer.admit(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(async move { inner.call(request).await })
            }
            Err((error, principal, account)) => {
                // Recording costs a write: unauthenticated callers get a
                // small budget per peer address, past which they are refused
                // without a record (and counted in the log).
                let peer = crate::layers::peer_addr(&request)
                    .map(|addr| addr.ip().to_string())
                    .unwrap_or_default();
                let record = error.reason == Reason::UNAUTHENTICATED
                    && self
                        .layer
                        .denial_budget
                        .admit(&peer, "unauthenticated", None)
                        .is_ok();
                if error.reason == Reason::UNAUTHENTICATED && !record {
                    tracing::warn!(%peer, "unauthenticated calls over the audit budget are not recorded");
                }
                if record {
                    (self.layer.audit)(Denial {
                        principal,
                        account,
                        action: action_of(path).unwrap_or("unknown").to_owned(),
                        x_request_id: request
                            .headers()
                            .get(crate::layers::REQUEST_ID_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                        error: error.clone(),
                    });
                }
                let response = crate::service::status(error).into_http();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
        [[principals]]
        name = "deployer"
        account = "111122223333"
        token_sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        tls_identity = ["spiffe://example.org/deployer", "deployer.internal"]
        [[principals.statements]]
        actions = ["kms:CreateAlias", "kms:Describe*"]
        resources = ["alias/payments-*", "*"]
    "#;

    #[test]
    fn tokens_are_matched_by_hash_and_identities_exactly() {
        let config = AuthConfig::parse(Path::new("auth.toml"), FILE).unwrap();
        // sha256("test") is the hash above.
        assert_eq!(config.by_token("test").unwrap().name, "deployer");
        assert!(config.by_token("other").is_none());
        let cn = |name: &str| CertIdentities {
            uris: vec![],
            common_names: vec![name.to_owned()],
        };
        let deployer = config.by_certificate(&cn("deployer.internal")).unwrap();
        assert_eq!(deployer.account, "111122223333");
        assert!(config.by_certificate(&cn("nobody")).is_err());
    }

    #[test]
    fn a_common_name_never_matches_a_uri_identity() {
        let config = AuthConfig::parse(Path::new("auth.toml"), FILE).unwrap();
        let posing = CertIdentities {
            uris: vec![],
            common_names: vec!["spiffe://example.org/deployer".to_owned()],
        };
        let error = config.by_certificate(&posing).unwrap_err();
        assert_eq!(error.reason, Reason::UNAUTHENTICATED);
        // And a URI SAN never matches a CN-style identity.
        let uri = CertIdentities {
            uris: vec!["deployer.internal".to_owned()],
            common_names: vec![],
        };
        assert!(config.by_certificate(&uri).is_err());
        assert!(is_uri("spiffe://example.org/x"));
        assert!(is_uri("urn:example:x"));
        assert!(!is_uri("deployer.internal"));
        assert!(!is_uri("1host:x"));
    }

    #[test]
    fn uri_sans_naming_two_principals_are_refused() {
        let two = format!(
            "{FILE}\n{}",
            FILE.replace("deployer\"", "other\"")
                .replace(
                    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    &"a".repeat(64)
                )
                .replace(
                    "spiffe://example.org/deployer",
                    "spiffe://example.org/other"
                )
                .replace("\"deployer.internal\"", "\"other.internal\"")
        );
        let config = AuthConfig::parse(Path::new("auth.toml"), &two).unwrap();
        let both = CertIdentities {
            uris: vec![
                "spiffe://example.org/deployer".to_owned(),
                "spiffe://example.org/other".to_owned(),
            ],
            common_names: vec![],
        };
        let error = config.by_certificate(&both).unwrap_err();
        assert!(
            error.message.contains("several principals"),
            "{}",
            error.message
        );
        // Two URI SANs of one principal, plus an unknown one, are fine.
        let one = CertIdentities {
            uris: vec![
                "spiffe://example.org/deployer".to_owned(),
                "spiffe://example.org/unknown".to_owned(),
            ],
            common_names: vec![],
        };
        assert_eq!(config.by_certificate(&one).unwrap().name, "deployer");
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let bad = FILE.replace("9f86d0", "zz86d0");
        let error = AuthConfig::parse(Path::new("auth.toml"), &bad).unwrap_err();
        assert!(error.message.contains("64 hex digits"), "{}", error.message);
        let error = AuthConfig::parse(Path::new("auth.toml"), "principals = 3").unwrap_err();
        assert!(error.message.contains("auth.toml"));
        let twice = format!("{FILE}\n{}", FILE.replace("deployer\"", "other\""));
        let error = AuthConfig::parse(Path::new("auth.toml"), &twice).unwrap_err();
        assert!(error.message.contains("used twice"), "{}", error.message);
    }

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
