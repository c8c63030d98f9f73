//! Reads from a mirror: the trees every call reads (keys, aliases, the
//! per-key alias index, meta) held in memory, fed by an etcd watch, and
//! read linearizably as Kubernetes reads from its watch cache (KEP 2340).
//!
//! The mirror loads the trees at one etcd revision, then applies every
//! event of a watch from the next revision; each watch response is applied
//! whole under one lock, and etcd never splits one revision's events
//! across responses, so the mirror always holds the state at one revision:
//! a read never sees half a transaction.
//!
//! A read must see every write acknowledged before it began, by any
//! instance. So before answering, it asks etcd for its current revision
//! (one linearizable range), and waits until the mirror has applied that
//! revision: the mirror's revision is the newest event it applied, and
//! events come in revision order. When the watch has delivered nothing
//! since (the last writes were elsewhere in etcd), the feeder asks the
//! watch for progress, whose answer says the mirror is caught up; but only
//! from etcd 3.4.25 and 3.5.8 on: earlier versions may answer a watch that
//! is still catching up with a revision ahead of the events it has yet to
//! send (etcd issue 15220; Kubernetes reads from its watch cache only on
//! the fixed versions for the same reason). On those, a read waits for
//! events only, and briefly. The revision check is shared: the
//! readers that arrive while one is under way all wait for the next, which
//! starts after every one of them arrived (so it is recent enough for each),
//! and one etcd round trip serves them all. A read that cannot be served so
//! within [`CATCH_UP`] (the watch is down, etcd slow) is read from etcd as
//! before: the mirror never answers with something stale.
//!
//! A call's read waits for all this without holding a thread
//! ([`Mirror::caught_up`], awaited on the call's own task), then reads the
//! mirror on the call's thread ([`Mirror::state_at`]); only a read that
//! needs a tree the mirror does not hold goes to a blocking thread and etcd.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use super::client::{Auth, AuthChannel};
use super::etcdserverpb as pb;
use super::etcdserverpb::kv_client::KvClient;
use super::etcdserverpb::maintenance_client::MaintenanceClient;
use super::etcdserverpb::watch_client::WatchClient;
use crate::domain::Error;
use crate::store::backend::{Entries, Fail, Tree, Tx};

/// The trees the mirror holds: what calls read. The change log, the audit
/// log, request records and schedules are read from etcd.
pub(super) const MIRRORED: [Tree; 4] = [Tree::Keys, Tree::Aliases, Tree::KeyAliases, Tree::Meta];

/// How long a read waits for the mirror to catch up before reading etcd.
const CATCH_UP: Duration = Duration::from_secs(1);
/// The same, on an etcd whose progress answers cannot be trusted: nothing
/// but an event of this prefix moves the mirror then.
const CATCH_UP_ON_EVENTS: Duration = Duration::from_millis(50);
/// Entries per range while loading.
const LOAD_PAGE: i64 = 1000;

/// What the mirror holds: every entry of the mirrored trees at `revision`.
#[derive(Default)]
pub(super) struct State {
    /// etcd key -> value.
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Counts the changes to `entries`: two reads that find the same
    /// version read the same state.
    version: u64,
}

/// The revision applied, and whether the watch is live.
#[derive(Default, Clone, Copy)]
struct Applied {
    revision: i64,
    live: bool,
    /// Whether etcd's progress answers can be trusted (its version).
    progress: bool,
}

/// Ends a batch of the revision check with its answer, when dropped.
struct BatchEnd<'a> {
    mirror: &'a Mirror,
    batch: u64,
    answer: Result<i64, Error>,
}

impl Drop for BatchEnd<'_> {
    fn drop(&mut self) {
        let answer = std::mem::replace(&mut self.answer, Ok(0));
        let mut check = self.mirror.check.lock().unwrap_or_else(|p| p.into_inner());
        check.running = false;
        check.done = self.batch;
        check.answer = Some(answer);
        self.mirror.checked.notify_waiters();
    }
}

/// The shared revision check (see the module's documentation).
#[derive(Default)]
struct Check {
    /// The batch that readers arriving now join.
    next: u64,
    /// Whether a batch's check is under way.
    running: bool,
    /// The last batch checked, and what etcd said.
    done: u64,
    answer: Option<Result<i64, Error>>,
}

pub(super) struct Mirror {
    /// The etcd key ranges mirrored.
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    state: RwLock<State>,
    applied: Mutex<Applied>,
    /// Wakes the readers waiting for `applied` to move.
    advanced: tokio::sync::Notify,
    check: Mutex<Check>,
    /// Wakes the readers waiting for a revision check to end.
    checked: tokio::sync::Notify,
    /// Asks the feeder to request the watch's progress.
    progress: tokio::sync::Notify,
}

impl Mirror {
    pub(super) fn new(ranges: Vec<(Vec<u8>, Vec<u8>)>) -> Mirror {
        Mirror {
            ranges,
            state: RwLock::default(),
            applied: Mutex::default(),
            advanced: tokio::sync::Notify::new(),
            check: Mutex::default(),
            checked: tokio::sync::Notify::new(),
            progress: tokio::sync::Notify::new(),
        }
    }

    /// Whether `key` (an etcd key) is in a mirrored tree.
    pub(super) fn holds(&self, key: &[u8]) -> bool {
        self.ranges
            .iter()
            .any(|(from, to)| key >= from.as_slice() && key < to.as_slice())
    }

    fn applied(&self) -> Applied {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_applied(&self, applied: Applied) {
        *self.applied.lock().unwrap_or_else(|p| p.into_inner()) = applied;
        self.advanced.notify_waiters();
    }

    /// Waits, without holding a thread, until the mirror has caught up with
    /// every write acknowledged before this call: until it has applied
    /// etcd's current revision, from a check that started after this call
    /// did ([`Mirror::current_revision`]; `latest` asks etcd). Answers that
    /// revision, which [`Mirror::state_at`] then reads; None when the mirror
    /// cannot catch up in time (read etcd instead).
    pub(super) async fn caught_up<F, Fut>(&self, latest: F) -> Option<i64>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<i64, Error>>,
    {
        if !self.applied().live {
            return None;
        }
        let target = self.current_revision(latest).await.ok()?;
        let patience = match self.applied().progress {
            true => CATCH_UP,
            false => CATCH_UP_ON_EVENTS,
        };
        let deadline = Instant::now() + patience;
        loop {
            // Registered before looking, so no advance is missed between.
            let advanced = self.advanced.notified();
            tokio::pin!(advanced);
            advanced.as_mut().enable();
            let applied = self.applied();
            if !applied.live {
                return None;
            }
            if applied.revision >= target {
                return Some(target);
            }
            if applied.progress {
                self.progress.notify_one();
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), advanced).await;
        }
    }

    /// The mirror, if it is live and has applied `revision` (an answer of
    /// [`Mirror::caught_up`]). The state is read under its lock and
    /// `applied` moves only after the state has, so what this answers holds
    /// at least `revision`.
    pub(super) fn state_at(&self, revision: i64) -> Option<RwLockReadGuard<'_, State>> {
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        let applied = self.applied();
        (applied.live && applied.revision >= revision).then_some(state)
    }

    /// etcd's revision, from a check that started after this call did,
    /// shared with every reader waiting for it. A reader waits at most
    /// [`CATCH_UP`] for another's check; then it gives up (and reads etcd
    /// itself). If the task is dropped while its check runs, the batch ends
    /// (with an error) all the same, and the readers waiting for it wake.
    async fn current_revision<F, Fut>(&self, latest: F) -> Result<i64, Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<i64, Error>>,
    {
        let deadline = Instant::now() + CATCH_UP;
        let mine = self.check.lock().unwrap_or_else(|p| p.into_inner()).next;
        let mut latest = Some(latest);
        loop {
            let checked = self.checked.notified();
            tokio::pin!(checked);
            checked.as_mut().enable();
            let lead = {
                let mut check = self.check.lock().unwrap_or_else(|p| p.into_inner());
                if check.done >= mine && check.answer.is_some() {
                    return check.answer.clone().expect("checked");
                }
                match (check.running, latest.take()) {
                    (false, Some(latest)) => {
                        let batch = check.next.max(mine);
                        check.next = batch + 1;
                        check.running = true;
                        Some((batch, latest))
                    }
                    (_, unused) => {
                        latest = unused;
                        None
                    }
                }
            };
            if let Some((batch, latest)) = lead {
                let mut ending = BatchEnd {
                    mirror: self,
                    batch,
                    answer: Err(Error::internal("the revision check did not finish")),
                };
                ending.answer = latest().await;
                drop(ending);
                continue;
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| Error::internal("the revision check took too long"))?;
            tokio::time::timeout(left, checked)
                .await
                .map_err(|_| Error::internal("the revision check took too long"))?;
        }
    }

    /// Loads the mirrored trees at one revision, then follows the watch
    /// from the next one; again from the start whenever the watch ends.
    pub(super) async fn feed(
        self: Arc<Self>,
        mut kv: KvClient<AuthChannel>,
        mut watch: WatchClient<AuthChannel>,
        mut maintenance: MaintenanceClient<AuthChannel>,
        watched: (Vec<u8>, Vec<u8>),
        auth: Arc<Auth>,
    ) {
        loop {
            let progress = match maintenance.status(pb::StatusRequest {}).await {
                Ok(status) => progress_is_sound(&status.into_inner().version),
                Err(status) => {
                    auth.renewed(&status).await;
                    false
                }
            };
            match self.load(&mut kv, &auth, progress).await {
                Some(revision) => {
                    self.follow(&mut watch, &watched, revision + 1, &auth).await;
                }
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            self.set_applied(Applied {
                live: false,
                ..self.applied()
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reads every mirrored tree at one revision into the mirror; that
    /// revision, or None if etcd did not answer.
    async fn load(
        &self,
        kv: &mut KvClient<AuthChannel>,
        auth: &Auth,
        progress: bool,
    ) -> Option<i64> {
        let mut entries = BTreeMap::new();
        let mut revision = 0;
        for (from, to) in &self.ranges {
            let mut start = from.clone();
            loop {
                let request = pb::RangeRequest {
                    key: start.clone(),
                    range_end: to.clone(),
                    limit: LOAD_PAGE,
                    revision,
                    ..Default::default()
                };
                let response = super::client::range_once(kv, auth, request).await?;
                if revision == 0 {
                    revision = response.header.as_ref()?.revision;
                }
                let more = response.more;
                for found in response.kvs {
                    start = found.key.clone();
                    start.push(0);
                    entries.insert(found.key, found.value);
                }
                if !more {
                    break;
                }
            }
        }
        let old = {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.version += 1;
            std::mem::replace(&mut state.entries, entries)
        };
        // Freed without the lock held.
        drop(old);
        self.set_applied(Applied {
            revision,
            live: true,
            progress,
        });
        Some(revision)
    }

    /// Applies the watch's events from `next` on, until the watch ends.
    async fn follow(
        &self,
        watch: &mut WatchClient<AuthChannel>,
        (key, range_end): &(Vec<u8>, Vec<u8>),
        next: i64,
        auth: &Auth,
    ) {
        use pb::watch_request::RequestUnion;
        let (requests, stream) = tokio::sync::mpsc::channel(4);
        let create = pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                start_revision: next,
                ..Default::default()
            })),
        };
        if requests.send(create).await.is_err() {
            return;
        }
        let mut events = match watch
            .watch(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await
        {
            Ok(response) => response.into_inner(),
            Err(status) => {
                auth.renewed(&status).await;
                return;
            }
        };
        loop {
            let message = tokio::select! {
                message = events.message() => message,
                () = self.progress.notified() => {
                    let progress = pb::WatchRequest {
                        request_union: Some(RequestUnion::ProgressRequest(
                            pb::WatchProgressRequest {},
                        )),
                    };
                    if requests.try_send(progress).is_err() && requests.is_closed() {
                        return;
                    }
                    continue;
                }
            };
            let Ok(Some(message)) = message else { return };
            if message.canceled || message.compact_revision > 0 {
                // Compacted past what the mirror holds, or cancelled:
                // load again.
                return;
            }
            if message.created {
                continue;
            }
            self.apply(message);
        }
    }

    /// One watch response, applied whole.
    fn apply(&self, message: pb::WatchResponse) {
        let applied = self.applied();
        let mut revision = applied.revision;
        if message.events.is_empty() && applied.progress {
            // A progress answer: every event up to its revision has come.
            if let Some(header) = &message.header {
                revision = revision.max(header.revision);
            }
        } else {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.version += 1;
            for event in message.events {
                let Some(found) = event.kv else { continue };
                revision = revision.max(found.mod_revision);
                if !self.holds(&found.key) {
                    continue;
                }
                match super::mvccpb::event::EventType::try_from(event.r#type) {
                    Ok(super::mvccpb::event::EventType::Delete) => {
                        state.entries.remove(&found.key);
                    }
                    _ => {
                        state.entries.insert(found.key, found.value);
                    }
                }
            }
        }
        self.set_applied(Applied {
            revision,
            ..applied
        });
    }
}

/// Whether an etcd of `version` answers a progress request only once the
/// watch has sent every event up to the revision it names (3.4.25, 3.5.8
/// and later: etcd issue 15220).
fn progress_is_sound(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let (major, minor, patch) = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    match (major, minor) {
        (3, 4) => patch >= 25,
        (3, 5) => patch >= 8,
        (3, minor) => minor > 5,
        (major, _) => major > 3,
    }
}

impl State {
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    /// Entries in `[from, to)`, at most `limit`, their keys without the
    /// first `skip` bytes.
    pub(super) fn scan(&self, from: &[u8], to: &[u8], limit: usize, skip: usize) -> Entries {
        self.entries
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .take(limit)
            .map(|(key, value)| (key[skip..].to_vec(), value.clone()))
            .collect()
    }
}

/// A read-only transaction over the mirror at one revision; a read of a
/// tree the mirror does not hold marks it `missed` (the caller then runs
/// the body against etcd instead).
pub(super) struct MirrorTx<'a> {
    pub(super) state: &'a State,
    pub(super) mirror: &'a Mirror,
    pub(super) key: &'a dyn Fn(Tree, &[u8]) -> Vec<u8>,
    pub(super) missed: std::cell::Cell<bool>,
}

impl Tx for MirrorTx<'_> {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Fail> {
        let key = (self.key)(tree, key);
        if !self.mirror.holds(&key) {
            self.missed.set(true);
            return Err(Fail::Conflict);
        }
        Ok(self.state.get(&key))
    }

    fn put(&self, _: Tree, _: &[u8], _: &[u8]) -> Result<(), Fail> {
        Err(Fail::Abort(Error::internal("a read wrote")))
    }

    fn delete(&self, _: Tree, _: &[u8]) -> Result<(), Fail> {
        Err(Fail::Abort(Error::internal("a read wrote")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live mirror of `/p/` at revision 5 (progress trusted).
    fn live_at_5() -> Arc<Mirror> {
        let mirror = Arc::new(Mirror::new(vec![(b"/p/".to_vec(), b"/p0".to_vec())]));
        mirror.set_applied(Applied {
            revision: 5,
            live: true,
            progress: true,
        });
        mirror
    }

    /// A watch response: `/p/k` = `v` at revision 6.
    fn put_at_6() -> pb::WatchResponse {
        use super::super::mvccpb::{Event, KeyValue};
        pb::WatchResponse {
            events: vec![Event {
                r#type: 0,
                kv: Some(KeyValue {
                    key: b"/p/k".to_vec(),
                    value: b"v".to_vec(),
                    mod_revision: 6,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn progress_is_trusted_only_where_etcd_fixed_it() {
        for (version, sound) in [
            ("3.4.23", false),
            ("3.4.25", true),
            ("3.5.7", false),
            ("3.5.8", true),
            ("3.6.0", true),
            ("4.0.0", true),
            ("3.3.27", false),
            ("", false),
            ("garbage", false),
        ] {
            assert_eq!(progress_is_sound(version), sound, "{version}");
        }
    }

    /// Readers that arrive while a check is under way share the next one,
    /// which starts after all of them: each answer is at least the revision
    /// when its reader arrived, and there are fewer checks than readers,
    /// whether a reader waits as a task or blocks a thread on it (as
    /// EtcdBackend's sync reads do); and a task dropped in the middle of its
    /// check does not leave the others waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_share_revision_checks_with_threads_and_a_dropped_check_ends_its_batch() {
        use std::sync::atomic::{AtomicI64, Ordering};
        let mirror = Arc::new(Mirror::new(Vec::new()));
        let revision = Arc::new(AtomicI64::new(0));
        let checks = Arc::new(AtomicI64::new(0));
        fn check(revision: &AtomicI64, checks: &AtomicI64) -> Result<i64, Error> {
            checks.fetch_add(1, Ordering::SeqCst);
            Ok(revision.load(Ordering::SeqCst))
        }
        let mut readers = tokio::task::JoinSet::new();
        for task in 0..32 {
            let (mirror, revision, checks) = (mirror.clone(), revision.clone(), checks.clone());
            readers.spawn(async move {
                for _ in 0..50 {
                    let written = revision.fetch_add(1, Ordering::SeqCst) + 1;
                    let seen = match task % 4 {
                        // A quarter wait on blocking threads.
                        0 => {
                            let (mirror, revision, checks) =
                                (mirror.clone(), revision.clone(), checks.clone());
                            tokio::task::spawn_blocking(move || {
                                tokio::runtime::Handle::current().block_on(
                                    mirror.current_revision(
                                        || async move { check(&revision, &checks) },
                                    ),
                                )
                            })
                            .await
                            .unwrap()
                        }
                        _ => {
                            let (revision, checks) = (revision.clone(), checks.clone());
                            mirror
                                .current_revision(|| async move {
                                    tokio::time::sleep(Duration::from_micros(200)).await;
                                    check(&revision, &checks)
                                })
                                .await
                        }
                    }
                    .unwrap();
                    assert!(seen >= written, "read {seen} after writing {written}");
                }
            });
        }
        while let Some(done) = readers.join_next().await {
            done.unwrap();
        }
        let counted = checks.load(Ordering::SeqCst);
        assert!(counted < 32 * 50, "{counted} checks for {} reads", 32 * 50);

        // A reader whose check never finishes, dropped mid-check.
        let stuck = {
            let mirror = mirror.clone();
            tokio::spawn(async move {
                mirror
                    .current_revision(std::future::pending::<Result<i64, Error>>)
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        stuck.abort();
        let _ = stuck.await;
        let after = mirror.current_revision(|| async { Ok(99) }).await.unwrap();
        assert_eq!(after, 99, "a new check runs once the dropped one ended");
    }

    /// A task waits until the mirror has applied the revision etcd named,
    /// then reads the state at it; not when the watch is down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_waits_for_the_revision_etcd_names_and_reads_at_it() {
        let mirror = live_at_5();
        let late = mirror.clone();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            late.apply(put_at_6());
        });
        let mark = mirror.caught_up(|| async { Ok(6) }).await;
        assert_eq!(mark, Some(6), "the event arrives");
        {
            let state = mirror.state_at(6).expect("applied");
            assert_eq!(state.get(b"/p/k"), Some(b"v".to_vec()));
        }
        writer.await.unwrap();
        assert!(mirror.state_at(7).is_none(), "not yet applied");
        mirror.set_applied(Applied {
            live: false,
            ..mirror.applied()
        });
        assert!(mirror.caught_up(|| async { Ok(6) }).await.is_none());
        assert!(mirror.state_at(6).is_none(), "the watch is down");
    }
}
