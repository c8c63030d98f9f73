//! The store: what the application asks of storage, whatever engine keeps
//! it (the facade: no engine type crosses it).
//!
//! - Opening: [`Store::open`] from an [`Engine`] (open.rs), or
//!   [`Store::with_backend`] over any backend (tests inject one).
//! - Changes and reads: [`Store::write`] runs a domain operation over
//!   [`Txn`](crate::domain::ops::Txn) in one transaction, with its request_id
//!   record and its audit record in the same unit, and returns only once the
//!   change is durable; [`Store::read`] runs one and changes nothing.
//! - Listings (listing.rs): pages of keys, aliases and audit records, each
//!   over one committed state, and the change log; the change feed
//!   ([`feed::Feed`]) wakes watchers (watch.rs).
//! - Upkeep (upkeep.rs): keys due for removal, pruning, counts; what a
//!   store keeps about itself (settings.rs); audit records outside a change
//!   (audit_log.rs); snapshots (snapshot.rs) and `aliasd check` (check.rs).
//!
//! All of it is written once, against the byte-level [`backend::Backend`];
//! sled/, memory/ and etcd/ implement it, and conformance.rs holds the one
//! test suite every backend must pass.

mod audit_log;
pub mod backend;
pub mod check;
#[cfg(test)]
mod conformance;
pub mod etcd;
pub mod failure;
pub mod feed;
pub mod layout;
mod listing;
pub mod memory;
mod open;
pub mod records;
#[cfg(test)]
mod rules_tests;
mod settings;
pub mod sled;
pub mod snapshot;
pub mod txn;
mod upkeep;
pub mod watch;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use self::backend::{scan_all, Backend, EachEntry, Fail, ReadOnlyTx, Reads, Tree, Tx};
use self::failure::{outcome_unknown, store_failed, FailureCause};
use self::feed::Feed;
use self::records::{Replayable, RequestRecord};
use self::txn::AccountTxn;
use crate::domain::audit::AuditEntry;
use crate::domain::request::Idempotency;
use crate::domain::{Error, Millis, Reason};

pub use self::backend::{FlushStats, RemoteRequest, RetryCause, StoreEvent};

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
pub use self::audit_log::open_audit_log;
pub use self::listing::{AliasesPage, RecentChanges};
pub use self::open::{Engine, OpenError};
pub use self::settings::StoreSettings;
pub use self::upkeep::Census;

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

/// What a read run outside a transaction answered; `None` (run it in a
/// transaction instead) when it conflicted.
fn read_outside_transaction<T>(outcome: Result<T, Fail>) -> Option<Result<T, Error>> {
    match outcome {
        Ok(value) => Some(Ok(value)),
        Err(Fail::Abort(error)) => Some(Err(error)),
        Err(Fail::Conflict) => None,
        Err(Fail::Storage(message)) => {
            Some(Err(Error::internal(format!("storage error: {message}"))))
        }
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

    fn scan_each(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        each: EachEntry<'_>,
    ) -> Result<(), Error> {
        self.0.scan_each(tree, start, end, limit, each)
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

    /// Runs a reading operation in one transaction (nothing to flush).
    pub async fn read<T, F>(self: &Arc<Self>, account: &str, op: F) -> Result<T, Error>
    where
        T: Replayable + Send + 'static,
        F: Fn(&AccountTxn) -> Result<T, Fail> + Send + 'static,
    {
        self.check_not_failed()?;
        let inline = match self.backend.local_reads() {
            true => self.read_view(account, &op),
            false => match self.backend.catch_up().await {
                Some(mark) => self.read_in_memory(mark, account, &op),
                None => None,
            },
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
    fn consistent<T>(&self, f: impl Fn(&Store) -> Result<T, Error>) -> Result<T, Error> {
        self.consistent_tries(8, f)
    }

    /// [`Store::consistent`], trying `tries` times without holding writes
    /// off (a long read that overlapped writes once will again: one try).
    pub(super) fn consistent_tries<T>(
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
            return read_outside_transaction(outcome);
        }
        None
    }

    /// Runs `read` (on a blocking thread) with every plain read it makes
    /// answered from one state of the store ([`Backend::one_state`]).
    fn in_one_state<T>(&self, read: impl FnOnce() -> T) -> T {
        let mut read = Some(read);
        let mut value = None;
        self.backend
            .one_state(&mut || value = read.take().map(|read| read()));
        value.expect("one_state runs its body")
    }

    /// Runs a read-only `op` on this thread over the backend's memory
    /// caught up to `mark` ([`Backend::in_memory`]). `None`: it could
    /// not; run it in a transaction instead.
    fn read_in_memory<T>(
        &self,
        mark: i64,
        account: &str,
        op: &dyn Fn(&AccountTxn) -> Result<T, Fail>,
    ) -> Option<Result<T, Error>> {
        let reads = BackendReads(&*self.backend);
        let mut outcome = None;
        let served = self.backend.in_memory(mark, &mut || {
            outcome = Some(op(&AccountTxn::new(&ReadOnlyTx(&reads), account)));
        });
        read_outside_transaction(outcome.filter(|_| served)?)
    }

    /// Runs a short read of several calls (a page of a listing: a bounded
    /// scan of records that are mostly in memory) on this thread, over one
    /// committed state ([`Store::consistent`]): a hand-off to a blocking
    /// thread would cost more than the read.
    async fn read_now<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl Fn(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.check_not_failed()?;
        let value = match self.backend.local_reads() {
            true => self.consistent(f)?,
            false => {
                // From memory on this thread when the backend can (etcd's
                // mirror, caught up), else off the async threads: reads
                // that wait on the network wait there.
                let mut inline = None;
                if let Some(mark) = self.backend.catch_up().await {
                    let served = self
                        .backend
                        .in_memory(mark, &mut || inline = Some(self.consistent(&f)));
                    inline = inline.filter(|_| served);
                }
                match inline {
                    Some(value) => value?,
                    None => {
                        let store = self.clone();
                        tokio::task::spawn_blocking(move || {
                            store.in_one_state(|| store.consistent(&f))
                        })
                        .await
                        .map_err(|e| Error::internal(format!("read task failed: {e}")))??
                    }
                }
            }
        };
        self.settle().await?;
        Ok(value)
    }

    /// Runs blocking reads (the `list_*` calls and the like) off the async
    /// threads.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.check_not_failed()?;
        let store = self.clone();
        let value = tokio::task::spawn_blocking(move || store.in_one_state(|| f(&store)))
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

    /// Makes everything durable (shutdown); call it off the async threads.
    pub fn flush_blocking(&self) -> Result<(), Error> {
        self.backend
            .flush_blocking()
            .map_err(|cause| store_failed(&cause))
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

/// The most records one audit-log entry holds.
pub(super) const AUDIT_ENTRY_RECORDS: usize = 128;

/// Appends `entries` to their accounts' logs, inside a transaction: each
/// account's records in order, up to [`AUDIT_ENTRY_RECORDS`] to a log entry
/// (keyed by its last sequence), the account's sequence read and written
/// once. Returns them with their sequences.
fn append_audits(tx: &dyn backend::Tx, entries: &[AuditEntry]) -> Result<Vec<AuditEntry>, Fail> {
    let mut by_account: Vec<(&str, Vec<&AuditEntry>)> = Vec::new();
    for entry in entries {
        match by_account.iter_mut().find(|(a, _)| *a == entry.account) {
            Some((_, list)) => list.push(entry),
            None => by_account.push((&entry.account, vec![entry])),
        }
    }
    let mut appended = Vec::with_capacity(entries.len());
    for (account, list) in by_account {
        let counter = layout::scoped(account, layout::AUDIT_SEQUENCE);
        let mut sequence = txn::counter(tx, &counter)?;
        for chunk in list.chunks(AUDIT_ENTRY_RECORDS) {
            let records: Vec<records::AuditRecord> = chunk
                .iter()
                .map(|entry| {
                    sequence += 1;
                    let entry = AuditEntry {
                        sequence,
                        ..(*entry).clone()
                    };
                    let record = records::AuditRecord::from(&entry);
                    appended.push(entry);
                    record
                })
                .collect();
            let mut records = records.into_iter();
            let mut first = records.next().expect("chunks are not empty");
            first.more = records.collect();
            tx.put(
                Tree::Audit,
                &layout::change_key(account, sequence),
                &records::encode(&first),
            )?;
        }
        tx.put(Tree::Meta, &counter, &sequence.to_be_bytes())?;
    }
    Ok(appended)
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
