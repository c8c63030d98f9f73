//! A Node.js client: grpc-js with `proto/` loaded at run time reads the
//! aliasd.v1.ErrorReason of failed calls from the grpc-status-details-bin
//! trailer (`tests/node/error_reason.js`). Also the npm install that the
//! Node tools of the tests share (buf is one).
//!
//! The test installs what it needs: the pinned packages of
//! `tests/node/package.json`, with npm, under the target directory (once;
//! reinstalled when the file changes). It needs Node.js and the npm registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use aliasd::pb::ErrorReason;

use crate::common::TestServer;

/// The node_modules of the pinned `package_json` (a path in the repository),
/// installed with npm into `CARGO_TARGET_TMPDIR/NAME` unless already there:
/// one process at a time installs it.
pub fn npm_install(name: &str, package_json: &str) -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let _across_processes = crate::python::install_lock(name);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wanted = std::fs::read_to_string(manifest.join(package_json)).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let modules = dir.join("node_modules");
    let marker = dir.join("installed-package.json");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && modules.exists()
    {
        return modules;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("package.json"), &wanted).unwrap();
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .expect("npm runs (Node.js is needed for this test)");
    assert!(
        output.status.success() && modules.exists(),
        "npm install of {package_json} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, wanted).unwrap();
    modules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_client_reads_the_error_reason_enum_from_the_status_details() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let modules =
        tokio::task::spawn_blocking(|| npm_install("node-client", "tests/node/package.json"))
            .await
            .unwrap();
    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().addr.to_string();
    let stdout = tokio::task::spawn_blocking(move || {
        crate::python::run(
            Command::new("node")
                .arg(manifest.join("tests/node/error_reason.js"))
                .arg(&addr)
                .arg(manifest.join("proto"))
                .env("NODE_PATH", &modules),
        )
    })
    .await
    .unwrap();
    // The Node client's enum values are the server's: name and number.
    for (what, reason) in [
        ("create-twice", ErrorReason::AliasAlreadyExists),
        ("get-missing", ErrorReason::AliasNotFound),
    ] {
        let line = format!("{what} {} {}", reason.as_str_name(), reason as i32);
        assert!(
            stdout.lines().any(|l| l == line),
            "no line {line:?} in\n{stdout}"
        );
    }
    assert!(
        stdout.contains("node client: all checks passed"),
        "{stdout}"
    );
}
