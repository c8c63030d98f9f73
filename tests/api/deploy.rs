//! The deployment files (`deploy/`): the Dockerfile's command, the
//! Kubernetes manifest's arguments and the systemd unit's ExecStart each
//! start the real binary (on loopback, in a scratch directory), and the
//! ports they publish, probe and expose are the ones the server listens on.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn deploy(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(name),
    )
    .unwrap()
}

/// The Dockerfile's CMD (a JSON array).
fn docker_args() -> Vec<String> {
    let text = deploy("Dockerfile");
    let cmd = text.lines().find_map(|l| l.strip_prefix("CMD ")).unwrap();
    serde_json::from_str(cmd).unwrap()
}

/// The container's `args:` list in the manifest.
fn kubernetes_args() -> Vec<String> {
    let text = deploy("kubernetes.yaml");
    text.lines()
        .skip_while(|l| l.trim() != "args:")
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(str::to_owned)
        .collect()
}

/// ExecStart's arguments (after the binary).
fn systemd_args() -> Vec<String> {
    let text = deploy("aliasd.service");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    line.split_whitespace().skip(1).map(str::to_owned).collect()
}

/// `--flag=value` and `--flag value` alike, as (flag, value) pairs.
fn flags(args: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 1; // after "serve"
    while i < args.len() {
        match args[i].split_once('=') {
            Some((flag, value)) => {
                out.push((flag.to_owned(), value.to_owned()));
                i += 1;
            }
            None => {
                out.push((
                    args[i].clone(),
                    args.get(i + 1).cloned().unwrap_or_default(),
                ));
                i += 2;
            }
        }
    }
    out
}

fn port_of(flags: &[(String, String)], flag: &str) -> Option<u16> {
    flags
        .iter()
        .find(|(f, _)| f == flag)
        .map(|(_, addr)| addr.rsplit(':').next().unwrap().parse().unwrap())
}

/// Runs `aliasd` with `args`, moved onto loopback ephemeral ports and a
/// scratch directory; returns its start-up line once it serves, then stops
/// it with SIGTERM and checks it exits 0.
fn starts(args: &[String]) -> String {
    let scratch = tempfile::tempdir().unwrap();
    let auth = scratch.path().join("auth.toml");
    std::fs::write(
        &auth,
        "[[principals]]\nname = \"ops\"\naccount = \"111122223333\"\n\
         token_sha256 = \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"\n",
    )
    .unwrap();
    let data = scratch.path().join("data");
    let args: Vec<String> = flags(args)
        .into_iter()
        .flat_map(|(flag, value)| {
            let value = if flag.ends_with("listen") {
                "127.0.0.1:0".to_owned()
            } else if value == "/var/lib/aliasd" {
                data.to_str().unwrap().to_owned()
            } else if value == "/etc/aliasd/auth.toml" || value == "%d/auth.toml" {
                auth.to_str().unwrap().to_owned()
            } else {
                value
            };
            [flag, value]
        })
        .collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .arg("serve")
        .args(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (found, line) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let started = line.contains("listening on") && !line.contains("HTTP listening on");
            if started || line.contains("cannot start") || line.contains("\"ERROR\"") {
                let _ = found.send(line);
            }
        }
    });
    let line = line
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no start-up line for {args:?}"));
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    assert!(line.contains("listening on"), "{args:?}: {line}");
    assert!(status.success(), "{args:?}: {status}");
    assert!(data.exists(), "the data directory was used");
    line
}

#[test]
fn the_dockerfile_kubernetes_and_systemd_commands_start_the_server() {
    for (file, args) in [
        ("Dockerfile", docker_args()),
        ("kubernetes.yaml", kubernetes_args()),
        ("aliasd.service", systemd_args()),
    ] {
        assert_eq!(args.first().map(String::as_str), Some("serve"), "{file}");
        let line = starts(&args);
        for listener in ["metrics", "health"] {
            assert!(
                !line.contains(&format!("{listener}: off")),
                "{file}: {line}"
            );
        }
        assert!(line.contains("1 principal from"), "{file}: {line}");
    }
}

#[test]
fn the_ports_published_and_probed_are_the_ones_listened_on() {
    let docker = flags(&docker_args());
    let listened: BTreeSet<u16> = [
        "--listen",
        "--http-listen",
        "--health-listen",
        "--metrics-listen",
    ]
    .iter()
    .filter_map(|flag| port_of(&docker, flag))
    .collect();
    let dockerfile = deploy("Dockerfile");
    let exposed: BTreeSet<u16> = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(exposed, listened, "Dockerfile EXPOSE");

    let kubernetes = flags(&kubernetes_args());
    let manifest = deploy("kubernetes.yaml");
    let container_ports: BTreeSet<u16> = manifest
        .lines()
        .filter_map(|l| l.split("containerPort: ").nth(1))
        .map(|p| p.trim_end_matches([' ', '}']).parse().unwrap())
        .collect();
    let k8s_listened: BTreeSet<u16> = [
        "--listen",
        "--http-listen",
        "--health-listen",
        "--metrics-listen",
    ]
    .iter()
    .filter_map(|flag| port_of(&kubernetes, flag))
    .collect();
    assert_eq!(container_ports, k8s_listened, "containerPort");
    // Every probe targets the health listener.
    let health = port_of(&kubernetes, "--health-listen").unwrap();
    let probe_ports: Vec<u16> = manifest
        .lines()
        .filter(|l| l.contains("grpc: { port:") || l.contains("httpGet:"))
        .map(|l| {
            l.split("port: ")
                .nth(1)
                .unwrap()
                .trim_end_matches([' ', '}'])
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(probe_ports, [health, health, health]);
    // The grace period covers the preStop sleep and the drain.
    let number_after = |key: &str| -> u64 {
        manifest
            .lines()
            .find_map(|l| l.split(key).nth(1))
            .unwrap()
            .trim_end_matches([' ', '}'])
            .parse()
            .unwrap()
    };
    let drain: u64 = kubernetes
        .iter()
        .find(|(f, _)| f == "--drain-timeout-secs")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(
        number_after("terminationGracePeriodSeconds: ")
            >= number_after("sleep: { seconds: ") + drain + 5
    );
    // systemd waits longer than the drain too.
    let unit = deploy("aliasd.service");
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .unwrap()
        .parse()
        .unwrap();
    let unit_drain: u64 = flags(&systemd_args())
        .into_iter()
        .find(|(f, _)| f == "--drain-timeout-secs")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!(stop >= unit_drain + 5);
}

#[test]
fn the_systemd_unit_hands_its_dynamic_user_the_auth_file_as_a_credential() {
    // A dynamic user cannot own a file in /etc, and aliasd refuses an auth
    // file with secrets that others may read: the file must come through
    // LoadCredential= (a copy only the service can read) and be named by
    // its place in the credentials directory (%d).
    let unit = deploy("aliasd.service");
    assert!(unit.contains("DynamicUser=yes"));
    let loaded = unit
        .lines()
        .find_map(|l| l.strip_prefix("LoadCredential="))
        .expect("LoadCredential= for the auth file");
    assert_eq!(loaded, "auth.toml:/etc/aliasd/auth.toml");
    let auth_file = flags(&systemd_args())
        .into_iter()
        .find(|(flag, _)| flag == "--auth-file")
        .unwrap()
        .1;
    assert_eq!(auth_file, "%d/auth.toml");
}

#[test]
fn the_image_has_ca_roots_and_a_small_build_context() {
    let dockerfile = deploy("Dockerfile");
    let runtime = dockerfile.split("FROM ").nth(2).expect("a runtime stage");
    assert!(runtime.contains("ca-certificates"), "{runtime}");
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore"))
            .expect("a .dockerignore beside the Dockerfile's context");
    let ignored: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    for needed in ["target/", "aliasd-data/", ".git/"] {
        assert!(ignored.contains(&needed), "{needed} not in .dockerignore");
    }
}

#[test]
fn the_manifest_pins_its_image_says_its_kubernetes_and_governs_with_a_headless_service() {
    let manifest = deploy("kubernetes.yaml");
    assert!(
        manifest.contains("Kubernetes 1.30 or later"),
        "the preStop sleep needs 1.30"
    );
    let images: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("image: "))
        .collect();
    assert!(!images.is_empty());
    for image in &images {
        let (_, tag) = image.rsplit_once(':').expect("a tagged image");
        assert_ne!(tag, "latest", "{image}");
    }
    let pull_policies = manifest
        .lines()
        .filter(|l| l.trim() == "imagePullPolicy: IfNotPresent")
        .count();
    assert_eq!(pull_policies, images.len());
    // serviceName names a Service whose clusterIP is None.
    let governing = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("serviceName: "))
        .unwrap();
    let service = manifest
        .split("---")
        .find(|doc| doc.contains("kind: Service") && doc.contains(&format!("name: {governing}\n")))
        .unwrap_or_else(|| panic!("no Service named {governing}"));
    assert!(service.contains("clusterIP: None"), "{service}");
}

#[test]
fn the_release_binary_carries_no_debug_info_and_a_profile_keeps_it() {
    // Line tables made 91 MB of a 114 MB binary: the release profile has
    // none, and `--profile profiling` builds the same code with them.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let section = |name: &str| -> String {
        manifest
            .split(&format!("[profile.{name}]\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no [profile.{name}]"))
            .split("\n[")
            .next()
            .unwrap()
            .to_owned()
    };
    let release = section("release");
    assert!(release.contains("debug = false"), "{release}");
    let profiling = section("profiling");
    assert!(profiling.contains("inherits = \"release\""), "{profiling}");
    assert!(
        profiling.contains("debug = \"line-tables-only\""),
        "{profiling}"
    );
}
