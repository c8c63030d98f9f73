//! The backend conformance suite: what every backend must do, checked the
//! same way for each. Each check is a function taking a fresh [`Fixture`];
//! the `suite!` macro at the end runs every check against sled, memory and
//! a real etcd (a new backend adds one line there). After each check that
//! changes records, the store's invariants are verified (`check.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio_stream::StreamExt;

use super::backend::Backend;
use super::memory::MemoryBackend;
use super::sled::{sync, SledBackend};
use super::txn::{AccountTxn, Fail};
use super::Store;
use crate::domain::audit::AuditEntry;
use crate::domain::ops::{self, Ctx, Limits, NewKey, Txn};
use crate::domain::policy::Caller;
use crate::domain::request::{Idempotency, RequestId};
use crate::domain::{Alias, AliasName, ChangeKind, Error, Key, KeyId, Reason, Scope};

pub const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";

/// A store over a fresh backend, and the backend itself (to open a second
/// store over it, as a second process would).
pub struct Fixture {
    pub store: Arc<Store>,
    backend: Arc<dyn Backend>,
    _dir: Option<tempfile::TempDir>,
    _etcd: Option<super::etcd::testing::EtcdServer>,
}

impl Fixture {
    pub fn sled() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let backend: Arc<dyn Backend> =
            Arc::new(SledBackend::open(dir.path(), sync::file_syncer()).expect("sled opens"));
        Fixture {
            store: Store::with_backend(backend.clone()).expect("the store opens"),
            backend,
            _dir: Some(dir),
            _etcd: None,
        }
    }

    pub fn memory() -> Fixture {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        Fixture {
            store: Store::with_backend(backend.clone()).expect("the store opens"),
            backend,
            _dir: None,
            _etcd: None,
        }
    }

    /// A store on a fresh etcd (a server of its own, so checks do not see
    /// each other's records).
    pub fn etcd() -> Fixture {
        let server = super::etcd::testing::EtcdServer::start(&super::etcd::testing::cache_dir());
        let backend: Arc<dyn Backend> = Arc::new(
            super::etcd::EtcdBackend::connect(&server.config("/aliasd/")).expect("etcd client"),
        );
        Fixture {
            store: Store::with_backend(backend.clone()).expect("the store opens"),
            backend,
            _dir: None,
            _etcd: Some(server),
        }
    }

    /// A second store over the same backend (another process's view).
    fn another_store(&self) -> Arc<Store> {
        Store::with_backend(self.backend.clone()).expect("a second store opens")
    }

    /// Fails the test unless every invariant holds.
    fn assert_consistent(&self, limits: Limits) {
        let report = self.store.check(&limits);
        assert!(report.is_clean(), "{:?}", report.problems);
    }
}

pub fn ctx_in(account: &str, limits: Limits) -> Ctx {
    Ctx {
        scope: Scope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: account.into(),
        },
        now: 1_000,
        limits,
        caller: Caller::Anonymous,
    }
}

pub fn ctx(limits: Limits) -> Ctx {
    ctx_in(ACCOUNT, limits)
}

pub fn name(text: &str) -> AliasName {
    AliasName::parse("alias_name", text).expect("a valid alias name")
}

pub fn symmetric() -> NewKey {
    NewKey {
        description: String::new(),
        key_spec: None,
        key_usage: None,
        material: None,
        tags: Vec::new(),
        policy: None,
    }
}

/// Runs `op` as a write in `ctx`'s account (no request_id, no audit).
pub async fn write<T, F>(store: &Arc<Store>, ctx: &Ctx, op: F) -> Result<T, Error>
where
    T: super::records::Replayable + Send + 'static,
    F: Fn(&AccountTxn, &Ctx) -> Result<T, Fail> + Send + 'static,
{
    let op_ctx = ctx.clone();
    store
        .write(&ctx.scope.account, None, None, ctx.now, move |txn| {
            op(txn, &op_ctx)
        })
        .await
}

pub async fn create_key(store: &Arc<Store>, ctx: &Ctx, new: NewKey) -> Result<Key, Error> {
    let id = KeyId::generate();
    write(store, ctx, move |txn, ctx| {
        ops::create_key(txn, ctx, &new, &id)
    })
    .await
}

pub async fn create_alias(
    store: &Arc<Store>,
    ctx: &Ctx,
    alias: &str,
    target: &KeyId,
) -> Result<Alias, Error> {
    let (alias, target) = (name(alias), target.clone());
    write(store, ctx, move |txn, ctx| {
        ops::create_alias(txn, ctx, &alias, &target)
    })
    .await
}

/// Creates `count` aliases `{prefix}000`, `{prefix}001`, ... on `key`, 10
/// to a write (a write must stay within etcd's 128 operations).
async fn create_aliases(store: &Arc<Store>, ctx: &Ctx, key: &KeyId, prefix: &str, count: usize) {
    for first in (0..count).step_by(10) {
        let (target, prefix) = (key.clone(), prefix.to_owned());
        write(store, ctx, move |txn, ctx| {
            for i in first..(first + 10).min(count) {
                ops::create_alias(txn, ctx, &name(&format!("{prefix}{i:03}")), &target)?;
            }
            Ok(())
        })
        .await
        .unwrap();
    }
}

fn reason<T: std::fmt::Debug>(result: &Result<T, Error>) -> Option<Reason> {
    result.as_ref().err().map(|e| e.reason)
}

/// Runs `count` copies of `make(i)` at once; returns their results.
async fn at_once<T, Fut>(count: usize, make: impl Fn(usize) -> Fut) -> Vec<Result<T, Error>>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = Result<T, Error>> + Send + 'static,
{
    let tasks: Vec<_> = (0..count).map(|i| tokio::spawn(make(i))).collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("the task finishes"));
    }
    results
}

// ------------------------------------------------------------ the checks

pub async fn concurrent_creates_of_one_alias_name_serialize_exactly_one_wins(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric()).await.unwrap();
    let results = at_once(16, |_| {
        let (store, ctx, key) = (f.store.clone(), ctx.clone(), key.key_id.clone());
        async move { create_alias(&store, &ctx, "alias/contended", &key).await }
    })
    .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "{results:?}");
    for result in results.iter().filter(|r| r.is_err()) {
        assert_eq!(reason(result), Some(Reason::ALIAS_ALREADY_EXISTS));
    }
    assert_eq!(
        f.store.head_revision(ACCOUNT).unwrap(),
        1,
        "one change logged"
    );
    f.assert_consistent(limits);
}

pub async fn concurrent_key_creations_stop_exactly_at_the_key_quota(f: Fixture) {
    let limits = Limits {
        max_keys_per_account: 5,
        ..Limits::default()
    };
    let ctx = ctx(limits);
    let results = at_once(16, |_| {
        let (store, ctx) = (f.store.clone(), ctx.clone());
        async move { create_key(&store, &ctx, symmetric()).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
    for result in results.iter().filter(|r| r.is_err()) {
        assert_eq!(reason(result), Some(Reason::KEY_QUOTA_EXCEEDED));
    }
    let (keys, more) = f.store.list_keys(ACCOUNT, None, 100).unwrap();
    assert_eq!((keys.len(), more), (5, false));
    f.assert_consistent(limits);
}

pub async fn concurrent_alias_creations_on_one_key_stop_exactly_at_the_alias_quota(f: Fixture) {
    let limits = Limits {
        max_aliases_per_key: 3,
        ..Limits::default()
    };
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric()).await.unwrap();
    let results = at_once(12, |i| {
        let (store, ctx, key) = (f.store.clone(), ctx.clone(), key.key_id.clone());
        async move { create_alias(&store, &ctx, &format!("alias/a{i}"), &key).await }
    })
    .await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 3);
    for result in results.iter().filter(|r| r.is_err()) {
        assert_eq!(reason(result), Some(Reason::ALIAS_QUOTA_EXCEEDED));
    }
    let (aliases, _) = f
        .store
        .list_aliases(ACCOUNT, Some(&key.key_id), None, 100)
        .unwrap();
    assert_eq!(aliases.len(), 3);
    f.assert_consistent(limits);
}

pub async fn an_aborted_operation_leaves_nothing_behind(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let id = KeyId::generate();
    let result: Result<(), Error> = write(&f.store, &ctx, move |txn, ctx| {
        ops::create_key(txn, ctx, &symmetric(), &id)?;
        txn.next_revision()?;
        Err(Error::internal("the rule refuses after writing").into())
    })
    .await;
    assert_eq!(reason(&result), Some(Reason::INTERNAL));
    assert_eq!(f.store.list_keys(ACCOUNT, None, 10).unwrap().0.len(), 0);
    assert_eq!(f.store.head_revision(ACCOUNT).unwrap(), 0);
    let count = f
        .store
        .read(ACCOUNT, |txn| Ok(txn.key_count()? as usize))
        .await
        .unwrap();
    assert_eq!(count, 0, "the key counter did not move");
    f.assert_consistent(limits);
}

pub async fn scans_page_through_every_record_once_in_order(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let first = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let second = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let mut expected = Vec::new();
    for i in 0..23 {
        let target = if i % 2 == 0 { &first } else { &second };
        let alias = format!("alias/n{i:02}");
        create_alias(&f.store, &ctx, &alias, target).await.unwrap();
        expected.push(alias);
    }
    // Another account's records never show up.
    let other = ctx_in(OTHER_ACCOUNT, limits);
    let theirs = create_key(&f.store, &other, symmetric()).await.unwrap();
    create_alias(&f.store, &other, "alias/m", &theirs.key_id)
        .await
        .unwrap();

    let page_through = |key: Option<&KeyId>| {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = f
                .store
                .list_aliases(ACCOUNT, key, after.as_deref(), 5)
                .unwrap();
            assert!(page.len() <= 5);
            seen.extend(page.iter().map(|a| a.name.to_string()));
            if !more {
                return seen;
            }
            after = Some(page.last().expect("a page before more").name.to_string());
        }
    };
    assert_eq!(page_through(None), expected);
    let of_first: Vec<String> = expected.iter().step_by(2).cloned().collect();
    assert_eq!(page_through(Some(&first)), of_first);

    // Several records read at once, in the order asked, absent ones as
    // None; more than one etcd transaction takes (128).
    let record = |name: &str| super::layout::scoped(ACCOUNT, name.as_bytes());
    let mut asked: Vec<Vec<u8>> = (0..130).map(|i| record(&format!("alias/x{i}"))).collect();
    asked[0] = record("alias/n00");
    asked[129] = record("alias/n22");
    let values = f.backend.get_many(super::Tree::Aliases, &asked).unwrap();
    assert_eq!(values.len(), 130);
    assert_eq!(
        values[0],
        f.backend.get(super::Tree::Aliases, &asked[0]).unwrap()
    );
    assert_eq!(
        values[129],
        f.backend.get(super::Tree::Aliases, &asked[129]).unwrap()
    );
    assert!(values[0].is_some() && values[129].is_some());
    assert!(values[1..129].iter().all(Option::is_none));

    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, more) = f.store.list_keys(ACCOUNT, after.as_deref(), 1).unwrap();
        ids.extend(page.iter().map(|k| k.key_id.to_string()));
        if !more {
            break;
        }
        after = Some(page[0].key_id.to_string());
    }
    let mut both = vec![first.to_string(), second.to_string()];
    both.sort();
    assert_eq!(ids, both);
    f.assert_consistent(limits);
}

pub async fn the_change_feed_delivers_in_order_from_a_revision(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let other = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias(&f.store, &ctx, "alias/a", &key).await.unwrap(); // 1
    create_alias(&f.store, &ctx, "alias/b", &key).await.unwrap(); // 2
    let (b, other_key) = (name("alias/b"), other.clone());
    write(&f.store, &ctx, move |txn, ctx| {
        ops::update_alias(txn, ctx, &b, &other_key, None)
    })
    .await
    .unwrap(); // 3
    let (a, c) = (name("alias/a"), name("alias/c"));
    write(&f.store, &ctx, move |txn, ctx| {
        ops::rename_alias(txn, ctx, &a, &c, None)
    })
    .await
    .unwrap(); // 4
    let c = name("alias/c");
    write(&f.store, &ctx, move |txn, ctx| {
        ops::delete_alias(txn, ctx, &c, None)
    })
    .await
    .unwrap(); // 5
    assert_eq!(f.store.head_revision(ACCOUNT).unwrap(), 5);
    assert_eq!(
        f.store.durable_revision(ACCOUNT),
        5,
        "a durable write is published"
    );

    let events = f.store.changes_after(ACCOUNT, 1, 5, 100).unwrap();
    let seen: Vec<(u64, ChangeKind)> = events.iter().map(|e| (e.revision, e.kind)).collect();
    assert_eq!(
        seen,
        [
            (2, ChangeKind::Created),
            (3, ChangeKind::Updated),
            (4, ChangeKind::Renamed),
            (5, ChangeKind::Deleted)
        ]
    );
    let bounded = f.store.changes_after(ACCOUNT, 1, 3, 100).unwrap();
    assert_eq!(
        bounded.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [2, 3]
    );
    let limited = f.store.changes_after(ACCOUNT, 0, 5, 2).unwrap();
    assert_eq!(
        limited.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [1, 2]
    );

    // A watcher from revision 3 gets 4 and 5, then a later change when it
    // becomes durable (the feed wakes it).
    let (_shutdown, shutdown_seen) = tokio::sync::watch::channel(false);
    let mut watch = super::watch::open(
        f.store.clone(),
        ACCOUNT.into(),
        None,
        Some(3),
        super::watch::Pace {
            send_timeout: Duration::from_secs(10),
            progress_every: None,
        },
        Box::new(|| Ok(())),
        shutdown_seen,
    )
    .unwrap();
    assert_eq!(next_revision(&mut watch).await, 4);
    assert_eq!(next_revision(&mut watch).await, 5);
    create_alias(&f.store, &ctx, "alias/d", &key).await.unwrap();
    assert_eq!(next_revision(&mut watch).await, 6);
    f.assert_consistent(limits);
}

pub async fn an_idle_watch_that_asked_for_progress_hears_how_far_it_has_seen(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let watched = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let other = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias(&f.store, &ctx, "alias/w", &watched)
        .await
        .unwrap();
    let (_shutdown, shutdown_seen) = tokio::sync::watch::channel(false);
    let mut watch = super::watch::open(
        f.store.clone(),
        ACCOUNT.into(),
        Some(watched),
        Some(0),
        super::watch::Pace {
            send_timeout: Duration::from_secs(10),
            progress_every: Some(Duration::from_millis(50)),
        },
        Box::new(|| Ok(())),
        shutdown_seen,
    )
    .unwrap();
    assert_eq!(next_revision(&mut watch).await, 1);
    // Changes the filter leaves out: the progress says they were seen.
    create_alias(&f.store, &ctx, "alias/o1", &other)
        .await
        .unwrap();
    create_alias(&f.store, &ctx, "alias/o2", &other)
        .await
        .unwrap();
    loop {
        // Hang guard only: progress comes every 50 ms while idle.
        let item = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("progress on an idle watch")
            .expect("the watch goes on")
            .expect("progress, not an error");
        match item {
            super::watch::WatchItem::Progress(3) => break,
            super::watch::WatchItem::Progress(revision) => assert!(revision < 3, "{revision}"),
            change => panic!("the filter lets no change through: {change:?}"),
        }
    }
}

/// The revision of a watch's next event.
async fn next_revision(watch: &mut super::watch::WatchStream) -> u64 {
    // Hang guard only: the events are there or on their way.
    match tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("an event arrives")
        .expect("the watch goes on")
        .expect("an event, not an error")
    {
        super::watch::WatchItem::Change(event) => event.revision,
        progress => panic!("a change, not {progress:?}"),
    }
}

/// CreateAlias of `alias` -> `target` under `request_id`, audited.
async fn create_alias_once(
    store: &Arc<Store>,
    ctx: &Ctx,
    request_id: &str,
    alias: &str,
    target: &KeyId,
) -> Result<Alias, Error> {
    let request_id = RequestId::parse(request_id).unwrap();
    let idempotency = Idempotency::new(request_id, "kms:CreateAlias", &[alias, target.as_str()]);
    let audit = AuditEntry {
        time: ctx.now,
        principal: "anonymous".into(),
        account: ctx.scope.account.clone(),
        action: "kms:CreateAlias".into(),
        resources: vec![alias.to_owned()],
        outcome: AuditEntry::OK.into(),
        ..AuditEntry::default()
    };
    let (op_ctx, alias, target) = (ctx.clone(), name(alias), target.clone());
    store
        .write(ACCOUNT, idempotency, Some(audit), ctx.now, move |txn| {
            ops::create_alias(txn, &op_ctx, &alias, &target)
        })
        .await
}

const REQUEST: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

pub async fn a_repeated_request_replays_its_response_and_changes_nothing(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let first = create_alias_once(&f.store, &ctx, REQUEST, "alias/once", &key)
        .await
        .unwrap();
    let later = Ctx {
        now: ctx.now + 5_000,
        ..ctx.clone()
    };
    // Run again, CreateAlias would fail (the alias exists): a replay does not run it.
    let again = create_alias_once(&f.store, &later, REQUEST, "alias/once", &key)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(f.store.head_revision(ACCOUNT).unwrap(), 1);
    assert_eq!(
        f.store.audit_head(ACCOUNT).unwrap(),
        1,
        "a replay is not audited again"
    );
    f.assert_consistent(limits);
}

pub async fn a_different_request_under_a_used_request_id_is_refused(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias_once(&f.store, &ctx, REQUEST, "alias/once", &key)
        .await
        .unwrap();
    let result = create_alias_once(&f.store, &ctx, REQUEST, "alias/other", &key).await;
    assert_eq!(reason(&result), Some(Reason::REQUEST_ID_REUSED));
    let (aliases, _) = f.store.list_aliases(ACCOUNT, None, None, 10).unwrap();
    assert_eq!(aliases.len(), 1, "nothing changed");
    assert_eq!(f.store.head_revision(ACCOUNT).unwrap(), 1);
    assert_eq!(f.store.audit_head(ACCOUNT).unwrap(), 1);
}

pub async fn an_audit_record_commits_with_its_change_and_not_with_a_failed_one(f: Fixture) {
    let limits = Limits::default();
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias_once(&f.store, &ctx, REQUEST, "alias/x", &key)
        .await
        .unwrap();
    let (entries, last) = f.store.list_audit(ACCOUNT, 0, 10, 100, |_| true).unwrap();
    assert_eq!(last, Some(1));
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].sequence, 1);
    assert_eq!(
        entries[0].request_id, "",
        "the caller fills it, the store keeps it"
    );
    assert_eq!(entries[0].resources, ["alias/x"]);

    let failed = create_alias_once(
        &f.store,
        &ctx,
        "5a0c1bd6-7f7c-4f58-a0d6-2f1d4b4b6f11",
        "alias/x",
        &key,
    )
    .await;
    assert_eq!(reason(&failed), Some(Reason::ALIAS_ALREADY_EXISTS));
    assert_eq!(
        f.store.audit_head(ACCOUNT).unwrap(),
        1,
        "no record of a failed change"
    );

    f.store
        .record_audit(AuditEntry {
            account: ACCOUNT.into(),
            action: "kms:DeleteAlias".into(),
            outcome: "ACCESS_DENIED".into(),
            ..AuditEntry::default()
        })
        .await
        .unwrap();
    let (entries, _) = f.store.list_audit(ACCOUNT, 1, 10, 100, |_| true).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].sequence, entries[0].outcome.as_str()),
        (2, "ACCESS_DENIED")
    );
}

pub async fn stores_sharing_a_backend_share_one_page_token_secret(f: Fixture) {
    let second = f.another_store();
    assert_eq!(second.token_secret_bytes(), f.store.token_secret_bytes());
    assert_ne!(f.store.token_secret_bytes(), [0u8; 32]);
}

pub async fn pruning_the_change_log_keeps_the_newest_and_moves_the_floor(f: Fixture) {
    let limits = Limits {
        max_aliases_per_key: 1_000,
        ..Limits::default()
    };
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    // 600 changes, in entries of 10 (10 per write): the prune takes more
    // than one batch (60 entries). Keeping 15 puts the floor inside an
    // entry (581..=590), which stays whole; only what is above the floor
    // is read.
    create_aliases(&f.store, &ctx, &key, "alias/p", 600).await;
    assert_eq!(f.store.prune_changes(15).unwrap(), 585);
    assert_eq!(f.store.floor(ACCOUNT).unwrap(), 585);
    let kept = f.store.changes_after(ACCOUNT, 585, 600, 1_000).unwrap();
    assert_eq!(
        kept.iter().map(|e| e.revision).collect::<Vec<_>>(),
        (586..=600).collect::<Vec<_>>()
    );
    f.assert_consistent(limits);
    assert_eq!(f.store.prune_changes(10).unwrap(), 5);
    assert_eq!(f.store.floor(ACCOUNT).unwrap(), 590);
    let kept = f.store.changes_after(ACCOUNT, 0, 600, 1_000).unwrap();
    assert_eq!(
        kept.iter().map(|e| e.revision).collect::<Vec<_>>(),
        (591..=600).collect::<Vec<_>>()
    );
    assert_eq!(
        f.store.prune_changes(10).unwrap(),
        0,
        "nothing more to prune"
    );
    f.assert_consistent(limits);
}

pub async fn pruning_request_records_forgets_only_expired_ones(f: Fixture) {
    let limits = Limits::default();
    let early = ctx(limits);
    let late = Ctx {
        now: 9_000,
        ..early.clone()
    };
    let key = create_key(&f.store, &early, symmetric())
        .await
        .unwrap()
        .key_id;
    let old = "11111111-1111-4111-8111-111111111111";
    let new = "22222222-2222-4222-8222-222222222222";
    create_alias_once(&f.store, &early, old, "alias/old", &key)
        .await
        .unwrap();
    create_alias_once(&f.store, &late, new, "alias/new", &key)
        .await
        .unwrap();
    assert_eq!(f.store.prune_requests(5_000).unwrap(), 1);
    // Forgotten: the request runs again (and the alias exists by now).
    let again = create_alias_once(&f.store, &late, old, "alias/old", &key).await;
    assert_eq!(reason(&again), Some(Reason::ALIAS_ALREADY_EXISTS));
    // Kept: replayed.
    create_alias_once(&f.store, &late, new, "alias/new", &key)
        .await
        .unwrap();
    f.assert_consistent(limits);
}

pub async fn pruning_audit_records_drops_only_those_past_retention_in_every_account(f: Fixture) {
    // 130 old records in one account (more than two batches), 3 in
    // another, then newer ones in both.
    let record = |account: &str, time| AuditEntry {
        time,
        account: account.into(),
        action: "kms:DeleteAlias".into(),
        outcome: "ACCESS_DENIED".into(),
        ..AuditEntry::default()
    };
    for (account, old) in [(ACCOUNT, 130), (OTHER_ACCOUNT, 3)] {
        for i in 0..old {
            f.store
                .record_audit(record(account, 1_000 + i))
                .await
                .unwrap();
        }
        for i in 0..2 {
            f.store
                .record_audit(record(account, 9_000 + i))
                .await
                .unwrap();
        }
    }
    assert_eq!(f.store.prune_audit(5_000).unwrap(), 133);
    for account in [ACCOUNT, OTHER_ACCOUNT] {
        let (kept, _) = f
            .store
            .list_audit(account, 0, 100, 1_000, |_| true)
            .unwrap();
        let times: Vec<i64> = kept.iter().map(|e| e.time).collect();
        assert_eq!(times, [9_000, 9_001], "{account}");
    }
    // Sequence numbers go on from where they were.
    assert_eq!(f.store.audit_head(ACCOUNT).unwrap(), 132);
    assert_eq!(
        f.store.prune_audit(5_000).unwrap(),
        0,
        "nothing more to prune"
    );
}

pub async fn a_batch_of_audit_records_lists_in_order_pages_from_within_and_prunes_whole(
    f: Fixture,
) {
    // 300 records of crypto calls in one batch (more than two log entries
    // of 128) over two accounts, after two written one by one.
    let record = |account: &str, time| AuditEntry {
        time,
        account: account.into(),
        action: "kms:Encrypt".into(),
        outcome: "OK".into(),
        ..AuditEntry::default()
    };
    for account in [ACCOUNT, OTHER_ACCOUNT] {
        f.store.record_audit(record(account, 1)).await.unwrap();
        f.store.record_audit(record(account, 2)).await.unwrap();
    }
    let batch: Vec<AuditEntry> = (0..300)
        .map(|i| record(if i % 3 == 0 { OTHER_ACCOUNT } else { ACCOUNT }, 1_000 + i))
        .collect();
    f.store.record_audits(batch).await.unwrap();
    assert_eq!(f.store.audit_head(ACCOUNT).unwrap(), 202);
    assert_eq!(f.store.audit_head(OTHER_ACCOUNT).unwrap(), 102);
    // Every record once, in order, with consecutive sequences, whatever
    // the page size (pages end inside log entries).
    for page in [1, 7, 128, 1_000] {
        let mut after = 0;
        let mut seen = Vec::new();
        loop {
            let (entries, _) = f
                .store
                .list_audit(ACCOUNT, after, page, 10_000, |_| true)
                .unwrap();
            let Some(last) = entries.last() else { break };
            after = last.sequence;
            seen.extend(entries.iter().map(|e| (e.sequence, e.time)));
        }
        let sequences: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(sequences, (1..=202).collect::<Vec<u64>>(), "page {page}");
        let times: Vec<i64> = seen.iter().map(|(_, t)| *t).collect();
        let expected: Vec<i64> = [1, 2]
            .into_iter()
            .chain((0..300).filter(|i| i % 3 != 0).map(|i| 1_000 + i))
            .collect();
        assert_eq!(times, expected, "page {page}");
    }
    // Filters see every record of an entry.
    let (late, _) = f
        .store
        .list_audit(OTHER_ACCOUNT, 0, 1_000, 10_000, |e| e.time >= 1_290)
        .unwrap();
    assert_eq!(
        late.iter().map(|e| e.time).collect::<Vec<_>>(),
        [1_291, 1_294, 1_297]
    );
    // An entry goes only when its newest record is past retention: the
    // first of ACCOUNT's batch entries ends at time 1_191 or so, so a
    // cut-off at 1_100 takes the two single records and nothing else.
    assert_eq!(f.store.prune_audit(1_100).unwrap(), 4);
    let (kept, _) = f
        .store
        .list_audit(ACCOUNT, 0, 1_000, 10_000, |_| true)
        .unwrap();
    assert_eq!(kept.len(), 200);
    assert_eq!(kept[0].sequence, 3);
    // Past the whole batch, everything goes, counted by record.
    assert_eq!(f.store.prune_audit(2_000).unwrap(), 300);
    assert_eq!(f.store.audit_head(ACCOUNT).unwrap(), 202);
    // A batch over more accounts than one etcd transaction can write
    // (two records in each of 150) is written whole.
    let accounts: Vec<String> = (0..150).map(|i| format!("{:012}", 500_000 + i)).collect();
    let batch: Vec<AuditEntry> = accounts
        .iter()
        .flat_map(|account| [record(account, 3_000), record(account, 3_001)])
        .collect();
    f.store.record_audits(batch).await.unwrap();
    for account in &accounts {
        let (entries, _) = f.store.list_audit(account, 0, 10, 100, |_| true).unwrap();
        let seen: Vec<(u64, i64)> = entries.iter().map(|e| (e.sequence, e.time)).collect();
        assert_eq!(seen, [(1, 3_000), (2, 3_001)], "{account}");
    }
}

pub async fn a_write_over_several_accounts_commits_all_or_nothing(f: Fixture) {
    let limits = Limits::default();
    let accounts = vec![ACCOUNT.to_owned(), OTHER_ACCOUNT.to_owned()];
    let failed: Result<(), Error> = f
        .store
        .write_accounts(accounts.clone(), move |txns| {
            for txn in txns {
                let ctx = ctx_in(txn.account(), limits);
                ops::create_key(txn, &ctx, &symmetric(), &KeyId::generate())?;
            }
            Err(Error::internal("the last step fails").into())
        })
        .await;
    assert!(failed.is_err());
    for account in [ACCOUNT, OTHER_ACCOUNT] {
        assert_eq!(f.store.list_keys(account, None, 10).unwrap().0.len(), 0);
    }
    f.store
        .write_accounts(accounts, move |txns| {
            for txn in txns {
                let ctx = ctx_in(txn.account(), limits);
                ops::create_key(txn, &ctx, &symmetric(), &KeyId::generate())?;
            }
            Ok(())
        })
        .await
        .unwrap();
    for account in [ACCOUNT, OTHER_ACCOUNT] {
        assert_eq!(f.store.list_keys(account, None, 10).unwrap().0.len(), 1);
    }
    f.assert_consistent(limits);
}

/// A read outside a transaction (the store's read gate) never sees half of
/// a transaction, however many writers run beside it; and once the writers
/// stop, what it reads is the last commit.
pub async fn a_read_outside_a_transaction_never_sees_half_of_one(f: Fixture) {
    use super::backend::Tree;
    use std::sync::atomic::{AtomicBool, Ordering};
    const PAIR: [&[u8]; 2] = [b"view-test/a", b"view-test/b"];
    let stop = Arc::new(AtomicBool::new(false));
    /// Stops the writers however the check ends (a failed assertion too).
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let stopper = StopOnDrop(stop.clone());
    let writers: Vec<_> = (0..2u64)
        .map(|writer| {
            let (store, stop) = (f.store.clone(), stop.clone());
            tokio::task::spawn_blocking(move || {
                let mut n = writer * 1_000_000;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let value = n.to_be_bytes();
                    store
                        .gated_transact(&|tx| {
                            for key in PAIR {
                                tx.put(Tree::Meta, key, &value)?;
                            }
                            Ok(())
                        })
                        .expect("a write commits");
                }
                n
            })
        })
        .collect();
    let read_pair = |store: &Arc<Store>| {
        store.read_view(ACCOUNT, &|txn: &AccountTxn| {
            PAIR.iter()
                .map(|key| txn.raw().get(Tree::Meta, key))
                .collect::<Result<Vec<_>, _>>()
        })
    };
    let started = std::time::Instant::now();
    let mut views = 0;
    while started.elapsed() < Duration::from_millis(300) {
        if let Some(values) = read_pair(&f.store) {
            let values = values.expect("a read succeeds");
            assert_eq!(values[0], values[1], "a torn read");
            views += 1;
        }
        tokio::task::yield_now().await;
    }
    drop(stopper);
    let mut last = Vec::new();
    for writer in writers {
        last.push(writer.await.unwrap());
    }
    let values = read_pair(&f.store)
        .expect("with no writer, a read needs no transaction")
        .expect("a read succeeds");
    let value = u64::from_be_bytes(values[0].clone().unwrap().try_into().unwrap());
    assert!(
        last.contains(&value),
        "{value} is not a last write of {last:?}"
    );
    assert_eq!(values[0], values[1]);
    eprintln!("{views} reads outside transactions while writers ran");
}

/// A key with the largest quota of aliases any backend allows (100: etcd)
/// is removed with all of them in one transaction, which fits every backend
/// (etcd: 128 operations; the removal's events share one change-log entry),
/// and the change log reads back every removal.
pub async fn a_key_with_a_full_quota_of_aliases_is_removed_whole(f: Fixture) {
    let limits = Limits {
        max_aliases_per_key: crate::store::etcd::MAX_ALIASES_PER_KEY_ON_ETCD,
        ..Limits::default()
    };
    let ctx = ctx(limits);
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let count = limits.max_aliases_per_key as usize;
    create_aliases(&f.store, &ctx, &key, "alias/full-", count).await;
    let target = key.clone();
    write(&f.store, &ctx, move |txn, ctx| {
        ops::schedule_key_deletion(txn, ctx, &target, 7).map(drop)
    })
    .await
    .unwrap();
    let before = f.store.durable_revision(ACCOUNT);
    let mut later = ctx.clone();
    later.now += 8 * crate::domain::key::DAY_MILLIS;
    let target = key.clone();
    let removed = write(&f.store, &later, move |txn, ctx| {
        ops::remove_due_key(txn, ctx, &target)
    })
    .await
    .unwrap();
    assert_eq!(removed, count);
    let (left, _) = f.store.list_aliases(ACCOUNT, None, None, 100).unwrap();
    assert!(left.is_empty(), "{left:?}");
    // The change log holds each removal, in order, whole or read from the
    // middle of its entry.
    let head = before + count as u64;
    assert_eq!(f.store.durable_revision(ACCOUNT), head);
    let events = f.store.changes_after(ACCOUNT, before, head, 1_000).unwrap();
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (before + 1..=head).collect::<Vec<_>>());
    assert!(events.iter().all(|e| e.kind == ChangeKind::Deleted));
    let tail = f.store.changes_after(ACCOUNT, head - 3, head, 2).unwrap();
    let revisions: Vec<u64> = tail.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, [head - 2, head - 1]);
    f.assert_consistent(limits);
}

/// Runs every check against one backend, one `#[test]` per check.
macro_rules! suite {
    ($backend:ident) => {
        mod $backend {
            use super::Fixture;
            suite!(@checks $backend,
                concurrent_creates_of_one_alias_name_serialize_exactly_one_wins,
                concurrent_key_creations_stop_exactly_at_the_key_quota,
                concurrent_alias_creations_on_one_key_stop_exactly_at_the_alias_quota,
                an_aborted_operation_leaves_nothing_behind,
                scans_page_through_every_record_once_in_order,
                the_change_feed_delivers_in_order_from_a_revision,
                an_idle_watch_that_asked_for_progress_hears_how_far_it_has_seen,
                a_repeated_request_replays_its_response_and_changes_nothing,
                a_different_request_under_a_used_request_id_is_refused,
                an_audit_record_commits_with_its_change_and_not_with_a_failed_one,
                stores_sharing_a_backend_share_one_page_token_secret,
                pruning_the_change_log_keeps_the_newest_and_moves_the_floor,
                pruning_request_records_forgets_only_expired_ones,
                pruning_audit_records_drops_only_those_past_retention_in_every_account,
                a_batch_of_audit_records_lists_in_order_pages_from_within_and_prunes_whole,
                a_write_over_several_accounts_commits_all_or_nothing,
                a_read_outside_a_transaction_never_sees_half_of_one,
                a_key_with_a_full_quota_of_aliases_is_removed_whole,
            );
        }
    };
    (@checks $backend:ident, $($check:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                super::$check(Fixture::$backend()).await
            }
        )*
    };
}

suite!(sled);
suite!(memory);
suite!(etcd);
