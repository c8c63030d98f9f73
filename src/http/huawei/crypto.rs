//! Huawei's dialect of the cryptographic and rotation operations: its field
//! names and encodings (encrypt-data's plaintext as text and ciphertext in
//! base64, data keys and random bytes in hex, lengths in bits or bytes as
//! each operation counts them), its defaults (sign's `message_type` is
//! DIGEST) and its answers (validate-signature says `"false"` rather than
//! failing).
//!
//! Huawei's `additional_authenticated_data` string is the encryption
//! context `{"additional_authenticated_data": <it>}`: a ciphertext made
//! through this door with AAD opens at any door given that context.

use std::sync::Arc;

use base64::Engine as _;
use http::StatusCode;
use serde_json::{json, Value};

use super::{Input, Operation};
use crate::app::{App, Call};
use crate::crypto::ops::Context;
use crate::domain::algorithms::{EncryptionAlgorithm, MacAlgorithm, MessageType, SigningAlgorithm};
use crate::domain::{Error, Reason};

/// The context key Huawei's AAD is bound under.
pub const AAD_CONTEXT_KEY: &str = "additional_authenticated_data";
/// Longest AAD Huawei takes, in bytes.
const MAX_AAD: usize = 128;

fn invalid(field: &'static str, message: impl Into<String>) -> Error {
    Error::invalid(Reason::INVALID_PARAMETER, field, message)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(field: &'static str, text: &str) -> Result<Vec<u8>, Error> {
    let bad = || {
        invalid(
            field,
            format!("{field} must be hexadecimal (two digits a byte)."),
        )
    };
    if text.len() % 2 != 0 {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

fn from_base64(field: &'static str, text: &str) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| invalid(field, format!("{field} must be base64.")))
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// A count of bits given as a string (as the SDK sends it), a multiple
/// of 8 within 8..=`max_bits`: the count of bytes.
fn bits_to_bytes(field: &'static str, text: &str, max_bits: u64) -> Result<i64, Error> {
    let bits: u64 = text.trim().parse().map_err(|_| {
        invalid(
            field,
            format!("{field} must be a number of bits; got {text:?}."),
        )
    })?;
    if bits % 8 != 0 {
        return Err(invalid(field, format!("{field} must be a multiple of 8.")));
    }
    if !(8..=max_bits).contains(&bits) {
        return Err(invalid(
            field,
            format!("{field} must be in the range 8 bits to {max_bits} bits."),
        ));
    }
    Ok((bits / 8) as i64)
}

/// A count of bytes given as a string, 1..=1024.
fn byte_count(field: &'static str, text: &str) -> Result<usize, Error> {
    match text.trim().parse::<usize>() {
        Ok(n @ 1..=1024) => Ok(n),
        _ => Err(invalid(
            field,
            format!("{field} must be a number of bytes, 1 to 1024; got {text:?}."),
        )),
    }
}

impl<'a> Input<'a> {
    /// `additional_authenticated_data` as an encryption context.
    fn context(&self) -> Result<Context, Error> {
        let mut context = Context::new();
        if let Some(aad) = self.string(AAD_CONTEXT_KEY)?.filter(|a| !a.is_empty()) {
            if aad.len() > MAX_AAD {
                return Err(invalid(
                    AAD_CONTEXT_KEY,
                    format!("{AAD_CONTEXT_KEY} must be at most {MAX_AAD} bytes."),
                ));
            }
            context.insert(AAD_CONTEXT_KEY.to_owned(), aad.to_owned());
        }
        Ok(context)
    }

    fn encryption_algorithm(&self) -> Result<Option<EncryptionAlgorithm>, Error> {
        self.string("encryption_algorithm")?
            .filter(|a| !a.is_empty())
            .map(|name| {
                let name = if name == "SM2_ENCRYPT" {
                    "SM2PKE"
                } else {
                    name
                };
                EncryptionAlgorithm::from_name(name).ok_or_else(|| {
                    invalid(
                        "encryption_algorithm",
                        format!("Unknown encryption_algorithm {name:?}."),
                    )
                })
            })
            .transpose()
    }

    fn signing(&self) -> Result<(SigningAlgorithm, MessageType), Error> {
        let name = self.required("signing_algorithm")?;
        let algorithm = match name {
            "SM2DSA_SM3" => Some(SigningAlgorithm::SM2DSA),
            name => SigningAlgorithm::from_name(name),
        }
        .ok_or_else(|| {
            invalid(
                "signing_algorithm",
                format!("This key is not support the signing algorithm {name:?}."),
            )
        })?;
        // Huawei signs a digest unless told otherwise.
        let message_type = match self.string("message_type")?.unwrap_or("DIGEST") {
            "" | "DIGEST" => MessageType::DIGEST,
            "RAW" => MessageType::RAW,
            other => {
                return Err(invalid(
                    "message_type",
                    format!("message_type must be DIGEST or RAW; got {other:?}."),
                ))
            }
        };
        Ok((algorithm, message_type))
    }

    fn mac_algorithm(&self) -> Result<MacAlgorithm, Error> {
        let name = self.required("mac_algorithm")?;
        MacAlgorithm::from_name(name)
            .ok_or_else(|| invalid("mac_algorithm", format!("Unknown mac_algorithm {name:?}.")))
    }
}

/// The public key as Huawei gives it: PEM, 64-character lines, CRLF.
fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PUBLIC KEY-----\r\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push_str("\r\n");
    }
    out.push_str("-----END PUBLIC KEY-----\r\n");
    out
}

/// Runs a cryptographic or rotation operation.
pub(super) async fn run(
    app: &Arc<App>,
    call: &Call,
    operation: Operation,
    input: &Input<'_>,
) -> Result<(StatusCode, Value), Error> {
    let answer = match operation {
        Operation::EncryptData => {
            let key = input.required("key_id")?;
            let plaintext = input.required("plain_text")?;
            let done = app
                .encrypt(
                    call,
                    key,
                    plaintext.as_bytes(),
                    &input.context()?,
                    input.encryption_algorithm()?,
                )
                .await?;
            json!({
                "key_id": done.key_id.as_str(),
                "cipher_text": base64::engine::general_purpose::STANDARD.encode(&done.ciphertext),
            })
        }
        Operation::DecryptData => {
            let blob = from_base64("cipher_text", input.required("cipher_text")?)?;
            let key = input.string("key_id")?.filter(|k| !k.is_empty());
            let done = app
                .decrypt(
                    call,
                    &blob,
                    &input.context()?,
                    key,
                    input.encryption_algorithm()?,
                )
                .await?;
            json!({
                "key_id": done.key_id.as_str(),
                "plain_text": String::from_utf8_lossy(&done.plaintext),
                "plain_text_base64":
                    base64::engine::general_purpose::STANDARD.encode(&*done.plaintext),
            })
        }
        Operation::CreateDatakey | Operation::CreateDatakeyWithoutPlaintext => {
            let key = input.required("key_id")?;
            // datakey_length (bits) wins over key_spec; neither: 256 bits.
            let bytes = match (
                input.string("datakey_length")?.filter(|l| !l.is_empty()),
                input.string("key_spec")?.filter(|s| !s.is_empty()),
            ) {
                (Some(bits), _) => bits_to_bytes("datakey_length", bits, 8192)?,
                (None, Some("AES_256")) | (None, None) => 32,
                (None, Some("AES_128")) => 16,
                (None, Some(other)) => {
                    return Err(invalid(
                        "key_spec",
                        format!("key_spec can only be AES_128 or AES_256; got {other:?}."),
                    ))
                }
            };
            let with_plaintext = operation == Operation::CreateDatakey;
            let done = app
                .generate_data_key(
                    call,
                    key,
                    Some(bytes),
                    None,
                    &input.context()?,
                    with_plaintext,
                )
                .await?;
            let mut answer = json!({
                "key_id": done.key_id.as_str(),
                "cipher_text": hex_upper(&done.ciphertext),
            });
            if let Some(plaintext) = &done.plaintext {
                answer["plain_text"] = json!(hex_upper(plaintext));
            }
            answer
        }
        Operation::EncryptDatakey => {
            let key = input.required("key_id")?;
            let length = byte_count(
                "datakey_plain_length",
                input.required("datakey_plain_length")?,
            )?;
            let given =
                zeroize::Zeroizing::new(from_hex("plain_text", input.required("plain_text")?)?);
            if given.len() != length + 32 {
                return Err(invalid(
                    "plain_text",
                    "The length of plain_text does not match datakey_plain_length.",
                ));
            }
            let (data_key, digest) = given.split_at(length);
            if sha256(data_key) != digest {
                return Err(invalid("plain_text", "Failed to verify the DEK hash."));
            }
            let done = app
                .encrypt(call, key, data_key, &input.context()?, None)
                .await?;
            json!({
                "key_id": done.key_id.as_str(),
                "cipher_text": hex_upper(&done.ciphertext),
                "datakey_length": length.to_string(),
            })
        }
        Operation::DecryptDatakey => {
            let key = input.required("key_id")?;
            let length = byte_count(
                "datakey_cipher_length",
                input.required("datakey_cipher_length")?,
            )?;
            let blob = from_hex("cipher_text", input.required("cipher_text")?)?;
            let done = app
                .decrypt(call, &blob, &input.context()?, Some(key), None)
                .await?;
            if done.plaintext.len() != length {
                return Err(invalid(
                    "datakey_cipher_length",
                    "The length of cipher_text does not match datakey_cipher_length.",
                ));
            }
            json!({
                "data_key": hex_upper(&done.plaintext),
                "datakey_length": length.to_string(),
                "datakey_dgst": hex_upper(&sha256(&done.plaintext)),
            })
        }
        Operation::Sign => {
            let key = input.required("key_id")?;
            let message = from_base64("message", input.required("message")?)?;
            let (algorithm, message_type) = input.signing()?;
            let done = app
                .sign(call, key, &message, Some(message_type), algorithm)
                .await?;
            json!({
                "key_id": done.key_id.as_str(),
                "signature": base64::engine::general_purpose::STANDARD.encode(&done.signature),
            })
        }
        Operation::Verify => {
            let key = input.required("key_id")?;
            let message = from_base64("message", input.required("message")?)?;
            let signature = from_base64("signature", input.required("signature")?)?;
            let (algorithm, message_type) = input.signing()?;
            // Huawei answers a signature that does not verify with "false".
            let (key_id, valid) = match app
                .verify(
                    call,
                    key,
                    &message,
                    Some(message_type),
                    &signature,
                    algorithm,
                )
                .await
            {
                Ok(key_id) => (key_id.to_string(), "true"),
                Err(error) if error.reason == Reason::SIGNATURE_NOT_VALID => {
                    (key.to_owned(), "false")
                }
                Err(error) => return Err(error),
            };
            json!({ "key_id": key_id, "signature_valid": valid })
        }
        Operation::GetPublicKey => {
            let done = app.get_public_key(call, input.required("key_id")?).await?;
            json!({ "key_id": done.key.key_id.as_str(), "public_key": pem(&done.der) })
        }
        Operation::GenRandom => {
            let bytes = bits_to_bytes(
                "random_data_length",
                input.required("random_data_length")?,
                8192,
            )?;
            let random = app.generate_random(call, Some(bytes)).await?;
            json!({ "random_data": hex_upper(&random) })
        }
        Operation::GenerateMac => {
            let key = input.required("key_id")?;
            let message = from_base64("message", input.required("message")?)?;
            let done = app
                .generate_mac(call, key, &message, input.mac_algorithm()?)
                .await?;
            json!({
                "key_id": done.key_id.as_str(),
                "mac_algorithm": done.algorithm.as_str(),
                "mac": hex_lower(&done.mac),
            })
        }
        Operation::VerifyMac => {
            let key = input.required("key_id")?;
            let message = from_base64("message", input.required("message")?)?;
            let mac = from_hex("mac", input.required("mac")?)?;
            let algorithm = input.mac_algorithm()?;
            let valid = match app.verify_mac(call, key, &message, &mac, algorithm).await {
                Ok(_) => true,
                Err(error) if error.reason == Reason::MAC_NOT_VALID => false,
                Err(error) => return Err(error),
            };
            json!({
                "key_id": key,
                "mac_algorithm": algorithm.as_str(),
                "mac_valid": valid,
            })
        }
        Operation::EnableKeyRotation => {
            app.enable_key_rotation(call, input.required("key_id")?, None)
                .await?;
            json!({})
        }
        Operation::UpdateKeyRotationInterval => {
            let interval = match input.0.get("rotation_interval") {
                Some(Value::Number(n)) => n.as_i64(),
                Some(Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            }
            .ok_or_else(|| invalid("rotation_interval", "Invalid rotation_interval."))?;
            let days = i32::try_from(interval).unwrap_or(i32::MAX);
            app.enable_key_rotation(call, input.required("key_id")?, Some(days))
                .await?;
            json!({})
        }
        Operation::DisableKeyRotation => {
            app.disable_key_rotation(call, input.required("key_id")?)
                .await?;
            json!({})
        }
        Operation::GetKeyRotationStatus => {
            let key = app
                .get_key_rotation_status(call, input.required("key_id")?)
                .await?;
            let rotation = key.rotation.filter(|_| !key.is_pending_deletion());
            let rotations: Vec<_> = key
                .materials
                .iter()
                .filter(|m| m.rotation.is_some())
                .collect();
            let mut answer = json!({
                "key_rotation_enabled": rotation.is_some(),
                "rotation_interval": rotation.map(|r| r.period_days).unwrap_or(365),
                "number_of_rotations": rotations.len(),
            });
            if let Some(last) = rotations.last() {
                answer["last_rotation_time"] = json!(last.created.to_string());
            }
            answer
        }
        Operation::RotateOnDemand => {
            let key = app
                .rotate_key_on_demand(call, input.required("key_id")?)
                .await?;
            json!({ "key_id": key.key_id.as_str() })
        }
        other => {
            return Err(Error::internal(format!(
                "{other:?} is not a cryptographic operation"
            )))
        }
    };
    Ok((StatusCode::OK, answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_encodings_are_huaweis() {
        assert_eq!(bits_to_bytes("l", "512", 8192).unwrap(), 64);
        for bad in ["7", "0", "8200", "x", "8193"] {
            assert_eq!(
                bits_to_bytes("l", bad, 8192).unwrap_err().reason,
                Reason::INVALID_PARAMETER,
                "{bad}"
            );
        }
        assert_eq!(from_hex("h", "0aFF").unwrap(), vec![10, 255]);
        assert!(from_hex("h", "0a F").is_err() && from_hex("h", "zz").is_err());
        assert_eq!(hex_upper(&[10, 255]), "0AFF");
        let pem = pem(&[1; 100]);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\r\n") && pem.ends_with("-----\r\n"));
        assert!(pem.lines().all(|l| l.trim_end().len() <= 64));
    }
}
