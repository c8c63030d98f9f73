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

/// One operation's measurements.
struct Run {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

/// Runs `worker(index, deadline)` on `concurrency` tasks; each returns the
/// latencies of the calls it made before the deadline.
async fn drive<W, Fut>(concurrency: usize, seconds: f64, worker: W) -> Result<Run, String>
where
    W: Fn(usize, Instant) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Duration>, String>> + Send + 'static,
{
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    // A JoinSet: if the bench is abandoned (Ctrl-C, an error), dropping it
    // stops the callers.
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..concurrency {
        workers.spawn(worker(index, deadline));
    }
    let mut latencies = Vec::new();
    while let Some(done) = workers.join_next().await {
        latencies.extend(done.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Run {
        calls: latencies.len(),
        elapsed,
        latencies,
    })
}

/// Calls `call(i)` for i = 0, 1, ... until the deadline (or until it
/// answers `Ok(false)`: nothing left to do), timing each call.
async fn until<F, Fut, E>(deadline: Instant, mut call: F) -> Result<Vec<Duration>, String>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
    E: std::fmt::Debug,
{
    let mut latencies = Vec::new();
    let mut i = 0;
    while Instant::now() < deadline {
        let t = Instant::now();
        let more = call(i)
            .await
            .map_err(|e| format!("call {i} failed: {e:?}"))?;
        if !more {
            break;
        }
        latencies.push(t.elapsed());
        i += 1;
    }
    Ok(latencies)
}

/// A small, fast, seeded generator for picking aliases.
struct XorShift(u64);

impl XorShift {
    fn new(seed: usize) -> XorShift {
        XorShift((seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// The bench's own directory (data and server log), removed when dropped.
struct TemporaryDir(PathBuf);

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("aliasd bench: cannot remove {}: {error}", self.0.display());
        }
    }
}

/// `aliasd serve` as a child process.
struct ServerProcess {
    child: tokio::process::Child,
    grpc: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the server on `store`, logging to `log`; returns it and the
    /// time from spawning it to its first answered Ping.
    async fn start(
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
    fn rss_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// SIGTERM, then waits for the graceful stop.
    async fn stop(mut self) -> Result<(), String> {
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
fn listening_addresses(log: &Path) -> Option<(SocketAddr, SocketAddr)> {
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
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

async fn connect(addr: SocketAddr) -> Result<Channel, String> {
    Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
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
                Some(endpoints) => Place::Etcd {
                    endpoints: endpoints.split(',').map(str::to_owned).collect(),
                    prefix: format!("/aliasd-bench-{}/", uuid::Uuid::new_v4().simple()),
                },
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
    },
}

impl Place {
    fn flags(&self) -> Vec<String> {
        match self {
            Place::Dir(dir) => vec!["--data-dir".into(), dir.display().to_string()],
            Place::Etcd { endpoints, prefix } => vec![
                "--backend".into(),
                "etcd".into(),
                "--etcd-endpoints".into(),
                endpoints.join(","),
                "--etcd-prefix".into(),
                prefix.clone(),
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
        let Place::Etcd { endpoints, prefix } = self else {
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

/// The prefilled set: alias `i` is `names[i]` on key `keys[i / 40]`.
struct DataSet {
    keys: Vec<String>,
    names: Vec<String>,
}

/// Creates `count` aliases, 40 per key, with a progress line on stderr.
async fn prefill(
    channels: &[Channel],
    concurrency: usize,
    count: usize,
    run_id: &str,
) -> Result<DataSet, String> {
    let started = Instant::now();
    let key_count = count.div_ceil(ALIASES_PER_KEY);
    let next = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(Mutex::new(vec![String::new(); key_count]));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let mut client = KeyServiceClient::new(channels[worker % channels.len()].clone());
        let (next, keys) = (next.clone(), keys.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= key_count {
                    return Ok::<_, String>(());
                }
                let key = client
                    .create_key(pb::CreateKeyRequest::default())
                    .await
                    .map_err(|e| format!("CreateKey: {e:?}"))?
                    .into_inner()
                    .key
                    .ok_or("CreateKey answered no key")?;
                keys.lock().unwrap_or_else(|p| p.into_inner())[i] = key.key_id;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let keys: Arc<Vec<String>> = Arc::new(std::mem::take(
        &mut *keys.lock().unwrap_or_else(|p| p.into_inner()),
    ));
    let names: Arc<Vec<String>> = Arc::new(
        (0..count)
            .map(|i| format!("alias/bench/{run_id}/{i:08}"))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for worker in 0..concurrency {
        let mut client = AliasServiceClient::new(channels[worker % channels.len()].clone());
        let (next, done, keys, names) = (next.clone(), done.clone(), keys.clone(), names.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                client
                    .create_alias(pb::CreateAliasRequest {
                        alias_name: names[i].clone(),
                        target_key_id: keys[i / ALIASES_PER_KEY].clone(),
                        request_id: String::new(),
                    })
                    .await
                    .map_err(|e| format!("CreateAlias: {e:?}"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_tenth = 0;
    loop {
        tokio::select! {
            finished = tasks.join_next() => match finished {
                Some(result) => result.map_err(|e| e.to_string())??,
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                if terminal {
                    let filled = n * 30 / count.max(1);
                    eprint!(
                        "\rprefill [{}{}] {n}/{count} aliases, {rate:.0}/s ",
                        "#".repeat(filled),
                        " ".repeat(30 - filled)
                    );
                } else if n * 10 / count.max(1) > last_tenth {
                    last_tenth = n * 10 / count.max(1);
                    eprintln!("prefill: {n}/{count} aliases, {rate:.0}/s");
                }
            }
        }
    }
    if terminal {
        eprintln!();
    }
    println!(
        "prefill: {count} aliases on {key_count} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(DataSet {
        keys: keys.to_vec(),
        names: names.to_vec(),
    })
}

/// A page token for the page that starts halfway through the set.
async fn token_halfway(channel: &Channel, data: &DataSet, prefix: &str) -> Result<String, String> {
    let mut client = AliasServiceClient::new(channel.clone());
    let target = data.names.len() / 2;
    let mut seen = 0;
    let mut token = String::new();
    // The names sort after any other alias the account has: skip those.
    while seen < target {
        let page = client
            .list_aliases(pb::ListAliasesRequest {
                key_id: String::new(),
                page_size: 100,
                page_token: token.clone(),
            })
            .await
            .map_err(|e| format!("ListAliases: {e:?}"))?
            .into_inner();
        seen += page
            .aliases
            .iter()
            .filter(|a| a.alias_name.starts_with(prefix))
            .count();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    Ok(token)
}

/// The rows of the table, in order.
struct Table {
    rows: Vec<(String, Run)>,
}

impl Table {
    fn print(&self, empty_grpc: f64, empty_http: Option<f64>) {
        println!(
            "{:<34} {:>10} {:>8} {:>8} {:>8} {:>9}",
            "operation", "calls/s", "of empty", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for (name, run) in &self.rows {
            let base = if ["HTTP", "AWS", "Huawei"]
                .iter()
                .any(|door| name.starts_with(door))
            {
                empty_http
            } else {
                Some(empty_grpc)
            };
            let share = base
                .map(|b| format!("{:.0} %", 100.0 * run.per_second() / b))
                .unwrap_or_default();
            println!(
                "{:<34} {:>10.0} {:>8} {:>8.2} {:>8.2} {:>9.2}",
                name,
                run.per_second(),
                share,
                run.percentile_ms(0.5),
                run.percentile_ms(0.99),
                run.percentile_ms(0.999)
            );
        }
    }
}

/// The measurements themselves.
async fn measure(args: &BenchArgs, server: &Target) -> Result<(), String> {
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(connect(server.grpc).await?);
    }
    let channels = Arc::new(channels);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (c, secs) = (args.concurrency, args.seconds);
    println!(
        "aliasd bench: {} aliases, {c} callers over {} gRPC connections ({c} HTTP/1.1 \
         connections for the HTTP rows), {secs} s per operation",
        args.aliases, args.connections
    );
    let data = Arc::new(prefill(&channels, c, args.aliases, &run_id).await?);
    // Every prefill write was acknowledged, so it is on disk.
    let prefilled_size = server
        .process
        .as_ref()
        .and_then(|(_, store, _)| store.dir())
        .map(crate::store::disk_usage);
    let prefix = format!("alias/bench/{run_id}/");
    let deep_token = Arc::new(token_halfway(&channels[0], &data, &prefix).await?);
    let mut table = Table { rows: Vec::new() };
    let channel = |i: usize| channels[i % channels.len()].clone();

    let ping = |name: &'static str| {
        let channels = channels.clone();
        async move {
            let run = drive(c, secs, |w, deadline| {
                let client = DiagnosticsServiceClient::new(channels[w % channels.len()].clone());
                until(deadline, move |_| {
                    let mut client = client.clone();
                    async move { client.ping(pb::PingRequest {}).await.map(|_| true) }
                })
            })
            .await?;
            Ok::<_, String>((name.to_owned(), run))
        }
    };
    let first_ping = ping("Ping (empty call), first").await?;

    if args.wants("GetAlias") {
        let run = drive(c, secs, |w, deadline| {
            let client = AliasServiceClient::new(channel(w));
            let (data, mut rng) = (data.clone(), XorShift::new(w));
            until(deadline, move |_| {
                let mut client = client.clone();
                let alias_name = data.names[rng.below(data.names.len())].clone();
                async move {
                    client
                        .get_alias(pb::GetAliasRequest { alias_name })
                        .await
                        .map(|_| true)
                }
            })
        })
        .await?;
        table.rows.push(("GetAlias".into(), run));
    }

    if args.wants("DescribeKey by alias name") {
        let run = drive(c, secs, |w, deadline| {
            let client = KeyServiceClient::new(channel(w));
            let (data, mut rng) = (data.clone(), XorShift::new(w));
            until(deadline, move |_| {
                let mut client = client.clone();
                let key_id = data.names[rng.below(data.names.len())].clone();
                async move {
                    client
                        .describe_key(pb::DescribeKeyRequest { key_id })
                        .await
                        .map(|_| true)
                }
            })
        })
        .await?;
        table.rows.push(("DescribeKey by alias name".into(), run));
    }

    for (name, deep, by_key) in [
        ("ListAliases, first page of 50", false, false),
        ("ListAliases, a page halfway in", true, false),
        ("ListAliases of one key", false, true),
    ] {
        if !args.wants(name) {
            continue;
        }
        let run = drive(c, secs, |w, deadline| {
            let client = AliasServiceClient::new(channel(w));
            let (data, token, mut rng) = (data.clone(), deep_token.clone(), XorShift::new(w));
            until(deadline, move |_| {
                let mut client = client.clone();
                let request = pb::ListAliasesRequest {
                    key_id: match by_key {
                        true => data.keys[rng.below(data.keys.len())].clone(),
                        false => String::new(),
                    },
                    page_size: PAGE,
                    page_token: match deep {
                        true => token.to_string(),
                        false => String::new(),
                    },
                };
                async move { client.list_aliases(request).await.map(|_| true) }
            })
        })
        .await?;
        table.rows.push((name.into(), run));
    }

    // CreateAlias: each caller names aliases on keys of its own, a new key
    // every 40 aliases (that CreateKey is not timed).
    let created: Arc<Vec<Mutex<Vec<String>>>> =
        Arc::new((0..c).map(|_| Mutex::new(Vec::new())).collect());
    if args.wants("CreateAlias (durable)") || args.wants("DeleteAlias (durable)") {
        let run = drive(c, secs, |w, deadline| {
            let channel = channel(w);
            let (created, prefix) = (created.clone(), format!("alias/bench/{run_id}/create/{w}/"));
            async move {
                let mut keys = KeyServiceClient::new(channel.clone());
                let mut aliases = AliasServiceClient::new(channel);
                let mut latencies = Vec::new();
                let mut key = String::new();
                let mut i = 0;
                while Instant::now() < deadline {
                    if i % ALIASES_PER_KEY == 0 {
                        key = keys
                            .create_key(pb::CreateKeyRequest::default())
                            .await
                            .map_err(|e| format!("CreateKey: {e:?}"))?
                            .into_inner()
                            .key
                            .ok_or("no key")?
                            .key_id;
                    }
                    let name = format!("{prefix}{i}");
                    let t = Instant::now();
                    aliases
                        .create_alias(pb::CreateAliasRequest {
                            alias_name: name.clone(),
                            target_key_id: key.clone(),
                            request_id: String::new(),
                        })
                        .await
                        .map_err(|e| format!("CreateAlias: {e:?}"))?;
                    latencies.push(t.elapsed());
                    created[w]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(name);
                    i += 1;
                }
                Ok(latencies)
            }
        })
        .await?;
        if args.wants("CreateAlias (durable)") {
            table.rows.push(("CreateAlias (durable)".into(), run));
        }
    }

    // UpdateAlias and RenameAlias: each caller moves an alias of its own
    // between two keys of its own, and renames it back and forth.
    if args.wants("UpdateAlias (durable)") || args.wants("RenameAlias (durable)") {
        let mut own = Vec::with_capacity(c);
        {
            let mut keys = KeyServiceClient::new(channel(0));
            let mut aliases = AliasServiceClient::new(channel(0));
            for w in 0..c {
                let mut pair = Vec::new();
                for _ in 0..2 {
                    pair.push(
                        keys.create_key(pb::CreateKeyRequest::default())
                            .await
                            .map_err(|e| format!("CreateKey: {e:?}"))?
                            .into_inner()
                            .key
                            .ok_or("no key")?
                            .key_id,
                    );
                }
                let name = format!("alias/bench/{run_id}/own/{w}");
                aliases
                    .create_alias(pb::CreateAliasRequest {
                        alias_name: name.clone(),
                        target_key_id: pair[0].clone(),
                        request_id: String::new(),
                    })
                    .await
                    .map_err(|e| format!("CreateAlias: {e:?}"))?;
                own.push((name, pair));
            }
        }
        let own = Arc::new(own);
        let run = drive(c, secs, |w, deadline| {
            let client = AliasServiceClient::new(channel(w));
            let own = own.clone();
            until(deadline, move |i| {
                let mut client = client.clone();
                let (name, pair) = &own[w];
                let request = pb::UpdateAliasRequest {
                    alias_name: name.clone(),
                    target_key_id: pair[(i + 1) % 2].clone(),
                    ..Default::default()
                };
                async move { client.update_alias(request).await.map(|_| true) }
            })
        })
        .await?;
        if args.wants("UpdateAlias (durable)") {
            table.rows.push(("UpdateAlias (durable)".into(), run));
        }
        let run = drive(c, secs, |w, deadline| {
            let client = AliasServiceClient::new(channel(w));
            let own = own.clone();
            until(deadline, move |i| {
                let mut client = client.clone();
                let name = &own[w].0;
                let other = format!("{name}-renamed");
                let (from, to) = match i % 2 {
                    0 => (name.clone(), other),
                    _ => (other, name.clone()),
                };
                let request = pb::RenameAliasRequest {
                    alias_name: from,
                    new_alias_name: to,
                    ..Default::default()
                };
                async move { client.rename_alias(request).await.map(|_| true) }
            })
        })
        .await?;
        if args.wants("RenameAlias (durable)") {
            table.rows.push(("RenameAlias (durable)".into(), run));
        }
    }

    if args.wants("DeleteAlias (durable)") {
        // DeleteAlias: the aliases the CreateAlias row made.
        let run = drive(c, secs, |w, deadline| {
            let client = AliasServiceClient::new(channel(w));
            let names = std::mem::take(&mut *created[w].lock().unwrap_or_else(|p| p.into_inner()));
            until(deadline, move |i| {
                let mut client = client.clone();
                let name = names.get(i).cloned();
                async move {
                    match name {
                        Some(alias_name) => client
                            .delete_alias(pb::DeleteAliasRequest {
                                alias_name,
                                ..Default::default()
                            })
                            .await
                            .map(|_| true),
                        None => Ok(false),
                    }
                }
            })
        })
        .await?;
        table.rows.push(("DeleteAlias (durable)".into(), run));
    }

    let last_ping = ping("Ping (empty call), last").await?;
    let empty_grpc = (first_ping.1.per_second() + last_ping.1.per_second()) / 2.0;
    table.rows.insert(0, first_ping);
    table.rows.push(last_ping);

    let empty_http = match server.http {
        Some(http) => Some(measure_http(args, http, &data, &run_id, &mut table).await?),
        None => None,
    };
    table.print(empty_grpc, empty_http);

    if let Some((process, store, _)) = &server.process {
        let mib = |bytes: u64| bytes as f64 / 1048576.0;
        let rss = mib(process.rss_bytes().unwrap_or(0));
        match (store.dir(), prefilled_size) {
            (Some(data_dir), Some(prefilled)) => println!(
                "server RSS: {rss:.0} MiB; data directory after the prefill: {:.1} MiB, {:.0} \
                 bytes per alias; after the run: {:.1} MiB",
                mib(prefilled),
                prefilled as f64 / args.aliases as f64,
                mib(crate::store::disk_usage(data_dir))
            ),
            // etcd's disk is etcd's (and shared with whatever else it keeps).
            _ => println!("server RSS: {rss:.0} MiB"),
        }
    }
    Ok(())
}

/// The HTTP rows: `GET /ping`, AWS DescribeKey by alias, AWS CreateAlias,
/// each caller on a keep-alive HTTP/1.1 connection of its own. Returns the
/// empty call's rate.
async fn measure_http(
    args: &BenchArgs,
    http: SocketAddr,
    data: &Arc<DataSet>,
    run_id: &str,
    table: &mut Table,
) -> Result<f64, String> {
    let (c, secs) = (args.concurrency, args.seconds);
    let mut senders = Vec::with_capacity(c);
    for _ in 0..c {
        senders.push(http1_connection(http).await?);
    }
    let senders: Arc<Vec<tokio::sync::Mutex<HttpSender>>> =
        Arc::new(senders.into_iter().map(tokio::sync::Mutex::new).collect());

    // `make(caller, i)`: the caller's i-th request, None when it has no more.
    type Make = Arc<dyn Fn(usize, usize) -> Option<HttpCall> + Send + Sync>;
    let run_http = |name: &'static str, make: Make| {
        let senders = senders.clone();
        async move {
            let run = drive(c, secs, |w, deadline| {
                let (senders, make) = (senders.clone(), make.clone());
                async move {
                    let mut sender = senders[w].lock().await;
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while Instant::now() < deadline {
                        let Some(call) = make(w, i) else { break };
                        let t = Instant::now();
                        let status = send(&mut sender, &call).await?;
                        if status != call.expect {
                            return Err(format!("{name}: HTTP {status}, expected {}", call.expect));
                        }
                        latencies.push(t.elapsed());
                        i += 1;
                    }
                    Ok(latencies)
                }
            })
            .await?;
            Ok::<_, String>((name.to_owned(), run))
        }
    };
    let empty = run_http(
        "HTTP GET /ping (empty call)",
        Arc::new(|_, _| Some(HttpCall::get("/ping", 204))),
    )
    .await?;
    let empty_rate = empty.1.per_second();
    table.rows.push(empty);
    if args.wants("AWS DescribeKey by alias name") {
        let names = data.clone();
        table.rows.push(
            run_http(
                "AWS DescribeKey by alias name",
                Arc::new(move |w, i| {
                    let name = &names.names[(w * 7919 + i * 104_729) % names.names.len()];
                    Some(HttpCall::aws(
                        "DescribeKey",
                        serde_json::json!({ "KeyId": name }),
                    ))
                }),
            )
            .await?,
        );
    }
    // CreateAlias over AWS: each caller names up to `per_caller` aliases on
    // keys made first (40 aliases each), then stops.
    if args.wants("AWS CreateAlias (durable)") {
        let per_caller = ((secs * 1000.0) as usize).div_ceil(ALIASES_PER_KEY) * ALIASES_PER_KEY;
        let keys_per_caller = per_caller / ALIASES_PER_KEY;
        let made = Arc::new(Mutex::new(Vec::new()));
        let make_keys = drive(c, 3600.0, |w, _| {
            let (senders, made) = (senders.clone(), made.clone());
            async move {
                let mut sender = senders[w].lock().await;
                for k in 0..keys_per_caller {
                    let call = HttpCall::aws("CreateKey", serde_json::json!({}));
                    let (status, body) = send_full(&mut sender, &call).await?;
                    let key: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    match key["KeyMetadata"]["KeyId"].as_str() {
                        Some(id) if status == 200 => made
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((w, k, id.to_owned())),
                        _ => return Err(format!("AWS CreateKey: HTTP {status}")),
                    }
                }
                Ok(Vec::new())
            }
        });
        make_keys.await?;
        let mut made = std::mem::take(&mut *made.lock().unwrap_or_else(|p| p.into_inner()));
        made.sort();
        let keys: Arc<Vec<String>> = Arc::new(made.into_iter().map(|(_, _, id)| id).collect());
        let prefix = format!("alias/bench/{run_id}/aws/");
        table.rows.push(
            run_http(
                "AWS CreateAlias (durable)",
                Arc::new(move |w, i| {
                    (i < per_caller).then(|| {
                        let key = &keys[w * keys_per_caller + i / ALIASES_PER_KEY];
                        HttpCall::aws(
                            "CreateAlias",
                            serde_json::json!({ "AliasName": format!("{prefix}{w}/{i}"), "TargetKeyId": key }),
                        )
                    })
                }),
            )
            .await?,
        );
    }

    // Huawei: describe-key by key id, and update-key-alias, each caller
    // renaming the one alias of a key of its own back and forth.
    if args.wants("Huawei describe-key") {
        let set = data.clone();
        table.rows.push(
            run_http(
                "Huawei describe-key",
                Arc::new(move |w, i| {
                    let key = &set.keys[(w * 7919 + i * 104_729) % set.keys.len()];
                    Some(HttpCall::huawei(
                        "describe-key",
                        serde_json::json!({ "key_id": key }),
                    ))
                }),
            )
            .await?,
        );
    }
    if args.wants("Huawei update-key-alias (durable)") {
        let run = run_id.to_owned();
        let alias_of = move |w: usize, i: usize| format!("bench/{run}/huawei/{w}/{}", i % 2);
        let own = Arc::new(Mutex::new(vec![String::new(); c]));
        let made = drive(c, 3600.0, |w, _| {
            let (senders, own, alias) = (senders.clone(), own.clone(), alias_of(w, 0));
            async move {
                let mut sender = senders[w].lock().await;
                let call =
                    HttpCall::huawei("create-key", serde_json::json!({ "key_alias": alias }));
                let (status, body) = send_full(&mut sender, &call).await?;
                let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match answer["key_info"]["key_id"].as_str() {
                    Some(id) if status == 200 => {
                        own.lock().unwrap_or_else(|p| p.into_inner())[w] = id.to_owned();
                        Ok(Vec::new())
                    }
                    _ => Err(format!("Huawei create-key: HTTP {status}")),
                }
            }
        });
        made.await?;
        let own: Arc<Vec<String>> = Arc::new(std::mem::take(
            &mut *own.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        table.rows.push(
            run_http(
                "Huawei update-key-alias (durable)",
                Arc::new(move |w, i| {
                    Some(HttpCall::huawei(
                        "update-key-alias",
                        serde_json::json!({ "key_id": own[w], "key_alias": alias_of(w, i + 1) }),
                    ))
                }),
            )
            .await?,
        );
    }
    Ok(empty_rate)
}

type HttpSender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One HTTP request of a row, and the status it must get.
struct HttpCall {
    method: http::Method,
    path: String,
    /// The `X-Amz-Target` of an AWS call.
    target: Option<String>,
    content_type: &'static str,
    body: Bytes,
    expect: u16,
}

/// The project id of the bench's Huawei calls.
const HUAWEI_PROJECT: &str = "bench";

impl HttpCall {
    fn get(path: &str, expect: u16) -> HttpCall {
        HttpCall {
            method: http::Method::GET,
            path: path.to_owned(),
            target: None,
            content_type: "text/plain",
            body: Bytes::new(),
            expect,
        }
    }

    fn aws(operation: &str, body: serde_json::Value) -> HttpCall {
        HttpCall {
            method: http::Method::POST,
            path: "/".to_owned(),
            target: Some(format!("TrentService.{operation}")),
            content_type: "application/x-amz-json-1.1",
            body: Bytes::from(body.to_string()),
            expect: 200,
        }
    }

    fn huawei(operation: &str, body: serde_json::Value) -> HttpCall {
        HttpCall {
            method: http::Method::POST,
            path: format!("/v1.0/{HUAWEI_PROJECT}/kms/{operation}"),
            target: None,
            content_type: "application/json",
            body: Bytes::from(body.to_string()),
            expect: 200,
        }
    }
}

async fn http1_connection(addr: SocketAddr) -> Result<HttpSender, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn send(sender: &mut HttpSender, call: &HttpCall) -> Result<u16, String> {
    send_full(sender, call).await.map(|(status, _)| status)
}

async fn send_full(sender: &mut HttpSender, call: &HttpCall) -> Result<(u16, Bytes), String> {
    let mut request = http::Request::builder()
        .method(call.method.clone())
        .uri(call.path.as_str())
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, call.content_type);
    if let Some(target) = &call.target {
        request = request.header("x-amz-target", target);
    }
    let request = request
        .body(Full::new(call.body.clone()))
        .map_err(|e| e.to_string())?;
    sender
        .ready()
        .await
        .map_err(|e| format!("HTTP connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("HTTP body: {e}"))?
        .to_bytes();
    Ok((status, body))
}
