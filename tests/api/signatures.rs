//! The signing rules of the HTTP door, with a signer made by hand: a
//! signature must cover the headers that say what the request does (AWS:
//! `host` and every `x-amz-*`; Huawei: `host`, `x-sdk-date` and
//! `x-project-id`), so that a captured signature cannot be replayed as
//! another operation or against another project.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::common::*;
use aliasd::pb;

pub const ACCESS_KEY: &str = "AKIAHANDMADE0000001";
pub const SECRET: &str = "hand-made-secret/0000000000000000000000";
pub const PROJECT: &str = "0123456789abcdef0123456789abcdef";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub fn now_amz_date() -> String {
    use aliasd::domain::Clock;
    let [y, m, d, hh, mm, ss] = aliasd::domain::time::utc_fields(aliasd::domain::SystemClock.now());
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// `name:value` lines of the `signed` headers, in the order given.
fn canonical_headers(headers: &[(&str, &str)], signed: &[&str]) -> String {
    signed
        .iter()
        .map(|name| {
            let value = headers.iter().find(|(n, _)| n == name).unwrap().1;
            format!("{name}:{value}\n")
        })
        .collect()
}

/// `headers` as (lowercase name, value), the signed ones named by
/// `signed`; returns the Authorization header of a SigV4 signature over
/// `POST /` with `body`.
pub fn sigv4(headers: &[(&str, &str)], signed: &[&str], body: &[u8], date: &str) -> String {
    let canonical_headers = canonical_headers(headers, signed);
    let canonical = format!(
        "POST\n/\n\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        hex(&Sha256::digest(body))
    );
    let scope = format!("{}/us-east-1/kms/aws4_request", &date[..8]);
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = format!("AWS4{SECRET}").into_bytes();
    for part in scope.split('/') {
        key = hmac(&key, part.as_bytes());
    }
    format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={}, Signature={}",
        signed.join(";"),
        hex(&hmac(&key, to_sign.as_bytes()))
    )
}

/// The Authorization header of an SDK-HMAC-SHA256 signature over `POST
/// path` (the canonical URI ends in `/`, as Huawei's SDK signs it).
fn sdk_hmac(path: &str, headers: &[(&str, &str)], signed: &[&str], body: &[u8]) -> String {
    let date = headers.iter().find(|(n, _)| *n == "x-sdk-date").unwrap().1;
    let canonical_headers = canonical_headers(headers, signed);
    let canonical = format!(
        "POST\n{path}/\n\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        hex(&Sha256::digest(body))
    );
    let to_sign = format!(
        "SDK-HMAC-SHA256\n{date}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    format!(
        "SDK-HMAC-SHA256 Access={ACCESS_KEY}, SignedHeaders={}, Signature={}",
        signed.join(";"),
        hex(&hmac(SECRET.as_bytes(), to_sign.as_bytes()))
    )
}

/// A server with the HTTP door and one principal, `owner` (token
/// `owner-token`, the access key above, every action).
pub async fn signing_server(
    tweak: impl FnOnce(&mut aliasd::server::config::ServeConfig),
) -> (TestServer, tempfile::TempDir) {
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    write_secret_file(
        &auth,
        &format!(
            r#"
[[principals]]
name = "owner"
account = "{ACCOUNT}"
token_sha256 = "{}"
project_ids = ["{PROJECT}"]
access_keys = [{{ id = "{ACCESS_KEY}", secret = "{SECRET}" }}]
[[principals.statements]]
actions = "kms:*"
resources = "*"
"#,
            token_sha256("owner-token")
        ),
    );
    let server = TestServer::start_http(|config| {
        config.auth_file = Some(auth);
        tweak(config)
    })
    .await;
    (server, files)
}

/// A new key of the owner's.
async fn owner_key(server: &TestServer) -> pb::Key {
    let mut keys = server.keys.clone();
    keys.create_key(bearer("owner-token", pb::CreateKeyRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap()
}

async fn key_state(server: &TestServer, key_id: &str) -> i32 {
    let mut keys = server.keys.clone();
    keys.describe_key(bearer(
        "owner-token",
        pb::DescribeKeyRequest {
            key_id: key_id.into(),
        },
    ))
    .await
    .unwrap()
    .into_inner()
    .key
    .unwrap()
    .key_state
}

#[tokio::test]
async fn an_aws_signature_that_leaves_out_x_amz_target_is_refused_and_changes_nothing() {
    let (server, _files) = signing_server(|_| {}).await;
    let key = owner_key(&server).await;
    let body = format!(r#"{{"KeyId": "{}"}}"#, key.key_id);
    let date = now_amz_date();
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("host", "localhost"),
        ("x-amz-date", date.as_str()),
        ("x-amz-target", "TrentService.DisableKey"),
    ];
    let send = |signed: &'static [&'static str]| {
        let authorization = sigv4(&headers, signed, body.as_bytes(), &date);
        let server = &server;
        let body = body.clone();
        async move {
            let mut all: Vec<(&str, &str)> = headers
                .iter()
                .filter(|(name, _)| *name != "host")
                .copied()
                .collect();
            all.push(("authorization", &authorization));
            http_call(server, "POST", "/", &all, body.as_bytes()).await
        }
    };

    // Signed over content-type, host and x-amz-date only: the target could
    // have been anything, so the request is refused and the key stays.
    let reply = send(&["content-type", "host", "x-amz-date"]).await;
    assert_eq!(reply.status, 400, "{:?}", reply.json());
    assert_eq!(reply.json()["__type"], "IncompleteSignatureException");
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("'x-amz-target'"), "{message}");
    assert_eq!(
        key_state(&server, &key.key_id).await,
        pb::KeyState::Enabled as i32
    );

    // The same signer over every header it sends is accepted.
    let reply = send(&["content-type", "host", "x-amz-date", "x-amz-target"]).await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        key_state(&server, &key.key_id).await,
        pb::KeyState::Disabled as i32
    );
}

#[tokio::test]
async fn a_huawei_signature_that_leaves_out_x_project_id_is_refused_and_changes_nothing() {
    let (server, _files) = signing_server(|_| {}).await;
    let key = owner_key(&server).await;
    let path = format!("/v1.0/{PROJECT}/kms/disable-key");
    let body = format!(r#"{{"key_id": "{}"}}"#, key.key_id);
    let date = now_amz_date();
    let headers = [
        ("content-type", "application/json"),
        ("host", "localhost"),
        ("x-project-id", PROJECT),
        ("x-sdk-date", date.as_str()),
    ];
    let send = |signed: &'static [&'static str]| {
        let authorization = sdk_hmac(&path, &headers, signed, body.as_bytes());
        let (server, path, body) = (&server, path.clone(), body.clone());
        async move {
            let mut all: Vec<(&str, &str)> = headers
                .iter()
                .filter(|(name, _)| *name != "host")
                .copied()
                .collect();
            all.push(("authorization", &authorization));
            http_call(server, "POST", &path, &all, body.as_bytes()).await
        }
    };

    let reply = send(&["content-type", "host", "x-sdk-date"]).await;
    assert_eq!(reply.status, 401, "{:?}", reply.json());
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0302");
    let message = reply.json()["error"]["error_msg"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("'x-project-id'"), "{message}");
    assert_eq!(
        key_state(&server, &key.key_id).await,
        pb::KeyState::Enabled as i32
    );

    let reply = send(&["content-type", "host", "x-project-id", "x-sdk-date"]).await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        key_state(&server, &key.key_id).await,
        pb::KeyState::Disabled as i32
    );
}
