//! Which root key a server uses: the file given, or (sled) the default file
//! beside the data directory, created at the first start of a store that
//! holds no material yet; a random one for an `--ephemeral` server without
//! a file. A store that holds material is never given a new root key: a
//! missing file stops the start instead.

use std::sync::Arc;

use super::config::ServeConfig;
use super::ServeError;
use crate::crypto::RootKey;
use crate::store::Store;

/// The root key of a server about to serve `store`.
pub async fn resolve(config: &ServeConfig, store: &Arc<Store>) -> Result<RootKey, ServeError> {
    let config_error = |e: crate::domain::Error| ServeError::Config(e.message);
    let path = match (&config.store.root_key_file, config.ephemeral) {
        (None, true) => return RootKey::random().map_err(config_error),
        _ => config.store.root_key_path(),
    };
    let Some(path) = path else {
        return Err(ServeError::Config(
            "--backend etcd needs --root-key-file".into(),
        ));
    };
    if path.exists() {
        return RootKey::load(&path).map_err(config_error);
    }
    let holds_material = holds_material(store).await.map_err(config_error)?;
    if holds_material || config.store.root_key_file.is_some() {
        return Err(ServeError::Config(format!(
            "root key file {} does not exist{}; give the root key file the store's keys were made \
             with (--root-key-file), or make a new one with `aliasd root-key new FILE` for a new \
             store",
            path.display(),
            if holds_material {
                ", and the store holds key material wrapped under a root key"
            } else {
                ""
            }
        )));
    }
    let key = RootKey::create(&path).map_err(config_error)?;
    tracing::info!(path = %path.display(), "created the root key file (keep it: the store's key material is wrapped under it, and backups do not hold it)");
    Ok(key)
}

/// Whether any key of the store has material.
async fn holds_material(store: &Arc<Store>) -> Result<bool, crate::domain::Error> {
    let mut after = None;
    loop {
        let (keys, last) = store
            .all_keys(after, 1024, |key| !key.materials.is_empty())
            .await?;
        if !keys.is_empty() {
            return Ok(true);
        }
        match last {
            Some(last) => after = Some(last),
            None => return Ok(false),
        }
    }
}
