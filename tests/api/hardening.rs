//! What trying the server as an attacker found: malformed gRPC framing,
//! non-gRPC requests, compressed requests. Sent over a bare HTTP/2
//! connection, so that the bytes on the wire are exactly the test's.

use aliasd::pb;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tonic::codec::CompressionEncoding;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::*;

/// What came back for a raw request: the HTTP status and, for gRPC
/// answers, the status (from the headers or the trailers).
struct RawAnswer {
    http_status: u16,
    grpc: Option<tonic::Status>,
}

async fn raw_request(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
    headers: &[(&'static str, &'static str)],
    body: Vec<u8>,
) -> RawAnswer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", content_type)
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = sender
        .send_request(request.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let http_status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    let grpc = tonic::Status::from_header_map(&parts.headers)
        .or_else(|| trailers.as_ref().and_then(tonic::Status::from_header_map));
    RawAnswer { http_status, grpc }
}

/// One gRPC frame: flag byte, declared length, payload.
fn frame(flag: u8, declared_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![flag];
    bytes.extend_from_slice(&declared_len.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fn assert_malformed(answer: RawAnswer, case: &str) {
    assert_eq!(answer.http_status, 200, "{case}");
    let status = answer
        .grpc
        .unwrap_or_else(|| panic!("{case}: no gRPC status"));
    assert_eq!(status.code(), Code::InvalidArgument, "{case}: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("{case}: no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, "MALFORMED_REQUEST", "{case}");
}

#[tokio::test]
async fn broken_grpc_framing_is_invalid_argument_with_an_error_info() {
    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().addr;
    let create = "/aliasd.v1.KeyService/CreateKey";
    let grpc = "application/grpc";
    // The compressed flag, but no grpc-encoding.
    let answer = raw_request(addr, create, grpc, &[], frame(1, 0, &[])).await;
    assert_malformed(answer, "compressed flag without grpc-encoding");
    // A flag byte that is neither 0 nor 1.
    let answer = raw_request(addr, create, grpc, &[], frame(2, 0, &[])).await;
    assert_malformed(answer, "flag byte 2");
    // A frame that declares 10 bytes and carries 3.
    let answer = raw_request(addr, create, grpc, &[], frame(0, 10, &[0x0a, 0x01, 0x41])).await;
    assert_malformed(answer, "truncated frame");
    // Bytes that claim to be gzip but are not.
    let answer = raw_request(
        addr,
        create,
        grpc,
        &[("grpc-encoding", "gzip")],
        frame(1, 4, &[1, 2, 3, 4]),
    )
    .await;
    assert_malformed(answer, "corrupt gzip");
    // None of them created anything, and the server still serves.
    assert!(server.list_keys().await.is_empty());
    server.create_key().await;
}

#[tokio::test]
async fn a_request_that_is_not_grpc_gets_http_415() {
    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().addr;
    let empty_create = frame(0, 0, &[]);
    for content_type in ["application/json", "text/plain", "application/grpcx"] {
        let answer = raw_request(
            addr,
            "/aliasd.v1.KeyService/CreateKey",
            content_type,
            &[],
            empty_create.clone(),
        )
        .await;
        assert_eq!(answer.http_status, 415, "{content_type}");
        assert!(answer.grpc.is_none(), "{content_type}: no gRPC answer");
    }
    assert!(server.list_keys().await.is_empty(), "nothing was served");
    // application/grpc+proto is gRPC.
    let answer = raw_request(
        addr,
        "/aliasd.v1.KeyService/CreateKey",
        "application/grpc+proto",
        &[],
        empty_create,
    )
    .await;
    assert_eq!(answer.http_status, 200);
    assert_eq!(answer.grpc.map(|s| s.code()), Some(Code::Ok));
    assert_eq!(server.list_keys().await.len(), 1);
}

#[tokio::test]
async fn gzip_compressed_requests_are_accepted() {
    let server = TestServer::start().await;
    let mut keys = pb::key_service_client::KeyServiceClient::new(server.channel.clone())
        .send_compressed(CompressionEncoding::Gzip);
    let key = keys
        .create_key(pb::CreateKeyRequest {
            description: "compressed".repeat(100),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    let mut aliases = pb::alias_service_client::AliasServiceClient::new(server.channel.clone())
        .send_compressed(CompressionEncoding::Gzip);
    aliases
        .create_alias(pb::CreateAliasRequest {
            alias_name: "alias/zipped".into(),
            target_key_id: key.key_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(server.alias_names("").await, ["alias/zipped"]);
}
