//! Upkeep: keys whose deletion time has passed, pruning of the change log,
//! of old request_id records and of audit records past their retention (in
//! bounded transactions), and the per-account counts operators see.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::backend::{self, scan_all, Tree};
use super::records::{self, RequestRecord};
use super::{layout, txn, Store, PRUNE_BATCH};
use crate::domain::{Error, Key, KeyId, Millis};

/// An account's keys and aliases ([`Store::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub keys: u64,
    pub aliases: u64,
}

impl Store {
    /// Keys whose deletion time is at or before `now`: (account, key id).
    pub(super) fn due_keys(&self, now: Millis) -> Result<Vec<(String, KeyId)>, Error> {
        self.due_in(Tree::Schedule, now)
    }

    /// Keys whose automatic rotation is due at `now`: (account, key id).
    pub(super) fn due_rotations(&self, now: Millis) -> Result<Vec<(String, KeyId)>, Error> {
        self.due_in(Tree::Rotations, now)
    }

    /// The entries of a time index at or before `now`.
    fn due_in(&self, tree: Tree, now: Millis) -> Result<Vec<(String, KeyId)>, Error> {
        let end = layout::timed_key(now.saturating_add(1), "", "");
        let mut due = Vec::new();
        scan_all(self.backend.as_ref(), tree, &[], Some(&end), |key, _| {
            if let Some((_, account, key_id)) = layout::split_timed(key) {
                due.push((account.to_owned(), KeyId::from_trusted(key_id.to_owned())));
            }
            Ok(())
        })?;
        Ok(due)
    }
    /// Drops change-log entries so that each account keeps at most `retain`
    /// of them. Each batch is one transaction that moves the floor and
    /// removes the entries under it together, so a watcher never misses a
    /// gap, and two processes pruning at once remove each entry once.
    pub(super) fn prune_changes(&self, retain: u64) -> Result<u64, Error> {
        let mut pruned = 0;
        for (account, head) in Self::heads(self.backend.as_ref())? {
            let target = head.saturating_sub(retain);
            loop {
                let (revisions, more) = self.prune_change_batch(&account, target)?;
                pruned += revisions;
                if !more {
                    break;
                }
            }
        }
        Ok(pruned)
    }
    /// Moves `account`'s floor towards `target`, removing up to
    /// [`PRUNE_BATCH`] change-log entries wholly under it (an entry that
    /// straddles the floor stays: reads start above the floor). Returns the
    /// revisions the floor moved by, and whether more remain.
    fn prune_change_batch(&self, account: &str, target: u64) -> Result<(u64, bool), Error> {
        let floor = self.floor(account)?;
        if target <= floor {
            return Ok((0, false));
        }
        // Entries under the head never change (but by pruning, which the
        // transaction's read of the floor orders): read them outside it.
        let entries: Vec<Vec<u8>> = self
            .backend
            .scan(
                Tree::Changes,
                &layout::change_key(account, floor + 1),
                Some(&backend::after(&layout::change_key(account, target))),
                PRUNE_BATCH,
            )?
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let more = entries.len() == PRUNE_BATCH;
        let new_floor = match entries.last().and_then(|key| layout::split(key)) {
            Some((_, revision)) if more => txn::read_u64(Some(revision)),
            _ => target,
        };
        let moved = Cell::new(false);
        self.gated_transact(&|tx| {
            let floor_key = layout::scoped(account, layout::FLOOR);
            // Another process pruned meanwhile: the work is its.
            moved.set(txn::counter(tx, &floor_key)? == floor);
            if !moved.get() {
                return Ok(());
            }
            tx.put(Tree::Meta, &floor_key, &new_floor.to_be_bytes())?;
            for key in &entries {
                tx.delete(Tree::Changes, key)?;
            }
            Ok(())
        })?;
        Ok(match moved.get() {
            true => (new_floor - floor, more),
            false => (0, false),
        })
    }
    /// Forgets request_ids recorded before `before`, in bounded
    /// transactions.
    pub(super) fn prune_requests(&self, before: Millis) -> Result<u64, Error> {
        let end = layout::timed_key(before, "", "");
        let mut pruned = 0;
        loop {
            let batch = self
                .backend
                .scan(Tree::RequestsByTime, &[], Some(&end), PRUNE_BATCH)?;
            if batch.is_empty() {
                return Ok(pruned);
            }
            self.gated_transact(&|tx| {
                for (key, _) in &batch {
                    if let Some((time, account, id)) = layout::split_timed(key) {
                        let record_key = layout::scoped(account, id.as_bytes());
                        if let Some(bytes) = tx.get(Tree::Requests, &record_key)? {
                            // Only the record this entry indexes (or an
                            // unreadable one): a newer one of the same id
                            // has its own entry.
                            let newer = records::decode::<RequestRecord>("request", &bytes)
                                .is_ok_and(|record| record.created_at > time);
                            if !newer {
                                tx.delete(Tree::Requests, &record_key)?;
                            }
                        }
                    }
                    tx.delete(Tree::RequestsByTime, key)?;
                }
                Ok(())
            })?;
            pruned += batch.len() as u64;
            if batch.len() < PRUNE_BATCH {
                return Ok(pruned);
            }
        }
    }
    /// Drops audit records made before `before`, oldest first, per account,
    /// in bounded transactions; returns how many went. Each account costs a
    /// read of its oldest record when there is nothing to drop.
    pub(super) fn prune_audit(&self, before: Millis) -> Result<u64, Error> {
        let mut pruned = 0;
        let mut from = Vec::new();
        // One account at a time: the first record at or after `from` names
        // the next account that has any.
        while let Some((first, _)) = self
            .backend
            .scan(Tree::Audit, &from, None, 1)?
            .into_iter()
            .next()
        {
            let Some((account, _)) = layout::split(&first) else {
                return Ok(pruned);
            };
            let end = layout::prefix_end(&layout::prefix(account));
            loop {
                let batch = self
                    .backend
                    .scan(Tree::Audit, &first, Some(&end), PRUNE_BATCH)?;
                // An entry (a batch of records) goes when its newest does.
                let old: Vec<(&Vec<u8>, u64)> = batch
                    .iter()
                    .map_while(|(key, bytes)| {
                        let record =
                            records::decode::<records::AuditRecord>("audit", bytes).ok()?;
                        (record.newest_time() < before).then(|| (key, 1 + record.more.len() as u64))
                    })
                    .collect();
                if !old.is_empty() {
                    self.gated_transact(&|tx| {
                        for (key, _) in &old {
                            tx.delete(Tree::Audit, key)?;
                        }
                        Ok(())
                    })?;
                    pruned += old.iter().map(|(_, records)| records).sum::<u64>();
                }
                if old.len() < PRUNE_BATCH {
                    break;
                }
            }
            from = end;
        }
        Ok(pruned)
    }
    /// Keys and aliases per account, read by scanning both trees (in
    /// batches, outside transactions: each count is of committed records,
    /// the two may be a moment apart). For metrics: call it seldom.
    pub(super) fn census(&self) -> Result<std::collections::BTreeMap<String, Census>, Error> {
        let mut counts = std::collections::BTreeMap::<String, Census>::new();
        for (tree, is_key) in [(Tree::Keys, true), (Tree::Aliases, false)] {
            let mut last: Option<(String, u64)> = None;
            let mut add = |account: &str, n: u64| {
                let entry = counts.entry(account.to_owned()).or_default();
                match is_key {
                    true => entry.keys += n,
                    false => entry.aliases += n,
                }
            };
            scan_all(&*self.backend, tree, &[], None, |key, _| {
                let Some((account, _)) = layout::split(key) else {
                    return Ok(());
                };
                match &mut last {
                    Some((current, n)) if current == account => *n += 1,
                    _ => {
                        if let Some((done, n)) = last.take() {
                            add(&done, n);
                        }
                        last = Some((account.to_owned(), 1));
                    }
                }
                Ok(())
            })?;
            if let Some((done, n)) = last {
                add(&done, n);
            }
        }
        Ok(counts)
    }

    /// The keys whose deletion time is before `now`, with their accounts.
    pub async fn keys_due(self: &Arc<Self>, now: Millis) -> Result<Vec<(String, KeyId)>, Error> {
        self.blocking(move |store| store.due_keys(now)).await
    }

    /// Keys whose automatic rotation is due at `now`: (account, key id).
    pub async fn rotations_due(
        self: &Arc<Self>,
        now: Millis,
    ) -> Result<Vec<(String, KeyId)>, Error> {
        self.blocking(move |store| store.due_rotations(now)).await
    }

    /// Every key of every account, in (account, key id) order after
    /// `after`, at most `limit` of them, that `keep` keeps (start-up's pass
    /// over keys without material, `aliasd check`'s over material).
    pub async fn all_keys(
        self: &Arc<Self>,
        after: Option<Vec<u8>>,
        limit: usize,
        keep: impl Fn(&Key) -> bool + Send + 'static,
    ) -> Result<(Vec<(String, Key)>, Option<Vec<u8>>), Error> {
        self.blocking(move |store| {
            let start = after.map(|a| backend::after(&a)).unwrap_or_default();
            let entries = store.backend.scan(Tree::Keys, &start, None, limit)?;
            let last = (entries.len() == limit)
                .then(|| entries.last().map(|(k, _)| k.clone()))
                .flatten();
            let mut keys = Vec::new();
            for (raw, bytes) in entries {
                let Some((account, _)) = layout::split(&raw) else {
                    continue;
                };
                let key: Key = records::decode::<records::KeyRecord>("key", &bytes)?.try_into()?;
                if keep(&key) {
                    keys.push((account.to_owned(), key));
                }
            }
            Ok((keys, last))
        })
        .await
    }

    /// Prunes the change log to `retain` revisions per account, request_id
    /// records made before `requests_before`, and (with Some) audit records
    /// made before `audit_before`; returns how many of each went.
    /// Compacts the backend's history (etcd's) to the revision current at
    /// the previous call; see `Backend::compact_history`.
    pub async fn compact_history(self: &Arc<Self>) -> Result<Option<i64>, Error> {
        self.blocking(|store| store.backend.compact_history()).await
    }

    pub async fn prune(
        self: &Arc<Self>,
        retain: u64,
        requests_before: Millis,
        audit_before: Option<Millis>,
    ) -> Result<(u64, u64, u64), Error> {
        self.blocking(move |store| {
            Ok((
                store.prune_changes(retain)?,
                store.prune_requests(requests_before)?,
                match audit_before {
                    Some(before) => store.prune_audit(before)?,
                    None => 0,
                },
            ))
        })
        .await
    }

    /// Every account's keys and aliases, counted now.
    pub async fn count(self: &Arc<Self>) -> Result<BTreeMap<String, Census>, Error> {
        self.blocking(|store| store.census()).await
    }
}
