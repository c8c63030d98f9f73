//! The test harness: the real server on an ephemeral loopback port, in a
//! fresh data directory, called through the generated clients.

use std::future::pending;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use aliasd::domain::{Clock, Millis, SystemClock};
use aliasd::pb::alias_service_client::AliasServiceClient;
use aliasd::pb::key_service_client::KeyServiceClient;
use aliasd::pb::{self, KeySpec, KeyUsage};
use aliasd::server::config::ServeConfig;
use aliasd::server::Running;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

pub const ACCOUNT: &str = "000000000000";

/// A clock the test moves by hand.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn at(millis: Millis) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(millis)))
    }
    pub fn advance_days(&self, days: i64) {
        self.0.fetch_add(days * 24 * 3600 * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct TestServer {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub keys: KeyServiceClient<Channel>,
    pub aliases: AliasServiceClient<Channel>,
    pub channel: Channel,
}

pub fn config(dir: &tempfile::TempDir) -> ServeConfig {
    let mut config = ServeConfig::with_data_dir(dir.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.store.root_key_file = Some(root_key_file(dir.path()));
    config
}

/// Gives the store of `to` the root key of the store of `from` (a restore
/// of `from`'s backup, started with the root key it was made under).
pub fn share_root_key(from: &std::path::Path, to: &std::path::Path) {
    let (from, to) = (root_key_file(from), root_key_file(to));
    std::fs::write(&to, std::fs::read(&from).unwrap()).unwrap();
}

/// The root key file of the store a test keeps in `dir`: under the target
/// directory (so nothing is left beside temporary directories), made on
/// first use, the same for every start on `dir`.
pub fn root_key_file(dir: &std::path::Path) -> std::path::PathBuf {
    let keys = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("root-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let name = token_sha256(&dir.display().to_string());
    let path = keys.join(format!("{}.key", &name[..24]));
    if !path.exists() {
        // Two threads may race to make it: the loser's error is harmless.
        let _ = aliasd::crypto::RootKey::create(&path);
    }
    path
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}, Arc::new(SystemClock)).await
    }

    /// Starts with the HTTP compatibility endpoints on an ephemeral port
    /// too (and a tweaked configuration).
    pub async fn start_http(tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        Self::start_configured(|config| {
            config.http_listen = Some("127.0.0.1:0".parse().unwrap());
            tweak(config)
        })
        .await
    }

    /// The base URL of the HTTP endpoints (`http://127.0.0.1:PORT`).
    pub fn http_url(&self) -> String {
        let addr = self
            .running
            .as_ref()
            .and_then(|r| r.http_addr)
            .expect("the server was started with --http-listen");
        format!("http://{addr}")
    }

    /// Starts with a tweaked configuration (and the system clock).
    pub async fn start_configured(tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        Self::start_with(tweak, Arc::new(SystemClock)).await
    }

    /// Starts with a tweaked configuration and a chosen clock.
    pub async fn start_with(
        tweak: impl FnOnce(&mut ServeConfig),
        clock: Arc<dyn Clock>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, tweak, clock).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut ServeConfig),
        clock: Arc<dyn Clock>,
    ) -> TestServer {
        let mut config = config(&dir);
        tweak(&mut config);
        on_etcd_if_asked(&mut config, &dir);
        let running = aliasd::server::start(config, clock, pending())
            .await
            .expect("server starts");
        let channel = Channel::from_shared(format!("http://{}", running.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects");
        TestServer {
            keys: KeyServiceClient::new(channel.clone()),
            aliases: AliasServiceClient::new(channel.clone()),
            channel,
            running: Some(running),
            dir,
        }
    }

    /// Stops the server gracefully and returns its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.running
            .take()
            .unwrap()
            .stop()
            .await
            .expect("clean stop");
        self.dir
    }

    pub async fn create_key(&self) -> pb::Key {
        self.create_key_of(KeySpec::SymmetricDefault, KeyUsage::Unspecified)
            .await
    }

    pub async fn create_key_of(&self, spec: KeySpec, usage: KeyUsage) -> pb::Key {
        self.keys
            .clone()
            .create_key(pb::CreateKeyRequest {
                key_spec: spec as i32,
                key_usage: usage as i32,
                ..Default::default()
            })
            .await
            .expect("CreateKey")
            .into_inner()
            .key
            .unwrap()
    }

    pub async fn create_alias(&self, name: &str, key_id: &str) -> Result<pb::Alias, Status> {
        self.aliases
            .clone()
            .create_alias(pb::CreateAliasRequest {
                alias_name: name.into(),
                target_key_id: key_id.into(),
                request_id: String::new(),
            })
            .await
            .map(|r| r.into_inner().alias.unwrap())
    }

    pub async fn get_alias(&self, name: &str) -> Result<pb::Alias, Status> {
        self.aliases
            .clone()
            .get_alias(pb::GetAliasRequest {
                alias_name: name.into(),
            })
            .await
            .map(|r| r.into_inner().alias.unwrap())
    }

    /// UpdateAlias with no etag or request_id.
    pub async fn update_alias(&self, name: &str, target: &str) -> Result<pb::Alias, Status> {
        self.aliases
            .clone()
            .update_alias(pb::UpdateAliasRequest {
                alias_name: name.into(),
                target_key_id: target.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().alias.unwrap())
    }

    /// RenameAlias with no etag or request_id.
    pub async fn rename_alias(&self, from: &str, to: &str) -> Result<pb::Alias, Status> {
        self.aliases
            .clone()
            .rename_alias(pb::RenameAliasRequest {
                alias_name: from.into(),
                new_alias_name: to.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().alias.unwrap())
    }

    /// DeleteAlias with no etag or request_id.
    pub async fn delete_alias(&self, name: &str) -> Result<(), Status> {
        self.aliases
            .clone()
            .delete_alias(pb::DeleteAliasRequest {
                alias_name: name.into(),
                ..Default::default()
            })
            .await
            .map(drop)
    }

    pub async fn enable_key(&self, key_ref: &str) -> Result<pb::Key, Status> {
        self.keys
            .clone()
            .enable_key(pb::EnableKeyRequest {
                key_id: key_ref.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().key.unwrap())
    }

    pub async fn disable_key(&self, key_ref: &str) -> Result<pb::Key, Status> {
        self.keys
            .clone()
            .disable_key(pb::DisableKeyRequest {
                key_id: key_ref.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().key.unwrap())
    }

    /// ScheduleKeyDeletion with an explicit pending window.
    pub async fn schedule_deletion(&self, key_ref: &str, days: i32) -> Result<pb::Key, Status> {
        self.keys
            .clone()
            .schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
                key_id: key_ref.into(),
                pending_window_in_days: days,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().key.unwrap())
    }

    pub async fn cancel_deletion(&self, key_ref: &str) -> Result<pb::Key, Status> {
        self.keys
            .clone()
            .cancel_key_deletion(pb::CancelKeyDeletionRequest {
                key_id: key_ref.into(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().key.unwrap())
    }

    /// The first page of ListKeys at the default page size.
    pub async fn list_keys(&self) -> Vec<pb::Key> {
        self.keys
            .clone()
            .list_keys(pb::ListKeysRequest::default())
            .await
            .expect("ListKeys")
            .into_inner()
            .keys
    }

    pub async fn describe(&self, key_ref: &str) -> Result<pb::Key, Status> {
        self.keys
            .clone()
            .describe_key(pb::DescribeKeyRequest {
                key_id: key_ref.into(),
            })
            .await
            .map(|r| r.into_inner().key.unwrap())
    }

    /// Every alias (optionally of one key), walking all pages.
    pub async fn all_aliases(&self, key_id: &str) -> Vec<pb::Alias> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .aliases
                .clone()
                .list_aliases(pb::ListAliasesRequest {
                    key_id: key_id.into(),
                    page_size: 100,
                    page_token: token,
                })
                .await
                .expect("ListAliases")
                .into_inner();
            out.extend(page.aliases);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }

    pub async fn alias_names(&self, key_id: &str) -> Vec<String> {
        self.all_aliases(key_id)
            .await
            .into_iter()
            .map(|a| a.alias_name)
            .collect()
    }
}

/// Asserts an error's gRPC code, its ErrorInfo (domain, reason, a
/// kms_exception) and, for INVALID_ARGUMENT, a BadRequest violation.
#[track_caller]
pub fn assert_error<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    reason: &str,
) -> Status {
    let status = match result {
        Ok(value) => panic!("expected {code:?} {reason}, got Ok({value:?})"),
        Err(status) => status,
    };
    assert_eq!(status.code(), code, "code of {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "reason of {status:?}");
    assert_eq!(info.domain, "aliasd");
    assert!(
        info.metadata
            .get("kms_exception")
            .is_some_and(|e| e.ends_with("Exception")),
        "kms_exception of {status:?}"
    );
    if code == Code::InvalidArgument {
        let bad = status
            .get_details_bad_request()
            .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
        assert!(!bad.field_violations.is_empty());
    }
    assert!(!status.message().is_empty());
    status
}

/// The field named by an INVALID_ARGUMENT's BadRequest.
pub fn bad_field(status: &Status) -> String {
    status.get_details_bad_request().unwrap().field_violations[0]
        .field
        .clone()
}

pub fn kms_exception(status: &Status) -> String {
    status.get_details_error_info().unwrap().metadata["kms_exception"].clone()
}

pub fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// SHA-256 (hex) of a bearer token, as the auth file keeps it.
pub fn token_sha256(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request carrying `authorization: Bearer TOKEN`.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// An HTTP/1.1 answer, as [`http_exchange`] reads it.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpReply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// One HTTP/1.1 request over `stream` (plain TCP or TLS), written byte for
/// byte as a client would, with `Connection: close`; reads the whole answer.
pub async fn http_exchange<S>(
    mut stream: S,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    // A server may close without a TLS close_notify: keep what arrived.
    let _ = stream.read_to_end(&mut raw).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    HttpReply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// [`http_exchange`] over a new plaintext connection to `server`'s HTTP port.
pub async fn http_call(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let addr = server
        .running
        .as_ref()
        .and_then(|r| r.http_addr)
        .expect("the server was started with --http-listen");
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    http_exchange(stream, method, path, headers, body).await
}

/// Writes a file that holds secrets (an auth file with access keys), readable
/// by its owner only, as the server requires.
pub fn write_secret_file(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Whether this run keeps the in-process servers' stores on etcd
/// (`ALIASD_TEST_BACKEND=etcd`; `etcd::the_integration_suite_passes_on_etcd`
/// runs the suite so).
pub fn on_etcd() -> bool {
    std::env::var("ALIASD_TEST_BACKEND").as_deref() == Ok("etcd")
}

/// The etcd that the in-process servers share when [`on_etcd`].
fn shared_etcd() -> &'static crate::etcd_support::EtcdServer {
    static ETCD: std::sync::OnceLock<crate::etcd_support::EtcdServer> = std::sync::OnceLock::new();
    ETCD.get_or_init(|| {
        // Started off the async threads (it waits for etcd to answer).
        std::thread::scope(|s| {
            s.spawn(|| {
                crate::etcd_support::EtcdServer::start(std::path::Path::new(env!(
                    "CARGO_TARGET_TMPDIR"
                )))
            })
            .join()
            .unwrap()
        })
    })
}

/// The etcd prefix that stands for the data directory `dir` when
/// [`on_etcd`] (the same again for the same directory, as a restart needs).
fn etcd_prefix(dir: &std::path::Path) -> String {
    format!("/{}/", dir.display())
}

/// With ALIASD_TEST_BACKEND=etcd, a server that would use sled in `dir`
/// uses one shared etcd instead, under a prefix of its own.
fn on_etcd_if_asked(config: &mut ServeConfig, dir: &tempfile::TempDir) {
    if !on_etcd()
        || config.ephemeral
        || config.store.backend == aliasd::server::config::BackendKind::Etcd
        || config.store.data_dir != dir.path()
    {
        return;
    }
    config.store.backend = aliasd::server::config::BackendKind::Etcd;
    config.store.etcd_endpoints = vec![shared_etcd().endpoint.clone()];
    config.store.etcd_prefix = etcd_prefix(dir.path());
    config.store.data_dir = aliasd::server::config::DEFAULT_DATA_DIR.into();
}

/// Opens the store a test server kept for `dir` (its sled data directory,
/// or its etcd prefix when [`on_etcd`]), as `aliasd check` would.
pub fn open_store(dir: &std::path::Path) -> std::sync::Arc<aliasd::store::Store> {
    if on_etcd() {
        aliasd::store::Store::open(&aliasd::store::Engine::Etcd(
            aliasd::store::etcd::EtcdConfig::plain(
                vec![shared_etcd().endpoint.clone()],
                &etcd_prefix(dir),
            ),
        ))
        .unwrap()
    } else {
        aliasd::store::Store::open(&aliasd::store::Engine::sled(dir)).unwrap()
    }
}

/// The `aliasd check`/`restore` arguments that name the store of `dir`
/// (see [`open_store`]).
pub fn store_args(dir: &std::path::Path) -> Vec<String> {
    if on_etcd() {
        vec![
            "--backend".into(),
            "etcd".into(),
            "--etcd-endpoints".into(),
            shared_etcd().endpoint.clone(),
            "--etcd-prefix".into(),
            etcd_prefix(dir),
        ]
    } else {
        vec!["--data-dir".into(), dir.display().to_string()]
    }
    .into_iter()
    .chain([
        "--root-key-file".into(),
        root_key_file(dir).display().to_string(),
    ])
    .collect()
}

/// A test certificate authority (rcgen), for TLS tests.
pub struct Ca {
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

pub fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(params, key),
    }
}

/// A certificate and key (PEM) signed by `ca`.
pub fn leaf(ca: &Ca, common_name: &str, sans: Vec<SanType>) -> (String, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.subject_alt_names = sans;
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Runs the `aliasd` binary with `args` and `env`, none of the caller's
/// ALIASD_* settings leaking in, and waits for it.
pub async fn run_aliasd(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_aliasd"));
    for leaking in [
        "ALIASD_TOKEN",
        "ALIASD_OUTPUT",
        "ALIASD_ENDPOINT",
        "ALIASD_DATA_DIR",
        "ALIASD_BACKEND",
        "ALIASD_PROFILE",
        "XDG_CONFIG_HOME",
    ] {
        command.env_remove(leaking);
    }
    command
        // Not the config file of whoever runs the tests.
        .env("ALIASD_CONFIG", "/nonexistent/aliasd-tests/config.toml")
        .args(args)
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}
