//! The standard gRPC server metrics, named and labelled as
//! go-grpc-prometheus names them, so that stock dashboards and alerts work:
//! `grpc_server_started_total`, `grpc_server_handled_total` (with
//! `grpc_code`), `grpc_server_msg_received_total`,
//! `grpc_server_msg_sent_total` and the `grpc_server_handling_seconds`
//! histogram (Prometheus's default buckets), by `grpc_type`,
//! `grpc_service` and `grpc_method`.
//!
//! The methods are the server's own, listed once at start-up with their
//! labels; a call names its method by an index into that list, so a call
//! formats no string and hashes no label set, and a method the server does
//! not have is counted under `grpc_service="unknown"` and
//! `grpc_method="unknown"` whatever its path. A method's series appear at
//! its first call (and a code's at its first answer with it).

use std::collections::HashMap;
use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Prometheus's default buckets (`prometheus.DefBuckets`), as
/// go-grpc-prometheus uses them.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// gRPC's codes as Go's `codes.Code.String()` prints them (note
/// `Canceled`), indexed by their number.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The name `grpc_code` takes for `code`.
pub fn code_label(code: tonic::Code) -> &'static str {
    CODE_NAMES[code as usize]
}

/// One method of the server, as its labels name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabels {
    /// `unary`, `client_stream`, `server_stream` or `bidi_stream`.
    pub grpc_type: &'static str,
    pub grpc_service: &'static str,
    pub grpc_method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HandledLabels {
    grpc_type: &'static str,
    grpc_service: &'static str,
    grpc_method: &'static str,
    grpc_code: &'static str,
}

/// A method of the server: its index in [`catalogue`] (0: `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodId(usize);

/// The server's methods: each one's path and labels, the first the
/// stand-in for every path the server does not have.
struct Catalogue {
    methods: Vec<(&'static str, MethodLabels)>,
    by_path: HashMap<&'static str, MethodId>,
}

/// Services tonic serves beside the API's (not in its descriptors).
const OTHER_METHODS: [(&str, &str, &str); 4] = [
    ("grpc.health.v1.Health", "Check", "unary"),
    ("grpc.health.v1.Health", "Watch", "server_stream"),
    (
        "grpc.reflection.v1.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    ),
    (
        "grpc.reflection.v1alpha.ServerReflection",
        "ServerReflectionInfo",
        "bidi_stream",
    ),
];

fn leak(text: String) -> &'static str {
    // Once per method, at start-up: the list lives as long as the process.
    Box::leak(text.into_boxed_str())
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut methods = vec![(
            "unknown",
            MethodLabels {
                grpc_type: "unary",
                grpc_service: "unknown",
                grpc_method: "unknown",
            },
        )];
        for (service, method, grpc_type) in OTHER_METHODS {
            methods.push((
                leak(format!("/{service}/{method}")),
                MethodLabels {
                    grpc_type,
                    grpc_service: service,
                    grpc_method: method,
                },
            ));
        }
        if let Ok(pool) = prost_reflect::DescriptorPool::decode(crate::pb::FILE_DESCRIPTOR_SET) {
            for service in pool.services() {
                let service_name = leak(service.full_name().to_owned());
                for method in service.methods() {
                    let grpc_type =
                        match (method.is_client_streaming(), method.is_server_streaming()) {
                            (false, false) => "unary",
                            (true, false) => "client_stream",
                            (false, true) => "server_stream",
                            (true, true) => "bidi_stream",
                        };
                    methods.push((
                        leak(format!("/{service_name}/{}", method.name())),
                        MethodLabels {
                            grpc_type,
                            grpc_service: service_name,
                            grpc_method: leak(method.name().to_owned()),
                        },
                    ));
                }
            }
        }
        let by_path = methods
            .iter()
            .enumerate()
            .map(|(index, (path, _))| (*path, MethodId(index)))
            .collect();
        Catalogue { methods, by_path }
    })
}

/// The method a request path names ([`MethodId`] 0, `unknown`, for a path
/// the server does not have).
pub fn method_id(path: &str) -> MethodId {
    catalogue()
        .by_path
        .get(path)
        .copied()
        .unwrap_or(MethodId(0))
}

/// The path of a method (`unknown` for one the server does not have).
pub fn path(id: MethodId) -> &'static str {
    catalogue().methods[id.0].0
}

/// Whether a method streams its answer: its status comes when the stream
/// ends.
pub fn is_server_streaming(id: MethodId) -> bool {
    matches!(
        catalogue().methods[id.0].1.grpc_type,
        "server_stream" | "bidi_stream"
    )
}

/// The series of one method, made at its first call.
struct Series {
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: Histogram,
}

/// One method's series: the code-less ones, and `handled` per code.
struct MethodSeries {
    series: OnceLock<Series>,
    handled: [OnceLock<Counter>; 17],
}

/// The families, and each method's series in them.
pub struct GrpcServerMetrics {
    started: Family<MethodLabels, Counter>,
    handled: Family<HandledLabels, Counter>,
    received: Family<MethodLabels, Counter>,
    sent: Family<MethodLabels, Counter>,
    handling: Family<MethodLabels, Histogram, fn() -> Histogram>,
    methods: Vec<MethodSeries>,
}

fn handling_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

impl GrpcServerMetrics {
    /// The families, registered (unprefixed) in `registry`.
    pub fn register(registry: &mut Registry) -> GrpcServerMetrics {
        let metrics = GrpcServerMetrics {
            started: Family::default(),
            handled: Family::default(),
            received: Family::default(),
            sent: Family::default(),
            handling: Family::new_with_constructor(handling_histogram),
            methods: catalogue()
                .methods
                .iter()
                .map(|_| MethodSeries {
                    series: OnceLock::new(),
                    handled: std::array::from_fn(|_| OnceLock::new()),
                })
                .collect(),
        };
        // go-grpc-prometheus's help texts, less their final period, which
        // prometheus-client appends.
        registry.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            metrics.started.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            metrics.handled.clone(),
        );
        registry.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            metrics.received.clone(),
        );
        registry.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            metrics.sent.clone(),
        );
        registry.register_with_unit(
            "grpc_server_handling",
            "Histogram of response latency (seconds) of gRPC that had been application-level \
             handled by the server",
            Unit::Seconds,
            metrics.handling.clone(),
        );
        metrics
    }

    fn series(&self, id: MethodId) -> &Series {
        self.methods[id.0].series.get_or_init(|| {
            let labels = catalogue().methods[id.0].1;
            Series {
                started: self.started.get_or_create(&labels).clone(),
                received: self.received.get_or_create(&labels).clone(),
                sent: self.sent.get_or_create(&labels).clone(),
                handling: self.handling.get_or_create(&labels).clone(),
            }
        })
    }

    /// Counts a call as started.
    pub fn started(&self, id: MethodId) {
        self.series(id).started.inc();
    }

    /// Counts a call as answered with `code`, having taken `seconds`.
    pub fn handled(&self, id: MethodId, code: tonic::Code, seconds: f64) {
        self.series(id).handling.observe(seconds);
        self.methods[id.0].handled[code as usize]
            .get_or_init(|| {
                let labels = catalogue().methods[id.0].1;
                self.handled
                    .get_or_create(&HandledLabels {
                        grpc_type: labels.grpc_type,
                        grpc_service: labels.grpc_service,
                        grpc_method: labels.grpc_method,
                        grpc_code: code_label(code),
                    })
                    .clone()
            })
            .inc();
    }

    /// The counters of a method's messages received and sent.
    pub fn messages(&self, id: MethodId) -> (Counter, Counter) {
        let series = self.series(id);
        (series.received.clone(), series.sent.clone())
    }
}

/// Counts the gRPC messages in a body as its bytes go by: each message is
/// a 5-byte prefix (a flag, a big-endian length) and the length in bytes.
/// A message counts once all of it has gone by.
pub struct MessageCounter {
    counter: Counter,
    /// The prefix's bytes seen so far of the message under way.
    prefix: [u8; 5],
    prefix_seen: usize,
    /// The bytes of the message under way still to come (after its prefix).
    remaining: u64,
}

impl MessageCounter {
    pub fn new(counter: Counter) -> MessageCounter {
        MessageCounter {
            counter,
            prefix: [0; 5],
            prefix_seen: 0,
            remaining: 0,
        }
    }

    /// Counts the messages that `bytes`, the next bytes of the body, end.
    pub fn saw(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let taken = (bytes.len() as u64).min(self.remaining);
                self.remaining -= taken;
                bytes = &bytes[taken as usize..];
                if self.remaining == 0 {
                    self.counter.inc();
                }
                continue;
            }
            let taken = (5 - self.prefix_seen).min(bytes.len());
            self.prefix[self.prefix_seen..self.prefix_seen + taken]
                .copy_from_slice(&bytes[..taken]);
            self.prefix_seen += taken;
            bytes = &bytes[taken..];
            if self.prefix_seen == 5 {
                self.prefix_seen = 0;
                let length = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.remaining = u64::from(length);
                if length == 0 {
                    self.counter.inc();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_as_go_grpc_prometheus_labels_them_and_unknown_paths_are_one() {
        let id = method_id("/aliasd.v1.AliasService/GetAlias");
        assert_eq!(path(id), "/aliasd.v1.AliasService/GetAlias");
        assert_eq!(
            catalogue().methods[id.0].1,
            MethodLabels {
                grpc_type: "unary",
                grpc_service: "aliasd.v1.AliasService",
                grpc_method: "GetAlias",
            }
        );
        let watch = method_id("/aliasd.v1.AliasService/WatchAliases");
        assert_eq!(catalogue().methods[watch.0].1.grpc_type, "server_stream");
        assert!(is_server_streaming(watch));
        assert!(!is_server_streaming(id));
        assert_eq!(method_id("/aliasd.v1.AliasService/Nope"), MethodId(0));
        assert_eq!(method_id("/x"), MethodId(0));
        assert_eq!(path(MethodId(0)), "unknown");
        assert_eq!(code_label(tonic::Code::Cancelled), "Canceled");
        assert_eq!(code_label(tonic::Code::Unauthenticated), "Unauthenticated");
    }

    #[test]
    fn messages_are_counted_when_they_end_however_the_bytes_are_cut() {
        let counter = Counter::default();
        let mut messages = MessageCounter::new(counter.clone());
        // Two messages (3 bytes, then empty) in one chunk.
        messages.saw(&[0, 0, 0, 0, 3, 1, 2, 3, 0, 0, 0, 0, 0]);
        assert_eq!(counter.get(), 2);
        // A third, byte by byte: counted at its last byte only.
        let third = [0, 0, 0, 0, 2, 7, 8];
        for (i, byte) in third.iter().enumerate() {
            messages.saw(&[*byte]);
            assert_eq!(counter.get(), if i == 6 { 3 } else { 2 });
        }
    }
}
