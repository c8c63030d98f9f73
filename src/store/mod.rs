//! Storage on sled: one multi-tree transaction per operation, group commit,
//! the change log and request_id records.
//!
//! The interface the service uses is small: [`Store::write`] and
//! [`Store::read`] run a domain operation in one transaction (a write returns
//! only once it is on disk), the `list_*` calls page through records, and
//! [`Store::changes_after`] reads the change log. Another backend would
//! implement the same calls around its own transaction.
//!
//! A write is acknowledged only after its flush and a real file sync
//! (`sync.rs`); the first I/O error fails the store for good (`failure.rs`).

pub mod check;
pub mod failure;
pub mod group_commit;
pub mod layout;
pub mod records;
pub mod sync;
pub mod txn;
pub mod watch;

use std::cell::Cell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sled::transaction::{TransactionError, Transactional};
use sled::Tree;

use self::failure::{outcome_unknown, store_failed, Failure, FailureCause};
use self::group_commit::GroupCommit;
use self::records::{AliasRecord, ChangeRecord, KeyRecord, Replayable, RequestRecord};
use self::sync::MakeSyncer;
use self::txn::{Fail, SledTxn, TxTrees};
use crate::domain::audit::AuditEntry;
use crate::domain::request::Idempotency;
use crate::domain::{Alias, AliasEvent, Error, Key, KeyId, Millis, Reason};

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "data directory {0} is in use by another aliasd process (its lock is held); stop that \
         process or choose another --data-dir"
    )]
    InUse(PathBuf),
    #[error("cannot open data directory {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    #[error("cannot sync data directory {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The trees, opened once.
#[derive(Clone)]
struct Trees {
    keys: Tree,
    aliases: Tree,
    key_aliases: Tree,
    changes: Tree,
    meta: Tree,
    requests: Tree,
    requests_by_time: Tree,
    schedule: Tree,
    audit: Tree,
}

impl Trees {
    fn open(db: &sled::Db) -> sled::Result<Trees> {
        Ok(Trees {
            keys: db.open_tree("keys")?,
            aliases: db.open_tree("aliases")?,
            key_aliases: db.open_tree("key_aliases")?,
            changes: db.open_tree("changes")?,
            meta: db.open_tree("meta")?,
            requests: db.open_tree("requests")?,
            requests_by_time: db.open_tree("requests_by_time")?,
            schedule: db.open_tree("schedule")?,
            audit: db.open_tree("audit")?,
        })
    }
}

/// The highest durable revision of each account, and a signal that wakes
/// watchers whenever one moves.
struct Published {
    revisions: Mutex<HashMap<String, u64>>,
    generation: tokio::sync::watch::Sender<u64>,
}

pub struct Store {
    /// Writes started and not yet flushed (see [`Store::settle`]).
    pending_writes: AtomicU64,
    /// Where audit records are mirrored as JSON lines (--audit-log).
    audit_mirror: std::sync::OnceLock<Mutex<std::fs::File>>,
    trees: Trees,
    committer: GroupCommit,
    failure: Failure,
    published: Published,
    token_secret: [u8; 32],
}

fn storage_error(error: impl std::fmt::Display) -> Error {
    Error::internal(format!("storage error: {error}"))
}

impl Store {
    /// Opens (or creates) the store in `dir`. Fails with [`OpenError::InUse`]
    /// when another process holds it.
    pub fn open(dir: &Path) -> Result<Arc<Store>, OpenError> {
        Self::open_with_syncer(dir, sync::file_syncer())
    }

    /// [`Store::open`] with another syncer (tests delay or fail syncs).
    pub fn open_with_syncer(dir: &Path, make_syncer: MakeSyncer) -> Result<Arc<Store>, OpenError> {
        let sled_error = |source: sled::Error| match &source {
            sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                OpenError::InUse(dir.to_owned())
            }
            _ => OpenError::Sled {
                path: dir.to_owned(),
                source,
            },
        };
        let db = sled::Config::new().path(dir).open().map_err(sled_error)?;
        let trees = Trees::open(&db).map_err(sled_error)?;
        let token_secret = Self::token_secret(&db, &trees).map_err(sled_error)?;
        let revisions = Self::durable_heads(&trees).map_err(sled_error)?;
        // Syncs what opening wrote (the token secret, a new store's files).
        let syncer = make_syncer(dir).map_err(|source| OpenError::Sync {
            path: dir.to_owned(),
            source,
        })?;
        let generation = tokio::sync::watch::channel(0).0;
        let failure = Failure::new(generation.clone());
        let committer = GroupCommit::start(db, syncer, failure.clone());
        Ok(Arc::new(Store {
            pending_writes: AtomicU64::new(0),
            audit_mirror: std::sync::OnceLock::new(),
            trees,
            committer,
            failure,
            published: Published {
                revisions: Mutex::new(revisions),
                generation,
            },
            token_secret,
        }))
    }

    /// The secret that signs page tokens: made once, kept in the store, so
    /// tokens survive restarts.
    fn token_secret(db: &sled::Db, trees: &Trees) -> sled::Result<[u8; 32]> {
        if let Some(bytes) = trees.meta.get(layout::TOKEN_SECRET)? {
            if let Ok(secret) = <[u8; 32]>::try_from(bytes.as_ref()) {
                return Ok(secret);
            }
        }
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret)
            .map_err(|e| sled::Error::Io(std::io::Error::other(format!("no randomness: {e}"))))?;
        trees.meta.insert(layout::TOKEN_SECRET, &secret)?;
        db.flush()?;
        Ok(secret)
    }

    /// Everything on disk at start-up is durable: the heads of every account.
    fn durable_heads(trees: &Trees) -> sled::Result<HashMap<String, u64>> {
        let mut heads = HashMap::new();
        for entry in trees.meta.iter() {
            let (key, value) = entry?;
            if let Some((account, layout::REVISION)) = layout::split(&key) {
                heads.insert(account.to_owned(), txn::read_u64(Some(value)));
            }
        }
        Ok(heads)
    }

    pub fn token_secret_bytes(&self) -> [u8; 32] {
        self.token_secret
    }

    /// Runs `op` in one transaction over every tree, scoped to `account`.
    /// With `idempotency`, a repeat returns the recorded response, and a
    /// first call records its response in the same transaction.
    fn transact<T: Replayable>(
        &self,
        account: &str,
        idempotency: Option<&Idempotency>,
        audit: Option<&AuditEntry>,
        now: Millis,
        op: &dyn Fn(&SledTxn) -> Result<T, Fail>,
    ) -> Result<(T, Option<u64>, Option<AuditEntry>), Error> {
        let t = &self.trees;
        let trees = (
            &t.keys,
            &t.aliases,
            &t.key_aliases,
            &t.changes,
            &t.meta,
            &t.requests,
            &t.requests_by_time,
            &t.schedule,
            &t.audit,
        );
        // Whether the closure's last run succeeded: a storage error then
        // came from sled's commit, which may have applied part of it.
        let committing = Cell::new(false);
        let result = trees.transaction(
            |(
                keys,
                aliases,
                key_aliases,
                changes,
                meta,
                requests,
                by_time,
                schedule,
                audit_tree,
            )| {
                committing.set(false);
                let txn = SledTxn {
                    trees: TxTrees {
                        keys,
                        aliases,
                        key_aliases,
                        changes,
                        meta,
                        requests,
                        requests_by_time: by_time,
                        schedule,
                    },
                    account,
                    last_revision: Cell::new(None),
                };
                let record_key =
                    idempotency.map(|i| layout::scoped(account, i.request_id.as_str().as_bytes()));
                if let (Some(idempotency), Some(record_key)) = (idempotency, &record_key) {
                    if let Some(bytes) = requests.get(record_key)? {
                        let record: RequestRecord =
                            records::decode("request", &bytes).map_err(Fail::Abort)?;
                        if record.fingerprint != idempotency.fingerprint.0 {
                            return Err(Fail::Abort(idempotency.reused_error()));
                        }
                        // A repeat changes nothing, so it is not audited again.
                        committing.set(true);
                        return Ok((
                            T::from_bytes(&record.response).map_err(Fail::Abort)?,
                            None,
                            None,
                        ));
                    }
                }
                let value = op(&txn)?;
                if let (Some(idempotency), Some(record_key)) = (idempotency, record_key) {
                    let record = RequestRecord {
                        fingerprint: idempotency.fingerprint.0.to_vec(),
                        response: value.to_bytes(),
                        created_at: now,
                    };
                    requests.insert(record_key, records::encode(&record))?;
                    by_time.insert(
                        layout::timed_key(now, account, idempotency.request_id.as_str()),
                        &[],
                    )?;
                }
                let audited = match audit {
                    Some(entry) => Some(append_audit(meta, audit_tree, entry)?),
                    None => None,
                };
                committing.set(true);
                Ok((value, txn.last_revision.get(), audited))
            },
        );
        match result {
            Ok(done) => Ok(done),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(error)) => {
                Err(self.transaction_failed(error, committing.get()))
            }
        }
    }

    /// A storage error in a transaction. One in sled's commit may have
    /// applied part of the change (in memory at least): the store fails and
    /// the outcome is unknown. An I/O error before the commit changed
    /// nothing, but sled is poisoned by it: the store fails too.
    fn transaction_failed(&self, error: sled::Error, committing: bool) -> Error {
        let cause = format!("storage error: {error}");
        if committing {
            self.failure.fail(&cause);
            outcome_unknown(&cause)
        } else if matches!(error, sled::Error::Io(_)) {
            self.failure.fail(&cause);
            store_failed(&cause)
        } else {
            storage_error(error)
        }
    }

    /// Why the store failed, if it did (see `failure.rs`).
    pub fn failure(&self) -> FailureCause {
        self.failure.cause()
    }

    /// Changes to `Some` when the store fails.
    pub fn failures(&self) -> tokio::sync::watch::Receiver<FailureCause> {
        self.failure.subscribe()
    }

    /// Refuses a call (changing nothing) if the store failed.
    pub fn check_not_failed(&self) -> Result<(), Error> {
        self.failure.check()
    }

    /// Runs a changing operation: one transaction, then a (shared) flush;
    /// returns only once the change is on disk.
    pub async fn write<T, F>(
        self: &Arc<Self>,
        account: &str,
        idempotency: Option<Idempotency>,
        audit: Option<AuditEntry>,
        now: Millis,
        op: F,
    ) -> Result<T, Error>
    where
        T: Replayable + Send + 'static,
        F: Fn(&SledTxn) -> Result<T, Fail> + Send + 'static,
    {
        // Its own task: a call that is dropped (deadline, client gone) still
        // finishes its flush, and is counted as pending until then.
        let store = self.clone();
        let account = account.to_owned();
        let write = tokio::spawn(async move {
            let _pending = PendingWrite::start(&store);
            store.failure.check()?;
            let (value, revision, audited) = {
                let store = store.clone();
                let account = account.clone();
                tokio::task::spawn_blocking(move || {
                    store.transact(&account, idempotency.as_ref(), audit.as_ref(), now, &op)
                })
                .await
                .map_err(|e| Error::internal(format!("transaction task failed: {e}")))??
            };
            // Committed: from here on a failure may leave the change applied.
            store
                .committer
                .flush()
                .await
                .map_err(|cause| outcome_unknown(&cause))?;
            if let Some(revision) = revision {
                store.publish(&account, revision);
            }
            if let Some(entry) = audited {
                store.mirror_audit(&entry);
            }
            Ok(value)
        });
        write
            .await
            .map_err(|e| Error::internal(format!("write task failed: {e}")))?
    }

    /// Reads must not hand out a change that is not yet on disk: if any write
    /// is between its start and the end of its flush, wait for a flush (it
    /// covers every commit the read could have seen).
    async fn settle(&self) -> Result<(), Error> {
        if self.pending_writes.load(Ordering::SeqCst) > 0 {
            self.committer
                .flush()
                .await
                .map_err(|cause| store_failed(&cause))?;
        }
        Ok(())
    }

    /// Records a denied call: its own small transaction (the call changed
    /// nothing), flushed with the next group commit.
    pub async fn record_denial(self: &Arc<Self>, entry: AuditEntry) -> Result<(), Error> {
        if self.failure.cause().is_some() {
            // Nothing can be recorded any more; the failure was logged once.
            return Ok(());
        }
        let store = self.clone();
        let entry = tokio::task::spawn_blocking(move || {
            let t = &store.trees;
            let result =
                (&t.meta, &t.audit).transaction(|(meta, audit)| append_audit(meta, audit, &entry));
            result.map_err(|e: TransactionError<Error>| match e {
                TransactionError::Abort(error) => error,
                TransactionError::Storage(error) => store.transaction_failed(error, false),
            })
        })
        .await
        .map_err(|e| Error::internal(format!("audit task failed: {e}")))??;
        self.mirror_audit(&entry);
        Ok(())
    }

    /// Mirrors audit records to `path` as JSON lines, from now on.
    pub fn mirror_audit_to(&self, path: &Path) -> Result<(), Error> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::internal(format!("cannot open audit log {}: {e}", path.display()))
            })?;
        let _ = self.audit_mirror.set(Mutex::new(file));
        Ok(())
    }

    fn mirror_audit(&self, entry: &AuditEntry) {
        use std::io::Write;
        let Some(file) = self.audit_mirror.get() else {
            return;
        };
        let line = serde_json::json!({
            "sequence": entry.sequence,
            "time_ms": entry.time,
            "principal": entry.principal,
            "account": entry.account,
            "action": entry.action,
            "resources": entry.resources,
            "request_id": entry.request_id,
            "x_request_id": entry.x_request_id,
            "outcome": entry.outcome,
            "message": entry.message,
        });
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = writeln!(file, "{line}") {
            tracing::error!(%error, "cannot append to the audit log");
        }
    }

    /// Audit records of `account` after sequence `after`, oldest first, that
    /// pass `keep`; at most `limit`, looking at no more than `scan` records.
    /// Returns them and the last sequence looked at.
    pub fn list_audit(
        &self,
        account: &str,
        after: u64,
        limit: usize,
        scan: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), Error> {
        let start = layout::change_key(account, after.saturating_add(1));
        let end = layout::prefix_end(&layout::prefix(account));
        let mut out = Vec::new();
        let mut last = None;
        for entry in self.trees.audit.range(start..end).take(scan) {
            let (_, bytes) = entry.map_err(storage_error)?;
            let entry: AuditEntry =
                records::decode::<records::AuditRecord>("audit", &bytes)?.into();
            last = Some(entry.sequence);
            if keep(&entry) {
                out.push(entry);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok((out, last))
    }

    /// Runs a reading operation in one transaction (nothing to flush).
    pub async fn read<T, F>(self: &Arc<Self>, account: &str, op: F) -> Result<T, Error>
    where
        T: Replayable + Send + 'static,
        F: Fn(&SledTxn) -> Result<T, Fail> + Send + 'static,
    {
        self.failure.check()?;
        let store = self.clone();
        let account = account.to_owned();
        let value = tokio::task::spawn_blocking(move || {
            store
                .transact(&account, None, None, 0, &op)
                .map(|(value, _, _)| value)
        })
        .await
        .map_err(|e| Error::internal(format!("transaction task failed: {e}")))?
        .map_err(|error| match (error.reason, self.failure.cause()) {
            // A read changes nothing, whichever phase failed.
            (Reason::WRITE_OUTCOME_UNKNOWN, Some(cause)) => store_failed(&cause),
            _ => error,
        })?;
        self.settle().await?;
        Ok(value)
    }

    /// Runs a blocking read off the async threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.failure.check()?;
        let store = self.clone();
        let value = tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::internal(format!("read task failed: {e}")))??;
        self.settle().await?;
        Ok(value)
    }

    fn publish(&self, account: &str, revision: u64) {
        {
            let mut revisions = self
                .published
                .revisions
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let durable = revisions.entry(account.to_owned()).or_default();
            *durable = (*durable).max(revision);
        }
        self.published.generation.send_modify(|g| *g += 1);
    }

    /// The highest revision of `account` known to be on disk.
    pub fn durable_revision(&self, account: &str) -> u64 {
        let revisions = self
            .published
            .revisions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        revisions.get(account).copied().unwrap_or(0)
    }

    /// Wakes whenever some account's durable revision moves (and when the
    /// store fails).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.generation.subscribe()
    }

    fn meta_u64(&self, account: &str, name: &[u8]) -> Result<u64, Error> {
        let value = self
            .trees
            .meta
            .get(layout::scoped(account, name))
            .map_err(storage_error)?;
        Ok(txn::read_u64(value))
    }

    /// The latest committed revision of `account`.
    pub fn head_revision(&self, account: &str) -> Result<u64, Error> {
        self.meta_u64(account, layout::REVISION)
    }

    /// The last audit sequence number of `account`.
    pub fn audit_head(&self, account: &str) -> Result<u64, Error> {
        self.meta_u64(account, layout::AUDIT_SEQUENCE)
    }

    /// The highest revision pruned from `account`'s change log.
    pub fn floor(&self, account: &str) -> Result<u64, Error> {
        self.meta_u64(account, layout::FLOOR)
    }

    /// Up to `limit` aliases of `account` after `after`, in name order, and
    /// whether more follow. With `key`, only that key's aliases (read from
    /// the per-key index). Reads only what the page needs.
    pub fn list_aliases(
        &self,
        account: &str,
        key: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Alias>, bool), Error> {
        let decode_alias =
            |bytes: &[u8]| records::decode::<AliasRecord>("alias", bytes).map(Alias::from);
        let mut page = Vec::with_capacity(limit + 1);
        match key {
            Some(key) => {
                let set = self
                    .trees
                    .key_aliases
                    .get(layout::scoped(account, key.as_str().as_bytes()))
                    .map_err(storage_error)?;
                let names = match set {
                    Some(bytes) => {
                        records::decode::<records::AliasSetRecord>("alias index", &bytes)?.names
                    }
                    None => Vec::new(),
                };
                for name in names
                    .iter()
                    .filter(|n| after.is_none_or(|a| n.as_str() > a))
                {
                    if page.len() > limit {
                        break;
                    }
                    let record = self
                        .trees
                        .aliases
                        .get(layout::scoped(account, name.as_bytes()))
                        .map_err(storage_error)?;
                    if let Some(bytes) = record {
                        let alias = decode_alias(&bytes)?;
                        // Read outside a transaction: skip one re-pointed meanwhile.
                        if &alias.target == key {
                            page.push(alias);
                        }
                    }
                }
            }
            None => {
                let prefix = layout::prefix(account);
                let start = match after {
                    Some(after) => {
                        let mut start = layout::scoped(account, after.as_bytes());
                        start.push(0); // the first key after `after`
                        start
                    }
                    None => prefix.clone(),
                };
                for entry in self
                    .trees
                    .aliases
                    .range(start..layout::prefix_end(&prefix))
                    .take(limit + 1)
                {
                    let (_, bytes) = entry.map_err(storage_error)?;
                    page.push(decode_alias(&bytes)?);
                }
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// Up to `limit` keys of `account` after key id `after`, and whether more
    /// follow.
    pub fn list_keys(
        &self,
        account: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Key>, bool), Error> {
        let prefix = layout::prefix(account);
        let start = match after {
            Some(after) => {
                let mut start = layout::scoped(account, after.as_bytes());
                start.push(0);
                start
            }
            None => prefix.clone(),
        };
        let mut page = Vec::with_capacity(limit + 1);
        for entry in self
            .trees
            .keys
            .range(start..layout::prefix_end(&prefix))
            .take(limit + 1)
        {
            let (_, bytes) = entry.map_err(storage_error)?;
            page.push(Key::try_from(records::decode::<KeyRecord>("key", &bytes)?)?);
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// Change-log entries of `account` with revisions in `after+1 ..= up_to`,
    /// at most `limit`.
    pub fn changes_after(
        &self,
        account: &str,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<AliasEvent>, Error> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        let start = layout::change_key(account, after + 1);
        let end = layout::change_key(account, up_to);
        let mut events = Vec::new();
        for entry in self.trees.changes.range(start..=end).take(limit) {
            let (_, bytes) = entry.map_err(storage_error)?;
            events.push(AliasEvent::try_from(records::decode::<ChangeRecord>(
                "change", &bytes,
            )?)?);
        }
        Ok(events)
    }

    /// Keys whose deletion time is at or before `now`: (account, key id).
    pub fn due_keys(&self, now: Millis) -> Result<Vec<(String, KeyId)>, Error> {
        let end = layout::timed_key(now.saturating_add(1), "", "");
        let mut due = Vec::new();
        for entry in self.trees.schedule.range(..end) {
            let (key, _) = entry.map_err(storage_error)?;
            if let Some((_, account, key_id)) = layout::split_timed(&key) {
                due.push((account.to_owned(), KeyId::from_trusted(key_id.to_owned())));
            }
        }
        Ok(due)
    }

    /// Drops change-log entries so that each account keeps at most `retain`
    /// of them; the floor moves first, so a watcher never misses a gap.
    pub fn prune_changes(&self, retain: u64) -> Result<u64, Error> {
        let mut pruned = 0;
        let heads: Vec<(String, u64)> = self
            .trees
            .meta
            .iter()
            .filter_map(|entry| {
                let (key, value) = entry.ok()?;
                let (account, name) = layout::split(&key)?;
                (name == layout::REVISION).then(|| (account.to_owned(), txn::read_u64(Some(value))))
            })
            .collect();
        for (account, head) in heads {
            let floor = self.floor(&account)?;
            let new_floor = head.saturating_sub(retain);
            if new_floor <= floor {
                continue;
            }
            self.trees
                .meta
                .insert(
                    layout::scoped(&account, layout::FLOOR),
                    &new_floor.to_be_bytes(),
                )
                .map_err(storage_error)?;
            let range =
                layout::change_key(&account, floor + 1)..=layout::change_key(&account, new_floor);
            for entry in self.trees.changes.range(range) {
                let (key, _) = entry.map_err(storage_error)?;
                self.trees.changes.remove(key).map_err(storage_error)?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    /// Forgets request_ids recorded before `before`.
    pub fn prune_requests(&self, before: Millis) -> Result<u64, Error> {
        let end = layout::timed_key(before, "", "");
        let mut pruned = 0;
        for entry in self.trees.requests_by_time.range(..end) {
            let (key, _) = entry.map_err(storage_error)?;
            if let Some((_, account, id)) = layout::split_timed(&key) {
                self.trees
                    .requests
                    .remove(layout::scoped(account, id.as_bytes()))
                    .map_err(storage_error)?;
            }
            self.trees
                .requests_by_time
                .remove(&key)
                .map_err(storage_error)?;
            pruned += 1;
        }
        Ok(pruned)
    }

    /// Flushes and syncs everything to disk (shutdown), through the
    /// flusher; call it off the async threads.
    pub fn flush_blocking(&self) -> Result<(), Error> {
        self.committer
            .flush_blocking()
            .map_err(|cause| store_failed(&cause))
    }

    /// Flushes run and writers served since the store was opened: writers
    /// per flush above 1 is group commit at work.
    pub fn flush_stats(&self) -> Arc<group_commit::FlushStats> {
        self.committer.stats()
    }

    /// Runs `op` over several accounts in one transaction (the seed file:
    /// all of it or none of it). `op` gets one view per account of
    /// `accounts`, in that order. Like [`Store::write`], returns only once
    /// the change is on disk; keeps no request_id record and no audit record.
    pub async fn write_accounts<T, F>(
        self: &Arc<Self>,
        accounts: Vec<String>,
        op: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Fn(&[SledTxn]) -> Result<T, Fail> + Send + 'static,
    {
        let store = self.clone();
        let write = tokio::spawn(async move {
            let _pending = PendingWrite::start(&store);
            store.failure.check()?;
            let transaction_store = store.clone();
            let (value, revisions) = tokio::task::spawn_blocking(move || {
                let t = &transaction_store.trees;
                let trees = (
                    &t.keys,
                    &t.aliases,
                    &t.key_aliases,
                    &t.changes,
                    &t.meta,
                    &t.requests,
                    &t.requests_by_time,
                    &t.schedule,
                );
                let result = trees.transaction(
                    |(keys, aliases, key_aliases, changes, meta, requests, by_time, schedule)| {
                        let txns: Vec<SledTxn> = accounts
                            .iter()
                            .map(|account| SledTxn {
                                trees: TxTrees {
                                    keys,
                                    aliases,
                                    key_aliases,
                                    changes,
                                    meta,
                                    requests,
                                    requests_by_time: by_time,
                                    schedule,
                                },
                                account,
                                last_revision: Cell::new(None),
                            })
                            .collect();
                        let value = op(&txns)?;
                        let revisions: Vec<(String, u64)> = txns
                            .iter()
                            .filter_map(|txn| {
                                let revision = txn.last_revision.get()?;
                                Some((txn.account.to_owned(), revision))
                            })
                            .collect();
                        Ok((value, revisions))
                    },
                );
                result.map_err(|e: TransactionError<Error>| match e {
                    TransactionError::Abort(error) => error,
                    TransactionError::Storage(error) => storage_error(error),
                })
            })
            .await
            .map_err(|e| Error::internal(format!("transaction task failed: {e}")))??;
            // Committed: from here on a failure may leave the change applied.
            store
                .committer
                .flush()
                .await
                .map_err(|cause| outcome_unknown(&cause))?;
            for (account, revision) in revisions {
                store.publish(&account, revision);
            }
            Ok(value)
        });
        write
            .await
            .map_err(|e| Error::internal(format!("write task failed: {e}")))?
    }
}

/// Appends an audit record to its account's log, inside a transaction.
fn append_audit(
    meta: &sled::transaction::TransactionalTree,
    audit: &sled::transaction::TransactionalTree,
    entry: &AuditEntry,
) -> Result<AuditEntry, Fail> {
    let counter = layout::scoped(&entry.account, layout::AUDIT_SEQUENCE);
    let sequence = txn::read_u64(meta.get(&counter)?) + 1;
    meta.insert(counter, &sequence.to_be_bytes())?;
    let entry = AuditEntry {
        sequence,
        ..entry.clone()
    };
    audit.insert(
        layout::change_key(&entry.account, sequence),
        records::encode(&records::AuditRecord::from(&entry)),
    )?;
    Ok(entry)
}

/// Counts a write as pending from before its transaction until its flush is
/// done (or it failed).
struct PendingWrite<'a>(&'a Store);

impl<'a> PendingWrite<'a> {
    fn start(store: &'a Store) -> Self {
        store.pending_writes.fetch_add(1, Ordering::SeqCst);
        PendingWrite(store)
    }
}

impl Drop for PendingWrite<'_> {
    fn drop(&mut self) {
        self.0.pending_writes.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::Condvar;
    use std::time::Duration;

    /// What the test's syncer saw and how it behaves: a sync waits while
    /// `held`, and fails when `fail` is set.
    #[derive(Default)]
    struct Probe {
        syncs: AtomicU64,
        held: Mutex<bool>,
        released: Condvar,
        fail: AtomicBool,
        events: Mutex<Vec<&'static str>>,
    }

    impl Probe {
        /// Holds syncs until `release`, or until the guard drops (so that a
        /// failing test does not hang joining a flusher stuck in a sync).
        fn hold(self: &Arc<Self>) -> Released {
            *self.held.lock().unwrap() = true;
            Released(self.clone())
        }
        fn release(&self) {
            *self.held.lock().unwrap() = false;
            self.released.notify_all();
        }
        fn event(&self, event: &'static str) {
            self.events.lock().unwrap().push(event);
        }
        fn events(&self) -> Vec<&'static str> {
            self.events.lock().unwrap().clone()
        }
        fn syncs(&self) -> u64 {
            self.syncs.load(Ordering::SeqCst)
        }
    }

    struct Released(Arc<Probe>);

    impl Drop for Released {
        fn drop(&mut self) {
            self.0.release();
        }
    }

    struct ProbeSyncer(Arc<Probe>);

    impl sync::Syncer for ProbeSyncer {
        fn sync(&mut self) -> std::io::Result<()> {
            let probe = &self.0;
            probe.syncs.fetch_add(1, Ordering::SeqCst);
            probe.event("sync started");
            let mut held = probe.held.lock().unwrap();
            while *held {
                held = probe.released.wait(held).unwrap();
            }
            drop(held);
            probe.event("sync done");
            if probe.fail.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(())
        }
    }

    fn open_probed() -> (Arc<Store>, Arc<Probe>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let probe = Arc::new(Probe::default());
        let syncer = ProbeSyncer(probe.clone());
        let store = Store::open_with_syncer(
            dir.path(),
            Box::new(move |_| Ok(Box::new(syncer) as Box<dyn sync::Syncer>)),
        )
        .unwrap();
        (store, probe, dir)
    }

    /// Waits until `condition` holds (the test fails by timing out if never).
    async fn until(condition: impl Fn() -> bool) {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn spawn_write(store: &Arc<Store>) -> tokio::task::JoinHandle<Result<(), Error>> {
        let store = store.clone();
        tokio::spawn(async move { store.write("acct", None, None, 0, |_txn| Ok(())).await })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_acknowledged_only_after_its_file_sync_returns() {
        let (store, probe, _dir) = open_probed();
        let _released = probe.hold();
        let writer = {
            let (store, probe) = (store.clone(), probe.clone());
            tokio::spawn(async move {
                let result = store.write("acct", None, None, 0, |_txn| Ok(())).await;
                probe.event("acknowledged");
                result
            })
        };
        until(|| probe.syncs() == 1).await;
        // A write that did not wait for its sync would be answered now.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !writer.is_finished(),
            "the write was acknowledged while its sync was still running"
        );
        probe.release();
        writer.await.unwrap().unwrap();
        assert_eq!(
            probe.events(),
            ["sync started", "sync done", "acknowledged"]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_that_commit_during_a_sync_share_the_next_sync() {
        let (store, probe, _dir) = open_probed();
        let stats = store.flush_stats();
        let _released = probe.hold();
        let first = spawn_write(&store);
        until(|| probe.syncs() == 1).await;
        let rest: Vec<_> = (0..5).map(|_| spawn_write(&store)).collect();
        until(|| stats.requested.load(Ordering::SeqCst) == 6).await;
        probe.release();
        first.await.unwrap().unwrap();
        for writer in rest {
            writer.await.unwrap().unwrap();
        }
        assert_eq!(probe.syncs(), 2, "five queued writers shared one sync");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_sync_leaves_the_write_unknown_and_fails_the_store_for_good() {
        let (store, probe, _dir) = open_probed();
        let mut failures = store.failures();
        probe.fail.store(true, Ordering::SeqCst);

        let error = spawn_write(&store).await.unwrap().unwrap_err();
        assert_eq!(error.reason, Reason::WRITE_OUTCOME_UNKNOWN, "{error}");
        assert!(error.message.contains("No space left on device"), "{error}");
        assert!(failures.has_changed().unwrap());
        assert!(failures.borrow_and_update().is_some());

        let ran = Arc::new(AtomicBool::new(false));
        let op_ran = ran.clone();
        let error = store
            .write("acct", None, None, 0, move |_txn| {
                op_ran.store(true, Ordering::SeqCst);
                Ok(())
            })
            .await
            .unwrap_err();
        assert_eq!(error.reason, Reason::STORE_FAILED, "{error}");
        assert!(
            !ran.load(Ordering::SeqCst),
            "a write refused by a failed store must not run"
        );
        let error = store.read("acct", |_txn| Ok(())).await.unwrap_err();
        assert_eq!(error.reason, Reason::STORE_FAILED, "{error}");
        assert!(store.flush_blocking().is_err());
        assert_eq!(probe.syncs(), 1, "no sync is trusted after a failed one");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_watch_ends_with_store_failed_when_the_store_fails() {
        use tokio_stream::StreamExt;
        let (store, probe, _dir) = open_probed();
        let (_shutdown, shutdown_seen) = tokio::sync::watch::channel(false);
        let mut events = watch::open(
            store.clone(),
            "acct".into(),
            None,
            None,
            Duration::from_secs(10),
            Box::new(|| Ok(())),
            shutdown_seen,
        )
        .unwrap();
        probe.fail.store(true, Ordering::SeqCst);
        spawn_write(&store).await.unwrap().unwrap_err();
        // Hang guard only: the watch ends as soon as the store has failed.
        let end = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("the watch ends");
        let error = end.expect("an error, not a quiet end").unwrap_err();
        assert_eq!(error.reason, Reason::STORE_FAILED, "{error}");
    }

    #[tokio::test]
    async fn a_read_during_a_pending_write_waits_for_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let stats = store.flush_stats();
        let flushes = || stats.snapshot().0;

        let before = flushes();
        store.read("acct", |_txn| Ok(())).await.unwrap();
        assert_eq!(flushes(), before, "nothing pending: no flush");

        let pending = PendingWrite::start(&store);
        store.read("acct", |_txn| Ok(())).await.unwrap();
        assert_eq!(
            flushes(),
            before + 1,
            "a write in flight: the read waited for a flush"
        );
        drop(pending);
        assert_eq!(store.pending_writes.load(Ordering::SeqCst), 0);
    }
}
