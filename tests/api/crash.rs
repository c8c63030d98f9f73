//! Durability: the real binary is killed with SIGKILL while clients write;
//! every acknowledged change is there after a restart.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliasd::pb;
use aliasd::pb::alias_service_client::AliasServiceClient;
use aliasd::pb::key_service_client::KeyServiceClient;
use tonic::transport::Channel;

/// Starts `aliasd serve` on an ephemeral port and reads the address it logs.
fn spawn_server(data_dir: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aliasd starts");
    let stderr = child.stderr.take().unwrap();
    let (found, addr) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    let _ = found.send(addr);
                    sent = true;
                }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_changes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server(dir.path());
    let channel = connect(addr).await;
    let mut keys = Vec::new();
    for _ in 0..8 {
        let key = KeyServiceClient::new(channel.clone())
            .create_key(pb::CreateKeyRequest::default())
            .await
            .unwrap()
            .into_inner()
            .key
            .unwrap();
        keys.push(key.key_id);
    }
    // Writers create aliases until the server dies; each records what was acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut client = AliasServiceClient::new(channel.clone());
            let key = keys[w].clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let name = format!("alias/w{w}-{i}");
                    let request = pb::CreateAliasRequest {
                        alias_name: name.clone(),
                        target_key_id: key.clone(),
                        request_id: String::new(),
                    };
                    match client.create_alias(request).await {
                        Ok(_) => acknowledged.lock().unwrap().push((name, key.clone())),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Kill mid-stream: once some writes are acknowledged, but well before all 400.
    for _ in 0..200 {
        if acknowledged.lock().unwrap().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty());

    let (child, addr) = spawn_server(dir.path());
    let mut client = AliasServiceClient::new(connect(addr).await);
    for (name, key) in &acknowledged {
        let alias = client
            .get_alias(pb::GetAliasRequest {
                alias_name: name.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged {name} lost after SIGKILL: {e:?}"))
            .into_inner()
            .alias
            .unwrap();
        assert_eq!(&alias.target_key_id, key);
    }
    stop_with_sigterm(child);

    let output = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["check", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "aliasd check: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// SIGTERM, then the exit status must be 0 (graceful shutdown).
fn stop_with_sigterm(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "graceful shutdown exits 0, got {exit:?}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_and_a_second_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _addr) = spawn_server(dir.path());
    let second = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another aliasd process"),
        "{stderr}"
    );
    stop_with_sigterm(child);
}
