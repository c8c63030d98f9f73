//! The etcd backend's groundwork (#11): a real etcd server for tests,
//! installed by the project itself (Debian's etcd-server 3.4.23, the .deb
//! unpacked under target/, its checksum pinned), and the v3 client aliasd
//! generates from `src/store/etcd/proto/` talking to it: conditional
//! transactions, ranges, watches from a revision, leases.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aliasd::store::etcd::etcdserverpb as pb;
use aliasd::store::etcd::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use aliasd::store::etcd::etcdserverpb::kv_client::KvClient;
use aliasd::store::etcd::etcdserverpb::lease_client::LeaseClient;
use aliasd::store::etcd::etcdserverpb::request_op::Request;
use aliasd::store::etcd::etcdserverpb::watch_client::WatchClient;
use tonic::transport::Channel;

const PACKAGE: &str = "etcd-server_3.4.23-4+b4_amd64.deb";
const PACKAGE_URL: &str =
    "http://deb.debian.org/debian/pool/main/e/etcd/etcd-server_3.4.23-4+b4_amd64.deb";
const PACKAGE_SHA256: &str = "3a9445d4560ad6de1c375756b2a17d97713df44cbd20a658c871fe108af7ef5d";

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The etcd binary, unpacked under target/ on first use.
pub fn etcd_binary() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("etcd");
    let binary = dir.join("root/usr/bin/etcd");
    if binary.exists() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let deb = dir.join(PACKAGE);
    if !deb.exists() || sha256(&deb) != PACKAGE_SHA256 {
        // apt's cache of the package lists, else Debian's mirror directly.
        let apt = Command::new("apt-get")
            .args(["download", "etcd-server=3.4.23-4+b4"])
            .current_dir(&dir)
            .output();
        if !matches!(apt, Ok(ref out) if out.status.success()) || !deb.exists() {
            let curl = Command::new("curl")
                .args(["-fsSL", "-o"])
                .arg(&deb)
                .arg(PACKAGE_URL)
                .status()
                .expect("curl runs");
            assert!(curl.success(), "cannot download {PACKAGE_URL}");
        }
    }
    assert_eq!(
        sha256(&deb),
        PACKAGE_SHA256,
        "{PACKAGE} is not the pinned package"
    );
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root"))
        .status()
        .expect("dpkg-deb runs");
    assert!(unpacked.success() && binary.exists());
    binary
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-member etcd on loopback ports, stopped when dropped.
pub struct EtcdServer {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    pub async fn start() -> EtcdServer {
        let binary = tokio::task::spawn_blocking(etcd_binary).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new(binary)
            .args(["--name", "test", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = EtcdServer {
            child,
            endpoint,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if let Ok(channel) = server.channel().await {
                let probe = KvClient::new(channel)
                    .range(pb::RangeRequest {
                        key: b"probe".to_vec(),
                        ..Default::default()
                    })
                    .await;
                if probe.is_ok() {
                    return server;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etcd did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        Channel::from_shared(self.endpoint.clone())
            .unwrap()
            .connect()
            .await
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let etcd = EtcdServer::start().await;
    let channel = etcd.channel().await.unwrap();
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
