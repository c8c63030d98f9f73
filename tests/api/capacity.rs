//! Capacity that nobody can take from everyone else: requests whose
//! credentials are not checked yet have a small bound of their own (per
//! address and in total), each principal a fair share of the calls in
//! progress; unauthenticated refusals are audited within a budget per
//! address (not per connection); a half-sent HTTP header block is cut off.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use aliasd::pb;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use crate::common::*;
use crate::signatures::{now_amz_date, signing_server, sigv4};

/// A TCP connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

fn http_addr(server: &TestServer) -> SocketAddr {
    server.running.as_ref().unwrap().http_addr.unwrap()
}

/// Sends the head of an AWS request whose 100-byte body never comes.
async fn stalled_http_request(from: &str, to: SocketAddr) -> TcpStream {
    let mut stream = connect_from(from, to).await;
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: TrentService.ListKeys\r\n\
              Content-Type: application/x-amz-json-1.1\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    stream
}

/// The answer the server sends on `stream` before closing it (or the
/// first 64 KiB of it).
async fn answer(mut stream: TcpStream) -> String {
    let mut raw = vec![0u8; 65536];
    let mut got = 0;
    while let Ok(n) = stream.read(&mut raw[got..]).await {
        if n == 0 {
            break;
        }
        got += n;
        let text = String::from_utf8_lossy(&raw[..got]);
        if let Some((_, body)) = text.split_once("\r\n\r\n") {
            if body.ends_with('}') {
                break;
            }
        }
    }
    String::from_utf8_lossy(&raw[..got]).into_owned()
}

/// Waits for `count` of `streams` to be answered; returns those answers
/// (the others stay pending, their streams held).
async fn first_answers(streams: Vec<TcpStream>, count: usize) -> Vec<String> {
    let mut pending: tokio::task::JoinSet<String> = tokio::task::JoinSet::new();
    for stream in streams {
        pending.spawn(answer(stream));
    }
    let mut answers = Vec::new();
    while answers.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(20), pending.join_next())
            .await
            .expect("the refused requests are answered at once, not after a timeout");
        answers.push(next.unwrap().unwrap());
    }
    // The rest stay open, holding their slots, for as long as the test runs.
    std::mem::forget(pending);
    answers
}

/// A signed ListKeys from 127.0.0.1.
async fn signed_list_keys(server: &TestServer) -> HttpReply {
    let date = now_amz_date();
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("host", "localhost"),
        ("x-amz-date", date.as_str()),
        ("x-amz-target", "TrentService.ListKeys"),
    ];
    let authorization = sigv4(
        &headers,
        &["content-type", "host", "x-amz-date", "x-amz-target"],
        b"{}",
        &date,
    );
    let mut sent: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(n, _)| *n != "host")
        .copied()
        .collect();
    sent.push(("authorization", &authorization));
    http_call(server, "POST", "/", &sent, b"{}").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_without_credentials_cannot_hold_the_capacity_signed_calls_need() {
    let (server, _files) = signing_server(|config| {
        config.max_in_flight = 8;
        config.max_unauthenticated_in_flight = 6;
        config.max_unauthenticated_in_flight_per_ip = 3;
        config.request_body_timeout_secs = 120;
    })
    .await;
    let to = http_addr(&server);

    // Ten requests from one address whose bodies never come: three are
    // taken in (and wait for their bodies), seven are refused at once.
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(stalled_http_request("127.0.0.1", to).await);
    }
    let refused = first_answers(streams, 7).await;
    for answer in &refused {
        assert!(answer.contains("ThrottlingException"), "{answer}");
        assert!(
            answer.contains("--max-unauthenticated-in-flight-per-ip"),
            "{answer}"
        );
    }

    // Another address has its own share, until the total is reached.
    let mut streams = Vec::new();
    for _ in 0..4 {
        streams.push(stalled_http_request("127.0.0.2", to).await);
    }
    let refused = first_answers(streams, 1).await;
    assert!(refused[0].contains("-per-ip"), "{}", refused[0]);
    let third = stalled_http_request("127.0.0.3", to).await;
    let refused = first_answers(vec![third], 1).await;
    assert!(
        refused[0].contains("(--max-unauthenticated-in-flight)"),
        "{}",
        refused[0]
    );

    // Six bodies are still awaited, more than the door's --max-in-flight
    // could spare before: a signed call is served all the same.
    let reply = signed_list_keys(&server).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.json()["Keys"].is_array());
}

/// An h2 connection to `addr` (driven in the background).
async fn h2_connection(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.ready().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_principal_cannot_hold_every_call_slot() {
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    let principal = |name: &str, action: &str| {
        format!(
            "[[principals]]\nname = \"{name}\"\naccount = \"{ACCOUNT}\"\ntoken_sha256 = \"{}\"\n\
             [[principals.statements]]\nactions = \"{action}\"\nresources = \"*\"\n",
            token_sha256(&format!("{name}-token"))
        )
    };
    std::fs::write(
        &auth,
        principal("auditor", "kms:ListAuditEvents") + &principal("owner", "kms:*"),
    )
    .unwrap();
    let server = TestServer::start_configured(|config| {
        config.auth_file = Some(auth);
        config.max_in_flight = 8;
        config.max_in_flight_per_principal = 4;
        config.request_body_timeout_secs = 120;
    })
    .await;

    // The auditor, who may only read the audit log, opens eight calls whose
    // bodies never come: four are taken in, four refused at once.
    let mut sender = h2_connection(server.running.as_ref().unwrap().addr).await;
    let mut held = Vec::new();
    let mut responses = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let request = http::Request::post("/aliasd.v1.KeyService/CreateKey")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", "Bearer auditor-token")
            .body(())
            .unwrap();
        sender = sender.ready().await.unwrap();
        let (response, body) = sender.send_request(request, false).unwrap();
        held.push(body);
        responses.spawn(response);
    }
    for _ in 0..4 {
        let response = tokio::time::timeout(Duration::from_secs(20), responses.join_next())
            .await
            .expect("calls past the principal's share are refused at once")
            .unwrap()
            .unwrap()
            .unwrap();
        let status = tonic::Status::from_header_map(response.headers()).expect("a gRPC status");
        assert!(
            status.message().contains("--max-in-flight-per-principal"),
            "{status:?}"
        );
        assert_error::<()>(Err(status), Code::ResourceExhausted, "SERVER_BUSY");
    }

    // Another principal's calls are served.
    let mut keys = server.keys.clone();
    let created = keys
        .create_key(bearer("owner-token", pb::CreateKeyRequest::default()))
        .await;
    assert!(created.is_ok(), "{created:?}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_refusals_are_audited_within_one_budget_per_address() {
    let files = tempfile::tempdir().unwrap();
    let log = files.path().join("audit.jsonl");
    let audit_log = log.clone();
    let (server, _auth) = signing_server(move |config| config.audit_log = Some(audit_log)).await;
    // Forty calls without credentials, each on a new connection (a new
    // port): one address, so one budget of 20 (then 5 a second).
    let started = std::time::Instant::now();
    for _ in 0..40 {
        let reply = http_call(
            &server,
            "POST",
            "/",
            &[
                ("X-Amz-Target", "TrentService.ListKeys"),
                ("Content-Type", "application/x-amz-json-1.1"),
            ],
            b"{}",
        )
        .await;
        assert_eq!(
            reply.json()["__type"],
            "MissingAuthenticationTokenException"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains("MISSING_AUTHENTICATION_TOKEN"))
            .count()
    };
    // The records are written in the background: the first 20 at least.
    for _ in 0..200 {
        if count() >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    server.stop().await;
    let recorded = count();
    let budget = 20 + (5.0 * elapsed).ceil() as usize;
    assert!(
        (20..=budget.min(39)).contains(&recorded),
        "{recorded} records of 40 refusals in {elapsed:.1} s"
    );
}

#[tokio::test]
async fn a_half_sent_http_header_block_is_cut_off() {
    let server = TestServer::start_http(|config| config.http_header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(http_addr(&server)).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: localhost\r\nX-Amz-Target: Trent")
        .await
        .unwrap();
    // Without a header timeout the connection stays until the idle timeout
    // (300 s); with it, the server closes it (answering 408 or not).
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection is still open after 20 s");
    let text = String::from_utf8_lossy(&rest);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}
