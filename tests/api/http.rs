//! What both HTTP dialects share (`--http-listen`): routing of unknown paths,
//! bounded bodies, the x-request-id, and the listener being off by default.
//! The dialects themselves are tested in `aws.rs` and `huawei.rs`; TLS in
//! `tls.rs`.

use aliasd::pb;

use crate::common::*;

#[tokio::test]
async fn the_http_listener_is_off_unless_asked_for() {
    let server = TestServer::start().await;
    assert_eq!(server.running.as_ref().unwrap().http_addr, None);
    let server = TestServer::start_http(|_| {}).await;
    let http = server.running.as_ref().unwrap().http_addr.unwrap();
    assert!(http.ip().is_loopback());
    assert_ne!(http, server.running.as_ref().unwrap().addr);
    assert_eq!(server.http_url(), format!("http://{http}"));
}

#[tokio::test]
async fn an_unknown_path_is_a_404_in_the_dialect_of_its_prefix() {
    let server = TestServer::start_http(|_| {}).await;
    let reply = http_call(&server, "GET", "/nothing/here", &[], b"").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["__type"], "UnknownOperationException");
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("/nothing/here"));

    // A method a path does not take: the same answer, not a bare 405.
    let reply = http_call(
        &server,
        "PUT",
        "/",
        &[("X-Amz-Target", "TrentService.CreateKey")],
        b"{}",
    )
    .await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["__type"], "UnknownOperationException");
    assert!(reply.json()["message"].as_str().unwrap().contains("PUT /"));

    let reply = http_call(&server, "POST", "/v1.0/p1/nothing", &[], b"{}").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0201");
    // Both answers carry a trace id.
    assert!(!reply.headers["x-request-id"].is_empty());
}

#[tokio::test]
async fn a_callers_x_request_id_comes_back_and_a_bad_one_is_replaced() {
    let server = TestServer::start_http(|_| {}).await;
    let reply = http_call(
        &server,
        "GET",
        "/nowhere",
        &[("x-request-id", "trace-42")],
        b"",
    )
    .await;
    assert_eq!(reply.headers["x-request-id"], "trace-42");
    let reply = http_call(
        &server,
        "GET",
        "/nowhere",
        &[("x-request-id", "a}b=c")],
        b"",
    )
    .await;
    let id = &reply.headers["x-request-id"];
    assert_ne!(id, "a}b=c");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn a_body_over_1_mib_is_refused_in_each_dialect_and_changes_nothing() {
    let server = TestServer::start_http(|_| {}).await;
    // A valid request padded past the limit with a long description.
    let description = "d".repeat(1024 * 1024 + 10);
    let aws = serde_json::json!({ "Description": description }).to_string();
    let reply = http_call(
        &server,
        "POST",
        "/",
        &[
            ("X-Amz-Target", "TrentService.CreateKey"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        aws.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["__type"], "ValidationException");

    let huawei = serde_json::json!({ "key_description": description }).to_string();
    let reply = http_call(
        &server,
        "POST",
        "/v1.0/0123456789abcdef/kms/create-key",
        &[("Content-Type", "application/json")],
        huawei.as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["error_code"], "KMS.0203");

    let keys = server
        .keys
        .clone()
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(keys.keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_cut_off_at_the_body_deadline() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_http(|config| config.request_body_timeout_secs = 1).await;
    let addr = server.running.as_ref().unwrap().http_addr.unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.CreateKey\r\n\
              Content-Length: 100\r\nConnection: close\r\n\r\n{\"Desc",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the server answers within its body deadline")
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive"), "{answer}");
}
