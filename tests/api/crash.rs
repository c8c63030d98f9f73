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
    let (child, addr, _) = spawn_server_with(data_dir, &[]);
    (child, addr)
}

/// Like `spawn_server`, with extra flags; also returns every log line.
fn spawn_server_with(
    data_dir: &Path,
    extra: &[&str],
) -> (Child, SocketAddr, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--root-key-file")
        .arg(crate::common::root_key_file(data_dir))
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("aliasd starts");
    let stderr = child.stderr.take().unwrap();
    let (found, addr) = std::sync::mpsc::channel();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = lines.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr = rest
                        .split(|c: char| c.is_whitespace() || c == '"')
                        .next()
                        .unwrap();
                    let _ = found.send(addr.parse::<SocketAddr>().unwrap());
                    sent = true;
                }
            }
            log.lock().unwrap().push(line);
        }
    });
    let addr = addr
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");
    (child, addr, lines)
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

/// Sends SIGHUP to the server.
fn hangup(child: &Child) {
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Whether a log line containing `needle` shows up within 5 s.
async fn logs_within_5s(lines: &Mutex<Vec<String>>, needle: &str) -> bool {
    for _ in 0..100 {
        if lines.lock().unwrap().iter().any(|l| l.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_without_an_auth_file_is_logged_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, lines) = spawn_server_with(dir.path(), &[]);
    hangup(&child);
    let logged = logs_within_5s(&lines, "nothing to reload").await;
    assert!(logged, "SIGHUP is logged: {:?}", lines.lock().unwrap());
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP killed the server"
    );
    // Still serving, then a clean stop.
    KeyServiceClient::new(connect(addr).await)
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap();
    stop_with_sigterm(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_method_request_id_peer_status_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, lines) = spawn_server_with(dir.path(), &["--log-format", "json"]);
    let mut client = KeyServiceClient::new(connect(addr).await);
    let mut request = tonic::Request::new(pb::DescribeKeyRequest {
        key_id: "nope".into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "json-log-test-1".parse().unwrap());
    request.metadata_mut().insert(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            .parse()
            .unwrap(),
    );
    request
        .metadata_mut()
        .insert("tracestate", "congo=t61rcWkgMzE".parse().unwrap());
    assert!(client.describe_key(request).await.is_err());
    drop(client);
    stop_with_sigterm(child);
    let lines = lines.lock().unwrap().clone();
    let call = lines
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|entry| entry["span"]["x_request_id"] == "json-log-test-1")
        .unwrap_or_else(|| panic!("no JSON log line for the call in {lines:#?}"));
    assert_eq!(call["span"]["method"], "/aliasd.v1.KeyService/DescribeKey");
    assert!(call["span"]["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert_eq!(call["status"], "INVALID_ARGUMENT");
    assert_eq!(call["reason"], "INVALID_KEY_ID");
    assert_eq!(call["span"]["principal"], "anonymous");
    assert_eq!(call["span"]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(call["span"]["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(call["span"]["tracestate"], "congo=t61rcWkgMzE");
    let latency = call["latency_ms"].as_f64().unwrap();
    assert_eq!(
        latency,
        (latency * 100.0).round() / 100.0,
        "rounded: {latency}"
    );
    assert!(
        call.get("spans").is_none(),
        "the span is written once: {call}"
    );
    // Health checks (the test's own readiness probes) are DEBUG, not INFO.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("grpc.health.v1.Health/Check")),
        "{lines:#?}"
    );
    // The start-up line says what runs and how it is guarded.
    let startup = lines.iter().find(|l| l.contains("listening on")).unwrap();
    for part in [
        "(gRPC, plaintext)",
        "aliasd 0.1.0",
        "store: sled, data directory",
        "auth: none",
        "http: off",
    ] {
        assert!(startup.contains(part), "{part} in {startup}");
    }
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "every line is JSON"
    );
}

fn principal(name: &str, token: &str) -> String {
    format!(
        "[[principals]]\nname = \"{name}\"\naccount = \"111111111111\"\ntoken_sha256 = \"{}\"\n\
         [[principals.statements]]\nactions = \"kms:*\"\nresources = \"*\"\n",
        crate::common::token_sha256(token)
    )
}

async fn list_keys_as(
    client: &mut KeyServiceClient<Channel>,
    token: &str,
) -> Result<(), tonic::Status> {
    let mut request = tonic::Request::new(pb::ListKeysRequest::default());
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.list_keys(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_auth_file_and_a_bad_file_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    std::fs::write(&auth, principal("first", "token-1")).unwrap();
    let data = dir.path().join("data");
    let (child, addr, lines) = spawn_server_with(&data, &["--auth-file", auth.to_str().unwrap()]);
    let mut client = KeyServiceClient::new(connect(addr).await);
    list_keys_as(&mut client, "token-1").await.unwrap();
    assert_eq!(
        list_keys_as(&mut client, "token-2")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );

    // A new principal: token-2 starts working, token-1 stops.
    std::fs::write(&auth, principal("second", "token-2")).unwrap();
    hangup(&child);
    let mut reloaded = false;
    for _ in 0..100 {
        if list_keys_as(&mut client, "token-2").await.is_ok() {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "SIGHUP reloaded the auth file within 5s");
    assert_eq!(
        list_keys_as(&mut client, "token-1")
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );

    // A broken file: the one in force stays, and the log says why.
    std::fs::write(&auth, "[[principals]]\nname = 42\n").unwrap();
    hangup(&child);
    let logged = logs_within_5s(&lines, "keeping the one in force").await;
    assert!(logged, "the rejected reload is logged");
    list_keys_as(&mut client, "token-2").await.unwrap();

    // A file that names no principal would lock every caller out: refused
    // like a broken one.
    std::fs::write(&auth, "# emptied by mistake\n").unwrap();
    hangup(&child);
    let logged = logs_within_5s(&lines, "names no principal").await;
    assert!(logged, "the empty file's reload is refused and logged");
    list_keys_as(&mut client, "token-2").await.unwrap();
    drop(client);
    stop_with_sigterm(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_ends_when_its_principal_is_removed_from_the_auth_file() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    let both = format!(
        "{}{}",
        principal("admin", "admin-token"),
        principal("watcher", "watcher-token")
    );
    std::fs::write(&auth, &both).unwrap();
    let (child, addr, _lines) = spawn_server_with(
        &dir.path().join("data"),
        &["--auth-file", auth.to_str().unwrap()],
    );
    let channel = connect(addr).await;
    let mut watcher = AliasServiceClient::new(channel.clone());
    let mut stream = watcher
        .watch_aliases(crate::common::bearer(
            "watcher-token",
            pb::WatchAliasesRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    // Revoke the watcher.
    std::fs::write(&auth, principal("admin", "admin-token")).unwrap();
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    let mut keys = KeyServiceClient::new(channel.clone());
    for _ in 0..100 {
        if list_keys_as(&mut keys, "watcher-token").await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A change after the revocation is not delivered; the watch ends instead.
    let key = keys
        .create_key(crate::common::bearer(
            "admin-token",
            pb::CreateKeyRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    AliasServiceClient::new(channel.clone())
        .create_alias(crate::common::bearer(
            "admin-token",
            pb::CreateAliasRequest {
                alias_name: "alias/after-revoke".into(),
                target_key_id: key.key_id,
                request_id: String::new(),
            },
        ))
        .await
        .unwrap();
    let end = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_stream::StreamExt::next(&mut stream),
    )
    .await
    .expect("the watch ends promptly");
    match end {
        Some(Err(status)) => assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}"),
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    drop((watcher, keys, channel));
    stop_with_sigterm(child);
}

/// The soft and hard "Max open files" of a running process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

#[tokio::test]
async fn the_server_raises_its_open_file_limit_to_the_hard_limit() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_aliasd"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--root-key-file")
        .arg(crate::common::root_key_file(dir.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (getrlimit, setrlimit) between
    // fork and exec.
    unsafe {
        command.pre_exec(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
            limit.rlim_cur = limit.rlim_max.min(256);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (started, listening) = std::sync::mpsc::channel();
    // Reads the log to its end, so that the server never writes to a closed pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = started.send(());
            }
        }
    });
    listening
        .recv_timeout(Duration::from_secs(30))
        .expect("the server started");
    let (soft, hard) = open_file_limits(child.id());
    assert_eq!(soft, hard, "the soft limit was raised to the hard one");
    stop_with_sigterm(child);
}

#[tokio::test]
async fn a_server_whose_log_reader_went_away_still_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // This server's stderr is closed once its first line is read.
    let mut child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--root-key-file")
        .arg(crate::common::root_key_file(dir.path()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut first = String::new();
    BufReader::new(stderr).read_line(&mut first).unwrap();
    assert!(first.contains("listening on"), "{first}");
    // The reader is gone (dropped above); shutdown logs must not panic.
    stop_with_sigterm(child);
}

/// A failed TLS handshake on the gRPC port is logged at the default level
/// (tonic reports it at DEBUG, which the default filter shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_tls_handshake_on_the_grpc_port_is_logged_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-cert")
        .arg(&cert_path)
        .arg("--tls-key")
        .arg(&key_path)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.lock().unwrap().push(line);
        }
    });
    assert!(
        logs_within_5s(&lines, "listening on").await,
        "{:?}",
        lines.lock().unwrap()
    );
    let addr: SocketAddr = lines
        .lock()
        .unwrap()
        .iter()
        .find_map(|l| l.split("listening on ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // Plaintext HTTP/2 to the TLS port.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    assert!(
        logs_within_5s(&lines, "tls accept error").await,
        "{:?}",
        lines.lock().unwrap()
    );
    stop_with_sigterm(child);
}

/// SIGKILL while keys are being created and rotated on demand, and while
/// ciphertexts are made: after the restart every acknowledged key has its
/// material, every acknowledged rotation its version, and every
/// acknowledged ciphertext decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_keys_rotations_and_ciphertexts_survive_sigkill() {
    use aliasd::pb::crypto_service_client::CryptoServiceClient;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_server(dir.path());
    let channel = connect(addr).await;
    #[derive(Default)]
    struct Acknowledged {
        keys: Vec<String>,
        /// (key, material id made by a rotation)
        rotations: Vec<(String, String)>,
        /// (ciphertext, plaintext)
        ciphertexts: Vec<(Vec<u8>, Vec<u8>)>,
    }
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let channel = channel.clone();
            let acknowledged = acknowledged.clone();
            tokio::spawn(async move {
                let mut keys = KeyServiceClient::new(channel.clone());
                let mut crypto = CryptoServiceClient::new(channel);
                for i in 0..200 {
                    // Every worker makes keys; the even ones rotate theirs too.
                    let Ok(made) = keys.create_key(pb::CreateKeyRequest::default()).await else {
                        return;
                    };
                    let key = made.into_inner().key.unwrap().key_id;
                    acknowledged.lock().unwrap().keys.push(key.clone());
                    if w % 2 == 0 {
                        for _ in 0..3 {
                            let request = pb::RotateKeyOnDemandRequest {
                                key_id: key.clone(),
                            };
                            let Ok(rotated) = keys.rotate_key_on_demand(request).await else {
                                return;
                            };
                            let material =
                                rotated.into_inner().key.unwrap().current_key_material_id;
                            acknowledged
                                .lock()
                                .unwrap()
                                .rotations
                                .push((key.clone(), material));
                        }
                    }
                    let plaintext = format!("worker {w} item {i}").into_bytes();
                    let request = pb::EncryptRequest {
                        key_id: key.clone(),
                        plaintext: plaintext.clone().into(),
                        ..Default::default()
                    };
                    let Ok(sealed) = crypto.encrypt(request).await else {
                        return;
                    };
                    acknowledged
                        .lock()
                        .unwrap()
                        .ciphertexts
                        .push((sealed.into_inner().ciphertext_blob.to_vec(), plaintext));
                }
            })
        })
        .collect();
    for _ in 0..400 {
        if acknowledged.lock().unwrap().rotations.len() >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for worker in workers {
        worker.await.unwrap();
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().unwrap());
    assert!(!acknowledged.rotations.is_empty() && !acknowledged.ciphertexts.is_empty());

    let (child, addr) = spawn_server(dir.path());
    let channel = connect(addr).await;
    let mut keys = KeyServiceClient::new(channel.clone());
    let mut crypto = CryptoServiceClient::new(channel);
    for key in &acknowledged.keys {
        let described = keys
            .describe_key(pb::DescribeKeyRequest {
                key_id: key.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged key {key} lost: {e:?}"))
            .into_inner()
            .key
            .unwrap();
        assert_eq!(
            described.current_key_material_id.len(),
            64,
            "{key} has material"
        );
    }
    for (key, material) in &acknowledged.rotations {
        let rotations = keys
            .list_key_rotations(pb::ListKeyRotationsRequest {
                key_id: key.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .rotations;
        assert!(
            rotations.iter().any(|r| &r.key_material_id == material),
            "acknowledged rotation {material} of {key} lost"
        );
    }
    for (blob, plaintext) in &acknowledged.ciphertexts {
        let opened = crypto
            .decrypt(pb::DecryptRequest {
                ciphertext_blob: blob.clone().into(),
                ..Default::default()
            })
            .await
            .expect("an acknowledged ciphertext decrypts after SIGKILL")
            .into_inner();
        assert_eq!(&opened.plaintext, plaintext);
    }
    stop_with_sigterm(child);
}
