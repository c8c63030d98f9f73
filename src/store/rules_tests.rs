//! Rules of the domain operations, tested fast through the in-memory
//! backend: the operation, the store's bookkeeping around it (per-key
//! index, schedule, change log), and the invariants afterwards. The same
//! rules are tested end to end through gRPC in tests/api.

use super::conformance::{create_alias, create_key, ctx, name, symmetric, write, Fixture, ACCOUNT};
use crate::domain::ops::{self, Limits, NewKey, Txn};
use crate::domain::{ChangeKind, KeyRef, KeySpec, KeyUsage, Reason};

const DAY: i64 = 24 * 3600 * 1000;

#[tokio::test]
async fn renaming_an_alias_moves_it_in_the_per_key_index() {
    let f = Fixture::memory();
    let ctx = ctx(Limits::default());
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias(&f.store, &ctx, "alias/old", &key)
        .await
        .unwrap();
    let renamed = write(&f.store, &ctx, |txn, ctx| {
        ops::rename_alias(txn, ctx, &name("alias/old"), &name("alias/new"), None)
    })
    .await
    .unwrap();
    assert_eq!(renamed.target, key);
    let index = f
        .store
        .read(ACCOUNT, {
            let key = key.clone();
            move |txn| Ok(txn.aliases_of(&key)?.len())
        })
        .await
        .unwrap();
    assert_eq!(index, 1);
    let (aliases, _) = f.store.list_aliases(ACCOUNT, Some(&key), None, 10).unwrap();
    assert_eq!(aliases[0].name.as_str(), "alias/new");
    let events = f.store.changes_after(ACCOUNT, 1, 2, 10).unwrap();
    assert_eq!(events[0].kind, ChangeKind::Renamed);
    assert_eq!(events[0].previous_name, Some(name("alias/old")));
    assert!(f.store.check(&Limits::default()).is_clean());
}

#[tokio::test]
async fn an_alias_cannot_be_moved_to_a_key_of_another_type() {
    let f = Fixture::memory();
    let ctx = ctx(Limits::default());
    let symmetric_key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let hmac = NewKey {
        description: String::new(),
        key_spec: Some(KeySpec::HMAC_256),
        key_usage: Some(KeyUsage::GENERATE_VERIFY_MAC),
        material: None,
        tags: Vec::new(),
        policy: None,
    };
    let hmac_key = create_key(&f.store, &ctx, hmac).await.unwrap().key_id;
    create_alias(&f.store, &ctx, "alias/a", &symmetric_key)
        .await
        .unwrap();
    let moved = write(&f.store, &ctx, move |txn, ctx| {
        ops::update_alias(txn, ctx, &name("alias/a"), &hmac_key, None)
    })
    .await;
    assert_eq!(moved.unwrap_err().reason, Reason::KEY_TYPE_MISMATCH);
    assert_eq!(f.store.head_revision(ACCOUNT).unwrap(), 1, "nothing logged");
}

#[tokio::test]
async fn an_alias_cannot_point_at_a_key_pending_deletion() {
    let f = Fixture::memory();
    let ctx = ctx(Limits::default());
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    let id = key.clone();
    write(&f.store, &ctx, move |txn, ctx| {
        ops::schedule_key_deletion(txn, ctx, &id, 7)
    })
    .await
    .unwrap();
    let created = create_alias(&f.store, &ctx, "alias/late", &key).await;
    assert_eq!(created.unwrap_err().reason, Reason::KEY_PENDING_DELETION);
    assert!(f.store.check(&Limits::default()).is_clean());
}

#[tokio::test]
async fn removing_a_due_key_removes_its_aliases_and_logs_each_removal() {
    let f = Fixture::memory();
    let ctx = ctx(Limits::default());
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias(&f.store, &ctx, "alias/a", &key).await.unwrap();
    create_alias(&f.store, &ctx, "alias/b", &key).await.unwrap();
    let id = key.clone();
    write(&f.store, &ctx, move |txn, ctx| {
        ops::schedule_key_deletion(txn, ctx, &id, 7)
    })
    .await
    .unwrap();
    assert!(f.store.due_keys(ctx.now + 6 * DAY).unwrap().is_empty());
    let later = crate::domain::ops::Ctx {
        now: ctx.now + 7 * DAY,
        ..ctx.clone()
    };
    assert_eq!(
        f.store.due_keys(later.now).unwrap(),
        [(ACCOUNT.to_owned(), key.clone())]
    );
    let id = key.clone();
    let removed = write(&f.store, &later, move |txn, ctx| {
        ops::remove_due_key(txn, ctx, &id)
    })
    .await
    .unwrap();
    assert_eq!(removed, 2);
    let kinds: Vec<ChangeKind> = f
        .store
        .changes_after(ACCOUNT, 2, 10, 10)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [ChangeKind::Deleted, ChangeKind::Deleted]);
    assert!(f.store.due_keys(later.now).unwrap().is_empty());
    assert!(f.store.list_keys(ACCOUNT, None, 10).unwrap().0.is_empty());
    assert!(f.store.check(&Limits::default()).is_clean());
}

#[tokio::test]
async fn describe_key_by_alias_finds_the_alias_target() {
    let f = Fixture::memory();
    let ctx = ctx(Limits::default());
    let key = create_key(&f.store, &ctx, symmetric())
        .await
        .unwrap()
        .key_id;
    create_alias(&f.store, &ctx, "alias/app", &key)
        .await
        .unwrap();
    let read_ctx = ctx.clone();
    let described = f
        .store
        .read(ACCOUNT, move |txn| {
            ops::describe_key(txn, &read_ctx, &KeyRef::Alias(name("alias/app")))
        })
        .await
        .unwrap();
    assert_eq!(described.key_id, key);
}
