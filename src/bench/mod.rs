//! `aliasd bench`: every operation's throughput and latency, each also as a
//! share of what an empty call costs on the same machine in the same run.
//!
//! It starts `aliasd serve` as a child process on a data directory (a fresh
//! temporary one unless `--data-dir`), or measures a running server
//! (`--endpoint`). It prefills `--aliases` aliases, 40 per key, then drives
//! each operation with `--concurrency` callers for `--seconds`: over
//! `--connections` HTTP/2 connections for gRPC, and one HTTP/1.1 keep-alive
//! connection per caller for the HTTP door. An empty call (gRPC `Ping`,
//! HTTP `GET /ping`) runs first and last on the same connections: it is the
//! 100 % each row is compared with. Then it reports the server's memory,
//! the data directory's size, and how long the server takes to start on it.
//!
//! Write rows are durable: each call's change is on disk before its reply.
//! Run the same command under `eatmydata` (syncs made no-ops; the child
//! server inherits it) for the "fsync off" comparison.

pub mod floor;
mod grpc_rows;
mod http_rows;
mod load;
mod prefill;
mod process;
mod report;

use self::grpc_rows::*;
use self::http_rows::*;
use self::load::*;
use self::prefill::*;
use self::process::*;
use self::report::*;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::builder::RangedU64ValueParser;
use clap::Args;
use http_body_util::{BodyExt, Full};
use tonic::transport::Channel;

use crate::pb;
use crate::pb::alias_service_client::AliasServiceClient;
use crate::pb::crypto_service_client::CryptoServiceClient;
use crate::pb::diagnostics_service_client::DiagnosticsServiceClient;
use crate::pb::key_service_client::KeyServiceClient;

/// Bounds of the arguments: at least one of each, and no more than a
/// loopback benchmark on one machine can sensibly use.
const MAX_CONCURRENCY: u64 = 10_000;
const MAX_ALIASES: u64 = 10_000_000;
const MAX_CONNECTIONS: u64 = 1_000;
/// Aliases per key in the prefilled set (the quota is 50).
const ALIASES_PER_KEY: usize = 40;
/// A ListAliases page.
const PAGE: i32 = 50;

fn at_least_one(max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=max)
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if (0.05..=3600.0).contains(&value) => Ok(value),
        _ => Err(format!("{text} is not a number of seconds in 0.05..=3600")),
    }
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Aliases to prefill, 40 per key (1..=10000000).
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one(MAX_ALIASES))]
    pub aliases: usize,
    /// Concurrent callers (1..=10000).
    #[arg(long, default_value_t = 64, value_parser = at_least_one(MAX_CONCURRENCY))]
    pub concurrency: usize,
    /// HTTP/2 connections the gRPC callers share (1..=1000).
    #[arg(long, default_value_t = 4, value_parser = at_least_one(MAX_CONNECTIONS))]
    pub connections: usize,
    /// How long each operation runs, in seconds (0.05..=3600).
    #[arg(long, default_value_t = 3.0, value_parser = seconds)]
    pub seconds: f64,
    /// Data directory of the server the bench starts (default: a fresh
    /// temporary one, removed afterwards).
    #[arg(long, conflicts_with = "endpoint")]
    pub data_dir: Option<PathBuf>,
    /// Measure the running server at this gRPC address (IP:PORT) instead of
    /// starting one; its data directory, memory and start-up are not measured.
    #[arg(long)]
    pub endpoint: Option<SocketAddr>,
    /// With --endpoint: the server's --http-listen address, for the HTTP rows.
    #[arg(long, requires = "endpoint")]
    pub http_endpoint: Option<SocketAddr>,
    /// Start the server on this etcd cluster instead of a data directory
    /// (`--backend etcd`; client URLs, comma-separated), under a fresh
    /// `--etcd-prefix` that is removed afterwards.
    #[arg(long, conflicts_with_all = ["endpoint", "data_dir"])]
    pub etcd_endpoints: Option<String>,
    /// Extra flags for the server the bench starts, e.g. "--cache-mb 64".
    #[arg(long, allow_hyphen_values = true, conflicts_with = "endpoint")]
    pub server_flags: Option<String>,
    /// Run only the rows whose name contains this text (any case), e.g.
    /// "ListAliases" or "AWS"; the empty calls always run. For profiling.
    #[arg(long)]
    pub only: Option<String>,
}

impl BenchArgs {
    /// Whether the row `name` runs.
    fn wants(&self, name: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| name.to_lowercase().contains(&only.to_lowercase()))
    }
}

/// Runs the benchmark. Without `--data-dir` or `--endpoint` it works in a
/// fresh temporary directory that is removed on every way out: success,
/// error, panic, SIGINT or SIGTERM.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    // Before the directory exists, so that no signal can leave it behind.
    let stop_signal = stop_signal()?;
    let scratch = std::env::temp_dir().join(format!("aliasd-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;
    let scratch = TemporaryDir(scratch);
    let server = match args.endpoint {
        Some(grpc) => Target {
            grpc,
            http: args.http_endpoint,
            process: None,
        },
        None => {
            let store = match &args.etcd_endpoints {
                Some(endpoints) => {
                    // Every instance on etcd is given its root key.
                    let root_key = scratch.0.join("root.key");
                    crate::crypto::RootKey::create(&root_key).map_err(|e| e.message)?;
                    Place::Etcd {
                        endpoints: endpoints.split(',').map(str::to_owned).collect(),
                        prefix: format!("/aliasd-bench-{}/", uuid::Uuid::new_v4().simple()),
                        root_key,
                    }
                }
                None => Place::Dir(
                    args.data_dir
                        .clone()
                        .unwrap_or_else(|| scratch.0.join("data")),
                ),
            };
            let extra = server_flags(&args)?;
            let started = ServerProcess::start(&store, &scratch.0.join("server.log"), &extra).await;
            let process = match started {
                Ok((process, _)) => process,
                Err(error) => return Err(store.remove().await.err().unwrap_or(error)),
            };
            Target {
                grpc: process.grpc,
                http: Some(process.http),
                process: Some((process, store, extra)),
            }
        }
    };
    let outcome = tokio::select! {
        outcome = measure(&args, &server) => outcome,
        signal = stop_signal => Err(format!("stopped by {signal}")),
    };
    let stopped = match server.process {
        Some((process, store, extra)) => {
            let stopped = process.stop().await;
            let stopped = match (&outcome, stopped) {
                // Start-up: a new server on the store the run filled.
                (Ok(()), Ok(())) => restart(&store, &scratch.0.join("restart.log"), &extra).await,
                (_, stopped) => stopped,
            };
            stopped.and(store.remove().await)
        }
        None => Ok(()),
    };
    drop(scratch);
    outcome.and(stopped)
}

/// Starts a server on `store` again, reports how long it took to answer,
/// and stops it.
async fn restart(store: &Place, log: &Path, extra: &[String]) -> Result<(), String> {
    let (process, startup) = ServerProcess::start(store, log, extra).await?;
    let what = match store {
        Place::Dir(_) => "this data directory",
        Place::Etcd { .. } => "this etcd prefix",
    };
    println!(
        "start-up on {what}: {:.2} s (from spawning the server to its first answer)",
        startup.as_secs_f64()
    );
    process.stop().await
}

/// Where the server the bench starts keeps its store.
enum Place {
    /// A sled data directory (the scratch one is removed with the scratch
    /// directory).
    Dir(PathBuf),
    /// A fresh prefix on an etcd cluster, removed at the end.
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
        root_key: PathBuf,
    },
}

impl Place {
    fn flags(&self) -> Vec<String> {
        match self {
            Place::Dir(dir) => vec!["--data-dir".into(), dir.display().to_string()],
            Place::Etcd {
                endpoints,
                prefix,
                root_key,
            } => vec![
                "--backend".into(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                endpoints.join(","),
                "--etcd-prefix".into(),
                prefix.clone(),
                "--root-key-file".into(),
                root_key.display().to_string(),
            ],
        }
    }

    /// The data directory, if the store is one.
    fn dir(&self) -> Option<&Path> {
        match self {
            Place::Dir(dir) => Some(dir),
            Place::Etcd { .. } => None,
        }
    }

    /// Removes what the run left on etcd.
    async fn remove(&self) -> Result<(), String> {
        let Place::Etcd {
            endpoints, prefix, ..
        } = self
        else {
            return Ok(());
        };
        let config = crate::store::etcd::EtcdConfig::plain(endpoints.clone(), prefix);
        tokio::task::spawn_blocking(move || {
            crate::store::etcd::EtcdBackend::connect(&config)?.delete_everything()
        })
        .await
        .map_err(|e| format!("cannot remove the bench's etcd prefix {prefix}: {e}"))?
        .map_err(|e| {
            format!(
                "cannot remove the bench's etcd prefix {prefix}: {}",
                e.message
            )
        })
    }
}

fn server_flags(args: &BenchArgs) -> Result<Vec<String>, String> {
    Ok(args
        .server_flags
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

/// The server measured: one the bench started, or `--endpoint`.
struct Target {
    grpc: SocketAddr,
    http: Option<SocketAddr>,
    /// The child process, its store and extra flags.
    process: Option<(ServerProcess, Place, Vec<String>)>,
}

/// Resolves with the signal's name on SIGINT or SIGTERM. The handlers are
/// installed when this is called, not when it is first polled.
#[cfg(unix)]
fn stop_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind| signal(kind).map_err(|e| format!("cannot handle signals: {e}"));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    })
}

#[cfg(not(unix))]
fn stop_signal() -> Result<impl std::future::Future<Output = &'static str>, String> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    })
}
