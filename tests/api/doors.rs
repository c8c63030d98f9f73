//! One core, many doors: a change made through gRPC, the AWS JSON endpoint
//! or the Huawei endpoint is visible through the others at once, with the
//! same etag and revision, in the same change stream and audit log; gRPC's
//! request_id and Huawei's `sequence` are one idempotency space.

use aliasd::pb;
use tokio_stream::StreamExt;

use crate::common::*;

const PROJECT: &str = "0123456789abcdef0123456789abcdef";

async fn aws(server: &TestServer, operation: &str, body: serde_json::Value) -> HttpReply {
    let target = format!("TrentService.{operation}");
    http_call(
        server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", &target),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-request-id", "through-aws"),
        ],
        body.to_string().as_bytes(),
    )
    .await
}

async fn huawei(
    server: &TestServer,
    method: &str,
    operation: &str,
    body: serde_json::Value,
) -> HttpReply {
    let path = format!("/v1.0/{PROJECT}/kms/{operation}");
    let body = match body {
        serde_json::Value::Null => Vec::new(),
        body => body.to_string().into_bytes(),
    };
    http_call(
        server,
        method,
        &path,
        &[
            ("Content-Type", "application/json"),
            ("x-request-id", "through-huawei"),
        ],
        &body,
    )
    .await
}

async fn grpc_alias(server: &TestServer, name: &str) -> pb::Alias {
    server
        .aliases
        .clone()
        .get_alias(pb::GetAliasRequest {
            alias_name: name.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .alias
        .unwrap()
}

#[tokio::test]
async fn a_change_through_any_door_is_seen_through_every_other_in_one_stream_and_log() {
    let files = tempfile::tempdir().unwrap();
    let audit_log = files.path().join("audit.jsonl");
    let log = audit_log.clone();
    let server = TestServer::start_http(move |config| config.audit_log = Some(log)).await;
    let mut aliases = server.aliases.clone();
    let mut watch = aliases
        .watch_aliases(pb::WatchAliasesRequest {
            start_revision: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // gRPC creates two keys; AWS names the first.
    let first = server.create_key().await.key_id;
    let second = server.create_key().await.key_id;
    let reply = aws(
        &server,
        "CreateAlias",
        serde_json::json!({"AliasName": "alias/doors", "TargetKeyId": first.clone()}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let created = grpc_alias(&server, "alias/doors").await;
    assert_eq!(created.target_key_id, first);

    // Huawei sees it: describe-key gives the alias without its prefix, and
    // the alias API lists it with the same times.
    let reply = huawei(
        &server,
        "POST",
        "describe-key",
        serde_json::json!({"key_id": first}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(reply.json()["key_info"]["key_alias"], "doors");
    let reply = huawei(
        &server,
        "GET",
        &format!("aliases?key_id={first}"),
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let listed = &reply.json()[0]["aliases"][0];
    assert_eq!(listed["alias"], "alias/doors");
    assert_eq!(listed["key_id"], first);

    // Huawei re-points it; gRPC and AWS see the new target, and the etag
    // moved.
    let reply = huawei(
        &server,
        "POST",
        "alias/associate",
        serde_json::json!({"alias": "alias/doors", "target_key_id": second}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let updated = grpc_alias(&server, "alias/doors").await;
    assert_eq!(updated.target_key_id, second);
    assert_ne!(updated.etag, created.etag);
    let reply = aws(&server, "ListAliases", serde_json::json!({"KeyId": second})).await;
    assert_eq!(reply.status, 200);
    let entry = &reply.json()["Aliases"][0];
    assert_eq!(entry["AliasName"], "alias/doors");
    assert_eq!(entry["TargetKeyId"], second.as_str());
    assert_eq!(
        entry["LastUpdatedDate"].as_f64().unwrap().floor() as i64,
        updated.last_updated_time.unwrap().seconds
    );

    // gRPC renames it; AWS DescribeKey by the new name finds the key.
    let renamed = aliases
        .rename_alias(pb::RenameAliasRequest {
            alias_name: "alias/doors".into(),
            new_alias_name: "alias/doors-renamed".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alias
        .unwrap();
    let reply = aws(
        &server,
        "DescribeKey",
        serde_json::json!({"KeyId": "alias/doors-renamed"}),
    )
    .await;
    assert_eq!(reply.json()["KeyMetadata"]["KeyId"], second.as_str());

    // AWS deletes it.
    let reply = aws(
        &server,
        "DeleteAlias",
        serde_json::json!({"AliasName": "alias/doors-renamed"}),
    )
    .await;
    assert_eq!(reply.status, 200);

    // One change stream, revisions in order, whatever the door.
    let mut events = Vec::new();
    while events.len() < 4 {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
            .await
            .expect("the change arrives")
            .unwrap()
            .unwrap();
        events.push(event.event.expect("an event"));
    }
    let kinds: Vec<i32> = events.iter().map(|e| e.r#type).collect();
    assert_eq!(
        kinds,
        vec![
            pb::AliasEventType::Created as i32,
            pb::AliasEventType::Updated as i32,
            pb::AliasEventType::Renamed as i32,
            pb::AliasEventType::Deleted as i32,
        ]
    );
    assert!(events.windows(2).all(|w| w[0].revision < w[1].revision));
    // The etags the stream carries are the ones gRPC read.
    assert_eq!(events[0].alias.as_ref().unwrap().etag, created.etag);
    assert_eq!(events[1].alias.as_ref().unwrap().etag, updated.etag);
    assert_eq!(events[2].alias.as_ref().unwrap().etag, renamed.etag);

    // One audit log, each record with the x-request-id of its door.
    // Each record is mirrored once its change is durable, before the reply.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&audit_log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by = |action: &str| {
        records
            .iter()
            .find(|r| r["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {records:?}"))
            .clone()
    };
    assert_eq!(by("kms:CreateAlias")["x_request_id"], "through-aws");
    assert_eq!(by("kms:UpdateAlias")["x_request_id"], "through-huawei");
    assert_eq!(by("kms:DeleteAlias")["x_request_id"], "through-aws");
    assert_ne!(by("kms:RenameAlias")["x_request_id"], "through-aws");
}

#[tokio::test]
async fn grpc_request_id_and_huawei_sequence_are_one_idempotency_space() {
    let server = TestServer::start_http(|_| {}).await;
    let request_id = uuid::Uuid::new_v4().to_string();
    let key = server
        .keys
        .clone()
        .create_key(pb::CreateKeyRequest {
            description: "once".into(),
            request_id: request_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();

    // The same request through Huawei, with the request_id as its sequence:
    // the same key, not a second one.
    let reply = huawei(
        &server,
        "POST",
        "create-key",
        serde_json::json!({"key_description": "once", "sequence": request_id}),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert_eq!(reply.json()["key_info"]["key_id"], key.key_id.as_str());

    // A different request with that sequence is refused, and creates nothing.
    let reply = huawei(
        &server,
        "POST",
        "create-key",
        serde_json::json!({"key_description": "another", "sequence": request_id}),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0206");
    let keys = server
        .keys
        .clone()
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1, "{keys:?}");
}
