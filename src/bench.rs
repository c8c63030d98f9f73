//! `aliasd bench`: a load generator against a real server on loopback.
//!
//! Starts the server in-process on a fresh data directory (or targets
//! `--addr`), then for each concurrency level sends CreateAlias calls (each
//! durable before its reply) from that many concurrent callers, and reports
//! throughput, latency and writers per flush (group commit). Finally it
//! measures GetAlias. Compare the rows of one run with each other: the
//! machine's speed cancels out of the ratios.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::builder::RangedU64ValueParser;
use clap::Args;
use tonic::transport::Channel;

use crate::config::ServeConfig;
use crate::domain::SystemClock;
use crate::pb;
use crate::pb::alias_service_client::AliasServiceClient;
use crate::pb::key_service_client::KeyServiceClient;

/// Bounds of the arguments: at least one of each, and no more than a
/// loopback benchmark on one machine can sensibly use.
const MAX_CONCURRENCY: u64 = 10_000;
const MAX_CALLS: u64 = 10_000_000;
const MAX_CONNECTIONS: u64 = 1_000;

fn at_least_one(max: u64) -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(1..=max)
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent callers, one run per value (1..=10000 each).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64",
          value_parser = at_least_one(MAX_CONCURRENCY))]
    pub concurrency: Vec<usize>,
    /// Calls per run (1..=10000000).
    #[arg(long, default_value_t = 2000, value_parser = at_least_one(MAX_CALLS))]
    pub calls: usize,
    /// HTTP/2 connections the callers share (1..=1000).
    #[arg(long, default_value_t = 8, value_parser = at_least_one(MAX_CONNECTIONS))]
    pub connections: usize,
    /// Data directory of the in-process server (default: a fresh temporary one, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

struct Run {
    calls: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

/// Runs `calls` calls of `call` from `concurrency` callers.
async fn drive<F, Fut>(concurrency: usize, calls: usize, call: F) -> Result<Run, String>
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    // A JoinSet: if the bench is abandoned (Ctrl-C, an error), dropping it
    // stops the callers, so that the server can drain at once.
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let next = next.clone();
        let call = call.clone();
        workers.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= calls {
                    return Ok::<_, String>(latencies);
                }
                let t = Instant::now();
                call(i)
                    .await
                    .map_err(|s| format!("call {i} failed: {s:?}"))?;
                latencies.push(t.elapsed());
            }
        });
    }
    let mut latencies = Vec::with_capacity(calls);
    while let Some(worker) = workers.join_next().await {
        latencies.extend(worker.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Run {
        calls,
        elapsed,
        latencies,
    })
}

/// The bench's own data directory, removed when dropped (whatever the exit
/// path), so drop it only once the server has let go of it.
struct TemporaryDir(PathBuf);

impl Drop for TemporaryDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.0) {
            eprintln!("aliasd bench: cannot remove {}: {error}", self.0.display());
        }
    }
}

/// Runs the benchmark. Without `--data-dir` it works in a fresh temporary
/// directory that is removed on every way out: success, error, panic,
/// SIGINT or SIGTERM.
pub async fn run(args: BenchArgs) -> Result<(), String> {
    // Before the directory exists, so that no signal can leave it behind.
    let stop_signal = stop_signal()?;
    let (data_dir, temporary) = match &args.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let dir = std::env::temp_dir().join(format!("aliasd-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            (dir.clone(), Some(TemporaryDir(dir)))
        }
    };
    let mut config = ServeConfig::with_data_dir(&data_dir);
    config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.max_keys_per_account = u64::MAX;
    let running = crate::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .map_err(|e| e.to_string())?;
    let outcome = tokio::select! {
        outcome = measure(&args, &running, &data_dir) => outcome,
        signal = stop_signal => Err(format!("stopped by {signal}")),
    };
    let stopped = running.stop().await.map_err(|e| e.to_string());
    drop(temporary);
    outcome.and(stopped)
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

/// The runs themselves, against a started server.
async fn measure(
    args: &BenchArgs,
    running: &crate::server::Running,
    data_dir: &std::path::Path,
) -> Result<(), String> {
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        let channel = Channel::from_shared(format!("http://{}", running.addr))
            .map_err(|e| e.to_string())?
            .connect()
            .await
            .map_err(|e| e.to_string())?;
        channels.push(channel);
    }
    let channels = Arc::new(channels);

    println!(
        "aliasd bench: {} calls per run, {} connections, data in {}",
        args.calls,
        channels.len(),
        data_dir.display()
    );
    println!("CreateAlias (each flushed to disk before its reply):");
    println!(
        "{:>12} {:>10} {:>10} {:>9} {:>9} {:>14}",
        "concurrency", "calls/s", "vs c=1", "p50 ms", "p99 ms", "writers/flush"
    );
    let mut baseline = None;
    let mut last_names = Vec::new();
    for (run_index, &concurrency) in args.concurrency.iter().enumerate() {
        // Fresh keys per run, 40 aliases each (below the quota of 50).
        let keys_needed = args.calls.div_ceil(40);
        let mut keys = Vec::with_capacity(keys_needed);
        let mut key_client = KeyServiceClient::new(channels[0].clone());
        for _ in 0..keys_needed {
            let key = key_client
                .create_key(pb::CreateKeyRequest::default())
                .await
                .map_err(|e| format!("CreateKey: {e:?}"))?
                .into_inner()
                .key
                .ok_or("no key")?;
            keys.push(key.key_id);
        }
        let keys = Arc::new(keys);
        let (flushes_before, writers_before) = running.flush_stats.snapshot();
        let names: Arc<Vec<String>> = Arc::new(
            (0..args.calls)
                .map(|i| format!("alias/bench/r{run_index}/n{i}"))
                .collect(),
        );
        let (channels2, names2, keys2) = (channels.clone(), names.clone(), keys.clone());
        let result = drive(concurrency, args.calls, move |i| {
            let mut client = AliasServiceClient::new(channels2[i % channels2.len()].clone());
            let request = pb::CreateAliasRequest {
                alias_name: names2[i].clone(),
                target_key_id: keys2[i / 40].clone(),
                request_id: String::new(),
            };
            async move { client.create_alias(request).await.map(drop) }
        })
        .await?;
        let (flushes_after, writers_after) = running.flush_stats.snapshot();
        let per_flush = (writers_after - writers_before) as f64
            / (flushes_after - flushes_before).max(1) as f64;
        let rate = result.per_second();
        let base = *baseline.get_or_insert(rate);
        println!(
            "{:>12} {:>10.0} {:>9.1}x {:>9.2} {:>9.2} {:>14.1}",
            concurrency,
            rate,
            rate / base,
            result.percentile(0.5),
            result.percentile(0.99),
            per_flush
        );
        last_names = names.to_vec();
    }

    let names = Arc::new(last_names);
    // At least one value: clap requires one and refuses zeros.
    let concurrency = args.concurrency.iter().copied().max().unwrap_or(1);
    let channels2 = channels.clone();
    let reads = drive(concurrency, args.calls, move |i| {
        let mut client = AliasServiceClient::new(channels2[i % channels2.len()].clone());
        let request = pb::GetAliasRequest {
            alias_name: names[i % names.len()].clone(),
        };
        async move { client.get_alias(request).await.map(drop) }
    })
    .await?;
    println!(
        "GetAlias at concurrency {concurrency}: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms",
        reads.per_second(),
        reads.percentile(0.5),
        reads.percentile(0.99)
    );
    let channels2 = channels.clone();
    let empty = drive(concurrency, args.calls, move |i| {
        let mut client = tonic_health::pb::health_client::HealthClient::new(
            channels2[i % channels2.len()].clone(),
        );
        async move {
            client
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(drop)
        }
    })
    .await?;
    println!(
        "Health check at concurrency {concurrency}: {:.0} calls/s, p50 {:.2} ms, p99 {:.2} ms",
        empty.per_second(),
        empty.percentile(0.5),
        empty.percentile(0.99)
    );

    Ok(())
}
