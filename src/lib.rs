//! aliasd: a key-and-alias registry with AWS KMS alias semantics, served over
//! gRPC and the AWS and Huawei KMS HTTP dialects, stored in sled, in memory
//! or in etcd.
//!
//! A request flows one way: a door ([`grpc`], [`http`], [`console`], sharing [`door`])
//! -> [`app`] (admission, the use cases) -> [`domain`] (the rules, over a
//! transaction) -> [`store`] (one transaction on a backend), and back out
//! through the same door. [`server`] assembles them; [`operator`] holds what
//! operators look at (metrics, probes); [`cli`] is the command-line client
//! and [`bench`] the benchmark.

// Test support written against the public API (`aliasd::...`) is shared by
// the library's tests and the integration tests.
#[cfg(test)]
extern crate self as aliasd;

/// This build's version (Cargo's package version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit this build was made from (12 hex digits), or "unknown"
/// outside a clone (build.rs).
pub const COMMIT: &str = env!("ALIASD_COMMIT");
/// `aliasd --version`: "0.1.0 (commit 0123456789ab)".
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ALIASD_COMMIT"),
    ")"
);

pub mod app;
pub mod bench;
pub mod cli;
pub mod console;
pub mod crypto;
pub mod domain;
pub mod door;
pub mod grpc;
pub mod http;
pub mod operator;
pub mod server;
pub mod store;

/// Generated protobuf messages, clients and servers of `proto/aliasd/v1`.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("aliasd.v1");

    /// The descriptor set of `proto/`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("aliasd_descriptor");
}
