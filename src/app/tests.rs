//! The use cases tested on their own, through the in-memory store and no
//! door: the order in which a call's checks run, authorization, idempotency
//! and what the audit log keeps.

use std::sync::Arc;

use super::{App, Call, CallBounds, NewKeyRequest};
use crate::app::Admission;
use crate::domain::audit::AuditEntry;
use crate::domain::ops::Limits;
use crate::domain::paging::PageTokens;
use crate::domain::policy::{Caller, Principal, Statement};
use crate::domain::{Clock, Reason, Scope, SystemClock};
use crate::store::{Engine, Store};

const ACCOUNT: &str = "111122223333";
const REQUEST: &str = "5a0c1bd6-7f7c-4f58-a0d6-2f1d4b4b6f11";

fn app() -> Arc<App> {
    app_with_clock(Arc::new(SystemClock))
}

/// A clock a test moves by hand.
struct ManualClock(std::sync::atomic::AtomicI64);

impl crate::domain::Clock for ManualClock {
    fn now(&self) -> crate::domain::Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ManualClock {
    fn advance_days(&self, days: i64) {
        let day = Limits::default().day_millis;
        self.0
            .fetch_add(days * day, std::sync::atomic::Ordering::SeqCst);
    }
}

fn app_with_clock(clock: Arc<dyn crate::domain::Clock>) -> Arc<App> {
    let store = Store::open(&Engine::Memory).unwrap();
    let (crypto_audit, _writer) = super::audit_batch::AuditBatcher::start(store.clone());
    Arc::new(App {
        materials: Arc::new(crate::crypto::MaterialCache::new(
            crate::crypto::RootKey::random().unwrap(),
        )),
        crypto_audit,
        tokens: PageTokens::new(store.token_secret_bytes()),
        store,
        scope: Scope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: ACCOUNT.into(),
        },
        clock,
        limits: Limits::default(),
        shutdown: tokio::sync::watch::channel(false).1,
        watch_send_timeout: std::time::Duration::from_secs(10),
        watch_progress_interval: None,
        authenticator: None,
        watch_slots: super::admission::watches::WatchSlots::new(16, 16),
        admission: Admission::new(
            0.0,
            100.0,
            CallBounds {
                per_principal: 16,
                unauthenticated: 16,
                unauthenticated_per_address: 16,
            },
        ),
    })
}

fn anonymous() -> Call {
    Call::new(Caller::Anonymous, "trace-1", Default::default())
}

/// A principal of ACCOUNT allowed `actions` on `resources`.
fn principal(actions: &[&str], resources: &[&str]) -> Call {
    Call::new(
        Caller::Principal(Arc::new(Principal {
            name: "deployer".into(),
            account: ACCOUNT.into(),
            statements: vec![Statement {
                effect: Default::default(),
                condition: Default::default(),
                actions: actions.iter().map(|a| a.to_string()).collect(),
                resources: resources.iter().map(|r| r.to_string()).collect(),
            }],
            project_ids: Vec::new(),
        })),
        "trace-2",
        Default::default(),
    )
}

async fn new_key(app: &App, call: &Call) -> String {
    app.create_key(
        call,
        NewKeyRequest {
            description: String::new(),
            key_spec: None,
            key_usage: None,
            request_id: String::new(),
            alias_name: None,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .key_id
    .to_string()
}

async fn audit(app: &Arc<App>) -> Vec<AuditEntry> {
    app.store
        .audit_page(ACCOUNT, 0, (1000, 10_000), |_| true)
        .await
        .unwrap()
        .0
}

fn reason<T: std::fmt::Debug>(result: Result<T, crate::domain::Error>) -> Reason {
    result.unwrap_err().reason
}

#[tokio::test]
async fn create_alias_checks_the_name_then_reserved_names_then_the_target_then_the_request_id_then_the_store(
) {
    let app = app();
    let call = anonymous();
    let missing = "0d0466b0-e727-4d9c-b35d-f84bb474a37f";
    // Each call is wrong in this check and in every later one: the first
    // check in the order is the one that answers.
    let cases = [
        ("bad name", "alias/aws/x", Reason::INVALID_ALIAS_NAME),
        ("alias/aws/x", "alias/target", Reason::RESERVED_ALIAS),
        ("alias/x", "alias/target", Reason::TARGET_NOT_A_KEY),
        ("alias/x", missing, Reason::INVALID_REQUEST_ID),
    ];
    for (name, target, expected) in cases {
        let answer = app.create_alias(&call, name, target, "not-a-uuid").await;
        assert_eq!(reason(answer), expected, "{name} -> {target}");
    }
    let answer = app.create_alias(&call, "alias/x", missing, REQUEST).await;
    assert_eq!(reason(answer), Reason::KEY_NOT_FOUND);
    assert!(
        audit(&app).await.is_empty(),
        "refused input leaves no record"
    );
}

#[tokio::test]
async fn a_repeated_request_id_replays_its_answer_and_another_request_under_it_is_refused() {
    let app = app();
    let call = anonymous();
    let key = new_key(&app, &call).await;
    let first = app
        .create_alias(&call, "alias/once", &key, REQUEST)
        .await
        .unwrap();
    let head = app.store.head_revision(ACCOUNT).unwrap();
    let again = app
        .create_alias(&call, "alias/once", &key, REQUEST)
        .await
        .unwrap();
    assert_eq!(again, first, "the first answer, replayed");
    assert_eq!(
        app.store.head_revision(ACCOUNT).unwrap(),
        head,
        "no second change"
    );
    let other = app.create_alias(&call, "alias/other", &key, REQUEST).await;
    assert_eq!(reason(other), Reason::REQUEST_ID_REUSED);
    let created: Vec<_> = audit(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "kms:CreateAlias")
        .collect();
    assert_eq!(created.len(), 1, "one change, one record: {created:?}");
    assert_eq!(created[0].request_id, REQUEST);
}

#[tokio::test]
async fn a_denied_change_is_audited_and_changes_nothing_while_an_allowed_one_commits_with_its_record(
) {
    let app = app();
    let admin = principal(&["kms:*"], &["*"]);
    let key = new_key(&app, &admin).await;
    let deployer = principal(&["kms:CreateAlias"], &["alias/payments-*", key.as_str()]);

    let denied = app.create_alias(&deployer, "alias/other", &key, "").await;
    assert_eq!(reason(denied), Reason::ACCESS_DENIED);
    let allowed = app
        .create_alias(&deployer, "alias/payments-1", &key, "")
        .await;
    assert!(allowed.is_ok(), "{allowed:?}");

    let names = app
        .store
        .aliases_page(ACCOUNT, None, None, 10)
        .await
        .unwrap();
    let names: Vec<&str> = names.aliases.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["alias/payments-1"]);
    let records: Vec<(String, String, String)> = audit(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "kms:CreateAlias")
        .map(|e| (e.principal, e.outcome, e.resources.join(",")))
        .collect();
    assert_eq!(
        records,
        [
            (
                "deployer".to_owned(),
                "ACCESS_DENIED".to_owned(),
                format!("alias/other,{key}")
            ),
            (
                "deployer".to_owned(),
                "OK".to_owned(),
                format!("alias/payments-1,{key}")
            ),
        ]
    );
}

#[tokio::test]
async fn a_change_the_rules_refuse_leaves_no_audit_record() {
    let app = app();
    let call = anonymous();
    let key = new_key(&app, &call).await;
    app.create_alias(&call, "alias/taken", &key, "")
        .await
        .unwrap();
    let again = app.create_alias(&call, "alias/taken", &key, "").await;
    assert_eq!(reason(again), Reason::ALIAS_ALREADY_EXISTS);
    let created = audit(&app)
        .await
        .into_iter()
        .filter(|e| e.action == "kms:CreateAlias")
        .count();
    assert_eq!(created, 1);
}

/// Maintenance rotates a key whose automatic rotation is due, and not one
/// that is disabled then: that one rotates once enabled again (within a
/// day, as AWS rotates a re-enabled key whose date has passed).
#[tokio::test]
async fn due_rotations_happen_in_maintenance_and_wait_for_a_disabled_key() {
    use crate::domain::key::RotationType;
    let clock = Arc::new(ManualClock(std::sync::atomic::AtomicI64::new(
        1_800_000_000_000,
    )));
    let app = app_with_clock(clock.clone());
    let maintenance = super::maintenance::Maintenance {
        store: app.store.clone(),
        scope: app.scope.clone(),
        clock: clock.clone(),
        limits: Limits::default(),
        change_log_retention: 1000,
        request_id_ttl: std::time::Duration::from_secs(3600),
        audit_retention: None,
        sweeps: tokio::sync::watch::channel(0).0,
        materials: app.materials.clone(),
        compaction_interval: None,
    };
    let call = anonymous();
    let (on, off) = (new_key(&app, &call).await, new_key(&app, &call).await);
    for key in [&on, &off] {
        let key = app.enable_key_rotation(&call, key, Some(90)).await.unwrap();
        assert_eq!(
            key.rotation.as_ref().unwrap().next,
            clock.now() + 90 * Limits::default().day_millis
        );
    }
    clock.advance_days(89);
    assert_eq!(maintenance.rotate_due_keys().await.unwrap(), 0, "not yet");
    app.disable_key(&call, &off, "").await.unwrap();
    clock.advance_days(2);
    assert_eq!(maintenance.rotate_due_keys().await.unwrap(), 1);
    let rotated = app.describe_key(&call, &on).await.unwrap();
    assert_eq!(rotated.materials.len(), 2);
    assert_eq!(rotated.materials[1].rotation, Some(RotationType::AUTOMATIC));
    assert_eq!(
        rotated.rotation.as_ref().unwrap().next,
        clock.now() + 90 * Limits::default().day_millis,
        "the next one a period on"
    );
    assert_eq!(
        app.describe_key(&call, &off).await.unwrap().materials.len(),
        1
    );
    assert_eq!(maintenance.rotate_due_keys().await.unwrap(), 0, "done");
    app.enable_key(&call, &off, "").await.unwrap();
    clock.advance_days(1);
    assert_eq!(maintenance.rotate_due_keys().await.unwrap(), 1);
    let caught_up = app.describe_key(&call, &off).await.unwrap();
    assert_eq!(caught_up.materials.len(), 2);
    assert_eq!(
        caught_up.materials[1].rotation,
        Some(RotationType::AUTOMATIC)
    );
}

#[tokio::test]
async fn an_alias_history_holds_its_own_changes_under_both_names_and_needs_the_account_wide_watch()
{
    let app = app();
    let call = anonymous();
    let (k1, k2) = (new_key(&app, &call).await, new_key(&app, &call).await);
    app.create_alias(&call, "alias/a", &k1, "").await.unwrap();
    app.create_alias(&call, "alias/other", &k1, "")
        .await
        .unwrap();
    app.update_alias(&call, "alias/a", &k2, "", "")
        .await
        .unwrap();
    app.rename_alias(&call, "alias/a", "alias/b", "", "")
        .await
        .unwrap();

    let history = app.alias_history(&call, "alias/a").await.unwrap();
    let kinds: Vec<_> = history.events.iter().map(|e| e.kind).collect();
    use crate::domain::ChangeKind::*;
    assert_eq!(kinds, vec![Created, Updated, Renamed]);
    assert_eq!(
        history.events[1].previous_target.as_ref().unwrap().as_str(),
        k1
    );
    // The new name's history begins with the rename.
    let renamed = app.alias_history(&call, "alias/b").await.unwrap();
    assert_eq!(renamed.events.len(), 1);
    assert!(!history.truncated);

    // Without kms:WatchAliases on the account: refused, and audited.
    let reader = principal(&["kms:GetAlias", "kms:WatchAliases"], &["alias/*"]);
    assert_eq!(
        reason(app.alias_history(&reader, "alias/b").await),
        Reason::ACCESS_DENIED
    );
    let denied = audit(&app).await.pop().unwrap();
    assert_eq!(denied.outcome, "ACCESS_DENIED");
    assert_eq!(denied.action, "kms:WatchAliases");
}
