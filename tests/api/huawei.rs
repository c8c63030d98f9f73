//! The Huawei Cloud KMS v1.0 endpoint through Huawei's Python SDK
//! (unmodified, AK/SK), raw HTTP as the seed page prints it, and tokens;
//! the state afterwards is checked through gRPC.

use std::path::Path;
use std::process::Command;

use aliasd::pb;
use tokio_stream::StreamExt;

use crate::common::*;
use crate::python::python;

const ACCOUNT_HW: &str = "222233334444";
const PROJECT: &str = "0123456789abcdef0123456789abcdef";
const AK: &str = "HWAKEXAMPLE0000001";
const SK: &str = "hwSecretKeyExample0000000000000001";
const EXAMPLE_KEY: &str = "bb6a3d22-dc93-47ac-b5bd-88df7ad35f1e";
const DEFAULT_KEY: &str = "bb6a3d22-0000-4000-8000-00000000d0d0";

/// The seed page's example key, and a Default Master Key (PROVIDER, its
/// alias ending /default), in `account`.
fn seed_file(dir: &Path, account: &str) -> std::path::PathBuf {
    let path = dir.join("seed.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[keys]]
key_id = "{EXAMPLE_KEY}"
account = "{account}"
[[keys]]
key_id = "{DEFAULT_KEY}"
account = "{account}"
key_manager = "PROVIDER"
[[aliases]]
alias_name = "alias/kms/default"
target_key_id = "{DEFAULT_KEY}"
account = "{account}"
"#
        ),
    )
    .unwrap();
    path
}

fn auth_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("auth.toml");
    write_secret_file(
        &path,
        &format!(
            r#"
[[principals]]
name = "huawei-app"
account = "{ACCOUNT_HW}"
project_ids = ["{PROJECT}"]
token_sha256 = "{}"
access_keys = [{{ id = "{AK}", secret = "{SK}" }}]
[[principals.statements]]
actions = "kms:*"
resources = "*"
"#,
            token_sha256("huawei-token")
        ),
    );
    path
}

/// A gRPC request as the principal (its bearer token).
fn as_principal<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", "Bearer huawei-token".parse().unwrap());
    request
}

async fn run_sdk(args: Vec<String>) -> serde_json::Value {
    run_script("huawei_sdk.py", args).await
}

async fn run_script(script: &str, args: Vec<String>) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().unwrap();
        let output = Command::new(python())
            .arg(&script)
            .args(&args)
            .env("HOME", home.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{script:?} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap()
    })
    .await
    .unwrap()
}

async fn target_of(server: &TestServer, name: &str) -> Option<String> {
    match server
        .aliases
        .clone()
        .get_alias(as_principal(pb::GetAliasRequest {
            alias_name: name.into(),
        }))
        .await
    {
        Ok(reply) => Some(reply.into_inner().alias.unwrap().target_key_id),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => panic!("GetAlias {name}: {status:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_huawei_sdk_with_ak_sk_changes_aliases_and_meets_the_seed_pages_constraints() {
    let files = tempfile::tempdir().unwrap();
    let (seed, auth) = (seed_file(files.path(), ACCOUNT_HW), auth_file(files.path()));
    let server = TestServer::start_http(move |config| {
        config.seed = Some(seed);
        config.auth_file = Some(auth);
    })
    .await;
    let url = server.http_url();
    let out = run_sdk(vec![url.clone(), PROJECT.into(), AK.into(), SK.into()]).await;
    let (key, other) = (
        out["key"].as_str().unwrap().to_owned(),
        out["other"].as_str().unwrap().to_owned(),
    );

    // update-key-alias renamed the example key's one alias; refusals left
    // everything as it was.
    assert_eq!(
        target_of(&server, "alias/test-renamed").await.as_deref(),
        Some(EXAMPLE_KEY)
    );
    assert_eq!(target_of(&server, "alias/test").await, None);
    assert_eq!(target_of(&server, "alias/too-late").await, None);
    assert_eq!(
        target_of(&server, "alias/kms/default").await.as_deref(),
        Some(DEFAULT_KEY)
    );
    assert_eq!(
        target_of(&server, "alias/sdk-key").await.as_deref(),
        Some(key.as_str())
    );
    assert_eq!(
        target_of(&server, "alias/sdk-extra").await.as_deref(),
        Some(other.as_str())
    );
    for gone in [
        "alias/sdk-page-0",
        "alias/sdk-page-1",
        "alias/another",
        "alias/x",
    ] {
        assert_eq!(target_of(&server, gone).await, None, "{gone}");
    }
    assert_eq!(
        target_of(&server, "alias/sdk-page-6").await.as_deref(),
        Some(other.as_str())
    );
    let example = server
        .keys
        .clone()
        .describe_key(as_principal(pb::DescribeKeyRequest {
            key_id: EXAMPLE_KEY.into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(example.key_state, pb::KeyState::PendingDeletion as i32);

    // A wrong SK is refused and creates nothing.
    let keys_before = server
        .keys
        .clone()
        .list_keys(as_principal(pb::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .keys
        .len();
    run_sdk(vec![
        url,
        PROJECT.into(),
        AK.into(),
        SK.into(),
        "not-the-secret-key-at-all".into(),
    ])
    .await;
    let keys_after = server
        .keys
        .clone()
        .list_keys(as_principal(pb::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .keys
        .len();
    assert_eq!(keys_after, keys_before);
    assert_eq!(target_of(&server, "alias/forged").await, None);
}

/// The seed page's example request, byte for byte, and its response.
#[tokio::test]
async fn the_seed_pages_example_request_gets_its_example_response() {
    let files = tempfile::tempdir().unwrap();
    let seed = seed_file(files.path(), ACCOUNT);
    let server = TestServer::start_http(move |config| config.seed = Some(seed)).await;
    let body = "{\n    \"key_alias\": \"test\",      \n    \"key_id\": \"bb6a3d22-dc93-47ac-b5bd-88df7ad35f1e\"\n}";
    let path = format!("/v1.0/{PROJECT}/kms/update-key-alias");
    let reply = http_call(
        &server,
        "POST",
        &path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.json(),
        serde_json::json!({"key_info": {"key_id": EXAMPLE_KEY, "key_alias": "test"}})
    );
    let alias = server.get_alias("alias/test").await.unwrap();
    assert_eq!(alias.target_key_id, EXAMPLE_KEY);

    // The page's constraints, raw: a /default alias, a Default Master Key.
    for (body, status, code) in [
        (
            format!(r#"{{"key_alias": "x/default", "key_id": "{EXAMPLE_KEY}"}}"#),
            400,
            "KMS.0211",
        ),
        (
            format!(r#"{{"key_alias": "y", "key_id": "{DEFAULT_KEY}"}}"#),
            400,
            "KMS.0211",
        ),
        (r#"{"key_alias": "y"}"#.to_owned(), 400, "KMS.0204"),
        ("{not json".to_owned(), 400, "KMS.0202"),
    ] {
        let reply = http_call(
            &server,
            "POST",
            &path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
        assert_eq!(reply.status, status, "{body}");
        assert_eq!(reply.json()["error"]["error_code"], code, "{body}");
    }
    // Nothing changed: the alias is the one the example made, same etag.
    let after = server.get_alias("alias/test").await.unwrap();
    assert_eq!(after.etag, alias.etag);
    assert_eq!(
        server
            .get_alias("alias/kms/default")
            .await
            .unwrap()
            .target_key_id,
        DEFAULT_KEY
    );
}

/// update-key-alias renames in one transaction: a reader listing the key's
/// aliases always sees exactly one of the two names, and the change stream
/// has one RENAMED event per call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_key_alias_renames_atomically() {
    let server = TestServer::start_http(|_| {}).await;
    let key = server.create_key().await.key_id;
    server.create_alias("alias/left", &key).await.unwrap();
    let mut watch = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: key.clone(),
            start_revision: None,
            progress_notify: false,
        })
        .await
        .unwrap()
        .into_inner();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (mut aliases, key, stop) = (server.aliases.clone(), key.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let names: Vec<String> = aliases
                    .list_aliases(pb::ListAliasesRequest {
                        key_id: key.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner()
                    .aliases
                    .into_iter()
                    .map(|a| a.alias_name)
                    .collect();
                assert_eq!(names.len(), 1, "both or neither name resolved: {names:?}");
                reads += 1;
            }
            reads
        })
    };
    let path = format!("/v1.0/{PROJECT}/kms/update-key-alias");
    const RENAMES: usize = 60;
    for i in 0..RENAMES {
        let name = if i % 2 == 0 { "right" } else { "left" };
        let body = format!(r#"{{"key_id": "{key}", "key_alias": "{name}"}}"#);
        let reply = http_call(&server, "POST", &path, &[], body.as_bytes()).await;
        assert_eq!(reply.status, 200, "{:?}", reply.json());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    for _ in 0..RENAMES {
        let event = tokio::time::timeout(std::time::Duration::from_secs(5), watch.next())
            .await
            .expect("an event per rename")
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(event.r#type, pb::AliasEventType::Renamed as i32);
    }
    assert_eq!(server.alias_names(&key).await, vec!["alias/left"]);
}

/// X-Auth-Token carries a principal's token; the URL's project must be one
/// of its projects; no credentials is KMS.0301.
#[tokio::test]
async fn tokens_projects_and_missing_credentials() {
    let files = tempfile::tempdir().unwrap();
    let auth = auth_file(files.path());
    let server = TestServer::start_http(move |config| config.auth_file = Some(auth)).await;
    let create = |project: &'static str, headers: Vec<(&'static str, &'static str)>| {
        let server = &server;
        async move {
            let path = format!("/v1.0/{project}/kms/create-key");
            http_call(
                server,
                "POST",
                &path,
                &headers,
                br#"{"key_alias": "by-token"}"#,
            )
            .await
        }
    };
    let reply = create(PROJECT, vec![("X-Auth-Token", "huawei-token")]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let key = reply.json()["key_info"]["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(reply.json()["key_info"]["domain_id"], ACCOUNT_HW);
    assert_eq!(target_of(&server, "alias/by-token").await, Some(key));

    let reply = create("another-project", vec![("X-Auth-Token", "huawei-token")]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0207");
    let reply = create(PROJECT, vec![]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0301");
    let reply = create(PROJECT, vec![("X-Auth-Token", "wrong-token")]).await;
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0302");
    let keys = server
        .keys
        .clone()
        .list_keys(as_principal(pb::ListKeysRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1);
}

/// DELETE aliases deletes all the named aliases of the key, or none.
#[tokio::test]
async fn delete_aliases_is_all_or_nothing() {
    let server = TestServer::start_http(|_| {}).await;
    let key = server.create_key().await.key_id;
    let other = server.create_key().await.key_id;
    for name in ["alias/d1", "alias/d2"] {
        server.create_alias(name, &key).await.unwrap();
    }
    server
        .create_alias("alias/elsewhere", &other)
        .await
        .unwrap();
    let path = format!("/v1.0/{PROJECT}/kms/aliases");
    let delete = |aliases: serde_json::Value| {
        let body = serde_json::json!({ "key_id": key, "aliases": aliases }).to_string();
        let server = &server;
        let path = path.clone();
        async move { http_call(server, "DELETE", &path, &[], body.as_bytes()).await }
    };
    // One of them belongs to another key: nothing is deleted.
    let reply = delete(serde_json::json!(["alias/d1", "alias/elsewhere"])).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0207");
    assert_eq!(server.alias_names(&key).await, vec!["alias/d1", "alias/d2"]);
    let reply = delete(serde_json::json!(["alias/d1", "alias/missing"])).await;
    assert_eq!(reply.status, 404);
    assert_eq!(server.alias_names(&key).await, vec!["alias/d1", "alias/d2"]);
    // Both the key's: both go (names without the prefix get it).
    let reply = delete(serde_json::json!(["d1", "alias/d2"])).await;
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert!(server.alias_names(&key).await.is_empty());
    assert_eq!(server.alias_names(&other).await, vec!["alias/elsewhere"]);
}

/// create-key with a `key_alias` creates both in one transaction: a name in
/// use refuses the call and leaves no key behind.
#[tokio::test]
async fn create_key_with_a_taken_alias_creates_no_key() {
    let server = TestServer::start_http(|_| {}).await;
    let key = server.create_key().await.key_id;
    server.create_alias("alias/taken", &key).await.unwrap();
    let path = format!("/v1.0/{PROJECT}/kms/create-key");
    let reply = http_call(&server, "POST", &path, &[], br#"{"key_alias": "taken"}"#).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.1104");
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

#[tokio::test]
async fn huawei_messages_name_key_ids_not_aws_arns() {
    let server = TestServer::start_http(|_| {}).await;
    let missing = crate::common::uuid();
    let reply = http_call(
        &server,
        "POST",
        "/v1.0/0123456789abcdef/kms/describe-key",
        &[("Content-Type", "application/json")],
        format!(r#"{{"key_id": "{missing}"}}"#).as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0207");
    let message = reply.json()["error"]["error_msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains(&format!("'{missing}'")), "{message}");
    assert!(!message.contains("arn:"), "{message}");
    // The AWS door says the same in its own dialect, with the ARN.
    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.DescribeKey"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        format!(r#"{{"KeyId": "{missing}"}}"#).as_bytes(),
    )
    .await;
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains(":key/"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_huawei_sdk_encrypts_signs_and_rotates_by_key_id_and_alias() {
    let files = tempfile::tempdir().unwrap();
    let auth = auth_file(files.path());
    let server = TestServer::start_http(move |config| config.auth_file = Some(auth)).await;
    let out = run_script(
        "huawei_crypto.py",
        vec![server.http_url(), PROJECT.into(), AK.into(), SK.into()],
    )
    .await;
    // The key the SDK rotated has two material versions, the newest
    // current, in the principal's account.
    let key = server
        .keys
        .clone()
        .describe_key(as_principal(pb::DescribeKeyRequest {
            key_id: out["key"].as_str().unwrap().into(),
        }))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(key.account, ACCOUNT_HW);
    let rotations = server
        .keys
        .clone()
        .list_key_rotations(as_principal(pb::ListKeyRotationsRequest {
            key_id: key.key_id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .rotations;
    assert_eq!(rotations.len(), 1);
    assert_eq!(rotations[0].key_material_id, key.current_key_material_id);
    // Huawei's AAD is an encryption context any door can give.
    use base64::Engine as _;
    let blob = base64::engine::general_purpose::STANDARD
        .decode(out["alias_ciphertext"].as_str().unwrap())
        .unwrap();
    let opened =
        aliasd::pb::crypto_service_client::CryptoServiceClient::new(server.channel.clone())
            .decrypt(as_principal(pb::DecryptRequest {
                ciphertext_blob: blob.into(),
                encryption_context: [(
                    "additional_authenticated_data".to_owned(),
                    "ctx-1".to_owned(),
                )]
                .into(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
    assert_eq!(opened.plaintext, b"12345678");
}

/// Huawei's SDK tags a key (one tag, a batch, deletes), and reads the tags
/// back; the tags are the key's, whatever door set them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_huawei_sdk_tags_keys() {
    let files = tempfile::tempdir().unwrap();
    let auth = auth_file(files.path());
    let server = TestServer::start_http(move |config| config.auth_file = Some(auth)).await;
    let out = run_script(
        "huawei_tags.py",
        vec![server.http_url(), PROJECT.into(), AK.into(), SK.into()],
    )
    .await;
    let tags = server
        .keys
        .clone()
        .list_resource_tags(as_principal(pb::ListResourceTagsRequest {
            key_id: out["key"].as_str().unwrap().into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(
        tags,
        vec![pb::Tag {
            key: "env".into(),
            value: "prod".into()
        }]
    );
}
