//! Compiles `proto/` without a system `protoc`: protox parses the files, the
//! descriptor set (with comments, so reflection shows them) is written to
//! OUT_DIR for the reflection service, and tonic-prost-build generates the
//! messages, clients and servers from it. The etcd backend's client is
//! generated the same way from the part of etcd's API it uses
//! (`src/store/etcd/proto/`).

use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "aliasd/v1/keys.proto",
    "aliasd/v1/aliases.proto",
    "aliasd/v1/audit.proto",
    "aliasd/v1/diagnostics.proto",
    "aliasd/v1/admin.proto",
    "aliasd/v1/algorithms.proto",
    "aliasd/v1/crypto.proto",
    "aliasd/v1/errors.proto",
];

/// `git` in the source tree, its trimmed output if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git").args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The commit the binary is built from, for `aliasd --version`, `aliasd
/// version` and GetServerInfo: 12 hex digits, or "unknown" outside a clone
/// (a crate tarball, a Docker build without .git), unless `ALIASD_COMMIT`
/// names it. Uncommitted changes are
/// not marked (watching the work tree would rebuild on every change).
/// Rebuilt when HEAD or the branch it names moves.
fn commit() -> String {
    // A build without the repository (a Docker build context without .git)
    // is told the commit instead.
    println!("cargo:rerun-if-env-changed=ALIASD_COMMIT");
    if let Some(commit) = env::var("ALIASD_COMMIT").ok().filter(|c| !c.is_empty()) {
        return commit;
    }
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".to_owned();
    };
    for path in ["HEAD", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &branch]) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    commit
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rustc-env=ALIASD_COMMIT={}", commit());

    let mut compiler = protox::Compiler::new(["proto"])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(PROTOS)?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("aliasd_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .codec_path("crate::grpc::codec::StrictProstCodec")
        // The payloads of Encrypt and Decrypt as `Bytes`: decoded as views
        // of the received buffer, not copies.
        .bytes(".aliasd.v1.EncryptRequest.plaintext")
        .bytes(".aliasd.v1.EncryptResponse.ciphertext_blob")
        .bytes(".aliasd.v1.DecryptRequest.ciphertext_blob")
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;

    // The part of etcd's v3 API the etcd backend uses: clients only.
    println!("cargo:rerun-if-changed=src/store/etcd/proto");
    let mut etcd = protox::Compiler::new(["src/store/etcd/proto"])?;
    etcd.include_imports(true);
    etcd.open_files(["rpc.proto"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .emit_rerun_if_changed(false)
        .compile_fds(etcd.file_descriptor_set())?;
    Ok(())
}
