//! The sled implementation of [`Txn`]: one account's view of one multi-tree
//! transaction. Keeps the per-key alias index, the key counter, the deletion
//! schedule and the revision counter in step with the records.

use std::cell::Cell;

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::layout;
use super::records::{self, AliasRecord, AliasSetRecord, ChangeRecord, KeyRecord};
use crate::domain::ops::Txn;
use crate::domain::{Alias, AliasEvent, AliasName, Error, Key, KeyId};

pub type Fail = ConflictableTransactionError<Error>;

/// The trees of one transaction, in the order of [`super::Trees::all`].
pub struct TxTrees<'a> {
    pub keys: &'a TransactionalTree,
    pub aliases: &'a TransactionalTree,
    pub key_aliases: &'a TransactionalTree,
    pub changes: &'a TransactionalTree,
    pub meta: &'a TransactionalTree,
    pub requests: &'a TransactionalTree,
    pub requests_by_time: &'a TransactionalTree,
    pub schedule: &'a TransactionalTree,
}

pub struct SledTxn<'a> {
    pub trees: TxTrees<'a>,
    pub account: &'a str,
    /// The last revision this run allocated, so that the store can publish
    /// it once the transaction is durable.
    pub last_revision: Cell<Option<u64>>,
}

fn get<M: prost::Message + Default>(
    tree: &TransactionalTree,
    key: &[u8],
    what: &str,
) -> Result<Option<M>, Fail> {
    match tree.get(key)? {
        Some(bytes) => Ok(Some(records::decode(what, &bytes).map_err(Fail::Abort)?)),
        None => Ok(None),
    }
}

pub fn read_u64(bytes: Option<sled::IVec>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

impl SledTxn<'_> {
    fn counter(&self, name: &[u8]) -> Result<u64, Fail> {
        Ok(read_u64(
            self.trees.meta.get(layout::scoped(self.account, name))?,
        ))
    }

    fn set_counter(&self, name: &[u8], value: u64) -> Result<(), Fail> {
        self.trees
            .meta
            .insert(layout::scoped(self.account, name), &value.to_be_bytes())?;
        Ok(())
    }

    fn alias_set(&self, key: &KeyId) -> Result<Vec<String>, Fail> {
        let key = layout::scoped(self.account, key.as_str().as_bytes());
        Ok(
            get::<AliasSetRecord>(self.trees.key_aliases, &key, "alias index")?
                .map(|set| set.names)
                .unwrap_or_default(),
        )
    }

    fn set_alias_set(&self, key: &KeyId, names: Vec<String>) -> Result<(), Fail> {
        let key = layout::scoped(self.account, key.as_str().as_bytes());
        if names.is_empty() {
            self.trees.key_aliases.remove(key)?;
        } else {
            self.trees
                .key_aliases
                .insert(key, records::encode(&AliasSetRecord { names }))?;
        }
        Ok(())
    }

    fn schedule_entry(&self, key: &Key) -> Option<Vec<u8>> {
        key.deletion_time
            .map(|time| layout::schedule_key(time, self.account, &key.key_id))
    }
}

impl Txn for SledTxn<'_> {
    type Fail = Fail;

    fn key(&self, id: &KeyId) -> Result<Option<Key>, Fail> {
        let key = layout::scoped(self.account, id.as_str().as_bytes());
        match get::<KeyRecord>(self.trees.keys, &key, "key")? {
            Some(record) => Ok(Some(Key::try_from(record).map_err(Fail::Abort)?)),
            None => Ok(None),
        }
    }

    fn put_key(&self, key: &Key, is_new: bool) -> Result<(), Fail> {
        let old = if is_new {
            self.set_counter(layout::KEY_COUNT, self.key_count()? + 1)?;
            None
        } else {
            self.key(&key.key_id)?
        };
        if let Some(entry) = old.as_ref().and_then(|old| self.schedule_entry(old)) {
            self.trees.schedule.remove(entry)?;
        }
        if let Some(entry) = self.schedule_entry(key) {
            self.trees.schedule.insert(entry, &[])?;
        }
        self.trees.keys.insert(
            layout::scoped(self.account, key.key_id.as_str().as_bytes()),
            records::encode(&KeyRecord::from(key)),
        )?;
        Ok(())
    }

    fn remove_key(&self, id: &KeyId) -> Result<(), Fail> {
        if let Some(old) = self.key(id)? {
            if let Some(entry) = self.schedule_entry(&old) {
                self.trees.schedule.remove(entry)?;
            }
            self.trees
                .keys
                .remove(layout::scoped(self.account, id.as_str().as_bytes()))?;
            self.set_counter(layout::KEY_COUNT, self.key_count()?.saturating_sub(1))?;
            self.set_alias_set(id, Vec::new())?;
        }
        Ok(())
    }

    fn key_count(&self) -> Result<u64, Fail> {
        self.counter(layout::KEY_COUNT)
    }

    fn alias(&self, name: &AliasName) -> Result<Option<Alias>, Fail> {
        let key = layout::scoped(self.account, name.as_str().as_bytes());
        Ok(get::<AliasRecord>(self.trees.aliases, &key, "alias")?.map(Alias::from))
    }

    fn put_alias(&self, alias: &Alias) -> Result<(), Fail> {
        let name = alias.name.as_str();
        if let Some(old) = self.alias(&alias.name)? {
            if old.target != alias.target {
                let mut names = self.alias_set(&old.target)?;
                names.retain(|n| n != name);
                self.set_alias_set(&old.target, names)?;
            }
        }
        let mut names = self.alias_set(&alias.target)?;
        if let Err(at) = names.binary_search_by(|n| n.as_str().cmp(name)) {
            names.insert(at, name.to_owned());
            self.set_alias_set(&alias.target, names)?;
        }
        self.trees.aliases.insert(
            layout::scoped(self.account, name.as_bytes()),
            records::encode(&AliasRecord::from(alias)),
        )?;
        Ok(())
    }

    fn remove_alias(&self, alias: &Alias) -> Result<(), Fail> {
        let name = alias.name.as_str();
        let mut names = self.alias_set(&alias.target)?;
        names.retain(|n| n != name);
        self.set_alias_set(&alias.target, names)?;
        self.trees
            .aliases
            .remove(layout::scoped(self.account, name.as_bytes()))?;
        Ok(())
    }

    fn aliases_of(&self, key: &KeyId) -> Result<Vec<AliasName>, Fail> {
        Ok(self
            .alias_set(key)?
            .into_iter()
            .map(AliasName::from_trusted)
            .collect())
    }

    fn next_revision(&self) -> Result<u64, Fail> {
        let revision = self.counter(layout::REVISION)? + 1;
        self.set_counter(layout::REVISION, revision)?;
        self.last_revision.set(Some(revision));
        Ok(revision)
    }

    fn log(&self, event: &AliasEvent) -> Result<(), Fail> {
        self.trees.changes.insert(
            layout::change_key(self.account, event.revision),
            records::encode(&ChangeRecord::from(event)),
        )?;
        Ok(())
    }
}

/// A rule's error aborts the transaction.
impl From<Error> for ConflictableTransactionError<Error> {
    fn from(error: Error) -> Self {
        ConflictableTransactionError::Abort(error)
    }
}
