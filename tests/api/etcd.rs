//! The etcd client aliasd generates from `src/store/etcd/proto/`, against
//! a real etcd (Debian's etcd-server 3.4.23, installed by the project under
//! target/; see `aliasd::store::etcd::testing`): conditional transactions,
//! ranges, watches from a revision, leases. The backend itself passes the
//! conformance suite (`src/store/conformance.rs`).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::etcd_support::EtcdServer;
use aliasd::domain::SystemClock;
use aliasd::store::etcd::etcdserverpb as pb;
use aliasd::store::etcd::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use aliasd::store::etcd::etcdserverpb::kv_client::KvClient;
use aliasd::store::etcd::etcdserverpb::lease_client::LeaseClient;
use aliasd::store::etcd::etcdserverpb::request_op::Request;
use aliasd::store::etcd::etcdserverpb::watch_client::WatchClient;
use tonic::transport::Channel;

use crate::common::TestServer;

/// A fresh etcd (the project installs it under target/ on first use).
async fn etcd() -> EtcdServer {
    tokio::task::spawn_blocking(|| EtcdServer::start(Path::new(env!("CARGO_TARGET_TMPDIR"))))
        .await
        .unwrap()
}

async fn channel(etcd: &EtcdServer) -> Channel {
    Channel::from_shared(etcd.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn put(key: &str, value: &str) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(Request::RequestPut(pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

/// Create-if-absent: the compare aliasd's transactions make on keys they
/// read as absent.
fn absent(key: &str) -> pb::Compare {
    pb::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.into(),
        target_union: Some(TargetUnion::CreateRevision(0)),
        range_end: Vec::new(),
    }
}

#[tokio::test]
async fn the_generated_etcd_client_transacts_ranges_watches_and_leases() {
    let etcd = etcd().await;
    let channel = channel(&etcd).await;
    let mut kv = KvClient::new(channel.clone());

    // Two writers race to create one key: one transaction succeeds.
    let create = |value: &str| pb::TxnRequest {
        compare: vec![absent("/aliasd/a")],
        success: vec![put("/aliasd/a", value), put("/aliasd/counter", "1")],
        failure: vec![],
    };
    let first = kv.txn(create("first")).await.unwrap().into_inner();
    let second = kv.txn(create("second")).await.unwrap().into_inner();
    assert!(first.succeeded);
    assert!(!second.succeeded, "the key exists: the compare fails");
    let range = kv
        .range(pb::RangeRequest {
            key: b"/aliasd/".to_vec(),
            range_end: b"/aliasd0".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let kvs: Vec<(String, String)> = range
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.clone()).unwrap(),
                String::from_utf8(kv.value.clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kvs,
        [
            ("/aliasd/a".to_owned(), "first".to_owned()),
            ("/aliasd/counter".to_owned(), "1".to_owned())
        ]
    );
    // A compare on mod_revision: a write since the read makes it fail.
    let read_at = range.kvs[0].mod_revision;
    kv.txn(pb::TxnRequest {
        success: vec![put("/aliasd/a", "changed")],
        ..Default::default()
    })
    .await
    .unwrap();
    let stale = pb::Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Mod as i32,
        key: b"/aliasd/a".to_vec(),
        target_union: Some(TargetUnion::ModRevision(read_at)),
        range_end: Vec::new(),
    };
    let lost = kv
        .txn(pb::TxnRequest {
            compare: vec![stale],
            success: vec![put("/aliasd/a", "lost update")],
            failure: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!lost.succeeded);

    // A watch from the first revision replays every change, in order.
    let (requests, stream) = tokio::sync::mpsc::channel(1);
    requests
        .send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: b"/aliasd/a".to_vec(),
                    start_revision: 1,
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap();
    let mut watch = WatchClient::new(channel.clone())
        .watch(tokio_stream::wrappers::ReceiverStream::new(stream))
        .await
        .unwrap()
        .into_inner();
    let mut values = Vec::new();
    while values.len() < 2 {
        let response = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        values.extend(
            response
                .events
                .iter()
                .map(|e| String::from_utf8(e.kv.as_ref().unwrap().value.clone()).unwrap()),
        );
    }
    assert_eq!(values, ["first", "changed"]);

    // A lease: a key bound to it goes when it is revoked.
    let mut lease = LeaseClient::new(channel);
    let granted = lease
        .lease_grant(pb::LeaseGrantRequest { ttl: 10, id: 0 })
        .await
        .unwrap()
        .into_inner();
    kv.put(pb::PutRequest {
        key: b"/aliasd/maintenance".to_vec(),
        value: b"instance-1".to_vec(),
        lease: granted.id,
        ..Default::default()
    })
    .await
    .unwrap();
    lease
        .lease_revoke(pb::LeaseRevokeRequest { id: granted.id })
        .await
        .unwrap();
    let gone = kv
        .range(pb::RangeRequest {
            key: b"/aliasd/maintenance".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(gone.kvs.is_empty());
}

/// An aliasd server on `etcd` under `prefix`.
async fn instance(etcd: &EtcdServer, prefix: &str, max_aliases_per_key: u64) -> TestServer {
    let (endpoint, prefix) = (etcd.endpoint.clone(), prefix.to_owned());
    TestServer::start_configured(move |c| {
        on_etcd(c, &endpoint);
        c.store.etcd_prefix = prefix;
        c.quotas.max_aliases_per_key = max_aliases_per_key;
    })
    .await
}

/// Points `config` at the etcd at `endpoint` instead of a data directory.
fn on_etcd(config: &mut aliasd::server::config::ServeConfig, endpoint: &str) {
    config.store.backend = aliasd::server::config::BackendKind::Etcd;
    config.store.etcd_endpoints = vec![endpoint.to_owned()];
    config.store.data_dir = aliasd::server::config::DEFAULT_DATA_DIR.into();
}

/// Whether a server with `tweak` on the etcd at `endpoint` fails to start.
async fn cannot_start(
    endpoint: &str,
    tweak: impl FnOnce(&mut aliasd::server::config::ServeConfig),
) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(&dir);
    on_etcd(&mut config, endpoint);
    tweak(&mut config);
    aliasd::server::start(
        config,
        std::sync::Arc::new(aliasd::domain::SystemClock),
        std::future::pending(),
    )
    .await
    .is_err()
}

/// Instances on one etcd make the same ARNs and hold the same quotas: the
/// first records its settings in the store, and one with others refuses to
/// start, naming both values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_with_other_store_settings_refuses_to_start() {
    let etcd = etcd().await;
    let first = instance(&etcd, "/settings/", 10).await;
    first.create_key().await;
    let start = |tweak: fn(&mut aliasd::server::config::ServeConfig)| {
        let endpoint = etcd.endpoint.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let mut config = crate::common::config(&dir);
            on_etcd(&mut config, &endpoint);
            config.store.etcd_prefix = "/settings/".into();
            config.quotas.max_aliases_per_key = 10;
            tweak(&mut config);
            aliasd::server::start(
                config,
                std::sync::Arc::new(aliasd::domain::SystemClock),
                std::future::pending(),
            )
            .await
        }
    };
    let refused = start(|c| c.quotas.max_aliases_per_key = 1)
        .await
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("--max-aliases-per-key is 10 in the store, 1 here"),
        "{refused}"
    );
    let refused = start(|c| c.region = "eu-west-1".into())
        .await
        .err()
        .unwrap();
    assert!(
        refused
            .to_string()
            .contains("--region is us-east-1 in the store, eu-west-1 here"),
        "{refused}"
    );
    // The same settings start and share the store.
    let second = start(|_| {})
        .await
        .expect("an instance with the same settings");
    second.stop().await.unwrap();
}

/// Three aliasd instances on one etcd: concurrent creates of one name
/// spread over them give exactly one OK; concurrent creates onto one key
/// never pass its quota; a request_id replays on the other instances; each
/// sees the others' writes at once, and a watcher on one hears of the
/// changes made through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_etcd_share_one_store_with_its_guarantees() {
    let etcd = etcd().await;
    let a = instance(&etcd, "/shared/", 10).await;
    let b = instance(&etcd, "/shared/", 10).await;
    let c = instance(&etcd, "/shared/", 10).await;
    let all = [&a, &b, &c];
    let key = a.create_key().await.key_id;
    assert_eq!(
        b.describe(&key).await.unwrap().key_id,
        key,
        "B sees A's key"
    );
    assert_eq!(c.describe(&key).await.unwrap().key_id, key);

    let calls = (0..64).map(|i| {
        let server = all[i % 3];
        let mut aliases = server.aliases.clone();
        let key = key.clone();
        async move {
            aliases
                .create_alias(aliasd::pb::CreateAliasRequest {
                    alias_name: "alias/one".into(),
                    target_key_id: key,
                    request_id: String::new(),
                })
                .await
        }
    });
    let results = futures_join_all(calls).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for result in &results {
        if let Err(status) = result {
            assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}");
        }
    }

    // 20 creates of different names onto one key (quota 10, one taken).
    let calls = (0..20).map(|i| {
        let server = all[i % 3];
        let mut aliases = server.aliases.clone();
        let key = key.clone();
        async move {
            aliases
                .create_alias(aliasd::pb::CreateAliasRequest {
                    alias_name: format!("alias/q{i}"),
                    target_key_id: key,
                    request_id: String::new(),
                })
                .await
        }
    });
    let results = futures_join_all(calls).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        9,
        "{results:?}"
    );
    for server in all {
        assert_eq!(server.alias_names(&key).await.len(), 10);
    }

    // A request_id used on A replays on B and on C.
    let other = a.create_key().await.key_id;
    let request = aliasd::pb::CreateAliasRequest {
        alias_name: "alias/replayed".into(),
        target_key_id: other.clone(),
        request_id: crate::common::uuid(),
    };
    let mut answers = Vec::new();
    for server in all {
        let answer = server.aliases.clone().create_alias(request.clone()).await;
        answers.push(answer.unwrap().into_inner());
    }
    assert!(answers.iter().all(|answer| *answer == answers[0]));
    assert_eq!(c.alias_names(&other).await, ["alias/replayed"]);

    // A watcher on A receives, in order, the changes made through B and C.
    let head = a
        .aliases
        .clone()
        .list_aliases(aliasd::pb::ListAliasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision;
    let mut watch = a
        .aliases
        .clone()
        .watch_aliases(aliasd::pb::WatchAliasesRequest {
            key_id: String::new(),
            start_revision: Some(head),
            progress_notify: false,
        })
        .await
        .unwrap()
        .into_inner();
    b.create_alias("alias/from-b", &other).await.unwrap();
    c.rename_alias("alias/from-b", "alias/renamed-on-c")
        .await
        .unwrap();
    b.delete_alias("alias/renamed-on-c").await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("A's watcher hears of B's changes")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        seen.push((
            event.revision,
            event.r#type,
            event.alias.unwrap().alias_name,
        ));
    }
    use aliasd::pb::AliasEventType::{Created, Deleted, Renamed};
    assert_eq!(
        seen,
        [
            (head + 1, Created as i32, "alias/from-b".to_owned()),
            (head + 2, Renamed as i32, "alias/renamed-on-c".to_owned()),
            (head + 3, Deleted as i32, "alias/renamed-on-c".to_owned()),
        ]
    );

    // Up to 100 aliases per key on etcd (a key's removal with all of them is
    // one etcd transaction); more is refused at start-up.
    drop(instance(&etcd, "/most/", 100).await);
    assert!(cannot_start(&etcd.endpoint, |c| c.quotas.max_aliases_per_key = 101).await);

    // Another prefix is another store.
    let elsewhere = instance(&etcd, "/elsewhere/", 10).await;
    assert_eq!(
        elsewhere.describe(&key).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

/// Joins futures without another dependency.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut handles = Vec::new();
    for future in futures {
        handles.push(tokio::spawn(future));
    }
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

async fn aliasd(args: &[&str]) -> std::process::Output {
    crate::common::run_aliasd(args, &[]).await
}

/// A snapshot moves a store from sled to etcd: backup of a sled server,
/// restore under an etcd prefix, `aliasd check` on it, and an etcd
/// instance serving the same aliases; and from etcd back to sled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_sled_store_restores_into_etcd_and_serves() {
    let sled = TestServer::start().await;
    let key = sled.create_key().await.key_id;
    for name in ["alias/moved-1", "alias/moved-2"] {
        sled.create_alias(name, &key).await.unwrap();
    }
    let files = tempfile::tempdir().unwrap();
    let backup = files.path().join("b");
    let backup = backup.to_str().unwrap();
    let endpoint = sled.running.as_ref().unwrap().addr.to_string();
    let taken = aliasd(&["backup", "--endpoint", &endpoint, "-f", backup]).await;
    assert!(taken.status.success(), "{taken:?}");

    let etcd = etcd().await;
    let into = [
        "--backend",
        "etcd",
        "--etcd-endpoints",
        &etcd.endpoint,
        "--etcd-prefix",
        "/moved/",
    ];
    let empty = aliasd(&[&["check"][..], &into].concat()).await;
    assert_eq!(
        empty.status.code(),
        Some(2),
        "no store there yet: {empty:?}"
    );
    let restored = aliasd(&[&["restore"][..], &into, &[backup]].concat()).await;
    let out = String::from_utf8_lossy(&restored.stdout);
    assert!(restored.status.success(), "{restored:?}");
    assert!(
        out.contains("into etcd prefix /moved/") && out.contains("ok: all invariants hold"),
        "{out}"
    );
    let checked = aliasd(&[&["check"][..], &into].concat()).await;
    assert!(checked.status.success(), "{checked:?}");
    assert!(String::from_utf8_lossy(&checked.stdout).contains("2 aliases"));
    // Not twice into the same prefix.
    let again = aliasd(&[&["restore"][..], &into, &[backup]].concat()).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{again:?}"
    );

    let served = instance(&etcd, "/moved/", 50).await;
    assert_eq!(
        served.alias_names(&key).await,
        ["alias/moved-1", "alias/moved-2"]
    );
    assert_eq!(
        served.get_alias("alias/moved-1").await.unwrap(),
        sled.get_alias("alias/moved-1").await.unwrap()
    );

    // And back: a backup of the etcd instance restores into a sled data
    // directory, checks clean, and serves the same records.
    served.create_alias("alias/on-etcd", &key).await.unwrap();
    let back = files.path().join("back");
    let back = back.to_str().unwrap();
    let served_at = served.running.as_ref().unwrap().addr.to_string();
    let taken = aliasd(&["backup", "--endpoint", &served_at, "-f", back]).await;
    assert!(taken.status.success(), "{taken:?}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let restored = aliasd(&["restore", "--data-dir", data, back]).await;
    assert!(restored.status.success(), "{restored:?}");
    let checked = aliasd(&["check", "--data-dir", data]).await;
    assert!(checked.status.success(), "{checked:?}");
    let on_sled = TestServer::start_in(dir, |_| {}, Arc::new(SystemClock)).await;
    assert_eq!(
        on_sled.alias_names(&key).await,
        ["alias/moved-1", "alias/moved-2", "alias/on-etcd"]
    );
    assert_eq!(
        on_sled.get_alias("alias/on-etcd").await.unwrap(),
        served.get_alias("alias/on-etcd").await.unwrap()
    );
}

/// With etcd down, calls fail fast with UNAVAILABLE and change nothing; when
/// it is back, the same instance serves again by itself, with every
/// acknowledged change there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_etcd_down_calls_fail_fast_and_the_instance_recovers_by_itself() {
    let mut etcd = etcd().await;
    let server = instance(&etcd, "/outage/", 50).await;
    let key = server.create_key().await.key_id;
    server.create_alias("alias/before", &key).await.unwrap();

    let mut etcd = tokio::task::spawn_blocking(move || {
        etcd.kill();
        etcd
    })
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let refused = server.create_alias("alias/during", &key).await;
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "failed fast: {:?}",
        started.elapsed()
    );
    let status = refused.unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown
        ),
        "{status:?}"
    );
    let read = server.get_alias("alias/before").await.unwrap_err();
    assert_eq!(read.code(), tonic::Code::Unavailable, "{read:?}");

    etcd = tokio::task::spawn_blocking(move || {
        etcd.restart();
        etcd
    })
    .await
    .unwrap();
    let recovered = std::time::Instant::now();
    loop {
        match server.get_alias("alias/before").await {
            Ok(alias) => {
                assert_eq!(alias.target_key_id, key);
                break;
            }
            Err(status) => {
                assert!(recovered.elapsed() < Duration::from_secs(30), "{status:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    server.create_alias("alias/after", &key).await.unwrap();
    let names = server.alias_names(&key).await;
    assert!(
        names.contains(&"alias/before".to_owned()) && names.contains(&"alias/after".to_owned())
    );
    drop(etcd);
}

/// Starts `aliasd serve --backend etcd` as a process and reads its address.
fn spawn_on_etcd(
    endpoints: &[String],
    prefix: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--backend",
            "etcd",
            "--etcd-prefix",
            prefix,
        ])
        .arg("--etcd-endpoints")
        .arg(endpoints.join(","))
        .arg("--root-key-file")
        .arg(crate::common::root_key_file(std::path::Path::new(prefix)))
        .env_remove("ALIASD_DATA_DIR")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (found, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(rest) = line.split("listening on ").nth(1) {
                if !line.contains("HTTP listening") {
                    let addr = rest.split_whitespace().next().unwrap().to_owned();
                    let _ = found.send(addr.parse::<std::net::SocketAddr>().unwrap());
                }
            }
        }
    });
    let addr = addr
        .recv_timeout(Duration::from_secs(30))
        .expect("aliasd starts on etcd");
    (child, addr)
}

/// A three-member etcd cluster: one member killed under write load, then
/// the aliasd instance killed with SIGKILL: a new instance finds every
/// acknowledged change, and `aliasd check` is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_and_an_instance_killed_under_load_lose_no_acknowledged_change() {
    use aliasd::pb::alias_service_client::AliasServiceClient;
    use aliasd::pb::key_service_client::KeyServiceClient;
    use std::sync::{Arc, Mutex};

    let mut cluster = tokio::task::spawn_blocking(|| {
        crate::etcd_support::EtcdCluster::start(Path::new(env!("CARGO_TARGET_TMPDIR")))
    })
    .await
    .unwrap();
    let (mut first, addr) = spawn_on_etcd(&cluster.endpoints, "/faults/");
    let connect = |addr: std::net::SocketAddr| async move {
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    };
    let channel = connect(addr).await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(
            KeyServiceClient::new(channel.clone())
                .create_key(aliasd::pb::CreateKeyRequest::default())
                .await
                .unwrap()
                .into_inner()
                .key
                .unwrap()
                .key_id,
        );
    }
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let failed = Arc::new(Mutex::new(0usize));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let mut client = AliasServiceClient::new(channel.clone());
            let (key, acknowledged, failed) =
                (keys[w].clone(), acknowledged.clone(), failed.clone());
            tokio::spawn(async move {
                for i in 0..45 {
                    let name = format!("alias/f{w}-{i}");
                    let request = aliasd::pb::CreateAliasRequest {
                        alias_name: name.clone(),
                        target_key_id: key.clone(),
                        request_id: String::new(),
                    };
                    match client.create_alias(request).await {
                        Ok(_) => acknowledged.lock().unwrap().push((name, key.clone())),
                        // Refused or unknown: not acknowledged; keep going
                        // until the instance is gone.
                        Err(status)
                            if status.code() == tonic::Code::Unavailable
                                && status.message().contains("transport") =>
                        {
                            return
                        }
                        Err(_) => *failed.lock().unwrap() += 1,
                    }
                }
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let acknowledged = acknowledged.clone();
        async move {
            // Long enough for a leader election after a member dies.
            for _ in 0..1500 {
                if acknowledged.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(20).await;
    // A member dies; the cluster (2 of 3) keeps a quorum.
    cluster.kill(0);
    let before_member = acknowledged.lock().unwrap().len();
    wait_for(before_member + 20).await;
    assert!(
        acknowledged.lock().unwrap().len() > before_member,
        "writes go on with one member down"
    );
    // Then the aliasd instance dies mid-write.
    first.kill().unwrap();
    first.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let (mut second, addr) = spawn_on_etcd(&cluster.endpoints, "/faults/");
    let mut client = AliasServiceClient::new(connect(addr).await);
    for (name, key) in &acknowledged {
        let alias = client
            .get_alias(aliasd::pb::GetAliasRequest {
                alias_name: name.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged {name} lost: {e:?}"))
            .into_inner()
            .alias
            .unwrap();
        assert_eq!(&alias.target_key_id, key);
    }
    second.kill().unwrap();
    second.wait().unwrap();
    let checked = aliasd(&[
        "check",
        "--backend",
        "etcd",
        "--etcd-endpoints",
        &cluster.endpoints.join(","),
        "--etcd-prefix",
        "/faults/",
    ])
    .await;
    assert!(checked.status.success(), "{checked:?}");
}

/// etcd over TLS with client certificates: aliasd trusts `--etcd-ca` and
/// presents `--etcd-cert`/`--etcd-key`; without the client certificate it
/// cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliasd_speaks_tls_with_client_certificates_to_etcd() {
    use rcgen::SanType;
    let files = tempfile::tempdir().unwrap();
    let ca = crate::common::ca("etcd test CA");
    let leaf = |name: &str, sans| crate::common::leaf(&ca, name, sans);
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (server_cert, server_key) = leaf(
        "etcd",
        vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
    );
    let (client_cert, client_key) = leaf("aliasd", vec![]);
    let tls = crate::etcd_support::EtcdTls {
        ca: write("ca.pem", &ca.pem),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        cert: write("client.pem", &client_cert),
        key: write("client.key", &client_key),
    };
    let etcd = tokio::task::spawn_blocking({
        let tls = tls.clone();
        move || EtcdServer::start_tls(Path::new(env!("CARGO_TARGET_TMPDIR")), tls)
    })
    .await
    .unwrap();
    assert!(etcd.endpoint.starts_with("https://"));

    let (endpoint, t) = (etcd.endpoint.clone(), tls.clone());
    let server = TestServer::start_configured(move |c| {
        on_etcd(c, &endpoint);
        c.store.etcd_ca = Some(t.ca);
        c.store.etcd_cert = Some(t.cert);
        c.store.etcd_key = Some(t.key);
    })
    .await;
    let key = server.create_key().await.key_id;
    server.create_alias("alias/over-tls", &key).await.unwrap();
    assert_eq!(
        server
            .get_alias("alias/over-tls")
            .await
            .unwrap()
            .target_key_id,
        key
    );

    // Without a client certificate etcd refuses the connection: no start.
    let ca = tls.ca.clone();
    let refused = cannot_start(&etcd.endpoint, move |c| c.store.etcd_ca = Some(ca)).await;
    assert!(refused, "started without a client certificate");
}

/// etcd with authentication on: aliasd signs in with `--etcd-user` and the
/// password, and cannot start without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliasd_signs_in_to_an_etcd_with_authentication() {
    use aliasd::store::etcd::etcdserverpb::auth_client::AuthClient;
    let etcd = etcd().await;
    let mut auth = AuthClient::new(channel(&etcd).await);
    auth.user_add(pb::AuthUserAddRequest {
        name: "root".into(),
        password: "root-password".into(),
    })
    .await
    .unwrap();
    auth.user_grant_role(pb::AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .unwrap();
    auth.auth_enable(pb::AuthEnableRequest {}).await.unwrap();

    let endpoint = etcd.endpoint.clone();
    let server = TestServer::start_configured(move |c| {
        on_etcd(c, &endpoint);
        c.store.etcd_user = Some("root".into());
        c.store.etcd_password = Some("root-password".into());
    })
    .await;
    let key = server.create_key().await.key_id;
    server.create_alias("alias/signed-in", &key).await.unwrap();
    assert_eq!(
        server
            .get_alias("alias/signed-in")
            .await
            .unwrap()
            .target_key_id,
        key
    );

    // etcd's tokens here lapse after a second unused (`--auth-token-ttl 1`):
    // one taken now is refused after three...
    let token = auth
        .authenticate(pb::AuthenticateRequest {
            name: "root".into(),
            password: "root-password".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .token;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut request = tonic::Request::new(pb::RangeRequest {
        key: b"/".to_vec(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("token", token.parse().unwrap());
    let lapsed = KvClient::new(channel(&etcd).await).range(request).await;
    let status = lapsed.expect_err("a lapsed token is refused");
    assert!(status.message().contains("token"), "{status:?}");
    // ...while aliasd, idle as long, signs in again and goes on serving.
    server
        .create_alias("alias/after-a-pause", &key)
        .await
        .unwrap();
    assert_eq!(
        server
            .get_alias("alias/after-a-pause")
            .await
            .unwrap()
            .target_key_id,
        key
    );

    for user in [None, Some(("root", "wrong"))] {
        let refused = cannot_start(&etcd.endpoint, |c| {
            c.store.etcd_user = user.map(|(u, _)| u.to_owned());
            c.store.etcd_password = user.map(|(_, p)| p.to_owned());
        })
        .await;
        assert!(refused, "started with {user:?}");
    }
}

/// The tests of this binary that start no in-process server of their own
/// (they run `aliasd` processes on sled, or are about etcd already), or
/// are about sled alone: the run on etcd leaves them out.
const NOT_ON_ETCD: &[(&str, &str)] = &[
    ("buf::", "lints proto/, no server"),
    ("cli::", "aliasd processes on sled data directories"),
    ("crash::", "kills aliasd processes on sled data directories"),
    ("deploy::", "container and unit files, no server"),
    ("durability::", "injects fsync failures into sled"),
    ("ephemeral::", "the in-memory store"),
    ("etcd::", "on etcd already (and would run itself)"),
    ("proxy::", "nginx in front: what it tests does not depend on the store"),
    ("readme::", "runs the README's commands on sled"),
    (
        "serving::a_second_server_on_the_same_data_directory",
        "sled's directory lock (instances share etcd by design)",
    ),
    (
        "serving::a_store_keeps_the_settings_it_was_made_with",
        "restarts on a sled directory (an_instance_with_other_store_settings_refuses_to_start is its etcd twin)",
    ),
];

/// The gRPC, HTTP and Python integration tests, run again with every
/// in-process server's store on one real etcd (a prefix per server): this
/// binary, run as a child with ALIASD_TEST_BACKEND=etcd.
#[test]
fn the_integration_suite_passes_on_etcd() {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child.env("ALIASD_TEST_BACKEND", "etcd");
    for (skip, _why) in NOT_ON_ETCD {
        child.args(["--skip", skip]);
    }
    let output = child.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .filter(|line| line.starts_with("test result:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        output.status.success(),
        "the suite on etcd failed: {summary}\n{}\n{}",
        stdout
            .find("\nfailures:")
            .map_or(&stdout[..], |at| &stdout[at..]),
        String::from_utf8_lossy(&output.stderr)
    );
    // It ran the servers' tests, not nothing.
    let passed: usize = summary
        .split_whitespace()
        .skip_while(|word| *word != "ok.")
        .nth(1)
        .and_then(|count| count.parse().ok())
        .unwrap_or(0);
    assert!(passed >= 120, "only {passed} tests ran on etcd: {summary}");
}

/// `aliasd bench --etcd-endpoints` measures a server it starts on etcd,
/// under a prefix of its own that it removes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_runs_a_server_on_etcd_and_removes_its_prefix() {
    let etcd = etcd().await;
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let output = crate::common::run_aliasd(
        &[
            "bench",
            "--etcd-endpoints",
            &etcd.endpoint,
            "--aliases",
            "40",
            "--seconds",
            "0.1",
            "--concurrency",
            "8",
            "--only",
            "CreateAlias",
        ],
        &[("TMPDIR", tmpdir)],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row = stdout
        .lines()
        .find(|line| line.starts_with("CreateAlias (durable)"))
        .unwrap_or_else(|| panic!("no CreateAlias row in\n{stdout}"));
    let rate: f64 = row["CreateAlias (durable)".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "{row}");
    assert!(stdout.contains("start-up on this etcd prefix"), "{stdout}");
    assert!(!stdout.contains("data directory"), "{stdout}");
    // Nothing left on etcd, nor in the temporary directory.
    let mut kv = KvClient::new(channel(&etcd).await);
    let left = kv
        .range(pb::RangeRequest {
            key: b"/aliasd-bench-".to_vec(),
            range_end: b"/aliasd-bench.".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(left, 0, "the bench's prefix was removed");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// The value of the sample `line` starts with, in a scrape.
fn sample(scrape: &str, line: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line} in the scrape"))
}

/// Reads come from each instance's mirror, and still see every write
/// acknowledged before them, through any instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_the_mirror_and_see_every_acknowledged_write() {
    let etcd = etcd().await;
    let start = |etcd: &EtcdServer| {
        let endpoint = etcd.endpoint.clone();
        TestServer::start_configured(move |c| {
            on_etcd(c, &endpoint);
            c.store.etcd_prefix = "/mirrored/".into();
            c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        })
    };
    let (a, b) = (start(&etcd).await, start(&etcd).await);
    let keys = [a.create_key().await.key_id, a.create_key().await.key_id];
    a.create_alias("alias/moving", &keys[0]).await.unwrap();
    for round in 0..20 {
        // Written through one instance, read at once through both.
        let (writer, target) = match round % 2 {
            0 => (&a, &keys[1]),
            _ => (&b, &keys[0]),
        };
        writer.update_alias("alias/moving", target).await.unwrap();
        for reader in [&a, &b] {
            let alias = reader.get_alias("alias/moving").await.unwrap();
            assert_eq!(&alias.target_key_id, target, "round {round}");
        }
        let listed = b.alias_names(target).await;
        assert_eq!(listed, ["alias/moving"], "round {round}");
    }
    for server in [&a, &b] {
        let scrape = crate::metrics::scrape(server).await;
        let mirrored = sample(&scrape, "aliasd_etcd_mirror_reads_total{served=\"mirror\"}");
        // Most reads: a read may still go to etcd when the mirror is a
        // moment behind (it waits at most 50 ms on this etcd version).
        assert!(mirrored >= 20.0, "{mirrored} reads from the mirror");
    }
}
