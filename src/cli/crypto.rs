//! `aliasd encrypt|decrypt|re-encrypt|data-key|sign|verify|public-key|mac|
//! verify-mac|random`: CryptoService from the command line. Data goes in
//! from a file or stdin and out to a file or stdout as raw bytes (binary
//! safe: `aliasd encrypt --key-id alias/app < secret > secret.enc`);
//! `--output json` prints the whole answer instead, blobs in base64.

use std::collections::HashMap;
use std::path::PathBuf;

use base64::Engine as _;
use clap::{Args, Subcommand};
use clap_complete::engine::ArgValueCompleter;

use super::failure::Failure;
use super::render::{json as proto_json, print_json};
use super::{enum_flag, Client, ClientArgs, Output};
use crate::pb;
use crate::pb::crypto_service_client::CryptoServiceClient;

/// Where data comes from and goes to.
#[derive(Debug, Clone, Args)]
pub struct Io {
    /// Read the input from this file ("-": stdin, the default).
    #[arg(long = "in", short = 'i', default_value = "-")]
    pub input: PathBuf,
    /// Write the output to this file ("-": stdout, the default).
    #[arg(long = "out", default_value = "-")]
    pub out: PathBuf,
}

/// The cryptographic commands.
#[derive(Debug, Subcommand)]
pub enum CryptoCommand {
    /// Encrypt up to 4096 bytes (stdin or --in) under a key; writes the
    /// ciphertext's raw bytes.
    #[command(after_help = "Examples:\n  \
        aliasd encrypt --key-id alias/app --context tenant=acme < secret.txt > secret.enc\n  \
        echo -n hello | aliasd encrypt --key-id alias/app -o json")]
    Encrypt {
        #[command(flatten)]
        client: ClientArgs,
        /// The key: id, ARN, alias name or alias ARN.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// Encryption context pairs, KEY=VALUE (repeat for more).
        #[arg(long = "context", value_parser = pair)]
        context: Vec<(String, String)>,
        /// SYMMETRIC_DEFAULT (default), RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256.
        #[arg(long, value_parser = encryption_algorithm)]
        algorithm: Option<pb::EncryptionAlgorithm>,
        #[command(flatten)]
        io: Io,
    },
    /// Decrypt a ciphertext (its raw bytes); writes the plaintext.
    #[command(after_help = "Example:\n  \
        aliasd decrypt --context tenant=acme < secret.enc")]
    Decrypt {
        #[command(flatten)]
        client: ClientArgs,
        /// The key: needed for RSA ciphertexts; for symmetric ones it must
        /// be the key that made it.
        #[arg(long)]
        key_id: Option<String>,
        /// The encryption context it was made with, KEY=VALUE.
        #[arg(long = "context", value_parser = pair)]
        context: Vec<(String, String)>,
        /// SYMMETRIC_DEFAULT (default), RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256.
        #[arg(long, value_parser = encryption_algorithm)]
        algorithm: Option<pb::EncryptionAlgorithm>,
        #[command(flatten)]
        io: Io,
    },
    /// Decrypt a ciphertext and encrypt it under another key, in the server.
    #[command(after_help = "Example:\n  \
        aliasd re-encrypt --destination-key-id alias/app-v2 < secret.enc > secret.v2.enc")]
    ReEncrypt {
        #[command(flatten)]
        client: ClientArgs,
        /// The key to encrypt under.
        #[arg(long)]
        destination_key_id: String,
        /// The key that made the ciphertext (optional for symmetric ones).
        #[arg(long)]
        source_key_id: Option<String>,
        /// The context it was made with, KEY=VALUE.
        #[arg(long = "source-context", value_parser = pair)]
        source_context: Vec<(String, String)>,
        /// The context to bind the new ciphertext to, KEY=VALUE.
        #[arg(long = "destination-context", value_parser = pair)]
        destination_context: Vec<(String, String)>,
        #[command(flatten)]
        io: Io,
    },
    /// A new data key: writes its encrypted copy (to --out), and with
    /// --plaintext-out its plaintext.
    #[command(after_help = "Example:\n  \
        aliasd data-key --key-id alias/app --out key.enc --plaintext-out key.bin")]
    DataKey {
        #[command(flatten)]
        client: ClientArgs,
        /// A symmetric key: id, ARN, alias name or alias ARN.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// Its length in bytes, 1..1024 (default: 32).
        #[arg(long, default_value_t = 32)]
        bytes: i32,
        /// Encryption context pairs, KEY=VALUE.
        #[arg(long = "context", value_parser = pair)]
        context: Vec<(String, String)>,
        /// Write the encrypted data key here ("-": stdout).
        #[arg(long = "out", default_value = "-")]
        out: PathBuf,
        /// Write the plaintext data key here (without it the server is
        /// not asked for the plaintext at all).
        #[arg(long)]
        plaintext_out: Option<PathBuf>,
    },
    /// Sign a message (or, with --digest, a digest); writes the signature.
    #[command(after_help = "Example:\n  \
        aliasd sign --key-id alias/signer --algorithm ECDSA_SHA_256 < release.tar > release.sig")]
    Sign {
        #[command(flatten)]
        client: ClientArgs,
        /// An asymmetric SIGN_VERIFY key.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// One of the key's signing algorithms, e.g. ECDSA_SHA_256,
        /// RSASSA_PSS_SHA_256.
        #[arg(long, value_parser = signing_algorithm)]
        algorithm: pb::SigningAlgorithm,
        /// The input is a digest, not the message.
        #[arg(long)]
        digest: bool,
        #[command(flatten)]
        io: Io,
    },
    /// Verify a signature of a message: exit 0 if valid, 4
    /// (SIGNATURE_NOT_VALID) if not.
    #[command(after_help = "Example:\n  \
        aliasd verify --key-id alias/signer --algorithm ECDSA_SHA_256 --signature release.sig < release.tar")]
    Verify {
        #[command(flatten)]
        client: ClientArgs,
        /// The key that signed.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// The signing algorithm.
        #[arg(long, value_parser = signing_algorithm)]
        algorithm: pb::SigningAlgorithm,
        /// The file holding the signature.
        #[arg(long)]
        signature: PathBuf,
        /// The input is a digest, not the message.
        #[arg(long)]
        digest: bool,
        /// Read the message from this file ("-": stdin).
        #[arg(long = "in", short = 'i', default_value = "-")]
        input: PathBuf,
    },
    /// An asymmetric key's public key, as PEM (--der: DER).
    #[command(after_help = "Example:\n  aliasd public-key --key-id alias/signer > signer.pem")]
    PublicKey {
        #[command(flatten)]
        client: ClientArgs,
        /// The key.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// Write DER rather than PEM.
        #[arg(long)]
        der: bool,
        /// Write it here ("-": stdout).
        #[arg(long = "out", default_value = "-")]
        out: PathBuf,
    },
    /// The HMAC of a message (an HMAC key); writes the MAC.
    #[command(after_help = "Example:\n  \
        aliasd mac --key-id alias/hmac --algorithm HMAC_SHA_256 < payload > payload.mac")]
    Mac {
        #[command(flatten)]
        client: ClientArgs,
        /// An HMAC key.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// The key's MAC algorithm, e.g. HMAC_SHA_256.
        #[arg(long, value_parser = mac_algorithm)]
        algorithm: pb::MacAlgorithm,
        #[command(flatten)]
        io: Io,
    },
    /// Verify an HMAC: exit 0 if valid, 4 (MAC_NOT_VALID) if not.
    #[command(after_help = "Example:\n  \
        aliasd verify-mac --key-id alias/hmac --algorithm HMAC_SHA_256 --mac payload.mac < payload")]
    VerifyMac {
        #[command(flatten)]
        client: ClientArgs,
        /// The HMAC key.
        #[arg(long)]
        #[arg(add = ArgValueCompleter::new(super::complete::key_refs))]
        key_id: String,
        /// The key's MAC algorithm.
        #[arg(long, value_parser = mac_algorithm)]
        algorithm: pb::MacAlgorithm,
        /// The file holding the MAC.
        #[arg(long)]
        mac: PathBuf,
        /// Read the message from this file ("-": stdin).
        #[arg(long = "in", short = 'i', default_value = "-")]
        input: PathBuf,
    },
    /// Random bytes from the server (1..1024).
    #[command(after_help = "Example:\n  aliasd random --bytes 32 | xxd")]
    Random {
        #[command(flatten)]
        client: ClientArgs,
        /// How many, 1..1024.
        #[arg(long)]
        bytes: i32,
        /// Write them here ("-": stdout).
        #[arg(long = "out", default_value = "-")]
        out: PathBuf,
    },
}

impl CryptoCommand {
    /// The connection flags of the command.
    pub fn client(&self) -> &ClientArgs {
        match self {
            CryptoCommand::Encrypt { client, .. }
            | CryptoCommand::Decrypt { client, .. }
            | CryptoCommand::ReEncrypt { client, .. }
            | CryptoCommand::DataKey { client, .. }
            | CryptoCommand::Sign { client, .. }
            | CryptoCommand::Verify { client, .. }
            | CryptoCommand::PublicKey { client, .. }
            | CryptoCommand::Mac { client, .. }
            | CryptoCommand::VerifyMac { client, .. }
            | CryptoCommand::Random { client, .. } => client,
        }
    }
}

fn pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{text:?} is not KEY=VALUE"))
}

fn encryption_algorithm(value: &str) -> Result<pb::EncryptionAlgorithm, String> {
    enum_flag(
        value,
        "ENCRYPTION_ALGORITHM_",
        pb::EncryptionAlgorithm::from_str_name,
    )
}

fn signing_algorithm(value: &str) -> Result<pb::SigningAlgorithm, String> {
    enum_flag(
        value,
        "SIGNING_ALGORITHM_",
        pb::SigningAlgorithm::from_str_name,
    )
}

fn mac_algorithm(value: &str) -> Result<pb::MacAlgorithm, String> {
    enum_flag(value, "MAC_ALGORITHM_", pb::MacAlgorithm::from_str_name)
}

fn context(pairs: Vec<(String, String)>) -> HashMap<String, String> {
    pairs.into_iter().collect()
}

/// Reads all of a file, or of stdin for "-".
fn read(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read = match path.as_os_str() == "-" {
        true => std::io::stdin().lock().read_to_end(&mut bytes).map(drop),
        false => std::fs::read(path).map(|b| bytes = b),
    };
    read.map_err(|e| Failure::local(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

/// Writes `bytes` to a file (owner-only: it may be a secret), or stdout.
/// A command's answer: the whole response as proto JSON (`-o json`), or
/// the raw bytes it carries, to `path`.
fn answer<M: super::render::ProtoName>(
    json: bool,
    response: &M,
    path: &std::path::Path,
    bytes: &[u8],
) -> Result<(), Failure> {
    match json {
        true => {
            print_json(&proto_json(response));
            Ok(())
        }
        false => write(path, bytes),
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    if path.as_os_str() == "-" {
        super::write_stdout(bytes);
        return Ok(());
    }
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|e| Failure::local(format!("cannot write {}: {e}", path.display())))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn failed(status: tonic::Status) -> Failure {
    Failure::from_status(&status, None)
}

/// Runs a cryptographic command.
pub async fn run(client: &Client, command: CryptoCommand) -> Result<(), Failure> {
    let mut crypto = CryptoServiceClient::new(client.channel.clone());
    let json = client.args.output == Output::Json;
    match command {
        CryptoCommand::Encrypt {
            key_id,
            context: pairs,
            algorithm,
            io,
            ..
        } => {
            let request = pb::EncryptRequest {
                key_id,
                plaintext: read(&io.input)?.into(),
                encryption_context: context(pairs),
                encryption_algorithm: algorithm.map_or(0, |a| a as i32),
            };
            let done = crypto
                .encrypt(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            answer(json, &done, &io.out, &done.ciphertext_blob)?;
        }
        CryptoCommand::Decrypt {
            key_id,
            context: pairs,
            algorithm,
            io,
            ..
        } => {
            let request = pb::DecryptRequest {
                ciphertext_blob: read(&io.input)?.into(),
                encryption_context: context(pairs),
                key_id: key_id.unwrap_or_default(),
                encryption_algorithm: algorithm.map_or(0, |a| a as i32),
            };
            let done = crypto
                .decrypt(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            answer(json, &done, &io.out, &done.plaintext)?;
        }
        CryptoCommand::ReEncrypt {
            destination_key_id,
            source_key_id,
            source_context,
            destination_context,
            io,
            ..
        } => {
            let request = pb::ReEncryptRequest {
                ciphertext_blob: read(&io.input)?,
                source_encryption_context: context(source_context),
                source_key_id: source_key_id.unwrap_or_default(),
                destination_key_id,
                destination_encryption_context: context(destination_context),
                ..Default::default()
            };
            let done = crypto
                .re_encrypt(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            answer(json, &done, &io.out, &done.ciphertext_blob)?;
        }
        CryptoCommand::DataKey {
            key_id,
            bytes,
            context: pairs,
            out,
            plaintext_out,
            ..
        } => {
            let (ciphertext, plaintext, key_id) = match &plaintext_out {
                Some(_) => {
                    let request = pb::GenerateDataKeyRequest {
                        key_id,
                        encryption_context: context(pairs),
                        number_of_bytes: Some(bytes),
                        ..Default::default()
                    };
                    let done = crypto
                        .generate_data_key(client.request(request))
                        .await
                        .map_err(failed)?
                        .into_inner();
                    (done.ciphertext_blob, Some(done.plaintext), done.key_id)
                }
                None => {
                    let request = pb::GenerateDataKeyWithoutPlaintextRequest {
                        key_id,
                        encryption_context: context(pairs),
                        number_of_bytes: Some(bytes),
                        ..Default::default()
                    };
                    let done = crypto
                        .generate_data_key_without_plaintext(client.request(request))
                        .await
                        .map_err(failed)?
                        .into_inner();
                    (done.ciphertext_blob, None, done.key_id)
                }
            };
            if let (Some(path), Some(plaintext)) = (&plaintext_out, &plaintext) {
                write(path, plaintext)?;
            }
            match json {
                true => print_json(&serde_json::json!({
                    "keyId": key_id,
                    "ciphertextBlob": b64(&ciphertext),
                })),
                false => write(&out, &ciphertext)?,
            }
        }
        CryptoCommand::Sign {
            key_id,
            algorithm,
            digest,
            io,
            ..
        } => {
            let request = pb::SignRequest {
                key_id,
                message: read(&io.input)?,
                message_type: message_type(digest),
                signing_algorithm: algorithm as i32,
            };
            let done = crypto
                .sign(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            answer(json, &done, &io.out, &done.signature)?;
        }
        CryptoCommand::Verify {
            key_id,
            algorithm,
            signature,
            digest,
            input,
            ..
        } => {
            let request = pb::VerifyRequest {
                key_id,
                message: read(&input)?,
                message_type: message_type(digest),
                signature: read(&signature)?,
                signing_algorithm: algorithm as i32,
            };
            let done = crypto
                .verify(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            verdict(client, json, &done.key_id);
        }
        CryptoCommand::PublicKey {
            key_id, der, out, ..
        } => {
            let done = crypto
                .get_public_key(client.request(pb::GetPublicKeyRequest { key_id }))
                .await
                .map_err(failed)?
                .into_inner();
            let bytes = match der {
                true => done.public_key,
                false => pem(&done.public_key).into_bytes(),
            };
            write(&out, &bytes)?;
        }
        CryptoCommand::Mac {
            key_id,
            algorithm,
            io,
            ..
        } => {
            let request = pb::GenerateMacRequest {
                key_id,
                message: read(&io.input)?,
                mac_algorithm: algorithm as i32,
            };
            let done = crypto
                .generate_mac(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            answer(json, &done, &io.out, &done.mac)?;
        }
        CryptoCommand::VerifyMac {
            key_id,
            algorithm,
            mac,
            input,
            ..
        } => {
            let request = pb::VerifyMacRequest {
                key_id,
                message: read(&input)?,
                mac: read(&mac)?,
                mac_algorithm: algorithm as i32,
            };
            let done = crypto
                .verify_mac(client.request(request))
                .await
                .map_err(failed)?
                .into_inner();
            verdict(client, json, &done.key_id);
        }
        CryptoCommand::Random { bytes, out, .. } => {
            let done = crypto
                .generate_random(client.request(pb::GenerateRandomRequest {
                    number_of_bytes: bytes,
                }))
                .await
                .map_err(failed)?
                .into_inner();
            answer(json, &done, &out, &done.plaintext)?;
        }
    }
    Ok(())
}

fn message_type(digest: bool) -> i32 {
    match digest {
        true => pb::MessageType::Digest as i32,
        false => pb::MessageType::Raw as i32,
    }
}

/// A verification that passed (one that failed is the server's error).
fn verdict(client: &Client, json: bool, key_id: &str) {
    match (json, client.args.quiet) {
        (true, _) => print_json(&serde_json::json!({ "keyId": key_id, "valid": true })),
        (false, true) => {}
        (false, false) => crate::outln!("valid (key {key_id})"),
    }
}

/// DER SubjectPublicKeyInfo as PEM.
fn pem(der: &[u8]) -> String {
    let body = b64(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PUBLIC KEY-----\n");
    out
}
