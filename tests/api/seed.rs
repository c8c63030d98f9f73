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
    config.store.data_dir = dir.path().join("data");
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

// ------------------------------------------- all or nothing, differences

const KEY_A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const KEY_B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";

fn scope() -> aliasd::domain::Scope {
    aliasd::domain::Scope {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: ACCOUNT.into(),
    }
}

fn seed_file(toml: &str) -> aliasd::app::seed::SeedFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seed.toml");
    std::fs::write(&path, toml).unwrap();
    aliasd::app::seed::parse(&path).expect("the file parses")
}

async fn apply(
    store: &Arc<aliasd::store::Store>,
    toml: &str,
) -> Result<aliasd::app::seed::SeedOutcome, aliasd::domain::Error> {
    let limits = aliasd::domain::ops::Limits::default();
    aliasd::app::seed::apply(store, &seed_file(toml), &scope(), limits, 1_000).await
}

/// Keys, aliases and the change-log head of the account.
async fn contents(
    store: &std::sync::Arc<aliasd::store::Store>,
) -> (Vec<String>, Vec<(String, String)>, u64) {
    let keys = store.keys_page(ACCOUNT, None, 100).await.unwrap().0;
    let aliases = store
        .aliases_page(ACCOUNT, None, None, 100)
        .await
        .unwrap()
        .aliases;
    (
        keys.iter().map(|k| k.key_id.to_string()).collect(),
        aliases
            .iter()
            .map(|a| (a.name.to_string(), a.target.to_string()))
            .collect(),
        store.head_revision(ACCOUNT).unwrap(),
    )
}

/// Two good keys and two good aliases, then `last`.
fn file_ending_with(last: &str) -> String {
    format!(
        r#"
[[keys]]
key_id = "{KEY_A}"
key_manager = "PROVIDER"

[[keys]]
key_id = "{KEY_B}"

[[aliases]]
alias_name = "alias/aws/a"
target_key_id = "{KEY_A}"

[[aliases]]
alias_name = "alias/b"
target_key_id = "{KEY_B}"

{last}
"#
    )
}

#[tokio::test]
async fn a_seed_file_with_a_bad_entry_late_in_it_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::common::open_store(dir.path());
    let lates = [
        // Found by checking the file: an unknown spec.
        format!("[[keys]]\nkey_id = \"{CUSTOMER}\"\nkey_spec = \"RSA_1024\""),
        // Found by checking the file: a reserved name for a CUSTOMER key.
        format!("[[aliases]]\nalias_name = \"alias/aws/b\"\ntarget_key_id = \"{KEY_B}\""),
        // Found only in the transaction: the target is neither in the file
        // nor stored.
        format!("[[aliases]]\nalias_name = \"alias/c\"\ntarget_key_id = \"{CUSTOMER}\""),
    ];
    for late in lates {
        let error = apply(&store, &file_ending_with(&late))
            .await
            .expect_err("the file is refused");
        assert_eq!(
            contents(&store).await,
            (vec![], vec![], 0),
            "after {late:?}: {error}"
        );
        assert!(error.message.contains("nothing applied"), "{error}");
    }
}

#[tokio::test]
async fn a_corrected_seed_file_applies_after_a_failed_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::common::open_store(dir.path());
    // The mistake: the key of a reserved alias is not marked PROVIDER.
    let wrong = format!(
        "[[keys]]\nkey_id = \"{KEY_A}\"\n\n\
         [[aliases]]\nalias_name = \"alias/aws/a\"\ntarget_key_id = \"{KEY_A}\""
    );
    apply(&store, &wrong).await.expect_err("refused");
    let corrected = format!(
        "[[keys]]\nkey_id = \"{KEY_A}\"\nkey_manager = \"PROVIDER\"\n\n\
         [[aliases]]\nalias_name = \"alias/aws/a\"\ntarget_key_id = \"{KEY_A}\""
    );
    let outcome = apply(&store, &corrected)
        .await
        .expect("the corrected file applies");
    assert_eq!(
        outcome,
        aliasd::app::seed::SeedOutcome {
            keys_created: 1,
            aliases_created: 1,
            differences: vec![],
        }
    );
    let (keys, aliases, _) = contents(&store).await;
    assert_eq!(keys, vec![KEY_A]);
    assert_eq!(aliases, vec![("alias/aws/a".to_owned(), KEY_A.to_owned())]);
}

#[tokio::test]
async fn stored_records_that_differ_from_the_file_are_kept_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::common::open_store(dir.path());
    let first = format!(
        "[[keys]]\nkey_id = \"{KEY_A}\"\ndescription = \"first\"\n\n\
         [[aliases]]\nalias_name = \"alias/x\"\ntarget_key_id = \"{KEY_A}\""
    );
    apply(&store, &first).await.unwrap();
    let before = contents(&store).await;
    let second = format!(
        "[[keys]]\nkey_id = \"{KEY_A}\"\ndescription = \"second\"\nkey_state = \"DISABLED\"\n\n\
         [[keys]]\nkey_id = \"{KEY_B}\"\n\n\
         [[aliases]]\nalias_name = \"alias/x\"\ntarget_key_id = \"{KEY_B}\""
    );
    let outcome = apply(&store, &second).await.unwrap();
    let difference =
        |record: String, field, stored: &str, file: &str| aliasd::app::seed::Difference {
            account: ACCOUNT.into(),
            record,
            field,
            stored: stored.into(),
            file: file.into(),
        };
    assert_eq!(
        outcome,
        aliasd::app::seed::SeedOutcome {
            keys_created: 1,
            aliases_created: 0,
            differences: vec![
                difference(format!("key {KEY_A}"), "description", "first", "second"),
                difference(format!("key {KEY_A}"), "key_state", "ENABLED", "DISABLED"),
                difference("alias alias/x".into(), "target_key_id", KEY_A, KEY_B),
            ],
        }
    );
    assert_eq!(
        outcome.differences[0].to_string(),
        "description is \"first\" (the file says \"second\")"
    );
    // Left as stored: only key B is new.
    let after = contents(&store).await;
    assert_eq!(after.0, vec![KEY_A, KEY_B]);
    assert_eq!(after.1, before.1);
    assert_eq!(after.2, before.2);
    let (keys, _) = store.keys_page(ACCOUNT, None, 1).await.unwrap();
    assert_eq!(keys[0].description, "first");
    assert_eq!(keys[0].key_state, aliasd::domain::KeyState::ENABLED);
}

#[tokio::test]
async fn seed_enum_fields_take_the_api_names_and_the_bare_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::common::open_store(dir.path());
    let file = format!(
        "[[keys]]\nkey_id = \"{KEY_A}\"\nkey_spec = \"KEY_SPEC_RSA_2048\"\n\
         key_usage = \"KEY_USAGE_SIGN_VERIFY\"\nkey_manager = \"KEY_MANAGER_PROVIDER\"\n\
         key_state = \"KEY_STATE_DISABLED\"\n\n\
         [[keys]]\nkey_id = \"{KEY_B}\"\nkey_spec = \"RSA_2048\"\n\
         key_usage = \"SIGN_VERIFY\"\nkey_manager = \"PROVIDER\"\nkey_state = \"DISABLED\""
    );
    apply(&store, &file).await.expect("both spellings apply");
    let (keys, _) = store.keys_page(ACCOUNT, None, 10).await.unwrap();
    assert_eq!(keys.len(), 2);
    for key in keys {
        use aliasd::domain::{KeyManager, KeySpec, KeyState, KeyUsage};
        assert_eq!(key.key_spec, KeySpec::RSA_2048);
        assert_eq!(key.key_usage, KeyUsage::SIGN_VERIFY);
        assert_eq!(key.key_manager, KeyManager::PROVIDER);
        assert_eq!(key.key_state, KeyState::DISABLED);
    }
    let error = apply(
        &store,
        &format!("[[keys]]\nkey_id = \"{CUSTOMER}\"\nkey_spec = \"KEY_SPEC_UNSPECIFIED\""),
    )
    .await
    .unwrap_err();
    assert!(error.message.contains("unknown key_spec"), "{error}");
}

// ------------------------------------------------------------ messages

/// The start-up error a seed file gives, as the server reports it.
async fn start_up_error(file_name: &str, contents: &str) -> (String, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, contents).unwrap();
    let mut config = config(&dir);
    config.store.data_dir = dir.path().join("data");
    config.seed = Some(path.clone());
    let error = aliasd::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .err()
        .expect("start-up fails");
    std::mem::forget(dir);
    (error.to_string(), path)
}

#[tokio::test]
async fn seed_errors_say_seed_once_and_name_the_entry() {
    let (error, _) = start_up_error("seed.toml", "[[keys]]\nkey_id = \"not-a-uuid\"\n").await;
    assert_eq!(
        error,
        "seed: nothing applied: key #1: key_id \"not-a-uuid\" is not a lowercase UUID (such as \
         1234abcd-12ab-34cd-56ef-1234567890ab)"
    );

    let file = format!("[[keys]]\nkey_id = \"{CUSTOMER}\"\nkey_spec = \"RSA_1024\"\n");
    let (error, _) = start_up_error("seed.toml", &file).await;
    assert_eq!(
        error,
        format!(
            "seed: nothing applied: key #1 {CUSTOMER}: unknown key_spec \"RSA_1024\" (expected \
             one of SYMMETRIC_DEFAULT, RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, \
             ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, HMAC_224, HMAC_256, HMAC_384, \
             HMAC_512, SM2, with or without the KEY_SPEC_ prefix)"
        )
    );

    let file = format!(
        "[[keys]]\nkey_id = \"{CUSTOMER}\"\nkey_state = \"GONE\"\n\n\
         [[aliases]]\nalias_name = \"alias/aws/x\"\ntarget_key_id = \"{PROVIDER}\"\n\n\
         [[aliases]]\nalias_name = \"alias/aws/x\"\ntarget_key_id = \"{PROVIDER}\"\n\n\
         [[aliases]]\nalias_name = \"x\"\ntarget_key_id = \"{PROVIDER}\"\naccount = \"a b\"\n"
    );
    let (error, _) = start_up_error("seed.toml", &file).await;
    assert_eq!(
        error,
        format!(
            "seed: 4 problems, nothing applied: (1) key #1 {CUSTOMER}: unknown key_state \
             \"GONE\" (expected one of ENABLED, DISABLED, PENDING_DELETION, with or without \
             the KEY_STATE_ prefix); (2) alias #2 alias/aws/x: alias #1 has the same name in \
             the same account; (3) alias #3: Alias name \"x\" must begin with 'alias/' \
             followed by at least one character; (4) alias #3: account \"a b\" must be 1..64 \
             characters of A-Z a-z 0-9 -"
        )
    );

    let file = format!(
        "[[keys]]\nkey_id = \"{CUSTOMER}\"\n\n\
         [[aliases]]\nalias_name = \"alias/aws/x\"\ntarget_key_id = \"{CUSTOMER}\"\n"
    );
    let (error, _) = start_up_error("seed.toml", &file).await;
    assert_eq!(
        error,
        "seed: nothing applied: alias #1 alias/aws/x: a reserved name (alias/aws/..., \
         .../default) must target a PROVIDER key, and key #1 is CUSTOMER"
    );

    let file = "[[aliases]]\nalias_name = \"alias/x\"\ntarget_key_id = \
                \"dddddddd-0000-4000-8000-000000000004\"\n";
    let (error, _) = start_up_error("seed.toml", file).await;
    assert_eq!(
        error,
        "seed: nothing applied: alias #1 alias/x: Key \
         'arn:aws:kms:us-east-1:000000000000:key/dddddddd-0000-4000-8000-000000000004' does \
         not exist"
    );

    let (error, path) = start_up_error("seed.json", "{\"keys\": 1}").await;
    assert!(
        error.starts_with(&format!("seed: {}: invalid type", path.display())),
        "{error}"
    );
}
