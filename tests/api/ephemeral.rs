//! `aliasd serve --ephemeral`: the real binary serves from memory, with the
//! same rules, and leaves nothing on disk; it cannot be combined with
//! --data-dir.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aliasd::pb;
use aliasd::pb::alias_service_client::AliasServiceClient;
use aliasd::pb::key_service_client::KeyServiceClient;
use tonic::transport::Channel;

use crate::common::assert_error;

/// Starts `aliasd serve` in `cwd` with ALIASD_EPHEMERAL=1 (the flag through
/// its environment variable) and reads the address it logs.
fn spawn_ephemeral(cwd: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(cwd)
        .env_remove("ALIASD_DATA_DIR")
        .env("ALIASD_EPHEMERAL", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aliasd starts");
    let stderr = child.stderr.take().unwrap();
    let (found, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                assert!(line.contains("in memory only"), "{line}");
                let addr = rest.split(char::is_whitespace).next().unwrap();
                let _ = found.send(addr.parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = addr
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");
    (child, addr)
}

async fn connect(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn alias_names(channel: &Channel) -> Vec<String> {
    AliasServiceClient::new(channel.clone())
        .list_aliases(pb::ListAliasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .aliases
        .into_iter()
        .map(|a| a.alias_name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ephemeral_serves_with_the_same_rules_and_leaves_nothing_on_disk() {
    let cwd = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_ephemeral(cwd.path());
    let channel = connect(addr).await;
    let key = KeyServiceClient::new(channel.clone())
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let mut aliases = AliasServiceClient::new(channel.clone());
    let create = pb::CreateAliasRequest {
        alias_name: "alias/ephemeral".into(),
        target_key_id: key.key_id.clone(),
        ..Default::default()
    };
    aliases.create_alias(create.clone()).await.unwrap();
    assert_error(
        aliases.create_alias(create).await,
        tonic::Code::AlreadyExists,
        "ALIAS_ALREADY_EXISTS",
    );
    assert_eq!(alias_names(&channel).await, ["alias/ephemeral"]);

    // Killed outright: whatever it kept was in memory.
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "left on disk: {left:?}");

    let (mut child, addr) = spawn_ephemeral(cwd.path());
    let channel = connect(addr).await;
    assert!(
        alias_names(&channel).await.is_empty(),
        "a new ephemeral server starts empty"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn ephemeral_with_a_data_dir_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ephemeral",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--ephemeral keeps nothing on disk and cannot be combined with --data-dir"),
        "{stderr}"
    );
    assert!(!data.exists());
}

/// `--ephemeral --pending-window-day-secs 1`: a 7-day deletion window passes
/// in 7 seconds, and the key and its aliases are removed, as a test suite
/// needs to see.
#[tokio::test]
async fn an_ephemeral_server_can_let_deletions_happen_in_seconds() {
    let server = crate::common::TestServer::start_configured(|config| {
        config.ephemeral = true;
        config.store.data_dir = aliasd::server::config::DEFAULT_DATA_DIR.into();
        config.pending_window_day_secs = 1;
        config.reap_interval_secs = 1;
    })
    .await;
    let key = server.create_key().await;
    server
        .create_alias("alias/short-lived", &key.key_id)
        .await
        .unwrap();
    let scheduled = server.schedule_deletion(&key.key_id, 7).await.unwrap();
    assert_eq!(scheduled.pending_window_in_days, 7);
    let due = scheduled.deletion_time.unwrap().seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((6..=8).contains(&(due - now)), "due in {} s", due - now);
    let started = std::time::Instant::now();
    loop {
        match server.describe(&key.key_id).await {
            Err(status) if status.code() == tonic::Code::NotFound => break,
            Ok(_) => {
                assert!(started.elapsed() < Duration::from_secs(30), "never removed");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "removed too early"
    );
    assert_eq!(
        server
            .get_alias("alias/short-lived")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::NotFound
    );
}

#[test]
fn a_short_pending_window_needs_ephemeral() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pending-window-day-secs",
            "1",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--pending-window-day-secs"), "{stderr}");
    assert!(stderr.contains("--ephemeral"), "{stderr}");
    assert!(!dir.path().join("data").exists());
}
