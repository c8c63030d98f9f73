//! The one implementation of the domain's [`Txn`], over any backend's
//! [`Tx`]: one account's view of one transaction. Keeps the per-key alias
//! index, the key counter, the deletion schedule and the revision counter in
//! step with the records.

use std::cell::{Cell, RefCell};

use super::backend::{Tree, Tx};
use super::layout;
use super::records::{self, AliasRecord, AliasSetRecord, ChangeRecord, KeyRecord};
use crate::domain::ops::Txn;
use crate::domain::{Alias, AliasEvent, AliasName, Key, KeyId};

pub use super::backend::Fail;

pub struct AccountTxn<'a> {
    tx: &'a dyn Tx,
    account: &'a str,
    /// The last revision this run allocated, so that the store can publish
    /// it once the transaction is durable.
    last_revision: Cell<Option<u64>>,
    /// Events logged by this run, written as change-log entries by
    /// [`AccountTxn::finish`].
    logged: RefCell<Vec<ChangeRecord>>,
}

/// The most events one change-log entry holds.
pub const MAX_EVENTS_PER_ENTRY: usize = 256;

/// Reads a record inside a transaction.
pub fn get<M: prost::Message + Default>(
    tx: &dyn Tx,
    tree: Tree,
    key: &[u8],
    what: &str,
) -> Result<Option<M>, Fail> {
    match tx.get(tree, key)? {
        Some(bytes) => Ok(Some(records::decode(what, &bytes)?)),
        None => Ok(None),
    }
}

/// A counter's value (absent or malformed: 0).
pub fn read_u64(bytes: Option<&[u8]>) -> u64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0)
}

/// Reads a counter of `meta` inside a transaction.
pub fn counter(tx: &dyn Tx, key: &[u8]) -> Result<u64, Fail> {
    Ok(read_u64(tx.get(Tree::Meta, key)?.as_deref()))
}

impl<'a> AccountTxn<'a> {
    /// The transaction under the account's view (conformance checks read
    /// raw keys through it).
    #[cfg(test)]
    pub fn raw(&self) -> &dyn Tx {
        self.tx
    }

    pub fn new(tx: &'a dyn Tx, account: &'a str) -> AccountTxn<'a> {
        AccountTxn {
            tx,
            account,
            last_revision: Cell::new(None),
            logged: RefCell::new(Vec::new()),
        }
    }

    /// Writes the events this run logged: one change-log entry per run of
    /// consecutive revisions (of at most [`MAX_EVENTS_PER_ENTRY`]), under
    /// its last revision, so that removing a key with all its aliases puts
    /// one entry, not one per alias (etcd takes 128 operations in a
    /// transaction). Every writing transaction calls it after its
    /// operation succeeded.
    pub fn finish(&self) -> Result<(), Fail> {
        let logged = std::mem::take(&mut *self.logged.borrow_mut());
        let mut entry: Vec<ChangeRecord> = Vec::new();
        for event in logged {
            let follows = entry
                .last()
                .is_some_and(|last| last.revision + 1 == event.revision);
            if !entry.is_empty() && (!follows || entry.len() == MAX_EVENTS_PER_ENTRY) {
                self.put_entry(std::mem::take(&mut entry))?;
            }
            entry.push(event);
        }
        if !entry.is_empty() {
            self.put_entry(entry)?;
        }
        Ok(())
    }

    fn put_entry(&self, events: Vec<ChangeRecord>) -> Result<(), Fail> {
        let last = events.last().map_or(0, |event| event.revision);
        self.tx.put(
            Tree::Changes,
            &layout::change_key(self.account, last),
            &records::encode(&ChangeRecord::entry(events)),
        )
    }

    pub fn account(&self) -> &str {
        self.account
    }

    /// The last revision this run allocated, if any.
    pub fn last_revision(&self) -> Option<u64> {
        self.last_revision.get()
    }

    fn counter(&self, name: &[u8]) -> Result<u64, Fail> {
        counter(self.tx, &layout::scoped(self.account, name))
    }

    fn set_counter(&self, name: &[u8], value: u64) -> Result<(), Fail> {
        self.tx.put(
            Tree::Meta,
            &layout::scoped(self.account, name),
            &value.to_be_bytes(),
        )
    }

    fn alias_set(&self, key: &KeyId) -> Result<Vec<String>, Fail> {
        let key = layout::scoped(self.account, key.as_str().as_bytes());
        Ok(
            get::<AliasSetRecord>(self.tx, Tree::KeyAliases, &key, "alias index")?
                .map(|set| set.names)
                .unwrap_or_default(),
        )
    }

    fn set_alias_set(&self, key: &KeyId, names: Vec<String>) -> Result<(), Fail> {
        let key = layout::scoped(self.account, key.as_str().as_bytes());
        if names.is_empty() {
            self.tx.delete(Tree::KeyAliases, &key)
        } else {
            self.tx.put(
                Tree::KeyAliases,
                &key,
                &records::encode(&AliasSetRecord { names }),
            )
        }
    }

    fn schedule_entry(&self, key: &Key) -> Option<Vec<u8>> {
        key.deletion_time
            .map(|time| layout::schedule_key(time, self.account, &key.key_id))
    }

    /// The key's entry in the index of automatic rotations, by time.
    fn rotation_entry(&self, key: &Key) -> Option<Vec<u8>> {
        key.rotation
            .map(|rotation| layout::schedule_key(rotation.next, self.account, &key.key_id))
    }
}

impl Txn for AccountTxn<'_> {
    type Fail = Fail;

    fn key(&self, id: &KeyId) -> Result<Option<Key>, Fail> {
        let key = layout::scoped(self.account, id.as_str().as_bytes());
        match get::<KeyRecord>(self.tx, Tree::Keys, &key, "key")? {
            Some(record) => Ok(Some(Key::try_from(record)?)),
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
            self.tx.delete(Tree::Schedule, &entry)?;
        }
        if let Some(entry) = self.schedule_entry(key) {
            self.tx.put(Tree::Schedule, &entry, &[])?;
        }
        let (was, now) = (
            old.as_ref().and_then(|old| self.rotation_entry(old)),
            self.rotation_entry(key),
        );
        if was != now {
            if let Some(entry) = was {
                self.tx.delete(Tree::Rotations, &entry)?;
            }
            if let Some(entry) = now {
                self.tx.put(Tree::Rotations, &entry, &[])?;
            }
        }
        self.tx.put(
            Tree::Keys,
            &layout::scoped(self.account, key.key_id.as_str().as_bytes()),
            &records::encode(&KeyRecord::from(key)),
        )
    }

    fn remove_key(&self, id: &KeyId) -> Result<(), Fail> {
        if let Some(old) = self.key(id)? {
            if let Some(entry) = self.schedule_entry(&old) {
                self.tx.delete(Tree::Schedule, &entry)?;
            }
            if let Some(entry) = self.rotation_entry(&old) {
                self.tx.delete(Tree::Rotations, &entry)?;
            }
            self.tx.delete(
                Tree::Keys,
                &layout::scoped(self.account, id.as_str().as_bytes()),
            )?;
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
        Ok(get::<AliasRecord>(self.tx, Tree::Aliases, &key, "alias")?.map(Alias::from))
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
        self.tx.put(
            Tree::Aliases,
            &layout::scoped(self.account, name.as_bytes()),
            &records::encode(&AliasRecord::from(alias)),
        )
    }

    fn remove_alias(&self, alias: &Alias) -> Result<(), Fail> {
        let name = alias.name.as_str();
        let mut names = self.alias_set(&alias.target)?;
        names.retain(|n| n != name);
        self.set_alias_set(&alias.target, names)?;
        self.tx.delete(
            Tree::Aliases,
            &layout::scoped(self.account, name.as_bytes()),
        )
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

    /// Kept until [`AccountTxn::finish`].
    fn log(&self, event: &AliasEvent) -> Result<(), Fail> {
        self.logged.borrow_mut().push(ChangeRecord::from(event));
        Ok(())
    }
}
