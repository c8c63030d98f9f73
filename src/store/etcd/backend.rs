//! The etcd backend: every tree is a range of etcd keys
//! (`{prefix}{tree}/{key}`), and every transaction one etcd transaction.
//!
//! A transaction's body runs against a snapshot: its reads are etcd ranges
//! at one revision, remembered with their `mod_revision` (absent keys as
//! such); its writes are buffered. One process's writing transactions
//! commit together (group.rs): each runs over the group's view, and the
//! group's commit is one etcd `Txn` that compares every key any member
//! read on its `mod_revision` (an absent key on `create_revision == 0`) and
//! applies every write. If another process got there first, the compare
//! fails, nothing is applied, and the members run again (bounded). Reads
//! outside writes bypass the groups.
//!
//! etcd has made a transaction durable (replicated and synced by a quorum)
//! when it answers, so there is nothing to flush. etcd being unreachable is
//! not a failure of the store: calls fail (UNAVAILABLE) until it is back.
//!
//! The client is async (tonic); the backend interface is blocking, so calls
//! run on a runtime of the backend's own and the caller waits.
//!
//! Other processes' commits reach this process's watchers through an etcd
//! watch on the accounts' revision counters (follower.rs); the instances
//! take turns at maintenance through a lease (lease.rs); the client's
//! connection, TLS and sign-in are client.rs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

use super::client::{Auth, AuthChannel, TokenInterceptor};
use super::etcdserverpb as pb;
use super::etcdserverpb::auth_client::AuthClient;
use super::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use super::etcdserverpb::kv_client::KvClient;
use super::etcdserverpb::lease_client::LeaseClient;
use super::etcdserverpb::request_op::Request;
use super::etcdserverpb::watch_client::WatchClient;
use super::follower::{follow, Counters};
use super::group::{self, Group, Outcome, Ran, Read, Source, View, MAX_TXN_OPS};
use super::lease::{hold_maintenance, MAINTENANCE_KEY};
use super::mirror::{Mirror, MirrorTx, MIRRORED};
use crate::domain::{Error, Reason};
use crate::store::backend::{
    Backend, CatchingUp, Entries, Fail, FlushStats, Flushing, Reads, RemoteRequest, RetryCause,
    StoreEvent, Tree, Tx,
};
use crate::store::failure::StoreHealth;
use crate::store::feed::Feed;

/// Runs of one transaction before it gives up on conflicts.
const MAX_RUNS: usize = 64;
/// How long one call to etcd may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub use super::client::EtcdConfig;

pub struct EtcdBackend {
    /// Taken when dropped.
    runtime: Option<tokio::runtime::Runtime>,
    kv: KvClient<AuthChannel>,
    kv_channel: AuthChannel,
    /// Signs in again when etcd says the token is no longer good.
    auth: Arc<Auth>,
    prefix: Vec<u8>,
    /// Groups of writing transactions of this process commit one at a time
    /// (group.rs), under this lock.
    writer: Mutex<()>,
    /// The group that takes new members now, if any.
    forming: Mutex<Option<Arc<Group>>>,
    /// What a member of a group has cost lately, in etcd operations (the
    /// larger of writes and compares) times 16, averaged: a group takes as
    /// many members as fit etcd's limits at that cost, so that few are left
    /// out.
    member_cost: std::sync::atomic::AtomicUsize,
    /// Whether this process holds the maintenance lease now.
    maintaining: Arc<std::sync::atomic::AtomicBool>,
    /// etcd's revision at the last [`Backend::compact_history`]: the next
    /// one compacts to it.
    compact_next: std::sync::atomic::AtomicI64,
    /// The etcd lease it competes with (0: none yet), revoked when the
    /// backend is dropped so that another instance takes over at once.
    lease: Arc<std::sync::atomic::AtomicI64>,
    /// Whether the competition for it has started.
    competing: std::sync::atomic::AtomicBool,
    failure: StoreHealth,
    stats: Arc<FlushStats>,
    /// The trees calls read, in memory, fed by a watch (mirror.rs).
    mirror: Arc<Mirror>,
}

/// What a member that wrote nothing is told when its group's commit failed.
fn changed_nothing(error: Error) -> Error {
    match error.reason {
        Reason::WRITE_OUTCOME_UNKNOWN => unavailable("commit", "no answer"),
        _ => error,
    }
}

fn too_many_conflicts() -> Error {
    Error::new(
        Reason::STORE_UNAVAILABLE,
        format!(
            "a transaction met a conflicting write {MAX_RUNS} times in a row; nothing was \
             changed: retry"
        ),
    )
}

pub(super) fn unavailable(what: &str, error: impl std::fmt::Display) -> Error {
    Error::new(
        Reason::STORE_UNAVAILABLE,
        format!("etcd {what} failed ({error}); nothing was changed: retry shortly"),
    )
}

impl EtcdBackend {
    /// Connects (lazily: an etcd that is down now fails the first calls,
    /// not the start).
    pub fn connect(config: &EtcdConfig) -> Result<EtcdBackend, Error> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aliasd-etcd")
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("etcd client runtime: {e}")))?;
        let endpoints = config
            .endpoints
            .iter()
            .map(|url| {
                let bad = |e: &dyn std::fmt::Display| {
                    Error::internal(format!("etcd endpoint {url:?}: {e}"))
                };
                let mut endpoint = tonic::transport::Endpoint::from_shared(url.clone())
                    .map_err(|e| bad(&e))?
                    .connect_timeout(CALL_TIMEOUT)
                    .timeout(CALL_TIMEOUT);
                if url.starts_with("https://") {
                    endpoint = endpoint.tls_config(config.tls()?).map_err(|e| bad(&e))?;
                }
                Ok(endpoint)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(Error::internal("no etcd endpoint given"));
        }
        let plain = {
            let _entered = runtime.enter();
            Channel::balance_list(endpoints.into_iter())
        };
        let auth = Arc::new(Auth {
            user: config.user.clone(),
            sign_ins: Default::default(),
            token: Arc::new(std::sync::RwLock::new(None)),
            client: AuthClient::new(plain.clone()),
        });
        let channel = tonic::service::interceptor::InterceptedService::new(
            plain,
            TokenInterceptor(auth.token.clone()),
        );
        if auth.user.is_some() {
            let signing_in = auth.clone();
            runtime.block_on(async move { signing_in.sign_in().await })?;
        }
        let prefix = config.prefix.as_bytes().to_vec();
        let mirrored = MIRRORED
            .iter()
            .map(|tree| {
                let from = tree_key(&prefix, *tree, b"");
                let to = crate::store::layout::prefix_end(&from);
                (from, to)
            })
            .collect();
        Ok(EtcdBackend {
            runtime: Some(runtime),
            mirror: Arc::new(Mirror::new(mirrored)),
            kv: KvClient::new(channel.clone()),
            kv_channel: channel,
            auth,
            prefix,
            writer: Mutex::new(()),
            forming: Mutex::new(None),
            member_cost: std::sync::atomic::AtomicUsize::new(16 * 16),
            maintaining: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            compact_next: std::sync::atomic::AtomicI64::new(0),
            lease: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            competing: std::sync::atomic::AtomicBool::new(false),
            failure: StoreHealth::new(),
            stats: Arc::new(FlushStats::default()),
        })
    }

    /// How many times it has signed in to etcd (user/password auth).
    pub fn sign_ins(&self) -> u64 {
        self.auth
            .sign_ins
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether nothing at all is stored under the prefix.
    pub fn is_empty(&self) -> Result<bool, Error> {
        let (found, _) = self.range(
            self.prefix.clone(),
            crate::store::layout::prefix_end(&self.prefix),
            1,
            0,
        )?;
        Ok(found.is_empty())
    }

    /// Deletes everything under the prefix (a restore that failed).
    pub fn delete_everything(&self) -> Result<(), Error> {
        let mut kv = self.kv.clone();
        let request = pb::DeleteRangeRequest {
            key: self.prefix.clone(),
            range_end: crate::store::layout::prefix_end(&self.prefix),
            prev_kv: false,
        };
        self.run(async move { kv.delete_range(request).await })
            .map(drop)
            .map_err(|status| unavailable("delete", status.message()))
    }

    /// Runs `future` on the backend's runtime and waits for it (from any
    /// thread, async or not).
    fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.runtime
            .as_ref()
            .expect("the runtime is there until the backend is dropped")
            .spawn(async move {
                let _ = done.send(future.await);
            });
        result
            .recv()
            .expect("the etcd runtime runs every task it is given to the end")
    }

    /// The etcd key of `key` in `tree`.
    fn key(&self, tree: Tree, key: &[u8]) -> Vec<u8> {
        tree_key(&self.prefix, tree, key)
    }

    /// The mirror, caught up with every acknowledged write (None: read
    /// etcd itself; see mirror.rs).
    fn fresh_mirror(&self) -> Option<std::sync::RwLockReadGuard<'_, super::mirror::State>> {
        if let Some((mark, version)) = self.pinned() {
            let state = self
                .mirror
                .state_at(mark)
                .filter(|state| state.version() == version);
            if state.is_none() {
                MISSED.set(Some(Missed::Moved));
            }
            return state;
        }
        if self.at_one_revision() {
            return None;
        }
        // On a blocking thread: the same wait as a call's, run on the etcd
        // runtime.
        let mirror = self.mirror.clone();
        let check = self.revision_check();
        let mark = self.run(async move { mirror.caught_up(|| check).await });
        let fresh = mark.and_then(|mark| self.mirror.state_at(mark));
        if fresh.is_none() {
            self.stats.report(&StoreEvent::MirrorRead(false));
        }
        fresh
    }

    /// The mark and mirror version this thread's reads are pinned to
    /// ([`Backend::in_memory`]).
    fn pinned(&self) -> Option<(i64, u64)> {
        PINNED.get().and_then(|(backend, mark, version)| {
            (backend == self as *const Self as usize).then_some((mark, version))
        })
    }

    /// The revision this thread's reads are made at, in
    /// [`Backend::one_state`]: 0 (the latest) for the first, then the
    /// first's; 0 outside it.
    fn read_revision(&self) -> i64 {
        match ONE_REVISION.get() {
            Some((backend, revision)) if backend == self as *const Self as usize => revision,
            _ => 0,
        }
    }

    /// Notes the revision a read was made at: the first read in
    /// [`Backend::one_state`] fixes the revision of the rest.
    fn read_at(&self, revision: i64) {
        if let Some((backend, 0)) = ONE_REVISION.get() {
            if backend == self as *const Self as usize && revision > 0 {
                ONE_REVISION.set(Some((backend, revision)));
            }
        }
    }

    /// Whether this thread's reads are pinned to one etcd revision (the
    /// mirror, at whatever revision it has reached, is not used then).
    fn at_one_revision(&self) -> bool {
        ONE_REVISION
            .get()
            .is_some_and(|(backend, _)| backend == self as *const Self as usize)
    }

    /// Before a read goes to etcd: refused on a thread pinned to the mirror
    /// (an async thread must not wait on the network), which then runs the
    /// whole read again off the async threads.
    fn may_read_etcd(&self) -> Result<(), Error> {
        match self.pinned() {
            Some(_) => {
                // A miss of the mirror that moved is a reason to try again
                // over the mirror, not to give up on it.
                if MISSED.get().is_none() {
                    MISSED.set(Some(Missed::Beyond));
                }
                Err(Error::internal(
                    "a read beyond the mirror on an async thread",
                ))
            }
            None => Ok(()),
        }
    }

    /// Counts a read the mirror answered.
    fn served_by_mirror(&self) {
        self.stats.report(&StoreEvent::MirrorRead(true));
    }

    /// One range: its entries and the revision it was read at.
    fn range(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        limit: i64,
        revision: i64,
    ) -> Result<(Vec<Found>, i64), Error> {
        self.run(self.range_future(key, range_end, limit, revision))
    }

    /// etcd's current revision (one linearizable range of one key), to run
    /// on the etcd runtime.
    fn revision_check(
        &self,
    ) -> impl std::future::Future<Output = Result<i64, Error>> + Send + 'static {
        let key = self.key(Tree::Meta, MAINTENANCE_KEY);
        let range = self.range_future(key, Vec::new(), 1, 0);
        async move { range.await.map(|(_, revision)| revision) }
    }

    /// [`EtcdBackend::range`], to run on the etcd runtime.
    fn range_future(
        &self,
        key: Vec<u8>,
        range_end: Vec<u8>,
        limit: i64,
        revision: i64,
    ) -> impl std::future::Future<Output = Result<(Vec<Found>, i64), Error>> + Send + 'static {
        let mut kv = self.kv.clone();
        let mut request = pb::RangeRequest {
            key,
            range_end,
            limit,
            revision,
            // What etcd holds at a past revision never changes, so the
            // member asked may answer it alone, without a round of the
            // cluster (a linearizable read's ReadIndex); a member that has
            // not applied that revision yet says so, and the read is made
            // linearizable.
            serializable: revision != 0,
            ..Default::default()
        };
        // A read changes nothing: tried again while the endpoints connect
        // (at start, or after a member went away).
        let auth = self.auth.clone();
        let stats = self.stats.clone();
        async move {
            let response = async move {
                let mut pause = Duration::from_millis(50);
                loop {
                    let answer =
                        timed(&stats, RemoteRequest::Range, kv.range(request.clone())).await;
                    let retry = match answer {
                        Err(status)
                            if request.serializable && status.code() == tonic::Code::OutOfRange =>
                        {
                            request.serializable = false;
                            RetryCause::NotYetApplied
                        }
                        Err(status)
                            if pause < Duration::from_secs(2) && auth.renewed(&status).await =>
                        {
                            pause *= 2;
                            RetryCause::TokenRenewed
                        }
                        Err(status)
                            if status.code() == tonic::Code::Unavailable
                                && pause < Duration::from_secs(2) =>
                        {
                            tokio::time::sleep(pause).await;
                            pause *= 2;
                            RetryCause::Unavailable
                        }
                        answer => return answer,
                    };
                    stats.report(&StoreEvent::Retry(retry));
                }
            }
            .await
            .map_err(|status| unavailable("read", status.message()))?
            .into_inner();
            let revision = response.header.map_or(0, |h| h.revision);
            Ok((
                response
                    .kvs
                    .into_iter()
                    .map(|kv| (kv.key, kv.value, kv.mod_revision))
                    .collect(),
                revision,
            ))
        }
    }

    /// The forming group, joined, or a new one led by the caller (index 0).
    fn join_group(&self) -> (Arc<Group>, usize) {
        let cost = self
            .member_cost
            .load(std::sync::atomic::Ordering::Relaxed)
            .max(1);
        // A tenth of etcd's limit is left for members that cost more.
        let limit = (MAX_TXN_OPS * 16 * 9 / 10 / cost).max(1);
        let mut forming = self.forming.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = forming.as_ref().and_then(|group| group.join(limit)) {
            let group = forming.as_ref().expect("joined").clone();
            return (group, index);
        }
        let group = Group::new();
        *forming = Some(group.clone());
        (group, 0)
    }

    /// Closes `group` to new members (the next caller starts another).
    fn close_group(&self, group: &Arc<Group>) {
        {
            // Out of `forming`, it takes no one else (they join under that
            // lock).
            let mut forming = self.forming.lock().unwrap_or_else(|p| p.into_inner());
            if forming.as_ref().is_some_and(|g| Arc::ptr_eq(g, group)) {
                *forming = None;
            }
        }
        group.close(self);
    }

    /// Commits a group's attempt: Ok(false) when another process changed
    /// what it read (after a pause that grows with the attempts), an error
    /// after too many such attempts.
    fn commit_group(&self, view: &View, attempt: u32, members: usize) -> Result<bool, Error> {
        if view.writes.is_empty() {
            // Reads and refusals only: they stand at the group's revision.
            return Ok(true);
        }
        let cost = view.writes.len().max(view.reads.len()) * 16 / members.max(1);
        let _ = self.member_cost.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |average| Some((average * 3 + cost.max(16)) / 4),
        );
        let started = std::time::Instant::now();
        if self.commit(view)? {
            // The commit is the durable write (etcd synced it).
            self.stats.flushed(members as u64, started.elapsed());
            return Ok(true);
        }
        self.stats.report(&StoreEvent::Conflict);
        if attempt as usize + 1 >= MAX_RUNS {
            return Err(too_many_conflicts());
        }
        let pause = Duration::from_millis(1 << attempt.min(6));
        std::thread::sleep(pause.min(Duration::from_millis(100)));
        Ok(false)
    }

    /// Follows the revision counters for `feed` from etcd revision `next`
    /// (0: from what they hold now); see [`follow`].
    pub(super) fn follow_from(&self, feed: Arc<Feed>, next: i64) {
        let from = self.key(Tree::Meta, b"");
        let counters = Counters {
            to: crate::store::layout::prefix_end(&from),
            from,
            feed,
        };
        let watch = WatchClient::new(self.kv_channel.clone());
        if let Some(runtime) = &self.runtime {
            runtime.spawn(follow(
                self.kv.clone(),
                watch,
                counters,
                next,
                self.auth.clone(),
            ));
        }
    }

    /// Commits a group's writes if nothing it read has changed: Ok(false)
    /// when something had.
    fn commit(&self, view: &View) -> Result<bool, Error> {
        let compare = view
            .reads
            .iter()
            .map(|(key, (_, mod_revision))| match mod_revision {
                Some(revision) => pb::Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Mod as i32,
                    key: key.clone(),
                    target_union: Some(TargetUnion::ModRevision(*revision)),
                    range_end: Vec::new(),
                },
                None => pb::Compare {
                    result: CompareResult::Equal as i32,
                    target: CompareTarget::Create as i32,
                    key: key.clone(),
                    target_union: Some(TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                },
            })
            .collect();
        let success = view
            .writes
            .iter()
            .map(|(key, value)| pb::RequestOp {
                request: Some(match value {
                    Some(value) => Request::RequestPut(pb::PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..Default::default()
                    }),
                    None => Request::RequestDeleteRange(pb::DeleteRangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    }),
                }),
            })
            .collect();
        let mut kv = self.kv.clone();
        let request = pb::TxnRequest {
            compare,
            success,
            failure: Vec::new(),
        };
        let auth = self.auth.clone();
        let stats = self.stats.clone();
        let answer = self.run(async move {
            match timed(&stats, RemoteRequest::Txn, kv.txn(request.clone())).await {
                // Refused for its token: not applied; once more, signed in.
                Err(status) if auth.renewed(&status).await => {
                    stats.report(&StoreEvent::Retry(RetryCause::TokenRenewed));
                    timed(&stats, RemoteRequest::Txn, kv.txn(request)).await
                }
                answer => answer,
            }
        });
        match answer {
            Ok(response) => Ok(response.into_inner().succeeded),
            // Refused as it stands (too large, too many operations, no
            // space, not allowed): etcd applied nothing.
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::InvalidArgument
                        | tonic::Code::ResourceExhausted
                        | tonic::Code::FailedPrecondition
                        | tonic::Code::PermissionDenied
                        | tonic::Code::Unauthenticated
                        | tonic::Code::OutOfRange
                ) =>
            {
                Err(unavailable("commit", status.message()))
            }
            // The request may have reached etcd and committed.
            Err(status) => Err(Error::new(
                Reason::WRITE_OUTCOME_UNKNOWN,
                format!(
                    "etcd did not answer the commit ({}): the change may or may not have been \
                     made. Retry with the same request_id; a change that was made is answered \
                     from its record.",
                    status.message()
                ),
            )),
        }
    }
}

/// The etcd key of `key` in `tree` under `prefix`: `{prefix}{tree}/{key}`.
fn tree_key(prefix: &[u8], tree: Tree, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 24 + key.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(tree.name().as_bytes());
    out.push(b'/');
    out.extend_from_slice(key);
    out
}

/// One request to etcd, reported with how long it took and whether it
/// failed.
async fn timed<T>(
    stats: &FlushStats,
    request: RemoteRequest,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    let started = std::time::Instant::now();
    let answer = call.await;
    stats.report(&StoreEvent::Request {
        request,
        took: started.elapsed(),
        failed: answer.is_err(),
    });
    answer
}

/// An entry read: key, value, mod_revision.
type Found = (Vec<u8>, Vec<u8>, i64);

impl Source for EtcdBackend {
    fn read(&self, key: &[u8], revision: i64) -> Result<(Read, i64), Error> {
        let (found, at) = self.range(key.to_vec(), Vec::new(), 1, revision)?;
        let read = match found.into_iter().next() {
            Some((_, value, mod_revision)) => (Some(value), Some(mod_revision)),
            None => (None, None),
        };
        Ok((read, at))
    }

    fn latest_revision(&self) -> Result<i64, Error> {
        self.run(self.revision_check())
    }

    fn key(&self, tree: Tree, key: &[u8]) -> Vec<u8> {
        EtcdBackend::key(self, tree, key)
    }
}

thread_local! {
    /// The backend (its address), mark and mirror version this thread's
    /// reads are pinned to while [`Backend::in_memory`] runs a read on it.
    static PINNED: std::cell::Cell<Option<(usize, i64, u64)>> =
        const { std::cell::Cell::new(None) };
    /// Why a pinned read could not be answered from the mirror, if it could not.
    static MISSED: std::cell::Cell<Option<Missed>> = const { std::cell::Cell::new(None) };
    /// The backend (its address) whose reads on this thread are made at one
    /// etcd revision while [`Backend::one_state`] runs, and that revision (0
    /// until the first read fixes it).
    static ONE_REVISION: std::cell::Cell<Option<(usize, i64)>> =
        const { std::cell::Cell::new(None) };
}

/// Makes this thread's reads of a backend at one revision, until dropped.
struct AtOneRevision(Option<(usize, i64)>);

impl AtOneRevision {
    fn new(backend: &EtcdBackend) -> AtOneRevision {
        AtOneRevision(ONE_REVISION.replace(Some((backend as *const EtcdBackend as usize, 0))))
    }
}

impl Drop for AtOneRevision {
    fn drop(&mut self) {
        ONE_REVISION.set(self.0);
    }
}

/// Why a pinned read missed the mirror.
#[derive(Clone, Copy)]
enum Missed {
    /// The mirror moved on from the version the read was pinned to (or
    /// went down): the read may run again over it.
    Moved,
    /// The read needs what the mirror does not hold: it goes to etcd.
    Beyond,
}

/// Pins this thread's reads of a backend to one version of the mirror, at
/// or past a mark, until dropped (a panicking read included).
struct Pinned(Option<(usize, i64, u64)>);

impl Pinned {
    fn new(backend: &EtcdBackend, mark: i64, version: u64) -> Pinned {
        MISSED.set(None);
        let pin = (backend as *const EtcdBackend as usize, mark, version);
        Pinned(PINNED.replace(Some(pin)))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        PINNED.set(self.0);
    }
}

impl Reads for EtcdBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let key = self.key(tree, key);
        if self.mirror.holds(&key) {
            if let Some(mirror) = self.fresh_mirror() {
                self.served_by_mirror();
                return Ok(mirror.get(&key));
            }
        }
        self.may_read_etcd()?;
        let (found, revision) = self.range(key, Vec::new(), 1, self.read_revision())?;
        self.read_at(revision);
        Ok(found.into_iter().next().map(|(_, value, _)| value))
    }

    /// One read-only etcd transaction of ranges per 128 keys (etcd answers
    /// it as one linearizable read).
    fn get_many(&self, tree: Tree, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if MIRRORED.contains(&tree) {
            if let Some(mirror) = self.fresh_mirror() {
                self.served_by_mirror();
                return Ok(keys
                    .iter()
                    .map(|key| mirror.get(&self.key(tree, key)))
                    .collect());
            }
        }
        self.may_read_etcd()?;
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_TXN_OPS) {
            let success = chunk
                .iter()
                .map(|key| pb::RequestOp {
                    request: Some(Request::RequestRange(pb::RangeRequest {
                        key: self.key(tree, key),
                        limit: 1,
                        revision: self.read_revision(),
                        ..Default::default()
                    })),
                })
                .collect();
            let request = pb::TxnRequest {
                compare: Vec::new(),
                success,
                failure: Vec::new(),
            };
            let mut kv = self.kv.clone();
            let auth = self.auth.clone();
            let response = self
                .run(async move {
                    match kv.txn(request.clone()).await {
                        Err(status) if auth.renewed(&status).await => kv.txn(request).await,
                        answer => answer,
                    }
                })
                .map_err(|status| unavailable("read", status.message()))?
                .into_inner();
            // At revision 0 the ranges were read at the header's.
            self.read_at(response.header.as_ref().map_or(0, |h| h.revision));
            for answer in response.responses {
                let value = match answer.response {
                    Some(pb::response_op::Response::ResponseRange(range)) => {
                        range.kvs.into_iter().next().map(|kv| kv.value)
                    }
                    _ => return Err(unavailable("read", "etcd answered a range with another op")),
                };
                values.push(value);
            }
        }
        if values.len() != keys.len() {
            return Err(unavailable("read", "etcd answered fewer ranges than asked"));
        }
        Ok(values)
    }

    fn scan(
        &self,
        tree: Tree,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<Entries, Error> {
        let base = self.key(tree, b"");
        let from = self.key(tree, start);
        let to = match end {
            Some(end) => self.key(tree, end),
            None => crate::store::layout::prefix_end(&base),
        };
        let skip = base.len();
        if MIRRORED.contains(&tree) {
            if let Some(mirror) = self.fresh_mirror() {
                self.served_by_mirror();
                return Ok(mirror.scan(&from, &to, limit, skip));
            }
        }
        self.may_read_etcd()?;
        let (found, revision) = self.range(from, to, limit as i64, self.read_revision())?;
        self.read_at(revision);
        Ok(found
            .into_iter()
            .map(|(key, value, _)| (key[skip..].to_vec(), value))
            .collect())
    }
}

impl Backend for EtcdBackend {
    /// Joins this process's forming group of transactions (see group.rs)
    /// and runs the body in it; a body left out of one group runs in the
    /// next.
    fn transact(&self, body: &dyn Fn(&dyn Tx) -> Result<(), Fail>) -> Result<(), Error> {
        // Left out of a group twice (it did not fit), it runs in a group of
        // its own next, so that a large transaction is not left out again and
        // again.
        let mut left_out = 0;
        for _ in 0..MAX_RUNS {
            let (group, index) = match left_out >= 2 {
                true => (Group::new(), 0),
                false => self.join_group(),
            };
            let (ran, outcome) = if index == 0 {
                // Groups commit one at a time: this one forms meanwhile.
                let _turn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
                self.close_group(&group);
                let commit = |view: &View, attempt: u32, members: usize| {
                    self.commit_group(view, attempt, members)
                };
                group.take_part(index, self, body, Some(&commit))
            } else {
                group.take_part(index, self, body, None)
            };
            match (ran, outcome) {
                (Ran::Done, Outcome::Committed) => return Ok(()),
                // A refusal stands once what it read is known to be so.
                (Ran::Aborted(error), Outcome::Committed) | (Ran::Failed(error), _) => {
                    return Err(error)
                }
                (Ran::Deferred, Outcome::Committed) => left_out += 1,
                (Ran::Done, Outcome::Failed(error)) => return Err(error),
                (Ran::Aborted(_) | Ran::Deferred, Outcome::Failed(error)) => {
                    return Err(changed_nothing(error))
                }
            }
        }
        Err(too_many_conflicts())
    }

    /// A read runs on its own, at one revision, queueing behind no writer:
    /// over the mirror when it is caught up and holds every tree the body
    /// reads, else against etcd.
    fn read_transact(&self, body: &dyn Fn(&dyn Tx) -> Result<(), Fail>) -> Result<(), Error> {
        if let Some(mirror) = self.fresh_mirror() {
            let key = |tree: Tree, key: &[u8]| self.key(tree, key);
            let tx = MirrorTx {
                state: &mirror,
                mirror: &self.mirror,
                key: &key,
                missed: std::cell::Cell::new(false),
            };
            let outcome = body(&tx);
            self.stats.report(&StoreEvent::MirrorRead(!tx.missed.get()));
            if !tx.missed.get() {
                return match outcome {
                    Ok(()) => Ok(()),
                    Err(Fail::Abort(error)) => Err(error),
                    Err(Fail::Conflict) => {
                        Err(Error::internal("a read over the mirror conflicted"))
                    }
                    Err(Fail::Storage(message)) => {
                        Err(Error::new(Reason::STORE_UNAVAILABLE, message))
                    }
                };
            }
        }
        for _ in 0..MAX_RUNS {
            match group::run_read(self, body) {
                Err(Fail::Conflict) => continue,
                Err(Fail::Abort(error)) => return Err(error),
                Err(Fail::Storage(message)) => {
                    return Err(Error::new(Reason::STORE_UNAVAILABLE, message))
                }
                Ok(()) => return Ok(()),
            }
        }
        Err(too_many_conflicts())
    }

    fn local_reads(&self) -> bool {
        false
    }

    fn catch_up(&self) -> CatchingUp<'_> {
        Box::pin(self.mirror.caught_up(|| {
            // Asked on the etcd runtime, whose tasks drive its connections.
            let asked = self
                .runtime
                .as_ref()
                .expect("the runtime is there until the backend is dropped")
                .spawn(self.revision_check());
            async move {
                asked
                    .await
                    .map_err(|e| Error::internal(format!("the revision check failed: {e}")))?
            }
        }))
    }

    /// The body's reads each take the mirror's lock: they are pinned to
    /// one version of its state, and the body runs again (it is short, and
    /// in memory) if the mirror moved between them.
    fn one_state(&self, body: &mut dyn FnMut()) {
        let _at = AtOneRevision::new(self);
        body()
    }

    fn in_memory(&self, mark: i64, body: &mut dyn FnMut()) -> bool {
        for _ in 0..4 {
            let Some(version) = self.mirror.state_at(mark).map(|state| state.version()) else {
                return false;
            };
            let _pinned = Pinned::new(self, mark, version);
            body();
            match MISSED.replace(None) {
                None => return true,
                Some(Missed::Moved) => continue,
                Some(Missed::Beyond) => return false,
            }
        }
        false
    }

    fn max_writes_per_transaction(&self) -> usize {
        MAX_TXN_OPS
    }

    /// Starts competing for the maintenance lease (once, however many
    /// stores open over this backend).
    fn prepared(&self) -> Result<(), Error> {
        if self
            .competing
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        if let Some(runtime) = &self.runtime {
            let everything = (
                self.prefix.clone(),
                crate::store::layout::prefix_end(&self.prefix),
            );
            runtime.spawn(self.mirror.clone().feed(
                self.kv.clone(),
                WatchClient::new(self.kv_channel.clone()),
                super::etcdserverpb::maintenance_client::MaintenanceClient::new(
                    self.kv_channel.clone(),
                ),
                everything,
                self.auth.clone(),
            ));
            runtime.spawn(hold_maintenance(
                self.kv.clone(),
                LeaseClient::new(self.kv_channel.clone()),
                self.key(Tree::Meta, MAINTENANCE_KEY),
                self.maintaining.clone(),
                self.lease.clone(),
                self.auth.clone(),
            ));
        }
        Ok(())
    }

    /// Compacts etcd's history to the revision that was current at the
    /// previous call (etcd's own periodic compaction, done by the instance
    /// holding the maintenance lease). aliasd keeps its own change log, so
    /// it needs no etcd history: readers at an older revision are retried
    /// at a newer one, and a follower whose watch starts behind the
    /// compaction catches up by reading every counter.
    fn compact_history(&self) -> Result<Option<i64>, Error> {
        use std::sync::atomic::Ordering;
        let now = self.latest_revision()?;
        let target = self.compact_next.swap(now, Ordering::SeqCst);
        if target <= 0 || target >= now {
            return Ok(None);
        }
        let mut kv = self.kv.clone();
        let compacted = self.run(async move {
            kv.compact(pb::CompactionRequest {
                revision: target,
                physical: false,
            })
            .await
        });
        match compacted {
            Ok(_) => Ok(Some(target)),
            // Another compaction (etcd's own, or an operator's) went as far.
            Err(status) if status.message().contains("compacted") => Ok(None),
            Err(status) => Err(unavailable("compaction", status.message())),
        }
    }

    fn maintenance_lease(&self) -> bool {
        self.maintaining.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Follows every account's revision counter (`meta/{account}\0revision`)
    /// with an etcd watch, so that watchers here see changes committed by
    /// other processes: etcd answered their commits once durable.
    fn follow_other_writers(&self, feed: Arc<Feed>) {
        self.follow_from(feed, 0);
    }

    fn flush(&self) -> Flushing<'_> {
        // etcd answered each commit once a quorum had it on disk.
        Box::pin(std::future::ready(Ok(())))
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

impl Drop for EtcdBackend {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        // Give the maintenance lease back, so that another instance takes
        // maintenance over now rather than when the lease lapses (waiting a
        // second at most: an etcd that is away lets it lapse instead).
        let lease = self.lease.swap(0, Ordering::SeqCst);
        if let (Some(runtime), true) = (&self.runtime, lease != 0) {
            let mut leases = LeaseClient::new(self.kv_channel.clone());
            let (done, revoked) = std::sync::mpsc::sync_channel(1);
            runtime.spawn(async move {
                let revoke = leases.lease_revoke(pb::LeaseRevokeRequest { id: lease });
                let _ = tokio::time::timeout(Duration::from_secs(1), revoke).await;
                let _ = done.send(());
            });
            let _ = revoked.recv_timeout(Duration::from_secs(2));
        }
        // The store may be closed on an async thread, where a runtime cannot
        // be dropped (it would block): let its threads go without waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
