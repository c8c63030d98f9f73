//! The cryptographic use cases (SPEC §11): Encrypt, Decrypt, ReEncrypt,
//! data keys and data key pairs, Sign and Verify, GetPublicKey, MACs and
//! GenerateRandom.
//!
//! Each resolves the key it is given (a key id, key ARN, alias name or alias
//! ARN) in one read, authorizes the action on the key the alias resolves
//! to, checks the key's state, usage and algorithm (the domain's rules),
//! then works with the key's material from the cache. A denial is audited
//! at once, as every denial is; a success is audited through the batch
//! writer (see `audit_batch`), with the key, the alias used and the
//! algorithm, never a plaintext or a ciphertext.

use std::sync::Arc;

use zeroize::Zeroizing;

use super::{App, Call};
use crate::crypto::material::{self, Usable};
use crate::crypto::ops::{self as crypto, Context};
use crate::domain::algorithms::{
    ensure_encryption, ensure_mac, ensure_signing, ensure_symmetric, DataKeySpec,
    EncryptionAlgorithm, KeyPairSpec, MacAlgorithm, MessageType, SigningAlgorithm,
};
use crate::domain::error::{bad_length, out_of_range};
use crate::domain::key::KeyMaterial;
use crate::domain::ops::{self, Ctx, Use};
use crate::domain::policy::actions;
use crate::domain::{AliasName, Error, Key, KeyId, KeyRef, KeyUsage, Reason};

/// Longest plaintext Encrypt takes, and longest message Sign and
/// GenerateMac take, in bytes.
pub const MAX_PLAINTEXT: usize = 4096;
/// Longest ciphertext, signature or MAC taken, in bytes.
pub const MAX_CIPHERTEXT: usize = 6144;
/// Most bytes GenerateRandom and GenerateDataKey make.
pub const MAX_RANDOM: usize = 1024;

const ENCRYPTING: &[KeyUsage] = &[KeyUsage::ENCRYPT_DECRYPT];
const SIGNING: &[KeyUsage] = &[KeyUsage::SIGN_VERIFY];
const MACS: &[KeyUsage] = &[KeyUsage::GENERATE_VERIFY_MAC];
const ANY: &[KeyUsage] = KeyUsage::ALL;

fn usage(action: &'static str, usages: &'static [KeyUsage], operation: &'static str) -> Use {
    Use {
        action,
        usages,
        operation,
        allow_disabled: false,
    }
}

/// Fails unless `value` is 1..=`max` bytes long; `member` is the field's
/// name in AWS's messages (camelCase).
fn check_len(field: &'static str, member: &str, value: &[u8], max: usize) -> Result<(), Error> {
    if value.is_empty() || value.len() > max {
        return Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            field,
            bad_length(member, value.len(), max),
        ));
    }
    Ok(())
}

/// Encrypt's answer.
#[derive(Debug)]
pub struct Encrypted {
    pub key_id: KeyId,
    pub ciphertext: Vec<u8>,
    pub algorithm: EncryptionAlgorithm,
    pub material_id: String,
}

/// Decrypt's answer.
pub struct Decrypted {
    pub key_id: KeyId,
    pub plaintext: Zeroizing<Vec<u8>>,
    pub algorithm: EncryptionAlgorithm,
    pub material_id: String,
}

/// ReEncrypt's answer.
#[derive(Debug)]
pub struct ReEncrypted {
    pub source_key_id: KeyId,
    pub source_algorithm: EncryptionAlgorithm,
    pub source_material_id: String,
    pub encrypted: Encrypted,
}

/// GenerateDataKey's answer (no plaintext from WithoutPlaintext).
pub struct DataKey {
    pub key_id: KeyId,
    pub ciphertext: Vec<u8>,
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
    pub material_id: String,
}

/// GenerateDataKeyPair's answer (no private plaintext from
/// WithoutPlaintext).
pub struct DataKeyPair {
    pub key_id: KeyId,
    pub pair_spec: KeyPairSpec,
    /// The private key (PKCS#8 DER), encrypted under the key.
    pub private_ciphertext: Vec<u8>,
    pub private_plaintext: Option<Zeroizing<Vec<u8>>>,
    /// The public key (X.509 SubjectPublicKeyInfo DER).
    pub public_key: Vec<u8>,
    pub material_id: String,
}

/// Sign's answer.
#[derive(Debug)]
pub struct Signed {
    pub key_id: KeyId,
    pub signature: Vec<u8>,
    pub algorithm: SigningAlgorithm,
}

/// GetPublicKey's answer: the key (spec, usage, algorithms) and its public
/// half.
#[derive(Debug)]
pub struct PublicKey {
    pub key: Key,
    pub der: Vec<u8>,
}

/// GenerateMac's answer.
#[derive(Debug)]
pub struct Mac {
    pub key_id: KeyId,
    pub mac: Vec<u8>,
    pub algorithm: MacAlgorithm,
}

/// A key resolved for one operation, with the material it uses.
struct InUse {
    ctx: Ctx,
    /// The action it was resolved for (its audit record's).
    action: &'static str,
    key: Key,
    /// The alias the caller named it by, if it did.
    alias: Option<AliasName>,
}

impl App {
    /// Resolves `key_ref` for `usage` in one read (a denial is audited).
    async fn key_in_use(&self, call: &Call, key_ref: &str, usage: Use) -> Result<InUse, Error> {
        let ctx = self.ctx(call);
        let parsed = KeyRef::parse(&ctx.scope, "key_id", key_ref)?;
        let action = usage.action;
        let mut audit = self.audit_entry(call, &ctx, action);
        audit.resources = vec![key_ref.to_owned()];
        let op_ctx = ctx.clone();
        let named = parsed.clone();
        let key = self
            .read(&ctx, audit, move |txn| {
                ops::key_for_use(txn, &op_ctx, &named, usage)
            })
            .await?;
        Ok(InUse {
            ctx,
            action,
            key,
            alias: match parsed {
                KeyRef::Alias(name) => Some(name),
                KeyRef::Key(_) => None,
            },
        })
    }

    /// The usable form of a version of a key's material.
    fn usable(&self, ctx: &Ctx, key: &Key, material: &KeyMaterial) -> Result<Arc<Usable>, Error> {
        self.materials.usable(&ctx.scope.account, key, material)
    }

    /// The key's newest material, usable.
    fn current(&self, ctx: &Ctx, key: &Key) -> Result<(Arc<Usable>, String), Error> {
        let material = key.current_material().ok_or_else(|| {
            Error::new(
                Reason::KEY_MATERIAL_UNAVAILABLE,
                format!(
                    "{} has no key material yet; the server gives it some when it starts.",
                    ctx.scope.key_arn(&key.key_id)
                ),
            )
        })?;
        Ok((self.usable(ctx, key, material)?, material.id.clone()))
    }

    /// Hands the record of a successful call to the batch writer.
    async fn audit_use(
        &self,
        call: &Call,
        ctx: &Ctx,
        action: &str,
        resources: Vec<String>,
        algorithm: Option<&str>,
    ) {
        let mut entry = self.audit_entry(call, ctx, action);
        entry.resources = resources;
        if let Some(algorithm) = algorithm {
            entry.message = format!("algorithm={algorithm}");
        }
        self.crypto_audit.record(entry).await;
    }

    /// [`App::audit_use`] of a call that used one key, for the action it
    /// was resolved for.
    async fn audit_used(&self, call: &Call, used: &InUse, algorithm: Option<&str>) {
        self.audit_use(call, &used.ctx, used.action, Self::used(used), algorithm)
            .await;
    }

    /// The audit resources of a use: the key id, and the alias used.
    fn used(used: &InUse) -> Vec<String> {
        let mut resources = vec![used.key.key_id.to_string()];
        resources.extend(used.alias.iter().map(|a| a.to_string()));
        resources
    }

    /// Encrypt: up to 4096 bytes under `key_ref` (newest material),
    /// bound to `context`.
    pub async fn encrypt(
        &self,
        call: &Call,
        key_ref: &str,
        plaintext: &[u8],
        context: &Context,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<Encrypted, Error> {
        check_len("plaintext", "plaintext", plaintext, MAX_PLAINTEXT)?;
        let algorithm = algorithm.unwrap_or(EncryptionAlgorithm::SYMMETRIC_DEFAULT);
        let used = self
            .key_in_use(
                call,
                key_ref,
                usage(actions::ENCRYPT, ENCRYPTING, "Encrypt"),
            )
            .await?;
        let encrypted = self.seal_with(&used, plaintext, context, algorithm)?;
        self.audit_used(call, &used, Some(algorithm.as_str())).await;
        Ok(encrypted)
    }

    /// Encrypts with a resolved key (Encrypt, ReEncrypt's second half).
    fn seal_with(
        &self,
        used: &InUse,
        plaintext: &[u8],
        context: &Context,
        algorithm: EncryptionAlgorithm,
    ) -> Result<Encrypted, Error> {
        let (ctx, key) = (&used.ctx, &used.key);
        ensure_encryption(key, algorithm)?;
        let (usable, material_id) = self.current(ctx, key)?;
        let ciphertext = match (&*usable, algorithm) {
            (Usable::Aes(aes), EncryptionAlgorithm::SYMMETRIC_DEFAULT) => {
                let version = key.materials.len().saturating_sub(1) as u32;
                crypto::seal(
                    aes,
                    &ctx.scope.account,
                    &key.key_id,
                    version,
                    context,
                    plaintext,
                )?
            }
            (Usable::Rsa { .. }, _) => {
                let max = crypto::rsa_max_plaintext(&usable, algorithm);
                if plaintext.len() > max {
                    return Err(Error::invalid(
                        Reason::INVALID_PARAMETER,
                        "plaintext",
                        format!(
                            "Algorithm {} and key spec {} cannot encrypt data larger than {max} \
                             bytes.",
                            algorithm.as_str(),
                            key.key_spec.as_str(),
                        ),
                    ));
                }
                crypto::rsa_encrypt(&usable, algorithm, plaintext)?
            }
            _ => return Err(Error::internal("key material does not match its key spec")),
        };
        Ok(Encrypted {
            key_id: key.key_id.clone(),
            ciphertext,
            algorithm,
            material_id,
        })
    }

    /// Decrypt: the key is the one the ciphertext names (symmetric), or
    /// `key_ref` (RSA, which needs it); a `key_ref` given for a symmetric
    /// ciphertext must name that key (INCORRECT_KEY).
    pub async fn decrypt(
        &self,
        call: &Call,
        ciphertext: &[u8],
        context: &Context,
        key_ref: Option<&str>,
        algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<Decrypted, Error> {
        let (used, decrypted) = self
            .open_blob(
                call,
                ciphertext,
                context,
                key_ref,
                algorithm,
                usage(actions::DECRYPT, ENCRYPTING, "Decrypt"),
            )
            .await?;
        self.audit_used(call, &used, Some(decrypted.algorithm.as_str()))
            .await;
        Ok(decrypted)
    }

    /// Decrypts a ciphertext for Decrypt or ReEncrypt (`usage` says which).
    async fn open_blob(
        &self,
        call: &Call,
        ciphertext: &[u8],
        context: &Context,
        key_ref: Option<&str>,
        algorithm: Option<EncryptionAlgorithm>,
        usage: Use,
    ) -> Result<(InUse, Decrypted), Error> {
        let usage_action = usage.action;
        check_len(
            "ciphertext_blob",
            "ciphertextBlob",
            ciphertext,
            MAX_CIPHERTEXT,
        )?;
        let algorithm = algorithm.unwrap_or(EncryptionAlgorithm::SYMMETRIC_DEFAULT);
        if algorithm != EncryptionAlgorithm::SYMMETRIC_DEFAULT {
            let Some(key_ref) = key_ref.filter(|k| !k.is_empty()) else {
                return Err(Error::invalid(
                    Reason::INVALID_PARAMETER,
                    "key_id",
                    format!(
                        "A KeyId is required to decrypt with {}: an RSA ciphertext does not name \
                         its key.",
                        algorithm.as_str()
                    ),
                ));
            };
            let used = self.key_in_use(call, key_ref, usage).await?;
            ensure_encryption(&used.key, algorithm)?;
            let (usable, material_id) = self.current(&used.ctx, &used.key)?;
            let plaintext = crypto::rsa_decrypt(&usable, algorithm, ciphertext)?;
            let decrypted = Decrypted {
                key_id: used.key.key_id.clone(),
                plaintext,
                algorithm,
                material_id,
            };
            return Ok((used, decrypted));
        }
        let ctx = self.ctx(call);
        let named = crypto::named(ciphertext)?;
        let given = match key_ref.filter(|k| !k.is_empty()) {
            Some(key_ref) => Some(KeyRef::parse(&ctx.scope, "key_id", key_ref)?),
            None => None,
        };
        let mut audit = self.audit_entry(call, &ctx, usage.action);
        audit.resources = vec![named.key_id.to_string()];
        let op_ctx = ctx.clone();
        let (blob_key, given_ref) = (named.key_id.clone(), given.clone());
        let key = self
            .read(&ctx, audit, move |txn| {
                ops::key_for_decrypt(txn, &op_ctx, &blob_key, given_ref.as_ref(), usage)
            })
            .await?;
        ensure_encryption(&key, algorithm)?;
        let material = key.material(named.version).ok_or_else(|| {
            Error::new(
                Reason::INVALID_CIPHERTEXT,
                "The ciphertext names a key material version its key does not have.",
            )
        })?;
        let material_id = material.id.clone();
        let usable = self.usable(&ctx, &key, material)?;
        let Usable::Aes(aes) = &*usable else {
            return Err(Error::internal("key material does not match its key spec"));
        };
        let plaintext = crypto::open(aes, &ctx.scope.account, ciphertext, context)?;
        let used = InUse {
            ctx,
            action: usage_action,
            key,
            alias: match given {
                Some(KeyRef::Alias(name)) => Some(name),
                _ => None,
            },
        };
        let decrypted = Decrypted {
            key_id: used.key.key_id.clone(),
            plaintext,
            algorithm,
            material_id,
        };
        Ok((used, decrypted))
    }

    /// ReEncrypt: decrypts (kms:ReEncryptFrom on the source key) and
    /// encrypts under `destination` (kms:ReEncryptTo), the plaintext never
    /// leaving the server.
    #[allow(clippy::too_many_arguments)]
    pub async fn re_encrypt(
        &self,
        call: &Call,
        ciphertext: &[u8],
        source_context: &Context,
        source_key: Option<&str>,
        source_algorithm: Option<EncryptionAlgorithm>,
        destination: &str,
        destination_context: &Context,
        destination_algorithm: Option<EncryptionAlgorithm>,
    ) -> Result<ReEncrypted, Error> {
        let destination_algorithm =
            destination_algorithm.unwrap_or(EncryptionAlgorithm::SYMMETRIC_DEFAULT);
        // The destination's reference is checked before any work is done.
        KeyRef::parse(&self.scope_of(call), "destination_key_id", destination)?;
        let (source, decrypted) = self
            .open_blob(
                call,
                ciphertext,
                source_context,
                source_key,
                source_algorithm,
                usage(actions::RE_ENCRYPT_FROM, ENCRYPTING, "ReEncrypt"),
            )
            .await?;
        let target = self
            .key_in_use(
                call,
                destination,
                usage(actions::RE_ENCRYPT_TO, ENCRYPTING, "ReEncrypt"),
            )
            .await?;
        let encrypted = self.seal_with(
            &target,
            &decrypted.plaintext,
            destination_context,
            destination_algorithm,
        )?;
        let mut resources = Self::used(&source);
        resources.extend(Self::used(&target));
        self.audit_use(
            call,
            &target.ctx,
            actions::RE_ENCRYPT_TO,
            resources,
            Some(&format!(
                "{}->{}",
                decrypted.algorithm.as_str(),
                destination_algorithm.as_str()
            )),
        )
        .await;
        Ok(ReEncrypted {
            source_key_id: decrypted.key_id,
            source_algorithm: decrypted.algorithm,
            source_material_id: decrypted.material_id,
            encrypted,
        })
    }

    /// GenerateDataKey (`with_plaintext`) or GenerateDataKeyWithoutPlaintext:
    /// random bytes, `number_of_bytes` (1..1024) or `spec` long (exactly one
    /// of them), encrypted under the key as Encrypt would.
    pub async fn generate_data_key(
        &self,
        call: &Call,
        key_ref: &str,
        number_of_bytes: Option<i64>,
        spec: Option<DataKeySpec>,
        context: &Context,
        with_plaintext: bool,
    ) -> Result<DataKey, Error> {
        let len = data_key_len(number_of_bytes, spec)?;
        let (action, operation) = match with_plaintext {
            true => (actions::GENERATE_DATA_KEY, "GenerateDataKey"),
            false => (
                actions::GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
                "GenerateDataKeyWithoutPlaintext",
            ),
        };
        let used = self
            .key_in_use(call, key_ref, usage(action, ENCRYPTING, operation))
            .await?;
        ensure_symmetric(&used.key)?;
        let plaintext = material::random(len)?;
        let encrypted = self.seal_with(
            &used,
            &plaintext,
            context,
            EncryptionAlgorithm::SYMMETRIC_DEFAULT,
        )?;
        self.audit_used(
            call,
            &used,
            Some(EncryptionAlgorithm::SYMMETRIC_DEFAULT.as_str()),
        )
        .await;
        Ok(DataKey {
            key_id: encrypted.key_id,
            ciphertext: encrypted.ciphertext,
            plaintext: with_plaintext.then_some(plaintext),
            material_id: encrypted.material_id,
        })
    }

    /// GenerateDataKeyPair (`with_plaintext`) or its WithoutPlaintext form:
    /// a new key pair of `pair_spec`, its private key encrypted under the
    /// (symmetric) key.
    pub async fn generate_data_key_pair(
        &self,
        call: &Call,
        key_ref: &str,
        pair_spec: KeyPairSpec,
        context: &Context,
        with_plaintext: bool,
    ) -> Result<DataKeyPair, Error> {
        let (action, operation) = match with_plaintext {
            true => (actions::GENERATE_DATA_KEY_PAIR, "GenerateDataKeyPair"),
            false => (
                actions::GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT,
                "GenerateDataKeyPairWithoutPlaintext",
            ),
        };
        let used = self
            .key_in_use(call, key_ref, usage(action, ENCRYPTING, operation))
            .await?;
        ensure_symmetric(&used.key)?;
        let spec = pair_spec.key_spec();
        // RSA key generation takes a while: off the async threads.
        let (private, public_key) =
            tokio::task::spawn_blocking(move || material::data_key_pair(spec))
                .await
                .map_err(|e| Error::internal(format!("key pair task failed: {e}")))??;
        let encrypted = self.seal_with(
            &used,
            &private,
            context,
            EncryptionAlgorithm::SYMMETRIC_DEFAULT,
        )?;
        self.audit_used(call, &used, Some(pair_spec.as_str())).await;
        Ok(DataKeyPair {
            key_id: encrypted.key_id,
            pair_spec,
            private_ciphertext: encrypted.ciphertext,
            private_plaintext: with_plaintext.then_some(private),
            public_key,
            material_id: encrypted.material_id,
        })
    }

    /// Sign: `message` (1..4096 bytes), or the digest it is with DIGEST.
    pub async fn sign(
        &self,
        call: &Call,
        key_ref: &str,
        message: &[u8],
        message_type: Option<MessageType>,
        algorithm: SigningAlgorithm,
    ) -> Result<Signed, Error> {
        check_len("message", "message", message, MAX_PLAINTEXT)?;
        let message_type = message_type.unwrap_or(MessageType::RAW);
        let used = self
            .key_in_use(call, key_ref, usage(actions::SIGN, SIGNING, "Sign"))
            .await?;
        ensure_signing(&used.key, algorithm)?;
        let (usable, _) = self.current(&used.ctx, &used.key)?;
        let signature = crypto::sign(&usable, algorithm, message_type, message)?;
        self.audit_used(call, &used, Some(algorithm.as_str())).await;
        Ok(Signed {
            key_id: used.key.key_id,
            signature,
            algorithm,
        })
    }

    /// Verify: Ok with the key id when `signature` is the key's signature
    /// of `message`; SIGNATURE_NOT_VALID when it is not.
    pub async fn verify(
        &self,
        call: &Call,
        key_ref: &str,
        message: &[u8],
        message_type: Option<MessageType>,
        signature: &[u8],
        algorithm: SigningAlgorithm,
    ) -> Result<KeyId, Error> {
        check_len("message", "message", message, MAX_PLAINTEXT)?;
        check_len("signature", "signature", signature, MAX_CIPHERTEXT)?;
        let message_type = message_type.unwrap_or(MessageType::RAW);
        let used = self
            .key_in_use(call, key_ref, usage(actions::VERIFY, SIGNING, "Verify"))
            .await?;
        ensure_signing(&used.key, algorithm)?;
        let (usable, _) = self.current(&used.ctx, &used.key)?;
        let valid = crypto::verify(&usable, algorithm, message_type, message, signature)?;
        self.audit_used(call, &used, Some(algorithm.as_str())).await;
        match valid {
            true => Ok(used.key.key_id),
            false => Err(Error::new(
                Reason::SIGNATURE_NOT_VALID,
                "The signature is not valid for this message, key and signing algorithm.",
            )),
        }
    }

    /// GetPublicKey of an asymmetric key.
    pub async fn get_public_key(&self, call: &Call, key_ref: &str) -> Result<PublicKey, Error> {
        // A disabled key still gives its public key, as AWS answers.
        let get = Use {
            allow_disabled: true,
            ..usage(actions::GET_PUBLIC_KEY, ANY, "GetPublicKey")
        };
        let used = self.key_in_use(call, key_ref, get).await?;
        if used.key.key_spec.class() != crate::domain::key::KeyClass::Asymmetric {
            return Err(Error::new(
                Reason::UNSUPPORTED_OPERATION,
                format!(
                    "{} is a {} key: it has no public key.",
                    used.ctx.scope.key_arn(&used.key.key_id),
                    used.key.key_spec.as_str()
                ),
            ));
        }
        let (usable, _) = self.current(&used.ctx, &used.key)?;
        let der = usable.public_key_der()?;
        self.audit_used(call, &used, None).await;
        Ok(PublicKey { key: used.key, der })
    }

    /// GenerateMac of `message` (1..4096 bytes) with an HMAC key.
    pub async fn generate_mac(
        &self,
        call: &Call,
        key_ref: &str,
        message: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<Mac, Error> {
        check_len("message", "message", message, MAX_PLAINTEXT)?;
        let used = self
            .key_in_use(
                call,
                key_ref,
                usage(actions::GENERATE_MAC, MACS, "GenerateMac"),
            )
            .await?;
        ensure_mac(&used.key, algorithm)?;
        let (usable, _) = self.current(&used.ctx, &used.key)?;
        let mac = crypto::mac(&usable, message)?;
        self.audit_used(call, &used, Some(algorithm.as_str())).await;
        Ok(Mac {
            key_id: used.key.key_id,
            mac,
            algorithm,
        })
    }

    /// VerifyMac: Ok with the key id when `mac` is the key's MAC of
    /// `message`; MAC_NOT_VALID when it is not.
    pub async fn verify_mac(
        &self,
        call: &Call,
        key_ref: &str,
        message: &[u8],
        mac: &[u8],
        algorithm: MacAlgorithm,
    ) -> Result<KeyId, Error> {
        check_len("message", "message", message, MAX_PLAINTEXT)?;
        check_len("mac", "mac", mac, MAX_CIPHERTEXT)?;
        let used = self
            .key_in_use(call, key_ref, usage(actions::VERIFY_MAC, MACS, "VerifyMac"))
            .await?;
        ensure_mac(&used.key, algorithm)?;
        let (usable, _) = self.current(&used.ctx, &used.key)?;
        let valid = crypto::verify_mac(&usable, message, mac)?;
        self.audit_used(call, &used, Some(algorithm.as_str())).await;
        match valid {
            true => Ok(used.key.key_id),
            false => Err(Error::new(
                Reason::MAC_NOT_VALID,
                "The MAC is not valid for this message, key and MAC algorithm.",
            )),
        }
    }

    /// GenerateRandom: 1..1024 random bytes (account-wide: no key).
    pub async fn generate_random(
        &self,
        call: &Call,
        number_of_bytes: Option<i64>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let Some(count) = number_of_bytes else {
            return Err(Error::invalid(
                Reason::INVALID_PARAMETER,
                "number_of_bytes",
                "NumberOfBytes is required.",
            ));
        };
        let len = byte_count("number_of_bytes", "numberOfBytes", count)?;
        let ctx = self.ctx(call);
        let audit = self.audit_entry(call, &ctx, actions::GENERATE_RANDOM);
        self.audited(
            ops::authorize_account_wide(&ctx, actions::GENERATE_RANDOM),
            audit,
        )
        .await?;
        let bytes = material::random(len)?;
        self.audit_use(
            call,
            &ctx,
            actions::GENERATE_RANDOM,
            vec![crate::domain::policy::ANY_RESOURCE.to_owned()],
            None,
        )
        .await;
        Ok(bytes)
    }
}

/// A byte count of 1..1024 (`member`: the field's name in AWS's words).
fn byte_count(field: &'static str, member: &str, count: i64) -> Result<usize, Error> {
    match usize::try_from(count) {
        Ok(len @ 1..=MAX_RANDOM) => Ok(len),
        _ => Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            field,
            out_of_range(member, count, 1, MAX_RANDOM as i64),
        )),
    }
}

/// A data key's length: `number_of_bytes` or `spec`, exactly one of them.
fn data_key_len(number_of_bytes: Option<i64>, spec: Option<DataKeySpec>) -> Result<usize, Error> {
    match (number_of_bytes, spec) {
        (Some(count), None) => byte_count("number_of_bytes", "numberOfBytes", count),
        (None, Some(spec)) => Ok(spec.bytes()),
        _ => Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            "key_spec",
            "Please specify either number of bytes or key spec.",
        )),
    }
}
