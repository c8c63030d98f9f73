//! The seed file and PROVIDER keys.

use std::sync::Arc;

use aliasd::domain::SystemClock;
use aliasd::pb::{self, KeyManager};
use tonic::Code;

use crate::common::*;

const PROVIDER: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const CUSTOMER: &str = "cccccccc-0000-4000-8000-000000000002";

const TOML_SEED: &str = r#"
[[keys]]
key_id = "aaaaaaaa-0000-4000-8000-000000000001"
description = "Default key for EBS"
key_manager = "PROVIDER"

[[keys]]
key_id = "cccccccc-0000-4000-8000-000000000002"
key_spec = "RSA_2048"
key_usage = "SIGN_VERIFY"

[[aliases]]
alias_name = "alias/aws/ebs"
target_key_id = "aaaaaaaa-0000-4000-8000-000000000001"

[[aliases]]
alias_name = "alias/evs/default"
target_key_id = "aaaaaaaa-0000-4000-8000-000000000001"

[[aliases]]
alias_name = "alias/signing"
target_key_id = "cccccccc-0000-4000-8000-000000000002"
"#;

async fn seeded(file_name: &str, contents: &str) -> (TestServer, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, contents).unwrap();
    let seed = path.clone();
    let server = TestServer::start_with(move |c| c.seed = Some(seed), Arc::new(SystemClock)).await;
    // Keep the seed file's directory alive with the server.
    std::mem::forget(dir);
    (server, path)
}

#[tokio::test]
async fn seed_file_creates_provider_keys_and_reserved_aliases_idempotently() {
    let (server, path) = seeded("seed.toml", TOML_SEED).await;
    let key = server.describe("alias/aws/ebs").await.unwrap();
    assert_eq!(key.key_id, PROVIDER);
    assert_eq!(key.key_manager(), KeyManager::Provider);
    assert_eq!(
        server.alias_names("").await,
        vec!["alias/aws/ebs", "alias/evs/default", "alias/signing"]
    );
    let revision = server
        .aliases
        .clone()
        .list_aliases(pb::ListAliasesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .revision;

    // A rerun with the same file changes nothing.
    let dir = server.stop().await;
    let seed = path.clone();
    let server =
        TestServer::start_in(dir, move |c| c.seed = Some(seed), Arc::new(SystemClock)).await;
    let again = server
        .aliases
        .clone()
        .list_aliases(pb::ListAliasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.revision, revision);
    assert_eq!(again.aliases.len(), 3);
    assert_eq!(server.list_keys().await.len(), 2);
}

#[tokio::test]
async fn json_seed_files_work_too() {
    let json = r#"{"keys": [{"key_id": "cccccccc-0000-4000-8000-000000000002"}],
                   "aliases": [{"alias_name": "alias/app", "target_key_id": "cccccccc-0000-4000-8000-000000000002"}]}"#;
    let (server, _) = seeded("seed.json", json).await;
    assert_eq!(server.describe("alias/app").await.unwrap().key_id, CUSTOMER);
}

#[tokio::test]
async fn a_bad_seed_file_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.toml");
    std::fs::write(&path, "[[keys]]\nkey_id = \"not-a-uuid\"\n").unwrap();
    let mut config = config(&dir);
    config.data_dir = dir.path().join("data");
    config.seed = Some(path);
    let error = aliasd::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .err()
        .expect("start-up fails");
    assert!(error.to_string().contains("not-a-uuid"), "{error}");
}

#[tokio::test]
async fn provider_keys_and_their_aliases_cannot_be_changed_through_the_api() {
    let (server, _) = seeded("seed.toml", TOML_SEED).await;
    let status = assert_error(
        server.create_alias("alias/mine", PROVIDER).await,
        Code::PermissionDenied,
        "PROVIDER_KEY",
    );
    assert_eq!(kms_exception(&status), "NotAuthorizedException");
    let result = server.update_alias("alias/aws/ebs", CUSTOMER).await;
    assert_error(result, Code::PermissionDenied, "RESERVED_ALIAS");
    let result = server.update_alias("alias/signing", PROVIDER).await;
    assert_error(result, Code::PermissionDenied, "PROVIDER_KEY");
    let result = server.delete_alias("alias/evs/default").await;
    assert_error(result, Code::PermissionDenied, "RESERVED_ALIAS");
    let result = server.rename_alias("alias/aws/ebs", "alias/ebs").await;
    assert_error(result, Code::PermissionDenied, "RESERVED_ALIAS");
    let mut keys = server.keys.clone();
    let results = [
        server.disable_key(PROVIDER).await.map(drop),
        server.enable_key(PROVIDER).await.map(drop),
        keys.schedule_key_deletion(pb::ScheduleKeyDeletionRequest {
            key_id: PROVIDER.into(),
            ..Default::default()
        })
        .await
        .map(drop),
    ];
    for result in results {
        assert_error(result, Code::PermissionDenied, "PROVIDER_KEY");
    }
    assert_eq!(
        server
            .get_alias("alias/aws/ebs")
            .await
            .unwrap()
            .target_key_id,
        PROVIDER
    );
    assert_eq!(
        server.describe(PROVIDER).await.unwrap().key_state(),
        pb::KeyState::Enabled
    );
}
