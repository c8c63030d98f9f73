//! Assembly: the store, the services, reflection, health, the request layer,
//! background maintenance, and graceful shutdown with a bounded drain.

mod access;
pub mod config;
mod listeners;
mod new_dir;
mod root_key;
pub mod tls;

#[cfg(unix)]
use self::access::reload_on_sighup;
use self::access::Access;
use self::listeners::{Addresses, Listeners};
use self::new_dir::NewDataDir;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify};
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::app::maintenance::Maintenance;
use crate::app::App;
use crate::domain::paging::PageTokens;
use crate::domain::{Clock, Error};
use crate::grpc::auth_layer::AuthLayer;
use crate::grpc::codec::MAX_MESSAGE_BYTES;
use crate::grpc::layers::RequestContextLayer;
use crate::grpc::{AdminApi, AliasApi, AuditApi, CryptoApi, DiagnosticsApi, KeyApi};
use crate::operator::metrics::{Metrics, Sources};
use crate::pb::admin_service_server::AdminServiceServer;
use crate::pb::alias_service_server::AliasServiceServer;
use crate::pb::audit_service_server::AuditServiceServer;
use crate::pb::crypto_service_server::CryptoServiceServer;
use crate::pb::diagnostics_service_server::DiagnosticsServiceServer;
use crate::pb::key_service_server::KeyServiceServer;
use crate::server::config::{BackendKind, ServeConfig};
use crate::store::Store;

/// The gRPC service names, as health checks and reflection know them.
pub const SERVICE_NAMES: [&str; 5] = [
    "aliasd.v1.KeyService",
    "aliasd.v1.CryptoService",
    "aliasd.v1.AliasService",
    "aliasd.v1.AuditService",
    "aliasd.v1.AdminService",
];

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Open(#[from] crate::store::OpenError),
    #[error("seed: {0}")]
    Seed(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{0}")]
    Other(String),
    /// The server ran and stopped, but its store had failed (see
    /// `store/failure.rs`): acknowledged writes are safe, others may not be.
    #[error("stopped after the store failed: {0}")]
    StoreFailed(String),
}

impl ServeError {
    /// The process exit code for this error (0 is a clean shutdown): 1 when
    /// the server could not start (or failed otherwise), 3 when it stopped
    /// after its store failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::StoreFailed(_) => 3,
            _ => 1,
        }
    }
}

/// A started server.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// The address of the HTTP compatibility endpoints, with --http-listen.
    pub http_addr: Option<SocketAddr>,
    /// The address of the web console, with --console-listen.
    pub console_addr: Option<SocketAddr>,
    /// The address of `GET /metrics`, with --metrics-listen.
    pub metrics_addr: Option<SocketAddr>,
    /// The address of the probes, with --health-listen.
    pub health_addr: Option<SocketAddr>,
    /// Flushes run and writers served (for benchmarks).
    pub flush_stats: Arc<crate::store::FlushStats>,
    /// Sweeps for keys past their deletion time done so far (tests wait
    /// for the next one instead of for a while).
    pub sweeps: watch::Receiver<u64>,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl Running {
    /// Starts a graceful shutdown and waits for it to finish.
    pub async fn stop(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.wait().await
    }

    /// Waits until the server has stopped.
    pub async fn wait(&mut self) -> Result<(), ServeError> {
        (&mut self.done)
            .await
            .map_err(|e| ServeError::Other(format!("server task failed: {e}")))?
    }
}

/// Opens the store, applies the seed file, binds, and starts serving. The
/// server runs until [`Running::stop`] or until `shutdown` completes.
///
/// Everything that can fail without the store (flags, the seed file's
/// syntax, the auth file, TLS files, the audit log file, binding the
/// listeners) is done before the store is opened; if start-up fails after
/// it made a new data directory, the directory is removed, so a failed
/// start leaves nothing behind.
pub async fn start(
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    let engine = config.engine();
    start_opening(config, clock, shutdown, Opening::Engine(engine)).await
}

/// [`start`] on a store over `backend` instead of the one the flags name
/// (tests inject a backend whose syncs fail, say).
pub async fn start_on(
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    backend: Arc<dyn crate::store::backend::Backend>,
) -> Result<Running, ServeError> {
    start_opening(config, clock, shutdown, Opening::Backend(backend)).await
}

/// What start-up opens its store from.
enum Opening {
    Engine(crate::store::Engine),
    Backend(Arc<dyn crate::store::backend::Backend>),
}

async fn start_opening(
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    opening: Opening,
) -> Result<Running, ServeError> {
    config
        .validate()
        .map_err(|e| ServeError::Config(e.message))?;
    let new_dir = (!config.ephemeral && config.store.backend == BackendKind::Sled)
        .then(|| NewDataDir::before(&config.store.data_dir))
        .flatten();
    let started = start_checked(config, clock, shutdown, opening).await;
    if let (Err(_), Some(new_dir)) = (&started, new_dir) {
        new_dir.remove();
    }
    started
}

/// [`start`] once the flags are valid.
async fn start_checked(
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    opening: Opening,
) -> Result<Running, ServeError> {
    let seed = match &config.seed {
        Some(path) => Some(crate::app::seed::parse(path).map_err(|e| ServeError::Seed(e.message))?),
        None => None,
    };
    let access = Access::load(&config)?;
    let (listeners, addresses) = Listeners::bind_all(&config).await?;
    let store = open_store(&config, opening).await?;
    let materials = Arc::new(crate::crypto::MaterialCache::new(
        root_key::resolve(&config, &store).await?,
    ));
    if let (Some(seed), Some(path)) = (&seed, &config.seed) {
        let outcome =
            crate::app::seed::apply(&store, seed, &config.scope(), config.limits(), clock.now())
                .await
                .map_err(|e| ServeError::Seed(e.message))?;
        tracing::info!(
            path = %path.display(),
            keys_created = outcome.keys_created,
            aliases_created = outcome.aliases_created,
            "seed applied"
        );
    }
    let given = crate::app::materials::give_missing_material(
        &store,
        &materials,
        &config.scope(),
        config.limits(),
        clock.now(),
    )
    .await
    .map_err(|e| ServeError::Other(format!("giving keys their material: {}", e.message)))?;
    if given > 0 {
        tracing::info!(
            keys = given,
            "gave key material to keys stored before keys had it"
        );
    }
    announce(&config, &access, &addresses);

    let flush_stats = store.flush_stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stopped => {}
        }
    };
    let (sweeps, swept) = watch::channel(0);
    let done = tokio::spawn(serve(
        config, store, materials, clock, access, listeners, signal, sweeps,
    ));
    Ok(Running {
        sweeps: swept,
        addr: addresses.grpc,
        http_addr: addresses.http,
        console_addr: addresses.console,
        metrics_addr: addresses.metrics,
        health_addr: addresses.health,
        flush_stats,
        stop: Some(stop),
        done,
    })
}

/// Opens the store (the `--audit-log` file first, so that a bad path
/// creates no store), checks the settings it keeps, and mirrors audit
/// records to the file.
async fn open_store(config: &ServeConfig, opening: Opening) -> Result<Arc<Store>, ServeError> {
    let audit_log = match &config.audit_log {
        Some(path) => {
            Some(crate::store::open_audit_log(path).map_err(|e| ServeError::Config(e.message))?)
        }
        None => None,
    };
    let store = tokio::task::spawn_blocking(move || match opening {
        Opening::Engine(engine) => Store::open(&engine),
        Opening::Backend(backend) => {
            Store::with_backend(backend).map_err(|e| crate::store::OpenError::Prepare(e.message))
        }
    })
    .await
    .map_err(|e| ServeError::Other(format!("open task failed: {e}")))??;
    store
        .settle_settings(&config.store_settings(), config.update_store_settings)
        .map_err(|e| ServeError::Config(e.message))?;
    if let Some(file) = audit_log {
        store.mirror_audit_into(file);
    }
    Ok(store)
}

/// The start-up lines: where each listener is, and one line that says what
/// is running, where, and how it is guarded.
fn announce(config: &ServeConfig, access: &Access, addresses: &Addresses) {
    if let Some(metrics_addr) = addresses.metrics {
        tracing::info!("metrics on http://{metrics_addr}/metrics");
    }
    if let Some(health_addr) = addresses.health {
        tracing::info!(
            "probes on {health_addr} (plaintext): gRPC health, http://{health_addr}/healthz, \
             http://{health_addr}/readyz"
        );
    }
    if let Some(http_addr) = addresses.http {
        let scheme = if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(
            "HTTP listening on {http_addr}: AWS KMS JSON at {scheme}://{http_addr}/, \
             Huawei Cloud KMS at {scheme}://{http_addr}/v1.0/{{project_id}}/kms/"
        );
    }
    if let Some(console_addr) = addresses.console {
        let scheme = if config.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!("console on {scheme}://{console_addr}/");
    }
    let kept = match (config.ephemeral, config.store.backend) {
        (true, _) => "in memory only: --ephemeral keeps nothing on disk".to_owned(),
        (false, BackendKind::Sled) => {
            format!("sled, data directory {}", config.store.data_dir.display())
        }
        (false, BackendKind::Etcd) => format!(
            "etcd at {}, prefix {}",
            config.store.etcd_endpoints.join(","),
            config.store.etcd_prefix
        ),
    };
    let tls = match (&config.tls_cert, &config.tls_client_ca) {
        (None, _) => "plaintext",
        (Some(_), None) => "TLS",
        (Some(_), Some(_)) => "TLS, client certificates checked against --tls-client-ca",
    };
    let auth = match &access.authenticator {
        Some(authenticator) => format!(
            "{} from {}",
            crate::domain::names::counted(
                authenticator.current().principal_names().len() as u64,
                "principal",
                "principals"
            ),
            config
                .auth_file
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        ),
        None => format!("none: every call runs in account {}", config.account),
    };
    let optional = |addr: Option<SocketAddr>| addr.map_or("off".to_owned(), |a| a.to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "listening on {} (gRPC, {tls}); aliasd {}; store: {kept}; auth: {auth}; \
         http: {}; console: {}; metrics: {}; health: {}",
        addresses.grpc,
        env!("CARGO_PKG_VERSION"),
        optional(addresses.http),
        optional(addresses.console),
        optional(addresses.metrics),
        optional(addresses.health),
    );
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    config: ServeConfig,
    store: Arc<Store>,
    materials: Arc<crate::crypto::MaterialCache>,
    clock: Arc<dyn Clock>,
    access: Access,
    listeners: Listeners,
    signal: impl Future<Output = ()> + Send + 'static,
    sweeps: watch::Sender<u64>,
) -> Result<(), ServeError> {
    let (shutting_down, shutdown_seen) = watch::channel(false);
    let metrics = Arc::new(Metrics::new());
    metrics.observe_store(&store.flush_stats());
    #[cfg(unix)]
    tokio::spawn(reload_on_sighup(
        access.authenticator.clone(),
        listeners.hangups,
        metrics.clone(),
        shutdown_seen.clone(),
    ));
    let (crypto_audit, audit_writer) = crate::app::audit_batch::AuditBatcher::start(store.clone());
    let app = build_app(
        &config,
        &store,
        &clock,
        access.authenticator.clone(),
        access.admission,
        shutdown_seen.clone(),
        (materials.clone(), crypto_audit),
    );
    let auth_layer = AuthLayer { app: app.clone() };
    // The operators' listeners serve until the API has drained.
    let (drained, drained_seen) = watch::channel(false);
    let until_drained = || {
        let mut drained = drained_seen.clone();
        async move {
            let _ = drained.wait_for(|done| *done).await;
        }
    };
    let metrics_task = listeners.metrics.map(|listener| {
        let sources = Arc::new(Sources {
            store: store.clone(),
            data_dir: (!config.ephemeral && config.store.backend == BackendKind::Sled)
                .then(|| config.store.data_dir.clone()),
            watches: app.watch_slots.clone(),
            connections: vec![
                (crate::door::Door::Grpc, listeners.open.grpc.clone()),
                (crate::door::Door::Http, listeners.open.http.clone()),
                (crate::door::Door::Console, listeners.open.console.clone()),
            ],
        });
        tokio::spawn(crate::operator::probes::serve(
            listener,
            crate::operator::probes::metrics_router(metrics.clone(), sources),
            until_drained(),
        ))
    });
    let trusted_proxies = Arc::new(
        config
            .trusted_proxies
            .clone()
            .reading(config.trusted_proxies_header),
    );
    let http = listeners.http.map(|incoming| {
        let mut shutdown = shutdown_seen.clone();
        tokio::spawn(crate::http::serve(
            app.clone(),
            incoming,
            crate::http::HttpSettings {
                body_timeout: Duration::from_secs(config.request_body_timeout_secs),
                header_timeout: Duration::from_secs(config.http_header_timeout_secs),
                metrics: metrics.clone(),
                max_in_flight: config.max_in_flight,
                tls: access.http_tls.clone(),
                drain: config.drain_timeout(),
                trusted_proxies: trusted_proxies.clone(),
            },
            async move {
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            },
        ))
    });
    let console = listeners.console.map(|incoming| {
        let mut shutdown = shutdown_seen.clone();
        tokio::spawn(crate::console::serve(
            app.clone(),
            incoming,
            crate::console::ConsoleSettings {
                tls: access.http_tls.clone(),
                header_timeout: Duration::from_secs(config.http_header_timeout_secs),
                drain: config.drain_timeout(),
                trusted_proxies: trusted_proxies.clone(),
                metrics: metrics.clone(),
            },
            async move {
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            },
        ))
    });

    let health = tonic_health::server::HealthReporter::new();
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        crate::grpc::health::ShutdownAwareHealth::new(
            tonic_health::server::HealthService::from_health_reporter(health.clone()),
            shutdown_seen.clone(),
        ),
    );
    health.set_service_status("", ServingStatus::Serving).await;
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, ServingStatus::Serving)
            .await;
    }
    tokio::spawn(not_serving_once_the_store_fails(
        store.failures(),
        health.clone(),
    ));
    let health_task = listeners.health.map(|listener| {
        let grpc_health =
            tonic::service::Routes::new(tonic_health::pb::health_server::HealthServer::new(
                crate::grpc::health::ShutdownAwareHealth::new(
                    tonic_health::server::HealthService::from_health_reporter(health.clone()),
                    shutdown_seen.clone(),
                ),
            ))
            .prepare()
            .into_axum_router();
        let probes = Arc::new(crate::operator::probes::Probes {
            store: store.clone(),
            shutting_down: shutdown_seen.clone(),
        });
        tokio::spawn(crate::operator::probes::serve(
            listener,
            crate::operator::probes::health_router(grpc_health, probes),
            until_drained(),
        ))
    });

    let maintenance = start_maintenance(&config, &store, &materials, clock, shutdown_seen, sweeps);

    // Shutdown: health turns NOT_SERVING and watches end at once; in-flight
    // calls then get `drain` to finish.
    let drain_started = Arc::new(Notify::new());
    let drain_signal = drain_started.clone();
    let health_on_shutdown = health.clone();
    let signal = async move {
        signal.await;
        tracing::info!("shutting down: no new connections; draining in-flight calls");
        health_on_shutdown
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for name in SERVICE_NAMES {
            health_on_shutdown
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        let _ = shutting_down.send(true);
        drain_signal.notify_one();
    };

    let mut builder = Server::builder();
    if let Some(tls) = access.tls {
        builder = builder.tls_config(tls)?;
    }
    if config.max_connection_age_secs > 0 {
        builder = builder
            .max_connection_age(Duration::from_secs(config.max_connection_age_secs))
            .max_connection_age_grace(Duration::from_secs(config.max_connection_age_grace_secs));
    }
    let keepalive = (config.http2_keepalive_interval_secs > 0)
        .then(|| Duration::from_secs(config.http2_keepalive_interval_secs));
    let server = builder
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_secs(
            config.http2_keepalive_timeout_secs.max(1),
        )))
        .max_concurrent_streams(config.max_concurrent_streams)
        .layer(RequestContextLayer::new(
            MAX_MESSAGE_BYTES,
            Duration::from_secs(config.request_body_timeout_secs),
            config.max_in_flight,
            metrics,
            trusted_proxies,
        ))
        .layer(auth_layer)
        .add_routes(api_routes(&app, health_service, server_info(&config))?)
        .serve_with_incoming_shutdown(listeners.grpc, signal);
    // The routes hold the app from here on: this handle on the store must
    // not outlive them (a stop waits for the store to be let go of).
    drop(app);

    let drain = config.drain_timeout();
    let result = tokio::select! {
        result = server => result.map_err(ServeError::from),
        _ = async { drain_started.notified().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(?drain, "drain timeout passed; closing the remaining connections");
            Ok(())
        }
    };
    for door in [http, console].into_iter().flatten() {
        let _ = door.await;
    }
    let _ = drained.send(true);
    for task in [metrics_task, health_task].into_iter().flatten() {
        let _ = task.await;
    }
    maintenance.abort();
    let _ = maintenance.await;
    // Every handle on the batch writer has gone with the app: it writes
    // what it holds, then ends.
    if tokio::time::timeout(Duration::from_secs(10), audit_writer)
        .await
        .is_err()
    {
        tracing::warn!("the audit records of the last crypto calls were not all written in 10 s");
    }
    wind_down(store).await?;
    result
}

/// The application every door calls.
fn build_app(
    config: &ServeConfig,
    store: &Arc<Store>,
    clock: &Arc<dyn Clock>,
    authenticator: Option<Arc<crate::app::admission::auth::Authenticator>>,
    admission: crate::app::Admission,
    shutdown: watch::Receiver<bool>,
    (materials, crypto_audit): (
        Arc<crate::crypto::MaterialCache>,
        crate::app::audit_batch::AuditBatcher,
    ),
) -> Arc<App> {
    Arc::new(App {
        store: store.clone(),
        scope: config.scope(),
        clock: clock.clone(),
        limits: config.limits(),
        tokens: PageTokens::new(store.token_secret_bytes()),
        shutdown,
        watch_send_timeout: Duration::from_secs(config.watch_send_timeout_secs),
        watch_progress_interval: (config.watch_progress_interval_secs > 0)
            .then(|| Duration::from_secs(config.watch_progress_interval_secs)),
        authenticator,
        watch_slots: crate::app::admission::watches::WatchSlots::new(
            config.max_watches,
            config.max_watches_per_account,
        ),
        admission,
        materials,
        crypto_audit,
    })
}

/// What DiagnosticsService.GetServerInfo answers for a server run with
/// `config`.
fn server_info(config: &ServeConfig) -> crate::pb::GetServerInfoResponse {
    let backend = match (config.ephemeral, config.store.backend) {
        (true, _) => "memory",
        (false, BackendKind::Sled) => "sled",
        (false, BackendKind::Etcd) => "etcd",
    };
    // Sorted, as the proto promises.
    let on = [
        ("audit-log", config.audit_log.is_some()),
        ("auth", config.auth_file.is_some()),
        ("aws", config.http_listen.is_some()),
        ("console", config.console_listen.is_some()),
        ("huawei", config.http_listen.is_some()),
        ("metrics", config.metrics_listen.is_some()),
        ("mtls", config.tls_client_ca.is_some()),
        ("tls", config.tls_cert.is_some()),
        ("trusted-proxies", !config.trusted_proxies.is_empty()),
    ];
    crate::pb::GetServerInfoResponse {
        version: crate::VERSION.to_owned(),
        commit: crate::COMMIT.to_owned(),
        backend: backend.to_owned(),
        region: config.region.clone(),
        partition: config.partition.clone(),
        features: on
            .into_iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| name.to_owned())
            .collect(),
    }
}

/// Every gRPC service of the API port: health, reflection (v1 and
/// v1alpha) and aliasd's own, compressed as clients ask.
fn api_routes(
    app: &Arc<App>,
    health_service: tonic_health::pb::health_server::HealthServer<
        crate::grpc::health::ShutdownAwareHealth,
    >,
    info: crate::pb::GetServerInfoResponse,
) -> Result<tonic::service::Routes, ServeError> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| ServeError::Other(format!("reflection: {e}")))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServeError::Other(format!("reflection: {e}")))?;
    Ok(tonic::service::Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            KeyServiceServer::new(KeyApi::new(app.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            CryptoServiceServer::new(CryptoApi::new(app.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            AliasServiceServer::new(AliasApi::new(app.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(DiagnosticsServiceServer::new(DiagnosticsApi { info }))
        .add_service(
            AdminServiceServer::new(AdminApi::new(app.clone()))
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd),
        )
        .add_service(
            AuditServiceServer::new(AuditApi::new(app.clone()))
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Zstd)
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        ))
}

/// Background maintenance until `shutdown`: removing keys past their
/// deletion time, pruning.
fn start_maintenance(
    config: &ServeConfig,
    store: &Arc<Store>,
    materials: &Arc<crate::crypto::MaterialCache>,
    clock: Arc<dyn Clock>,
    shutdown: watch::Receiver<bool>,
    sweeps: watch::Sender<u64>,
) -> tokio::task::JoinHandle<()> {
    let maintenance = Maintenance {
        store: store.clone(),
        scope: config.scope(),
        clock,
        limits: config.limits(),
        change_log_retention: config.change_log_retention,
        request_id_ttl: Duration::from_secs(config.request_id_ttl_hours * 3600),
        audit_retention: (config.audit_retention_days > 0)
            .then(|| Duration::from_secs(config.audit_retention_days * 86_400)),
        sweeps,
        materials: materials.clone(),
        compaction_interval: (config.etcd_compaction_interval_secs > 0)
            .then(|| Duration::from_secs(config.etcd_compaction_interval_secs)),
    };
    tokio::spawn(maintenance.run(
        Duration::from_secs(config.reap_interval_secs.max(1)),
        shutdown,
    ))
}

/// The last of a stop: the store flushed and released; a store that had
/// failed makes the stop an error (exit code 3).
async fn wind_down(store: Arc<Store>) -> Result<(), ServeError> {
    let flush_store = store.clone();
    let flushed = tokio::task::spawn_blocking(move || flush_store.flush_blocking())
        .await
        .map_err(|e| ServeError::Other(format!("final flush task failed: {e}")))?;
    let failure = store.failure();
    release(store).await;
    tracing::info!("stopped");
    if let Some(cause) = failure {
        return Err(ServeError::StoreFailed(cause.to_string()));
    }
    flushed.map_err(|e: Error| ServeError::Other(e.message))
}

/// Health turns NOT_SERVING, overall and per service, once the store has
/// failed, so that an orchestrator restarts the server (calls meanwhile get
/// UNAVAILABLE, `STORE_FAILED`).
async fn not_serving_once_the_store_fails(
    mut failures: watch::Receiver<crate::store::failure::FailureCause>,
    health: tonic_health::server::HealthReporter,
) {
    // Ends without a change when the store closes.
    if failures.wait_for(Option::is_some).await.is_err() {
        return;
    }
    // The services first: once the overall status says NOT_SERVING, so
    // does every service.
    for name in SERVICE_NAMES {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
    health
        .set_service_status("", ServingStatus::NotServing)
        .await;
}

/// Waits (briefly) for finished watches and connections to let go of the
/// store, then closes it, so the data directory is free when the server
/// has stopped (a restart in the same process can open it again).
async fn release(store: Arc<Store>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&store) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if Arc::strong_count(&store) > 1 {
        tracing::warn!(
            "the store is still in use after shutdown; it closes when the process exits"
        );
    }
    // Dropping joins the flusher thread: keep that off the async threads.
    let _ = tokio::task::spawn_blocking(move || drop(store)).await;
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is
/// called (not when the future is first polled), so that a signal that
/// arrives right after start-up is a graceful stop, not the default death.
pub fn termination_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (term, interrupt) => {
                    tracing::error!(
                        term_ok = term.is_ok(),
                        interrupt_ok = interrupt.is_ok(),
                        "cannot listen for SIGTERM/SIGINT; falling back to Ctrl-C only"
                    );
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async move {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
