//! Material in use: unwrapped under the root key and parsed once, then
//! kept in memory (AWS-LC clears its copies when an entry is dropped). The
//! cache is the only place plain material lives, and only for as long as it
//! holds the entry.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::material::{self, Usable};
use super::root_key::RootKey;
use crate::domain::key::{Key, KeyMaterial, NewMaterial};
use crate::domain::{Error, KeyId, KeySpec};

/// How many material versions the cache holds before it starts over.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// The root key, and the material it has unwrapped.
pub struct MaterialCache {
    root: RootKey,
    /// (account, key id, material id) to the parsed material. The material
    /// id is random and never reused, and wrapped material is bound to all
    /// three, so an entry can never stand for other material.
    entries: RwLock<HashMap<(String, KeyId, String), Arc<Usable>>>,
    capacity: usize,
}

impl std::fmt::Debug for MaterialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaterialCache({:?})", self.root)
    }
}

impl MaterialCache {
    pub fn new(root: RootKey) -> MaterialCache {
        MaterialCache::with_capacity(root, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(root: RootKey, capacity: usize) -> MaterialCache {
        MaterialCache {
            root,
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn root(&self) -> &RootKey {
        &self.root
    }

    /// Fresh material for a new key (or a new version of `key_id`) of
    /// `spec`, wrapped for `account`; None for SM2, which has none.
    pub fn new_material(
        &self,
        account: &str,
        key_id: &KeyId,
        spec: KeySpec,
    ) -> Result<Option<NewMaterial>, Error> {
        let Some(plain) = material::generate(spec)? else {
            return Ok(None);
        };
        let id = hex(&material::random(32)?);
        let wrapped = self.root.wrap(account, key_id, &id, &plain)?;
        Ok(Some(NewMaterial { id, wrapped }))
    }

    /// The usable form of `material`, a version of `account`'s `key`:
    /// from the cache, or unwrapped and parsed now (KEY_MATERIAL_UNAVAILABLE
    /// if it does not unwrap under this root key).
    pub fn usable(
        &self,
        account: &str,
        key: &Key,
        material: &KeyMaterial,
    ) -> Result<Arc<Usable>, Error> {
        let entry = (account.to_owned(), key.key_id.clone(), material.id.clone());
        if let Some(found) = self.read().get(&entry) {
            return Ok(found.clone());
        }
        let plain = self
            .root
            .unwrap(account, &key.key_id, &material.id, &material.wrapped)?;
        let usable = Arc::new(Usable::parse(key.key_spec, &plain)?);
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(entry, usable.clone());
        Ok(usable)
    }

    /// Whether `material` unwraps under this root key (`aliasd check`).
    pub fn unwraps(&self, account: &str, key_id: &KeyId, material: &KeyMaterial) -> bool {
        self.root
            .unwrap(account, key_id, &material.id, &material.wrapped)
            .is_ok()
    }

    /// How many material versions are held unwrapped now.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<(String, KeyId, String), Arc<Usable>>> {
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::key::{KeyManager, KeyState, KeyUsage};

    fn key(spec: KeySpec, usage: KeyUsage) -> Key {
        Key {
            key_id: KeyId::generate(),
            description: String::new(),
            key_spec: spec,
            key_usage: usage,
            key_state: KeyState::ENABLED,
            key_manager: KeyManager::CUSTOMER,
            creation_time: 0,
            deletion_time: None,
            pending_window_in_days: 0,
            materials: Vec::new(),
            rotation: None,
            tags: Default::default(),
            policy: None,
        }
    }

    #[test]
    fn material_is_cached_once_unwrapped_and_refused_under_another_root_key() {
        let cache = MaterialCache::with_capacity(RootKey::random().unwrap(), 2);
        let mut k = key(KeySpec::HMAC_256, KeyUsage::GENERATE_VERIFY_MAC);
        let new = cache
            .new_material("111", &k.key_id, k.key_spec)
            .unwrap()
            .unwrap();
        assert_eq!(new.id.len(), 64);
        k.push_material(new, None, 0);
        let material = k.current_material().unwrap().clone();
        let first = cache.usable("111", &k, &material).unwrap();
        let again = cache.usable("111", &k, &material).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "parsed once");
        assert_eq!(cache.len(), 1);
        // Bound to the account: another account's view does not unwrap.
        assert!(cache.usable("222", &k, &material).is_err());
        let other = MaterialCache::new(RootKey::random().unwrap());
        let error = other.usable("111", &k, &material).unwrap_err();
        assert_eq!(
            error.reason,
            crate::domain::Reason::KEY_MATERIAL_UNAVAILABLE
        );
        assert!(!other.unwraps("111", &k.key_id, &material));
        assert!(cache.unwraps("111", &k.key_id, &material));
    }

    #[test]
    fn sm2_keys_get_no_material() {
        let cache = MaterialCache::new(RootKey::random().unwrap());
        assert!(cache
            .new_material("111", &KeyId::generate(), KeySpec::SM2)
            .unwrap()
            .is_none());
    }
}
