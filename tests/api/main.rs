//! Integration tests: the real server on an ephemeral loopback port, called
//! through the clients generated from `proto/`. One test binary, so the
//! crate links once.

mod abac;
mod access;
mod aliases;
mod aws;
mod backup;
mod buf;
mod capacity;
mod cli;
mod client;
mod common;
mod concurrency;
mod console;
mod crash;
mod crypto;
mod crypto_clients;
mod deletion;
mod deploy;
mod doors;
mod durability;
mod ephemeral;
mod etcd;
#[path = "../support/etcd.rs"]
mod etcd_support;
mod hardening;
mod http;
mod huawei;
mod key_details;
mod keys;
mod listing;
mod metrics;
mod monitoring;
mod node;
mod proxy;
mod python;
mod readme;
mod seed;
mod serving;
mod signatures;
mod tls;
