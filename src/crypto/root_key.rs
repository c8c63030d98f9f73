//! The root key: 32 random bytes under which every key's material is
//! stored wrapped (AES-256-GCM; the associated data binds the account, the
//! key id and the material version's id, so wrapped material cannot be moved
//! to another key or version). It lives in a file of its own, base64 on one line, readable
//! by its owner only: never in the store, never in a backup.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::domain::{Error, KeyId, Reason};

/// The format byte of wrapped material.
const WRAPPED_V1: u8 = 1;

/// The root key (the bytes are wiped when dropped; Debug shows none).
pub struct RootKey {
    key: LessSafeKey,
    /// A short, non-secret name of this root key (the first bytes of a
    /// digest of it), so that a mismatch can be told apart in messages.
    fingerprint: String,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RootKey({})", self.fingerprint)
    }
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::internal(format!("root key file {}: {message}", path.display()))
}

impl RootKey {
    fn from_bytes(bytes: &[u8; 32]) -> RootKey {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        let fingerprint = digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, bytes).expect("32 bytes are an AES-256 key"),
        );
        RootKey { key, fingerprint }
    }

    /// A new random root key (`--ephemeral`: it lives as long as the
    /// process, as the store does).
    pub fn random() -> Result<RootKey, Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| Error::internal("no randomness for a root key"))?;
        Ok(RootKey::from_bytes(&bytes))
    }

    /// Reads the root key in `path`: 32 bytes, base64, on one line. A file
    /// that others than its owner may read is refused.
    pub fn load(path: &Path) -> Result<RootKey, Error> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| invalid(path, e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(invalid(
                path,
                format!(
                    "its mode is {mode:o}, so other users can read it; make it readable by its \
                     owner only (chmod 600)"
                ),
            ));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| invalid(path, e))?);
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| invalid(path, "it is not base64 (one line of it)"))?,
        );
        let bytes: Zeroizing<[u8; 32]> = Zeroizing::new(
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| invalid(path, format!("it holds {} bytes, not 32", decoded.len())))?,
        );
        Ok(RootKey::from_bytes(&bytes))
    }

    /// Writes a new random root key to `path`, readable by its owner only;
    /// refuses to overwrite a file.
    pub fn create(path: &Path) -> Result<RootKey, Error> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(bytes.as_mut())
            .map_err(|_| Error::internal("no randomness for a root key"))?;
        let text = Zeroizing::new(format!(
            "{}\n",
            base64::engine::general_purpose::STANDARD.encode(bytes.as_ref())
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| invalid(path, format!("cannot create it: {e}")))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| invalid(path, format!("cannot write it: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        Ok(RootKey::from_bytes(&bytes))
    }

    /// Loads the root key in `path`, creating it first if there is none.
    pub fn load_or_create(path: &Path) -> Result<RootKey, Error> {
        match path.exists() {
            true => RootKey::load(path),
            false => RootKey::create(path),
        }
    }

    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Wraps `material`, the version `material_id` of `account`'s key
    /// `key_id`.
    pub fn wrap(
        &self,
        account: &str,
        key_id: &KeyId,
        material_id: &str,
        material: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| Error::internal("no randomness"))?;
        let mut sealed = material.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding(account, key_id, material_id)),
                &mut sealed,
            )
            .map_err(|_| Error::internal("cannot wrap key material"))?;
        let mut wrapped = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        wrapped.push(WRAPPED_V1);
        wrapped.extend_from_slice(&nonce);
        wrapped.extend_from_slice(&sealed);
        sealed.iter_mut().for_each(|b| *b = 0);
        Ok(wrapped)
    }

    /// The material `wrapped` holds, if this root key wrapped it for this
    /// key and version; a clear error otherwise (another root key, or
    /// material moved from another key).
    pub fn unwrap(
        &self,
        account: &str,
        key_id: &KeyId,
        material_id: &str,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let unavailable = || {
            Error::new(
                Reason::KEY_MATERIAL_UNAVAILABLE,
                format!(
                    "The material of key {key_id} (material {material_id}) does not unwrap under \
                     this server's root key ({}): it was made under another root key. Start the \
                     server with the root key file the key was made with (--root-key-file).",
                    self.fingerprint
                ),
            )
        };
        let (format, rest) = wrapped.split_first().ok_or_else(unavailable)?;
        if *format != WRAPPED_V1 || rest.len() < NONCE_LEN + 16 {
            return Err(unavailable());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unavailable())?;
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let plain_len = self
            .key
            .open_in_place(
                nonce,
                Aad::from(binding(account, key_id, material_id)),
                &mut buffer,
            )
            .map_err(|_| unavailable())?
            .len();
        buffer.truncate(plain_len);
        Ok(buffer)
    }
}

/// What wrapped material is bound to.
fn binding(account: &str, key_id: &KeyId, material_id: &str) -> Vec<u8> {
    let mut aad = b"aliasd key material v1\0".to_vec();
    for part in [account, key_id.as_str(), material_id] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_id(text: &str) -> KeyId {
        KeyId::from_trusted(text.to_owned())
    }

    #[test]
    fn material_unwraps_only_for_its_key_version_and_root_key() {
        let root = RootKey::random().unwrap();
        let id = key_id("0d0466b0-e727-4d9c-b35d-f84bb474a37f");
        let wrapped = root.wrap("111", &id, "m0", b"secret material").unwrap();
        assert!(
            !wrapped.windows(6).any(|w| w == b"secret"),
            "stored wrapped"
        );
        assert_eq!(
            root.unwrap("111", &id, "m0", &wrapped).unwrap().as_slice(),
            b"secret material"
        );
        let other = key_id("7c1f3a52-4b2d-4c59-9a0e-3d1e2f6a8b90");
        for (account, key, material) in [
            ("222", &id, "m0"),
            ("111", &other, "m0"),
            ("111", &id, "m1"),
        ] {
            let error = root.unwrap(account, key, material, &wrapped).unwrap_err();
            assert_eq!(error.reason, Reason::KEY_MATERIAL_UNAVAILABLE);
        }
        let error = RootKey::random()
            .unwrap()
            .unwrap("111", &id, "m0", &wrapped)
            .unwrap_err();
        assert!(
            error.message.contains("another root key"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("secret"));
    }

    #[test]
    fn a_root_key_file_is_owner_only_and_round_trips() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        let made = RootKey::create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = RootKey::load(&path).unwrap();
        assert_eq!(made.fingerprint(), loaded.fingerprint());
        assert!(RootKey::create(&path).is_err(), "never overwritten");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = RootKey::load(&path).unwrap_err();
        assert!(error.message.contains("chmod 600"), "{}", error.message);
    }
}
