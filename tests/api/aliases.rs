//! AliasService rules: CreateAlias, UpdateAlias, DeleteAlias, RenameAlias,
//! GetAlias, etags and request_ids.

use aliasd::pb::{self, KeySpec, KeyUsage};
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn create_alias_returns_the_alias_with_bare_key_id_and_arn() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    // Target given as a key ARN: stored as the bare key id.
    let alias = server
        .create_alias("alias/payments/eu_1-a", &key.arn)
        .await
        .unwrap();
    assert_eq!(alias.alias_name, "alias/payments/eu_1-a");
    assert_eq!(
        alias.alias_arn,
        format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/payments/eu_1-a")
    );
    assert_eq!(alias.target_key_id, key.key_id);
    assert!(!alias.etag.is_empty());
    assert_eq!(alias.creation_time, alias.last_updated_time);
    assert_eq!(
        server.get_alias("alias/payments/eu_1-a").await.unwrap(),
        alias
    );
    assert_eq!(server.get_alias(&alias.alias_arn).await.unwrap(), alias);
}

#[tokio::test]
async fn alias_name_rules_are_checked_in_order() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let cases = [
        ("", "INVALID_ALIAS_NAME"), // rule 1: present
        (&*format!("alias/{}", "a".repeat(251)), "INVALID_ALIAS_NAME"), // rule 1: 257 characters
        ("alias/", "INVALID_ALIAS_NAME"), // rule 2
        ("payments", "INVALID_ALIAS_NAME"), // rule 2
        ("alias/a:b", "INVALID_ALIAS_NAME"), // rule 3
        ("alias/a b", "INVALID_ALIAS_NAME"), // rule 3
        ("alias/é", "INVALID_ALIAS_NAME"), // rule 3
    ];
    for (name, reason) in cases {
        let status = assert_error(
            server.create_alias(name, &key.key_id).await,
            Code::InvalidArgument,
            reason,
        );
        assert_eq!(bad_field(&status), "alias_name");
    }
    // Rule 2 is reported before rule 3 for a name that breaks both.
    let status = assert_error(
        server.create_alias("bad name", &key.key_id).await,
        Code::InvalidArgument,
        "INVALID_ALIAS_NAME",
    );
    assert!(
        status.message().contains("must begin with 'alias/'"),
        "{}",
        status.message()
    );
    // 256 characters is the limit, and is fine.
    let longest = format!("alias/{}", "a".repeat(250));
    server.create_alias(&longest, &key.key_id).await.unwrap();
    assert_eq!(server.alias_names("").await, vec![longest]);
}

#[tokio::test]
async fn reserved_names_cannot_be_created_updated_renamed_or_deleted() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    for name in ["alias/aws/ebs", "alias/evs/default", "alias/x/default"] {
        let status = assert_error(
            server.create_alias(name, &key.key_id).await,
            Code::PermissionDenied,
            "RESERVED_ALIAS",
        );
        assert_eq!(kms_exception(&status), "NotAuthorizedException");
        assert_error(
            server.update_alias(name, &key.key_id).await,
            Code::PermissionDenied,
            "RESERVED_ALIAS",
        );
        assert_error(
            server.delete_alias(name).await,
            Code::PermissionDenied,
            "RESERVED_ALIAS",
        );
    }
    server
        .create_alias("alias/mine", &key.key_id)
        .await
        .unwrap();
    let result = server.rename_alias("alias/mine", "alias/aws/mine").await;
    assert_error(result, Code::PermissionDenied, "RESERVED_ALIAS");
    assert_eq!(server.alias_names("").await, vec!["alias/mine"]);
}

#[tokio::test]
async fn create_alias_target_must_be_a_key_id_or_key_arn() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/one", &key.key_id).await.unwrap();
    for target in [
        "alias/one",
        &format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/one"),
    ] {
        let status = assert_error(
            server.create_alias("alias/two", target).await,
            Code::InvalidArgument,
            "TARGET_NOT_A_KEY",
        );
        assert_eq!(bad_field(&status), "target_key_id");
        assert!(status.message().contains("aliases must refer to keys"));
    }
    assert_error(
        server.create_alias("alias/two", "nope").await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
    assert_error(
        server.create_alias("alias/two", "").await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
    assert_error(
        server.create_alias("alias/two", &uuid()).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    let elsewhere = format!("arn:aws:kms:us-east-1:999999999999:key/{}", key.key_id);
    assert_error(
        server.create_alias("alias/two", &elsewhere).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_eq!(server.alias_names("").await, vec!["alias/one"]);
}

#[tokio::test]
async fn create_alias_on_pending_deletion_fails_but_disabled_is_allowed() {
    let server = TestServer::start().await;
    let pending = server.create_key().await;
    server.schedule_deletion(&pending.key_id, 7).await.unwrap();
    let status = assert_error(
        server.create_alias("alias/p", &pending.key_id).await,
        Code::FailedPrecondition,
        "KEY_PENDING_DELETION",
    );
    assert_eq!(kms_exception(&status), "KMSInvalidStateException");

    let disabled = server.create_key().await;
    server.disable_key(&disabled.key_id).await.unwrap();
    server
        .create_alias("alias/d", &disabled.key_id)
        .await
        .unwrap();
    assert_eq!(server.alias_names("").await, vec!["alias/d"]);
}

#[tokio::test]
async fn create_alias_with_an_existing_name_is_already_exists() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    server.create_alias("alias/x", &a.key_id).await.unwrap();
    let status = assert_error(
        server.create_alias("alias/x", &b.key_id).await,
        Code::AlreadyExists,
        "ALIAS_ALREADY_EXISTS",
    );
    assert_eq!(kms_exception(&status), "AlreadyExistsException");
    assert_eq!(
        server.get_alias("alias/x").await.unwrap().target_key_id,
        a.key_id
    );
}

#[tokio::test]
async fn alias_quota_per_key_is_enforced_on_create_and_update() {
    let server = TestServer::start_with(
        |c| c.quotas.max_aliases_per_key = 2,
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    let (full, other) = (server.create_key().await, server.create_key().await);
    server.create_alias("alias/a", &full.key_id).await.unwrap();
    server.create_alias("alias/b", &full.key_id).await.unwrap();
    let status = assert_error(
        server.create_alias("alias/c", &full.key_id).await,
        Code::ResourceExhausted,
        "ALIAS_QUOTA_EXCEEDED",
    );
    assert_eq!(kms_exception(&status), "LimitExceededException");
    server.create_alias("alias/c", &other.key_id).await.unwrap();
    let result = server.update_alias("alias/c", &full.key_id).await;
    assert_error(result, Code::ResourceExhausted, "ALIAS_QUOTA_EXCEEDED");
    assert_eq!(
        server.alias_names(&full.key_id).await,
        vec!["alias/a", "alias/b"]
    );
    assert_eq!(
        server.get_alias("alias/c").await.unwrap().target_key_id,
        other.key_id
    );
}

#[tokio::test]
async fn update_alias_repoints_and_changes_etag_but_not_name() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    let before = server.create_alias("alias/x", &a.key_id).await.unwrap();
    let after = server.update_alias("alias/x", &b.arn).await.unwrap();
    assert_eq!(after.alias_name, "alias/x");
    assert_eq!(after.target_key_id, b.key_id);
    assert_ne!(after.etag, before.etag);
    assert_eq!(after.creation_time, before.creation_time);
    assert_eq!(server.alias_names(&a.key_id).await, Vec::<String>::new());
    assert_eq!(server.alias_names(&b.key_id).await, vec!["alias/x"]);
}

#[tokio::test]
async fn update_alias_to_its_current_target_is_a_no_op() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let before = server.create_alias("alias/x", &key.key_id).await.unwrap();
    let after = server.update_alias("alias/x", &key.key_id).await.unwrap();
    assert_eq!(after, before, "nothing changed, not even the etag");
}

#[tokio::test]
async fn update_alias_of_missing_alias_is_not_found() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let result = server.update_alias("alias/ghost", &key.key_id).await;
    let status = assert_error(result, Code::NotFound, "ALIAS_NOT_FOUND");
    assert_eq!(
        status.message(),
        format!("Alias arn:aws:kms:us-east-1:{ACCOUNT}:alias/ghost is not found.")
    );
    assert!(server.alias_names("").await.is_empty());
}

#[tokio::test]
async fn update_alias_requires_same_key_class_and_usage() {
    let server = TestServer::start().await;
    let symmetric = server.create_key().await;
    let hmac = server
        .create_key_of(KeySpec::Hmac256, KeyUsage::GenerateVerifyMac)
        .await;
    let rsa_sign = server
        .create_key_of(KeySpec::Rsa2048, KeyUsage::SignVerify)
        .await;
    let rsa_encrypt = server
        .create_key_of(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt)
        .await;
    let ecc_sign = server
        .create_key_of(KeySpec::EccNistP256, KeyUsage::SignVerify)
        .await;
    let other_symmetric = server.create_key().await;

    server
        .create_alias("alias/sym", &symmetric.key_id)
        .await
        .unwrap();
    server
        .create_alias("alias/sign", &rsa_sign.key_id)
        .await
        .unwrap();
    // Class differs.
    for (name, target) in [
        ("alias/sym", &hmac),
        ("alias/sym", &rsa_encrypt),
        ("alias/sign", &hmac),
    ] {
        let status = assert_error(
            server.update_alias(name, &target.key_id).await,
            Code::FailedPrecondition,
            "KEY_TYPE_MISMATCH",
        );
        assert!(
            status.message().contains(&target.key_id),
            "names the new key: {}",
            status.message()
        );
    }
    // Same class, usage differs.
    let status = assert_error(
        server.update_alias("alias/sign", &rsa_encrypt.key_id).await,
        Code::FailedPrecondition,
        "KEY_TYPE_MISMATCH",
    );
    assert!(
        status.message().contains(&rsa_sign.key_id)
            && status.message().contains(&rsa_encrypt.key_id)
    );
    assert_eq!(
        server.get_alias("alias/sign").await.unwrap().target_key_id,
        rsa_sign.key_id
    );
    // Same class and usage across specs (RSA -> ECC, both asymmetric SIGN_VERIFY).
    server
        .update_alias("alias/sign", &ecc_sign.key_id)
        .await
        .unwrap();
    server
        .update_alias("alias/sym", &other_symmetric.key_id)
        .await
        .unwrap();
    assert_eq!(
        server.get_alias("alias/sign").await.unwrap().target_key_id,
        ecc_sign.key_id
    );
}

#[tokio::test]
async fn update_alias_new_target_must_not_be_pending_deletion_but_current_may_be() {
    let server = TestServer::start().await;
    let (a, b, c) = (
        server.create_key().await,
        server.create_key().await,
        server.create_key().await,
    );
    server.create_alias("alias/x", &a.key_id).await.unwrap();
    server.schedule_deletion(&b.key_id, 7).await.unwrap();
    let result = server.update_alias("alias/x", &b.key_id).await;
    assert_error(result, Code::FailedPrecondition, "KEY_PENDING_DELETION");
    assert_eq!(
        server.get_alias("alias/x").await.unwrap().target_key_id,
        a.key_id
    );
    // The current target pending deletion: moving away is how you rescue the alias.
    server.schedule_deletion(&a.key_id, 7).await.unwrap();
    server.update_alias("alias/x", &c.key_id).await.unwrap();
    assert_eq!(
        server.get_alias("alias/x").await.unwrap().target_key_id,
        c.key_id
    );
}

#[tokio::test]
async fn update_alias_target_must_exist_and_be_a_key() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/x", &key.key_id).await.unwrap();
    assert_error(
        server.update_alias("alias/x", &uuid()).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_error(
        server.update_alias("alias/x", "alias/x").await,
        Code::InvalidArgument,
        "TARGET_NOT_A_KEY",
    );
    assert_eq!(
        server.get_alias("alias/x").await.unwrap().target_key_id,
        key.key_id
    );
}

#[tokio::test]
async fn delete_alias_works_in_every_key_state_and_missing_is_not_found() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/x", &key.key_id).await.unwrap();
    server.schedule_deletion(&key.key_id, 7).await.unwrap();
    server.delete_alias("alias/x").await.unwrap();
    assert_error(
        server.get_alias("alias/x").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    let again = server.delete_alias("alias/x").await;
    assert_error(again, Code::NotFound, "ALIAS_NOT_FOUND");
    let bad = server.delete_alias("x").await;
    assert_error(bad, Code::InvalidArgument, "INVALID_ALIAS_NAME");
}

#[tokio::test]
async fn rename_alias_moves_the_name_and_keeps_the_target() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let before = server.create_alias("alias/old", &key.key_id).await.unwrap();
    let renamed = server.rename_alias("alias/old", "alias/new").await.unwrap();
    assert_eq!(renamed.alias_name, "alias/new");
    assert_eq!(renamed.target_key_id, key.key_id);
    assert_eq!(renamed.creation_time, before.creation_time);
    assert_ne!(renamed.etag, before.etag);
    assert_error(
        server.get_alias("alias/old").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_eq!(server.alias_names(&key.key_id).await, vec!["alias/new"]);
}

#[tokio::test]
async fn rename_alias_to_its_own_name_is_a_no_op() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let alias = server
        .create_alias("alias/same", &key.key_id)
        .await
        .unwrap();
    let renamed = server
        .rename_alias("alias/same", "alias/same")
        .await
        .unwrap();
    assert_eq!(renamed, alias, "unchanged, etag included");
}

#[tokio::test]
async fn rename_alias_rules() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/a", &key.key_id).await.unwrap();
    server.create_alias("alias/b", &key.key_id).await.unwrap();
    assert_error(
        server.rename_alias("alias/a", "alias/b").await,
        Code::AlreadyExists,
        "ALIAS_ALREADY_EXISTS",
    );
    assert_error(
        server.rename_alias("alias/zz", "alias/c").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    let status = assert_error(
        server.rename_alias("alias/a", "c").await,
        Code::InvalidArgument,
        "INVALID_ALIAS_NAME",
    );
    assert_eq!(bad_field(&status), "new_alias_name");
    server.schedule_deletion(&key.key_id, 7).await.unwrap();
    assert_error(
        server.rename_alias("alias/a", "alias/c").await,
        Code::FailedPrecondition,
        "KEY_PENDING_DELETION",
    );
    assert_eq!(server.alias_names("").await, vec!["alias/a", "alias/b"]);
}

#[tokio::test]
async fn etag_mismatch_aborts_and_changes_nothing() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    let alias = server.create_alias("alias/x", &a.key_id).await.unwrap();
    let mut aliases = server.aliases.clone();
    let stale = "0000000000000000".to_string();
    let result = aliases
        .update_alias(pb::UpdateAliasRequest {
            alias_name: "alias/x".into(),
            target_key_id: b.key_id.clone(),
            etag: stale.clone(),
            ..Default::default()
        })
        .await;
    assert_error(result, Code::Aborted, "ETAG_MISMATCH");
    let result = aliases
        .rename_alias(pb::RenameAliasRequest {
            alias_name: "alias/x".into(),
            new_alias_name: "alias/y".into(),
            etag: stale.clone(),
            ..Default::default()
        })
        .await;
    assert_error(result, Code::Aborted, "ETAG_MISMATCH");
    let result = aliases
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: "alias/x".into(),
            etag: stale,
            ..Default::default()
        })
        .await;
    assert_error(result, Code::Aborted, "ETAG_MISMATCH");
    assert_eq!(
        server.get_alias("alias/x").await.unwrap(),
        alias,
        "nothing changed"
    );

    // The current etag lets the change through, and the old one is then stale.
    let updated = aliases
        .update_alias(pb::UpdateAliasRequest {
            alias_name: "alias/x".into(),
            target_key_id: b.key_id.clone(),
            etag: alias.etag.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .alias
        .unwrap();
    let result = aliases
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: "alias/x".into(),
            etag: alias.etag,
            ..Default::default()
        })
        .await;
    assert_error(result, Code::Aborted, "ETAG_MISMATCH");
    aliases
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: "alias/x".into(),
            etag: updated.etag,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(server.alias_names("").await.is_empty());
}

#[tokio::test]
async fn request_id_repeat_returns_first_response_and_changes_nothing() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    let mut aliases = server.aliases.clone();
    let request_id = uuid();
    let create = pb::CreateAliasRequest {
        alias_name: "alias/x".into(),
        target_key_id: a.key_id.clone(),
        request_id: request_id.clone(),
    };
    let first = aliases
        .create_alias(create.clone())
        .await
        .unwrap()
        .into_inner();
    // The alias changes in between; the repeat still answers as the first call did.
    server.update_alias("alias/x", &b.key_id).await.unwrap();
    let repeat = aliases
        .create_alias(create.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(repeat, first);
    assert_eq!(
        server.get_alias("alias/x").await.unwrap().target_key_id,
        b.key_id,
        "the repeat changed nothing"
    );

    // Same request_id, different request.
    let different = pb::CreateAliasRequest {
        alias_name: "alias/y".into(),
        ..create
    };
    let status = assert_error(
        aliases.create_alias(different).await,
        Code::InvalidArgument,
        "REQUEST_ID_REUSED",
    );
    assert_eq!(bad_field(&status), "request_id");
    assert_eq!(server.alias_names("").await, vec!["alias/x"]);

    // request_id works on KeyService too.
    let create_key = pb::CreateKeyRequest {
        request_id: uuid(),
        ..Default::default()
    };
    let k1 = server
        .keys
        .clone()
        .create_key(create_key.clone())
        .await
        .unwrap()
        .into_inner();
    let k2 = server
        .keys
        .clone()
        .create_key(create_key)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(k1, k2);
    let keys = server.list_keys().await;
    assert_eq!(keys.len(), 3, "the repeated CreateKey made one key");

    let bad = aliases
        .delete_alias(pb::DeleteAliasRequest {
            alias_name: "alias/x".into(),
            request_id: "not-a-uuid".into(),
            ..Default::default()
        })
        .await;
    assert_error(bad, Code::InvalidArgument, "INVALID_REQUEST_ID");
    assert_eq!(server.alias_names("").await, vec!["alias/x"]);
}

#[tokio::test]
async fn request_ids_survive_a_restart() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let request = pb::DeleteAliasRequest {
        alias_name: "alias/x".into(),
        request_id: uuid(),
        ..Default::default()
    };
    server.create_alias("alias/x", &key.key_id).await.unwrap();
    server
        .aliases
        .clone()
        .delete_alias(request.clone())
        .await
        .unwrap();
    let dir = server.stop().await;
    let server = TestServer::start_in(
        dir,
        |_| {},
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    // A retry after the restart succeeds as the first call did (not NOT_FOUND).
    server.aliases.clone().delete_alias(request).await.unwrap();
}

#[tokio::test]
async fn get_alias_by_name_or_arn() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/x", &key.key_id).await.unwrap();
    assert_error(
        server.get_alias("alias/y").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    let elsewhere = "arn:aws:kms:us-east-1:111111111111:alias/x";
    assert_error(
        server.get_alias(elsewhere).await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_error(
        server.get_alias(&key.arn).await,
        Code::InvalidArgument,
        "INVALID_ALIAS_NAME",
    );
    assert_error(
        server.get_alias("arn:bad").await,
        Code::InvalidArgument,
        "INVALID_ARN",
    );
}
