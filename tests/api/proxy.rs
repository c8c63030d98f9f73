//! aliasd behind a real nginx (Debian's package, unpacked under `target/`
//! by `apt-get download`): nginx cuts off a gRPC stream on which the
//! upstream sent nothing for `grpc_read_timeout`; a watch that asks for
//! progress outlives it, and so does the CLI's watch. Behind it, the
//! audit log names the client nginx forwarded, but only when nginx is one
//! of `--trusted-proxies`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aliasd::pb;
use aliasd::pb::alias_service_client::AliasServiceClient;

use crate::common::*;

/// nginx's binary, unpacked from Debian's package on first use (the
/// system's package tools fetch and verify it).
fn nginx_binary() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let _across_processes = crate::python::install_lock("nginx");
    let dir = crate::etcd_support::cache_dir().join("nginx");
    let binary = dir.join("root/usr/sbin/nginx");
    if binary.exists() {
        return binary;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let fetched = Command::new("apt-get")
        .args(["download", "nginx"])
        .current_dir(&dir)
        .output()
        .expect("apt-get runs");
    assert!(
        fetched.status.success(),
        "apt-get download nginx: {}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    let deb = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
        .expect("the nginx package");
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root"))
        .status()
        .expect("dpkg-deb runs");
    assert!(
        unpacked.success() && binary.exists(),
        "nginx did not unpack"
    );
    binary
}

/// An nginx in front of `upstream` (h2c on both sides), with
/// `grpc_read_timeout` as given; killed when dropped.
struct Nginx {
    child: Child,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstream: std::net::SocketAddr, read_timeout: &str) -> Nginx {
        Self::start_with(upstream, read_timeout, "")
    }

    /// [`Nginx::start`] with more directives for its `location`.
    fn start_with(upstream: std::net::SocketAddr, read_timeout: &str, more: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = |name: &str| dir.path().join(name).display().to_string();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {pid};\n\
             error_log {log} info;\nevents {{}}\nhttp {{\n  access_log off;\n\
             client_body_temp_path {tmp};\n  proxy_temp_path {tmp};\n  fastcgi_temp_path {tmp};\n\
             uwsgi_temp_path {tmp};\n  scgi_temp_path {tmp};\n\
             server {{\n    listen 127.0.0.1:{port} http2;\n    location / {{\n\
             grpc_pass grpc://{upstream};\n      grpc_read_timeout {read_timeout};\n\
             grpc_send_timeout {read_timeout};\n{more}\n    }}\n  }}\n}}\n",
            pid = path("nginx.pid"),
            log = path("error.log"),
            tmp = path("tmp"),
        );
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        // Killed on drop, whatever happens next.
        let nginx = Nginx {
            child,
            addr,
            _dir: dir,
        };
        // Hang guard only: nginx listens within milliseconds.
        for _ in 0..200 {
            if std::net::TcpStream::connect(addr).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "nginx did not listen: {}",
            std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default()
        );
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn through(nginx: &Nginx) -> AliasServiceClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", nginx.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    AliasServiceClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_asks_for_progress_outlives_nginxs_read_timeout() {
    let server = TestServer::start_configured(|c| c.watch_progress_interval_secs = 1).await;
    let nginx = Nginx::start(server.running.as_ref().unwrap().addr, "3s");
    let key = server.create_key().await.key_id;
    let watch = |progress_notify| {
        let nginx = &nginx;
        async move {
            through(nginx)
                .await
                .watch_aliases(pb::WatchAliasesRequest {
                    key_id: String::new(),
                    start_revision: Some(0),
                    progress_notify,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut quiet = watch(false).await;
    let mut kept = watch(true).await;

    // Nothing happens for longer than nginx's read timeout: the watch that
    // sent nothing is cut off (nginx answers INTERNAL)...
    let cut = tokio::time::timeout(Duration::from_secs(30), quiet.message())
        .await
        .expect("nginx ends the quiet watch");
    let status = cut.expect_err("the quiet watch ends with an error");
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");

    // ...while the one with progress has heard from the server meanwhile
    // and still delivers the next change.
    server.create_alias("alias/late", &key).await.unwrap();
    let mut progress = 0;
    let change = loop {
        let message = tokio::time::timeout(Duration::from_secs(30), kept.message())
            .await
            .expect("a message within 30 s")
            .expect("the watch with progress is still open")
            .expect("the stream goes on");
        match message.event {
            Some(event) => break event,
            None => progress += 1,
        }
    };
    assert!(progress >= 2, "{progress} progress messages while idle");
    assert_eq!(change.alias.unwrap().alias_name, "alias/late");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clis_watch_through_nginx_is_not_interrupted_by_a_quiet_spell() {
    let server = TestServer::start_configured(|c| c.watch_progress_interval_secs = 1).await;
    let nginx = Nginx::start(server.running.as_ref().unwrap().addr, "3s");
    let key = server.create_key().await.key_id;
    let watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args([
            "alias",
            "watch",
            "--from-revision",
            "0",
            "--count",
            "1",
            "-o",
            "json",
        ])
        .env("ALIASD_ENDPOINT", nginx.addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Quiet for longer than nginx's read timeout (the watch is open by then:
    // it started before the change below, from revision 0 either way).
    tokio::time::sleep(Duration::from_secs(5)).await;
    server
        .create_alias("alias/after-a-while", &key)
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), watch.wait_with_output())
        .await
        .expect("the watch printed the change and stopped")
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{err}");
    assert!(out.contains("alias/after-a-while"), "{out}");
    assert!(
        !err.contains("interrupted"),
        "the proxy cut the watch: {err}"
    );
}

/// The audit records of `action` on `server`, oldest first.
async fn audited(server: &TestServer, action: &str) -> Vec<pb::AuditEvent> {
    let mut audit =
        aliasd::pb::audit_service_client::AuditServiceClient::new(server.channel.clone());
    audit
        .list_audit_events(pb::ListAuditEventsRequest {
            action: action.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

/// A client's call through nginx, which connects upstream from 127.0.0.2
/// and appends the client's address (127.0.0.1) to X-Forwarded-For; the
/// client itself claims to be 198.51.100.66 there, and 6.6.6.6 in a
/// Forwarded header nginx passes through untouched.
async fn create_alias_through(nginx: &Nginx, name: &str, key_id: &str) {
    let mut request = tonic::Request::new(pb::CreateAliasRequest {
        alias_name: name.to_owned(),
        target_key_id: key_id.to_owned(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-forwarded-for", "198.51.100.66".parse().unwrap());
    request
        .metadata_mut()
        .insert("forwarded", "for=6.6.6.6".parse().unwrap());
    through(nginx).await.create_alias(request).await.unwrap();
}

const FORWARDING: &str = "      grpc_bind 127.0.0.2;\n      \
    grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n      \
    grpc_set_header User-Agent \"$http_user_agent via-nginx\";";

/// A server with the HTTP door that trusts `trusted`, behind an nginx
/// that forwards (FORWARDING), a key, and `alias/proxied` created for it
/// through nginx.
async fn behind_nginx(trusted: &str) -> (TestServer, Nginx, String) {
    let trusted = aliasd::door::origin::parse_trusted_proxies(trusted).unwrap();
    let server = TestServer::start_http(|c| c.trusted_proxies = trusted).await;
    let nginx = Nginx::start_with(server.running.as_ref().unwrap().addr, "10s", FORWARDING);
    let key = server.create_key().await.key_id;
    create_alias_through(&nginx, "alias/proxied", &key).await;
    (server, nginx, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_names_the_client_a_trusted_proxy_forwarded() {
    let (server, _nginx, key) = behind_nginx("127.0.0.2").await;

    // A direct call from an untrusted peer with a forwarded header of its
    // own: the header is ignored.
    let mut direct = tonic::Request::new(pb::CreateAliasRequest {
        alias_name: "alias/direct".into(),
        target_key_id: key.clone(),
        ..Default::default()
    });
    direct
        .metadata_mut()
        .insert("x-forwarded-for", "203.0.113.50".parse().unwrap());
    server.aliases.clone().create_alias(direct).await.unwrap();

    let events = audited(&server, "kms:CreateAlias").await;
    let origins: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.resources[0].as_str(),
                e.door.as_str(),
                e.source_address.as_str(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            // nginx (127.0.0.2) is trusted: the client it forwarded, not
            // the one the client claimed.
            ("alias/proxied", "grpc", "127.0.0.1"),
            ("alias/direct", "grpc", "127.0.0.1"),
        ],
        "{events:?}"
    );
    assert!(
        events[0].user_agent.starts_with("tonic/") && events[0].user_agent.ends_with("via-nginx"),
        "{:?}",
        events[0].user_agent
    );

    // The HTTP door the same way: a trusted peer's X-Forwarded-For names
    // the client.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let stream = socket
        .connect(server.running.as_ref().unwrap().http_addr.unwrap())
        .await
        .unwrap();
    let body = format!(r#"{{"AliasName":"alias/over-http","TargetKeyId":"{key}"}}"#);
    let reply = http_exchange(
        stream,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.CreateAlias"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("User-Agent", "Boto3/1.35.0 test"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let events = audited(&server, "kms:CreateAlias").await;
    let last = events.last().unwrap();
    assert_eq!(
        (
            last.resources[0].as_str(),
            last.door.as_str(),
            last.source_address.as_str(),
            last.user_agent.as_str()
        ),
        ("alias/over-http", "aws", "203.0.113.7", "Boto3/1.35.0 test"),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_proxys_forwarded_headers_are_ignored() {
    // Trusts another address than the proxy's.
    let (server, _nginx, key) = behind_nginx("10.0.0.0/8").await;
    let events = audited(&server, "kms:CreateAlias").await;
    assert_eq!(events.len(), 1, "{events:?}");
    // The peer, nginx: neither address its header named.
    assert_eq!(events[0].source_address, "127.0.0.2", "{events:?}");

    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.CreateAlias"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Forwarded", "for=203.0.113.7"),
        ],
        format!(r#"{{"AliasName":"alias/over-http","TargetKeyId":"{key}"}}"#).as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    let events = audited(&server, "kms:CreateAlias").await;
    assert_eq!(
        (events[1].door.as_str(), events[1].source_address.as_str()),
        ("aws", "127.0.0.1"),
        "{events:?}"
    );
}
