//! TLS and mutual TLS, with certificates made in the test by rcgen.

use std::sync::Arc;

use aliasd::domain::SystemClock;
use aliasd::pb;
use aliasd::pb::key_service_client::KeyServiceClient;
use rcgen::SanType;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};

use crate::common::*;

const SPIFFE_ID: &str = "spiffe://example.org/ns/payments/sa/app";
const OTHER_SPIFFE_ID: &str = "spiffe://example.org/ns/billing/sa/app";

struct Mtls {
    server: TestServer,
    ca: Ca,
    _files: tempfile::TempDir,
}

async fn mtls_server() -> Mtls {
    let files = tempfile::tempdir().unwrap();
    let ca = ca("aliasd test CA");
    let (server_cert, server_key) = leaf(
        &ca,
        "localhost",
        vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ],
    );
    let auth = format!(
        r#"
[[principals]]
name = "spiffe-app"
account = "111111111111"
tls_identity = "{SPIFFE_ID}"
[[principals.statements]]
actions = "kms:*"
resources = "*"

[[principals]]
name = "spiffe-other"
account = "111111111111"
tls_identity = "{OTHER_SPIFFE_ID}"
[[principals.statements]]
actions = "kms:*"
resources = "*"

[[principals]]
name = "cn-app"
account = "222222222222"
tls_identity = "cn-only-client"
[[principals.statements]]
actions = "kms:*"
resources = "*"

[[principals]]
name = "token-user"
account = "111111111111"
token_sha256 = "{}"
[[principals.statements]]
actions = "kms:List*"
resources = "*"
"#,
        // sha256("token-over-tls")
        token_sha256("token-over-tls")
    );
    let path = |name: &str| files.path().join(name);
    std::fs::write(path("server.pem"), server_cert).unwrap();
    std::fs::write(path("server.key"), server_key).unwrap();
    std::fs::write(path("ca.pem"), &ca.pem).unwrap();
    std::fs::write(path("auth.toml"), auth).unwrap();
    let (cert, key, client_ca, auth) = (
        path("server.pem"),
        path("server.key"),
        path("ca.pem"),
        path("auth.toml"),
    );
    let dir = tempfile::tempdir().unwrap();
    let running = {
        let mut config = config(&dir);
        config.tls_cert = Some(cert);
        config.tls_key = Some(key);
        config.tls_client_ca = Some(client_ca);
        config.auth_file = Some(auth);
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        aliasd::server::start(config, Arc::new(SystemClock), std::future::pending())
            .await
            .expect("TLS server starts")
    };
    let channel = tls_channel(running.addr, &ca, None).await.unwrap();
    let server = TestServer {
        keys: KeyServiceClient::new(channel.clone()),
        aliases: aliasd::pb::alias_service_client::AliasServiceClient::new(channel.clone()),
        channel,
        running: Some(running),
        dir,
    };
    Mtls {
        server,
        ca,
        _files: files,
    }
}

/// A TLS channel trusting `ca`, optionally presenting a client certificate.
async fn tls_channel(
    addr: std::net::SocketAddr,
    ca: &Ca,
    client: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&ca.pem))
        .domain_name("localhost");
    if let Some((cert, key)) = client {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Channel::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn a_client_certificate_signed_by_the_ca_identifies_its_principal() {
    let m = mtls_server().await;
    let addr = m.server.running.as_ref().unwrap().addr;
    // SPIFFE URI SAN -> spiffe-app (account 1111...).
    let spiffe = leaf(
        &m.ca,
        "some-workload",
        vec![SanType::URI(SPIFFE_ID.try_into().unwrap())],
    );
    let mut client = KeyServiceClient::new(tls_channel(addr, &m.ca, Some(spiffe)).await.unwrap());
    let key = client
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(key.account, "111111111111");
    // Subject CN -> cn-app (account 2222...), which does not see that key.
    let cn = leaf(&m.ca, "cn-only-client", vec![]);
    let mut client = KeyServiceClient::new(tls_channel(addr, &m.ca, Some(cn)).await.unwrap());
    let result = client
        .describe_key(pb::DescribeKeyRequest {
            key_id: key.key_id.clone(),
        })
        .await;
    assert_error(result, Code::NotFound, "KEY_NOT_FOUND");
    let mine = client
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_eq!(mine.account, "222222222222");
    // A CN cannot pose as another principal's identity when the certificate
    // has a URI SAN of its own.
    let posing = leaf(
        &m.ca,
        "cn-only-client",
        vec![SanType::URI(
            "spiffe://example.org/lowly".try_into().unwrap(),
        )],
    );
    let mut client = KeyServiceClient::new(tls_channel(addr, &m.ca, Some(posing)).await.unwrap());
    let result = client.list_keys(pb::ListKeysRequest::default()).await;
    assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
    // A certificate of the CA whose identity no principal has.
    let stranger = leaf(
        &m.ca,
        "stranger",
        vec![SanType::URI(
            "spiffe://example.org/other".try_into().unwrap(),
        )],
    );
    let mut client = KeyServiceClient::new(tls_channel(addr, &m.ca, Some(stranger)).await.unwrap());
    let result = client.list_keys(pb::ListKeysRequest::default()).await;
    let status = assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
    assert!(
        status.message().contains("spiffe://example.org/other"),
        "{}",
        status.message()
    );
}

/// The keys a client with a certificate for the URI SAN `spiffe_id` sees.
async fn keys_seen_by_spiffe_id(m: &Mtls, spiffe_id: &str) -> Vec<pb::Key> {
    let addr = m.server.running.as_ref().unwrap().addr;
    let cert = leaf(
        &m.ca,
        "some-workload",
        vec![SanType::URI(spiffe_id.try_into().unwrap())],
    );
    KeyServiceClient::new(tls_channel(addr, &m.ca, Some(cert)).await.unwrap())
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys
}

#[tokio::test]
async fn a_common_name_cannot_pose_as_a_spiffe_id() {
    let m = mtls_server().await;
    let addr = m.server.running.as_ref().unwrap().addr;
    // CN = a principal's SPIFFE id, no URI SAN; with and without a DNS SAN.
    for sans in [
        vec![],
        vec![SanType::DnsName("workload.internal".try_into().unwrap())],
    ] {
        let posing = leaf(&m.ca, SPIFFE_ID, sans);
        let mut client =
            KeyServiceClient::new(tls_channel(addr, &m.ca, Some(posing)).await.unwrap());
        let result = client.create_key(pb::CreateKeyRequest::default()).await;
        assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
    }
    // Nothing was created in the SPIFFE principal's account.
    let keys = keys_seen_by_spiffe_id(&m, SPIFFE_ID).await;
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn a_certificate_whose_uri_sans_name_two_principals_is_refused() {
    let m = mtls_server().await;
    let addr = m.server.running.as_ref().unwrap().addr;
    let both = leaf(
        &m.ca,
        "some-workload",
        vec![
            SanType::URI(SPIFFE_ID.try_into().unwrap()),
            SanType::URI(OTHER_SPIFFE_ID.try_into().unwrap()),
        ],
    );
    let mut client = KeyServiceClient::new(tls_channel(addr, &m.ca, Some(both)).await.unwrap());
    let result = client.create_key(pb::CreateKeyRequest::default()).await;
    let status = assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
    assert!(
        status.message().contains("several principals"),
        "{}",
        status.message()
    );
    // The other principal's SPIFFE id alone still works, and sees no key.
    let keys = keys_seen_by_spiffe_id(&m, OTHER_SPIFFE_ID).await;
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let m = mtls_server().await;
    let addr = m.server.running.as_ref().unwrap().addr;
    let rogue_ca = ca("rogue CA");
    let forged = leaf(
        &rogue_ca,
        "cn-only-client",
        vec![SanType::URI(SPIFFE_ID.try_into().unwrap())],
    );
    let refused = match tls_channel(addr, &m.ca, Some(forged)).await {
        Err(_) => true,
        Ok(channel) => KeyServiceClient::new(channel)
            .create_key(pb::CreateKeyRequest::default())
            .await
            .is_err(),
    };
    assert!(
        refused,
        "the TLS handshake must refuse a certificate of another CA"
    );
    // Nothing was created in either account.
    let spiffe = leaf(
        &m.ca,
        "x",
        vec![SanType::URI(SPIFFE_ID.try_into().unwrap())],
    );
    let mut client = KeyServiceClient::new(tls_channel(addr, &m.ca, Some(spiffe)).await.unwrap());
    assert!(client
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner()
        .keys
        .is_empty());
}

#[tokio::test]
async fn over_tls_bearer_tokens_work_and_health_needs_nothing() {
    let m = mtls_server().await;
    // No client certificate: a bearer token authenticates.
    let mut keys = m.server.keys.clone();
    let mut request = Request::new(pb::ListKeysRequest::default());
    request
        .metadata_mut()
        .insert("authorization", "Bearer token-over-tls".parse().unwrap());
    keys.list_keys(request).await.unwrap();
    // No credentials at all.
    let result = keys.list_keys(pb::ListKeysRequest::default()).await;
    assert_error(result, Code::Unauthenticated, "UNAUTHENTICATED");
    // Probes: no certificate, no token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(m.server.channel.clone());
    let reply = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "aliasd.v1.KeyService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    // Plaintext to a TLS port does not get through.
    let addr = m.server.running.as_ref().unwrap().addr;
    let plaintext = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(KeyServiceClient::new(channel)
            .list_keys(pb::ListKeysRequest::default())
            .await
            .is_err());
    }
}

#[tokio::test]
async fn bad_tls_files_stop_start_up_with_a_message_naming_the_file() {
    let files = tempfile::tempdir().unwrap();
    let ca = ca("aliasd test CA");
    let (cert, key) = leaf(&ca, "localhost", vec![]);
    let (_, other_key) = leaf(&ca, "other", vec![]);
    let write = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = write("server.pem", &cert);
    let key = write("server.key", &key);
    let other_key = write("other.key", &other_key);
    let junk = write("junk.pem", "this is not PEM at all\n");
    let ca_file = write("ca.pem", &ca.pem);
    let cases = [
        (
            "junk certificate",
            &junk,
            &key,
            None,
            "junk.pem",
            "no PEM certificate",
        ),
        (
            "junk key",
            &cert,
            &junk,
            None,
            "junk.pem",
            "no usable PEM private key",
        ),
        ("swapped", &key, &cert, None, "server.key", "swapped"),
        (
            "mismatched key",
            &cert,
            &other_key,
            None,
            "other.key",
            "does not belong",
        ),
        (
            "junk client CA",
            &cert,
            &key,
            Some(&junk),
            "junk.pem",
            "--tls-client-ca",
        ),
        (
            "a leaf as client CA",
            &cert,
            &key,
            Some(&cert),
            "server.pem",
            "not a CA certificate",
        ),
    ];
    for (case, cert, key, client_ca, names, says) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(&dir);
        config.tls_cert = Some(cert.clone());
        config.tls_key = Some(key.clone());
        config.tls_client_ca = client_ca.cloned();
        let error = match aliasd::server::start(
            config,
            Arc::new(SystemClock),
            std::future::pending(),
        )
        .await
        {
            Ok(_) => panic!("{case}: the server started"),
            Err(error) => error.to_string(),
        };
        assert!(error.contains(names), "{case}: {error}");
        assert!(error.contains(says), "{case}: {error}");
    }
    // The good files start a server.
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.tls_cert = Some(cert);
    config.tls_key = Some(key);
    config.tls_client_ca = Some(ca_file);
    let running = aliasd::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .expect("good TLS files start the server");
    running.stop().await.unwrap();
}

/// A TLS client of the HTTP door trusting `ca`.
async fn https_stream(
    addr: std::net::SocketAddr,
    ca: &Ca,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
}

#[tokio::test]
async fn the_http_door_serves_tls_with_the_grpc_certificate_and_refuses_plaintext() {
    let m = mtls_server().await;
    let http = m.server.running.as_ref().unwrap().http_addr.unwrap();
    let stream = https_stream(http, &m.ca).await.expect("TLS handshake");
    let reply = http_exchange(stream, "GET", "/v1.0/p/kms/nothing", &[], b"").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0201");

    // Plain HTTP to the TLS port gets no HTTP answer.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(http).await.unwrap();
    plain
        .write_all(b"GET /v1.0/p/kms/nothing HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        plain.read_to_end(&mut answer),
    )
    .await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// `aliasd key|alias ...` over TLS: trusting the CA given, with a client
/// certificate (mutual TLS) or a token; plaintext to a TLS port fails
/// with a hint.
#[tokio::test]
async fn the_command_line_client_speaks_tls_and_mutual_tls() {
    let m = mtls_server().await;
    let files = tempfile::tempdir().unwrap();
    let (cert, key) = leaf(
        &m.ca,
        "spiffe client",
        vec![SanType::URI(SPIFFE_ID.try_into().unwrap())],
    );
    let path = |name: &str| files.path().join(name).to_str().unwrap().to_owned();
    std::fs::write(path("ca.pem"), &m.ca.pem).unwrap();
    std::fs::write(path("client.pem"), cert).unwrap();
    std::fs::write(path("client.key"), key).unwrap();
    let endpoint = m.server.running.as_ref().unwrap().addr.to_string();
    let run = |args: Vec<String>| {
        let endpoint = endpoint.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_aliasd"))
                .args(&args)
                .args(["--endpoint", &endpoint])
                .env_remove("ALIASD_TOKEN")
                .output()
                .await
                .unwrap()
        }
    };
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let mtls = [
        "--tls-ca",
        &path("ca.pem"),
        "--tls-client-cert",
        &path("client.pem"),
        "--tls-client-key",
        &path("client.key"),
    ]
    .map(str::to_owned);

    let created = run([owned(&["key", "create", "-q"]), mtls.to_vec()].concat()).await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let id = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let described = run([
        owned(&["key", "describe", &id, "-o", "json"]),
        mtls.to_vec(),
    ]
    .concat())
    .await;
    assert!(described.status.success());
    let key: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(
        key["account"], "111111111111",
        "the certificate's principal"
    );

    // A token over TLS, the server checked against the CA only.
    let listed = run(owned(&[
        "key",
        "list",
        "-q",
        "--tls-ca",
        &path("ca.pem"),
        "--token",
        "token-over-tls",
    ]))
    .await;
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(String::from_utf8(listed.stdout).unwrap().trim(), id);

    // Plaintext to the TLS port.
    let plain = run(owned(&["key", "list"])).await;
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("--tls-ca"), "{stderr}");
}

/// `--health-listen` is plaintext while the API is TLS: Kubernetes probes
/// (native gRPC, HTTP) reach it without certificates.
#[tokio::test]
async fn the_health_listener_answers_in_plaintext_while_the_api_is_tls() {
    let files = tempfile::tempdir().unwrap();
    let ca = ca("probe CA");
    let (cert, key) = leaf(
        &ca,
        "localhost",
        vec![SanType::IpAddress("127.0.0.1".parse().unwrap())],
    );
    std::fs::write(files.path().join("server.pem"), cert).unwrap();
    std::fs::write(files.path().join("server.key"), key).unwrap();
    // Started directly: TestServer connects in plaintext, which a TLS port
    // refuses.
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(&dir);
    config.tls_cert = Some(files.path().join("server.pem"));
    config.tls_key = Some(files.path().join("server.key"));
    config.health_listen = Some("127.0.0.1:0".parse().unwrap());
    let running = aliasd::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .unwrap();
    let health = running.health_addr.unwrap();
    assert_ne!(health, running.addr);

    let channel = Channel::from_shared(format!("http://{health}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut probe = tonic_health::pb::health_client::HealthClient::new(channel);
    for service in ["", "aliasd.v1.AliasService"] {
        let status = probe
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service:?}"
        );
    }
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let stream = tokio::net::TcpStream::connect(health).await.unwrap();
        let reply = http_exchange(stream, "GET", path, &[], b"").await;
        assert_eq!(
            (
                reply.status,
                String::from_utf8(reply.body).unwrap().as_str()
            ),
            (200, body)
        );
    }
    // The API port itself stays TLS only.
    let plaintext = Channel::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let refused = tonic_health::pb::health_client::HealthClient::new(plaintext)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await;
    assert!(refused.is_err());
    running.stop().await.unwrap();
}
