//! The storage backend interface: what every backend (sled/, memory/,
//! etcd/) implements, in bytes. Everything above it (the domain's `Txn`
//! in txn.rs, request_id records, audit appends, listings, pruning, the
//! change feed) is written once, in this module's parent, against these
//! traits; the record encoding (records.rs, layout.rs) is shared too. No
//! engine type appears here.
//!
//! A backend offers:
//! - [`Backend::transact`]: one serializable transaction over every
//!   [`Tree`], with get/put/delete through a [`Tx`]. The backend may run the
//!   body more than once (on a conflict), so the body has no effects beyond
//!   its `Tx` calls; [`Backend::read_transact`] for one that only reads
//!   (etcd runs those outside its write groups).
//! - [`Reads`]: reads and range scans outside transactions (listings, the
//!   change log, the audit log, maintenance).
//! - [`Backend::flush`]: makes durable everything committed so far (a
//!   backend whose commits are durable when they return answers at once),
//!   and [`Backend::prepared`] once opening has written what it writes.
//! - its failed state ([`StoreHealth`]), its limits (writes per
//!   transaction), whether its reads are local, a maintenance lease, and a
//!   seam to report commits made by other processes to the change feed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::failure::StoreHealth;
use super::feed::Feed;
use crate::domain::Error;

/// The trees (key spaces) of a store; layout.rs says what each holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tree {
    Keys,
    Aliases,
    KeyAliases,
    Changes,
    Meta,
    Requests,
    RequestsByTime,
    Schedule,
    Audit,
    Rotations,
}

impl Tree {
    pub const ALL: [Tree; 10] = [
        Tree::Keys,
        Tree::Aliases,
        Tree::KeyAliases,
        Tree::Changes,
        Tree::Meta,
        Tree::Requests,
        Tree::RequestsByTime,
        Tree::Schedule,
        Tree::Audit,
        Tree::Rotations,
    ];

    /// The tree's name (sled's tree names on disk: never change them).
    pub fn name(self) -> &'static str {
        match self {
            Tree::Keys => "keys",
            Tree::Aliases => "aliases",
            Tree::KeyAliases => "key_aliases",
            Tree::Changes => "changes",
            Tree::Meta => "meta",
            Tree::Requests => "requests",
            Tree::RequestsByTime => "requests_by_time",
            Tree::Schedule => "schedule",
            Tree::Audit => "audit",
            Tree::Rotations => "rotations",
        }
    }

    /// Its position in [`Tree::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a transaction's body stopped.
#[derive(Debug)]
pub enum Fail {
    /// A rule refused the operation: nothing is written, the error is the
    /// answer.
    Abort(Error),
    /// Another transaction got in the way: the backend runs the body again.
    Conflict,
    /// The backend could not read or write; it decides what that means for
    /// the store (see its own `transact`).
    Storage(String),
}

/// A rule's error aborts the transaction.
impl From<Error> for Fail {
    fn from(error: Error) -> Self {
        Fail::Abort(error)
    }
}

/// One run of a transaction. Reads see the run's own writes; nothing is
/// visible to others until the transaction commits.
pub trait Tx {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail>;
    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Fail>;
    /// Deleting an absent key is not an error.
    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), Fail>;
}

/// A [`Tx`] over plain reads, for read-only bodies run outside a
/// transaction (the store's read gate decides when that is safe): writes
/// are refused.
pub struct ReadOnlyTx<'a>(pub &'a dyn Reads);

impl Tx for ReadOnlyTx<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        self.0.get(tree, key).map_err(Fail::Abort)
    }

    fn put(&self, tree: Tree, _key: &[u8], _value: &[u8]) -> Result<(), Fail> {
        Err(Fail::Abort(Error::internal(format!(
            "a read wrote to {}",
            tree.name()
        ))))
    }

    fn delete(&self, tree: Tree, _key: &[u8]) -> Result<(), Fail> {
        Err(Fail::Abort(Error::internal(format!(
            "a read deleted from {}",
            tree.name()
        ))))
    }
}

/// What [`Backend::catch_up`] returns.
pub type CatchingUp<'a> = Pin<Box<dyn Future<Output = Option<i64>> + Send + 'a>>;

/// Entries of a scan, in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// What [`Reads::scan_each`] hands each entry to: its key and its value.
pub type EachEntry<'a> = &'a mut dyn FnMut(&[u8], &[u8]) -> Result<(), Error>;

/// Reads outside transactions. Each call sees committed data; two calls may
/// see different commits (callers that need one view use a transaction).
pub trait Reads {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error>;
    /// The values of `keys`, in their order (a remote backend reads them in
    /// one round trip, all at one moment).
    fn get_many(&self, tree: Tree, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        keys.iter().map(|key| self.get(tree, key)).collect()
    }
    /// Up to `limit` entries with `start <= key < end` (`end` None: to the
    /// end of the tree), in key order.
    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, Error>;
    /// [`Reads::scan`], handing each entry (key, value) to `each` where it
    /// lies: a local backend copies nothing (a listing page decodes its
    /// records straight from sled's buffers).
    fn scan_each(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        each: EachEntry<'_>,
    ) -> Result<(), Error> {
        for (key, value) in self.scan(tree, start, end, limit)? {
            each(&key, &value)?;
        }
        Ok(())
    }
}

/// A boxed future (the trait stays object-safe).
pub type Flushing<'a> = Pin<Box<dyn Future<Output = Result<(), Arc<str>>> + Send + 'a>>;

/// A store's backend. Object-safe: the store holds an `Arc<dyn Backend>`.
pub trait Backend: Reads + Send + Sync + 'static {
    /// Runs `body` in one serializable transaction over every tree, running
    /// it again on a [`Fail::Conflict`]. Blocking: call it off the async
    /// threads. Returns the body's abort error, or the backend's error (a
    /// storage fault, classified by the backend: STORE_FAILED when nothing
    /// was applied, WRITE_OUTCOME_UNKNOWN when the commit may have been).
    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<(), Fail>) -> Result<(), Error>;

    /// [`Backend::transact`] for a body that only reads: a backend may run
    /// it without queueing it behind writers.
    fn read_transact(&self, body: &dyn Fn(&dyn Tx) -> Result<(), Fail>) -> Result<(), Error> {
        self.transact(body)
    }

    /// Called once, when the store has written what opening writes (the
    /// page-token secret): makes that durable and starts whatever the
    /// backend runs in the background. Calls before it may only transact
    /// and read.
    fn prepared(&self) -> Result<(), Error> {
        self.flush_blocking()
            .map_err(|cause| Error::internal(cause.to_string()))
    }

    /// Returns once everything committed before the call is durable; `Err`
    /// carries why the store failed.
    fn flush(&self) -> Flushing<'_>;

    /// [`Backend::flush`] for threads outside the async runtime.
    fn flush_blocking(&self) -> Result<(), Arc<str>>;

    /// The backend's failed state (health and every call watch it).
    fn failure(&self) -> &StoreHealth;

    /// Flushes run and writers served (the benchmark reads them).
    fn flush_stats(&self) -> Arc<FlushStats>;

    /// Whether reads are answered in this process without waiting on a
    /// network, so that the store may make them on async threads. A remote
    /// backend (etcd) says no: its reads run on blocking threads.
    fn local_reads(&self) -> bool {
        true
    }

    /// For a backend without local reads: waits, as a task (no thread
    /// held), until reads can be answered from memory with every write
    /// acknowledged before this call; answers a mark for
    /// [`Backend::read_in_memory`]. None: they cannot (etcd's mirror is
    /// down or behind); read in a transaction instead.
    fn catch_up(&self) -> CatchingUp<'_> {
        Box::pin(std::future::ready(None))
    }

    /// Runs `body` on this thread with the backend's plain reads
    /// ([`Reads`]) answered from memory caught up to `mark` (from
    /// [`Backend::catch_up`]), never from the network. False when one could
    /// not be (memory went down meanwhile, or the body read a tree memory
    /// does not hold; that read failed): what the body answered is then to
    /// be dropped and the read run off the async threads.
    fn in_memory(&self, mark: i64, body: &mut dyn FnMut()) -> bool {
        let _ = (mark, body);
        false
    }

    /// Runs `body` (on a blocking thread) with this thread's plain reads
    /// ([`Reads`]) all answered from one state of the store. A local backend
    /// needs nothing for it (the store's read gate orders its reads against
    /// its transactions); a remote one whose reads would each see the latest
    /// state pins them to one (etcd: the revision of the first).
    fn one_state(&self, body: &mut dyn FnMut()) {
        body()
    }

    /// Drops the history the backend keeps of past states, up to what was
    /// current at the previous call (so at least one maintenance interval
    /// of history stays for readers and watchers behind). Returns the
    /// revision compacted to, if any. Only etcd keeps such history.
    fn compact_history(&self) -> Result<Option<i64>, Error> {
        Ok(None)
    }

    /// The most writes one transaction may make (etcd takes 128 operations
    /// in a transaction); bulk writers (a restore) batch within it.
    fn max_writes_per_transaction(&self) -> usize {
        usize::MAX
    }

    /// Whether this process may run background maintenance (removing keys
    /// past their deletion time, pruning) now. A backend shared by several
    /// processes grants it to one of them at a time (a lease it keeps
    /// alive); a backend only one process can open always grants it.
    fn maintenance_lease(&self) -> bool {
        true
    }

    /// The change feed of the store. A backend shared with other processes
    /// reports their commits here ([`Feed::publish`] once a revision is
    /// durable), so that watchers in this process see them; the store
    /// itself publishes its own commits. sled and memory have no other
    /// writers and ignore it.
    fn follow_other_writers(&self, _feed: Arc<Feed>) {}
}

/// What a backend reports of its work, for the metrics.
#[derive(Debug, Clone, Copy)]
pub enum StoreEvent {
    /// A group commit made `writers` durable in `took`; on sled, of which
    /// `flush` in sled's own flush and the rest in the sync of its files.
    Flushed {
        writers: u64,
        took: std::time::Duration,
        flush: Option<std::time::Duration>,
    },
    /// One request to a remote store (etcd), answered or failed.
    Request {
        request: RemoteRequest,
        took: std::time::Duration,
        failed: bool,
    },
    /// A request to a remote store made again, and why.
    Retry(RetryCause),
    /// A group's commit found that another process had changed what it
    /// read: nothing was applied and every member runs again.
    Conflict,
    /// A read on etcd, answered from the instance's mirror (`true`) or
    /// from etcd itself (`false`: the mirror was not caught up in time, or
    /// the read needed a tree it does not hold).
    MirrorRead(bool),
}

/// The requests a remote store (etcd) makes on a call's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RemoteRequest {
    /// A read (etcd `Range`).
    Range,
    /// A commit (etcd `Txn`).
    Txn,
}

/// Why a request to a remote store was made again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RetryCause {
    /// The store could not be reached (while its endpoints connect).
    Unavailable,
    /// The auth token was stale: signed in again.
    TokenRenewed,
    /// A member had not applied the revision asked for: read again from
    /// the leader.
    NotYetApplied,
}

/// Told of each [`StoreEvent`].
pub type StoreObserver = Box<dyn Fn(&StoreEvent) + Send + Sync>;

/// How many flushes ran and how many writers they served; what else the
/// backend reports goes to the observer only.
#[derive(Default)]
pub struct FlushStats {
    pub flushes: AtomicU64,
    pub writers: AtomicU64,
    /// Flush requests queued so far (tests wait on it).
    pub requested: AtomicU64,
    /// Set once, by whoever reports flushes (the metrics).
    observer: std::sync::OnceLock<StoreObserver>,
}

impl std::fmt::Debug for FlushStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlushStats")
            .field("flushes", &self.flushes)
            .field("writers", &self.writers)
            .field("requested", &self.requested)
            .finish_non_exhaustive()
    }
}

impl FlushStats {
    /// Counts a flush that served `writers` and took `took`.
    pub fn flushed(&self, writers: u64, took: std::time::Duration) {
        self.flushed_in_parts(writers, took, None);
    }

    /// Counts a flush that served `writers` and took `took`, of which
    /// `flush` before the sync (sled).
    pub fn flushed_in_parts(
        &self,
        writers: u64,
        took: std::time::Duration,
        flush: Option<std::time::Duration>,
    ) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.writers.fetch_add(writers, Ordering::Relaxed);
        self.report(&StoreEvent::Flushed {
            writers,
            took,
            flush,
        });
    }

    /// Tells the observer, if any, of `event`.
    pub fn report(&self, event: &StoreEvent) {
        if let Some(observe) = self.observer.get() {
            observe(event);
        }
    }

    /// Reports every later event to `observer` (the first caller wins).
    pub fn observe(&self, observer: StoreObserver) {
        let _ = self.observer.set(observer);
    }

    /// (flushes, writers served) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.flushes.load(Ordering::Relaxed),
            self.writers.load(Ordering::Relaxed),
        )
    }
}

/// Calls `each` for every entry with `start <= key < end`, reading in
/// batches (a scan outside transactions, so a long walk does not hold
/// anything open).
pub fn scan_all(
    reads: &dyn Reads,
    tree: Tree,
    start: &[u8],
    end: Option<&[u8]>,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    const BATCH: usize = 1024;
    let mut from = start.to_vec();
    loop {
        let batch = reads.scan(tree, &from, end, BATCH)?;
        for (key, value) in &batch {
            each(key, value)?;
        }
        match batch.last() {
            Some((last, _)) if batch.len() == BATCH => {
                from = after(last);
            }
            _ => return Ok(()),
        }
    }
}

/// The first key after `key` (in byte order).
pub fn after(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}
