//! Keys that work through the clients people already have: boto3 (every
//! operation, every key spec, every KeyId form, checked with pyca), the AWS
//! Encryption SDK by alias ARN, the aws CLI, and Huawei's SDK.

use std::process::Command;

use aliasd::pb;
use aliasd::pb::audit_service_client::AuditServiceClient;

use crate::aws::{isolated_aws_env, run_python};
use crate::common::TestServer;
use crate::python::python;

/// The audit records of `action` (polled: successful crypto calls are
/// written in batches the answer does not wait for).
async fn audited(server: &TestServer, action: &str, at_least: usize) -> Vec<pb::AuditEvent> {
    let mut client = AuditServiceClient::new(server.channel.clone());
    for _ in 0..100 {
        let mut events = Vec::new();
        let mut token = String::new();
        loop {
            let page = client
                .list_audit_events(pb::ListAuditEventsRequest {
                    page_size: 100,
                    page_token: token.clone(),
                    action: action.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            events.extend(page.events);
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        if events.len() >= at_least {
            return events;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {at_least} audit records of {action}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_uses_every_key_spec_by_every_key_id_form_and_pyca_agrees() {
    let server = TestServer::start_http(|_| {}).await;
    let stdout = run_python("aws_crypto.py", vec![server.http_url()], vec![]).await;
    let out: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();

    // What boto3 saw is what the store keeps.
    let key = server
        .describe(out["symmetric_key"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(
        key.current_key_material_id,
        out["rotated_material"].as_str().unwrap()
    );
    let sm2 = server
        .describe(out["sm2_key"].as_str().unwrap())
        .await
        .unwrap();
    assert!(sm2.current_key_material_id.is_empty());

    // Each use is audited with the key, the alias used and the algorithm,
    // and never with what was encrypted.
    let encrypts = audited(&server, "kms:Encrypt", 10).await;
    let by_alias = encrypts
        .iter()
        .find(|e| e.resources.iter().any(|r| r == "alias/sym"))
        .expect("an Encrypt by alias/sym is audited");
    assert_eq!(by_alias.resources[0], key.key_id);
    assert_eq!(by_alias.message, "algorithm=SYMMETRIC_DEFAULT");
    let signs = audited(&server, "kms:Sign", 1).await;
    assert!(signs
        .iter()
        .any(|e| e.message == "algorithm=RSASSA_PSS_SHA_512"));
    for event in encrypts.iter().chain(&signs) {
        let text = format!("{event:?}");
        assert!(
            !text.contains("secret") && !text.contains("c2VjcmV0"),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_encryption_sdk_and_the_aws_cli_encrypt_by_alias() {
    let server = TestServer::start_http(|_| {}).await;
    let key = server.create_key().await;
    server
        .create_alias("alias/esdk", &key.key_id)
        .await
        .unwrap();
    let alias_arn = format!("{}:alias/esdk", key.arn.split(":key/").next().unwrap());
    let stdout = run_python(
        "encryption_sdk.py",
        vec![alias_arn.clone(), key.arn.clone()],
        vec![("AWS_ENDPOINT_URL_KMS".into(), server.http_url())],
    )
    .await;
    assert!(
        stdout.contains("encryption sdk: all checks passed"),
        "{stdout}"
    );

    // The aws CLI: encrypt by alias name, decrypt with no key named.
    let url = server.http_url();
    let output = tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().unwrap();
        let plain = home.path().join("plain.txt");
        std::fs::write(&plain, b"from the aws cli").unwrap();
        let aws = |args: &[&str]| {
            let output = Command::new(python())
                .args(["-m", "awscli", "--endpoint-url", &url])
                .args(args)
                .envs(isolated_aws_env(home.path()))
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "aws {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            String::from_utf8(output.stdout).unwrap()
        };
        let blob = aws(&[
            "kms",
            "encrypt",
            "--key-id",
            "alias/esdk",
            "--plaintext",
            &format!("fileb://{}", plain.display()),
            "--query",
            "CiphertextBlob",
            "--output",
            "text",
        ]);
        let sealed = home.path().join("sealed.bin");
        use base64::Engine as _;
        std::fs::write(
            &sealed,
            base64::engine::general_purpose::STANDARD
                .decode(blob.trim())
                .unwrap(),
        )
        .unwrap();
        aws(&[
            "kms",
            "decrypt",
            "--ciphertext-blob",
            &format!("fileb://{}", sealed.display()),
            "--query",
            "Plaintext",
            "--output",
            "text",
        ])
    })
    .await
    .unwrap();
    use base64::Engine as _;
    let plaintext = base64::engine::general_purpose::STANDARD
        .decode(output.trim())
        .unwrap();
    assert_eq!(plaintext, b"from the aws cli");
}
