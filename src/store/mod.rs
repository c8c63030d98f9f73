//! The store: domain operations run as units over a backend.
//!
//! [`Store::write`] runs an operation over [`Txn`](crate::domain::ops::Txn)
//! in one transaction, with its request_id record and its audit record in
//! the same unit, and returns only once the change is durable;
//! [`Store::read`] runs one and changes nothing. The `list_*` calls page
//! through records, [`Store::changes_after`] reads the change log and the
//! change feed ([`feed::Feed`]) wakes watchers (watch.rs). All of this is
//! written once, here, against the byte-level [`backend::Backend`]; sled/
//! and memory/ implement it, and conformance.rs holds the one test suite
//! every backend must pass.

pub mod backend;
pub mod check;
#[cfg(test)]
mod conformance;
pub mod etcd;
pub mod failure;
pub mod feed;
pub mod layout;
pub mod memory;
pub mod records;
#[cfg(test)]
mod rules_tests;
pub mod sled;
pub mod snapshot;
pub mod txn;
pub mod watch;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use self::backend::{scan_all, Backend, Fail, ReadOnlyTx, Reads, Tree, Tx};
use self::failure::{outcome_unknown, store_failed, FailureCause};
use self::feed::Feed;
use self::records::{AliasRecord, ChangeRecord, KeyRecord, Replayable, RequestRecord};
use self::txn::AccountTxn;
use crate::domain::audit::AuditEntry;
use crate::domain::request::Idempotency;
use crate::domain::{Alias, AliasEvent, Error, Key, KeyId, Millis, Reason};

pub use self::backend::FlushStats;

/// An account's keys and aliases ([`Store::census`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub keys: u64,
    pub aliases: u64,
}

/// Opens (or creates, owner-only) the `--audit-log` file for appending.
pub fn open_audit_log(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::internal(format!("cannot open audit log {}: {e}", path.display())))
}

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

/// Bytes a directory takes on disk (allocated blocks, as `du` counts them).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => disk_usage(&entry.path()),
            Ok(meta) => meta.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}
pub use self::sled::{sync, OpenError};

/// Change-log revisions, or request records, removed per transaction when
/// pruning: each batch is one bounded transaction, within etcd's 128
/// operations (a request record is two deletions and a read).
const PRUNE_BATCH: usize = 60;

pub struct Store {
    backend: Arc<dyn Backend>,
    /// Writes started and not yet durable (see [`Store::settle`]).
    pending_writes: AtomicU64,
    /// Where audit records are mirrored as JSON lines (--audit-log).
    audit_mirror: std::sync::OnceLock<Mutex<std::fs::File>>,
    feed: Arc<Feed>,
    token_secret: [u8; 32],
    /// Transactions through this store, for reads of several calls.
    gate: ReadGate,
}

/// Keeps a read of several calls (a listing page: a scan, then lookups)
/// from seeing half of a transaction, since reads outside a transaction
/// see each write as it is applied. A read that saw no transaction in
/// progress before it and none started during it saw one state (a
/// seqlock); a read that keeps missing such a window takes the lock that
/// every transaction shares, alone, for one run.
#[derive(Default)]
struct ReadGate {
    started: AtomicU64,
    finished: AtomicU64,
    exclusive: std::sync::RwLock<()>,
}

impl ReadGate {
    /// Runs `read` if no transaction is in progress, and answers what it
    /// read if none started meanwhile (it then saw one committed state);
    /// `None` otherwise.
    fn quiet<T>(&self, read: impl FnOnce() -> T) -> Option<T> {
        let finished = self.finished.load(Ordering::SeqCst);
        let started = self.started.load(Ordering::SeqCst);
        if started != finished {
            return None;
        }
        let value = read();
        (self.started.load(Ordering::SeqCst) == started).then_some(value)
    }
}

/// The backend's plain reads, as a [`Reads`] of their own.
struct BackendReads<'a>(&'a dyn Backend);

impl Reads for BackendReads<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.0.get(tree, key)
    }

    fn get_many(&self, tree: Tree, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.0.get_many(tree, keys)
    }

    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<backend::Entries, Error> {
        self.0.scan(tree, start, end, limit)
    }
}

/// Counts a transaction as finished when dropped (however it ends).
struct Finished<'a>(&'a AtomicU64);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Store {
    /// Opens (or creates) the sled store in `dir`. Fails with
    /// [`OpenError::InUse`] when another process holds it.
    pub fn open(dir: &Path) -> Result<Arc<Store>, OpenError> {
        Self::open_with_syncer(dir, sync::file_syncer(), sled::DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open`] with another syncer (tests delay or fail syncs) and
    /// the bytes sled may cache in memory.
    pub fn open_with_syncer(
        dir: &Path,
        make_syncer: sync::MakeSyncer,
        cache_bytes: u64,
    ) -> Result<Arc<Store>, OpenError> {
        let backend = sled::SledBackend::open_with_cache(dir, make_syncer, cache_bytes)?;
        Self::with_backend(Arc::new(backend)).map_err(|e| OpenError::Prepare(e.message))
    }

    /// A store on etcd (`serve --backend etcd`): fails when etcd cannot be
    /// reached (opening writes the store-wide settings if absent).
    pub fn open_etcd(config: &etcd::EtcdConfig) -> Result<Arc<Store>, OpenError> {
        let backend =
            etcd::EtcdBackend::connect(config).map_err(|e| OpenError::Prepare(e.message))?;
        Self::with_backend(Arc::new(backend)).map_err(|e| OpenError::Prepare(e.message))
    }

    /// A store that keeps everything in memory (`serve --ephemeral`).
    pub fn open_in_memory() -> Result<Arc<Store>, OpenError> {
        Self::with_backend(Arc::new(memory::MemoryBackend::new()))
            .map_err(|e| OpenError::Prepare(e.message))
    }

    /// A store over `backend`. Several stores (processes) may share one
    /// backend: opening creates nothing that another has created.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Result<Arc<Store>, Error> {
        let token_secret = Self::token_secret(backend.as_ref())?;
        // What opening wrote must survive a crash before the first write.
        backend.prepared()?;
        let feed = Arc::new(Feed::new(Self::durable_heads(backend.as_ref())?));
        backend.follow_other_writers(feed.clone());
        Ok(Arc::new(Store {
            backend,
            pending_writes: AtomicU64::new(0),
            audit_mirror: std::sync::OnceLock::new(),
            feed,
            token_secret,
            gate: ReadGate::default(),
        }))
    }

    /// The secret that signs page tokens: made once, kept in the store, so
    /// tokens survive restarts. Created only if absent, in one transaction,
    /// so that processes sharing a store all end up with the first one.
    fn token_secret(backend: &dyn Backend) -> Result<[u8; 32], Error> {
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

    /// The head revision of every account (each stored revision counter).
    fn heads(reads: &dyn backend::Reads) -> Result<Vec<(String, u64)>, Error> {
        let mut heads = Vec::new();
        scan_all(reads, Tree::Meta, &[], None, |key, value| {
            if let Some((account, layout::REVISION)) = layout::split(key) {
                heads.push((account.to_owned(), txn::read_u64(Some(value))));
            }
            Ok(())
        })?;
        Ok(heads)
    }

    /// Everything stored at open is durable: the heads of every account.
    fn durable_heads(reads: &dyn backend::Reads) -> Result<HashMap<String, u64>, Error> {
        Ok(Self::heads(reads)?.into_iter().collect())
    }

    pub fn token_secret_bytes(&self) -> [u8; 32] {
        self.token_secret
    }

    /// Runs `op` in one transaction, scoped to `account`. With
    /// `idempotency`, a repeat returns the recorded response (and changes
    /// nothing), and a first call records its response in the same
    /// transaction; `audit` is appended in it too. `reading`: `op` only
    /// reads (the backend need not queue it behind writers).
    fn transact<T: Replayable>(
        &self,
        reading: bool,
        account: &str,
        idempotency: Option<&Idempotency>,
        audit: Option<&AuditEntry>,
        now: Millis,
        op: &dyn Fn(&AccountTxn) -> Result<T, Fail>,
    ) -> Result<(T, Option<u64>, Option<AuditEntry>), Error> {
        let outcome = RefCell::new(None);
        let body = |tx: &dyn Tx| {
            let txn = AccountTxn::new(tx, account);
            let record_key =
                idempotency.map(|i| layout::scoped(account, i.request_id.as_str().as_bytes()));
            if let (Some(idempotency), Some(record_key)) = (idempotency, &record_key) {
                if let Some(record) =
                    txn::get::<RequestRecord>(tx, Tree::Requests, record_key, "request")?
                {
                    if record.fingerprint != idempotency.fingerprint.0 {
                        return Err(Fail::Abort(idempotency.reused_error()));
                    }
                    // A repeat changes nothing, so it is not audited again.
                    *outcome.borrow_mut() = Some((T::from_bytes(&record.response)?, None, None));
                    return Ok(());
                }
            }
            let value = op(&txn)?;
            txn.finish()?;
            if let (Some(idempotency), Some(record_key)) = (idempotency, &record_key) {
                let record = RequestRecord {
                    fingerprint: idempotency.fingerprint.0.to_vec(),
                    response: value.to_bytes(),
                    created_at: now,
                };
                tx.put(Tree::Requests, record_key, &records::encode(&record))?;
                tx.put(
                    Tree::RequestsByTime,
                    &layout::timed_key(now, account, idempotency.request_id.as_str()),
                    &[],
                )?;
            }
            let audited = match audit {
                Some(entry) => Some(append_audit(tx, entry)?),
                None => None,
            };
            *outcome.borrow_mut() = Some((value, txn.last_revision(), audited));
            Ok(())
        };
        match reading {
            true => self.backend.read_transact(&body)?,
            false => self.gated_transact(&body)?,
        }
        outcome
            .into_inner()
            .ok_or_else(|| Error::internal("a transaction committed without running"))
    }

    /// Why the store failed, if it did (see `failure.rs`).
    pub fn failure(&self) -> FailureCause {
        self.backend.failure().cause()
    }

    /// Changes to `Some` when the store fails.
    pub fn failures(&self) -> tokio::sync::watch::Receiver<FailureCause> {
        self.backend.failure().subscribe()
    }

    /// Refuses a call (changing nothing) if the store failed.
    pub fn check_not_failed(&self) -> Result<(), Error> {
        self.backend.failure().check()
    }

    /// Whether this process may run background maintenance now (see
    /// [`Backend::maintenance_lease`]).
    pub fn may_run_maintenance(&self) -> bool {
        self.backend.maintenance_lease()
    }

    /// Runs a changing operation: one transaction, then a (shared) flush;
    /// returns only once the change is durable.
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
        F: Fn(&AccountTxn) -> Result<T, Fail> + Send + 'static,
    {
        // Its own task: a call that is dropped (deadline, client gone) still
        // finishes its flush, and is counted as pending until then.
        let store = self.clone();
        let account = account.to_owned();
        let write = tokio::spawn(async move {
            let _pending = PendingWrite::start(&store);
            store.check_not_failed()?;
            let (value, revision, audited) = {
                let store = store.clone();
                let account = account.clone();
                tokio::task::spawn_blocking(move || {
                    store.transact(
                        false,
                        &account,
                        idempotency.as_ref(),
                        audit.as_ref(),
                        now,
                        &op,
                    )
                })
                .await
                .map_err(|e| Error::internal(format!("transaction task failed: {e}")))??
            };
            // Committed: from here on a failure may leave the change applied.
            store
                .backend
                .flush()
                .await
                .map_err(|cause| outcome_unknown(&cause))?;
            if let Some(revision) = revision {
                store.feed.publish(&account, revision);
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

    /// Reads must not hand out a change that is not yet durable: if any
    /// write is between its start and the end of its flush, wait for a flush
    /// (it covers every commit the read could have seen).
    async fn settle(&self) -> Result<(), Error> {
        if self.pending_writes.load(Ordering::SeqCst) > 0 {
            self.backend
                .flush()
                .await
                .map_err(|cause| store_failed(&cause))?;
        }
        Ok(())
    }

    /// Records the audit entry of a call that changed nothing (a denial, a
    /// backup): its own small transaction, made durable with the next flush.
    pub async fn record_audit(self: &Arc<Self>, entry: AuditEntry) -> Result<(), Error> {
        if self.failure().is_some() {
            // Nothing can be recorded any more; the failure was logged once.
            return Ok(());
        }
        let store = self.clone();
        let entry = tokio::task::spawn_blocking(move || {
            let appended = RefCell::new(None);
            store.gated_transact(&|tx| {
                *appended.borrow_mut() = Some(append_audit(tx, &entry)?);
                Ok(())
            })?;
            appended
                .into_inner()
                .ok_or_else(|| Error::internal("a transaction committed without running"))
        })
        .await
        .map_err(|e| Error::internal(format!("audit task failed: {e}")))??;
        self.mirror_audit(&entry);
        Ok(())
    }

    /// Mirrors audit records into `file` (see [`open_audit_log`]) as JSON
    /// lines, from now on.
    pub fn mirror_audit_into(&self, file: std::fs::File) {
        let _ = self.audit_mirror.set(Mutex::new(file));
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
        for (_, bytes) in self.backend.scan(Tree::Audit, &start, Some(&end), scan)? {
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
        F: Fn(&AccountTxn) -> Result<T, Fail> + Send + 'static,
    {
        self.check_not_failed()?;
        let inline = match self.backend.local_reads() {
            true => self.read_view(account, &op),
            false => None,
        };
        if let Some(value) = inline {
            let value = value?;
            self.settle().await?;
            return Ok(value);
        }
        let store = self.clone();
        let account = account.to_owned();
        let value = tokio::task::spawn_blocking(move || {
            store
                .transact(true, &account, None, None, 0, &op)
                .map(|(value, _, _)| value)
        })
        .await
        .map_err(|e| Error::internal(format!("transaction task failed: {e}")))?
        .map_err(|error| match (error.reason, self.failure()) {
            // A read changes nothing, whichever phase failed.
            (Reason::WRITE_OUTCOME_UNKNOWN, Some(cause)) => store_failed(&cause),
            _ => error,
        })?;
        self.settle().await?;
        Ok(value)
    }

    /// Every transaction of the store runs through here (see [`ReadGate`]).
    pub(crate) fn gated_transact(
        &self,
        body: &dyn Fn(&dyn Tx) -> Result<(), Fail>,
    ) -> Result<(), Error> {
        let _shared = self
            .gate
            .exclusive
            .read()
            .unwrap_or_else(|p| p.into_inner());
        self.gate.started.fetch_add(1, Ordering::SeqCst);
        let _finished = Finished(&self.gate.finished);
        self.backend.transact(body)
    }

    /// Runs a read of several calls (a listing page) over one committed
    /// state (see [`ReadGate`]).
    pub fn consistent<T>(&self, f: impl Fn(&Store) -> Result<T, Error>) -> Result<T, Error> {
        self.consistent_tries(8, f)
    }

    /// [`Store::consistent`], trying `tries` times without holding writes
    /// off (a long read that overlapped writes once will again: one try).
    pub fn consistent_tries<T>(
        &self,
        tries: usize,
        f: impl Fn(&Store) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let gate = &self.gate;
        for _ in 0..tries {
            if let Some(read) = gate.quiet(|| f(self)) {
                return read;
            }
            std::thread::yield_now();
        }
        // Writes keep coming: hold them off for one run (the transactions
        // in progress finish first; they are short).
        let _alone = gate.exclusive.write().unwrap_or_else(|p| p.into_inner());
        f(self)
    }

    /// Runs a read-only `op` on this thread, outside a transaction, if no
    /// transaction overlaps it (see [`ReadGate`]); tried twice. `None`: writes
    /// kept overlapping, run it in a transaction instead.
    pub(crate) fn read_view<T>(
        &self,
        account: &str,
        op: &dyn Fn(&AccountTxn) -> Result<T, Fail>,
    ) -> Option<Result<T, Error>> {
        let reads = BackendReads(&*self.backend);
        for _ in 0..2 {
            let Some(outcome) = self
                .gate
                .quiet(|| op(&AccountTxn::new(&ReadOnlyTx(&reads), account)))
            else {
                continue;
            };
            return match outcome {
                Ok(value) => Some(Ok(value)),
                Err(Fail::Abort(error)) => Some(Err(error)),
                Err(Fail::Conflict) => None,
                Err(Fail::Storage(message)) => {
                    Some(Err(Error::internal(format!("storage error: {message}"))))
                }
            };
        }
        None
    }

    /// Runs a short read of several calls (a page of a listing: a bounded
    /// scan of records that are mostly in memory) on this thread, over one
    /// committed state ([`Store::consistent`]): a hand-off to a blocking
    /// thread would cost more than the read.
    pub async fn read_now<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.check_not_failed()?;
        let value = match self.backend.local_reads() {
            true => self.consistent(f)?,
            // Reads that wait on the network wait off the async threads.
            false => {
                let store = self.clone();
                tokio::task::spawn_blocking(move || store.consistent(f))
                    .await
                    .map_err(|e| Error::internal(format!("read task failed: {e}")))??
            }
        };
        self.settle().await?;
        Ok(value)
    }

    /// Runs blocking reads (the `list_*` calls and the like) off the async
    /// threads.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.check_not_failed()?;
        let store = self.clone();
        let value = tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::internal(format!("read task failed: {e}")))??;
        self.settle().await?;
        Ok(value)
    }

    /// The highest revision of `account` known to be durable.
    pub fn durable_revision(&self, account: &str) -> u64 {
        self.feed.durable_revision(account)
    }

    /// Wakes whenever some account's durable revision moves (watchers also
    /// watch [`Store::failures`]).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }

    fn meta_u64(&self, account: &str, name: &[u8]) -> Result<u64, Error> {
        let value = self
            .backend
            .get(Tree::Meta, &layout::scoped(account, name))?;
        Ok(txn::read_u64(value.as_deref()))
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
                let set = self.backend.get(
                    Tree::KeyAliases,
                    &layout::scoped(account, key.as_str().as_bytes()),
                )?;
                let names = match set {
                    Some(bytes) => {
                        records::decode::<records::AliasSetRecord>("alias index", &bytes)?.names
                    }
                    None => Vec::new(),
                };
                let mut names = names
                    .iter()
                    .filter(|n| after.is_none_or(|a| n.as_str() > a))
                    .peekable();
                // Read in batches of what the page still needs.
                while page.len() <= limit && names.peek().is_some() {
                    let wanted = limit + 1 - page.len();
                    let batch: Vec<Vec<u8>> = names
                        .by_ref()
                        .take(wanted)
                        .map(|name| layout::scoped(account, name.as_bytes()))
                        .collect();
                    for bytes in self.backend.get_many(Tree::Aliases, &batch)?.into_iter() {
                        let Some(bytes) = bytes else { continue };
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
                    Some(after) => backend::after(&layout::scoped(account, after.as_bytes())),
                    None => prefix.clone(),
                };
                let end = layout::prefix_end(&prefix);
                for (_, bytes) in self
                    .backend
                    .scan(Tree::Aliases, &start, Some(&end), limit + 1)?
                {
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
            Some(after) => backend::after(&layout::scoped(account, after.as_bytes())),
            None => prefix.clone(),
        };
        let end = layout::prefix_end(&prefix);
        let mut page = Vec::with_capacity(limit + 1);
        for (_, bytes) in self
            .backend
            .scan(Tree::Keys, &start, Some(&end), limit + 1)?
        {
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
        // Entries sit under their last revision: the first at or after
        // `after + 1` may begin before it.
        let mut start = layout::change_key(account, after + 1);
        let end = layout::prefix_end(&layout::prefix(account));
        let mut events = Vec::new();
        loop {
            let entries = self
                .backend
                .scan(Tree::Changes, &start, Some(&end), limit)?;
            for (_, bytes) in &entries {
                for record in records::decode::<ChangeRecord>("change", bytes)?.events() {
                    if record.revision > up_to || events.len() == limit {
                        return Ok(events);
                    }
                    if record.revision > after {
                        events.push(AliasEvent::try_from(record)?);
                    }
                }
            }
            match entries.last() {
                Some((last, _)) if entries.len() == limit => start = backend::after(last),
                _ => return Ok(events),
            }
        }
    }

    /// Keys whose deletion time is at or before `now`: (account, key id).
    pub fn due_keys(&self, now: Millis) -> Result<Vec<(String, KeyId)>, Error> {
        let end = layout::timed_key(now.saturating_add(1), "", "");
        let mut due = Vec::new();
        scan_all(
            self.backend.as_ref(),
            Tree::Schedule,
            &[],
            Some(&end),
            |key, _| {
                if let Some((_, account, key_id)) = layout::split_timed(key) {
                    due.push((account.to_owned(), KeyId::from_trusted(key_id.to_owned())));
                }
                Ok(())
            },
        )?;
        Ok(due)
    }

    /// Drops change-log entries so that each account keeps at most `retain`
    /// of them. Each batch is one transaction that moves the floor and
    /// removes the entries under it together, so a watcher never misses a
    /// gap, and two processes pruning at once remove each entry once.
    pub fn prune_changes(&self, retain: u64) -> Result<u64, Error> {
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
    pub fn prune_requests(&self, before: Millis) -> Result<u64, Error> {
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
    pub fn prune_audit(&self, before: Millis) -> Result<u64, Error> {
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
                let old: Vec<&Vec<u8>> = batch
                    .iter()
                    .take_while(|(_, bytes)| {
                        records::decode::<records::AuditRecord>("audit", bytes)
                            .is_ok_and(|record| AuditEntry::from(record).time < before)
                    })
                    .map(|(key, _)| key)
                    .collect();
                if !old.is_empty() {
                    self.gated_transact(&|tx| {
                        for key in &old {
                            tx.delete(Tree::Audit, key)?;
                        }
                        Ok(())
                    })?;
                    pruned += old.len() as u64;
                }
                if old.len() < PRUNE_BATCH {
                    break;
                }
            }
            from = end;
        }
        Ok(pruned)
    }

    /// Makes everything durable (shutdown); call it off the async threads.
    pub fn flush_blocking(&self) -> Result<(), Error> {
        self.backend
            .flush_blocking()
            .map_err(|cause| store_failed(&cause))
    }

    /// Keys and aliases per account, read by scanning both trees (in
    /// batches, outside transactions: each count is of committed records,
    /// the two may be a moment apart). For metrics: call it seldom.
    pub fn census(&self) -> Result<std::collections::BTreeMap<String, Census>, Error> {
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

    /// Flushes run and writers served since the store was opened: writers
    /// per flush above 1 is group commit at work (always zero in memory).
    pub fn flush_stats(&self) -> Arc<FlushStats> {
        self.backend.flush_stats()
    }

    /// Runs `op` over several accounts in one transaction (the seed file:
    /// all of it or none of it). `op` gets one view per account of
    /// `accounts`, in that order. Like [`Store::write`], returns only once
    /// the change is durable; keeps no request_id record and no audit record.
    pub async fn write_accounts<T, F>(
        self: &Arc<Self>,
        accounts: Vec<String>,
        op: F,
    ) -> Result<T, Error>
    where
        T: Send + 'static,
        F: Fn(&[AccountTxn]) -> Result<T, Fail> + Send + 'static,
    {
        let store = self.clone();
        let write = tokio::spawn(async move {
            let _pending = PendingWrite::start(&store);
            store.check_not_failed()?;
            let transaction_store = store.clone();
            let (value, revisions) = tokio::task::spawn_blocking(move || {
                let outcome = RefCell::new(None);
                transaction_store.gated_transact(&|tx| {
                    let txns: Vec<AccountTxn> = accounts
                        .iter()
                        .map(|account| AccountTxn::new(tx, account))
                        .collect();
                    let value = op(&txns)?;
                    for txn in &txns {
                        txn.finish()?;
                    }
                    let revisions: Vec<(String, u64)> = txns
                        .iter()
                        .filter_map(|txn| Some((txn.account().to_owned(), txn.last_revision()?)))
                        .collect();
                    *outcome.borrow_mut() = Some((value, revisions));
                    Ok(())
                })?;
                outcome
                    .into_inner()
                    .ok_or_else(|| Error::internal("a transaction committed without running"))
            })
            .await
            .map_err(|e| Error::internal(format!("transaction task failed: {e}")))??;
            // Committed: from here on a failure may leave the change applied.
            store
                .backend
                .flush()
                .await
                .map_err(|cause| outcome_unknown(&cause))?;
            for (account, revision) in revisions {
                store.feed.publish(&account, revision);
            }
            Ok(value)
        });
        write
            .await
            .map_err(|e| Error::internal(format!("write task failed: {e}")))?
    }
}

/// Appends an audit record to its account's log, inside a transaction.
fn append_audit(tx: &dyn backend::Tx, entry: &AuditEntry) -> Result<AuditEntry, Fail> {
    let counter = layout::scoped(&entry.account, layout::AUDIT_SEQUENCE);
    let sequence = txn::counter(tx, &counter)? + 1;
    tx.put(Tree::Meta, &counter, &sequence.to_be_bytes())?;
    let entry = AuditEntry {
        sequence,
        ..entry.clone()
    };
    tx.put(
        Tree::Audit,
        &layout::change_key(&entry.account, sequence),
        &records::encode(&records::AuditRecord::from(&entry)),
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
