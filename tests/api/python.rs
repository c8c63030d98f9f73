//! A client in another language: Python stubs generated from `proto/` by
//! grpcio-tools (protoc itself), driving the real server.
//!
//! The test installs what it needs: a venv under the target directory with
//! the pinned packages of `tests/python/requirements.txt` (from PyPI, once;
//! reinstalled when the file changes).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::TestServer;

/// Runs `command` to its end, which must be a success; its stdout.
pub fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The venv's python, installing the venv first if needed (once: tests
/// that need it share one install, also across test processes, as
/// `cargo nextest` runs them).
pub fn python() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let _across_processes = install_lock("python-venv");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let requirements = manifest.join("tests/python/requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
    let python = venv.join("bin/python");
    let marker = venv.join("installed-requirements.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && python.exists()
    {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements));
    std::fs::write(&marker, wanted).unwrap();
    python
}

/// An exclusive lock on `CARGO_TARGET_TMPDIR/NAME.lock` (flock), held until
/// the file is dropped: one process at a time installs a tool.
pub fn install_lock(name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock {}", path.display());
    file
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_generated_from_the_protos_works() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = tokio::task::spawn_blocking(python).await.unwrap();
    let stubs = tempfile::tempdir().unwrap();
    run(Command::new(&python)
        .args(["-m", "grpc_tools.protoc", "-Iproto"])
        .arg(format!("--python_out={}", stubs.path().display()))
        .arg(format!("--grpc_python_out={}", stubs.path().display()))
        .args([
            "aliasd/v1/keys.proto",
            "aliasd/v1/aliases.proto",
            "aliasd/v1/algorithms.proto",
            "aliasd/v1/crypto.proto",
            "aliasd/v1/errors.proto",
        ])
        .current_dir(manifest));

    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().addr.to_string();
    let script = manifest.join("tests/python/generated_client.py");
    let stdout = tokio::task::spawn_blocking(move || {
        run(Command::new(&python)
            .arg(&script)
            .arg(&addr)
            .env("PYTHONPATH", stubs.path()))
    })
    .await
    .unwrap();
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
