//! Prometheus metrics (`--metrics-listen`), kept with `prometheus-client`
//! in a registry of the server's own (no global state: several servers in
//! one process, as in the tests, keep apart).
//!
//! The doors report each call ([`Metrics::call`]), the gRPC door also under
//! the standard gRPC server families ([`super::grpc_metrics`]); the store
//! reports each group commit and, on etcd, each request, retry and
//! conflict ([`Metrics::observe_store`]); the server reports each reload
//! of its configuration ([`Metrics::config_reloaded`]); gauges of state
//! (open connections and watches, keys and aliases per account, the
//! store's size on disk, whether it failed) are read when scraped.
//! Every label's values are bounded: methods are the API's own (anything
//! else is `unknown`), statuses are gRPC codes or HTTP statuses, accounts
//! are the [`MAX_ACCOUNTS`] largest (the rest summed as `_other`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

use super::grpc_metrics::GrpcServerMetrics;
use crate::domain::Reason;
use crate::door::connections::OpenConnections;
pub use crate::door::Door;
use crate::store::{RemoteRequest, RetryCause, Store, StoreEvent};

/// Accounts shown by name in the per-account gauges; the others are summed
/// under `account="_other"`.
pub const MAX_ACCOUNTS: usize = 100;
/// How old the per-account counts may be when scraped.
const CENSUS_EVERY: Duration = Duration::from_secs(30);

impl EncodeLabelValue for Door {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        EncodeLabelValue::encode(&self.name(), encoder)
    }
}

/// A call's outcome: a gRPC code's name, or an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Grpc(&'static str),
    Http(u16),
}

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            Status::Grpc(name) => EncodeLabelValue::encode(name, encoder),
            Status::Http(code) => EncodeLabelValue::encode(&u32::from(*code), encoder),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CallLabels {
    door: Door,
    method: &'static str,
    status: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    door: Door,
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DoorLabels {
    door: Door,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    door: Door,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AccountLabels {
    account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    request: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RetryLabels {
    cause: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServedLabels {
    served: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. about 13 s.
    Histogram::new(exponential_buckets(0.00005, 2.5, 14))
}

/// Refusals for load (`aliasd_throttled_calls_total`).
const THROTTLE_REASONS: [Reason; 3] = [
    Reason::THROTTLED,
    Reason::SERVER_BUSY,
    Reason::TOO_MANY_WATCHES,
];

/// Refusals for who called (`aliasd_denied_calls_total`).
const DENIAL_REASONS: [Reason; 8] = [
    Reason::UNAUTHENTICATED,
    Reason::MISSING_AUTHENTICATION_TOKEN,
    Reason::INCOMPLETE_SIGNATURE,
    Reason::UNRECOGNIZED_CLIENT,
    Reason::INVALID_SIGNATURE,
    Reason::SIGNATURE_EXPIRED,
    Reason::ACCESS_DENIED,
    Reason::PROJECT_NOT_FOUND,
];

/// The process's own metrics, read from `/proc` when scraped, under the
/// names Prometheus client libraries use (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, ...), so stock dashboards show them.
#[derive(Debug)]
struct ProcessCollector;

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        let Some(process) = ProcessStats::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(process.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<Unit>, f64); 5] = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                process.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                process.virtual_bytes,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(Unit::Seconds),
                process.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                process.open_fds,
            ),
            (
                "process_max_fds",
                "The most file descriptors the process may open",
                None,
                process.max_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(
                name,
                help,
                unit.as_ref(),
                gauge.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// What `/proc` says about this process.
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: f64,
    open_fds: f64,
    max_fds: f64,
}

impl ProcessStats {
    fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The fields after the command name (which may hold spaces), from
        // field 3 (state) on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK) as f64,
                libc::sysconf(libc::_SC_PAGESIZE) as f64,
            )
        };
        let boot_time = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse::<f64>()
            .ok()?;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct it is given.
        let max_fds = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
            0 => limit.rlim_cur as f64,
            _ => 0.0,
        };
        Some(ProcessStats {
            cpu_seconds: (field(14)? + field(15)?) / ticks,
            start_time_seconds: boot_time + field(22)? / ticks,
            virtual_bytes: field(23)?,
            resident_bytes: field(24)? * page,
            open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as f64,
            max_fds,
        })
    }
}

/// The exposition in Prometheus's text format 0.0.4, from OpenMetrics
/// text, for scrapers that ask for it (`Accept: text/plain`): no `# EOF`
/// or `# UNIT` lines, and a counter family named as its samples
/// (`aliasd_calls_total`).
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(held) = help.replace(line) {
                out.push_str(held);
                out.push('\n');
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_owned(),
            };
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                _ => "untyped",
            };
            if let Some(held) = help.take() {
                let text = held.splitn(4, ' ').nth(3).unwrap_or_default();
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(held) = help.take() {
            out.push_str(held);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: HistogramFamily<MethodLabels>,
    in_flight: Family<DoorLabels, Gauge>,
    throttled: Family<ReasonLabels, Counter>,
    denied: Family<ReasonLabels, Counter>,
    watches_open: Gauge,
    commit_batch: Histogram,
    flush_latency: Histogram,
    sled_flush: Histogram,
    sled_sync: Histogram,
    store_failed: Gauge,
    etcd_requests: HistogramFamily<RequestLabels>,
    etcd_request_errors: Family<RequestLabels, Counter>,
    etcd_retries: Family<RetryLabels, Counter>,
    etcd_conflicts: Counter,
    etcd_mirror_reads: Family<ServedLabels, Counter>,
    connections_open: Family<DoorLabels, Gauge>,
    reload_successful: Gauge,
    reload_success_time: Gauge<f64, AtomicU64>,
    /// The standard gRPC server families.
    pub grpc: GrpcServerMetrics,
    keys: Family<AccountLabels, Gauge>,
    aliases: Family<AccountLabels, Gauge>,
    store_bytes: Gauge,
    /// When the per-account counts were last taken.
    census_taken: Mutex<Option<Instant>>,
}

/// What scraping reads besides the counters.
pub struct Sources {
    pub store: Arc<Store>,
    /// The data directory (None: in memory).
    pub data_dir: Option<PathBuf>,
    pub watches: Arc<crate::app::admission::watches::WatchSlots>,
    /// The connections each door's listener holds open.
    pub connections: Vec<(Door, OpenConnections)>,
}

impl Metrics {
    pub fn new() -> Metrics {
        // aliasd's own families under `aliasd_`; the process's under the
        // names every Prometheus client library gives them (`process_`).
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        // The gRPC door's calls also under go-grpc-prometheus's names.
        let grpc = GrpcServerMetrics::register(&mut root);
        let registry = root.sub_registry_with_prefix("aliasd");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Calls answered, by door, method and status (gRPC code or HTTP status)",
            calls.clone(),
        );
        let latency: HistogramFamily<MethodLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "call_duration",
            "Time from a call's arrival to its answer, by door and method",
            Unit::Seconds,
            latency.clone(),
        );
        let in_flight = Family::<DoorLabels, Gauge>::default();
        registry.register(
            "calls_in_flight",
            "Calls in progress now, by door",
            in_flight.clone(),
        );
        let throttled = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "throttled_calls",
            "Calls refused for load: THROTTLED (the account's rate), SERVER_BUSY (--max-in-flight), TOO_MANY_WATCHES",
            throttled.clone(),
        );
        let denied = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "denied_calls",
            "Calls refused for who made them: not authenticated, or not allowed",
            denied.clone(),
        );
        let watches_open = Gauge::default();
        registry.register(
            "watches_open",
            "WatchAliases streams open now",
            watches_open.clone(),
        );
        let commit_batch = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register(
            "group_commit_batch_size",
            "Writers whose changes one flush and sync made durable",
            commit_batch.clone(),
        );
        let flush_latency = Histogram::new(exponential_buckets(0.0001, 2.5, 12));
        registry.register_with_unit(
            "flush_duration",
            "Time of one group-commit flush and sync",
            Unit::Seconds,
            flush_latency.clone(),
        );
        let sled_flush = Histogram::new(exponential_buckets(0.0001, 2.5, 12));
        registry.register_with_unit(
            "sled_flush_duration",
            "Time of sled's own flush in one group commit (its log written), before the sync",
            Unit::Seconds,
            sled_flush.clone(),
        );
        let sled_sync = Histogram::new(exponential_buckets(0.0001, 2.5, 12));
        registry.register_with_unit(
            "sled_sync_duration",
            "Time of the fsync of sled's files in one group commit, after sled's flush",
            Unit::Seconds,
            sled_sync.clone(),
        );
        let store_failed = Gauge::default();
        registry.register(
            "store_failed",
            "1 once the store has failed (every call refused with STORE_FAILED until a restart), else 0",
            store_failed.clone(),
        );
        let etcd_requests: HistogramFamily<RequestLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "etcd_request_duration",
            "Time of one request to etcd, by request (range: a read; txn: a group's commit)",
            Unit::Seconds,
            etcd_requests.clone(),
        );
        let etcd_request_errors = Family::<RequestLabels, Counter>::default();
        registry.register(
            "etcd_request_errors",
            "Requests to etcd that failed, by request",
            etcd_request_errors.clone(),
        );
        let etcd_retries = Family::<RetryLabels, Counter>::default();
        registry.register(
            "etcd_retries",
            "Requests to etcd made again, by cause: unavailable (not reachable), token_renewed (signed in again), not_yet_applied (read again from the leader)",
            etcd_retries.clone(),
        );
        let etcd_conflicts = Counter::default();
        registry.register(
            "etcd_conflicts",
            "Group commits that found another process had changed what the group read (every member ran again)",
            etcd_conflicts.clone(),
        );
        let etcd_mirror_reads = Family::<ServedLabels, Counter>::default();
        registry.register(
            "etcd_mirror_reads",
            "Reads on etcd, by what answered them: mirror (the instance's watch-fed copy, caught up) or etcd (read from etcd itself)",
            etcd_mirror_reads.clone(),
        );
        for served in ["mirror", "etcd"] {
            etcd_mirror_reads
                .get_or_create(&ServedLabels { served })
                .inc_by(0);
        }
        let connections_open = Family::<DoorLabels, Gauge>::default();
        registry.register(
            "connections_open",
            "Connections open now, by door (grpc; http, the AWS and Huawei doors' listener; console)",
            connections_open.clone(),
        );
        let reload_successful = Gauge::default();
        registry.register(
            "config_last_reload_successful",
            "Whether the last reload of the configuration (the auth file, on SIGHUP) succeeded; start-up counts as one",
            reload_successful.clone(),
        );
        let reload_success_time = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "config_last_reload_success_timestamp",
            "When the configuration was last loaded successfully, since the Unix epoch",
            Unit::Seconds,
            reload_success_time.clone(),
        );
        let keys = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "keys",
            "Keys per account (the largest accounts by aliases; the rest as _other), counted at most every 30 s",
            keys.clone(),
        );
        let aliases = Family::<AccountLabels, Gauge>::default();
        registry.register(
            "aliases",
            "Aliases per account (the largest accounts; the rest as _other), counted at most every 30 s",
            aliases.clone(),
        );
        let store_bytes = Gauge::default();
        registry.register_with_unit(
            "store_size",
            "Bytes the data directory takes on disk (0 in memory and on etcd)",
            Unit::Bytes,
            store_bytes.clone(),
        );
        let build_info = Family::<BuildLabels, Gauge>::default();
        registry.register(
            "build_info",
            "The running version (always 1)",
            build_info.clone(),
        );
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        // etcd's series exist from the start (at zero on sled and in
        // memory), so that dashboards and alerts find them everywhere.
        for request in ["range", "txn"] {
            let labels = RequestLabels { request };
            drop(etcd_requests.get_or_create(&labels));
            etcd_request_errors.get_or_create(&labels).inc_by(0);
        }
        for cause in ["unavailable", "token_renewed", "not_yet_applied"] {
            etcd_retries.get_or_create(&RetryLabels { cause }).inc_by(0);
        }
        // Refusals are counted from zero, so that alerts on their rate have
        // data before the first one.
        for door in [Door::Grpc, Door::Aws, Door::Huawei, Door::Console] {
            for reason in THROTTLE_REASONS {
                throttled
                    .get_or_create(&ReasonLabels {
                        door,
                        reason: reason.as_str(),
                    })
                    .inc_by(0);
            }
            for reason in DENIAL_REASONS {
                denied
                    .get_or_create(&ReasonLabels {
                        door,
                        reason: reason.as_str(),
                    })
                    .inc_by(0);
            }
        }
        let metrics = Metrics {
            registry: root,
            calls,
            latency,
            in_flight,
            throttled,
            denied,
            watches_open,
            commit_batch,
            flush_latency,
            sled_flush,
            sled_sync,
            store_failed,
            etcd_requests,
            etcd_request_errors,
            etcd_retries,
            etcd_conflicts,
            etcd_mirror_reads,
            connections_open,
            reload_successful,
            reload_success_time,
            grpc,
            keys,
            aliases,
            store_bytes,
            census_taken: Mutex::new(None),
        };
        // The configuration in force was loaded at start-up.
        metrics.config_reloaded(true);
        metrics
    }

    /// Reports what the store does from now on: its group commits, and on
    /// etcd its requests, retries and conflicts.
    pub fn observe_store(self: &Arc<Self>, stats: &crate::store::FlushStats) {
        let metrics = self.clone();
        stats.observe(Box::new(move |event| metrics.store_event(event)));
    }

    fn store_event(&self, event: &StoreEvent) {
        match *event {
            StoreEvent::Flushed {
                writers,
                took,
                flush,
            } => {
                self.commit_batch.observe(writers as f64);
                self.flush_latency.observe(took.as_secs_f64());
                if let Some(flush) = flush {
                    self.sled_flush.observe(flush.as_secs_f64());
                    self.sled_sync
                        .observe(took.saturating_sub(flush).as_secs_f64());
                }
            }
            StoreEvent::Request {
                request,
                took,
                failed,
            } => {
                let labels = RequestLabels {
                    request: match request {
                        RemoteRequest::Range => "range",
                        RemoteRequest::Txn => "txn",
                    },
                };
                self.etcd_requests
                    .get_or_create(&labels)
                    .observe(took.as_secs_f64());
                if failed {
                    self.etcd_request_errors.get_or_create(&labels).inc();
                }
            }
            StoreEvent::Retry(cause) => {
                let cause = match cause {
                    RetryCause::Unavailable => "unavailable",
                    RetryCause::TokenRenewed => "token_renewed",
                    RetryCause::NotYetApplied => "not_yet_applied",
                };
                self.etcd_retries
                    .get_or_create(&RetryLabels { cause })
                    .inc();
            }
            StoreEvent::Conflict => {
                self.etcd_conflicts.inc();
            }
            StoreEvent::MirrorRead(from_mirror) => {
                let served = if from_mirror { "mirror" } else { "etcd" };
                self.etcd_mirror_reads
                    .get_or_create(&ServedLabels { served })
                    .inc();
            }
        }
    }

    /// Records a reload of the configuration (the auth file): whether it
    /// succeeded, and if so when.
    pub fn config_reloaded(&self, successful: bool) {
        self.reload_successful.set(i64::from(successful));
        if successful {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            self.reload_success_time.set(now.as_secs_f64());
        }
    }

    /// A call is in progress until the guard is dropped.
    pub fn in_flight(self: &Arc<Self>, door: Door) -> InFlight {
        self.in_flight.get_or_create(&DoorLabels { door }).inc();
        InFlight {
            metrics: self.clone(),
            door,
        }
    }

    /// Counts an answered call. `method`: one of the API's (see the
    /// doors); `reason`: the refusal's, when it was refused.
    pub fn call(
        &self,
        door: Door,
        method: &'static str,
        status: Status,
        reason: Option<Reason>,
        took: Duration,
    ) {
        self.calls
            .get_or_create(&CallLabels {
                door,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { door, method })
            .observe(took.as_secs_f64());
        let Some(reason) = reason else { return };
        let labels = ReasonLabels {
            door,
            reason: reason.as_str(),
        };
        if THROTTLE_REASONS.contains(&reason) {
            self.throttled.get_or_create(&labels).inc();
        } else if DENIAL_REASONS.contains(&reason) {
            self.denied.get_or_create(&labels).inc();
        }
    }

    /// The exposition (OpenMetrics text), with the gauges of state read now.
    pub async fn render(&self, sources: &Sources) -> String {
        self.watches_open.set(sources.watches.open_total() as i64);
        self.store_failed
            .set(i64::from(sources.store.check_not_failed().is_err()));
        for (door, open) in &sources.connections {
            self.connections_open
                .get_or_create(&DoorLabels { door: *door })
                .set(i64::try_from(open.now()).unwrap_or(i64::MAX));
        }
        if let Some(dir) = &sources.data_dir {
            let dir = dir.clone();
            let bytes = tokio::task::spawn_blocking(move || crate::store::disk_usage(&dir))
                .await
                .unwrap_or(0);
            self.store_bytes
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        self.take_census(&sources.store).await;
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode the metrics");
        }
        text
    }

    /// Refreshes the per-account gauges if they are older than
    /// [`CENSUS_EVERY`].
    async fn take_census(&self, store: &Arc<Store>) {
        {
            let mut taken = self.census_taken.lock().unwrap_or_else(|p| p.into_inner());
            if taken.is_some_and(|at| at.elapsed() < CENSUS_EVERY) {
                return;
            }
            *taken = Some(Instant::now());
        }
        let census = match store.count().await {
            Ok(census) => census,
            Err(error) => {
                tracing::warn!(error = %error.message, "cannot count keys and aliases for metrics");
                return;
            }
        };
        let mut accounts: Vec<_> = census.into_iter().collect();
        accounts.sort_by(|(a, x), (b, y)| y.aliases.cmp(&x.aliases).then(a.cmp(b)));
        self.keys.clear();
        self.aliases.clear();
        let (shown, rest) = accounts.split_at(accounts.len().min(MAX_ACCOUNTS));
        let set = |account: String, keys: u64, aliases: u64| {
            let labels = AccountLabels { account };
            self.keys.get_or_create(&labels).set(keys as i64);
            self.aliases.get_or_create(&labels).set(aliases as i64);
        };
        for (account, counts) in shown {
            set(account.clone(), counts.keys, counts.aliases);
        }
        if !rest.is_empty() {
            let keys = rest.iter().map(|(_, c)| c.keys).sum();
            let aliases = rest.iter().map(|(_, c)| c.aliases).sum();
            set("_other".to_owned(), keys, aliases);
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A call in progress (see [`Metrics::in_flight`]).
pub struct InFlight {
    metrics: Arc<Metrics>,
    door: Door,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics
            .in_flight
            .get_or_create(&DoorLabels { door: self.door })
            .dec();
    }
}

/// A request path as a metric label: the method's path if the server has
/// it, else `unknown` (so clients cannot grow the label set).
pub fn grpc_method(path: &str) -> &'static str {
    super::grpc_metrics::path(super::grpc_metrics::method_id(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_methods_become_labels() {
        assert_eq!(
            grpc_method("/aliasd.v1.AliasService/CreateAlias"),
            "/aliasd.v1.AliasService/CreateAlias"
        );
        assert_eq!(
            grpc_method("/grpc.health.v1.Health/Check"),
            "/grpc.health.v1.Health/Check"
        );
        assert_eq!(grpc_method("/aliasd.v1.AliasService/Nope"), "unknown");
        assert_eq!(grpc_method("/x"), "unknown");
    }

    #[test]
    fn calls_and_refusals_are_counted_under_bounded_labels() {
        let metrics = Metrics::new();
        metrics.call(
            Door::Grpc,
            "/aliasd.v1.AliasService/CreateAlias",
            Status::Grpc("OK"),
            None,
            Duration::from_millis(2),
        );
        metrics.call(
            Door::Aws,
            "CreateAlias",
            Status::Http(400),
            Some(Reason::THROTTLED),
            Duration::from_millis(1),
        );
        metrics.call(
            Door::Huawei,
            "create-key",
            Status::Http(403),
            Some(Reason::ACCESS_DENIED),
            Duration::from_millis(1),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        for line in [
            r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.AliasService/CreateAlias",status="OK"} 1"#,
            r#"aliasd_calls_total{door="aws",method="CreateAlias",status="400"} 1"#,
            r#"aliasd_throttled_calls_total{door="aws",reason="THROTTLED"} 1"#,
            r#"aliasd_denied_calls_total{door="huawei",reason="ACCESS_DENIED"} 1"#,
            r#"aliasd_call_duration_seconds_count{door="grpc",method="/aliasd.v1.AliasService/CreateAlias"} 1"#,
            r#"aliasd_build_info{version=""#,
        ] {
            assert!(text.contains(line), "no {line} in\n{text}");
        }
    }
}
