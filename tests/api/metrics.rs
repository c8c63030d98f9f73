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

#[tokio::test]
async fn watches_count_how_they_ended_and_refusals_and_the_process_are_there_from_the_start() {
    let server = TestServer::start_configured(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    // Before any refusal: the refusal counters exist, at zero, and so do
    // the process's own families.
    let text = scrape(&server).await;
    for series in [
        r#"aliasd_denied_calls_total{door="grpc",reason="ACCESS_DENIED"} 0"#,
        r#"aliasd_throttled_calls_total{door="grpc",reason="THROTTLED"} 0"#,
        "# TYPE process_cpu_seconds counter",
        "# TYPE process_resident_memory_bytes gauge",
        "# TYPE process_open_fds gauge",
        "# TYPE process_start_time_seconds gauge",
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
    assert!(sample(&text, "process_open_fds") > 0.0);

    // A watch that ends at its 1.5 s deadline counts as DEADLINE_EXCEEDED,
    // lasting as long as it did.
    let mut request = tonic::Request::new(pb::WatchAliasesRequest::default());
    request.set_timeout(std::time::Duration::from_millis(1500));
    let mut stream = server
        .aliases
        .clone()
        .watch_aliases(request)
        .await
        .unwrap()
        .into_inner();
    let end = stream.message().await;
    assert_eq!(end.unwrap_err().code(), Code::DeadlineExceeded);
    let method = "/aliasd.v1.AliasService/WatchAliases";
    let mut text = scrape(&server).await;
    // Counted when the stream's end is sent: a moment after the client saw it.
    for _ in 0..100 {
        if text.contains(&format!(r#"method="{method}",status="DEADLINE_EXCEEDED""#)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        text = scrape(&server).await;
    }
    let ended = format!(
        r#"aliasd_calls_total{{door="grpc",method="{method}",status="DEADLINE_EXCEEDED"}}"#
    );
    assert_eq!(sample(&text, &ended), 1.0, "{text}");
    assert_eq!(
        sample(
            &text,
            &format!(r#"aliasd_calls_total{{door="grpc",method="{method}",status="OK"}}"#)
        ),
        0.0
    );
    let took = sample(
        &text,
        &format!(r#"aliasd_call_duration_seconds_sum{{door="grpc",method="{method}"}}"#),
    );
    assert!(took >= 1.0, "the watch lasted {took} s");
}

#[tokio::test]
async fn a_scraper_that_asks_for_the_text_format_gets_it() {
    let server = TestServer::start_configured(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    server.create_key().await;
    let addr = server.running.as_ref().unwrap().metrics_addr.unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let reply = http_exchange(
        stream,
        "GET",
        "/metrics",
        &[("Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1")],
        b"",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(reply.body).unwrap();
    assert!(!text.contains("# EOF"), "{text}");
    assert!(!text.contains("# UNIT"), "{text}");
    assert!(text.contains("# TYPE aliasd_calls_total counter"), "{text}");
    assert!(
        text.contains("# HELP aliasd_calls_total Calls answered"),
        "{text}"
    );
    assert!(
        text.contains(r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.KeyService/CreateKey",status="OK"} 1"#),
        "{text}"
    );
    // Every sample belongs to a family declared before it.
    let mut declared: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_owned());
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(
                declared.iter().any(|family| name == family
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(family))),
                "{name} has no # TYPE line before it"
            );
        }
    }
}
