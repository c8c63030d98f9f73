//! The load: callers driven until a deadline, their latencies, and a
//! seeded generator to pick what they call.

use super::*;

/// One operation's measurements.
pub(super) struct Run {
    pub(super) calls: usize,
    pub(super) elapsed: Duration,
    pub(super) latencies: Vec<Duration>,
}

impl Run {
    pub(super) fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub(super) fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

/// Runs `worker(index, deadline)` on `concurrency` tasks; each returns the
/// latencies of the calls it made before the deadline.
pub(super) async fn drive<W, Fut>(
    concurrency: usize,
    seconds: f64,
    worker: W,
) -> Result<Run, String>
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
pub(super) async fn until<F, Fut, E>(
    deadline: Instant,
    mut call: F,
) -> Result<Vec<Duration>, String>
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
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: usize) -> XorShift {
        XorShift((seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}
