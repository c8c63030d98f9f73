//! The AWS dialect of the cryptographic operations and of rotation: AWS's
//! field names (blobs in base64), its enum names and validation messages,
//! its response shapes (KeyId as the key ARN).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::{enum_value, lower_camel, paged, seconds, wrong_type, Input, Operation};
use crate::app::{App, Call};
use crate::crypto::ops::Context;
use crate::domain::algorithms::{
    encryption_algorithms, mac_algorithm, signing_algorithms, DataKeySpec, EncryptionAlgorithm,
    KeyPairSpec, MacAlgorithm, MessageType, SigningAlgorithm,
};
use crate::domain::error::out_of_range;
use crate::domain::{Error, Key, KeyUsage, Reason, Scope};

fn b64(bytes: &[u8]) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
}

impl<'a> Input<'a> {
    /// A blob field (base64 in JSON).
    fn blob(&self, name: &'static str) -> Result<Option<Vec<u8>>, Error> {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Some)
                .map_err(|_| {
                    Error::new(
                        Reason::MALFORMED_BODY,
                        format!("{name} must be base64 (the encoding of a blob)."),
                    )
                }),
        }
    }

    fn required_blob(&self, name: &'static str) -> Result<Vec<u8>, Error> {
        self.blob(name)?.ok_or_else(|| missing(name))
    }

    /// An encryption context: an object of strings (absent: empty).
    fn context(&self, name: &'static str) -> Result<Context, Error> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(Context::new()),
            Some(Value::Object(pairs)) => pairs
                .iter()
                .map(|(k, v)| match v {
                    Value::String(v) => Ok((k.clone(), v.clone())),
                    other => Err(wrong_type(name, "an object of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong_type(name, "an object of strings", other)),
        }
    }

    /// An enum field by its AWS name (AWS's message lists `names`).
    fn named<T>(
        &self,
        name: &'static str,
        parse: impl Fn(&str) -> Option<T>,
        names: &[&'static str],
    ) -> Result<Option<T>, Error> {
        self.string(name)?
            .map(|value| {
                enum_value(value, name, Reason::INVALID_PARAMETER, &parse, || {
                    names.to_vec()
                })
            })
            .transpose()
    }
}

fn missing(name: &'static str) -> Error {
    Error::invalid(
        Reason::MISSING_PARAMETER,
        name,
        format!(
            "1 validation error detected: Value null at '{}' failed to satisfy constraint: \
             Member must not be null",
            lower_camel(name)
        ),
    )
}

/// The enum value sets as AWS's messages list them.
const ENCRYPTION_NAMES: &[&str] = &[
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
    "SYMMETRIC_DEFAULT",
];
const MAC_NAMES: &[&str] = &[
    "HMAC_SHA_384",
    "HMAC_SHA_256",
    "HMAC_SHA_224",
    "HMAC_SHA_512",
];
const MESSAGE_TYPE_NAMES: &[&str] = &["RAW", "DIGEST"];
const DATA_KEY_NAMES: &[&str] = &["AES_256", "AES_128"];

fn signing_names() -> Vec<&'static str> {
    SigningAlgorithm::ALL.iter().map(|a| a.as_str()).collect()
}

fn pair_names() -> Vec<&'static str> {
    KeyPairSpec::ALL.iter().map(|a| a.as_str()).collect()
}

/// Runs a cryptographic or rotation operation.
pub(super) async fn run(
    app: &Arc<App>,
    call: &Call,
    operation: Operation,
    input: &Input<'_>,
    scope: &Scope,
) -> Result<Option<Value>, Error> {
    // `DryRun` (the operations AWS gives it): every check runs, and a call
    // that would succeed answers DryRunOperationException instead. None
    // of these operations changes state, so running it is the check.
    let dry_run = takes_dry_run(operation) && input.boolean("DryRun")?.unwrap_or(false);
    let answer = answer(app, call, operation, input, scope).await?;
    if dry_run {
        return Err(Error::new(
            Reason::DRY_RUN,
            "The request would have succeeded, but the DryRun option is set.",
        ));
    }
    Ok(answer)
}

/// The operations with a `DryRun` field in AWS's API.
fn takes_dry_run(operation: Operation) -> bool {
    matches!(
        operation,
        Operation::Encrypt
            | Operation::Decrypt
            | Operation::ReEncrypt
            | Operation::GenerateDataKey
            | Operation::GenerateDataKeyWithoutPlaintext
            | Operation::GenerateDataKeyPair
            | Operation::GenerateDataKeyPairWithoutPlaintext
            | Operation::Sign
            | Operation::Verify
            | Operation::GenerateMac
            | Operation::VerifyMac
    )
}

async fn answer(
    app: &Arc<App>,
    call: &Call,
    operation: Operation,
    input: &Input<'_>,
    scope: &Scope,
) -> Result<Option<Value>, Error> {
    let arn = |key: &crate::domain::KeyId| scope.key_arn(key);
    let encryption = |name| input.named(name, EncryptionAlgorithm::from_name, ENCRYPTION_NAMES);
    Ok(Some(match operation {
        Operation::Encrypt => {
            let key = input.required("KeyId")?;
            let plaintext = input.required_blob("Plaintext")?;
            let algorithm = encryption("EncryptionAlgorithm")?;
            let context = input.context("EncryptionContext")?;
            let done = app
                .encrypt(call, key, &plaintext, &context, algorithm)
                .await?;
            json!({
                "CiphertextBlob": b64(&done.ciphertext),
                "KeyId": arn(&done.key_id),
                "EncryptionAlgorithm": done.algorithm.as_str(),
            })
        }
        Operation::Decrypt => {
            let blob = input.required_blob("CiphertextBlob")?;
            let algorithm = encryption("EncryptionAlgorithm")?;
            let context = input.context("EncryptionContext")?;
            let key = input.string("KeyId")?;
            let done = app.decrypt(call, &blob, &context, key, algorithm).await?;
            let mut answer = json!({
                "KeyId": arn(&done.key_id),
                "Plaintext": b64(&done.plaintext),
                "EncryptionAlgorithm": done.algorithm.as_str(),
            });
            if done.algorithm == EncryptionAlgorithm::SYMMETRIC_DEFAULT {
                answer["KeyMaterialId"] = json!(done.material_id);
            }
            answer
        }
        Operation::ReEncrypt => {
            let blob = input.required_blob("CiphertextBlob")?;
            let destination = input.required("DestinationKeyId")?;
            let done = app
                .re_encrypt(
                    call,
                    &blob,
                    &input.context("SourceEncryptionContext")?,
                    input.string("SourceKeyId")?,
                    encryption("SourceEncryptionAlgorithm")?,
                    destination,
                    &input.context("DestinationEncryptionContext")?,
                    encryption("DestinationEncryptionAlgorithm")?,
                )
                .await?;
            let mut answer = json!({
                "CiphertextBlob": b64(&done.encrypted.ciphertext),
                "SourceKeyId": arn(&done.source_key_id),
                "KeyId": arn(&done.encrypted.key_id),
                "SourceEncryptionAlgorithm": done.source_algorithm.as_str(),
                "DestinationEncryptionAlgorithm": done.encrypted.algorithm.as_str(),
            });
            if done.source_algorithm == EncryptionAlgorithm::SYMMETRIC_DEFAULT {
                answer["SourceKeyMaterialId"] = json!(done.source_material_id);
            }
            if done.encrypted.algorithm == EncryptionAlgorithm::SYMMETRIC_DEFAULT {
                answer["DestinationKeyMaterialId"] = json!(done.encrypted.material_id);
            }
            answer
        }
        Operation::GenerateDataKey | Operation::GenerateDataKeyWithoutPlaintext => {
            let with_plaintext = operation == Operation::GenerateDataKey;
            let key = input.required("KeyId")?;
            let spec = input.named("KeySpec", DataKeySpec::from_name, DATA_KEY_NAMES)?;
            let count = input.integer("NumberOfBytes")?;
            let context = input.context("EncryptionContext")?;
            let done = app
                .generate_data_key(call, key, count, spec, &context, with_plaintext)
                .await?;
            let mut answer = json!({
                "CiphertextBlob": b64(&done.ciphertext),
                "KeyId": arn(&done.key_id),
                "KeyMaterialId": done.material_id,
            });
            if let Some(plaintext) = &done.plaintext {
                answer["Plaintext"] = b64(plaintext);
            }
            answer
        }
        Operation::GenerateDataKeyPair | Operation::GenerateDataKeyPairWithoutPlaintext => {
            let with_plaintext = operation == Operation::GenerateDataKeyPair;
            let key = input.required("KeyId")?;
            let spec = input
                .named("KeyPairSpec", KeyPairSpec::from_name, &pair_names())?
                .ok_or_else(|| missing("KeyPairSpec"))?;
            let context = input.context("EncryptionContext")?;
            let done = app
                .generate_data_key_pair(call, key, spec, &context, with_plaintext)
                .await?;
            let mut answer = json!({
                "PrivateKeyCiphertextBlob": b64(&done.private_ciphertext),
                "PublicKey": b64(&done.public_key),
                "KeyId": arn(&done.key_id),
                "KeyPairSpec": done.pair_spec.as_str(),
                "KeyMaterialId": done.material_id,
            });
            if let Some(private) = &done.private_plaintext {
                answer["PrivateKeyPlaintext"] = b64(private);
            }
            answer
        }
        Operation::Sign => {
            let key = input.required("KeyId")?;
            let message = input.required_blob("Message")?;
            let message_type =
                input.named("MessageType", MessageType::from_name, MESSAGE_TYPE_NAMES)?;
            let algorithm = input
                .named(
                    "SigningAlgorithm",
                    SigningAlgorithm::from_name,
                    &signing_names(),
                )?
                .ok_or_else(|| missing("SigningAlgorithm"))?;
            let done = app
                .sign(call, key, &message, message_type, algorithm)
                .await?;
            json!({
                "KeyId": arn(&done.key_id),
                "Signature": b64(&done.signature),
                "SigningAlgorithm": done.algorithm.as_str(),
            })
        }
        Operation::Verify => {
            let key = input.required("KeyId")?;
            let message = input.required_blob("Message")?;
            let signature = input.required_blob("Signature")?;
            let message_type =
                input.named("MessageType", MessageType::from_name, MESSAGE_TYPE_NAMES)?;
            let algorithm = input
                .named(
                    "SigningAlgorithm",
                    SigningAlgorithm::from_name,
                    &signing_names(),
                )?
                .ok_or_else(|| missing("SigningAlgorithm"))?;
            let key_id = app
                .verify(call, key, &message, message_type, &signature, algorithm)
                .await?;
            json!({
                "KeyId": arn(&key_id),
                "SignatureValid": true,
                "SigningAlgorithm": algorithm.as_str(),
            })
        }
        Operation::GetPublicKey => {
            let done = app.get_public_key(call, input.required("KeyId")?).await?;
            let mut answer = json!({
                "KeyId": arn(&done.key.key_id),
                "PublicKey": b64(&done.der),
                "CustomerMasterKeySpec": done.key.key_spec.as_str(),
                "KeySpec": done.key.key_spec.as_str(),
                "KeyUsage": done.key.key_usage.as_str(),
            });
            add_algorithms(answer.as_object_mut().expect("an object"), &done.key);
            answer
        }
        Operation::GenerateMac => {
            let key = input.required("KeyId")?;
            let message = input.required_blob("Message")?;
            let algorithm = input
                .named("MacAlgorithm", MacAlgorithm::from_name, MAC_NAMES)?
                .ok_or_else(|| missing("MacAlgorithm"))?;
            let done = app.generate_mac(call, key, &message, algorithm).await?;
            json!({
                "Mac": b64(&done.mac),
                "MacAlgorithm": done.algorithm.as_str(),
                "KeyId": arn(&done.key_id),
            })
        }
        Operation::VerifyMac => {
            let key = input.required("KeyId")?;
            let message = input.required_blob("Message")?;
            let mac = input.required_blob("Mac")?;
            let algorithm = input
                .named("MacAlgorithm", MacAlgorithm::from_name, MAC_NAMES)?
                .ok_or_else(|| missing("MacAlgorithm"))?;
            let key_id = app.verify_mac(call, key, &message, &mac, algorithm).await?;
            json!({
                "KeyId": arn(&key_id),
                "MacValid": true,
                "MacAlgorithm": algorithm.as_str(),
            })
        }
        Operation::GenerateRandom => {
            let bytes = app
                .generate_random(call, input.integer("NumberOfBytes")?)
                .await?;
            json!({ "Plaintext": b64(&bytes) })
        }
        Operation::EnableKeyRotation => {
            let period = input
                .integer("RotationPeriodInDays")?
                .map(|days| i32::try_from(days).unwrap_or(i32::MAX));
            app.enable_key_rotation(call, input.required("KeyId")?, period)
                .await?;
            return Ok(None);
        }
        Operation::DisableKeyRotation => {
            app.disable_key_rotation(call, input.required("KeyId")?)
                .await?;
            return Ok(None);
        }
        Operation::GetKeyRotationStatus => {
            let key = app
                .get_key_rotation_status(call, input.required("KeyId")?)
                .await?;
            let rotation = key.rotation.filter(|_| !key.is_pending_deletion());
            let mut answer = json!({
                "KeyId": arn(&key.key_id),
                "KeyRotationEnabled": rotation.is_some(),
            });
            if let Some(rotation) = rotation {
                answer["RotationPeriodInDays"] = json!(rotation.period_days);
                answer["NextRotationDate"] = seconds(rotation.next);
            }
            answer
        }
        Operation::RotateKeyOnDemand => {
            let key = app
                .rotate_key_on_demand(call, input.required("KeyId")?)
                .await?;
            json!({ "KeyId": arn(&key.key_id) })
        }
        Operation::ListKeyRotations => {
            let include_first = match input.string("IncludeKeyMaterial")? {
                None | Some("ROTATIONS_ONLY") => false,
                Some("ALL_KEY_MATERIAL") => true,
                Some(other) => {
                    return Err(enum_value(
                        other,
                        "IncludeKeyMaterial",
                        Reason::INVALID_PARAMETER,
                        |_| None::<()>,
                        || vec!["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"],
                    )
                    .unwrap_err())
                }
            };
            // `Limit`: 1..1000 (absent: the default page, 100).
            let limit = match input.integer("Limit")? {
                None => 0,
                Some(limit @ 1..=1000) => limit as i32,
                Some(limit) => {
                    return Err(Error::invalid(
                        Reason::INVALID_PARAMETER,
                        "Limit",
                        out_of_range("limit", limit, 1, 1000),
                    ))
                }
            };
            let (key, page) = app
                .list_key_rotations(
                    call,
                    input.required("KeyId")?,
                    limit,
                    input.string("Marker")?.unwrap_or_default(),
                    include_first,
                )
                .await?;
            let current = key.current_material().map(|m| m.id.clone());
            let rotations: Vec<Value> = page
                .items
                .iter()
                .map(|material| {
                    let mut entry = json!({
                        "KeyId": key.key_id.as_str(),
                        "KeyMaterialId": material.id,
                        "KeyMaterialState": if current.as_ref() == Some(&material.id) {
                            "CURRENT"
                        } else {
                            "NON_CURRENT"
                        },
                    });
                    if let Some(kind) = material.rotation {
                        entry["RotationDate"] = seconds(material.created);
                        entry["RotationType"] = json!(kind.as_str());
                    }
                    entry
                })
                .collect();
            paged("Rotations", rotations, page.next_page_token)
        }
        other => {
            return Err(Error::internal(format!(
                "{other:?} is not a cryptographic operation"
            )))
        }
    }))
}

/// The algorithm lists a key's usage has (KeyMetadata and GetPublicKey
/// show only the one that applies).
pub(super) fn add_algorithms(answer: &mut Map<String, Value>, key: &Key) {
    let names = |list: Vec<&'static str>| json!(list);
    match key.key_usage {
        KeyUsage::ENCRYPT_DECRYPT => {
            answer.insert(
                "EncryptionAlgorithms".into(),
                names(
                    encryption_algorithms(key.key_spec, key.key_usage)
                        .iter()
                        .map(|a| a.as_str())
                        .collect(),
                ),
            );
        }
        KeyUsage::SIGN_VERIFY => {
            answer.insert(
                "SigningAlgorithms".into(),
                names(
                    signing_algorithms(key.key_spec, key.key_usage)
                        .iter()
                        .map(|a| a.as_str())
                        .collect(),
                ),
            );
        }
        KeyUsage::GENERATE_VERIFY_MAC => {
            answer.insert(
                "MacAlgorithms".into(),
                names(
                    mac_algorithm(key.key_spec)
                        .map(|a| a.as_str())
                        .into_iter()
                        .collect(),
                ),
            );
        }
        KeyUsage::KEY_AGREEMENT => {
            answer.insert("KeyAgreementAlgorithms".into(), json!(["ECDH"]));
        }
    }
}
