//! Group commit on etcd: the writing transactions of one process that
//! arrive while a commit is under way are committed together, as one etcd
//! transaction.
//!
//! Every change of an account writes its revision counter, so two
//! transactions of one account always conflict: run side by side, all but
//! one would fail their compares and run again. Instead, the transactions
//! of a process form a [`Group`] while the previous group commits. Then
//! each member runs its body in turn, on its own thread, over a [`View`]
//! that holds what the members before it read and wrote, so that it sees
//! their writes as committed (the group is serial in member order). The
//! last turn done, the group's leader (its first member) commits the whole
//! view in one etcd `Txn`, comparing every key any member read from etcd on
//! its `mod_revision`; then every member has its answer. If another process
//! changed a key the group read, nothing is applied and every member runs
//! again, in the same order.
//!
//! Reads are what takes the time (each is a round trip to etcd), and turns
//! run one after another; so first, once the group is closed, every member
//! runs its body at once, side by side, against etcd at the group's
//! revision, discarding its writes: a rehearsal that fills the group's
//! cache of what etcd holds at that revision. The turns then read mostly
//! from that cache. (The values at one revision never change, so a cached
//! read is the read the turn would have made.)
//!
//! A member whose writes would take the group past etcd's limits (128
//! operations and 128 compares per transaction, 1.5 MiB per request)
//! leaves them out and runs again in the next group. A member whose rule
//! refused the operation (an abort) keeps its reads in the group's
//! compares: its answer holds only if what it read is still so at the
//! commit.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::domain::Error;
use crate::store::backend::{Fail, Tree, Tx};

/// The most transactions one group takes.
pub const MAX_MEMBERS: usize = 64;
/// etcd's default limit of operations (and of compares) per transaction.
pub const MAX_TXN_OPS: usize = 128;
/// The most bytes of keys and values a group writes (etcd takes requests
/// of up to 1.5 MiB).
const MAX_BYTES: usize = 1 << 20;

/// A key as etcd holds it: its value (None: absent) and its mod_revision
/// (None: absent).
pub type Read = (Option<Vec<u8>>, Option<i64>);

/// What a group has read from etcd and written so far, in one attempt.
#[derive(Default)]
pub struct View {
    /// The etcd revision every read is made at (0 until the first read,
    /// which takes the latest).
    pub revision: i64,
    /// Keys read from etcd, compared at the commit.
    pub reads: HashMap<Vec<u8>, Read>,
    /// Keys written: the value, or None for a deletion.
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Bytes of the keys and values written.
    bytes: usize,
}

impl View {
    /// Whether `reads` and `writes` fit into this view within etcd's limits.
    fn fits(
        &self,
        reads: &HashMap<Vec<u8>, Read>,
        writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    ) -> bool {
        let new_reads = reads.keys().filter(|k| !self.reads.contains_key(*k));
        let new_writes = writes.keys().filter(|k| !self.writes.contains_key(*k));
        self.reads.len() + new_reads.count() <= MAX_TXN_OPS
            && self.writes.len() + new_writes.count() <= MAX_TXN_OPS
            && self.bytes + bytes_of(writes) <= MAX_BYTES
    }

    fn is_empty(&self) -> bool {
        self.reads.is_empty() && self.writes.is_empty()
    }

    fn merge(&mut self, reads: HashMap<Vec<u8>, Read>, writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        self.bytes += bytes_of(&writes);
        self.reads.extend(reads);
        self.writes.extend(writes);
    }
}

fn bytes_of(writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>) -> usize {
    writes
        .iter()
        .map(|(key, value)| key.len() + value.as_ref().map_or(0, Vec::len))
        .sum()
}

/// Reads from etcd at a revision (0: the latest): a key's value and
/// mod_revision, and the revision read at.
pub trait Source {
    fn read(&self, key: &[u8], revision: i64) -> Result<(Read, i64), Error>;
    /// etcd's revision now.
    fn latest_revision(&self) -> Result<i64, Error>;
    /// The etcd key of `key` in `tree`.
    fn key(&self, tree: Tree, key: &[u8]) -> Vec<u8>;
}

/// What etcd says of a read at a revision it has compacted away.
const COMPACTED: &str = "required revision has been compacted";

/// How one member's run ended.
pub enum Ran {
    /// Its writes are in the view.
    Done,
    /// A rule refused it; its reads are in the view (compared).
    Aborted(Error),
    /// Left out of this group (it did not fit, or asked to run again).
    Deferred,
    /// Its reads failed (etcd unreachable): it changed nothing.
    Failed(Error),
}

/// One member's run of its body over the group's view: reads see its own
/// writes, then the earlier members', then what the group read, then etcd
/// at the group's revision.
pub fn run_member(
    source: &dyn Source,
    cache: Option<&Cache>,
    view: &mut View,
    body: &dyn Fn(&dyn Tx) -> Result<(), Fail>,
) -> Ran {
    let tx = MemberTx::new(source, cache, std::mem::take(view));
    let outcome = guarded(|| body(&tx));
    let MemberTx {
        view: taken,
        reads,
        writes,
        ..
    } = tx;
    *view = taken.into_inner();
    let (reads, writes) = (reads.into_inner(), writes.into_inner());
    let alone = view.is_empty();
    let fits = |writes: &BTreeMap<_, _>| view.fits(&reads, writes);
    match outcome {
        Ok(()) if fits(&writes) => {
            view.merge(reads, writes);
            Ran::Done
        }
        Err(Fail::Abort(error)) if fits(&BTreeMap::new()) => {
            view.merge(reads, BTreeMap::new());
            Ran::Aborted(error)
        }
        Ok(()) | Err(Fail::Abort(_)) if alone => Ran::Failed(Error::internal(format!(
            "a transaction of {} reads and {} writes is more than etcd takes in one \
             ({MAX_TXN_OPS} of each, 1 MiB)",
            reads.len(),
            writes.len()
        ))),
        Ok(()) | Err(Fail::Abort(_)) | Err(Fail::Conflict) => Ran::Deferred,
        // The message already says what failed (`EtcdBackend::range`).
        Err(Fail::Storage(message)) => Ran::Failed(Error::new(
            crate::domain::Reason::STORE_UNAVAILABLE,
            message,
        )),
    }
}

/// Runs a body, turning a panic into an error: the members after it wait
/// for its turn to end, so a panic must not skip the rest of the turn.
fn guarded(body: impl FnOnce() -> Result<(), Fail>) -> Result<(), Fail> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or_else(|_| {
        Err(Fail::Abort(Error::internal(
            "the operation panicked; it changed nothing",
        )))
    })
}

/// Runs a body that only reads, on its own at one revision (the first
/// read's): no limits apply, as it makes no etcd transaction.
pub fn run_read(
    source: &dyn Source,
    body: &dyn Fn(&dyn Tx) -> Result<(), Fail>,
) -> Result<(), Fail> {
    let tx = MemberTx::new(source, None, View::default());
    guarded(|| body(&tx))?;
    let wrote = !tx.writes.borrow().is_empty();
    match wrote {
        false => Ok(()),
        true => Err(Fail::Abort(Error::internal("a read wrote"))),
    }
}

/// A member's transaction (see [`run_member`]).
struct MemberTx<'a> {
    source: &'a dyn Source,
    cache: Option<&'a Cache>,
    view: RefCell<View>,
    reads: RefCell<HashMap<Vec<u8>, Read>>,
    writes: RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl<'a> MemberTx<'a> {
    fn new(source: &'a dyn Source, cache: Option<&'a Cache>, view: View) -> MemberTx<'a> {
        MemberTx {
            source,
            cache,
            view: RefCell::new(view),
            reads: RefCell::new(HashMap::new()),
            writes: RefCell::new(BTreeMap::new()),
        }
    }
}

impl Tx for MemberTx<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        let key = self.source.key(tree, key);
        if let Some(written) = self.writes.borrow().get(&key) {
            return Ok(written.clone());
        }
        let mut view = self.view.borrow_mut();
        if let Some(written) = view.writes.get(&key) {
            return Ok(written.clone());
        }
        if let Some((value, _)) = view.reads.get(&key) {
            return Ok(value.clone());
        }
        if let Some((value, _)) = self.reads.borrow().get(&key) {
            return Ok(value.clone());
        }
        let cached = self
            .cache
            .filter(|cache| cache.revision == view.revision && view.revision != 0)
            .and_then(|cache| cache.get(&key));
        let read = match cached {
            Some(read) => read,
            None => {
                let (read, revision) = self.source.read(&key, view.revision).map_err(|e| {
                    match e.message.contains(COMPACTED) {
                        // The group's revision is gone: run again at a
                        // newer one.
                        true => Fail::Conflict,
                        false => Fail::Storage(e.message),
                    }
                })?;
                if view.revision == 0 {
                    view.revision = revision;
                }
                read
            }
        };
        let value = read.0.clone();
        self.reads.borrow_mut().insert(key, read);
        Ok(value)
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Fail> {
        buffer(self.source, &self.writes, tree, key, Some(value))
    }

    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), Fail> {
        buffer(self.source, &self.writes, tree, key, None)
    }
}

/// Buffers a write (None: a deletion) of `key` in `tree`.
fn buffer(
    source: &dyn Source,
    writes: &RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
    tree: Tree,
    key: &[u8],
    value: Option<&[u8]>,
) -> Result<(), Fail> {
    writes
        .borrow_mut()
        .insert(source.key(tree, key), value.map(<[u8]>::to_vec));
    Ok(())
}

/// What etcd holds at one revision, as the group's rehearsal read it.
#[derive(Default)]
pub struct Cache {
    revision: i64,
    reads: Mutex<HashMap<Vec<u8>, Read>>,
}

impl Cache {
    fn get(&self, key: &[u8]) -> Option<Read> {
        let reads = self.reads.lock().unwrap_or_else(|p| p.into_inner());
        reads.get(key).cloned()
    }
}

/// A rehearsal's transaction: reads through the cache at its revision,
/// writes seen by its own reads only, then dropped.
struct RehearsalTx<'a> {
    source: &'a dyn Source,
    cache: &'a Cache,
    writes: RefCell<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl Tx for RehearsalTx<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        let key = self.source.key(tree, key);
        if let Some(written) = self.writes.borrow().get(&key) {
            return Ok(written.clone());
        }
        if let Some((value, _)) = self.cache.get(&key) {
            return Ok(value);
        }
        let (read, _) = self
            .source
            .read(&key, self.cache.revision)
            .map_err(|e| Fail::Storage(e.message))?;
        let value = read.0.clone();
        let mut reads = self.cache.reads.lock().unwrap_or_else(|p| p.into_inner());
        reads.insert(key, read);
        Ok(value)
    }

    fn put(&self, tree: Tree, key: &[u8], value: &[u8]) -> Result<(), Fail> {
        buffer(self.source, &self.writes, tree, key, Some(value))
    }

    fn delete(&self, tree: Tree, key: &[u8]) -> Result<(), Fail> {
        buffer(self.source, &self.writes, tree, key, None)
    }
}

/// How a group's attempt ended.
#[derive(Clone)]
pub enum Outcome {
    /// Its writes are in etcd (or it wrote nothing and its reads stand).
    Committed,
    /// Not applied, for the reason given (etcd unreachable, a commit of
    /// unknown outcome, too many conflicts).
    Failed(Error),
}

/// The leader's commit of an attempt: the view, the attempt (from 0), the
/// members; Ok(false) when another process changed what the group read.
pub type Commit<'a> = dyn Fn(&View, u32, usize) -> Result<bool, Error> + 'a;

/// A group of transactions (see the module comment).
pub struct Group {
    state: Mutex<State>,
    /// One per member, so that a turn wakes only the member it is for (the
    /// leader's also tells it that every turn is done).
    wake: Vec<Condvar>,
    /// Set when the group closes.
    cache: std::sync::OnceLock<Cache>,
}

#[derive(Default)]
struct State {
    /// Still taking members: its leader waits for the previous group.
    open: bool,
    members: usize,
    /// The member whose body runs now; `members` once all have run.
    turn: usize,
    /// Attempts so far (a conflict starts another).
    attempt: u32,
    view: View,
    outcome: Option<Outcome>,
}

impl Group {
    /// A new group, open, with its leader as member 0.
    pub fn new() -> Arc<Group> {
        Arc::new(Group {
            state: Mutex::new(State {
                open: true,
                members: 1,
                ..State::default()
            }),
            wake: (0..MAX_MEMBERS).map(|_| Condvar::new()).collect(),
            cache: std::sync::OnceLock::new(),
        })
    }

    /// Wakes every member (the group closed, or an attempt ended).
    fn wake_all(&self, state: &State) {
        for wake in &self.wake[..state.members] {
            wake.notify_one();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Member `index` waits until `done` holds.
    fn wait_until(&self, index: usize, done: impl Fn(&State) -> bool) -> MutexGuard<'_, State> {
        let mut state = self.lock();
        while !done(&state) {
            state = self.wake[index]
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
        state
    }

    /// Joins the group if it still takes members and has fewer than
    /// `limit`: the member's index.
    pub fn join(&self, limit: usize) -> Option<usize> {
        let mut state = self.lock();
        if !state.open || state.members >= limit.min(MAX_MEMBERS) {
            return None;
        }
        state.members += 1;
        Some(state.members - 1)
    }

    /// Takes no more members; the rehearsals and the first turn begin, at
    /// etcd's revision now (if etcd answers).
    /// If etcd cannot be read now, the group fails at once (rather than each
    /// turn waiting out its own timeout while later writers queue).
    pub fn close(&self, source: &dyn Source) {
        let latest =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.latest_revision()))
                .unwrap_or_else(|_| Err(Error::internal("reading etcd's revision panicked")));
        let mut state = self.lock();
        match latest {
            Ok(revision) => {
                let _ = self.cache.set(Cache {
                    revision,
                    ..Cache::default()
                });
                state.view.revision = revision;
            }
            Err(error) => state.outcome = Some(Outcome::Failed(error)),
        }
        state.open = false;
        self.wake_all(&state);
    }

    /// Member `index` runs its body in its turns until the group's outcome
    /// is known; the leader (`commit` is Some) commits each attempt.
    pub fn take_part(
        &self,
        index: usize,
        source: &dyn Source,
        body: &dyn Fn(&dyn Tx) -> Result<(), Fail>,
        commit: Option<&Commit<'_>>,
    ) -> (Ran, Outcome) {
        if let Some(outcome) = self.wait_until(index, |s| !s.open).outcome.clone() {
            // It failed before any turn (etcd unreachable): nothing ran.
            return (Ran::Deferred, outcome);
        }
        let cache = self.cache.get().filter(|cache| cache.revision != 0);
        if let Some(cache) = cache {
            // What a rehearsal did is dropped; what it read stays cached.
            let rehearsal = RehearsalTx {
                source,
                cache,
                writes: RefCell::new(BTreeMap::new()),
            };
            let _ = guarded(|| body(&rehearsal));
        }
        loop {
            let mut state = self.wait_until(index, |s| !s.open && s.turn == index);
            let attempt = state.attempt;
            let mut view = std::mem::take(&mut state.view);
            drop(state);
            let ran = run_member(source, cache, &mut view, body);
            let mut state = self.lock();
            state.view = view;
            state.turn += 1;
            // The next member's turn, or (all done) the leader's commit.
            self.wake[state.turn % state.members].notify_one();
            drop(state);
            if let Some(commit) = commit {
                let state = self.wait_until(index, |s| s.turn == s.members);
                // A panic here must not leave the members waiting.
                let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    commit(&state.view, attempt, state.members)
                }))
                .unwrap_or_else(|_| Err(Error::internal("the commit panicked")));
                let decided = match committed {
                    Ok(true) => Some(Outcome::Committed),
                    Ok(false) => None,
                    Err(error) => Some(Outcome::Failed(error)),
                };
                let mut state = state;
                match decided {
                    Some(outcome) => state.outcome = Some(outcome),
                    None => {
                        // Another process changed what the group read:
                        // every member runs again, in the same order.
                        state.attempt += 1;
                        state.turn = 0;
                        state.view = View::default();
                    }
                }
                self.wake_all(&state);
            }
            let state = self.wait_until(index, |s| s.outcome.is_some() || s.attempt != attempt);
            if let Some(outcome) = &state.outcome {
                return (ran, outcome.clone());
            }
        }
    }
}

/// The group commit tested without an etcd: a fake that keeps keys with
/// their mod_revision, and a commit that compares what the group read, as
/// the backend's does.
#[cfg(test)]
mod tests {
    use super::*;

    /// An etcd of one process's imagination: each key's value and
    /// mod_revision, and the store's revision.
    /// The store's revision, and each key's value and mod_revision.
    type Keys = (i64, BTreeMap<Vec<u8>, (Vec<u8>, i64)>);

    #[derive(Default)]
    struct FakeEtcd {
        state: Mutex<Keys>,
        unreachable: bool,
    }

    impl Source for FakeEtcd {
        fn read(&self, key: &[u8], _revision: i64) -> Result<(Read, i64), Error> {
            let state = self.state.lock().unwrap();
            let found = state.1.get(key).cloned();
            Ok(((found.clone().map(|f| f.0), found.map(|f| f.1)), state.0))
        }

        fn latest_revision(&self) -> Result<i64, Error> {
            match self.unreachable {
                true => Err(Error::internal("etcd cannot be reached")),
                false => Ok(self.state.lock().unwrap().0),
            }
        }

        fn key(&self, _tree: Tree, key: &[u8]) -> Vec<u8> {
            key.to_vec()
        }
    }

    impl FakeEtcd {
        /// A write by another process.
        fn put(&self, key: &[u8], value: &[u8]) {
            let mut state = self.state.lock().unwrap();
            state.0 += 1;
            let revision = state.0;
            state.1.insert(key.to_vec(), (value.to_vec(), revision));
        }

        fn counter(&self) -> u64 {
            let state = self.state.lock().unwrap();
            state.1.get(COUNTER.as_slice()).map_or(0, |(v, _)| {
                u64::from_be_bytes(v.as_slice().try_into().unwrap())
            })
        }

        /// The commit the backend makes: compare every read's
        /// mod_revision, then apply every write at a new revision.
        fn commit(&self, view: &View) -> Result<bool, Error> {
            let mut state = self.state.lock().unwrap();
            let unchanged = view
                .reads
                .iter()
                .all(|(key, (_, mod_revision))| state.1.get(key).map(|f| f.1) == *mod_revision);
            if !unchanged {
                return Ok(false);
            }
            state.0 += 1;
            let revision = state.0;
            for (key, value) in &view.writes {
                match value {
                    Some(value) => state.1.insert(key.clone(), (value.clone(), revision)),
                    None => state.1.remove(key),
                };
            }
            Ok(true)
        }
    }

    const COUNTER: &[u8; 7] = b"counter";

    /// Adds one to the counter.
    fn increment(tx: &dyn Tx) -> Result<(), Fail> {
        let now = tx
            .get(Tree::Meta, COUNTER)?
            .map_or(0, |v| u64::from_be_bytes(v.as_slice().try_into().unwrap()));
        tx.put(Tree::Meta, COUNTER, &(now + 1).to_be_bytes())
    }

    type Body = Box<dyn Fn(&dyn Tx) -> Result<(), Fail> + Send + Sync>;

    /// Runs `bodies` as one group (the first the leader) on `etcd`, with
    /// `before_commit` run before each attempt's commit (attempt, etcd).
    fn run_group(
        etcd: &Arc<FakeEtcd>,
        bodies: Vec<Body>,
        before_commit: impl Fn(u32, &FakeEtcd) + Send + Sync + 'static,
    ) -> Vec<(Ran, Outcome)> {
        let group = Group::new();
        for _ in 1..bodies.len() {
            group.join(MAX_MEMBERS).unwrap();
        }
        let before_commit = Arc::new(before_commit);
        let members: Vec<_> = bodies
            .into_iter()
            .enumerate()
            .map(|(index, body)| {
                let (group, etcd, before_commit) =
                    (group.clone(), etcd.clone(), before_commit.clone());
                std::thread::spawn(move || {
                    let commit = |view: &View, attempt: u32, _members: usize| {
                        before_commit(attempt, &etcd);
                        etcd.commit(view)
                    };
                    let commit: Option<&Commit<'_>> = (index == 0).then_some(&commit);
                    group.take_part(index, etcd.as_ref(), &*body, commit)
                })
            })
            .collect();
        group.close(etcd.as_ref());
        members.into_iter().map(|m| m.join().unwrap()).collect()
    }

    fn committed(outcome: &Outcome) -> bool {
        matches!(outcome, Outcome::Committed)
    }

    #[test]
    fn members_run_in_turn_each_seeing_the_writes_before_it_and_commit_once() {
        let etcd = Arc::new(FakeEtcd::default());
        let bodies: Vec<Body> = (0..5).map(|_| Box::new(increment) as Body).collect();
        let results = run_group(&etcd, bodies, |_, _| {});
        for (ran, outcome) in &results {
            assert!(matches!(ran, Ran::Done) && committed(outcome));
        }
        assert_eq!(etcd.counter(), 5, "five increments, none lost");
        assert_eq!(etcd.state.lock().unwrap().0, 1, "one etcd transaction");
    }

    #[test]
    fn a_write_by_another_process_makes_every_member_run_again() {
        let etcd = Arc::new(FakeEtcd::default());
        let bodies: Vec<Body> = (0..3).map(|_| Box::new(increment) as Body).collect();
        // Before the first commit, another process sets the counter to 10:
        // the group's read is stale, so nothing of it may be applied.
        let results = run_group(&etcd, bodies, |attempt, etcd| {
            if attempt == 0 {
                etcd.put(COUNTER, &10u64.to_be_bytes());
            }
        });
        assert!(results.iter().all(|(_, outcome)| committed(outcome)));
        assert_eq!(
            etcd.counter(),
            13,
            "the other write, then the group's three"
        );
    }

    #[test]
    fn a_member_that_panics_or_is_refused_changes_nothing_and_the_others_commit() {
        let etcd = Arc::new(FakeEtcd::default());
        let bodies: Vec<Body> = vec![
            Box::new(increment),
            Box::new(|_: &dyn Tx| -> Result<(), Fail> { panic!("a bug in a rule") }),
            Box::new(|tx: &dyn Tx| {
                increment(tx)?;
                Err(Fail::Abort(Error::internal("refused after writing")))
            }),
            Box::new(increment),
        ];
        let results = run_group(&etcd, bodies, |_, _| {});
        assert!(matches!(results[0].0, Ran::Done));
        assert!(matches!(&results[1].0, Ran::Aborted(e) if e.message.contains("panicked")));
        assert!(matches!(results[2].0, Ran::Aborted(_)));
        assert!(matches!(results[3].0, Ran::Done));
        assert!(results.iter().all(|(_, outcome)| committed(outcome)));
        assert_eq!(
            etcd.counter(),
            2,
            "only the two members that succeeded wrote"
        );
    }

    #[test]
    fn a_group_whose_revision_cannot_be_read_fails_at_once_and_runs_nothing() {
        let etcd = Arc::new(FakeEtcd {
            unreachable: true,
            ..FakeEtcd::default()
        });
        let bodies: Vec<Body> = (0..3).map(|_| Box::new(increment) as Body).collect();
        let results = run_group(&etcd, bodies, |_, _| panic!("nothing to commit"));
        for (ran, outcome) in &results {
            assert!(matches!(ran, Ran::Deferred));
            assert!(
                matches!(outcome, Outcome::Failed(e) if e.message.contains("cannot be reached"))
            );
        }
        assert_eq!(etcd.counter(), 0);
    }
}
