//! The algorithms a key may be used with, by its spec and usage, with AWS
//! KMS's names for them (KeyMetadata's `EncryptionAlgorithms`,
//! `SigningAlgorithms` and `MacAlgorithms`).

use crate::domain::error::{Error, Reason, Result};
use crate::domain::{Key, KeySpec, KeyUsage};

named_enum!(
    /// How Encrypt and Decrypt use a key.
    EncryptionAlgorithm { SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE }
);

named_enum!(
    /// How Sign and Verify use a key.
    SigningAlgorithm {
        RSASSA_PSS_SHA_256, RSASSA_PSS_SHA_384, RSASSA_PSS_SHA_512,
        RSASSA_PKCS1_V1_5_SHA_256, RSASSA_PKCS1_V1_5_SHA_384, RSASSA_PKCS1_V1_5_SHA_512,
        ECDSA_SHA_256, ECDSA_SHA_384, ECDSA_SHA_512, SM2DSA,
    }
);

named_enum!(
    /// How GenerateMac and VerifyMac use a key.
    MacAlgorithm { HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512 }
);

named_enum!(
    /// What Sign's `Message` is: the message itself, or its digest.
    MessageType { RAW, DIGEST }
);

named_enum!(
    /// The data keys GenerateDataKey makes, by size.
    DataKeySpec { AES_256, AES_128 }
);

impl DataKeySpec {
    /// The data key's length in bytes.
    pub fn bytes(self) -> usize {
        match self {
            DataKeySpec::AES_256 => 32,
            DataKeySpec::AES_128 => 16,
        }
    }
}

named_enum!(
    /// The key pairs GenerateDataKeyPair makes.
    KeyPairSpec {
        RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521,
        ECC_SECG_P256K1, SM2,
    }
);

impl SigningAlgorithm {
    /// The length of the digest the algorithm signs (a DIGEST message must
    /// be this long).
    pub fn digest_len(self) -> usize {
        use SigningAlgorithm::*;
        match self {
            RSASSA_PSS_SHA_256 | RSASSA_PKCS1_V1_5_SHA_256 | ECDSA_SHA_256 | SM2DSA => 32,
            RSASSA_PSS_SHA_384 | RSASSA_PKCS1_V1_5_SHA_384 | ECDSA_SHA_384 => 48,
            RSASSA_PSS_SHA_512 | RSASSA_PKCS1_V1_5_SHA_512 | ECDSA_SHA_512 => 64,
        }
    }
}

/// The encryption algorithms of a key (empty unless it encrypts).
pub fn encryption_algorithms(spec: KeySpec, usage: KeyUsage) -> &'static [EncryptionAlgorithm] {
    use EncryptionAlgorithm::*;
    match (spec, usage) {
        (_, usage) if usage != KeyUsage::ENCRYPT_DECRYPT => &[],
        (KeySpec::SYMMETRIC_DEFAULT, _) => &[SYMMETRIC_DEFAULT],
        (KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096, _) => {
            &[RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256]
        }
        (KeySpec::SM2, _) => &[SM2PKE],
        _ => &[],
    }
}

/// The signing algorithms of a key (empty unless it signs).
pub fn signing_algorithms(spec: KeySpec, usage: KeyUsage) -> &'static [SigningAlgorithm] {
    use SigningAlgorithm::*;
    if usage != KeyUsage::SIGN_VERIFY {
        return &[];
    }
    match spec {
        // In the order AWS lists them.
        KeySpec::RSA_2048 | KeySpec::RSA_3072 | KeySpec::RSA_4096 => &[
            RSASSA_PKCS1_V1_5_SHA_256,
            RSASSA_PKCS1_V1_5_SHA_384,
            RSASSA_PKCS1_V1_5_SHA_512,
            RSASSA_PSS_SHA_256,
            RSASSA_PSS_SHA_384,
            RSASSA_PSS_SHA_512,
        ],
        KeySpec::ECC_NIST_P256 | KeySpec::ECC_SECG_P256K1 => &[ECDSA_SHA_256],
        KeySpec::ECC_NIST_P384 => &[ECDSA_SHA_384],
        KeySpec::ECC_NIST_P521 => &[ECDSA_SHA_512],
        KeySpec::SM2 => &[SM2DSA],
        _ => &[],
    }
}

/// The MAC algorithm of an HMAC key (None for any other).
pub fn mac_algorithm(spec: KeySpec) -> Option<MacAlgorithm> {
    match spec {
        KeySpec::HMAC_224 => Some(MacAlgorithm::HMAC_SHA_224),
        KeySpec::HMAC_256 => Some(MacAlgorithm::HMAC_SHA_256),
        KeySpec::HMAC_384 => Some(MacAlgorithm::HMAC_SHA_384),
        KeySpec::HMAC_512 => Some(MacAlgorithm::HMAC_SHA_512),
        _ => None,
    }
}

/// The key-agreement algorithms of a key (AWS's `ECDH`).
pub fn key_agreement_algorithms(spec: KeySpec, usage: KeyUsage) -> &'static [&'static str] {
    match (spec, usage) {
        (_, KeyUsage::KEY_AGREEMENT) => &["ECDH"],
        _ => &[],
    }
}

impl KeyPairSpec {
    /// The key spec whose material this pair is made like.
    pub fn key_spec(self) -> KeySpec {
        match self {
            KeyPairSpec::RSA_2048 => KeySpec::RSA_2048,
            KeyPairSpec::RSA_3072 => KeySpec::RSA_3072,
            KeyPairSpec::RSA_4096 => KeySpec::RSA_4096,
            KeyPairSpec::ECC_NIST_P256 => KeySpec::ECC_NIST_P256,
            KeyPairSpec::ECC_NIST_P384 => KeySpec::ECC_NIST_P384,
            KeyPairSpec::ECC_NIST_P521 => KeySpec::ECC_NIST_P521,
            KeyPairSpec::ECC_SECG_P256K1 => KeySpec::ECC_SECG_P256K1,
            KeyPairSpec::SM2 => KeySpec::SM2,
        }
    }
}

/// AWS's words: `Algorithm ECDSA_SHA_384 is incompatible with key spec
/// ECC_NIST_P256.`
fn incompatible(key: &Key, name: &str) -> Error {
    Error::new(
        Reason::KEY_USAGE_NOT_ALLOWED,
        format!(
            "Algorithm {name} is incompatible with key spec {}.",
            key.key_spec.as_str()
        ),
    )
}

/// Fails unless `key` encrypts with `algorithm`.
pub fn ensure_encryption(key: &Key, algorithm: EncryptionAlgorithm) -> Result<()> {
    match encryption_algorithms(key.key_spec, key.key_usage).contains(&algorithm) {
        true => Ok(()),
        false => Err(incompatible(key, algorithm.as_str())),
    }
}

/// Fails unless `key` signs with `algorithm`.
pub fn ensure_signing(key: &Key, algorithm: SigningAlgorithm) -> Result<()> {
    match signing_algorithms(key.key_spec, key.key_usage).contains(&algorithm) {
        true => Ok(()),
        false => Err(incompatible(key, algorithm.as_str())),
    }
}

/// Fails unless `key` makes MACs with `algorithm`.
pub fn ensure_mac(key: &Key, algorithm: MacAlgorithm) -> Result<()> {
    match mac_algorithm(key.key_spec) == Some(algorithm) {
        true => Ok(()),
        false => Err(incompatible(key, algorithm.as_str())),
    }
}

/// Fails unless `key` is a symmetric encryption key (data keys and data
/// key pairs), in AWS's words.
pub fn ensure_symmetric(key: &Key) -> Result<()> {
    match key.key_spec == KeySpec::SYMMETRIC_DEFAULT {
        true => Ok(()),
        false => Err(Error::new(
            Reason::KEY_USAGE_NOT_ALLOWED,
            "You cannot generate a data key with an asymmetric CMK",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_follow_the_spec_and_usage() {
        use KeySpec::*;
        use KeyUsage::*;
        assert_eq!(
            encryption_algorithms(SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT),
            [EncryptionAlgorithm::SYMMETRIC_DEFAULT]
        );
        assert_eq!(encryption_algorithms(RSA_2048, ENCRYPT_DECRYPT).len(), 2);
        assert!(encryption_algorithms(RSA_2048, SIGN_VERIFY).is_empty());
        assert_eq!(signing_algorithms(RSA_4096, SIGN_VERIFY).len(), 6);
        assert_eq!(
            signing_algorithms(ECC_NIST_P521, SIGN_VERIFY),
            [SigningAlgorithm::ECDSA_SHA_512]
        );
        assert!(signing_algorithms(ECC_NIST_P256, KEY_AGREEMENT).is_empty());
        assert_eq!(mac_algorithm(HMAC_384), Some(MacAlgorithm::HMAC_SHA_384));
        assert_eq!(mac_algorithm(SYMMETRIC_DEFAULT), None);
    }
}
