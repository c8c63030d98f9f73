//! The AWS KMS JSON 1.1 endpoint through the clients that speak it: boto3
//! and the aws CLI (unmodified, in the project's venv), and raw HTTP as the
//! API reference prints it. Each test checks the state afterwards through
//! gRPC.

use std::path::Path;
use std::process::Command;

use aliasd::pb;

use crate::common::*;
use crate::python::python;

const SEED_KEY: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";
const OTHER_KEY: &str = "1234abcd-12ab-34cd-56ef-000000000002";
const SIGNER_ACCOUNT: &str = "111122223333";
const ACCESS_KEY: &str = "AKIAIOSFODNN7SIGNER1";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSIGNER1KEY";

/// The seed page's key, and alias/ExampleAlias on another key.
fn seed_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("seed.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[keys]]
key_id = "{SEED_KEY}"
description = "the key of the boto3 page's example"
[[keys]]
key_id = "{OTHER_KEY}"
[[aliases]]
alias_name = "alias/ExampleAlias"
target_key_id = "{OTHER_KEY}"
"#
        ),
    )
    .unwrap();
    path
}

/// Runs a Python script of tests/python with the venv's python; returns its
/// stdout, failing the test with its output if it fails.
pub(crate) async fn run_python(
    script: &str,
    args: Vec<String>,
    env: Vec<(String, String)>,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().unwrap();
        let output = Command::new(python())
            .arg(&script)
            .args(&args)
            .envs(isolated_aws_env(home.path()))
            .envs(env)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{script:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    })
    .await
    .unwrap()
}

/// No user configuration, credentials file or instance metadata can leak
/// into a test.
pub(crate) fn isolated_aws_env(home: &Path) -> Vec<(String, String)> {
    let missing = home.join("absent").display().to_string();
    [
        ("HOME", home.display().to_string()),
        ("AWS_CONFIG_FILE", missing.clone()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ("AWS_DEFAULT_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE".to_owned()),
        (
            "AWS_SECRET_ACCESS_KEY",
            "not-checked-without-an-auth-file".to_owned(),
        ),
        ("AWS_PAGER", String::new()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_runs_the_seed_example_the_lifecycle_paging_and_every_alias_error() {
    let files = tempfile::tempdir().unwrap();
    let seed = seed_file(files.path());
    let server = TestServer::start_http(move |config| config.seed = Some(seed)).await;
    let stdout = run_python(
        "aws_boto3.py",
        vec![server.http_url(), "anonymous".into()],
        vec![],
    )
    .await;
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    // The seed example re-pointed the alias.
    let example = server.get_alias("alias/ExampleAlias").await.unwrap();
    assert_eq!(example.target_key_id, SEED_KEY);
    // The refused calls changed nothing; the accepted ones are there.
    let second = out["second"].as_str().unwrap();
    assert_eq!(server.alias_names(second).await, vec!["alias/taken"]);
    assert_eq!(
        server
            .all_aliases(out["full"].as_str().unwrap())
            .await
            .len(),
        50
    );
    assert_eq!(
        server
            .all_aliases(out["many"].as_str().unwrap())
            .await
            .len(),
        45
    );
    for absent in [
        "alias/lifecycle",
        "alias/absent",
        "alias/to-nothing",
        "alias/aws/mine",
        "alias/doomed",
        "alias/quota/50",
    ] {
        let result = server
            .aliases
            .clone()
            .get_alias(pb::GetAliasRequest {
                alias_name: absent.into(),
            })
            .await;
        assert_error(result, tonic::Code::NotFound, "ALIAS_NOT_FOUND");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_run_as_their_principal_and_bad_signatures_are_refused() {
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    write_secret_file(
        &auth,
        &format!(
            r#"
[[principals]]
name = "signer"
account = "{SIGNER_ACCOUNT}"
token_sha256 = "{}"
access_keys = [{{ id = "{ACCESS_KEY}", secret = "{SECRET}" }}]
[[principals.statements]]
actions = "kms:*"
resources = "*"
"#,
            token_sha256("signer-token")
        ),
    );
    let log = files.path().join("audit.jsonl");
    let (auth_path, log_path) = (auth.clone(), log.clone());
    let server = TestServer::start_http(move |config| {
        config.auth_file = Some(auth_path);
        config.audit_log = Some(log_path);
    })
    .await;
    let stdout = run_python(
        "aws_boto3.py",
        vec![
            server.http_url(),
            "signed".into(),
            ACCESS_KEY.into(),
            SECRET.into(),
        ],
        vec![],
    )
    .await;
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();

    // The alias is in the signer's account, as its bearer token sees it.
    let mut aliases = server.aliases.clone();
    let mut request = tonic::Request::new(pb::ListAliasesRequest {
        key_id: out["key"].as_str().unwrap().into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer signer-token".parse().unwrap());
    let listed = aliases.list_aliases(request).await.unwrap().into_inner();
    let names: Vec<&str> = listed
        .aliases
        .iter()
        .map(|a| a.alias_name.as_str())
        .collect();
    assert_eq!(names, vec!["alias/signed"]);
    assert!(listed.aliases[0].alias_arn.contains(SIGNER_ACCOUNT));

    // The audit log has the signed change under the principal, and the
    // forged and unknown-key calls as refusals.
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(records.iter().any(|r| r["action"] == "kms:CreateAlias"
        && r["principal"] == "signer"
        && r["outcome"] == "OK"));
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "INVALID_SIGNATURE" && r["action"] == "kms:CreateAlias"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["outcome"] == "UNRECOGNIZED_CLIENT" && r["action"] == "kms:ListAliases"),
        "{records:?}"
    );
}

/// Raw requests with an auth file: no signature, a malformed one, a stale
/// one.
#[tokio::test]
async fn unsigned_malformed_and_stale_requests_get_awss_exceptions() {
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    write_secret_file(
        &auth,
        &format!(
            r#"
[[principals]]
name = "signer"
account = "{SIGNER_ACCOUNT}"
access_keys = [{{ id = "{ACCESS_KEY}", secret = "{SECRET}" }}]
"#
        ),
    );
    let server = TestServer::start_http(move |config| config.auth_file = Some(auth)).await;
    let target = ("X-Amz-Target", "TrentService.ListAliases");
    let json = ("Content-Type", "application/x-amz-json-1.1");

    let reply = http_call(&server, "POST", "/", &[target, json], b"{}").await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["__type"],
        "MissingAuthenticationTokenException"
    );
    assert_eq!(
        reply.headers["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );

    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            target,
            json,
            ("Authorization", "AWS4-HMAC-SHA256 Credential=x"),
        ],
        b"{}",
    )
    .await;
    assert_eq!(reply.json()["__type"], "IncompleteSignatureException");

    let stale = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20200101/us-east-1/kms/aws4_request, \
         SignedHeaders=host;x-amz-date;x-amz-target, Signature={}",
        "0".repeat(64)
    );
    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            target,
            json,
            ("X-Amz-Date", "20200101T000000Z"),
            ("Authorization", &stale),
        ],
        b"{}",
    )
    .await;
    assert_eq!(reply.json()["__type"], "InvalidSignatureException");
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("Signature expired"),
        "{:?}",
        reply.json()
    );
}

/// The aws CLI, as a user would type it; its JSON output parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_creates_updates_lists_and_deletes_aliases() {
    let server = TestServer::start_http(|_| {}).await;
    let url = server.http_url();
    let aws = move |args: Vec<&str>| -> serde_json::Value {
        let home = tempfile::tempdir().unwrap();
        let output = Command::new(python())
            .args([
                "-m",
                "awscli",
                "--endpoint-url",
                &url,
                "--output",
                "json",
                "kms",
            ])
            .args(&args)
            .envs(isolated_aws_env(home.path()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "aws kms {args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        match stdout.trim() {
            "" => serde_json::Value::Null,
            text => serde_json::from_str(text).unwrap(),
        }
    };
    let (first, second, listed) = tokio::task::spawn_blocking(move || {
        let first = aws(vec!["create-key", "--description", "from the CLI"]);
        let first = first["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let second = aws(vec!["create-key"])["KeyMetadata"]["KeyId"]
            .as_str()
            .unwrap()
            .to_owned();
        aws(vec![
            "create-alias",
            "--alias-name",
            "alias/cli",
            "--target-key-id",
            &first,
        ]);
        aws(vec![
            "update-alias",
            "--alias-name",
            "alias/cli",
            "--target-key-id",
            &second,
        ]);
        aws(vec![
            "create-alias",
            "--alias-name",
            "alias/cli-gone",
            "--target-key-id",
            &first,
        ]);
        aws(vec!["delete-alias", "--alias-name", "alias/cli-gone"]);
        let listed = aws(vec!["list-aliases", "--key-id", &second]);
        (first, second, listed)
    })
    .await
    .unwrap();
    let names: Vec<&str> = listed["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["AliasName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["alias/cli"]);
    assert_eq!(server.alias_names(&second).await, vec!["alias/cli"]);
    assert!(server.alias_names(&first).await.is_empty());
}

/// The request the API reference prints (X-Amz-Target header, JSON body),
/// byte for byte from a plain HTTP client; and its curl example as printed,
/// whose target is only in the URL's fragment (never sent).
#[tokio::test]
async fn raw_requests_as_the_api_reference_prints_them() {
    let files = tempfile::tempdir().unwrap();
    let seed = seed_file(files.path());
    let server = TestServer::start_http(move |config| config.seed = Some(seed)).await;
    let before = server.get_alias("alias/ExampleAlias").await.unwrap();
    let body = format!(r#"{{"AliasName": "alias/ExampleAlias", "TargetKeyId": "{SEED_KEY}"}}"#);
    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.UpdateAlias"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.body.is_empty());
    assert!(!reply.headers["x-amzn-requestid"].is_empty());
    let after = server.get_alias("alias/ExampleAlias").await.unwrap();
    assert_eq!(after.target_key_id, SEED_KEY);
    assert_ne!(after.etag, before.etag);

    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.CreateAlias"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        format!(r#"{{"AliasName": "alias/ExampleAlias", "TargetKeyId": "{OTHER_KEY}"}}"#)
            .as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["__type"], "AlreadyExistsException");

    // The curl example: POST / with JSON headers and no target.
    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("accept", "application/json"),
            ("content-type", "application/json"),
        ],
        b"",
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["__type"], "UnknownOperationException");
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("X-Amz-Target"));

    // Malformed JSON, a wrong type, an unknown target, an unknown field.
    for (target, body, exception) in [
        (
            "TrentService.CreateAlias",
            "{not json",
            "SerializationException",
        ),
        (
            "TrentService.CreateAlias",
            r#"{"AliasName": 5}"#,
            "SerializationException",
        ),
        (
            "TrentService.ImportKeyMaterial",
            "{}",
            "UnknownOperationException",
        ),
        (
            "TrentService.CreateAlias",
            r#"{"TargetKeyId": "x"}"#,
            "ValidationException",
        ),
    ] {
        let reply = http_call(
            &server,
            "POST",
            "/",
            &[
                ("X-Amz-Target", target),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.json()["__type"], exception, "{body}");
    }
    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.DescribeKey"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        br#"{"KeyId": "alias/ExampleAlias", "GrantTokens": [], "Unknown": 1}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    let metadata = &reply.json()["KeyMetadata"];
    assert_eq!(metadata["KeyId"], SEED_KEY);
    assert_eq!(metadata["KeyState"], "Enabled");
    assert!(metadata["CreationDate"].as_f64().unwrap() > 1.7e9);
}

/// AWS's own answers (SPEC §12): boto3 sees AWS's exceptions and messages
/// where its recorded responses and API reference show them; what was
/// refused changed nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sees_awss_own_exceptions_and_messages() {
    let server = TestServer::start_http(|_| {}).await;
    let stdout = run_python("aws_fidelity.py", vec![server.http_url()], vec![]).await;
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // The refused CreateAlias calls made nothing; the refused
    // ScheduleKeyDeletion left the key enabled.
    let key = out["key"].as_str().unwrap();
    assert!(server.alias_names(key).await.is_empty());
    assert_eq!(
        server.describe(key).await.unwrap().key_state,
        pb::KeyState::Enabled as i32
    );
    assert_eq!(
        server
            .describe(out["doomed"].as_str().unwrap())
            .await
            .unwrap()
            .key_state,
        pb::KeyState::PendingDeletion as i32
    );
    // Six keys were made (the refused CreateKey calls made none).
    assert_eq!(server.list_keys().await.len(), 6);
}

/// Tags, key policies and descriptions through boto3, and the sequence of
/// calls Terraform's aws_kms_key and aws_kms_alias make; what they stored
/// survives a restart and passes `aliasd check`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_tags_keys_sets_policies_and_replays_terraforms_calls() {
    let server = TestServer::start_http(|_| {}).await;
    let stdout = run_python("aws_key_details.py", vec![server.http_url()], vec![]).await;
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let (terraform, tagged) = (
        out["terraform"].as_str().unwrap().to_owned(),
        out["tagged"].as_str().unwrap().to_owned(),
    );
    let dir = server.stop().await;
    let store = crate::common::open_store(dir.path());
    let (keys, _) = store.all_keys(None, 100, |_| true).await.unwrap();
    let stored = |id: &str| {
        keys.iter()
            .find(|(_, k)| k.key_id.as_str() == id)
            .map(|(_, k)| k.clone())
            .unwrap()
    };
    let terraform = stored(&terraform);
    assert_eq!(
        terraform
            .tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
        [("env", "prod"), ("owner", "ops")]
    );
    assert!(terraform.policy.unwrap().contains("terraform-v2"));
    assert_eq!(terraform.description, "terraform key, v2");
    let tagged = stored(&tagged);
    assert_eq!(tagged.tags.len(), 50);
    assert_eq!(tagged.policy, None, "the default policy is not stored");
    assert_eq!(tagged.description, "");
    let report = store.check(&aliasd::domain::ops::Limits::default());
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Access by alias through boto3 with signed requests: the finance
/// principal's Encrypt follows the aliases the admin moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_calls_are_allowed_and_denied_by_the_keys_aliases() {
    const FINANCE_KEY: &str = "AKIAIOSFODNN7FINANCE";
    const FINANCE_SECRET: &str = "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";
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    write_secret_file(
        &auth,
        &format!(
            r#"
[[principals]]
name = "admin"
account = "{SIGNER_ACCOUNT}"
access_keys = [{{ id = "{ACCESS_KEY}", secret = "{SECRET}" }}]
[[principals.statements]]
actions = "kms:*"
resources = "*"

[[principals]]
name = "finance"
account = "{SIGNER_ACCOUNT}"
access_keys = [{{ id = "{FINANCE_KEY}", secret = "{FINANCE_SECRET}" }}]
[[principals.statements]]
actions = ["kms:Encrypt"]
resources = "*"
[principals.statements.condition]
"kms:ResourceAliases" = "alias/finance-*"
[[principals.statements]]
effect = "deny"
actions = "kms:*"
resources = "*"
[principals.statements.condition]
"kms:RequestAlias" = "alias/finance-blocked"
"#
        ),
    );
    let server = TestServer::start_http(move |config| config.auth_file = Some(auth)).await;
    let stdout = run_python(
        "aws_abac.py",
        vec![
            server.http_url(),
            ACCESS_KEY.into(),
            SECRET.into(),
            FINANCE_KEY.into(),
            FINANCE_SECRET.into(),
        ],
        vec![],
    )
    .await;
    let out: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(out["one"].is_string() && out["two"].is_string());
}
