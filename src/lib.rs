//! aliasd: a key-and-alias registry with AWS KMS alias semantics, served over
//! gRPC, stored in sled.
//!
//! A request flows one way: [`service`] (proto <-> domain) -> [`domain`]
//! (the rules) -> [`store`] (one sled transaction, group commit).

pub mod auth;
pub mod bench;
pub mod client;
pub mod domain;
pub mod store;

/// Generated protobuf messages, clients and servers of `proto/aliasd/v1`.
pub mod pb {
    #![allow(clippy::all)]
    tonic::include_proto!("aliasd.v1");

    /// The descriptor set of `proto/`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("aliasd_descriptor");
}
pub mod app;
pub mod config;
pub mod grpc;
pub mod http;
pub mod maintenance;
pub mod metrics;
pub mod net;
pub mod ops;
pub mod seed;
pub mod server;
pub mod throttle;
pub mod tls;
pub mod watch_limits;
