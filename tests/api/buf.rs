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
    crate::node::npm_install("buf", "tests/buf/package.json").join(".bin/buf")
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
