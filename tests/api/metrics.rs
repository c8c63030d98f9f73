//! `--metrics-listen`: a Prometheus scrape after calls through both doors
//! shows the counters, histograms and gauges moved.

use std::sync::Arc;

use aliasd::domain::SystemClock;
use aliasd::pb;
use tonic::Code;

use crate::common::*;

/// `GET /metrics` over plain HTTP/1.1.
async fn scrape(server: &TestServer) -> String {
    let addr = server.running.as_ref().unwrap().metrics_addr.unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let reply = http_exchange(stream, "GET", "/metrics", &[], b"").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .headers
            .iter()
            .any(|(name, value)| name == "content-type"
                && value.starts_with("application/openmetrics-text")),
        "{:?}",
        reply.headers
    );
    String::from_utf8(reply.body).unwrap()
}

/// The value of the sample `series` (name and labels, as exposed); 0 when
/// it is not there.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_scrape_shows_calls_latencies_refusals_commits_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "[[principals]]\nname = \"ops\"\naccount = \"444455556666\"\ntoken_sha256 = \"{}\"\n\
             [[principals.statements]]\nactions = \"kms:*\"\nresources = \"*\"\n",
            token_sha256("ops-token")
        ),
    )
    .unwrap();
    let server = TestServer::start_with(
        move |c| {
            c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
            c.http_listen = Some("127.0.0.1:0".parse().unwrap());
            c.auth_file = Some(auth);
            c.throttle_rate = 0.001;
            c.throttle_burst = 2.0;
        },
        Arc::new(SystemClock),
    )
    .await;
    let mut keys = server.keys.clone();
    let mut aliases = server.aliases.clone();
    let key = keys
        .create_key(bearer("ops-token", pb::CreateKeyRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    for name in ["alias/m1", "alias/m2"] {
        aliases
            .create_alias(bearer(
                "ops-token",
                pb::CreateAliasRequest {
                    alias_name: name.into(),
                    target_key_id: key.key_id.clone(),
                    request_id: String::new(),
                },
            ))
            .await
            .unwrap();
    }
    let first = scrape(&server).await;
    let create_key =
        r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.KeyService/CreateKey",status="OK"}"#;
    let create_alias_latency = r#"aliasd_call_duration_seconds_count{door="grpc",method="/aliasd.v1.AliasService/CreateAlias"}"#;
    assert_eq!(sample(&first, create_key), 1.0, "{first}");
    assert_eq!(sample(&first, create_alias_latency), 2.0, "{first}");
    assert_eq!(
        sample(&first, r#"aliasd_keys{account="444455556666"}"#),
        1.0,
        "{first}"
    );
    assert_eq!(
        sample(&first, r#"aliasd_aliases{account="444455556666"}"#),
        2.0,
        "{first}"
    );
    assert!(
        sample(&first, "aliasd_group_commit_batch_size_count") >= 3.0,
        "{first}"
    );
    assert!(
        sample(&first, "aliasd_flush_duration_seconds_sum") > 0.0,
        "{first}"
    );
    // The data directory's size; a store on etcd has none (0).
    let size = sample(&first, "aliasd_store_size_bytes");
    assert_eq!(size > 0.0, !crate::common::on_etcd(), "{first}");
    assert_eq!(
        sample(&first, r#"aliasd_build_info{version="0.1.0"}"#),
        1.0,
        "{first}"
    );

    // More calls: a success, a NOT_FOUND, a throttled one, an
    // unauthenticated one, and one through the AWS door.
    keys.create_key(bearer("ops-token", pb::CreateKeyRequest::default()))
        .await
        .unwrap();
    let throttled = keys
        .create_key(bearer("ops-token", pb::CreateKeyRequest::default()))
        .await;
    assert_error(throttled, Code::ResourceExhausted, "THROTTLED");
    let missing = aliases
        .get_alias(bearer(
            "ops-token",
            pb::GetAliasRequest {
                alias_name: "alias/none".into(),
            },
        ))
        .await;
    assert_error(missing, Code::NotFound, "ALIAS_NOT_FOUND");
    let anonymous = keys.list_keys(pb::ListKeysRequest::default()).await;
    assert_error(anonymous, Code::Unauthenticated, "UNAUTHENTICATED");
    let aws = http_call(
        &server,
        "POST",
        "/",
        &[
            ("x-amz-target", "TrentService.DescribeKey"),
            ("content-type", "application/x-amz-json-1.1"),
        ],
        br#"{"KeyId":"alias/m1"}"#,
    )
    .await;
    assert_eq!(aws.status, 400, "unsigned, to a server with an auth file");
    // An unknown method is one label, whatever its name.
    let bogus = http_call(
        &server,
        "POST",
        "/",
        &[("x-amz-target", "TrentService.Bogus1")],
        b"{}",
    )
    .await;
    assert_eq!(bogus.status, 400);

    let second = scrape(&server).await;
    assert_eq!(sample(&second, create_key), 2.0, "{second}");
    for series in [
        r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.KeyService/CreateKey",status="RESOURCE_EXHAUSTED"}"#,
        r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.AliasService/GetAlias",status="NOT_FOUND"}"#,
        r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.KeyService/ListKeys",status="UNAUTHENTICATED"}"#,
        r#"aliasd_throttled_calls_total{door="grpc",reason="THROTTLED"}"#,
        r#"aliasd_denied_calls_total{door="grpc",reason="UNAUTHENTICATED"}"#,
        r#"aliasd_denied_calls_total{door="aws",reason="MISSING_AUTHENTICATION_TOKEN"}"#,
        r#"aliasd_calls_total{door="aws",method="DescribeKey",status="400"}"#,
        r#"aliasd_calls_total{door="aws",method="unknown",status="400"}"#,
    ] {
        assert_eq!(sample(&second, series), 1.0, "{series} in\n{second}");
    }
    assert!(!second.contains("Bogus1"), "{second}");
    assert!(
        sample(&second, "aliasd_group_commit_batch_size_count")
            > sample(&first, "aliasd_group_commit_batch_size_count"),
        "{second}"
    );
    assert_eq!(
        sample(&second, r#"aliasd_calls_in_flight{door="grpc"}"#),
        0.0
    );
    assert!(second.ends_with("# EOF\n"), "{second}");
}

#[tokio::test]
async fn the_metrics_listener_is_off_unless_asked_for() {
    let server = TestServer::start().await;
    assert_eq!(server.running.as_ref().unwrap().metrics_addr, None);
}
