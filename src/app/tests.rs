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
use crate::domain::{Reason, Scope, SystemClock};
use crate::store::{Engine, Store};

const ACCOUNT: &str = "111122223333";
const REQUEST: &str = "5a0c1bd6-7f7c-4f58-a0d6-2f1d4b4b6f11";

fn app() -> Arc<App> {
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
        clock: Arc::new(SystemClock),
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
    Call::new(Caller::Anonymous, "trace-1")
}

/// A principal of ACCOUNT allowed `actions` on `resources`.
fn principal(actions: &[&str], resources: &[&str]) -> Call {
    Call::new(
        Caller::Principal(Arc::new(Principal {
            name: "deployer".into(),
            account: ACCOUNT.into(),
            statements: vec![Statement {
                actions: actions.iter().map(|a| a.to_string()).collect(),
                resources: resources.iter().map(|r| r.to_string()).collect(),
            }],
            project_ids: Vec::new(),
        })),
        "trace-2",
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
