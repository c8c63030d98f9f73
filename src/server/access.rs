//! Who may call, over what transport: the auth file, TLS for both ports and
//! the admission bounds, loaded before the server binds (a bad file stops
//! start-up), and the auth file re-read on SIGHUP.

use std::sync::Arc;

use tokio::sync::watch;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use super::config::ServeConfig;
use super::ServeError;
use crate::app::admission::auth::Authenticator;
use crate::app::Admission;
use crate::operator::metrics::Metrics;

/// Who may call, over what transport: loaded before the server binds, so
/// that a bad auth file or certificate stops start-up.
pub(super) struct Access {
    pub(super) authenticator: Option<Arc<Authenticator>>,
    pub(super) tls: Option<ServerTlsConfig>,
    /// The same TLS settings for the HTTP door and the console.
    pub(super) http_tls: Option<Arc<rustls::ServerConfig>>,
    pub(super) admission: Admission,
}

impl Access {
    pub(super) fn load(config: &ServeConfig) -> Result<Access, ServeError> {
        let authenticator = match &config.auth_file {
            Some(path) => Some(Arc::new(
                Authenticator::load(path).map_err(|e| ServeError::Config(e.message))?,
            )),
            None => None,
        };

        let read = |path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| ServeError::Config(format!("cannot read {}: {e}", path.display())))
        };
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => {
                crate::server::tls::check(cert, key, config.tls_client_ca.as_deref())
                    .map_err(|e| ServeError::Config(e.0))?;
                let mut tls =
                    ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
                if let Some(ca) = &config.tls_client_ca {
                    // Optional, so probes and bearer-token clients connect
                    // without a certificate; a presented one must chain to the CA.
                    tls = tls
                        .client_ca_root(Certificate::from_pem(read(ca)?))
                        .client_auth_optional(true);
                }
                Some(tls)
            }
            _ => None,
        };
        let over_http = config.http_listen.is_some() || config.console_listen.is_some();
        let http_tls = match (over_http, &config.tls_cert, &config.tls_key) {
            (true, Some(cert), Some(key)) => Some(
                crate::http::tls_config(cert, key, config.tls_client_ca.as_deref())
                    .map_err(ServeError::Config)?,
            ),
            _ => None,
        };
        Ok(Access {
            authenticator,
            tls,
            http_tls,
            admission: Admission::new(
                config.throttle_rate,
                config.throttle_burst,
                config.call_bounds(),
            ),
        })
    }
}

/// Re-reads the auth file on SIGHUP until shutdown; a bad file keeps the
/// one in force. Each reload's outcome goes to the metrics.
#[cfg(unix)]
pub(super) async fn reload_on_sighup(
    authenticator: Option<Arc<Authenticator>>,
    hangups: Option<tokio::signal::unix::Signal>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            _ = hangups.recv() => match authenticator.as_ref().map(|auth| auth.reload()) {
                // SIGHUP's default action would kill the server.
                None => tracing::info!("SIGHUP: no --auth-file, so nothing to reload"),
                Some(Ok(())) => {
                    metrics.config_reloaded(true);
                    tracing::info!("SIGHUP: auth file reloaded");
                }
                Some(Err(error)) => {
                    metrics.config_reloaded(false);
                    tracing::error!(
                        error = %error.message,
                        "SIGHUP: the auth file is not valid; keeping the one in force"
                    );
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}
