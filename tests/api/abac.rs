//! Access by alias (ABAC, SPEC §12): policy statements with conditions on
//! `kms:ResourceAliases` and `kms:RequestAlias`, and deny statements,
//! through the real server with an auth file. Creating, re-pointing,
//! renaming or deleting an alias changes who may use a key at once.

use std::sync::Arc;

use aliasd::domain::SystemClock;
use aliasd::pb;
use aliasd::pb::alias_service_client::AliasServiceClient;
use aliasd::pb::crypto_service_client::CryptoServiceClient;
use aliasd::pb::key_service_client::KeyServiceClient;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::common::*;

const ACCOUNT: &str = "111111111111";
const K1: &str = "11111111-0000-4000-8000-00000000000a";
const K2: &str = "11111111-0000-4000-8000-00000000000b";
const ADMIN: &str = "admin-token";
const FINANCE: &str = "finance-token";

fn auth_file() -> String {
    format!(
        r#"
[[principals]]
name = "admin"
account = "{ACCOUNT}"
token_sha256 = "{admin}"
[[principals.statements]]
actions = ["kms:*", "kms:ListAuditEvents"]
resources = ["*"]

# AWS's ABAC example, in aliasd's words: use keys whose aliases begin
# alias/finance-, and never through the alias alias/finance-blocked.
[[principals]]
name = "finance"
account = "{ACCOUNT}"
token_sha256 = "{finance}"
[[principals.statements]]
actions = ["kms:Encrypt", "kms:DescribeKey", "kms:ListAliases"]
resources = ["*"]
[principals.statements.condition]
"kms:ResourceAliases" = ["alias/finance-*"]
[[principals.statements]]
effect = "deny"
actions = ["kms:*"]
resources = ["*"]
[principals.statements.condition]
"kms:RequestAlias" = "alias/finance-blocked"
"#,
        admin = token_sha256(ADMIN),
        finance = token_sha256(FINANCE),
    )
}

const SEED: &str = r#"
[[keys]]
key_id = "11111111-0000-4000-8000-00000000000a"
account = "111111111111"
[[keys]]
key_id = "11111111-0000-4000-8000-00000000000b"
account = "111111111111"
"#;

struct Abac {
    server: TestServer,
    _files: tempfile::TempDir,
}

async fn start() -> Abac {
    let files = tempfile::tempdir().unwrap();
    let (auth, seed) = (
        files.path().join("auth.toml"),
        files.path().join("seed.toml"),
    );
    std::fs::write(&auth, auth_file()).unwrap();
    std::fs::write(&seed, SEED).unwrap();
    let server = TestServer::start_with(
        move |c| {
            c.auth_file = Some(auth);
            c.seed = Some(seed);
        },
        Arc::new(SystemClock),
    )
    .await;
    Abac {
        server,
        _files: files,
    }
}

impl Abac {
    fn channel(&self) -> Channel {
        self.server.channel.clone()
    }

    async fn encrypt(&self, token: &str, key_id: &str) -> Result<pb::EncryptResponse, Status> {
        CryptoServiceClient::new(self.channel())
            .encrypt(bearer(
                token,
                pb::EncryptRequest {
                    key_id: key_id.into(),
                    plaintext: b"ledger".to_vec().into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// ListAliases filtered by `key_id`: the names.
    async fn aliases_of(&self, token: &str, key_id: &str) -> Result<Vec<String>, Status> {
        self.aliases()
            .list_aliases(bearer(
                token,
                pb::ListAliasesRequest {
                    key_id: key_id.into(),
                    ..Default::default()
                },
            ))
            .await
            .map(|r| {
                r.into_inner()
                    .aliases
                    .into_iter()
                    .map(|a| a.alias_name)
                    .collect()
            })
    }

    async fn describe(&self, token: &str, key_id: &str) -> Result<pb::Key, Status> {
        KeyServiceClient::new(self.channel())
            .describe_key(bearer(
                token,
                pb::DescribeKeyRequest {
                    key_id: key_id.into(),
                },
            ))
            .await
            .map(|r| r.into_inner().key.unwrap())
    }

    fn aliases(&self) -> AliasServiceClient<Channel> {
        AliasServiceClient::new(self.channel())
    }

    async fn create_alias(&self, name: &str, key: &str) {
        self.aliases()
            .create_alias(bearer(
                ADMIN,
                pb::CreateAliasRequest {
                    alias_name: name.into(),
                    target_key_id: key.into(),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap();
    }

    async fn update_alias(&self, name: &str, key: &str) {
        self.aliases()
            .update_alias(bearer(
                ADMIN,
                pb::UpdateAliasRequest {
                    alias_name: name.into(),
                    target_key_id: key.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    async fn delete_alias(&self, name: &str) {
        self.aliases()
            .delete_alias(bearer(
                ADMIN,
                pb::DeleteAliasRequest {
                    alias_name: name.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    async fn rename_alias(&self, from: &str, to: &str) {
        self.aliases()
            .rename_alias(bearer(
                ADMIN,
                pb::RenameAliasRequest {
                    alias_name: from.into(),
                    new_alias_name: to.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }
}

fn denied<T: std::fmt::Debug>(result: Result<T, Status>) {
    assert_error(result, Code::PermissionDenied, "ACCESS_DENIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_aliases_decide_who_may_use_it_at_the_moment_of_the_call() {
    let abac = start().await;
    // No finance- alias yet: neither key may be used.
    denied(abac.encrypt(FINANCE, K1).await);
    denied(abac.describe(FINANCE, K1).await);
    abac.encrypt(ADMIN, K1).await.unwrap();

    // Allowed while the key has such an alias, by key id or by the alias.
    abac.create_alias("alias/finance-app", K1).await;
    let sealed = abac.encrypt(FINANCE, K1).await.unwrap();
    assert!(sealed.key_id.ends_with(K1));
    abac.encrypt(FINANCE, "alias/finance-app").await.unwrap();
    abac.describe(FINANCE, K1).await.unwrap();
    denied(abac.encrypt(FINANCE, K2).await);
    // A listing filtered by key is decided on that key's aliases too; an
    // unfiltered one (the account, no key) fails the condition.
    assert_eq!(
        abac.aliases_of(FINANCE, K1).await.unwrap(),
        ["alias/finance-app"]
    );
    denied(abac.aliases_of(FINANCE, K2).await);
    denied(abac.aliases_of(FINANCE, "").await);
    // An alias of another name does not count.
    abac.create_alias("alias/payroll", K2).await;
    denied(abac.encrypt(FINANCE, "alias/payroll").await);

    // UpdateAlias moves the permission with the alias: the new key is
    // allowed, the old one no longer.
    abac.update_alias("alias/finance-app", K2).await;
    abac.encrypt(FINANCE, K2).await.unwrap();
    abac.encrypt(FINANCE, "alias/payroll").await.unwrap();
    denied(abac.encrypt(FINANCE, K1).await);

    // A deny on kms:RequestAlias beats the allow: the key has a finance-
    // alias, but a call through alias/finance-blocked is refused, while
    // the same key through another name is not.
    abac.create_alias("alias/finance-blocked", K2).await;
    denied(abac.encrypt(FINANCE, "alias/finance-blocked").await);
    denied(abac.describe(FINANCE, "alias/finance-blocked").await);
    abac.encrypt(FINANCE, "alias/finance-app").await.unwrap();
    abac.encrypt(FINANCE, K2).await.unwrap();
    // The deny is the finance principal's own: the admin is not refused.
    abac.encrypt(ADMIN, "alias/finance-blocked").await.unwrap();

    // Deleting the aliases takes the permission away at once.
    abac.delete_alias("alias/finance-app").await;
    abac.encrypt(FINANCE, K2).await.unwrap(); // alias/finance-blocked is still the key's
    abac.delete_alias("alias/finance-blocked").await;
    denied(abac.encrypt(FINANCE, K2).await);
    // What a finance call was refused is audited as a denial.
    let audit = aliasd::pb::audit_service_client::AuditServiceClient::new(abac.channel())
        .list_audit_events(bearer(
            ADMIN,
            pb::ListAuditEventsRequest {
                action: "kms:Encrypt".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .events;
    assert!(audit
        .iter()
        .any(|e| e.principal == "finance" && e.outcome == "ACCESS_DENIED"));
}

/// Renames racing calls: at every instant the key has exactly one
/// finance- alias (a rename moves the name in one transaction), so no call
/// may see the key with none; re-pointing races see the key with the alias
/// or without it, never anything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alias_changes_racing_calls_are_never_seen_half_applied() {
    let abac = Arc::new(start().await);
    abac.create_alias("alias/finance-a", K1).await;
    let changer = {
        let abac = abac.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let (from, to) = match i % 2 {
                    0 => ("alias/finance-a", "alias/finance-b"),
                    _ => ("alias/finance-b", "alias/finance-a"),
                };
                abac.rename_alias(from, to).await;
            }
        })
    };
    let mut callers = Vec::new();
    for _ in 0..4 {
        let abac = abac.clone();
        callers.push(tokio::spawn(async move {
            let mut calls = 0;
            while calls < 60 {
                abac.encrypt(FINANCE, K1)
                    .await
                    .expect("a rename never leaves the key without its alias");
                calls += 1;
            }
        }));
    }
    changer.await.unwrap();
    for caller in callers {
        caller.await.unwrap();
    }

    // Re-pointing: every answer is a success or ACCESS_DENIED, and once
    // the changes stop, the answer is the final state's.
    let flipper = {
        let abac = abac.clone();
        tokio::spawn(async move {
            for i in 0..30 {
                abac.update_alias("alias/finance-a", if i % 2 == 0 { K2 } else { K1 })
                    .await;
            }
        })
    };
    let mut outcomes = (0, 0);
    while !flipper.is_finished() {
        match abac.encrypt(FINANCE, K2).await {
            Ok(_) => outcomes.0 += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
                outcomes.1 += 1;
            }
        }
    }
    flipper.await.unwrap();
    // The last update (i = 29) points it at K1.
    denied(abac.encrypt(FINANCE, K2).await);
    abac.encrypt(FINANCE, K1).await.unwrap();
    assert!(outcomes.0 + outcomes.1 > 0);
}

/// A condition key aliasd does not know, or an effect it does not, is
/// refused when the auth file is read, not ignored.
#[test]
fn unknown_condition_keys_and_effects_are_refused() {
    use aliasd::app::admission::auth::AuthConfig;
    let base = |statement: &str| {
        format!(
            "[[principals]]\nname = \"p\"\naccount = \"{ACCOUNT}\"\ntoken_sha256 = \"{}\"\n{statement}",
            token_sha256("t")
        )
    };
    let path = std::path::Path::new("auth.toml");
    let error = AuthConfig::parse(
        path,
        &base(
            "[[principals.statements]]\nactions = \"kms:*\"\nresources = \"*\"\n\
             [principals.statements.condition]\n\"aws:ResourceTag/x\" = \"y\"\n",
        ),
    )
    .unwrap_err();
    assert!(
        error.message.contains("aws:ResourceTag/x"),
        "{}",
        error.message
    );
    let error = AuthConfig::parse(
        path,
        &base("[[principals.statements]]\neffect = \"maybe\"\nactions = \"kms:*\"\nresources = \"*\"\n"),
    )
    .unwrap_err();
    assert!(error.message.contains("maybe"), "{}", error.message);
    AuthConfig::parse(
        path,
        &base(
            "[[principals.statements]]\neffect = \"Deny\"\nactions = \"kms:*\"\nresources = \"*\"\n\
             [principals.statements.condition]\n\"kms:requestalias\" = [\"alias/x-*\"]\n",
        ),
    )
    .unwrap();
}
