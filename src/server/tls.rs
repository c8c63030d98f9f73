//! TLS material, checked before the server listens: every file must hold
//! what its flag says (a certificate chain, a private key, CA certificates),
//! in PEM, and the key must belong to the certificate. A mistake stops
//! start-up with a message naming the file and what is wrong with it,
//! instead of a transport error after "listening on".

use std::path::Path;

use rustls::crypto::ring::default_provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What is wrong with the TLS files, in words for the operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

fn read(flag: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| TlsError(format!("{flag} {}: cannot read it: {e}", path.display())))
}

/// The certificates of a PEM file, each checked to parse as X.509.
fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(flag, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError(format!(
                "{flag} {}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        let hint = if PrivateKeyDer::from_pem_slice(&pem).is_ok() {
            " (it holds a private key: are --tls-cert and --tls-key swapped?)"
        } else {
            ""
        };
        return Err(TlsError(format!(
            "{flag} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it{hint}",
            path.display()
        )));
    }
    for (n, cert) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| {
            TlsError(format!(
                "{flag} {}: certificate #{} is not a valid X.509 certificate: {e}",
                path.display(),
                n + 1
            ))
        })?;
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read("--tls-key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let hint = if CertificateDer::from_pem_slice(&pem).is_ok() {
            " (it holds a certificate: are --tls-cert and --tls-key swapped?)"
        } else {
            ""
        };
        TlsError(format!(
            "--tls-key {}: no usable PEM private key (PKCS#8, PKCS#1 or SEC1) in it: {e}{hint}",
            path.display()
        ))
    })
}

/// Checks the server's certificate chain and key, and the client CA if any.
pub fn check(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<(), TlsError> {
    let chain = certificates("--tls-cert", cert)?;
    let key_der = private_key(key)?;
    let provider = default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| {
            TlsError(format!(
                "--tls-key {}: the key cannot be used for TLS: {e}",
                key.display()
            ))
        })?;
    CertifiedKey::new(chain, signing_key)
        .keys_match()
        .map_err(|e| {
            TlsError(format!(
                "--tls-key {} does not belong to the certificate in --tls-cert {}: {e}",
                key.display(),
                cert.display()
            ))
        })?;
    if let Some(ca) = client_ca {
        let mut roots = rustls::RootCertStore::empty();
        for (n, cert) in certificates("--tls-client-ca", ca)?.into_iter().enumerate() {
            // A leaf given as the CA would make every client certificate fail
            // (or, worse, pass) for reasons nobody would guess.
            let is_ca = x509_parser::parse_x509_certificate(cert.as_ref())
                .ok()
                .and_then(|(_, parsed)| {
                    parsed
                        .basic_constraints()
                        .ok()
                        .flatten()
                        .map(|b| b.value.ca)
                })
                .unwrap_or(false);
            if !is_ca {
                return Err(TlsError(format!(
                    "--tls-client-ca {}: certificate #{} is not a CA certificate (it lacks \
                     basicConstraints CA:TRUE); give the CA that signs the client certificates",
                    ca.display(),
                    n + 1
                )));
            }
            roots.add(cert).map_err(|e| {
                TlsError(format!(
                    "--tls-client-ca {}: not a usable CA certificate: {e}",
                    ca.display()
                ))
            })?;
        }
    }
    Ok(())
}
