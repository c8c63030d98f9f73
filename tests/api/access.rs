//! Access control: authentication, policies, account isolation, audit and
//! throttling, through the real server with an auth file.

use std::path::PathBuf;
use std::sync::Arc;

use aliasd::domain::SystemClock;
use aliasd::pb;
use aliasd::pb::alias_service_client::AliasServiceClient;
use aliasd::pb::audit_service_client::AuditServiceClient;
use aliasd::pb::key_service_client::KeyServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::common::*;

const A: &str = "111111111111";
const B: &str = "222222222222";
const K1: &str = "11111111-0000-4000-8000-000000000001";
const K2: &str = "11111111-0000-4000-8000-000000000002";
const K3: &str = "11111111-0000-4000-8000-000000000003";
const KB: &str = "22222222-0000-4000-8000-000000000001";

fn auth_file(extra: &str) -> String {
    format!(
        r#"
[[principals]]
name = "admin-a"
account = "{A}"
token_sha256 = "{admin_a}"
[[principals.statements]]
actions = ["kms:*"]
resources = ["*"]

[[principals]]
name = "admin-b"
account = "{B}"
token_sha256 = ["{admin_b}"]
[[principals.statements]]
actions = "kms:*"
resources = "*"

[[principals]]
name = "payments"
account = "{A}"
token_sha256 = "{payments}"
[[principals.statements]]
actions = ["kms:CreateAlias", "kms:UpdateAlias", "kms:RenameAlias", "kms:DeleteAlias", "kms:GetAlias"]
resources = ["alias/payments-*", "{K1}", "{K2}"]
[[principals.statements]]
actions = ["kms:Describe*"]
resources = ["{K1}"]

[[principals]]
name = "reader"
account = "{A}"
token_sha256 = "{reader}"
[[principals.statements]]
actions = ["kms:List*"]
resources = ["*"]

[[principals]]
name = "auditor"
account = "{A}"
token_sha256 = "{auditor}"
[[principals.statements]]
actions = ["kms:ListAuditEvents"]
resources = ["*"]
{extra}
"#,
        admin_a = token_sha256("admin-a-token"),
        admin_b = token_sha256("admin-b-token"),
        payments = token_sha256("payments-token"),
        reader = token_sha256("reader-token"),
        auditor = token_sha256("auditor-token"),
    )
}

const SEED: &str = r#"
[[keys]]
key_id = "11111111-0000-4000-8000-000000000001"
account = "111111111111"
[[keys]]
key_id = "11111111-0000-4000-8000-000000000002"
account = "111111111111"
[[keys]]
key_id = "11111111-0000-4000-8000-000000000003"
account = "111111111111"
[[keys]]
key_id = "22222222-0000-4000-8000-000000000001"
account = "222222222222"

[[aliases]]
alias_name = "alias/payments-main"
target_key_id = "11111111-0000-4000-8000-000000000001"
account = "111111111111"
[[aliases]]
alias_name = "alias/other"
target_key_id = "11111111-0000-4000-8000-000000000003"
account = "111111111111"
[[aliases]]
alias_name = "alias/b-alias"
target_key_id = "22222222-0000-4000-8000-000000000001"
account = "222222222222"
"#;

struct Secured {
    server: TestServer,
    audit_log: PathBuf,
    _files: tempfile::TempDir,
}

async fn secured_with(extra: &str) -> Secured {
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    let seed = files.path().join("seed.toml");
    let audit_log = files.path().join("audit.jsonl");
    std::fs::write(&auth, auth_file(extra)).unwrap();
    std::fs::write(&seed, SEED).unwrap();
    let log = audit_log.clone();
    let server = TestServer::start_with(
        move |c| {
            c.auth_file = Some(auth);
            c.seed = Some(seed);
            c.audit_log = Some(log);
        },
        Arc::new(SystemClock),
    )
    .await;
    Secured {
        server,
        audit_log,
        _files: files,
    }
}

async fn secured() -> Secured {
    secured_with("").await
}

fn create(name: &str, key: &str) -> pb::CreateAliasRequest {
    pb::CreateAliasRequest {
        alias_name: name.into(),
        target_key_id: key.into(),
        request_id: String::new(),
    }
}

fn update(name: &str, key: &str) -> pb::UpdateAliasRequest {
    pb::UpdateAliasRequest {
        alias_name: name.into(),
        target_key_id: key.into(),
        ..Default::default()
    }
}

fn describe(key: &str) -> pb::DescribeKeyRequest {
    pb::DescribeKeyRequest { key_id: key.into() }
}

#[tokio::test]
async fn calls_without_valid_credentials_are_unauthenticated() {
    let s = secured().await;
    let mut keys = s.server.keys.clone();
    let status = assert_error(
        keys.describe_key(describe(K1)).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    assert_eq!(kms_exception(&status), "UnrecognizedClientException");
    assert_error(
        keys.describe_key(bearer("wrong-token", describe(K1))).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    let mut basic = Request::new(describe(K1));
    basic
        .metadata_mut()
        .insert("authorization", "Basic YWRtaW46YWRtaW4=".parse().unwrap());
    assert_error(
        keys.describe_key(basic).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
    );
    // The right token works.
    let key = keys
        .describe_key(bearer("admin-a-token", describe(K1)))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(key.account, A);
    assert_eq!(key.arn, format!("arn:aws:kms:us-east-1:{A}:key/{K1}"));
}

#[tokio::test]
async fn health_and_reflection_need_no_credentials() {
    let s = secured().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.server.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut reflection = ServerReflectionClient::new(s.server.channel.clone());
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    assert!(responses.next().await.unwrap().is_ok());
}

#[tokio::test]
async fn another_accounts_resources_are_not_found_never_permission_denied() {
    let s = secured().await;
    let mut keys = s.server.keys.clone();
    let mut aliases = s.server.aliases.clone();
    let b = "admin-b-token";
    // A bare key id of account A, from account B.
    assert_error(
        keys.describe_key(bearer(b, describe(K1))).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    // Account A's alias ARN, by DescribeKey and GetAlias.
    let alias_arn = format!("arn:aws:kms:us-east-1:{A}:alias/payments-main");
    assert_error(
        keys.describe_key(bearer(b, describe(&alias_arn))).await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_error(
        keys.describe_key(bearer(b, describe("alias/payments-main")))
            .await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    let get = pb::GetAliasRequest {
        alias_name: alias_arn,
    };
    assert_error(
        aliases.get_alias(bearer(b, get)).await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    // Pointing B's alias at A's key, or watching A's key.
    assert_error(
        aliases
            .update_alias(bearer(b, update("alias/b-alias", K1)))
            .await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    let watch = pb::WatchAliasesRequest {
        key_id: K1.into(),
        start_revision: Some(0),
        progress_notify: false,
    };
    assert_error(
        aliases.watch_aliases(bearer(b, watch)).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    let list = pb::ListAliasesRequest {
        key_id: K1.into(),
        ..Default::default()
    };
    assert_error(
        aliases.list_aliases(bearer(b, list)).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );

    // Each account sees only its own.
    let listed = aliases
        .list_aliases(bearer(b, pb::ListAliasesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = listed
        .aliases
        .iter()
        .map(|a| a.alias_name.as_str())
        .collect();
    assert_eq!(names, ["alias/b-alias"]);
    let keys_of_b = keys
        .list_keys(bearer(b, pb::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(
        keys_of_b
            .iter()
            .map(|k| k.key_id.as_str())
            .collect::<Vec<_>>(),
        [KB]
    );

    // A page token of account A is useless in account B.
    let page = pb::ListAliasesRequest {
        page_size: 1,
        ..Default::default()
    };
    let token = aliases
        .list_aliases(bearer("admin-a-token", page))
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let stolen = pb::ListAliasesRequest {
        page_size: 1,
        page_token: token,
        ..Default::default()
    };
    assert_error(
        aliases.list_aliases(bearer(b, stolen)).await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );

    // Revisions are per account: B watching from 0 sees only B's change.
    let mut stream = aliases
        .watch_aliases(bearer(
            b,
            pb::WatchAliasesRequest {
                key_id: String::new(),
                start_revision: Some(0),
                progress_notify: false,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = stream.next().await.unwrap().unwrap().event.unwrap();
    assert_eq!(
        (first.revision, first.alias.unwrap().alias_name.as_str()),
        (1, "alias/b-alias")
    );
    let a_head = aliases
        .list_aliases(bearer("admin-a-token", pb::ListAliasesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .revision;
    let from_a = pb::WatchAliasesRequest {
        key_id: String::new(),
        start_revision: Some(a_head),
        progress_notify: false,
    };
    assert_error(
        aliases.watch_aliases(bearer(b, from_a)).await,
        Code::OutOfRange,
        "FUTURE_REVISION",
    );

    // Nothing of A changed.
    assert_eq!(target_in_a(&mut aliases, "alias/payments-main").await, K1);
}

#[tokio::test]
async fn policy_statements_match_exact_and_wildcard_actions_and_resources() {
    let s = secured().await;
    let mut keys = s.server.keys.clone();
    let mut aliases = s.server.aliases.clone();
    let p = "payments-token";
    // Exact action, alias pattern and key id resources.
    aliases
        .create_alias(bearer(p, create("alias/payments-new", K2)))
        .await
        .unwrap();
    let status = assert_error(
        aliases
            .create_alias(bearer(p, create("alias/billing", K1)))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert_eq!(kms_exception(&status), "AccessDeniedException");
    assert!(
        status.message().contains("payments")
            && status.message().contains("kms:CreateAlias")
            && status.message().contains("alias/billing"),
        "{}",
        status.message()
    );
    let status = assert_error(
        aliases
            .create_alias(bearer(p, create("alias/payments-k3", K3)))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert!(status.message().contains(K3), "{}", status.message());
    // kms:Describe* on one key.
    keys.describe_key(bearer(p, describe(K1))).await.unwrap();
    assert_error(
        keys.describe_key(bearer(p, describe(K2))).await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    // Account-wide actions need the resource "*".
    assert_error(
        keys.list_keys(bearer(p, pb::ListKeysRequest::default()))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    // kms:List* on "*".
    let r = "reader-token";
    assert_eq!(
        keys.list_keys(bearer(r, pb::ListKeysRequest::default()))
            .await
            .unwrap()
            .into_inner()
            .keys
            .len(),
        3
    );
    aliases
        .list_aliases(bearer(r, pb::ListAliasesRequest::default()))
        .await
        .unwrap();
    assert_error(
        aliases.create_alias(bearer(r, create("alias/r", K1))).await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert_error(
        keys.describe_key(bearer(r, describe(K1))).await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    // kms:* on "*".
    keys.create_key(bearer("admin-a-token", pb::CreateKeyRequest::default()))
        .await
        .unwrap();
    // The denied calls changed nothing.
    let names = names_in_a(&mut aliases).await;
    assert_eq!(
        names,
        ["alias/other", "alias/payments-main", "alias/payments-new"]
    );
}

#[tokio::test]
async fn update_alias_needs_the_alias_the_current_key_and_the_new_key() {
    let s = secured().await;
    let mut aliases = s.server.aliases.clone();
    let p = "payments-token";
    // All three allowed.
    aliases
        .update_alias(bearer(p, update("alias/payments-main", K2)))
        .await
        .unwrap();
    // New key not allowed.
    let status = assert_error(
        aliases
            .update_alias(bearer(p, update("alias/payments-main", K3)))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert!(status.message().contains(K3));
    // Current key not allowed (the admin points a payments alias at K3 first).
    aliases
        .create_alias(bearer("admin-a-token", create("alias/payments-k3", K3)))
        .await
        .unwrap();
    let status = assert_error(
        aliases
            .update_alias(bearer(p, update("alias/payments-k3", K1)))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert!(
        status.message().contains(K3),
        "names the current key: {}",
        status.message()
    );
    // Alias not allowed.
    let status = assert_error(
        aliases
            .update_alias(bearer(p, update("alias/other", K1)))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert!(status.message().contains("alias/other"));
    assert_eq!(target_in_a(&mut aliases, "alias/payments-main").await, K2);
    assert_eq!(target_in_a(&mut aliases, "alias/payments-k3").await, K3);
    assert_eq!(target_in_a(&mut aliases, "alias/other").await, K3);
}

#[tokio::test]
async fn rename_alias_needs_both_names() {
    let s = secured().await;
    let mut aliases = s.server.aliases.clone();
    let p = "payments-token";
    let rename = |from: &str, to: &str| pb::RenameAliasRequest {
        alias_name: from.into(),
        new_alias_name: to.into(),
        ..Default::default()
    };
    let status = assert_error(
        aliases
            .rename_alias(bearer(p, rename("alias/payments-main", "alias/billing")))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert!(status.message().contains("alias/billing"));
    assert_error(
        aliases
            .rename_alias(bearer(p, rename("alias/other", "alias/payments-other")))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    aliases
        .rename_alias(bearer(
            p,
            rename("alias/payments-main", "alias/payments-renamed"),
        ))
        .await
        .unwrap();
    let names = names_in_a(&mut aliases).await;
    assert_eq!(names, ["alias/other", "alias/payments-renamed"]);
}

async fn audit_events(s: &Secured, request: pb::ListAuditEventsRequest) -> Vec<pb::AuditEvent> {
    let mut client = AuditServiceClient::new(s.server.channel.clone());
    let mut events = Vec::new();
    let mut request = request;
    loop {
        let page = client
            .list_audit_events(bearer("auditor-token", request.clone()))
            .await
            .unwrap()
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        request.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn changes_and_denied_calls_are_audited_and_rolled_back_calls_are_not() {
    let s = secured().await;
    let mut aliases = s.server.aliases.clone();
    let p = "payments-token";
    let mut request = bearer(
        p,
        pb::CreateAliasRequest {
            request_id: uuid(),
            ..create("alias/payments-audited", K1)
        },
    );
    request
        .metadata_mut()
        .insert("x-request-id", "audit-trace-1".parse().unwrap());
    let request_id = request.get_ref().request_id.clone();
    aliases.create_alias(request).await.unwrap();
    // Rolled back: ALREADY_EXISTS leaves no record.
    assert_error(
        aliases
            .create_alias(bearer(p, create("alias/payments-audited", K2)))
            .await,
        Code::AlreadyExists,
        "ALIAS_ALREADY_EXISTS",
    );
    // Denied: recorded.
    assert_error(
        aliases
            .create_alias(bearer(p, create("alias/billing", K1)))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    // A denied CreateKey names what was authorized ("*"), not a key id
    // that was never created.
    let mut keys = KeyServiceClient::new(s.server.channel.clone());
    assert_error(
        keys.create_key(bearer(p, pb::CreateKeyRequest::default()))
            .await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    // Unauthenticated: recorded (in the server's default account and the JSON lines log).
    let _ = aliases
        .create_alias(bearer("stolen-token", create("alias/x", K1)))
        .await
        .unwrap_err();

    let events = audit_events(
        &s,
        pb::ListAuditEventsRequest {
            principal: "payments".into(),
            ..Default::default()
        },
    )
    .await;
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.outcome.as_str(), e.resources.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "kms:CreateAlias",
                "OK",
                vec!["alias/payments-audited".to_string(), K1.to_string()]
            ),
            (
                "kms:CreateAlias",
                "ACCESS_DENIED",
                vec!["alias/billing".to_string(), K1.to_string()]
            ),
            ("kms:CreateKey", "ACCESS_DENIED", vec!["*".to_string()]),
        ]
    );
    let ok = &events[0];
    assert_eq!(
        (
            ok.account.as_str(),
            ok.request_id.as_str(),
            ok.x_request_id.as_str()
        ),
        (A, request_id.as_str(), "audit-trace-1")
    );
    assert!(ok.time.is_some() && ok.sequence > 0);
    assert!(events[1].message.contains("not allowed"));

    // Filters: by action, and by time (nothing before the epoch + 1 s).
    let creates = audit_events(
        &s,
        pb::ListAuditEventsRequest {
            action: "kms:CreateAlias".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(creates.len(), 2);
    let none = audit_events(
        &s,
        pb::ListAuditEventsRequest {
            end_time: Some(prost_types::Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..Default::default()
        },
    )
    .await;
    assert!(none.is_empty());
    // Paging one at a time yields the same records in order.
    let all = audit_events(&s, pb::ListAuditEventsRequest::default()).await;
    let paged = audit_events(
        &s,
        pb::ListAuditEventsRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(all, paged);
    assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));

    // Only principals allowed kms:ListAuditEvents may read it.
    let mut client = AuditServiceClient::new(s.server.channel.clone());
    let result = client
        .list_audit_events(bearer(p, pb::ListAuditEventsRequest::default()))
        .await;
    assert_error(result, Code::PermissionDenied, "ACCESS_DENIED");
    // No wildcard grants it: not the reader's kms:List*, not the admin's kms:*.
    for token in ["reader-token", "admin-a-token"] {
        let result = client
            .list_audit_events(bearer(token, pb::ListAuditEventsRequest::default()))
            .await;
        let status = assert_error(result, Code::PermissionDenied, "ACCESS_DENIED");
        assert!(
            status.message().contains("kms:ListAuditEvents"),
            "{}",
            status.message()
        );
    }

    // The JSON lines mirror has the same records, the unauthenticated call included.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&s.audit_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // An unauthenticated call is recorded with where it came from.
    assert!(lines.iter().any(|l| l["outcome"] == "UNAUTHENTICATED"
        && l["action"] == "kms:CreateAlias"
        && l["door"] == "grpc"
        && l["source_address"] == "127.0.0.1"));
    assert!(lines
        .iter()
        .any(|l| l["outcome"] == "OK" && l["x_request_id"] == "audit-trace-1"));
    assert!(!lines.iter().any(|l| l["outcome"] == "ALIAS_ALREADY_EXISTS"));
}

#[tokio::test]
async fn throttling_per_account_and_action_answers_with_retry_info() {
    let throttle = r#"
[throttle.actions."kms:DescribeKey"]
rate = 0.5
burst = 2
"#;
    let s = secured_with(throttle).await;
    let mut keys = s.server.keys.clone();
    keys.describe_key(bearer("admin-a-token", describe(K1)))
        .await
        .unwrap();
    keys.describe_key(bearer("admin-a-token", describe(K1)))
        .await
        .unwrap();
    let status = assert_error(
        keys.describe_key(bearer("admin-a-token", describe(K1)))
            .await,
        Code::ResourceExhausted,
        "THROTTLED",
    );
    assert_eq!(kms_exception(&status), "ThrottlingException");
    let retry = status
        .get_details_retry_info()
        .expect("RetryInfo")
        .retry_delay
        .expect("a delay");
    assert!(
        retry.as_secs_f64() > 0.0 && retry.as_secs_f64() <= 2.0,
        "{retry:?}"
    );
    // Another action, and another account, have their own buckets.
    keys.list_keys(bearer("admin-a-token", pb::ListKeysRequest::default()))
        .await
        .unwrap();
    keys.describe_key(bearer("admin-b-token", describe(KB)))
        .await
        .unwrap();
}

#[tokio::test]
async fn throttling_by_flags_without_an_auth_file() {
    let server = TestServer::start_with(
        |c| {
            c.throttle_rate = 0.1;
            c.throttle_burst = 1.0;
        },
        Arc::new(SystemClock),
    )
    .await;
    server.list_keys().await;
    let result = server
        .keys
        .clone()
        .list_keys(pb::ListKeysRequest::default())
        .await;
    assert_error(result, Code::ResourceExhausted, "THROTTLED");
}

#[tokio::test]
async fn without_an_auth_file_a_non_loopback_address_needs_allow_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.listen = "0.0.0.0:0".parse().unwrap();
    let error = aliasd::server::start(
        config.clone(),
        Arc::new(SystemClock),
        std::future::pending(),
    )
    .await
    .err()
    .expect("refused");
    assert!(error.to_string().contains("without --auth-file"), "{error}");
    // Either way out is accepted by the configuration check.
    config.allow_anonymous = true;
    assert!(config.validate().is_ok());
    config.allow_anonymous = false;
    config.auth_file = Some(dir.path().join("auth.toml"));
    assert!(config.validate().is_ok());
    config.auth_file = None;
    config.listen = "[::1]:0".parse().unwrap();
    assert!(config.validate().is_ok(), "loopback needs nothing");
}

#[tokio::test]
async fn audit_filters_are_bounded() {
    let s = secured().await;
    let mut client = AuditServiceClient::new(s.server.channel.clone());
    let request = pb::ListAuditEventsRequest {
        principal: "p".repeat(257),
        ..Default::default()
    };
    let status = assert_error(
        client
            .list_audit_events(bearer("auditor-token", request))
            .await,
        Code::InvalidArgument,
        "FIELD_TOO_LONG",
    );
    assert_eq!(bad_field(&status), "principal");
    let request = pb::ListAuditEventsRequest {
        page_token: "forged".into(),
        ..Default::default()
    };
    assert_error(
        client
            .list_audit_events(bearer("auditor-token", request))
            .await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
}

#[tokio::test]
async fn a_request_id_replay_is_bound_to_its_principal() {
    let s = secured().await;
    let mut aliases = s.server.aliases.clone();
    let request = pb::CreateAliasRequest {
        request_id: uuid(),
        ..create("alias/payments-once", K1)
    };
    aliases
        .create_alias(bearer("admin-a-token", request.clone()))
        .await
        .unwrap();
    // The same request and request_id from another principal of the account is
    // not a repeat: it gets no copy of the first response.
    let result = aliases
        .create_alias(bearer("payments-token", request.clone()))
        .await;
    assert_error(result, Code::InvalidArgument, "REQUEST_ID_REUSED");
    // The first principal's repeat still replays.
    aliases
        .create_alias(bearer("admin-a-token", request))
        .await
        .unwrap();
}

#[tokio::test]
async fn rename_alias_also_needs_the_aliass_key() {
    let s = secured().await;
    let mut aliases = s.server.aliases.clone();
    aliases
        .create_alias(bearer("admin-a-token", create("alias/payments-on-k3", K3)))
        .await
        .unwrap();
    let rename = pb::RenameAliasRequest {
        alias_name: "alias/payments-on-k3".into(),
        new_alias_name: "alias/payments-moved".into(),
        ..Default::default()
    };
    let status = assert_error(
        aliases.rename_alias(bearer("payments-token", rename)).await,
        Code::PermissionDenied,
        "ACCESS_DENIED",
    );
    assert!(status.message().contains(K3), "{}", status.message());
}

#[tokio::test]
async fn describe_key_by_alias_does_not_reveal_a_hidden_key_in_its_denial() {
    let s = secured().await;
    let result = s
        .server
        .keys
        .clone()
        .describe_key(bearer("payments-token", describe("alias/other")))
        .await;
    let status = assert_error(result, Code::PermissionDenied, "ACCESS_DENIED");
    assert!(
        status.message().contains("alias/other"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains(K3),
        "the key id stays hidden: {}",
        status.message()
    );
}

#[tokio::test]
async fn unauthenticated_calls_are_audited_within_a_budget_per_peer() {
    let s = secured().await;
    let mut keys = s.server.keys.clone();
    for _ in 0..100 {
        let _ = keys
            .describe_key(bearer("nobody", describe(K1)))
            .await
            .unwrap_err();
    }
    // The records are written in the background: wait for the first 20
    // (only the budget's are written at all, so waiting longer could only
    // add the few the budget refilled).
    let read = || {
        std::fs::read_to_string(&s.audit_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|l: &serde_json::Value| l["outcome"] == "UNAUTHENTICATED")
            .collect::<Vec<serde_json::Value>>()
    };
    let mut records = read();
    for _ in 0..500 {
        if records.len() >= 20 {
            break;
        }
        // Hang guard only.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        records = read();
    }
    assert!(
        records.len() >= 20,
        "the first calls are recorded ({})",
        records.len()
    );
    assert!(records.len() < 100, "but not all 100 ({})", records.len());
}

/// The target of an alias, read by account A's admin.
async fn target_in_a(aliases: &mut AliasServiceClient<Channel>, name: &str) -> String {
    let request = pb::GetAliasRequest {
        alias_name: name.into(),
    };
    aliases
        .get_alias(bearer("admin-a-token", request))
        .await
        .unwrap()
        .into_inner()
        .alias
        .unwrap()
        .target_key_id
}

/// The alias names of account A, listed by the reader.
async fn names_in_a(aliases: &mut AliasServiceClient<Channel>) -> Vec<String> {
    aliases
        .list_aliases(bearer("reader-token", pb::ListAliasesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .aliases
        .into_iter()
        .map(|a| a.alias_name)
        .collect()
}

/// A ciphertext made in account A, given to Decrypt in account B, answers
/// exactly as a key B does not have: the same reason and message as
/// DescribeKey of that key id in B (SPEC §11).
#[tokio::test]
async fn a_ciphertext_of_another_account_decrypts_as_a_missing_key() {
    let s = secured().await;
    let mut crypto =
        aliasd::pb::crypto_service_client::CryptoServiceClient::new(s.server.channel.clone());
    let blob = crypto
        .encrypt(bearer(
            "admin-a-token",
            pb::EncryptRequest {
                key_id: K1.into(),
                plaintext: b"account a".to_vec().into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .ciphertext_blob;
    let refused = assert_error(
        crypto
            .decrypt(bearer(
                "admin-b-token",
                pb::DecryptRequest {
                    ciphertext_blob: blob.clone(),
                    ..Default::default()
                },
            ))
            .await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    let missing = assert_error(
        s.server
            .keys
            .clone()
            .describe_key(bearer("admin-b-token", describe(K1)))
            .await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_eq!(refused.message(), missing.message());
    // In its own account it still decrypts.
    let opened = crypto
        .decrypt(bearer(
            "admin-a-token",
            pb::DecryptRequest {
                ciphertext_blob: blob,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.plaintext, b"account a");
}
