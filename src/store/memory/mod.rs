//! The in-memory backend: the reference implementation in tests, and
//! `aliasd serve --ephemeral` (a throwaway server: nothing on disk, the same
//! rules). Every tree is a `BTreeMap` behind one lock.
//!
//! A transaction holds the lock from its first read to its commit, so
//! transactions run one at a time: serializable, never a conflict. Its
//! writes are buffered and applied only when the body succeeds, so an
//! aborted (or panicking) body leaves nothing behind. A commit is "durable"
//! as soon as it is applied: there is nothing to flush and nothing to fail.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use super::backend::{Backend, Entries, Fail, FlushStats, Flushing, Reads, Tree, Tx};
use super::failure::StoreHealth;
use crate::domain::Error;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;
/// A transaction's writes: the value, or `None` for a deletion.
type Writes = BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>;

#[derive(Default)]
pub struct MemoryBackend {
    trees: Mutex<[Map; Tree::ALL.len()]>,
    /// Never fails; held because every backend has one.
    failure: StoreHealth,
    /// Stays at zero: nothing is flushed.
    stats: Arc<FlushStats>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// The trees. A panic elsewhere while holding the lock cannot have left
    /// a half-applied transaction (writes are applied after the body, by
    /// code that does not panic), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, [Map; Tree::ALL.len()]> {
        self.trees.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One run of a transaction: the committed trees (locked) and the run's own
/// writes (`None`: deleted).
struct MemoryTx<'a> {
    committed: &'a [Map; Tree::ALL.len()],
    writes: RefCell<Writes>,
}

impl Tx for MemoryTx<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        if let Some(written) = self.writes.borrow().get(&(tree, key.to_vec())) {
            return Ok(written.clone());
        }
        Ok(self.committed[tree.index()].get(key).cloned())
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Fail> {
        self.writes
            .borrow_mut()
            .insert((tree, key.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), Fail> {
        self.writes.borrow_mut().insert((tree, key.to_vec()), None);
        Ok(())
    }
}

impl Reads for MemoryBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.lock()[tree.index()].get(key).cloned())
    }

    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, Error> {
        // BTreeMap::range panics on an empty range; it holds nothing.
        if end.is_some_and(|end| end <= start) {
            return Ok(Vec::new());
        }
        let range = (
            Bound::Included(start),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        Ok(self.lock()[tree.index()]
            .range::<[u8], _>(range)
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }
}

impl Backend for MemoryBackend {
    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<(), Fail>) -> Result<(), Error> {
        let mut trees = self.lock();
        let tx = MemoryTx {
            committed: &trees,
            writes: RefCell::new(BTreeMap::new()),
        };
        match body(&tx) {
            Ok(()) => {}
            Err(Fail::Abort(error)) => return Err(error),
            // Nothing else runs while the lock is held: no conflict can
            // arise, and no read or write can fail.
            Err(Fail::Conflict) => {
                return Err(Error::internal(
                    "the memory backend saw a conflict, which cannot happen",
                ))
            }
            Err(Fail::Storage(message)) => {
                return Err(Error::internal(format!("storage error: {message}")))
            }
        }
        let writes = tx.writes.into_inner();
        for ((tree, key), value) in writes {
            let map = &mut trees[tree.index()];
            match value {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Flushing<'_> {
        Box::pin(std::future::ready(self.flush_blocking()))
    }

    fn flush_blocking(&self) -> Result<(), Arc<str>> {
        Ok(())
    }

    fn failure(&self) -> &StoreHealth {
        &self.failure
    }

    fn flush_stats(&self) -> Arc<FlushStats> {
        self.stats.clone()
    }
}
