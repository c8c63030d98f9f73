//! Key material: made for a key's spec, and made usable (parsed once, then
//! cached by the caller). All of it through AWS-LC (`aws-lc-rs`); nothing
//! here is cryptography of our own.

use aws_lc_rs::aead::{LessSafeKey, UnboundKey, AES_256_GCM};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair, ECDSA_P256K1_SHA256_ASN1_SIGNING,
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, ECDSA_P521_SHA512_ASN1_SIGNING,
};
use zeroize::Zeroizing;

use crate::domain::key::sm2_unsupported;
use crate::domain::{Error, KeySpec, Reason};

fn failed(what: &str) -> Error {
    Error::internal(format!("the cryptographic library failed to {what}"))
}

fn ecdsa_algorithm(spec: KeySpec) -> Option<&'static EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::ECC_NIST_P256 => Some(&ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::ECC_NIST_P384 => Some(&ECDSA_P384_SHA384_ASN1_SIGNING),
        KeySpec::ECC_NIST_P521 => Some(&ECDSA_P521_SHA512_ASN1_SIGNING),
        KeySpec::ECC_SECG_P256K1 => Some(&ECDSA_P256K1_SHA256_ASN1_SIGNING),
        _ => None,
    }
}

fn hmac_algorithm(spec: KeySpec) -> Option<(hmac::Algorithm, usize)> {
    match spec {
        KeySpec::HMAC_224 => Some((hmac::HMAC_SHA224, 28)),
        KeySpec::HMAC_256 => Some((hmac::HMAC_SHA256, 32)),
        KeySpec::HMAC_384 => Some((hmac::HMAC_SHA384, 48)),
        KeySpec::HMAC_512 => Some((hmac::HMAC_SHA512, 64)),
        _ => None,
    }
}

fn rsa_size(spec: KeySpec) -> Option<KeySize> {
    match spec {
        KeySpec::RSA_2048 => Some(KeySize::Rsa2048),
        KeySpec::RSA_3072 => Some(KeySize::Rsa3072),
        KeySpec::RSA_4096 => Some(KeySize::Rsa4096),
        _ => None,
    }
}

/// Random bytes from AWS-LC's generator.
pub fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut bytes = Zeroizing::new(vec![0u8; len]);
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| failed("make random bytes"))?;
    Ok(bytes)
}

/// Fresh material for a key of `spec`: an AES-256 key, an HMAC key as long
/// as its digest, or a private key as PKCS#8 DER. None for SM2.
pub fn generate(spec: KeySpec) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
    if spec == KeySpec::SYMMETRIC_DEFAULT {
        return random(32).map(Some);
    }
    if let Some((_, len)) = hmac_algorithm(spec) {
        return random(len).map(Some);
    }
    if let Some(size) = rsa_size(spec) {
        let pair = RsaKeyPair::generate(size).map_err(|_| failed("make an RSA key"))?;
        let der = pair.as_der().map_err(|_| failed("encode an RSA key"))?;
        return Ok(Some(Zeroizing::new(der.as_ref().to_vec())));
    }
    if let Some(algorithm) = ecdsa_algorithm(spec) {
        let pair = EcdsaKeyPair::generate(algorithm).map_err(|_| failed("make an EC key"))?;
        let der = pair.to_pkcs8v1().map_err(|_| failed("encode an EC key"))?;
        return Ok(Some(Zeroizing::new(der.as_ref().to_vec())));
    }
    Ok(None)
}

/// Material ready for use (AWS-LC frees and clears its own copies).
pub enum Usable {
    Aes(LessSafeKey),
    Hmac(Box<hmac::Key>),
    Rsa {
        signing: RsaKeyPair,
        decrypting: OaepPrivateDecryptingKey,
        encrypting: OaepPublicEncryptingKey,
    },
    /// The pair and its curve (as a key spec).
    Ecdsa(EcdsaKeyPair, KeySpec),
}

impl std::fmt::Debug for Usable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Usable::Aes(_) => "Usable::Aes(..)",
            Usable::Hmac(_) => "Usable::Hmac(..)",
            Usable::Rsa { .. } => "Usable::Rsa(..)",
            Usable::Ecdsa(..) => "Usable::Ecdsa(..)",
        })
    }
}

impl Usable {
    /// Parses the material of a key of `spec`.
    pub fn parse(spec: KeySpec, material: &[u8]) -> Result<Usable, Error> {
        let corrupt =
            || Error::internal(format!("stored {} material does not parse", spec.as_str()));
        if spec == KeySpec::SYMMETRIC_DEFAULT {
            let key = UnboundKey::new(&AES_256_GCM, material).map_err(|_| corrupt())?;
            return Ok(Usable::Aes(LessSafeKey::new(key)));
        }
        if let Some((algorithm, _)) = hmac_algorithm(spec) {
            return Ok(Usable::Hmac(Box::new(hmac::Key::new(algorithm, material))));
        }
        if rsa_size(spec).is_some() {
            let signing = RsaKeyPair::from_pkcs8(material).map_err(|_| corrupt())?;
            let private = PrivateDecryptingKey::from_pkcs8(material).map_err(|_| corrupt())?;
            let encrypting =
                OaepPublicEncryptingKey::new(private.public_key()).map_err(|_| corrupt())?;
            let decrypting = OaepPrivateDecryptingKey::new(private).map_err(|_| corrupt())?;
            return Ok(Usable::Rsa {
                signing,
                decrypting,
                encrypting,
            });
        }
        if let Some(algorithm) = ecdsa_algorithm(spec) {
            let pair = EcdsaKeyPair::from_pkcs8(algorithm, material).map_err(|_| corrupt())?;
            return Ok(Usable::Ecdsa(pair, spec));
        }
        Err(sm2_unsupported())
    }

    /// The public key, as X.509 SubjectPublicKeyInfo DER (what GetPublicKey
    /// returns and any library imports).
    pub fn public_key_der(&self) -> Result<Vec<u8>, Error> {
        match self {
            Usable::Rsa { signing, .. } => signing
                .public_key()
                .as_der()
                .map(|der| der.as_ref().to_vec())
                .map_err(|_| failed("encode a public key")),
            Usable::Ecdsa(pair, _) => pair
                .public_key()
                .as_der()
                .map(|der| der.as_ref().to_vec())
                .map_err(|_| failed("encode a public key")),
            Usable::Aes(_) | Usable::Hmac(_) => Err(Error::new(
                Reason::UNSUPPORTED_OPERATION,
                "A symmetric or HMAC key has no public key.",
            )),
        }
    }
}

/// A key pair of `spec` for GenerateDataKeyPair: the private key (PKCS#8
/// DER) and the public key (SubjectPublicKeyInfo DER).
pub fn data_key_pair(spec: KeySpec) -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), Error> {
    let private = generate(spec)?.ok_or_else(sm2_unsupported)?;
    let public = Usable::parse(spec, &private)?.public_key_der()?;
    Ok((private, public))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_but_sm2_gets_material_that_parses() {
        for spec in KeySpec::ALL {
            // RSA_4096 takes seconds to make: the other sizes stand for it.
            if *spec == KeySpec::RSA_4096 {
                continue;
            }
            match generate(*spec).unwrap() {
                Some(material) => {
                    Usable::parse(*spec, &material).unwrap();
                }
                None => assert_eq!(*spec, KeySpec::SM2),
            }
        }
        assert_eq!(generate(KeySpec::HMAC_224).unwrap().unwrap().len(), 28);
        assert_eq!(
            Usable::parse(KeySpec::SM2, b"").unwrap_err().reason,
            Reason::SM2_UNSUPPORTED
        );
    }
}
