//! The cryptographic operations over usable material, and aliasd's
//! ciphertext format for symmetric keys.
//!
//! A ciphertext of a symmetric key is self-describing, so that Decrypt
//! needs no KeyId and a ciphertext made before a rotation or an
//! UpdateAlias still decrypts with the key and material that made it:
//!
//! | bytes | what |
//! |---|---|
//! | 1 | format version (1) |
//! | 16 | the key id (a UUID, binary) |
//! | 4 | the material version (u32, big-endian; 0 is the first) |
//! | 12 | the AES-GCM nonce (random) |
//! | n + 16 | AES-256-GCM ciphertext and tag |
//!
//! The associated data is a fixed label, the account, the first 21 bytes
//! above and the encryption context (its pairs sorted by key, each part
//! length-prefixed): a different context, account or header fails the tag.
//! Asymmetric ciphertexts are RSA-OAEP's own, as AWS KMS returns them.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, NONCE_LEN};
use aws_lc_rs::digest::{Digest, SHA256, SHA384, SHA512};
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{OaepAlgorithm, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256};
use aws_lc_rs::signature::{self, KeyPair, RsaEncoding, UnparsedPublicKey, VerificationAlgorithm};
use zeroize::Zeroizing;

use super::material::Usable;
use crate::domain::algorithms::{EncryptionAlgorithm, MessageType, SigningAlgorithm};
use crate::domain::{Error, KeyId, KeySpec, Reason};

/// The format byte of symmetric ciphertexts.
const CIPHERTEXT_V1: u8 = 1;
/// Bytes before the nonce: format, key id, material version.
const HEADER_LEN: usize = 1 + 16 + 4;
/// The shortest ciphertext: a header, a nonce and a tag.
pub const MIN_CIPHERTEXT_LEN: usize = HEADER_LEN + NONCE_LEN + 16;

/// An encryption context: string pairs bound to a ciphertext.
pub type Context = BTreeMap<String, String>;

fn invalid_ciphertext() -> Error {
    Error::new(
        Reason::INVALID_CIPHERTEXT,
        "The ciphertext is not one this server made, was changed, or was made with another \
         encryption context.",
    )
}

fn failed(what: &str) -> Error {
    Error::internal(format!("the cryptographic library failed to {what}"))
}

/// Which key and material version a symmetric ciphertext names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub key_id: KeyId,
    pub version: u32,
}

/// Reads the key and material version a ciphertext names (before the key
/// is looked up); INVALID_CIPHERTEXT if it is not one of ours.
pub fn named(ciphertext: &[u8]) -> Result<Named, Error> {
    if ciphertext.len() < MIN_CIPHERTEXT_LEN || ciphertext[0] != CIPHERTEXT_V1 {
        return Err(invalid_ciphertext());
    }
    let id: [u8; 16] = ciphertext[1..17]
        .try_into()
        .map_err(|_| invalid_ciphertext())?;
    let version: [u8; 4] = ciphertext[17..21]
        .try_into()
        .map_err(|_| invalid_ciphertext())?;
    Ok(Named {
        key_id: KeyId::from_trusted(uuid::Uuid::from_bytes(id).hyphenated().to_string()),
        version: u32::from_be_bytes(version),
    })
}

fn associated(account: &str, header: &[u8], context: &Context) -> Vec<u8> {
    let mut aad = b"aliasd ciphertext v1\0".to_vec();
    let mut part = |bytes: &[u8]| {
        aad.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        aad.extend_from_slice(bytes);
    };
    part(account.as_bytes());
    part(header);
    for (name, value) in context {
        part(name.as_bytes());
        part(value.as_bytes());
    }
    aad
}

/// Encrypts `plaintext` under version `version` of `account`'s symmetric
/// key `key_id`, bound to `context`.
pub fn seal(
    aes: &LessSafeKey,
    account: &str,
    key_id: &KeyId,
    version: u32,
    context: &Context,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let id = uuid::Uuid::parse_str(key_id.as_str())
        .map_err(|_| Error::internal("a stored key id is not a UUID"))?;
    let mut out = Vec::with_capacity(MIN_CIPHERTEXT_LEN + plaintext.len());
    out.push(CIPHERTEXT_V1);
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&version.to_be_bytes());
    let mut nonce = [0u8; NONCE_LEN];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| failed("make a nonce"))?;
    let aad = associated(account, &out[..HEADER_LEN], context);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = aes
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[HEADER_LEN + NONCE_LEN..],
        )
        .map_err(|_| failed("encrypt"))?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts a ciphertext [`seal`] made, given the same account and
/// context; INVALID_CIPHERTEXT otherwise.
pub fn open(
    aes: &LessSafeKey,
    account: &str,
    ciphertext: &[u8],
    context: &Context,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    named(ciphertext)?;
    let (header, rest) = ciphertext.split_at(HEADER_LEN);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| invalid_ciphertext())?;
    let mut buffer = Zeroizing::new(sealed.to_vec());
    let len = aes
        .open_in_place(
            nonce,
            Aad::from(associated(account, header, context)),
            &mut buffer,
        )
        .map_err(|_| invalid_ciphertext())?
        .len();
    buffer.truncate(len);
    Ok(buffer)
}

fn oaep(algorithm: EncryptionAlgorithm) -> Option<&'static OaepAlgorithm> {
    match algorithm {
        EncryptionAlgorithm::RSAES_OAEP_SHA_1 => Some(&OAEP_SHA1_MGF1SHA1),
        EncryptionAlgorithm::RSAES_OAEP_SHA_256 => Some(&OAEP_SHA256_MGF1SHA256),
        _ => None,
    }
}

/// The most plaintext bytes RSA-OAEP takes with this key and algorithm.
pub fn rsa_max_plaintext(usable: &Usable, algorithm: EncryptionAlgorithm) -> usize {
    match (usable, oaep(algorithm)) {
        (Usable::Rsa { encrypting, .. }, Some(oaep)) => encrypting.max_plaintext_size(oaep),
        _ => 0,
    }
}

/// RSA-OAEP encryption with the key's public half.
pub fn rsa_encrypt(
    usable: &Usable,
    algorithm: EncryptionAlgorithm,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let (
        Usable::Rsa {
            encrypting: public, ..
        },
        Some(oaep),
    ) = (usable, oaep(algorithm))
    else {
        return Err(failed("find an RSA key for OAEP"));
    };
    let mut out = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(oaep, plaintext, &mut out, None)
        .map_err(|_| failed("encrypt with RSA-OAEP"))?
        .len();
    out.truncate(len);
    Ok(out)
}

/// RSA-OAEP decryption; INVALID_CIPHERTEXT if it does not decrypt.
pub fn rsa_decrypt(
    usable: &Usable,
    algorithm: EncryptionAlgorithm,
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let (Usable::Rsa { decrypting, .. }, Some(oaep)) = (usable, oaep(algorithm)) else {
        return Err(failed("find an RSA key for OAEP"));
    };
    let mut out = Zeroizing::new(vec![0u8; decrypting.min_output_size()]);
    let len = decrypting
        .decrypt(oaep, ciphertext, &mut out, None)
        .map_err(|_| invalid_ciphertext())?
        .len();
    out.truncate(len);
    Ok(out)
}

fn rsa_padding(algorithm: SigningAlgorithm) -> Option<&'static dyn RsaEncoding> {
    use SigningAlgorithm::*;
    Some(match algorithm {
        RSASSA_PSS_SHA_256 => &signature::RSA_PSS_SHA256,
        RSASSA_PSS_SHA_384 => &signature::RSA_PSS_SHA384,
        RSASSA_PSS_SHA_512 => &signature::RSA_PSS_SHA512,
        RSASSA_PKCS1_V1_5_SHA_256 => &signature::RSA_PKCS1_SHA256,
        RSASSA_PKCS1_V1_5_SHA_384 => &signature::RSA_PKCS1_SHA384,
        RSASSA_PKCS1_V1_5_SHA_512 => &signature::RSA_PKCS1_SHA512,
        _ => return None,
    })
}

fn digest_algorithm(algorithm: SigningAlgorithm) -> &'static aws_lc_rs::digest::Algorithm {
    match algorithm.digest_len() {
        48 => &SHA384,
        64 => &SHA512,
        _ => &SHA256,
    }
}

/// A DIGEST message as the library takes it; ValidationException-class
/// INVALID_PARAMETER when it is not as long as the algorithm's digest.
fn imported_digest(algorithm: SigningAlgorithm, message: &[u8]) -> Result<Digest, Error> {
    if message.len() != algorithm.digest_len() {
        return Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            "message",
            format!(
                "Digest is invalid length for algorithm {}.",
                algorithm.as_str()
            ),
        ));
    }
    Digest::import_less_safe(message, digest_algorithm(algorithm))
        .map_err(|_| failed("take a digest"))
}

/// Signs `message` (or, with DIGEST, the digest it is) with `algorithm`,
/// which the caller has checked the key supports.
pub fn sign(
    usable: &Usable,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
) -> Result<Vec<u8>, Error> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    match usable {
        Usable::Rsa { signing, .. } => {
            let padding = rsa_padding(algorithm).ok_or_else(|| failed("pick an RSA padding"))?;
            let mut out = vec![0u8; signing.public_modulus_len()];
            match message_type {
                MessageType::RAW => signing.sign(padding, &rng, message, &mut out),
                MessageType::DIGEST => {
                    signing.sign_digest(padding, &imported_digest(algorithm, message)?, &mut out)
                }
            }
            .map_err(|_| failed("sign with RSA"))?;
            Ok(out)
        }
        Usable::Ecdsa(pair, _) => {
            let signed = match message_type {
                MessageType::RAW => pair.sign(&rng, message),
                MessageType::DIGEST => pair.sign_digest(&imported_digest(algorithm, message)?),
            }
            .map_err(|_| failed("sign with ECDSA"))?;
            Ok(signed.as_ref().to_vec())
        }
        Usable::Aes(_) | Usable::Hmac(_) => Err(failed("find a signing key")),
    }
}

fn verification(
    usable: &Usable,
    algorithm: SigningAlgorithm,
) -> Option<(&'static dyn VerificationAlgorithm, Vec<u8>)> {
    use SigningAlgorithm::*;
    match usable {
        Usable::Rsa { signing, .. } => {
            let verify: &'static dyn VerificationAlgorithm = match algorithm {
                RSASSA_PSS_SHA_256 => &signature::RSA_PSS_2048_8192_SHA256,
                RSASSA_PSS_SHA_384 => &signature::RSA_PSS_2048_8192_SHA384,
                RSASSA_PSS_SHA_512 => &signature::RSA_PSS_2048_8192_SHA512,
                RSASSA_PKCS1_V1_5_SHA_256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                RSASSA_PKCS1_V1_5_SHA_384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                RSASSA_PKCS1_V1_5_SHA_512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                _ => return None,
            };
            Some((verify, signing.public_key().as_ref().to_vec()))
        }
        Usable::Ecdsa(pair, spec) => {
            let verify: &'static dyn VerificationAlgorithm = match spec {
                KeySpec::ECC_NIST_P256 => &signature::ECDSA_P256_SHA256_ASN1,
                KeySpec::ECC_NIST_P384 => &signature::ECDSA_P384_SHA384_ASN1,
                KeySpec::ECC_NIST_P521 => &signature::ECDSA_P521_SHA512_ASN1,
                KeySpec::ECC_SECG_P256K1 => &signature::ECDSA_P256K1_SHA256_ASN1,
                _ => return None,
            };
            Some((verify, pair.public_key().as_ref().to_vec()))
        }
        Usable::Aes(_) | Usable::Hmac(_) => None,
    }
}

/// Whether `signature` is the key's signature of `message` (or of the
/// digest it is) with `algorithm`.
pub fn verify(
    usable: &Usable,
    algorithm: SigningAlgorithm,
    message_type: MessageType,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, Error> {
    let (verify, public) =
        verification(usable, algorithm).ok_or_else(|| failed("find a verifying key"))?;
    let key = UnparsedPublicKey::new(verify, public);
    Ok(match message_type {
        MessageType::RAW => key.verify(message, signature).is_ok(),
        MessageType::DIGEST => key
            .verify_digest(&imported_digest(algorithm, message)?, signature)
            .is_ok(),
    })
}

/// The HMAC of `message`.
pub fn mac(usable: &Usable, message: &[u8]) -> Result<Vec<u8>, Error> {
    match usable {
        Usable::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
        _ => Err(failed("find an HMAC key")),
    }
}

/// Whether `tag` is the HMAC of `message` (compared in constant time).
pub fn verify_mac(usable: &Usable, message: &[u8], tag: &[u8]) -> Result<bool, Error> {
    match usable {
        Usable::Hmac(key) => Ok(hmac::verify(key, message, tag).is_ok()),
        _ => Err(failed("find an HMAC key")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::material::generate;

    fn usable(spec: KeySpec) -> Usable {
        Usable::parse(spec, &generate(spec).unwrap().unwrap()).unwrap()
    }

    #[test]
    fn a_ciphertext_opens_only_with_its_account_and_context_and_names_its_key() {
        let Usable::Aes(aes) = usable(KeySpec::SYMMETRIC_DEFAULT) else {
            unreachable!()
        };
        let key_id = KeyId::from_trusted("0d0466b0-e727-4d9c-b35d-f84bb474a37f".into());
        let context: Context = [("purpose".to_owned(), "test".to_owned())].into();
        let blob = seal(&aes, "111", &key_id, 3, &context, b"hello").unwrap();
        assert_eq!(named(&blob).unwrap(), Named { key_id, version: 3 });
        assert_eq!(
            open(&aes, "111", &blob, &context).unwrap().as_slice(),
            b"hello"
        );
        for (account, context) in [("222", context.clone()), ("111", Context::new())] {
            assert_eq!(
                open(&aes, account, &blob, &context).unwrap_err().reason,
                Reason::INVALID_CIPHERTEXT
            );
        }
        let mut changed = blob.clone();
        changed[25] ^= 1;
        assert!(open(&aes, "111", &changed, &context).is_err());
        assert!(named(b"short").is_err());
    }

    #[test]
    fn signatures_verify_raw_and_by_digest_and_fail_when_changed() {
        for (spec, algorithm) in [
            (KeySpec::RSA_2048, SigningAlgorithm::RSASSA_PSS_SHA_256),
            (
                KeySpec::RSA_2048,
                SigningAlgorithm::RSASSA_PKCS1_V1_5_SHA_512,
            ),
            (KeySpec::ECC_NIST_P256, SigningAlgorithm::ECDSA_SHA_256),
            (KeySpec::ECC_NIST_P384, SigningAlgorithm::ECDSA_SHA_384),
            (KeySpec::ECC_NIST_P521, SigningAlgorithm::ECDSA_SHA_512),
            (KeySpec::ECC_SECG_P256K1, SigningAlgorithm::ECDSA_SHA_256),
        ] {
            let key = usable(spec);
            let raw = sign(&key, algorithm, MessageType::RAW, b"message").unwrap();
            assert!(
                verify(&key, algorithm, MessageType::RAW, b"message", &raw).unwrap(),
                "{spec:?} {algorithm:?}"
            );
            assert!(!verify(&key, algorithm, MessageType::RAW, b"massage", &raw).unwrap());
            let digest = aws_lc_rs::digest::digest(digest_algorithm(algorithm), b"message");
            let by_digest = sign(&key, algorithm, MessageType::DIGEST, digest.as_ref()).unwrap();
            assert!(verify(&key, algorithm, MessageType::RAW, b"message", &by_digest).unwrap());
            let short = sign(&key, algorithm, MessageType::DIGEST, b"not a digest");
            assert_eq!(short.unwrap_err().reason, Reason::INVALID_PARAMETER);
        }
    }

    #[test]
    fn rsa_oaep_round_trips_within_its_plaintext_limit() {
        let key = usable(KeySpec::RSA_2048);
        for algorithm in [
            EncryptionAlgorithm::RSAES_OAEP_SHA_1,
            EncryptionAlgorithm::RSAES_OAEP_SHA_256,
        ] {
            let blob = rsa_encrypt(&key, algorithm, b"secret").unwrap();
            assert_eq!(
                rsa_decrypt(&key, algorithm, &blob).unwrap().as_slice(),
                b"secret"
            );
        }
        assert_eq!(
            rsa_max_plaintext(&key, EncryptionAlgorithm::RSAES_OAEP_SHA_1),
            214
        );
        assert_eq!(
            rsa_max_plaintext(&key, EncryptionAlgorithm::RSAES_OAEP_SHA_256),
            190
        );
    }

    #[test]
    fn macs_verify_and_a_changed_message_does_not() {
        let key = usable(KeySpec::HMAC_256);
        let tag = mac(&key, b"message").unwrap();
        assert_eq!(tag.len(), 32);
        assert!(verify_mac(&key, b"message", &tag).unwrap());
        assert!(!verify_mac(&key, b"massage", &tag).unwrap());
    }
}
