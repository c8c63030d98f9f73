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

/// Waits (up to 10 s) for the server to close `stream`, reading what it
/// sends meanwhile; None if it is still open then.
async fn closed_by_server(
    stream: &mut tokio::net::TcpStream,
) -> Option<(std::io::Result<usize>, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut bytes),
    )
    .await
    .ok()?;
    Some((read, bytes))
}

/// Tries `attempt` up to `tries` times, `pause` apart, until it holds.
async fn eventually<F, Fut>(tries: usize, pause_ms: u64, mut attempt: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..tries {
        if attempt().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
    }
    false
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

/// gzip and zstd both ways: requests compressed with either are accepted,
/// and a client that accepts one gets its answers compressed with it.
#[tokio::test]
async fn gzip_and_zstd_are_accepted_and_offered() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    for (encoding, name) in [
        (CompressionEncoding::Gzip, "gzip"),
        (CompressionEncoding::Zstd, "zstd"),
    ] {
        let mut keys = pb::key_service_client::KeyServiceClient::new(server.channel.clone())
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let answer = keys
            .describe_key(pb::DescribeKeyRequest {
                key_id: key.key_id.clone(),
            })
            .await
            .unwrap();
        assert_eq!(
            answer
                .metadata()
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(name)
        );
        assert_eq!(answer.into_inner().key.unwrap().key_id, key.key_id);
        let mut aliases = pb::alias_service_client::AliasServiceClient::new(server.channel.clone())
            .send_compressed(encoding)
            .accept_compressed(encoding);
        let listed = aliases
            .list_aliases(pb::ListAliasesRequest::default())
            .await
            .unwrap();
        assert_eq!(
            listed
                .metadata()
                .get("grpc-encoding")
                .map(|v| v.to_str().unwrap()),
            Some(name)
        );
    }
    // A client that accepts neither gets plain answers.
    let plain = server
        .keys
        .clone()
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap();
    assert!(plain.metadata().get("grpc-encoding").is_none());
}

/// A stream whose request body never ends: it holds a call open.
struct StalledCall {
    _body: h2::SendStream<Bytes>,
    response: h2::client::ResponseFuture,
}

/// Opens an h2 connection to `addr` (driven in the background).
async fn h2_connection(addr: std::net::SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.ready().await.unwrap()
}

/// Starts CreateKey with headers only: the body never comes.
async fn stalled_call(sender: &mut h2::client::SendRequest<Bytes>) -> StalledCall {
    let request = http::Request::post("/aliasd.v1.KeyService/CreateKey")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let ready = sender.clone().ready().await.unwrap();
    *sender = ready;
    let (response, body) = sender.send_request(request, false).unwrap();
    StalledCall {
        _body: body,
        response,
    }
}

#[tokio::test]
async fn max_concurrent_streams_is_advertised() {
    let server = TestServer::start_configured(|config| config.max_concurrent_streams = 7).await;
    let addr = server.running.as_ref().unwrap().addr;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, mut connection) = h2::client::handshake(tcp).await.unwrap();
    // Drive the connection until the server's SETTINGS are in.
    let mut sender = sender;
    let request = http::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (response, mut body) = sender.send_request(request, false).unwrap();
    body.send_data(Bytes::from(frame(0, 0, &[])), true).unwrap();
    tokio::select! {
        _ = &mut connection => panic!("the connection ended"),
        response = response => { response.unwrap(); }
    }
    assert_eq!(connection.max_concurrent_send_streams(), 7);
}

#[tokio::test]
async fn a_request_body_that_stalls_is_cut_off_and_changes_nothing() {
    let server = TestServer::start_configured(|config| config.request_body_timeout_secs = 1).await;
    let mut sender = h2_connection(server.running.as_ref().unwrap().addr).await;
    let stalled = stalled_call(&mut sender).await;
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), stalled.response)
        .await
        .expect("the server answers a stalled body, not waits forever")
        .unwrap();
    let status = tonic::Status::from_header_map(response.headers()).expect("a gRPC status");
    assert_error::<()>(Err(status), Code::InvalidArgument, "REQUEST_BODY_TIMEOUT");
    assert!(server.list_keys().await.is_empty());
}

#[tokio::test]
async fn calls_past_max_in_flight_are_server_busy_and_probes_still_answer() {
    let server = TestServer::start_configured(|config| {
        config.max_in_flight = 2;
        config.request_body_timeout_secs = 60;
    })
    .await;
    let mut sender = h2_connection(server.running.as_ref().unwrap().addr).await;
    let first = stalled_call(&mut sender).await;
    let second = stalled_call(&mut sender).await;
    // Give the server a moment to take both calls in.
    let mut busy = None;
    for _ in 0..100 {
        match server
            .keys
            .clone()
            .list_keys(pb::ListKeysRequest::default())
            .await
        {
            Err(status) if status.code() == Code::ResourceExhausted => {
                busy = Some(status);
                break;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let status = busy.expect("a third call is refused while two hold the server");
    assert_error::<()>(Err(status), Code::ResourceExhausted, "SERVER_BUSY");
    // Probes are not counted.
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(serving.status, 1, "SERVING");
    // Once the stalled calls go away, calls are served again.
    drop((first, second));
    let served = eventually(200, 20, || async {
        server
            .keys
            .clone()
            .list_keys(pb::ListKeysRequest::default())
            .await
            .is_ok()
    })
    .await;
    assert!(served, "the slots of the reset calls were freed");
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_preface_timeout() {
    let server =
        TestServer::start_configured(|config| config.connection_preface_timeout_secs = 1).await;
    let addr = server.running.as_ref().unwrap().addr;
    let mut silent = Vec::new();
    for _ in 0..5 {
        silent.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    // Real clients are served meanwhile.
    server.create_key().await;
    for mut connection in silent {
        // The server's own SETTINGS may come first; then the end (EOF or a
        // reset: closed either way).
        let read = closed_by_server(&mut connection).await;
        assert!(
            read.is_some(),
            "the server closes a silent connection within its preface timeout"
        );
    }
    server.create_key().await;
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_at_once() {
    let server = TestServer::start_configured(|config| {
        config.max_connections = 3;
        config.connection_preface_timeout_secs = 60;
    })
    .await;
    let addr = server.running.as_ref().unwrap().addr;
    // The test's channel holds one slot; two silent connections the others.
    server.create_key().await;
    let held = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let read = closed_by_server(&mut extra).await;
    assert!(
        read.is_some(),
        "a connection past the limit is closed at once"
    );
    // Closed before any HTTP/2 was spoken.
    assert!(
        matches!(&read, Some((Ok(0), _)) | Some((Err(_), _))),
        "{read:?}"
    );
    // Closing the silent ones frees their slots.
    drop(held);
    let connected = eventually(100, 50, || async {
        let Ok(channel) = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
        else {
            return false;
        };
        pb::key_service_client::KeyServiceClient::new(channel)
            .list_keys(pb::ListKeysRequest::default())
            .await
            .is_ok()
    })
    .await;
    assert!(connected, "freed slots take new connections");
}

#[tokio::test]
async fn a_connection_without_calls_is_closed_when_idle_but_an_open_watch_keeps_it() {
    let server =
        TestServer::start_configured(|config| config.idle_connection_timeout_secs = 1).await;
    let addr = server.running.as_ref().unwrap().addr;
    // An h2 connection that speaks (answers pings) but makes one call and
    // then none: closed after the idle timeout.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let driven = tokio::spawn(connection);
    let request = http::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (response, mut body) = sender.send_request(request, false).unwrap();
    body.send_data(Bytes::from(frame(0, 0, &[])), true).unwrap();
    response.await.unwrap();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), driven).await;
    assert!(ended.is_ok(), "an idle connection is closed by the server");
    // A watch keeps its connection busy past the idle timeout.
    let key = server.create_key().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = pb::alias_service_client::AliasServiceClient::new(channel)
        .watch_aliases(pb::WatchAliasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    server
        .create_alias("alias/after-idle-period", &key.key_id)
        .await
        .unwrap();
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("the watch still delivers")
        .expect("no error")
        .expect("an event");
    assert_eq!(
        event.event.unwrap().alias.unwrap().alias_name,
        "alias/after-idle-period"
    );
}

#[tokio::test]
async fn one_client_address_cannot_take_every_connection() {
    let server = TestServer::start_configured(|config| {
        config.max_connections_per_ip = 2;
        config.connection_preface_timeout_secs = 60;
    })
    .await;
    let addr = server.running.as_ref().unwrap().addr;
    // The test's channel is one of 127.0.0.1's two.
    server.create_key().await;
    let _held = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let read = closed_by_server(&mut third).await;
    assert!(
        matches!(&read, Some((Ok(0), _)) | Some((Err(_), _))),
        "{read:?}"
    );
    // The existing connection still works.
    server.create_key().await;
}

#[tokio::test]
async fn a_health_check_whose_body_stalls_is_cut_off_too() {
    let server = TestServer::start_configured(|config| config.request_body_timeout_secs = 1).await;
    let mut sender = h2_connection(server.running.as_ref().unwrap().addr).await;
    let request = http::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, _body) = sender.send_request(request, false).unwrap();
    let response = tokio::time::timeout(std::time::Duration::from_secs(10), response)
        .await
        .expect("a stalled health check is answered, not held")
        .unwrap();
    let status = tonic::Status::from_header_map(response.headers()).expect("a gRPC status");
    assert_error::<()>(Err(status), Code::InvalidArgument, "REQUEST_BODY_TIMEOUT");
}

/// Opens an h2 connection with a health Watch stream open on it (so the
/// idle timeout cannot end it), and returns the connection's task.
async fn busy_connection(
    addr: std::net::SocketAddr,
) -> tokio::task::JoinHandle<Result<(), h2::Error>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = h2::client::handshake(tcp).await.unwrap();
    let driven = tokio::spawn(connection);
    let request = http::Request::post("/grpc.health.v1.Health/Watch")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (response, mut body) = sender.send_request(request, false).unwrap();
    body.send_data(Bytes::from(frame(0, 0, &[])), true).unwrap();
    let response = response.await.unwrap();
    // Keep the stream (and the sender) alive as long as the connection.
    tokio::spawn(async move {
        let _sender = sender;
        let mut stream = response.into_body();
        while let Some(Ok(_)) = stream.data().await {}
    });
    driven
}

/// `--max-connection-age-secs`: a connection is sent away after its age
/// (and closed after the grace), even with a stream open; without the flag
/// it lives on.
#[tokio::test]
async fn connections_are_retired_at_max_connection_age() {
    let server = TestServer::start().await;
    let driven = busy_connection(server.running.as_ref().unwrap().addr).await;
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(3), driven)
            .await
            .is_err(),
        "without a maximum age the connection lives on"
    );

    let server = TestServer::start_configured(|config| {
        config.max_connection_age_secs = 1;
        config.max_connection_age_grace_secs = 1;
    })
    .await;
    let started = std::time::Instant::now();
    let driven = busy_connection(server.running.as_ref().unwrap().addr).await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(15), driven).await;
    assert!(
        ended.is_ok(),
        "the connection is closed after its age and grace"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}
