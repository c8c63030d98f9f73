//! Correctness under concurrency: the store stays consistent under any
//! interleaving of concurrent calls.

use std::process::Command;
use std::sync::Arc;

use aliasd::domain::ops::Limits;
use aliasd::domain::SystemClock;
use aliasd::pb;
use aliasd::pb::alias_service_client::AliasServiceClient;
use tonic::transport::Channel;
use tonic::Code;

use crate::common::*;

/// Several connections, so calls also race across HTTP/2 connections.
async fn clients(server: &TestServer, n: usize) -> Vec<AliasServiceClient<Channel>> {
    let addr = server.running.as_ref().unwrap().addr;
    let mut out = Vec::new();
    for _ in 0..n {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        out.push(AliasServiceClient::new(channel));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_64_concurrent_creates_of_one_name_exactly_one_succeeds() {
    let server = TestServer::start().await;
    let keys: Vec<_> = create_keys(&server, 4).await;
    let clients = clients(&server, 8).await;
    let calls = (0..64).map(|i| {
        let mut client = clients[i % clients.len()].clone();
        let target = keys[i % keys.len()].clone();
        tokio::spawn(async move {
            client
                .create_alias(pb::CreateAliasRequest {
                    alias_name: "alias/contended".into(),
                    target_key_id: target,
                    request_id: String::new(),
                })
                .await
        })
    });
    let mut ok = 0;
    for call in calls.collect::<Vec<_>>() {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_error::<()>(Err(status), Code::AlreadyExists, "ALIAS_ALREADY_EXISTS");
            }
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(server.alias_names("").await, vec!["alias/contended"]);
}

async fn create_keys(server: &TestServer, n: usize) -> Vec<String> {
    let mut keys = Vec::new();
    for _ in 0..n {
        keys.push(server.create_key().await.key_id);
    }
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_onto_one_key_never_pass_its_quota() {
    let server =
        TestServer::start_with(|c| c.quotas.max_aliases_per_key = 10, Arc::new(SystemClock)).await;
    let key = server.create_key().await.key_id;
    let clients = clients(&server, 8).await;
    let calls: Vec<_> = (0..40)
        .map(|i| {
            let mut client = clients[i % clients.len()].clone();
            let key = key.clone();
            tokio::spawn(async move {
                client
                    .create_alias(pb::CreateAliasRequest {
                        alias_name: format!("alias/q{i}"),
                        target_key_id: key,
                        request_id: String::new(),
                    })
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_error::<()>(Err(status), Code::ResourceExhausted, "ALIAS_QUOTA_EXCEEDED");
            }
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(server.alias_names(&key).await.len(), 10);
}

/// A small deterministic generator, so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_renames_and_deletes_leave_the_store_consistent() {
    let server =
        TestServer::start_with(|c| c.quotas.max_aliases_per_key = 6, Arc::new(SystemClock)).await;
    let keys = create_keys(&server, 6).await;
    for i in 0..20 {
        server
            .create_alias(&format!("alias/m{i}"), &keys[i % keys.len()])
            .await
            .unwrap();
    }
    let clients = clients(&server, 8).await;
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let mut client = clients[task % clients.len()].clone();
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut rng = Lcg(task as u64 + 1);
                let mut ok = 0;
                for _ in 0..40 {
                    let name = format!("alias/m{}", rng.next(24));
                    let other = format!("alias/m{}", rng.next(24));
                    let key = keys[rng.next(keys.len())].clone();
                    let result = match rng.next(4) {
                        0 => client
                            .create_alias(pb::CreateAliasRequest {
                                alias_name: name,
                                target_key_id: key,
                                request_id: String::new(),
                            })
                            .await
                            .map(drop),
                        1 => client
                            .update_alias(pb::UpdateAliasRequest {
                                alias_name: name,
                                target_key_id: key,
                                ..Default::default()
                            })
                            .await
                            .map(drop),
                        2 => client
                            .rename_alias(pb::RenameAliasRequest {
                                alias_name: name,
                                new_alias_name: other,
                                ..Default::default()
                            })
                            .await
                            .map(drop),
                        _ => client
                            .delete_alias(pb::DeleteAliasRequest {
                                alias_name: name,
                                ..Default::default()
                            })
                            .await
                            .map(drop),
                    };
                    match result {
                        Ok(()) => ok += 1,
                        Err(status) => assert!(
                            matches!(
                                status.code(),
                                Code::NotFound | Code::AlreadyExists | Code::ResourceExhausted
                            ),
                            "unexpected {status:?}"
                        ),
                    }
                }
                ok
            })
        })
        .collect();
    let mut succeeded = 0;
    for task in tasks {
        succeeded += task.await.unwrap();
    }
    assert!(succeeded > 0, "some changes went through");
    let listed = server.all_aliases("").await;
    let dir = server.stop().await;

    // The library's checker and the `aliasd check` command agree: consistent.
    let store = crate::common::open_store(dir.path());
    let report = store.check(&Limits {
        max_aliases_per_key: 6,
        ..Limits::default()
    });
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.aliases, listed.len());
    drop(store);
    let output = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["check", "--max-aliases-per-key", "6"])
        .args(crate::common::store_args(dir.path()))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "aliasd check: {stdout}");
    assert!(stdout.contains("all invariants hold"), "{stdout}");
}
