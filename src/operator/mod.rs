//! What operators look at, apart from the API: Prometheus metrics
//! ([`metrics`], served on `--metrics-listen`) and the probes ([`probes`]:
//! gRPC health, `/healthz`, `/readyz` on `--health-listen`).

pub mod metrics;
pub mod probes;
