//! A real etcd for tests, installed by the project itself: Debian's
//! etcd-server 3.4.23 (the v3 API; 3.5.0-3.5.2 have a data-inconsistency
//! bug), fetched with the system's package tools (`apt-get download`),
//! checked against a pinned SHA-256 and unpacked under `target/`.
//!
//! Test support, not part of the server: the library's own tests include
//! it (`store::etcd::testing`, under `cfg(test)`) and so do the integration
//! tests (`tests/api/main.rs`); the release binary does not.

// Each includer uses part of it (the library's tests no cluster, the
// integration tests not every helper).
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aliasd::store::backend::{Reads, Tree};
use aliasd::store::etcd::{EtcdBackend, EtcdConfig};

const PACKAGE: &str = "etcd-server_3.4.23-4+b4_amd64.deb";
const PACKAGE_SHA256: &str = "3a9445d4560ad6de1c375756b2a17d97713df44cbd20a658c871fe108af7ef5d";

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap_or_default())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where tests cache what they install: `$CARGO_TARGET_DIR`, or the
/// crate's `target/`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("test-tools")
}

/// The etcd binary, unpacked under `cache` on first use.
pub fn etcd_binary(cache: &Path) -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = cache.join("etcd");
    std::fs::create_dir_all(&dir).expect("the cache directory");
    // Test processes run side by side (`cargo nextest`): one unpacks.
    let _across_processes = {
        use std::os::fd::AsRawFd;
        let lock = std::fs::File::create(dir.join("install.lock")).expect("the install lock");
        // SAFETY: flock on a descriptor owned here.
        assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
        lock
    };
    let binary = dir.join("root/usr/bin/etcd");
    if binary.exists() {
        return binary;
    }
    if let Err(why) =
        unpack_pinned_package(&dir, "etcd-server=3.4.23-4+b4", PACKAGE, PACKAGE_SHA256)
    {
        panic!("{why}");
    }
    assert!(binary.exists(), "etcd did not unpack");
    binary
}

/// A pinned Debian package (`spec`, NAME=VERSION), fetched into `dir` with
/// the system's package tools (`apt-get download`) unless its `file` is
/// there already, checked against its SHA-256 and unpacked into
/// `dir/root`. Err says why it could not be fetched; a file that is not
/// the pinned one fails the test.
pub fn unpack_pinned_package(
    dir: &Path,
    spec: &str,
    file: &str,
    pinned_sha256: &str,
) -> Result<(), String> {
    let deb = dir.join(file);
    if sha256(&deb) != pinned_sha256 {
        let apt = Command::new("apt-get")
            .args(["download", spec])
            .current_dir(dir)
            .output()
            .map_err(|e| format!("apt-get download {spec}: {e}"))?;
        if !apt.status.success() || !deb.exists() {
            return Err(format!(
                "apt-get download {spec}: {}",
                String::from_utf8_lossy(&apt.stderr)
            ));
        }
    }
    assert_eq!(
        sha256(&deb),
        pinned_sha256,
        "{file} is not the pinned package"
    );
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(dir.join("root"))
        .status()
        .expect("dpkg-deb runs");
    assert!(unpacked.success(), "{file} did not unpack");
    Ok(())
}

/// A member's name, data directory, and client and peer URLs.
fn member_args<'a>(
    command: &'a mut Command,
    name: &str,
    data_dir: &Path,
    client_url: &str,
    peer_url: &str,
) -> &'a mut Command {
    command
        .args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
        ])
        .args([
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
        ])
        // Auth tokens (when auth is enabled) lapse after a second unused,
        // not 300 s: the auth test sees aliasd sign in again.
        .args(["--auth-token-ttl", "1"])
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// PEM files for an etcd that serves TLS and checks client certificates.
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The client's certificate and key (signed by `ca`).
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Kills a process and removes its directory when the test process ends,
/// however it ends (a shared etcd in a `static` is never dropped; a test
/// binary may be killed): a shell that waits for its standard input, which
/// only this process writes, to close.
struct Watchdog(Child);

impl Watchdog {
    fn over(process: &Child, dir: &Path) -> Option<Watchdog> {
        Command::new("sh")
            .args([
                "-c",
                r#"read _; kill -9 "$0" 2>/dev/null; sleep 1; rm -rf "$1""#,
            ])
            .arg(process.id().to_string())
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(Watchdog)
    }
}

impl Drop for Watchdog {
    /// Called off: the owner stops its process itself.
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A single-member etcd on loopback ports, killed when dropped (or when the
/// test process ends).
pub struct EtcdServer {
    child: Child,
    watchdog: Option<Watchdog>,
    /// How it was started (to start it again).
    command: Command,
    tls: Option<EtcdTls>,
    pub endpoint: String,
    /// Its data directory, removed when it stops.
    dir: PathBuf,
}

impl EtcdServer {
    /// Starts one and waits (blocking) until it answers.
    pub fn start(cache: &Path) -> EtcdServer {
        Self::start_with(cache, None)
    }

    /// Starts one serving TLS with `tls`'s server certificate, requiring
    /// client certificates signed by its CA (the client certificate in
    /// `tls` is what [`EtcdServer::config`] presents).
    pub fn start_tls(cache: &Path, tls: EtcdTls) -> EtcdServer {
        Self::start_with(cache, Some(tls))
    }

    fn start_with(cache: &Path, tls: Option<EtcdTls>) -> EtcdServer {
        // A port picked free can be taken by another test before etcd binds
        // it: then etcd exits, and it is tried again on other ports.
        for _ in 0..3 {
            if let Some(server) = Self::try_start(cache, tls.clone()) {
                return server;
            }
        }
        panic!("etcd did not start three times (see the lines above)");
    }

    fn try_start(cache: &Path, tls: Option<EtcdTls>) -> Option<EtcdServer> {
        let binary = etcd_binary(cache);
        let dir = cache
            .join("etcd/runs")
            .join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir).expect("a data directory");
        let (client, peer) = (free_port(), free_port());
        let scheme = if tls.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut command = Command::new(binary);
        if let Some(tls) = &tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let log = std::fs::File::create(dir.join("etcd.log")).expect("a log file");
        member_args(
            &mut command,
            "test",
            &dir.join("data"),
            &endpoint,
            &peer_url,
        )
        .args(["--initial-cluster", &format!("test={peer_url}")])
        .stdout(Stdio::null())
        .stderr(log);
        let child = command.spawn().expect("etcd starts");
        let mut server = EtcdServer {
            watchdog: Watchdog::over(&child, &dir),
            child,
            command,
            endpoint,
            dir,
            tls,
        };
        if server.serving() {
            return Some(server);
        }
        let log = std::fs::read_to_string(server.dir.join("etcd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        eprintln!("etcd did not start on {}: {tail:?}", server.endpoint);
        None
    }

    /// Waits until it answers (true), or until it exits or 60 s pass.
    fn serving(&mut self) -> bool {
        let probe = EtcdBackend::connect(&self.config("/probe/")).expect("a client");
        let started = Instant::now();
        while probe.get(Tree::Meta, b"probe").is_err() {
            if matches!(self.child.try_wait(), Ok(Some(_)))
                || started.elapsed() > Duration::from_secs(60)
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    /// Kills it (SIGKILL): its data stays.
    pub fn kill(&mut self) {
        self.watchdog = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same ports and data, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.child = self.command.spawn().expect("etcd starts again");
        self.watchdog = Watchdog::over(&self.child, &self.dir);
        assert!(self.serving(), "etcd did not start again");
    }

    /// A backend configuration for this server under `prefix`.
    pub fn config(&self, prefix: &str) -> EtcdConfig {
        EtcdConfig {
            ca: self.tls.as_ref().map(|t| t.ca.clone()),
            client_cert: self.tls.as_ref().map(|t| (t.cert.clone(), t.key.clone())),
            ..EtcdConfig::plain(vec![self.endpoint.clone()], prefix)
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.watchdog = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A three-member etcd cluster on loopback ports, killed when dropped (or
/// when the test process ends).
pub struct EtcdCluster {
    members: Vec<Child>,
    watchdogs: Vec<Option<Watchdog>>,
    pub endpoints: Vec<String>,
    dir: PathBuf,
}

impl EtcdCluster {
    /// Starts three members and waits (blocking) until the cluster answers
    /// (tried again on other ports if a member could not start).
    pub fn start(cache: &Path) -> EtcdCluster {
        for _ in 0..3 {
            if let Some(cluster) = Self::try_start(cache) {
                return cluster;
            }
        }
        panic!("the etcd cluster did not start three times");
    }

    fn try_start(cache: &Path) -> Option<EtcdCluster> {
        let binary = etcd_binary(cache);
        let dir = cache
            .join("etcd/runs")
            .join(uuid::Uuid::new_v4().to_string());
        std::fs::create_dir_all(&dir).expect("a data directory");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect();
        let initial = initial.join(",");
        let mut members = Vec::new();
        let mut endpoints = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let endpoint = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let name = format!("m{i}");
            let mut command = Command::new(&binary);
            let child = member_args(&mut command, &name, &dir.join(&name), &endpoint, &peer_url)
                .args([
                    "--initial-cluster",
                    &initial,
                    "--initial-cluster-state",
                    "new",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("etcd starts");
            members.push(child);
            endpoints.push(endpoint);
        }
        let cluster = EtcdCluster {
            watchdogs: members.iter().map(|m| Watchdog::over(m, &dir)).collect(),
            members,
            endpoints,
            dir,
        };
        // Every member answers a linearizable read (one alone may answer
        // while another is still joining).
        let probes: Vec<EtcdBackend> = cluster
            .endpoints
            .iter()
            .map(|endpoint| {
                EtcdBackend::connect(&EtcdConfig::plain(vec![endpoint.clone()], "/probe/"))
                    .expect("a client")
            })
            .collect();
        let started = Instant::now();
        let mut cluster = cluster;
        while probes
            .iter()
            .any(|probe| probe.get(Tree::Meta, b"probe").is_err())
        {
            let exited = cluster
                .members
                .iter_mut()
                .any(|m| matches!(m.try_wait(), Ok(Some(_))));
            if exited || started.elapsed() > Duration::from_secs(60) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(cluster)
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.watchdogs[i] = None;
        let _ = self.members[i].kill();
        let _ = self.members[i].wait();
    }

    /// A backend configuration for the whole cluster under `prefix`.
    pub fn config(&self, prefix: &str) -> EtcdConfig {
        EtcdConfig::plain(self.endpoints.clone(), prefix)
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.watchdogs.clear();
        for member in &mut self.members {
            let _ = member.kill();
            let _ = member.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
