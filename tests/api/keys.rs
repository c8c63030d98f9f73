//! KeyService rules.

use aliasd::pb::{self, KeyManager, KeySpec, KeyState, KeyUsage};
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn create_key_defaults_to_symmetric_encrypt_enabled_customer() {
    let server = TestServer::start().await;
    let key = server
        .create_key_of(KeySpec::Unspecified, KeyUsage::Unspecified)
        .await;
    assert_eq!(key.key_spec(), KeySpec::SymmetricDefault);
    assert_eq!(key.key_usage(), KeyUsage::EncryptDecrypt);
    assert_eq!(key.key_state(), KeyState::Enabled);
    assert_eq!(key.key_manager(), KeyManager::Customer);
    assert!(aliasd::domain::names::is_lowercase_uuid(&key.key_id));
    assert_eq!(
        key.arn,
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/{}", key.key_id)
    );
    assert!(key.creation_time.is_some() && key.deletion_time.is_none());
    assert_eq!(server.describe(&key.key_id).await.unwrap(), key);
}

#[tokio::test]
async fn create_key_accepts_valid_spec_usage_pairs_only() {
    let server = TestServer::start().await;
    let valid = [
        (KeySpec::Hmac256, KeyUsage::GenerateVerifyMac),
        (KeySpec::Rsa2048, KeyUsage::SignVerify),
        (KeySpec::Rsa4096, KeyUsage::EncryptDecrypt),
        (KeySpec::EccNistP384, KeyUsage::KeyAgreement),
        (KeySpec::EccSecgP256k1, KeyUsage::SignVerify),
        (KeySpec::Sm2, KeyUsage::KeyAgreement),
    ];
    for (spec, usage) in valid {
        let key = server.create_key_of(spec, usage).await;
        assert_eq!((key.key_spec(), key.key_usage()), (spec, usage));
    }
    let invalid = [
        (KeySpec::SymmetricDefault, KeyUsage::SignVerify),
        (KeySpec::Hmac512, KeyUsage::EncryptDecrypt),
        (KeySpec::Rsa3072, KeyUsage::KeyAgreement),
        (KeySpec::EccNistP256, KeyUsage::EncryptDecrypt),
        (KeySpec::EccSecgP256k1, KeyUsage::KeyAgreement),
        (KeySpec::Sm2, KeyUsage::GenerateVerifyMac),
        (KeySpec::Rsa2048, KeyUsage::Unspecified),
    ];
    for (spec, usage) in invalid {
        let result = server
            .keys
            .clone()
            .create_key(pb::CreateKeyRequest {
                key_spec: spec as i32,
                key_usage: usage as i32,
                ..Default::default()
            })
            .await;
        let status = assert_error(result, Code::InvalidArgument, "INVALID_KEY_USAGE");
        assert_eq!(bad_field(&status), "key_usage");
    }
    assert_eq!(
        server.list_keys().await.len(),
        valid.len(),
        "invalid pairs created nothing"
    );
}

#[tokio::test]
async fn create_key_rejects_unknown_enums_and_long_descriptions() {
    let server = TestServer::start().await;
    let mut keys = server.keys.clone();
    let result = keys
        .create_key(pb::CreateKeyRequest {
            key_spec: 99,
            ..Default::default()
        })
        .await;
    assert_error(result, Code::InvalidArgument, "INVALID_KEY_SPEC");
    let result = keys
        .create_key(pb::CreateKeyRequest {
            key_usage: 42,
            ..Default::default()
        })
        .await;
    assert_error(result, Code::InvalidArgument, "INVALID_KEY_USAGE");
    let result = keys
        .create_key(pb::CreateKeyRequest {
            description: "é".repeat(8193),
            ..Default::default()
        })
        .await;
    let status = assert_error(result, Code::InvalidArgument, "INVALID_DESCRIPTION");
    assert_eq!(bad_field(&status), "description");
    let ok = keys
        .create_key(pb::CreateKeyRequest {
            description: "é".repeat(8192),
            ..Default::default()
        })
        .await;
    assert!(
        ok.is_ok(),
        "8192 characters (16 KiB of UTF-8) is within the limit"
    );
    assert_eq!(server.list_keys().await.len(), 1);
}

#[tokio::test]
async fn describe_key_accepts_id_arn_alias_and_alias_arn() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/app", &key.key_id).await.unwrap();
    for key_ref in [
        key.key_id.clone(),
        key.arn.clone(),
        "alias/app".to_string(),
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/app"),
    ] {
        assert_eq!(
            server.describe(&key_ref).await.unwrap().key_id,
            key.key_id,
            "{key_ref}"
        );
    }
}

#[tokio::test]
async fn describe_key_of_another_scope_is_not_found_and_malformed_is_invalid() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let other_account = format!("arn:aws:kms:us-east-1:111122223333:key/{}", key.key_id);
    let status = assert_error(
        server.describe(&other_account).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_eq!(kms_exception(&status), "NotFoundException");
    let other_region = format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/{}", key.key_id);
    assert_error(
        server.describe(&other_region).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    let other_partition = format!("arn:aws-cn:kms:us-east-1:{ACCOUNT}:key/{}", key.key_id);
    assert_error(
        server.describe(&other_partition).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    let alias_elsewhere = "arn:aws:kms:us-east-1:111122223333:alias/app";
    assert_error(
        server.describe(alias_elsewhere).await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_error(
        server.describe(&uuid()).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_error(
        server.describe("alias/missing").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );

    let status = assert_error(
        server.describe("not-a-key").await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
    assert_eq!(bad_field(&status), "key_id");
    assert_error(
        server.describe(&key.key_id.to_uppercase()).await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
    assert_error(
        server.describe("").await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
    assert_error(
        server.describe("arn:aws:kms:us-east-1").await,
        Code::InvalidArgument,
        "INVALID_ARN",
    );
    // A bad id inside an ARN: the message quotes the ARN the caller sent.
    let bad_arn = format!(
        "arn:aws:kms:us-east-1:{ACCOUNT}:key/{}",
        key.key_id.to_uppercase()
    );
    let status = assert_error(
        server.describe(&bad_arn).await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
    assert!(status.message().contains(&bad_arn), "{}", status.message());
    assert_error(
        server.describe("alias/bad name").await,
        Code::InvalidArgument,
        "INVALID_ALIAS_NAME",
    );
}

#[tokio::test]
async fn enable_and_disable_switch_states_and_are_idempotent() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let disabled = server.disable_key(&key.arn).await.unwrap();
    assert_eq!(disabled.key_state(), KeyState::Disabled);
    let again = server.disable_key(&key.key_id).await.unwrap();
    assert_eq!(again.key_state(), KeyState::Disabled);
    let enabled = server.enable_key(&key.key_id).await.unwrap();
    assert_eq!(enabled.key_state(), KeyState::Enabled);
    assert_eq!(
        server.describe(&key.key_id).await.unwrap().key_state(),
        KeyState::Enabled
    );
}

#[tokio::test]
async fn schedule_deletion_validates_the_window_and_defaults_to_30_days() {
    let server = TestServer::start().await;
    let mut keys = server.keys.clone();
    let key = server.create_key().await;
    for window in [6, 31, -1] {
        let result = server.schedule_deletion(&key.key_id, window).await;
        let status = assert_error(result, Code::InvalidArgument, "INVALID_PENDING_WINDOW");
        assert_eq!(bad_field(&status), "pending_window_in_days");
    }
    assert_eq!(
        server.describe(&key.key_id).await.unwrap().key_state(),
        KeyState::Enabled
    );

    let scheduled = keys
        .schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
            key_id: key.key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(scheduled.key_state(), KeyState::PendingDeletion);
    assert_eq!(scheduled.pending_window_in_days, 30);
    let created = scheduled.creation_time.unwrap().seconds;
    let deletion = scheduled.deletion_time.unwrap().seconds;
    assert!(
        (deletion - created - 30 * 86_400).abs() < 60,
        "deletion 30 days out"
    );

    let again = server.schedule_deletion(&key.key_id, 7).await;
    let status = assert_error(again, Code::FailedPrecondition, "KEY_INVALID_STATE");
    assert_eq!(kms_exception(&status), "KMSInvalidStateException");
    let after = server.describe(&key.key_id).await.unwrap();
    assert_eq!(
        after.pending_window_in_days, 30,
        "the failed call changed nothing"
    );

    for result in [
        server.enable_key(&key.key_id).await,
        server.disable_key(&key.key_id).await,
    ] {
        assert_error(result, Code::FailedPrecondition, "KEY_INVALID_STATE");
    }
}

#[tokio::test]
async fn cancel_deletion_only_from_pending_and_ends_disabled() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let result = server.cancel_deletion(&key.key_id).await;
    assert_error(result, Code::FailedPrecondition, "KEY_INVALID_STATE");
    server.schedule_deletion(&key.key_id, 7).await.unwrap();
    let cancelled = server.cancel_deletion(&key.key_id).await.unwrap();
    assert_eq!(cancelled.key_state(), KeyState::Disabled);
    assert!(cancelled.deletion_time.is_none());
    assert_eq!(
        server.describe(&key.key_id).await.unwrap().key_state(),
        KeyState::Disabled
    );
}

#[tokio::test]
async fn key_operations_on_missing_or_malformed_keys() {
    let server = TestServer::start().await;
    let result = server.enable_key(&uuid()).await;
    assert_error(result, Code::NotFound, "KEY_NOT_FOUND");
    let result = server.disable_key("alias/x").await;
    assert_error(result, Code::InvalidArgument, "TARGET_NOT_A_KEY");
    let result = server
        .keys
        .clone()
        .schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
            key_id: "zzz".into(),
            ..Default::default()
        })
        .await;
    assert_error(result, Code::InvalidArgument, "INVALID_KEY_ID");
}

#[tokio::test]
async fn create_key_request_ids_compare_requests_with_defaults_applied() {
    let server = TestServer::start().await;
    let mut keys = server.keys.clone();
    let request_id = uuid();
    let implicit = pb::CreateKeyRequest {
        request_id: request_id.clone(),
        ..Default::default()
    };
    let explicit = pb::CreateKeyRequest {
        key_spec: KeySpec::SymmetricDefault as i32,
        key_usage: KeyUsage::EncryptDecrypt as i32,
        request_id: request_id.clone(),
        ..Default::default()
    };
    let first = keys.create_key(implicit).await.unwrap().into_inner();
    let second = keys.create_key(explicit).await.unwrap().into_inner();
    assert_eq!(first, second, "the same request, spelled two ways");
    let different = pb::CreateKeyRequest {
        description: "other".into(),
        request_id,
        ..Default::default()
    };
    assert_error(
        keys.create_key(different).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(server.list_keys().await.len(), 1);
}

#[tokio::test]
async fn key_quota_per_account_is_enforced() {
    let server = TestServer::start_with(
        |c| c.quotas.max_keys_per_account = 3,
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    for _ in 0..3 {
        server.create_key().await;
    }
    let result = server
        .keys
        .clone()
        .create_key(pb::CreateKeyRequest::default())
        .await;
    let status = assert_error(result, Code::ResourceExhausted, "KEY_QUOTA_EXCEEDED");
    assert_eq!(kms_exception(&status), "LimitExceededException");
    assert_eq!(server.list_keys().await.len(), 3);
}

#[tokio::test]
async fn list_keys_pages_in_key_id_order_with_tamper_evident_tokens() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(server.create_key().await.key_id);
    }
    ids.sort();
    let mut keys = server.keys.clone();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = keys
            .list_keys(pb::ListKeysRequest {
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.keys.len() <= 3);
        seen.extend(page.keys.into_iter().map(|k| k.key_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    let result = keys
        .list_keys(pb::ListKeysRequest {
            page_size: 3,
            page_token: "forged".into(),
        })
        .await;
    let status = assert_error(result, Code::InvalidArgument, "INVALID_PAGE_TOKEN");
    assert_eq!(kms_exception(&status), "InvalidMarkerException");
    let result = keys
        .list_keys(pb::ListKeysRequest {
            page_size: -1,
            ..Default::default()
        })
        .await;
    assert_error(result, Code::InvalidArgument, "INVALID_PAGE_SIZE");
}

#[tokio::test]
async fn refusals_name_the_operation_and_count_in_good_english() {
    let server = TestServer::start_configured(|c| c.quotas.max_aliases_per_key = 1).await;
    let key = server.create_key().await;
    server
        .create_alias("alias/only", &key.key_id)
        .await
        .unwrap();
    let status = server.disable_key("alias/only").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .starts_with("DisableKey takes a key id or key ARN, not an alias"),
        "{}",
        status.message()
    );
    let status = server
        .create_alias("alias/second", &key.key_id)
        .await
        .unwrap_err();
    assert!(
        status.message().contains("already has 1 alias, the most"),
        "{}",
        status.message()
    );
}
