//! The listeners: bound before the store opens (connections wait in the
//! backlog until serving starts), with the connection limits the flags and
//! the open-file limit allow.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use super::config::ServeConfig;
use super::ServeError;
use crate::door::connections::{incoming, OpenConnections};

/// The bound listeners: gRPC, and the HTTP door, the console and the
/// operators' listeners when their flags ask.
pub(super) struct Listeners {
    pub(super) grpc: crate::door::connections::Incoming,
    pub(super) http: Option<crate::door::connections::Incoming>,
    pub(super) console: Option<crate::door::connections::Incoming>,
    pub(super) metrics: Option<TcpListener>,
    pub(super) health: Option<TcpListener>,
    /// The connections each door holds open now.
    pub(super) open: OpenConnectionsByDoor,
    /// SIGHUPs since before listening (see `start_checked`).
    #[cfg(unix)]
    pub(super) hangups: Option<tokio::signal::unix::Signal>,
}

/// The connections open at each door's listener.
#[derive(Default)]
pub(super) struct OpenConnectionsByDoor {
    pub(super) grpc: OpenConnections,
    pub(super) http: OpenConnections,
    pub(super) console: OpenConnections,
}

/// Where the listeners are bound (port 0 becomes the port chosen).
pub(super) struct Addresses {
    pub(super) grpc: SocketAddr,
    pub(super) http: Option<SocketAddr>,
    pub(super) console: Option<SocketAddr>,
    pub(super) metrics: Option<SocketAddr>,
    pub(super) health: Option<SocketAddr>,
}

impl Listeners {
    /// Binds every listener the flags ask for, having raised the open-file
    /// limit and taken over SIGHUP.
    pub(super) async fn bind_all(
        config: &ServeConfig,
    ) -> Result<(Listeners, Addresses), ServeError> {
        // Before listening: every connection costs a file descriptor.
        let limits = connection_limits(config, crate::door::connections::raise_file_limit());
        // SIGHUP's default action kills the process: take it over before
        // anyone can know the server is up, and keep the stream, so that a
        // SIGHUP sent right after "listening on" reaches the reload task (a
        // stream made later would miss it).
        #[cfg(unix)]
        let hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(hangups) => Some(hangups),
            Err(error) => {
                tracing::error!(
                    %error,
                    "cannot take over SIGHUP; the auth file will not be reloaded"
                );
                None
            }
        };
        let optional = |addr: Option<SocketAddr>| async move {
            match addr {
                Some(addr) => bind(addr).await.map(Some),
                None => Ok(None),
            }
        };
        let (grpc, grpc_addr) = bind(config.listen).await?;
        let http = optional(config.http_listen).await?;
        let console = optional(config.console_listen).await?;
        let metrics = optional(config.metrics_listen).await?;
        let health = optional(config.health_listen).await?;
        let addresses = Addresses {
            grpc: grpc_addr,
            http: http.as_ref().map(|(_, addr)| *addr),
            console: console.as_ref().map(|(_, addr)| *addr),
            metrics: metrics.as_ref().map(|(_, addr)| *addr),
            health: health.as_ref().map(|(_, addr)| *addr),
        };
        let open = OpenConnectionsByDoor::default();
        let listeners = Listeners {
            grpc: incoming(grpc, limits, open.grpc.clone()),
            http: http.map(|(listener, _)| incoming(listener, limits, open.http.clone())),
            console: console.map(|(listener, _)| incoming(listener, limits, open.console.clone())),
            open,
            metrics: metrics.map(|(listener, _)| listener),
            health: health.map(|(listener, _)| listener),
            #[cfg(unix)]
            hangups,
        };
        Ok((listeners, addresses))
    }
}

/// Binds a listener.
pub(super) async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    Ok((listener, bound))
}

/// How connections are bounded: the flags, with `--max-connections` capped
/// by the open-file limit (keeping descriptors for the store, the log and
/// the listener).
pub(super) fn connection_limits(
    config: &ServeConfig,
    open_files: Option<u64>,
) -> crate::door::connections::ConnectionLimits {
    let max_connections = match open_files {
        Some(files) if (files as usize).saturating_sub(128) < config.max_connections => {
            let fitting = (files as usize).saturating_sub(128).max(1);
            tracing::warn!(
                open_file_limit = files,
                max_connections = fitting,
                "--max-connections {} is more than the open-file limit allows; using {fitting}",
                config.max_connections
            );
            fitting
        }
        _ => config.max_connections,
    };
    crate::door::connections::ConnectionLimits {
        max_connections,
        max_connections_per_ip: config.max_connections_per_ip,
        preface_timeout: Duration::from_secs(config.connection_preface_timeout_secs),
        idle_timeout: Duration::from_secs(config.idle_connection_timeout_secs),
    }
}
