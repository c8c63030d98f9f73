//! The server's settings: every flag also reads an `ALIASD_*` environment
//! variable.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::domain::names::is_arn_segment;
use crate::domain::ops::Limits;
use crate::domain::{Error, Reason, Scope};
use crate::store::etcd::MAX_ALIASES_PER_KEY_ON_ETCD;

/// Where the store lives unless --data-dir (or --ephemeral) says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./aliasd-data";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// A sled database in --data-dir: one process.
    Sled,
    /// An etcd cluster (--etcd-endpoints), under --etcd-prefix.
    Etcd,
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on for gRPC: IP:PORT or HOST:PORT (a host name is
    /// resolved once, at start-up; the first address it resolves to is used).
    #[arg(
        long,
        env = "ALIASD_LISTEN",
        default_value = "127.0.0.1:50051",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,

    /// Address for the HTTP compatibility endpoints (AWS KMS JSON 1.1 at
    /// `POST /`, Huawei Cloud KMS v1.0 under `/v1.0/{project_id}/kms/`):
    /// IP:PORT or HOST:PORT. Off unless given. Served with the same TLS
    /// options as gRPC.
    #[arg(long, env = "ALIASD_HTTP_LISTEN", value_parser = parse_listen)]
    pub http_listen: Option<SocketAddr>,

    /// Address for Prometheus metrics (`GET /metrics`, plaintext HTTP):
    /// IP:PORT or HOST:PORT. Off unless given. The exposition names the
    /// accounts with the most aliases (100 at most).
    #[arg(long, env = "ALIASD_METRICS_LISTEN", value_parser = parse_listen)]
    pub metrics_listen: Option<SocketAddr>,

    /// Address for probes, always plaintext even with TLS on the API: gRPC
    /// health (grpc.health.v1) and HTTP `/healthz` (liveness) and `/readyz`
    /// (readiness). IP:PORT or HOST:PORT. Off unless given.
    #[arg(long, env = "ALIASD_HEALTH_LISTEN", value_parser = parse_listen)]
    pub health_listen: Option<SocketAddr>,

    /// Address for the web console (server-rendered HTML for operators:
    /// keys and aliases per account, an alias's history, the live change
    /// stream, the audit log, health; alias changes for principals allowed
    /// them): IP:PORT or HOST:PORT. Off unless given. Served with the same
    /// TLS options as gRPC; with --auth-file, a login with a principal's
    /// bearer token (or a client certificate naming one) is needed.
    #[arg(long, env = "ALIASD_CONSOLE_LISTEN", value_parser = parse_listen)]
    pub console_listen: Option<SocketAddr>,

    #[command(flatten)]
    pub store: StoreFlags,

    /// Memory for sled's page cache, in MiB (1..=65536): what bounds the
    /// server's memory as the store grows. Records not cached are read from
    /// disk.
    #[arg(long, env = "ALIASD_CACHE_MB", default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub cache_mb: u64,

    /// Keep everything in memory: nothing is written to disk, and
    /// everything is gone when the server stops (a throwaway server for test
    /// suites). Cannot be combined with --data-dir.
    #[arg(long, env = "ALIASD_EPHEMERAL", value_parser = boolish())]
    pub ephemeral: bool,

    /// Account every call runs in (until authentication assigns one).
    #[arg(long, env = "ALIASD_ACCOUNT", default_value = "000000000000")]
    pub account: String,

    /// Region, used in ARNs.
    #[arg(long, env = "ALIASD_REGION", default_value = "us-east-1")]
    pub region: String,

    /// ARN partition ("aws" so that existing KMS tooling parses the ARNs).
    #[arg(long, env = "ALIASD_PARTITION", default_value = "aws")]
    pub partition: String,

    /// Record this server's --partition, --region, --account and quotas in
    /// the store, replacing those it was made with (which a server with
    /// other values otherwise refuses to start on). Every other instance
    /// on the store must then be restarted with the new values.
    #[arg(long, env = "ALIASD_UPDATE_STORE_SETTINGS", value_parser = boolish())]
    pub update_store_settings: bool,

    #[command(flatten)]
    pub quotas: QuotaFlags,

    /// Seed file (JSON or TOML) applied idempotently at start-up.
    #[arg(long, env = "ALIASD_SEED")]
    pub seed: Option<PathBuf>,

    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, env = "ALIASD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Seconds in-flight calls get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "ALIASD_DRAIN_TIMEOUT_SECS", default_value_t = 10)]
    pub drain_timeout_secs: u64,

    /// Change-log revisions (events) kept per account: WatchAliases can resume
    /// from any of them (older ones are pruned every 10 s).
    #[arg(long, env = "ALIASD_CHANGE_LOG_RETENTION", default_value_t = 100_000)]
    pub change_log_retention: u64,

    /// Days audit records are kept (0: for ever); older ones are pruned
    /// every 10 s, in bounded transactions. The `--audit-log` file is the
    /// operator's to rotate.
    #[arg(long, env = "ALIASD_AUDIT_RETENTION_DAYS", default_value_t = 90)]
    pub audit_retention_days: u64,

    /// Hours a request_id is remembered (at least 24).
    #[arg(long, env = "ALIASD_REQUEST_ID_TTL_HOURS", default_value_t = 24)]
    pub request_id_ttl_hours: u64,

    /// Seconds a WatchAliases client may leave its buffer (256 events) full
    /// before it is cut off with WATCH_TOO_SLOW.
    #[arg(long, env = "ALIASD_WATCH_SEND_TIMEOUT_SECS", default_value_t = 10)]
    pub watch_send_timeout_secs: u64,

    /// Seconds an idle WatchAliases stream that asked for progress
    /// (`progress_notify`) waits before it sends its progress (the revision
    /// it has seen every change up to), so that proxies that cut off quiet
    /// streams (nginx's grpc_read_timeout, 60 s by default) see traffic
    /// (0: never).
    #[arg(
        long,
        env = "ALIASD_WATCH_PROGRESS_INTERVAL_SECS",
        default_value_t = 30
    )]
    pub watch_progress_interval_secs: u64,

    /// On etcd: seconds between compactions of etcd's history, each to the
    /// revision that was current at the one before (so this much history
    /// stays at least), made by the instance holding the maintenance lease
    /// (0: never; leave it to etcd's --auto-compaction-retention).
    #[arg(
        long,
        env = "ALIASD_ETCD_COMPACTION_INTERVAL_SECS",
        default_value_t = 300
    )]
    pub etcd_compaction_interval_secs: u64,

    /// Auth file (TOML): principals, tokens, certificate identities, policies,
    /// throttle limits. Re-read on SIGHUP. Without it every call is anonymous
    /// with full access to --account.
    #[arg(long, env = "ALIASD_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,

    /// Allow a non-loopback --listen without an auth file (anyone who can
    /// reach the port can then change every alias).
    #[arg(long, env = "ALIASD_ALLOW_ANONYMOUS", value_parser = boolish())]
    pub allow_anonymous: bool,

    /// PEM certificate (chain) of the server: serve TLS.
    #[arg(long, env = "ALIASD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "ALIASD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM CA certificate(s) for client certificates (mutual TLS). A client
    /// certificate is optional; one that is presented must chain to this CA.
    #[arg(long, env = "ALIASD_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Calls per second per account and action (0: unlimited); the auth
    /// file's [throttle] section overrides it.
    #[arg(long, env = "ALIASD_THROTTLE_RATE", default_value_t = 0.0)]
    pub throttle_rate: f64,

    /// Burst size of the throttle's token buckets.
    #[arg(long, env = "ALIASD_THROTTLE_BURST", default_value_t = 100.0)]
    pub throttle_burst: f64,

    /// Also append every audit record to this file, as JSON lines.
    #[arg(long, env = "ALIASD_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,

    /// How many seconds a day of a deletion's pending window lasts. Only
    /// with --ephemeral: a throwaway server can let ScheduleKeyDeletion's
    /// 7 days pass in 7 seconds (`--pending-window-day-secs 1`), so that a
    /// test suite sees a key and its aliases removed. Key states and
    /// `pending_window_in_days` are unchanged; the deletion time is when
    /// the removal really happens.
    #[arg(long, env = "ALIASD_PENDING_WINDOW_DAY_SECS", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub pending_window_day_secs: u64,

    /// Seconds between sweeps that remove keys whose deletion time passed.
    #[arg(long, env = "ALIASD_REAP_INTERVAL_SECS", default_value_t = 5)]
    pub reap_interval_secs: u64,

    /// Most WatchAliases streams open at once, in total; past it a new watch
    /// is RESOURCE_EXHAUSTED (TOO_MANY_WATCHES).
    #[arg(long, env = "ALIASD_MAX_WATCHES", default_value_t = 256)]
    pub max_watches: usize,

    /// Most WatchAliases streams open at once per account.
    #[arg(long, env = "ALIASD_MAX_WATCHES_PER_ACCOUNT", default_value_t = 64)]
    pub max_watches_per_account: usize,

    /// Most connections open at once; past it a new connection is closed at
    /// once (and the log says so).
    #[arg(long, env = "ALIASD_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Most connections open at once from one client address.
    #[arg(long, env = "ALIASD_MAX_CONNECTIONS_PER_IP", default_value_t = 1024)]
    pub max_connections_per_ip: usize,

    /// Seconds a connection may go without any call in progress before it
    /// is closed (clients reconnect on their next call).
    #[arg(
        long,
        env = "ALIASD_IDLE_CONNECTION_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub idle_connection_timeout_secs: u64,

    /// Seconds a new connection has to send its first bytes (the HTTP/2
    /// preface, or a TLS ClientHello) before it is closed.
    #[arg(
        long,
        env = "ALIASD_CONNECTION_PREFACE_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub connection_preface_timeout_secs: u64,

    /// Most concurrent HTTP/2 streams (calls) per connection, advertised as
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    #[arg(long, env = "ALIASD_MAX_CONCURRENT_STREAMS", default_value_t = 200)]
    pub max_concurrent_streams: u32,

    /// Seconds between HTTP/2 PINGs the server sends on an idle gRPC
    /// connection, to find dead peers and keep middleboxes from dropping it
    /// (0: none).
    #[arg(
        long,
        env = "ALIASD_HTTP2_KEEPALIVE_INTERVAL_SECS",
        default_value_t = 30
    )]
    pub http2_keepalive_interval_secs: u64,

    /// Seconds a keepalive PING may go unanswered before the connection is
    /// closed.
    #[arg(
        long,
        env = "ALIASD_HTTP2_KEEPALIVE_TIMEOUT_SECS",
        default_value_t = 20
    )]
    pub http2_keepalive_timeout_secs: u64,

    /// Seconds after which a gRPC connection is asked to go away (GOAWAY),
    /// so that clients reconnect and load spreads over new instances behind
    /// a connection-level balancer (0: connections live on).
    #[arg(long, env = "ALIASD_MAX_CONNECTION_AGE_SECS", default_value_t = 0)]
    pub max_connection_age_secs: u64,

    /// Seconds the calls of a connection past its age get to finish before
    /// it is closed.
    #[arg(
        long,
        env = "ALIASD_MAX_CONNECTION_AGE_GRACE_SECS",
        default_value_t = 30
    )]
    pub max_connection_age_grace_secs: u64,

    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers are believed:
    /// comma-separated addresses or CIDR ranges (e.g. "127.0.0.1,10.0.0.0/8").
    /// A call from one of them is logged and audited with the client
    /// address the header names (the first untrusted hop, from the nearest
    /// one); from any other peer the headers are ignored. None by default.
    #[arg(
        long,
        env = "ALIASD_TRUSTED_PROXIES",
        value_parser = crate::door::origin::parse_trusted_proxies,
        default_value = ""
    )]
    pub trusted_proxies: crate::door::origin::TrustedProxies,

    /// The header --trusted-proxies write the client's address in:
    /// x-forwarded-for (nginx, Envoy, HAProxy, cloud load balancers) or
    /// forwarded (RFC 7239). Only that one is read: a proxy passes the
    /// other through as the client sent it.
    #[arg(
        long,
        env = "ALIASD_TRUSTED_PROXIES_HEADER",
        value_enum,
        default_value = "x-forwarded-for"
    )]
    pub trusted_proxies_header: crate::door::origin::ForwardedHeader,

    /// Most calls in progress at once over all connections (health checks
    /// aside); past it a call is RESOURCE_EXHAUSTED (SERVER_BUSY).
    #[arg(long, env = "ALIASD_MAX_IN_FLIGHT", default_value_t = 4096)]
    pub max_in_flight: usize,

    /// Most calls one principal may have in progress at once, at every door
    /// together (without an auth file: one client address), so that one
    /// caller cannot hold the capacity every other caller needs; past it a
    /// call is RESOURCE_EXHAUSTED (SERVER_BUSY).
    #[arg(
        long,
        env = "ALIASD_MAX_IN_FLIGHT_PER_PRINCIPAL",
        default_value_t = 1024
    )]
    pub max_in_flight_per_principal: usize,

    /// Most HTTP requests in progress at once whose credentials are not
    /// checked yet (a body still arriving, with no known access key id or
    /// token in the headers). They never take the capacity of
    /// authenticated callers.
    #[arg(
        long,
        env = "ALIASD_MAX_UNAUTHENTICATED_IN_FLIGHT",
        default_value_t = 256
    )]
    pub max_unauthenticated_in_flight: usize,

    /// Most such requests from one client address.
    #[arg(
        long,
        env = "ALIASD_MAX_UNAUTHENTICATED_IN_FLIGHT_PER_IP",
        default_value_t = 16
    )]
    pub max_unauthenticated_in_flight_per_ip: usize,

    /// Seconds a request body may take to arrive in full; a call whose body
    /// stalls longer is refused (REQUEST_BODY_TIMEOUT) and its stream freed.
    #[arg(long, env = "ALIASD_REQUEST_BODY_TIMEOUT_SECS", default_value_t = 10)]
    pub request_body_timeout_secs: u64,

    /// Seconds an HTTP/1.1 client has to send a request's headers in full
    /// on the HTTP door (--http-listen), counted from when the server
    /// starts waiting for them: a half-sent header block, or a keep-alive
    /// connection that sends nothing, is closed after it.
    #[arg(long, env = "ALIASD_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub http_header_timeout_secs: u64,
}

/// Where the records are kept: `serve`, `check` and `restore` take the
/// same flags.
#[derive(Debug, Clone, Args)]
pub struct StoreFlags {
    /// Where records are kept: `sled` (a data directory) or `etcd` (an etcd
    /// cluster, --etcd-endpoints).
    #[arg(long, env = "ALIASD_BACKEND", value_enum, default_value = "sled")]
    pub backend: BackendKind,

    /// With --backend etcd: the cluster's client URLs, comma-separated
    /// (http://HOST:PORT).
    #[arg(
        long,
        env = "ALIASD_ETCD_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub etcd_endpoints: Vec<String>,

    /// With --backend etcd: the prefix of every key this store writes, so
    /// that several deployments can share one cluster.
    #[arg(long, env = "ALIASD_ETCD_PREFIX", default_value = "/aliasd/")]
    pub etcd_prefix: String,

    /// With https etcd endpoints: the CA (PEM) that signed etcd's
    /// certificates (default: the system's roots).
    #[arg(long, env = "ALIASD_ETCD_CA")]
    pub etcd_ca: Option<PathBuf>,

    /// With https etcd endpoints: a client certificate (PEM) for an etcd
    /// that requires one (--client-cert-auth).
    #[arg(long, env = "ALIASD_ETCD_CERT", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,

    /// The client certificate's private key (PEM).
    #[arg(long, env = "ALIASD_ETCD_KEY", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,

    /// An etcd user, for an etcd with authentication on (with
    /// ALIASD_ETCD_PASSWORD).
    #[arg(long, env = "ALIASD_ETCD_USER", requires = "etcd_password")]
    pub etcd_user: Option<String>,

    /// The etcd user's password: best given as ALIASD_ETCD_PASSWORD (a
    /// flag shows in the process list).
    #[arg(
        long,
        env = "ALIASD_ETCD_PASSWORD",
        hide_env_values = true,
        requires = "etcd_user"
    )]
    pub etcd_password: Option<String>,

    /// Directory of the sled database: `serve` creates it if missing (mode
    /// 0700), `check` only opens an existing one, `restore` needs a new or
    /// empty one.
    #[arg(long, env = "ALIASD_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,

    /// The root key that wraps every key's material: 32 random bytes,
    /// base64 on one line, readable by its owner only (`aliasd root-key new
    /// FILE` makes one). Default with sled: `<data-dir>.root-key` beside the
    /// data directory, created at first start (never inside it, so never in
    /// a backup). Required with --backend etcd (every instance the same);
    /// --ephemeral uses a random one.
    #[arg(long, env = "ALIASD_ROOT_KEY_FILE")]
    pub root_key_file: Option<PathBuf>,
}

impl StoreFlags {
    /// The root key file in force: the flag, or (sled) the default beside
    /// the data directory; None with etcd and no flag.
    pub fn root_key_path(&self) -> Option<PathBuf> {
        match (&self.root_key_file, self.backend) {
            (Some(path), _) => Some(path.clone()),
            (None, BackendKind::Sled) => Some(default_root_key_path(&self.data_dir)),
            (None, BackendKind::Etcd) => None,
        }
    }
}

/// `<data-dir>.root-key`, beside the data directory.
pub fn default_root_key_path(data_dir: &Path) -> PathBuf {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_DATA_DIR.to_owned());
    data_dir.with_file_name(format!("{name}.root-key"))
}

impl StoreFlags {
    /// The etcd backend's settings (whatever --backend says).
    pub fn etcd(&self) -> crate::store::etcd::EtcdConfig {
        crate::store::etcd::EtcdConfig {
            ca: self.etcd_ca.clone(),
            client_cert: self.etcd_cert.clone().zip(self.etcd_key.clone()),
            user: self.etcd_user.clone().zip(self.etcd_password.clone()),
            ..crate::store::etcd::EtcdConfig::plain(self.etcd_endpoints.clone(), &self.etcd_prefix)
        }
    }

    /// The etcd settings with `--backend etcd`, None with sled.
    pub fn etcd_if_chosen(&self) -> Option<crate::store::etcd::EtcdConfig> {
        (self.backend == BackendKind::Etcd).then(|| self.etcd())
    }
}

/// The quotas the store's invariants hold to: `serve` applies them,
/// `check` and `restore` check against them.
#[derive(Debug, Clone, Copy, Args)]
pub struct QuotaFlags {
    /// Most aliases one key may have.
    #[arg(long, env = "ALIASD_MAX_ALIASES_PER_KEY", default_value_t = Limits::DEFAULT_MAX_ALIASES_PER_KEY)]
    pub max_aliases_per_key: u64,

    /// Most keys one account may have.
    #[arg(long, env = "ALIASD_MAX_KEYS_PER_ACCOUNT", default_value_t = Limits::DEFAULT_MAX_KEYS_PER_ACCOUNT)]
    pub max_keys_per_account: u64,
}

impl QuotaFlags {
    /// The quotas as the domain's limits (days of real length).
    pub fn limits(&self) -> Limits {
        Limits {
            max_aliases_per_key: self.max_aliases_per_key,
            max_keys_per_account: self.max_keys_per_account,
            ..Limits::default()
        }
    }
}

impl ServeConfig {
    /// Defaults as if no flag were given, for tests and embedding.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> ServeConfig {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: ServeConfig,
        }
        let mut config = <Wrapper as clap::Parser>::parse_from(["aliasd"]).config;
        config.store.data_dir = data_dir.into();
        config
    }

    pub fn scope(&self) -> Scope {
        Scope {
            partition: self.partition.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            day_millis: (self.pending_window_day_secs as i64).saturating_mul(1000),
            ..self.quotas.limits()
        }
    }

    /// The engine the flags choose.
    pub fn engine(&self) -> crate::store::Engine {
        use crate::store::Engine;
        match (self.ephemeral, self.store.backend) {
            (true, _) => Engine::Memory,
            (false, BackendKind::Sled) => Engine::Sled {
                dir: self.store.data_dir.clone(),
                cache_bytes: self.cache_mb * 1024 * 1024,
            },
            (false, BackendKind::Etcd) => Engine::Etcd(self.store.etcd()),
        }
    }

    /// The settings the store records at first start, and checks after.
    pub fn store_settings(&self) -> crate::store::StoreSettings {
        crate::store::StoreSettings {
            partition: self.partition.clone(),
            region: self.region.clone(),
            account: self.account.clone(),
            max_aliases_per_key: self.quotas.max_aliases_per_key,
            max_keys_per_account: self.quotas.max_keys_per_account,
        }
    }

    /// The shares of the calls in progress.
    pub fn call_bounds(&self) -> crate::app::CallBounds {
        crate::app::CallBounds {
            per_principal: self.max_in_flight_per_principal,
            unauthenticated: self.max_unauthenticated_in_flight,
            unauthenticated_per_address: self.max_unauthenticated_in_flight_per_ip,
        }
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.drain_timeout_secs)
    }

    /// Refuses settings that would make ARNs unparsable or break a guarantee.
    pub fn validate(&self) -> Result<(), Error> {
        for (flag, value) in [
            ("--account", &self.account),
            ("--region", &self.region),
            ("--partition", &self.partition),
        ] {
            if !is_arn_segment(value) {
                return Err(Error::new(
                    Reason::INTERNAL,
                    format!("{flag} {value:?}: use 1..64 characters of A-Z a-z 0-9 -"),
                ));
            }
        }
        for addr in std::iter::once(self.listen)
            .chain(self.http_listen)
            .chain(self.console_listen)
        {
            if self.auth_file.is_none() && !addr.ip().is_loopback() && !self.allow_anonymous {
                return Err(Error::new(
                    Reason::INTERNAL,
                    format!(
                        "refusing to listen on {addr} without --auth-file: anyone who can reach \
                         it could change every alias. Give --auth-file, listen on a loopback \
                         address, or pass --allow-anonymous to accept the risk."
                    ),
                ));
            }
        }
        // Checked here rather than by clap: clap would also refuse
        // ALIASD_EPHEMERAL=0 next to --data-dir (a false flag from the
        // environment counts as given).
        if self.ephemeral && self.store.data_dir != Path::new(DEFAULT_DATA_DIR) {
            return Err(Error::new(
                Reason::INTERNAL,
                format!(
                    "--ephemeral keeps nothing on disk and cannot be combined with --data-dir \
                     (given {}); drop one of them",
                    self.store.data_dir.display()
                ),
            ));
        }
        if self.store.backend == BackendKind::Etcd {
            if self.ephemeral || self.store.data_dir != Path::new(DEFAULT_DATA_DIR) {
                return Err(Error::new(
                    Reason::INTERNAL,
                    "--backend etcd keeps records in etcd: drop --ephemeral and --data-dir",
                ));
            }
            if self.quotas.max_aliases_per_key > MAX_ALIASES_PER_KEY_ON_ETCD {
                return Err(Error::new(
                    Reason::INTERNAL,
                    format!(
                        "--backend etcd takes --max-aliases-per-key up to \
                         {MAX_ALIASES_PER_KEY_ON_ETCD}: removing a key with all its aliases is \
                         one etcd transaction, which holds at most 128 operations"
                    ),
                ));
            }
            if self.store.etcd_endpoints.is_empty() || self.store.etcd_prefix.is_empty() {
                return Err(Error::new(
                    Reason::INTERNAL,
                    "--backend etcd needs --etcd-endpoints and a non-empty --etcd-prefix",
                ));
            }
            if self.store.root_key_file.is_none() {
                return Err(Error::new(
                    Reason::INTERNAL,
                    "--backend etcd needs --root-key-file: every instance must use the same root \
                     key (make one with `aliasd root-key new FILE`)",
                ));
            }
        }
        if self.pending_window_day_secs != 86_400 && !self.ephemeral {
            return Err(Error::new(
                Reason::INTERNAL,
                "--pending-window-day-secs shortens deletion windows and is only for a throwaway \
                 server: add --ephemeral, or drop it",
            ));
        }
        if self.request_id_ttl_hours < 24 {
            return Err(Error::new(
                Reason::INTERNAL,
                "--request-id-ttl-hours must be at least 24",
            ));
        }
        if self.quotas.max_aliases_per_key == 0
            || self.quotas.max_keys_per_account == 0
            || self.change_log_retention == 0
            || self.max_watches == 0
            || self.max_watches_per_account == 0
            || self.max_connections == 0
            || self.max_connections_per_ip == 0
            || self.idle_connection_timeout_secs == 0
            || self.connection_preface_timeout_secs == 0
            || self.max_concurrent_streams == 0
            || self.max_in_flight == 0
            || self.max_in_flight_per_principal == 0
            || self.max_unauthenticated_in_flight == 0
            || self.max_unauthenticated_in_flight_per_ip == 0
            || self.request_body_timeout_secs == 0
            || self.http_header_timeout_secs == 0
        {
            return Err(Error::new(
                Reason::INTERNAL,
                "--max-aliases-per-key, --max-keys-per-account, --change-log-retention, \
                 --max-watches, --max-watches-per-account, --max-connections, \
                 --max-connections-per-ip, --idle-connection-timeout-secs, \
                 --connection-preface-timeout-secs, --max-concurrent-streams, --max-in-flight, \
                 --max-in-flight-per-principal, --max-unauthenticated-in-flight, \
                 --max-unauthenticated-in-flight-per-ip, --request-body-timeout-secs and \
                 --http-header-timeout-secs must be positive",
            ));
        }
        Ok(())
    }
}

/// Parses `--listen`: an IP:PORT as is, or a HOST:PORT resolved through the
/// system resolver. Several addresses (`localhost` is often `::1` and
/// `127.0.0.1`): the first one the resolver returns, and only that one.
pub fn parse_listen(input: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = input.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = input.rsplit_once(':') else {
        return Err("expected HOST:PORT or IP:PORT, such as 127.0.0.1:50051".into());
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err("expected HOST:PORT or IP:PORT, such as 127.0.0.1:50051".into());
    }
    let mut addrs = input
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host:?}: {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{host:?} resolves to no address"))
}

/// The value parser of every boolean flag: its environment variable takes
/// the usual spellings, in any case: 1/0, true/false, yes/no, on/off (and
/// y/n, t/f).
pub fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

#[cfg(test)]
mod tests {
    use clap::{ArgAction, CommandFactory, Parser};

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        config: ServeConfig,
    }

    #[test]
    fn listen_accepts_a_host_name_and_resolves_it() {
        let config = Wrapper::try_parse_from(["aliasd", "--listen", "localhost:0"])
            .unwrap()
            .config;
        assert!(config.listen.ip().is_loopback(), "{}", config.listen);
        assert_eq!(config.listen.port(), 0);
        let config = Wrapper::try_parse_from(["aliasd", "--listen", "[::1]:7"])
            .unwrap()
            .config;
        assert_eq!(config.listen, "[::1]:7".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn a_non_loopback_http_listener_needs_an_auth_file_too() {
        let parse = |args: &[&str]| {
            let mut all = vec!["aliasd"];
            all.extend_from_slice(args);
            Wrapper::try_parse_from(all).unwrap().config
        };
        let config = parse(&["--http-listen", "0.0.0.0:8080"]);
        let error = config.validate().unwrap_err();
        assert!(error.message.contains("0.0.0.0:8080"), "{}", error.message);
        assert!(parse(&["--http-listen", "127.0.0.1:8080"])
            .validate()
            .is_ok());
        let mut allowed = parse(&["--http-listen", "0.0.0.0:8080", "--allow-anonymous"]);
        assert!(allowed.validate().is_ok());
        allowed.allow_anonymous = false;
        allowed.auth_file = Some("auth.toml".into());
        assert!(allowed.validate().is_ok());
    }

    /// The console changes aliases too: the same rule as the other doors.
    #[test]
    fn a_non_loopback_console_needs_an_auth_file_too() {
        let parse = |args: &[&str]| {
            let mut all = vec!["aliasd"];
            all.extend_from_slice(args);
            Wrapper::try_parse_from(all).unwrap().config
        };
        let error = parse(&["--console-listen", "0.0.0.0:8080"])
            .validate()
            .unwrap_err();
        assert!(error.message.contains("0.0.0.0:8080"), "{}", error.message);
        assert!(parse(&["--console-listen", "127.0.0.1:8080"])
            .validate()
            .is_ok());
        assert!(
            parse(&["--console-listen", "0.0.0.0:8080", "--allow-anonymous"])
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn listen_without_a_port_is_refused_with_the_expected_form() {
        for bad in ["localhost", "localhost:http", ":50051", "localhost:70000"] {
            let error = Wrapper::try_parse_from(["aliasd", "--listen", bad])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"))
                .to_string();
            assert!(
                error.contains("expected HOST:PORT or IP:PORT, such as 127.0.0.1:50051"),
                "{error}"
            );
        }
    }

    /// Every boolean flag (present and future) must read its environment
    /// variable with the boolish parser. The variable's value goes through
    /// the flag's value parser, so that parser is exercised directly, on a
    /// copy of the flag that takes a value.
    #[test]
    fn every_boolean_flags_env_var_takes_the_usual_spellings() {
        let command = Wrapper::command();
        let flags: Vec<&clap::Arg> = command
            .get_arguments()
            .filter(|arg| matches!(arg.get_action(), ArgAction::SetTrue))
            .collect();
        assert!(flags.iter().any(|arg| arg.get_id() == "allow_anonymous"));
        let spellings = [
            ("1", true),
            ("0", false),
            ("true", true),
            ("FALSE", false),
            ("yes", true),
            ("No", false),
            ("on", true),
            ("OFF", false),
            ("True", true),
        ];
        for flag in flags {
            let id = flag.get_id().as_str().to_owned();
            assert!(flag.get_env().is_some(), "--{id} has no ALIASD_* variable");
            let as_option = (*flag).clone().action(ArgAction::Set).num_args(1);
            let probe = clap::Command::new("probe").arg(as_option);
            for (spelling, expected) in spellings {
                let matches = probe
                    .clone()
                    .try_get_matches_from([
                        "probe",
                        &format!("--{}", flag.get_long().unwrap()),
                        spelling,
                    ])
                    .unwrap_or_else(|e| panic!("--{id} refuses {spelling:?}: {e}"));
                assert_eq!(
                    matches.get_one::<bool>(&id),
                    Some(&expected),
                    "--{id} {spelling}"
                );
            }
            let refused = probe.clone().try_get_matches_from([
                "probe",
                &format!("--{}", flag.get_long().unwrap()),
                "maybe",
            ]);
            assert!(refused.is_err(), "--{id} accepts \"maybe\"");
        }
    }
}
