//! Authentication: the auth file, and who a call's credentials name.
//!
//! The auth file (TOML) names principals. Each has an account, bearer tokens
//! kept only as SHA-256 hashes, client-certificate identities (a SPIFFE URI
//! SAN or a subject CN), access keys for request signatures (their secrets
//! are needed to check a signature, so a file holding them must be readable
//! by its owner only), and policy statements. It is re-read on SIGHUP; a bad
//! file then keeps the old one in force.
//!
//! Nothing here knows a transport: each door extracts [`Credentials`] from
//! its requests (a header, a TLS session, a signature) and asks
//! [`AuthConfig::authenticate`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::app::admission::throttle::ThrottleSettings;
use crate::domain::policy::{Caller, Principal, Statement};
use crate::domain::{Error, Reason};

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
    /// Huawei project ids the principal may name (`/v1.0/{project_id}/`).
    project_ids: Option<OneOrMany>,
    /// Access keys for signed requests (AWS SigV4, Huawei AK/SK).
    #[serde(default)]
    access_keys: Vec<AccessKeyEntry>,
    #[serde(default)]
    statements: Vec<StatementEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessKeyEntry {
    /// The access key id a signed request names (AWS `AKIA...`, Huawei AK).
    id: String,
    /// The secret it signs with (AWS secret access key, Huawei SK).
    secret: String,
}

/// An access key's secret. Debug never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A request signed with an access key: the door that parsed the signature
/// checks it against the key's secret (constant-time), the authenticator
/// finds the key.
pub struct SignedRequest {
    pub access_key_id: String,
    /// True if the request's signature is right for this secret.
    pub verify: Box<dyn Fn(&Secret) -> bool + Send + Sync>,
}

impl std::fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedRequest")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What a call presents to prove who it is, as every door extracts it.
#[derive(Debug, Default)]
pub struct Credentials {
    /// A bearer token (gRPC `authorization: Bearer`); `Err` when the header
    /// was there but malformed.
    pub bearer: Option<Result<String, Error>>,
    /// The client certificate of a mutual-TLS connection.
    pub certificate: Option<CertIdentities>,
    /// A request signature by an access key.
    pub signature: Option<SignedRequest>,
    /// Credentials the door found unusable before any lookup (a missing or
    /// malformed signature, a stale request date): the call is refused with
    /// this error, and audited as other unauthenticated calls are.
    pub refused: Option<Error>,
}

/// What a request's headers claim about who sends it, before its body has
/// arrived (a signature covers the body, so it cannot be checked yet).
#[derive(Debug, Default)]
pub enum Claim {
    /// No credentials, or none this door can read before the body.
    #[default]
    Nothing,
    /// A bearer token (it can be checked at once).
    Bearer(String),
    /// The access key id a signature names (checked once the body is in).
    AccessKey(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatementEntry {
    /// "allow" (the default) or "deny".
    #[serde(default)]
    effect: Option<String>,
    actions: OneOrMany,
    resources: OneOrMany,
    /// `kms:RequestAlias` and `kms:ResourceAliases`, each one pattern or a
    /// list.
    #[serde(default)]
    condition: Option<std::collections::BTreeMap<String, OneOrMany>>,
}

impl StatementEntry {
    /// The statement, or what is wrong with it.
    fn statement(self) -> Result<Statement, String> {
        use crate::domain::policy::{Condition, Effect};
        let effect = match self
            .effect
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("allow") => Effect::Allow,
            Some("deny") => Effect::Deny,
            Some(other) => {
                return Err(format!("effect {other:?} must be \"allow\" or \"deny\""));
            }
        };
        let mut condition = Condition::default();
        for (name, patterns) in self.condition.unwrap_or_default() {
            let patterns = patterns.into_vec();
            if patterns.is_empty() || patterns.iter().any(String::is_empty) {
                return Err(format!(
                    "condition {name:?} needs one or more non-empty patterns"
                ));
            }
            match name.to_ascii_lowercase().as_str() {
                "kms:requestalias" => condition.request_alias = Some(patterns),
                "kms:resourcealiases" => condition.resource_aliases = Some(patterns),
                _ => {
                    return Err(format!(
                        "condition key {name:?} is not one aliasd knows \
                         (kms:RequestAlias, kms:ResourceAliases)"
                    ))
                }
            }
        }
        Ok(Statement {
            effect,
            actions: self.actions.into_vec(),
            resources: self.resources.into_vec(),
            condition,
        })
    }
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
    by_access_key: HashMap<String, (Arc<Principal>, Secret)>,
    pub throttle: Option<ThrottleSettings>,
}

fn invalid(path: &Path, message: String) -> Error {
    Error::internal(format!("auth file {}: {message}", path.display()))
}

impl AuthConfig {
    pub fn load(path: &Path) -> Result<AuthConfig, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(path, format!("cannot read it: {e}")))?;
        let config = Self::parse(path, &text)?;
        if !config.by_access_key.is_empty() {
            refuse_if_others_can_read(path)?;
        }
        Ok(config)
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
            if !crate::domain::names::is_arn_segment(&entry.account) {
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
                .map(StatementEntry::statement)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| invalid(path, format!("principal {}: {e}", entry.name)))?;
            let project_ids = entry
                .project_ids
                .map(OneOrMany::into_vec)
                .unwrap_or_default();
            if let Some(bad) = project_ids.iter().find(|p| {
                p.is_empty()
                    || p.len() > 64
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }) {
                return Err(invalid(
                    path,
                    format!(
                        "principal {}: project id {bad:?} must be 1..64 of A-Z a-z 0-9 - _",
                        entry.name
                    ),
                ));
            }
            let principal = Arc::new(Principal {
                name: entry.name.clone(),
                account: entry.account,
                statements,
                project_ids,
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
            for key in entry.access_keys {
                if key.id.is_empty() || key.id.len() > 128 || key.secret.len() < 16 {
                    return Err(invalid(
                        path,
                        format!(
                            "principal {}: an access key needs an id (1..128 characters) and a \
                             secret of at least 16 characters",
                            entry.name
                        ),
                    ));
                }
                let id = key.id;
                if config
                    .by_access_key
                    .insert(id.clone(), (principal.clone(), Secret(key.secret)))
                    .is_some()
                {
                    return Err(invalid(path, format!("access key {id:?} is used twice")));
                }
            }
        }
        // A file that names nobody would lock every caller out (a file
        // emptied by mistake, a reload of a half-written one).
        if config.by_name.is_empty() {
            return Err(invalid(
                path,
                "it names no principal, so every call would be refused; add a [[principals]] \
                 entry (or serve without --auth-file)"
                    .to_owned(),
            ));
        }
        Ok(config)
    }

    /// The principals' names, sorted.
    pub fn principal_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The principal of that name, if the file names it.
    pub fn principal(&self, name: &str) -> Option<Arc<Principal>> {
        self.by_name.get(name).cloned()
    }

    /// The principal and secret of an access key.
    pub fn access_key(&self, id: &str) -> Option<&(Arc<Principal>, Secret)> {
        self.by_access_key.get(id)
    }

    /// The principal of a bearer token.
    fn by_token(&self, token: &str) -> Option<Arc<Principal>> {
        self.by_token_hash.get(&token_sha256(token)).cloned()
    }

    /// The principal whose entry holds this token hash (a session made
    /// with a token stands only while the file still admits that token).
    pub fn by_token_sha256(&self, hash: &str) -> Option<Arc<Principal>> {
        self.by_token_hash.get(hash).cloned()
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

    /// The principal a request's headers claim to be, if the claim is worth
    /// a share of that principal's capacity: a known token, or a known
    /// access key id (its signature is checked later, with the body).
    pub fn claimant(&self, claim: &Claim) -> Option<Arc<Principal>> {
        match claim {
            Claim::Nothing => None,
            Claim::Bearer(token) => self.by_token(token),
            Claim::AccessKey(id) => self.access_key(id).map(|(principal, _)| principal.clone()),
        }
    }

    /// The principal a call's credentials name: a bearer token wins over a
    /// signature, a signature over a client certificate; none, or unknown
    /// ones, are UNAUTHENTICATED.
    pub fn authenticate(&self, credentials: &Credentials) -> Result<Arc<Principal>, Error> {
        if let Some(refused) = &credentials.refused {
            return Err(refused.clone());
        }
        if let Some(bearer) = &credentials.bearer {
            let token = bearer.as_ref().map_err(Clone::clone)?;
            return self
                .by_token(token)
                .ok_or_else(|| unauthenticated("The bearer token is not known to this server."));
        }
        if let Some(signed) = &credentials.signature {
            return match self.access_key(&signed.access_key_id) {
                Some((principal, secret)) if (signed.verify)(secret) => Ok(principal.clone()),
                Some(_) => Err(Error::new(
                    Reason::INVALID_SIGNATURE,
                    "The request signature we calculated does not match the signature you \
                     provided. Check your secret access key and signing method.",
                )),
                None => Err(Error::new(
                    Reason::UNRECOGNIZED_CLIENT,
                    format!(
                        "The security token included in the request is invalid: access key {:?} \
                         is not known to this server.",
                        signed.access_key_id
                    ),
                )),
            };
        }
        match &credentials.certificate {
            Some(certificate) if !certificate.is_empty() => self.by_certificate(certificate),
            _ => Err(unauthenticated(
                "The call carries no credentials: send 'authorization: Bearer TOKEN' or a client certificate.",
            )),
        }
    }
}

/// A file holding secrets must not be readable by anyone but its owner.
fn refuse_if_others_can_read(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| invalid(path, format!("cannot read its permissions: {e}")))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(invalid(
                path,
                format!(
                    "it holds access-key secrets but its mode is {:o}, so other users can read \
                     it; make it readable by its owner only (chmod 600)",
                    mode & 0o777
                ),
            ));
        }
    }
    Ok(())
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

pub fn unauthenticated(message: impl Into<String>) -> Error {
    Error::new(Reason::UNAUTHENTICATED, message)
}

/// Whether an identity is a URI (`scheme://...`, as `spiffe://...`, or a
/// `urn:`): such identities are matched only against URI SANs, never a CN.
/// Anything else (`db:admin`, `deployer.internal`) is a CN identity.
fn is_uri(identity: &str) -> bool {
    if identity
        .get(..4)
        .is_some_and(|start| start.eq_ignore_ascii_case("urn:"))
    {
        return true;
    }
    match identity.split_once("://") {
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

/// A bearer token's SHA-256, in hex: how the auth file names it.
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        assert!(!is_uri("db:admin"), "a CN with a colon is a CN identity");
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

    const WITH_KEYS: &str = r#"
        [[principals]]
        name = "signer"
        account = "111122223333"
        access_keys = [{ id = "AKIAEXAMPLE", secret = "wJalrXUtnFEMI/K7MDENG" }]
    "#;

    fn signed(id: &str, expected_secret: &'static str) -> Credentials {
        Credentials {
            signature: Some(SignedRequest {
                access_key_id: id.to_owned(),
                verify: Box::new(move |secret| secret.expose() == expected_secret),
            }),
            ..Credentials::default()
        }
    }

    #[test]
    fn a_signed_request_is_its_access_keys_principal_only_if_the_signature_checks() {
        let config = AuthConfig::parse(Path::new("auth.toml"), WITH_KEYS).unwrap();
        let principal = config
            .authenticate(&signed("AKIAEXAMPLE", "wJalrXUtnFEMI/K7MDENG"))
            .unwrap();
        assert_eq!(principal.name, "signer");
        let wrong = config
            .authenticate(&signed("AKIAEXAMPLE", "another-secret-entirely"))
            .unwrap_err();
        assert_eq!(wrong.reason, Reason::INVALID_SIGNATURE);
        assert!(wrong.message.contains("signature"), "{}", wrong.message);
        let unknown = config
            .authenticate(&signed("AKIAUNKNOWN", "wJalrXUtnFEMI/K7MDENG"))
            .unwrap_err();
        assert_eq!(unknown.reason, Reason::UNRECOGNIZED_CLIENT);
        assert!(
            unknown.message.contains("AKIAUNKNOWN"),
            "{}",
            unknown.message
        );
        // The secret never shows in debug output.
        let (_, secret) = config.access_key("AKIAEXAMPLE").unwrap();
        assert!(!format!("{secret:?}").contains("wJalr"));
    }

    #[test]
    fn a_file_holding_secrets_must_be_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth.toml");
        std::fs::write(&path, WITH_KEYS).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = AuthConfig::load(&path).unwrap_err();
        assert!(error.message.contains("chmod 600"), "{}", error.message);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(AuthConfig::load(&path).is_ok());
        // Without secrets (only hashes), other users may read it.
        std::fs::write(&path, FILE).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(AuthConfig::load(&path).is_ok());
    }

    #[test]
    fn a_bearer_token_wins_over_a_certificate_and_a_malformed_header_is_refused() {
        let config = AuthConfig::parse(Path::new("auth.toml"), FILE).unwrap();
        let both = Credentials {
            bearer: Some(Ok("test".to_owned())),
            certificate: Some(CertIdentities {
                uris: vec![],
                common_names: vec!["nobody".to_owned()],
            }),
            signature: None,
            refused: None,
        };
        assert_eq!(config.authenticate(&both).unwrap().name, "deployer");
        let malformed = Credentials {
            bearer: Some(Err(unauthenticated("bad header"))),
            ..Credentials::default()
        };
        assert_eq!(
            config.authenticate(&malformed).unwrap_err().message,
            "bad header"
        );
        let none = config.authenticate(&Credentials::default()).unwrap_err();
        assert_eq!(none.reason, Reason::UNAUTHENTICATED);
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
}
