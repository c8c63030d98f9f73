//! Serving: reflection, health, x-request-id, deadlines, malformed input.

use std::sync::Arc;
use std::time::Duration;

use aliasd::domain::SystemClock;
use aliasd::pb;
use bytes::{Buf, BufMut};
use prost::Message;
use tokio_stream::StreamExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::common::*;

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "aliasd.v1.AliasService".into(),
        )),
        ask(MessageRequest::FileContainingSymbol(
            "google.rpc.ErrorInfo".into(),
        )),
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();

    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "aliasd.v1.KeyService",
        "aliasd.v1.AliasService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors")
    };
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.service.iter().any(|s| s.name() == "AliasService"))
        .expect("the file of AliasService");
    let methods: Vec<_> = file.service[0]
        .method
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    assert_eq!(
        methods,
        [
            "CreateAlias",
            "UpdateAlias",
            "DeleteAlias",
            "RenameAlias",
            "GetAlias",
            "ListAliases",
            "WatchAliases"
        ]
    );
    // Comments travel with the descriptors, so `grpcurl describe` shows them.
    assert!(file.source_code_info.is_some_and(|info| info
        .location
        .iter()
        .any(|l| l.leading_comments().contains("alias"))));

    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("the error-detail types are registered too")
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

/// A client that learns the API by reflection finds the reasons enum too.
#[tokio::test]
async fn reflection_serves_the_error_reason_enum_with_every_reason() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "aliasd.v1.ErrorReason".into(),
        )),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected the file of aliasd.v1.ErrorReason")
    };
    let file = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .find(|f| f.name() == "aliasd/v1/errors.proto")
        .expect("aliasd/v1/errors.proto");
    let reasons = &file.enum_type[0];
    assert_eq!(reasons.name(), "ErrorReason");
    let mut names: Vec<&str> = reasons.value.iter().map(|v| v.name()).collect();
    let mut expected: Vec<&str> = aliasd::domain::Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    expected.push("ERROR_REASON_UNSPECIFIED");
    names.sort_unstable();
    expected.sort_unstable();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn reflection_v1alpha_lists_the_services() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.next().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list")
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"aliasd.v1.AliasService".to_string()),
        "{names:?}"
    );
}

#[tokio::test]
async fn health_is_serving_per_service_and_turns_not_serving_at_shutdown() {
    let server = TestServer::start_with(|c| c.drain_timeout_secs = 60, Arc::new(SystemClock)).await;
    let mut health = HealthClient::new(server.channel.clone());
    for service in ["", "aliasd.v1.KeyService", "aliasd.v1.AliasService"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::Serving, "{service:?}");
    }
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "aliasd.v1.AliasService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let started = std::time::Instant::now();
    let stop = tokio::spawn(server.stop());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("an update");
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    // Then the Watch ends, so the drain does not wait for it.
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .expect("the watch ends");
    assert_error::<()>(end.unwrap().map(drop), Code::Unavailable, "SHUTTING_DOWN");
    tokio::time::timeout(Duration::from_secs(10), stop)
        .await
        .expect("stops well before the 60 s drain timeout")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn x_request_id_is_echoed_or_generated() {
    let server = TestServer::start().await;
    let mut request = tonic::Request::new(pb::ListKeysRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "trace-abc-123".parse().unwrap());
    let response = server.keys.clone().list_keys(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "trace-abc-123"
    );

    let response = server
        .keys
        .clone()
        .list_keys(pb::ListKeysRequest::default())
        .await
        .unwrap();
    let generated = response
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        aliasd::domain::names::is_lowercase_uuid(generated),
        "{generated}"
    );

    // Errors carry it too.
    let mut request = tonic::Request::new(pb::DescribeKeyRequest {
        key_id: "nope".into(),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-err".parse().unwrap());
    let status = server.keys.clone().describe_key(request).await.unwrap_err();
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "trace-err");
}

/// A gRPC client straight over an HTTP/2 connection: unlike a tonic
/// Channel, it does not enforce `grpc-timeout` itself, so the server's own
/// answer to an expired deadline reaches the test.
async fn bare_client(
    addr: std::net::SocketAddr,
) -> impl tonic::client::GrpcService<
    tonic::body::Body,
    ResponseBody = hyper::body::Incoming,
    Error = hyper::Error,
> + Clone {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let mut sender = sender.clone();
        async move {
            let (mut parts, body) = request.into_parts();
            parts.uri = format!("http://{addr}{}", parts.uri.path())
                .parse()
                .unwrap();
            sender
                .send_request(http::Request::from_parts(parts, body))
                .await
        }
    });
    service
}

#[tokio::test]
async fn an_expired_deadline_is_deadline_exceeded_not_cancelled() {
    let server = TestServer::start().await;
    let mut client = pb::key_service_client::KeyServiceClient::new(
        bare_client(server.running.as_ref().unwrap().addr).await,
    );
    // An expired deadline (the timer path is tested in the layer's unit tests).
    let mut request = tonic::Request::new(pb::CreateKeyRequest::default());
    request.set_timeout(Duration::ZERO);
    let result = client.create_key(request).await;
    if let Err(status) = &result {
        use tonic_types::StatusExt;
        // A change that was late may have committed: the caller retries
        // with its request_id.
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.metadata["may_have_committed"], "true", "{status:?}");
    }
    assert_error(result, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
    // A late read committed nothing.
    let mut request = tonic::Request::new(pb::ListKeysRequest::default());
    request.set_timeout(Duration::ZERO);
    let status = client.list_keys(request).await.unwrap_err();
    {
        use tonic_types::StatusExt;
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "DEADLINE_EXCEEDED");
        assert_eq!(info.metadata["may_have_committed"], "false", "{status:?}");
    }
    assert!(
        server.list_keys().await.is_empty(),
        "the expired call did nothing"
    );
    // Without a deadline the same client works.
    client
        .create_key(pb::CreateKeyRequest::default())
        .await
        .unwrap();
}

/// Sends raw bytes as a request message.
#[derive(Default, Clone)]
struct RawCodec;
struct RawCoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCoder;
    type Decoder = RawCoder;
    fn encoder(&mut self) -> RawCoder {
        RawCoder
    }
    fn decoder(&mut self) -> RawCoder {
        RawCoder
    }
}

impl Encoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

async fn send_raw(
    server: &TestServer,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

#[tokio::test]
async fn malformed_protobuf_and_bad_utf8_are_invalid_argument() {
    let server = TestServer::start().await;
    let create = "/aliasd.v1.AliasService/CreateAlias";
    // Field 1 (alias_name) holding bytes that are not UTF-8.
    let result = send_raw(&server, create, vec![0x0a, 0x02, 0xff, 0xfe]).await;
    assert_error(result, Code::InvalidArgument, "MALFORMED_REQUEST");
    // Not protobuf at all.
    let result = send_raw(&server, create, vec![0xff, 0xff, 0xff, 0xff]).await;
    assert_error(result, Code::InvalidArgument, "MALFORMED_REQUEST");
    assert!(server.alias_names("").await.is_empty());
}

#[tokio::test]
async fn over_large_messages_are_invalid_argument() {
    let server = TestServer::start().await;
    let request = pb::CreateKeyRequest {
        description: "x".repeat(2 * 1024 * 1024),
        ..Default::default()
    };
    let result = send_raw(
        &server,
        "/aliasd.v1.KeyService/CreateKey",
        request.encode_to_vec(),
    )
    .await;
    let status = assert_error(result, Code::InvalidArgument, "REQUEST_TOO_LARGE");
    assert!(
        status.message().contains("larger than"),
        "{}",
        status.message()
    );
    assert!(server.list_keys().await.is_empty());
    // The server is still fine afterwards.
    server.create_key().await;
}

#[tokio::test]
async fn an_unknown_method_is_unimplemented_with_a_message() {
    let server = TestServer::start().await;
    let result = send_raw(&server, "/aliasd.v1.AliasService/Nope", Vec::new()).await;
    let status = assert_error(result, Code::Unimplemented, "UNKNOWN_METHOD");
    assert!(
        status.message().contains("/aliasd.v1.AliasService/Nope"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_fails_at_once() {
    let server = TestServer::start().await;
    let config = config(&server.dir);
    let error = aliasd::server::start(config, Arc::new(SystemClock), std::future::pending())
        .await
        .err()
        .expect("the second server must not start");
    assert!(
        error
            .to_string()
            .contains("in use by another aliasd process"),
        "{error}"
    );
    // The first one is unaffected.
    server.create_key().await;
}

#[tokio::test]
async fn a_new_data_directory_is_readable_by_its_owner_only() {
    if crate::common::on_etcd() {
        return; // No data directory: the store is in etcd.
    }
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("new").join("data");
    let data_dir = data.clone();
    let server = TestServer::start_configured(move |config| config.store.data_dir = data_dir).await;
    server.create_key().await;
    for dir in [&data, &parent.path().join("new")] {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
    }
}

#[tokio::test]
async fn a_store_keeps_the_settings_it_was_made_with() {
    let server = TestServer::start_configured(|config| config.quotas.max_aliases_per_key = 7).await;
    server.create_key().await;
    let dir = server.stop().await;

    // Other ARNs or another quota would change what the records mean.
    let mut other = config(&dir);
    other.quotas.max_aliases_per_key = 7;
    other.region = "eu-west-1".into();
    let error = aliasd::server::start(other, Arc::new(SystemClock), std::future::pending())
        .await
        .err()
        .expect("a server with another region must not start on the store");
    let message = error.to_string();
    assert!(
        message.contains("--region is us-east-1 in the store, eu-west-1 here"),
        "{message}"
    );
    assert!(!message.contains("--max-aliases-per-key"), "{message}");

    // Asked to, it records its own; the next start with them is fine.
    let mut updated = config(&dir);
    updated.update_store_settings = true;
    let running = aliasd::server::start(updated, Arc::new(SystemClock), std::future::pending())
        .await
        .expect("--update-store-settings records this server's settings");
    running.stop().await.unwrap();
    let server = TestServer::start_in(dir, |_| {}, Arc::new(SystemClock)).await;
    assert_eq!(server.list_keys().await.len(), 1);
}

#[tokio::test]
async fn the_health_port_answers_404_for_a_path_it_does_not_serve() {
    let server = TestServer::start_configured(|c| {
        c.health_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let health = server.running.as_ref().unwrap().health_addr.unwrap();
    let probe = |path: &'static str| async move {
        let stream = tokio::net::TcpStream::connect(health).await.unwrap();
        http_exchange(stream, "GET", path, &[], b"").await
    };
    for misspelt in ["/garbage", "/healtz", "/ready"] {
        let reply = probe(misspelt).await;
        assert_eq!(reply.status, 404, "{misspelt}");
        assert!(!reply.headers.contains_key("grpc-status"), "{misspelt}");
    }
    assert_eq!(probe("/healthz").await.status, 200);
    // gRPC health still answers on the same port.
    let channel = tonic::transport::Channel::from_shared(format!("http://{health}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}
