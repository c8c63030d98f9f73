//! The contract checked: `buf lint` (STANDARD rules, proto/buf.yaml) on
//! `proto/`, and `buf breaking` (FILE rules) against the previous commit's
//! `proto/` where git history is present. buf comes from npm
//! (`tests/buf/package.json`, pinned), installed under target/ once.

use std::path::{Path, PathBuf};
use std::process::Command;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned buf, installed with npm into target/ if not there yet.
fn buf() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let _across_processes = crate::python::install_lock("buf");
    let wanted = std::fs::read_to_string(manifest().join("tests/buf/package.json")).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("buf");
    let buf = dir.join("node_modules/.bin/buf");
    let marker = dir.join("installed-package.json");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) && buf.exists() {
        return buf;
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
        output.status.success() && buf.exists(),
        "npm install failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, wanted).unwrap();
    buf
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn the_protos_pass_buf_lint() {
    let buf = buf();
    let (ok, text) = run(Command::new(&buf)
        .arg("lint")
        .current_dir(manifest().join("proto")));
    assert!(ok, "buf lint:\n{text}");
    // The check can fail: a lint error in a scratch copy is reported.
    let scratch = tempfile::tempdir().unwrap();
    std::fs::copy(
        manifest().join("proto/buf.yaml"),
        scratch.path().join("buf.yaml"),
    )
    .unwrap();
    std::fs::create_dir_all(scratch.path().join("aliasd/v1")).unwrap();
    std::fs::write(
        scratch.path().join("aliasd/v1/bad.proto"),
        "syntax = \"proto3\";\npackage aliasd.v1;\nmessage bad_name {}\n",
    )
    .unwrap();
    let (ok, text) = run(Command::new(&buf).arg("lint").current_dir(scratch.path()));
    assert!(!ok && text.contains("bad_name"), "{text}");
}

#[test]
fn the_protos_do_not_break_the_previous_commit() {
    let has_parent = Command::new("git")
        .args(["rev-parse", "--verify", "--quiet", "HEAD~1"])
        .current_dir(manifest())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_parent {
        eprintln!("buf breaking: skipped, no git history (no HEAD~1) in this checkout");
        return;
    }
    let buf = buf();
    let (ok, text) = run(Command::new(&buf)
        .args(["breaking", "--against", "../.git#ref=HEAD~1,subdir=proto"])
        .current_dir(manifest().join("proto")));
    assert!(ok, "buf breaking against HEAD~1:\n{text}");
}
