//! `aliasd bench`: a load generator against a real server on loopback.
//!
//! Starts the server in-process on a fresh data directory (or targets
//! `--addr`), then for each concurrency level sends CreateAlias calls (each
//! durable before its reply) from that many concurrent callers, and reports
//! throughput, latency and writers per flush (group commit). Finally it
//! measures GetAlias. Compare the rows of one run with each other: the
//! machine's speed cancels out of the ratios.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tonic::transport::Channel;

use crate::config::ServeConfig;
use crate::domain::SystemClock;
use crate::pb;
use crate::pb::alias_service_client::AliasServiceClient;
use crate::pb::key_service_client::KeyServiceClient;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent callers, one run per value.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    pub concurrency: Vec<usize>,
    /// Calls per run.
    #[arg(long, default_value_t = 2000)]
    pub calls: usize,
    /// HTTP/2 connections the callers share.
    #[arg(long, default_value_t = 8)]
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
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let call = call.clone();
            tokio::spawn(async move {
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
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    for worker in workers {
        latencies.extend(worker.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Run {
        calls,
        elapsed,
        latencies,
    })
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let temporary = args.data_dir.is_none();
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("aliasd-bench-{}", std::process::id()))
    });
    let mut config = ServeConfig::with_data_dir(&data_dir);
    config.listen = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    config.max_keys_per_account = u64::MAX;
    let running = crate::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .map_err(|e| e.to_string())?;
    let mut channels = Vec::new();
    for _ in 0..args.connections.max(1) {
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
        let result = drive(concurrency.max(1), args.calls, move |i| {
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

    drop(channels);
    running.stop().await.map_err(|e| e.to_string())?;
    if temporary {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(())
}
