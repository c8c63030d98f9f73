//! What operators look at, apart from the API: Prometheus metrics
//! ([`metrics`], served on `--metrics-listen`, with the standard gRPC
//! server families in [`grpc_metrics`]) and the probes ([`probes`]:
//! gRPC health, `/healthz`, `/readyz` on `--health-listen`), and where the
//! log goes ([`log_sink`]).

pub mod grpc_metrics;
pub mod log_sink;
pub mod metrics;
pub mod probes;
