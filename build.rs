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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");

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
