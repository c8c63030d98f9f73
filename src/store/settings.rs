//! What a store keeps about itself: the settings that define its records
//! (checked at every start) and the secret that signs page tokens.

use std::cell::{Cell, RefCell};

use super::backend::{Backend, Tree};
use super::{layout, Store};
use crate::domain::{Error, Reason};

/// The settings that define what a store's records mean: the ARNs its
/// answers name (partition, region, the default account) and the quotas its
/// invariants hold to. Recorded by the first server that opens the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreSettings {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub max_aliases_per_key: u64,
    pub max_keys_per_account: u64,
}

impl StoreSettings {
    /// `--flag: store's value (this server: value)`, for each that differs.
    fn differences(&self, server: &StoreSettings) -> Vec<String> {
        let pairs = [
            (
                "--partition",
                self.partition.clone(),
                server.partition.clone(),
            ),
            ("--region", self.region.clone(), server.region.clone()),
            ("--account", self.account.clone(), server.account.clone()),
            (
                "--max-aliases-per-key",
                self.max_aliases_per_key.to_string(),
                server.max_aliases_per_key.to_string(),
            ),
            (
                "--max-keys-per-account",
                self.max_keys_per_account.to_string(),
                server.max_keys_per_account.to_string(),
            ),
        ];
        pairs
            .into_iter()
            .filter(|(_, stored, given)| stored != given)
            .map(|(flag, stored, given)| format!("{flag} is {stored} in the store, {given} here"))
            .collect()
    }
}

impl Store {
    /// Records `settings` in a store that has none yet, or checks them
    /// against those recorded: instances that share a store (or a server
    /// restarted on it) must make the same ARNs and apply the same quotas.
    /// A mismatch is refused, naming both values, unless `update` says to
    /// record the new ones.
    pub fn settle_settings(&self, settings: &StoreSettings, update: bool) -> Result<(), Error> {
        let wanted =
            serde_json::to_vec(settings).map_err(|e| Error::internal(format!("settings: {e}")))?;
        let recorded = RefCell::new(None);
        self.gated_transact(&|tx| {
            let stored = tx.get(Tree::Meta, layout::SETTINGS)?;
            *recorded.borrow_mut() = stored.clone();
            match stored {
                Some(stored) if !update && stored != wanted => Ok(()),
                Some(stored) if stored == wanted => Ok(()),
                _ => tx.put(Tree::Meta, layout::SETTINGS, &wanted),
            }
        })?;
        let Some(stored) = recorded.into_inner().filter(|stored| *stored != wanted) else {
            return Ok(());
        };
        if update {
            tracing::warn!(
                "the store's settings are updated; restart every other instance with them"
            );
            return Ok(());
        }
        let stored: StoreSettings = serde_json::from_slice(&stored).map_err(|e| {
            Error::internal(format!("the store's recorded settings are unreadable: {e}"))
        })?;
        Err(Error::new(
            Reason::INTERNAL,
            format!(
                "this store was made with other settings than this server's: {}. Start with the \
                 store's values, or pass --update-store-settings to record this server's (every \
                 other instance on the store must then be restarted with them).",
                stored.differences(settings).join("; ")
            ),
        ))
    }
    /// The secret that signs page tokens: made once, kept in the store, so
    /// tokens survive restarts. Created only if absent, in one transaction,
    /// so that processes sharing a store all end up with the first one.
    pub(super) fn token_secret(backend: &dyn Backend) -> Result<[u8; 32], Error> {
        let mut candidate = [0u8; 32];
        getrandom::getrandom(&mut candidate)
            .map_err(|e| Error::internal(format!("no randomness: {e}")))?;
        let chosen = Cell::new(candidate);
        backend.transact(&|tx| {
            if let Some(stored) = tx.get(Tree::Meta, layout::TOKEN_SECRET)? {
                if let Ok(secret) = <[u8; 32]>::try_from(stored.as_slice()) {
                    chosen.set(secret);
                    return Ok(());
                }
            }
            chosen.set(candidate);
            tx.put(Tree::Meta, layout::TOKEN_SECRET, &candidate)
        })?;
        Ok(chosen.get())
    }
}
