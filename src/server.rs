//! Assembly: the store, the services, reflection, health, the request layer,
//! background maintenance, and graceful shutdown with a bounded drain.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic_health::ServingStatus;

use crate::codec::MAX_MESSAGE_BYTES;
use crate::config::ServeConfig;
use crate::domain::paging::PageTokens;
use crate::domain::{Clock, Error};
use crate::layers::RequestContextLayer;
use crate::maintenance::Maintenance;
use crate::pb::alias_service_server::AliasServiceServer;
use crate::pb::key_service_server::KeyServiceServer;
use crate::service::{AliasApi, App, KeyApi};
use crate::store::Store;

/// The gRPC service names, as health checks and reflection know them.
pub const SERVICE_NAMES: [&str; 2] = ["aliasd.v1.KeyService", "aliasd.v1.AliasService"];

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
}

/// A started server.
pub struct Running {
    /// The address it listens on (useful with port 0).
    pub addr: SocketAddr,
    /// Flushes run and writers served (for benchmarks).
    pub flush_stats: Arc<crate::store::group_commit::FlushStats>,
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
pub async fn start(
    config: ServeConfig,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<Running, ServeError> {
    config
        .validate()
        .map_err(|e| ServeError::Config(e.message))?;
    let data_dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await
        .map_err(|e| ServeError::Other(format!("open task failed: {e}")))??;

    if let Some(path) = &config.seed {
        let seed = crate::seed::parse(path).map_err(|e| ServeError::Seed(e.message))?;
        let outcome =
            crate::seed::apply(&store, &seed, &config.scope(), config.limits(), clock.now())
                .await
                .map_err(|e| ServeError::Seed(e.message))?;
        tracing::info!(
            path = %path.display(),
            keys_created = outcome.keys_created,
            aliases_created = outcome.aliases_created,
            "seed applied"
        );
    }

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    tracing::info!(
        "listening on {addr} (data directory {})",
        config.data_dir.display()
    );

    let flush_stats = store.flush_stats();
    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = stopped => {}
        }
    };
    let done = tokio::spawn(serve(config, store, clock, listener, signal));
    Ok(Running {
        addr,
        flush_stats,
        stop: Some(stop),
        done,
    })
}

async fn serve(
    config: ServeConfig,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (shutting_down, shutdown_seen) = watch::channel(false);
    let app = Arc::new(App {
        store: store.clone(),
        scope: config.scope(),
        clock: clock.clone(),
        limits: config.limits(),
        tokens: PageTokens::new(store.token_secret_bytes()),
        shutdown: shutdown_seen.clone(),
        watch_send_timeout: Duration::from_secs(config.watch_send_timeout_secs),
        auth_required: false,
    });

    let health = tonic_health::server::HealthReporter::new();
    let health_service = tonic_health::pb::health_server::HealthServer::new(
        crate::health::ShutdownAwareHealth::new(
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

    let maintenance = Maintenance {
        store: store.clone(),
        scope: config.scope(),
        clock,
        limits: config.limits(),
        change_log_retention: config.change_log_retention,
        request_id_ttl: Duration::from_secs(config.request_id_ttl_hours * 3600),
    };
    let maintenance = tokio::spawn(maintenance.run(
        Duration::from_secs(config.reap_interval_secs.max(1)),
        shutdown_seen,
    ));

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

    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let server = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(RequestContextLayer {
            max_message_bytes: MAX_MESSAGE_BYTES,
        })
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            KeyServiceServer::new(KeyApi::new(app.clone()))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            AliasServiceServer::new(AliasApi::new(app))
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
        )
        .serve_with_incoming_shutdown(incoming, signal);

    let drain = config.drain_timeout();
    let result = tokio::select! {
        result = server => result.map_err(ServeError::from),
        _ = async { drain_started.notified().await; tokio::time::sleep(drain).await } => {
            tracing::warn!(?drain, "drain timeout passed; closing the remaining connections");
            Ok(())
        }
    };
    maintenance.abort();
    let _ = maintenance.await;
    let flush_store = store.clone();
    let flushed = tokio::task::spawn_blocking(move || flush_store.flush_blocking())
        .await
        .map_err(|e| ServeError::Other(format!("final flush task failed: {e}")))?;
    flushed.map_err(|e: Error| ServeError::Other(e.message))?;
    release(store).await;
    tracing::info!("stopped");
    result
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

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT will stop the server");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
