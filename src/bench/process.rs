//! The server the bench starts: `aliasd serve` as a child process in a
//! directory of the bench's, its log, and a connection to it.

use super::*;

/// The bench's own directory (data and server log), removed when dropped.
pub(super) struct TemporaryDir(pub(super) PathBuf);

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("aliasd bench: cannot remove {}: {error}", self.0.display());
        }
    }
}

/// `aliasd serve` as a child process.
pub(super) struct ServerProcess {
    pub(super) child: tokio::process::Child,
    pub(super) grpc: SocketAddr,
    pub(super) http: SocketAddr,
    pub(super) log: PathBuf,
}

impl ServerProcess {
    /// Starts the server on `store`, logging to `log`; returns it and the
    /// time from spawning it to its first answered Ping.
    pub(super) async fn start(
        store: &Place,
        log: &Path,
        extra: &[String],
    ) -> Result<(ServerProcess, Duration), String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find aliasd: {e}"))?;
        let log_file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let started = Instant::now();
        let mut child = tokio::process::Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--max-keys-per-account",
                "100000000",
            ])
            .args(store.flags())
            .args(extra)
            // The bench reads the addresses from the start-up lines, whatever
            // else RUST_LOG leaves out.
            .env(
                "RUST_LOG",
                format!(
                    "{},aliasd::server=info",
                    std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned())
                ),
            )
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let (grpc, http) = loop {
            if let Some(addresses) = listening_addresses(log) {
                break addresses;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the server exited ({status}) before listening:\n{}",
                    tail(log)
                ));
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!(
                    "the server did not listen within 120 s:\n{}",
                    tail(log)
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let channel = connect(grpc).await?;
        DiagnosticsServiceClient::new(channel)
            .ping(pb::PingRequest {})
            .await
            .map_err(|e| format!("Ping: {e:?}"))?;
        let startup = started.elapsed();
        Ok((
            ServerProcess {
                child,
                grpc,
                http,
                log: log.to_owned(),
            },
            startup,
        ))
    }

    /// The server's resident memory, from /proc.
    pub(super) fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// SIGTERM, then waits for the graceful stop.
    pub(super) async fn stop(mut self) -> Result<(), String> {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid we started and have not reaped.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        }
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!(
                "the server stopped with {status}:\n{}",
                tail(&self.log)
            )),
            Ok(Err(error)) => Err(format!("cannot wait for the server: {error}")),
            Err(_) => Err("the server did not stop within 60 s".to_owned()),
        }
    }
}

/// The gRPC and HTTP addresses a JSON server log says it listens on.
pub(super) fn listening_addresses(log: &Path) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::fs::read_to_string(log).ok()?;
    let (mut grpc, mut http) = (None, None);
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let message = entry["message"].as_str().unwrap_or_default();
        let address = |rest: &str| {
            rest.split([' ', ':'])
                .next()
                .zip(rest.split(' ').next())
                .and_then(|(_, addr)| addr.trim_end_matches(':').parse::<SocketAddr>().ok())
        };
        if let Some(rest) = message.strip_prefix("HTTP listening on ") {
            http = address(rest);
        } else if let Some(rest) = message.strip_prefix("listening on ") {
            grpc = address(rest);
        }
    }
    grpc.zip(http)
}

/// The last lines of a log, for error messages.
pub(super) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

pub(super) async fn connect(addr: SocketAddr) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}
