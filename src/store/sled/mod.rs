//! The sled backend: every [`Tree`] is a sled tree of the same name, a
//! transaction is one sled multi-tree transaction, and durability is group
//! commit (`group_commit.rs`) with a real file sync after each flush
//! (`sync.rs`). The first I/O error in a commit, flush or sync fails the
//! store for good (see `failure.rs` one level up for why).
//!
//! Only one process can open a sled directory (sled holds a lock on it), so
//! the maintenance lease is always granted and no other process commits.

mod group_commit;
pub mod sync;

use std::cell::{Cell, RefCell};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use ::sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, UnabortableTransactionError,
};

use self::group_commit::GroupCommit;
use self::sync::MakeSyncer;
use super::backend::{Backend, EachEntry, Entries, Fail, FlushStats, Flushing, Reads, Tree, Tx};
use super::failure::{outcome_unknown, store_failed, StoreHealth};
use crate::domain::Error;

pub use crate::store::OpenError;

fn storage_error(error: impl std::fmt::Display) -> Error {
    Error::internal(format!("storage error: {error}"))
}

/// The sled trees of a store, in [`Tree::ALL`] order.
#[derive(Clone)]
pub struct Trees(Vec<::sled::Tree>);

impl Trees {
    fn open(db: &::sled::Db) -> ::sled::Result<Trees> {
        Tree::ALL
            .iter()
            .map(|tree| db.open_tree(tree.name()))
            .collect::<::sled::Result<Vec<_>>>()
            .map(Trees)
    }

    fn tree(&self, tree: Tree) -> &::sled::Tree {
        &self.0[tree.index()]
    }
}

impl Reads for Trees {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let value = self.tree(tree).get(key).map_err(storage_error)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, Error> {
        let mut out = Vec::new();
        self.scan_each(tree, start, end, limit, &mut |key, value| {
            out.push((key.to_vec(), value.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    fn scan_each(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        each: EachEntry<'_>,
    ) -> Result<(), Error> {
        let range = (
            Bound::Included(start),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        for entry in self.tree(tree).range::<&[u8], _>(range).take(limit) {
            let (key, value) = entry.map_err(storage_error)?;
            each(&key, &value)?;
        }
        Ok(())
    }
}

/// Turns sled's errors into an existing directory's [`OpenError`].
fn open_error(dir: &Path) -> impl Fn(::sled::Error) -> OpenError + '_ {
    move |source| match &source {
        ::sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            OpenError::InUse(dir.to_owned())
        }
        _ => OpenError::Directory {
            path: dir.to_owned(),
            message: source.to_string(),
        },
    }
}

/// Opens the sled database in `dir` for reading only what is there (`aliasd
/// check`): no syncer, no flusher. `accept` looks at the database first
/// (opening a tree creates it); `None` when it refuses.
pub fn open_existing(
    dir: &Path,
    accept: impl FnOnce(&::sled::Db) -> ::sled::Result<bool>,
) -> Result<Option<Trees>, OpenError> {
    let db = ::sled::Config::new()
        .path(dir)
        .open()
        .map_err(open_error(dir))?;
    if !accept(&db).map_err(open_error(dir))? {
        return Ok(None);
    }
    Trees::open(&db).map(Some).map_err(open_error(dir))
}

/// Creates `dir` (and missing parents) readable by its owner only: it holds
/// every account's records, the audit log and the page-token secret. An
/// existing directory keeps the mode its owner gave it.
pub fn private_dir(dir: &Path) -> Result<(), crate::domain::Error> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::metadata(dir) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                crate::domain::Error::internal(format!("cannot create {}: {e}", dir.display()))
            }),
        Err(error) => Err(crate::domain::Error::internal(format!(
            "cannot read {}: {error}",
            dir.display()
        ))),
    }
}

pub struct SledBackend {
    trees: Trees,
    db: ::sled::Db,
    dir: PathBuf,
    /// The syncer's maker until [`Backend::prepared`] starts the flusher.
    make_syncer: Mutex<Option<MakeSyncer>>,
    committer: OnceLock<GroupCommit>,
    failure: StoreHealth,
}

/// sled's page cache unless told otherwise (`--cache-mb`): 256 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Why a flush was asked for before the flusher started.
const NOT_PREPARED: &str = "the store is not prepared yet (no flusher)";

impl SledBackend {
    /// Opens (or creates) the database in `dir`. Fails with
    /// [`OpenError::InUse`] when another process holds it. Its files are
    /// synced, and the flusher started, by [`Backend::prepared`].
    pub fn open(dir: &Path, make_syncer: MakeSyncer) -> Result<SledBackend, OpenError> {
        Self::open_with_cache(dir, make_syncer, DEFAULT_CACHE_BYTES)
    }

    /// [`SledBackend::open`], with sled's page cache bounded at
    /// `cache_bytes` (what bounds the server's memory as the store grows).
    pub fn open_with_cache(
        dir: &Path,
        make_syncer: MakeSyncer,
        cache_bytes: u64,
    ) -> Result<SledBackend, OpenError> {
        private_dir(dir).map_err(|e| OpenError::Prepare(e.message))?;
        let db = ::sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(open_error(dir))?;
        let trees = Trees::open(&db).map_err(open_error(dir))?;
        Ok(SledBackend {
            trees,
            db,
            dir: dir.to_owned(),
            make_syncer: Mutex::new(Some(make_syncer)),
            committer: OnceLock::new(),
            failure: StoreHealth::new(),
        })
    }

    fn committer(&self) -> Result<&GroupCommit, Arc<str>> {
        self.committer.get().ok_or_else(|| Arc::from(NOT_PREPARED))
    }

    /// A storage error in a transaction. One in sled's commit may have
    /// applied part of the change (in memory at least): the store fails and
    /// the outcome is unknown. An I/O error before the commit changed
    /// nothing, but sled is poisoned by it: the store fails too.
    fn transaction_failed(&self, error: ::sled::Error, committing: bool) -> Error {
        let cause = format!("storage error: {error}");
        if committing {
            self.failure.fail(&cause);
            outcome_unknown(&cause)
        } else if matches!(error, ::sled::Error::Io(_)) {
            self.failure.fail(&cause);
            store_failed(&cause)
        } else {
            storage_error(error)
        }
    }
}

/// One run of a sled transaction.
struct SledTx<'a> {
    views: &'a [::sled::transaction::TransactionalTree],
    /// sled's own error behind a [`Fail::Storage`], handed back to sled so
    /// that it ends the transaction with it.
    storage: RefCell<Option<::sled::Error>>,
}

impl SledTx<'_> {
    fn fail(&self, error: UnabortableTransactionError) -> Fail {
        match error {
            UnabortableTransactionError::Conflict => Fail::Conflict,
            UnabortableTransactionError::Storage(error) => {
                let message = error.to_string();
                *self.storage.borrow_mut() = Some(error);
                Fail::Storage(message)
            }
        }
    }
}

impl Tx for SledTx<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        let value = self.views[tree.index()]
            .get(key)
            .map_err(|e| self.fail(e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Fail> {
        self.views[tree.index()]
            .insert(key, value)
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), Fail> {
        self.views[tree.index()]
            .remove(key)
            .map_err(|e| self.fail(e))?;
        Ok(())
    }
}

impl Reads for SledBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        self.trees.get(tree, key)
    }

    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, Error> {
        self.trees.scan(tree, start, end, limit)
    }

    fn scan_each(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        each: EachEntry<'_>,
    ) -> Result<(), Error> {
        self.trees.scan_each(tree, start, end, limit, each)
    }
}

impl Backend for SledBackend {
    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<(), Fail>) -> Result<(), Error> {
        // Whether the body's last run succeeded: a storage error then came
        // from sled's commit, which may have applied part of it.
        let committing = Cell::new(false);
        let result = self.trees.0.as_slice().transaction(|views| {
            committing.set(false);
            let tx = SledTx {
                views,
                storage: RefCell::new(None),
            };
            match body(&tx) {
                Ok(()) => {
                    committing.set(true);
                    Ok(())
                }
                Err(Fail::Abort(error)) => Err(ConflictableTransactionError::Abort(error)),
                Err(Fail::Conflict) => Err(ConflictableTransactionError::Conflict),
                Err(Fail::Storage(message)) => match tx.storage.take() {
                    Some(error) => Err(ConflictableTransactionError::Storage(error)),
                    // Not sled's: a fault of ours, reported as such.
                    None => Err(ConflictableTransactionError::Abort(storage_error(message))),
                },
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Abort(error)) => Err(error),
            Err(TransactionError::Storage(error)) => {
                Err(self.transaction_failed(error, committing.get()))
            }
        }
    }

    /// Flushes what opening wrote, then builds the syncer, which syncs
    /// every file once (so the store's creation and its page-token secret
    /// are durable), and starts the flusher with it.
    fn prepared(&self) -> Result<(), Error> {
        let make_syncer = self
            .make_syncer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(make_syncer) = make_syncer else {
            return Ok(()); // prepared before
        };
        self.db
            .flush()
            .map_err(|e| Error::internal(open_error(&self.dir)(e).to_string()))?;
        let syncer = make_syncer(&self.dir).map_err(|source| {
            Error::internal(
                OpenError::Sync {
                    path: self.dir.clone(),
                    source,
                }
                .to_string(),
            )
        })?;
        let committer = GroupCommit::start(self.db.clone(), syncer, self.failure.clone());
        // Only the caller that took the maker gets here.
        let _ = self.committer.set(committer);
        Ok(())
    }

    fn flush(&self) -> Flushing<'_> {
        Box::pin(async move { self.committer()?.flush().await })
    }

    fn flush_blocking(&self) -> Result<(), Arc<str>> {
        self.committer()?.flush_blocking()
    }

    fn failure(&self) -> &StoreHealth {
        &self.failure
    }

    fn flush_stats(&self) -> Arc<FlushStats> {
        match self.committer.get() {
            Some(committer) => committer.stats(),
            None => Arc::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The sled backend's durability: group commit, the file sync before
    //! acknowledgement, and failing for good after a failed sync.
    use super::*;
    use crate::domain::Reason;
    use crate::store::{watch, PendingWrite, Store};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Condvar, Mutex};
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

    impl super::sync::Syncer for ProbeSyncer {
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
        let backend = SledBackend::open(
            dir.path(),
            Box::new(move |_| Ok(Box::new(syncer) as Box<dyn super::sync::Syncer>)),
        )
        .unwrap();
        let store = Store::with_backend(Arc::new(backend)).unwrap();
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
            watch::Pace {
                send_timeout: Duration::from_secs(10),
                progress_every: None,
            },
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
        let store = Store::open(&crate::store::Engine::sled(dir.path())).unwrap();
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
