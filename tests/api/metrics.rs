//! `--metrics-listen`: a Prometheus scrape after calls through both doors
//! shows the counters, histograms and gauges moved.

use std::sync::Arc;

use aliasd::domain::SystemClock;
use aliasd::pb;
use tonic::Code;

use crate::common::*;

/// `GET /metrics` over plain HTTP/1.1.
pub async fn scrape(server: &TestServer) -> String {
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
pub fn sample(text: &str, series: &str) -> f64 {
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

/// prometheus-client ends every help text with a period of its own: the
/// texts given to it must not, or a scrape shows "..".
#[tokio::test]
async fn help_texts_end_in_one_period_and_the_grpc_families_have_go_grpc_prometheus_texts() {
    let server = TestServer::start_configured(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    server.create_key().await;
    let text = scrape(&server).await;
    let helps: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("# HELP "))
        .collect();
    assert!(helps.len() > 20, "{text}");
    for line in &helps {
        assert!(!line.ends_with(".."), "{line}");
    }
    for help in [
        "# HELP grpc_server_started Total number of RPCs started on the server.",
        "# HELP grpc_server_handled Total number of RPCs completed on the server, regardless of success or failure.",
        "# HELP grpc_server_msg_received Total number of RPC stream messages received on the server.",
        "# HELP grpc_server_msg_sent Total number of gRPC stream messages sent by the server.",
        "# HELP grpc_server_handling_seconds Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    ] {
        assert!(helps.contains(&help), "no {help:?} in\n{text}");
    }
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

/// The value of every sample of `family` (samples named `family` exactly,
/// with labels), keyed by their labels as exposed.
fn samples_of(text: &str, family: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(family)?.strip_prefix('{')?;
            let (labels, value) = rest.split_once("} ")?;
            Some((labels.to_owned(), value.trim().parse().unwrap()))
        })
        .collect()
}

/// The labels go-grpc-prometheus gives a method, as exposed.
fn grpc_labels(kind: &str, service: &str, method: &str) -> String {
    format!(r#"grpc_type="{kind}",grpc_service="{service}",grpc_method="{method}""#)
}

#[tokio::test]
async fn a_scrape_after_calls_shows_the_standard_grpc_server_families_by_service_method_and_code() {
    let server = TestServer::start_configured(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    // Unary calls, answered OK and not.
    let key = server.create_key().await;
    server.create_alias("alias/g1", &key.key_id).await.unwrap();
    let bad_name = server.create_alias("alias/no spaces", &key.key_id).await;
    assert_error(bad_name, Code::InvalidArgument, "INVALID_ALIAS_NAME");
    server.get_alias("alias/g1").await.unwrap();
    assert_error(
        server.get_alias("alias/none").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    // A stream refused before its first message, and one that streams to
    // its end (the client has its every message and its status: the
    // server counted them before sending them).
    let refused = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: String::new(),
            start_revision: Some(1 << 40),
            progress_notify: false,
        })
        .await;
    assert_error(refused, Code::OutOfRange, "FUTURE_REVISION");
    let mut backup = pb::admin_service_client::AdminServiceClient::new(server.channel.clone())
        .backup(pb::BackupRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut chunks = 0;
    while backup.message().await.unwrap().is_some() {
        chunks += 1;
    }
    assert!(chunks > 0);
    // A method the server does not have: one label value, whatever its name.
    let mut grpc = tonic::client::Grpc::new(server.channel.clone());
    grpc.ready().await.unwrap();
    let unknown = grpc
        .unary::<_, pb::GetAliasResponse, _>(
            tonic::Request::new(pb::GetAliasRequest::default()),
            http::uri::PathAndQuery::from_static("/aliasd.v1.AliasService/NoSuchMethod7"),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert_eq!(unknown.unwrap_err().code(), Code::Unimplemented);

    let text = scrape(&server).await;
    for declared in [
        "# TYPE grpc_server_started counter",
        "# TYPE grpc_server_handled counter",
        "# TYPE grpc_server_msg_received counter",
        "# TYPE grpc_server_msg_sent counter",
        "# TYPE grpc_server_handling_seconds histogram",
    ] {
        assert!(text.contains(declared), "no {declared} in\n{text}");
    }
    let alias = "aliasd.v1.AliasService";
    let get = grpc_labels("unary", alias, "GetAlias");
    let create = grpc_labels("unary", alias, "CreateAlias");
    let create_key = grpc_labels("unary", "aliasd.v1.KeyService", "CreateKey");
    let watch = grpc_labels("server_stream", alias, "WatchAliases");
    let backup = grpc_labels("server_stream", "aliasd.v1.AdminService", "Backup");
    let unknown = grpc_labels("unary", "unknown", "unknown");
    let chunks = f64::from(chunks);
    for (series, value) in [
        (format!("grpc_server_started_total{{{get}}}"), 2.0),
        (
            format!(r#"grpc_server_handled_total{{{get},grpc_code="OK"}}"#),
            1.0,
        ),
        (
            format!(r#"grpc_server_handled_total{{{get},grpc_code="NotFound"}}"#),
            1.0,
        ),
        (format!("grpc_server_msg_received_total{{{get}}}"), 2.0),
        (format!("grpc_server_msg_sent_total{{{get}}}"), 1.0),
        (format!("grpc_server_handling_seconds_count{{{get}}}"), 2.0),
        (format!("grpc_server_started_total{{{create}}}"), 2.0),
        (
            format!(r#"grpc_server_handled_total{{{create},grpc_code="OK"}}"#),
            1.0,
        ),
        (
            format!(r#"grpc_server_handled_total{{{create},grpc_code="InvalidArgument"}}"#),
            1.0,
        ),
        (
            format!(r#"grpc_server_handled_total{{{create_key},grpc_code="OK"}}"#),
            1.0,
        ),
        (format!("grpc_server_started_total{{{watch}}}"), 1.0),
        (
            format!(r#"grpc_server_handled_total{{{watch},grpc_code="OutOfRange"}}"#),
            1.0,
        ),
        (format!("grpc_server_msg_received_total{{{watch}}}"), 1.0),
        (format!("grpc_server_msg_sent_total{{{watch}}}"), 0.0),
        (
            format!("grpc_server_handling_seconds_count{{{watch}}}"),
            1.0,
        ),
        (format!("grpc_server_started_total{{{backup}}}"), 1.0),
        (
            format!(r#"grpc_server_handled_total{{{backup},grpc_code="OK"}}"#),
            1.0,
        ),
        (format!("grpc_server_msg_received_total{{{backup}}}"), 1.0),
        (format!("grpc_server_msg_sent_total{{{backup}}}"), chunks),
        (
            format!("grpc_server_handling_seconds_count{{{backup}}}"),
            1.0,
        ),
        (format!("grpc_server_started_total{{{unknown}}}"), 1.0),
        (
            format!(r#"grpc_server_handled_total{{{unknown},grpc_code="Unimplemented"}}"#),
            1.0,
        ),
    ] {
        assert!(
            text.lines().any(|line| line == format!("{series} {value}")),
            "no {series} {value} in\n{text}"
        );
    }
    assert!(!text.contains("NoSuchMethod7"), "{text}");
    // The histogram has Prometheus's default buckets, and its count is the
    // calls handled.
    let buckets: Vec<String> = samples_of(&text, "grpc_server_handling_seconds_bucket")
        .into_iter()
        .filter_map(|(labels, _)| {
            let (le, rest) = labels.strip_prefix("le=\"")?.split_once("\",")?;
            (rest == get).then(|| le.to_owned())
        })
        .collect();
    assert_eq!(
        buckets,
        [
            "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "10.0",
            "+Inf"
        ],
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"grpc_server_handling_seconds_bucket{{le="+Inf",{get}}}"#)
        ),
        2.0
    );
    // Every call started was handled; started has no code, handled has one.
    let handled = samples_of(&text, "grpc_server_handled_total");
    let started = samples_of(&text, "grpc_server_started_total");
    assert!(handled
        .iter()
        .all(|(labels, _)| labels.contains("grpc_code=")));
    assert!(started
        .iter()
        .all(|(labels, _)| !labels.contains("grpc_code=")));
    for (labels, count) in &started {
        let done: f64 = handled
            .iter()
            .filter(|(l, _)| l.starts_with(&format!("{labels},grpc_code=")))
            .map(|(_, n)| n)
            .sum();
        assert_eq!(done, *count, "{labels}");
        let timed = sample(
            &text,
            &format!("grpc_server_handling_seconds_count{{{labels}}}"),
        );
        assert_eq!(timed, *count, "{labels}");
    }
    // aliasd's own families are still there.
    assert_eq!(
        sample(
            &text,
            r#"aliasd_calls_total{door="grpc",method="/aliasd.v1.AliasService/GetAlias",status="NOT_FOUND"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn a_scrape_shows_open_connections_per_door_the_store_and_its_flushes_and_sync() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start_configured(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    server.create_key().await;
    // One HTTP connection, kept open: answered, so accepted and counted.
    let http_addr = server.running.as_ref().unwrap().http_addr.unwrap();
    let mut kept = tokio::net::TcpStream::connect(http_addr).await.unwrap();
    kept.write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 10];
    kept.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 2", "GET /ping is answered");

    let text = scrape(&server).await;
    // The test's one gRPC channel, and the HTTP connection above.
    assert_eq!(
        sample(&text, r#"aliasd_connections_open{door="grpc"}"#),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"aliasd_connections_open{door="http"}"#),
        1.0,
        "{text}"
    );
    assert!(text.contains("aliasd_store_failed 0\n"), "{text}");
    assert!(text.contains("aliasd_etcd_conflicts_total 0\n"), "{text}");
    let flushes = sample(&text, "aliasd_flush_duration_seconds_count");
    assert!(flushes >= 1.0, "{text}");
    // On sled each group commit is timed in its two parts too.
    let (sled_flushes, syncs) = (
        sample(&text, "aliasd_sled_flush_duration_seconds_count"),
        sample(&text, "aliasd_sled_sync_duration_seconds_count"),
    );
    match crate::common::on_etcd() {
        false => assert_eq!((sled_flushes, syncs), (flushes, flushes), "{text}"),
        true => {
            assert_eq!((sled_flushes, syncs), (0.0, 0.0), "{text}");
            assert!(
                sample(
                    &text,
                    r#"aliasd_etcd_request_duration_seconds_count{request="txn"}"#
                ) >= 1.0,
                "{text}"
            );
        }
    }
    drop(kept);
}

#[tokio::test]
async fn a_scrape_shows_whether_the_last_config_reload_succeeded_and_when() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    let good = format!(
        "[[principals]]\nname = \"ops\"\naccount = \"444455556666\"\ntoken_sha256 = \"{}\"\n\
         [[principals.statements]]\nactions = \"kms:*\"\nresources = \"*\"\n",
        token_sha256("ops-token")
    );
    std::fs::write(&auth, &good).unwrap();
    let auth_file = auth.clone();
    let server = TestServer::start_configured(move |c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.auth_file = Some(auth_file);
    })
    .await;
    let reload_ok = "aliasd_config_last_reload_successful";
    let reload_time = "aliasd_config_last_reload_success_timestamp_seconds";
    let text = scrape(&server).await;
    // Start-up loaded the configuration.
    assert_eq!(sample(&text, reload_ok), 1.0, "{text}");
    let loaded_at = sample(&text, reload_time);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(loaded_at > 0.0 && loaded_at <= now, "{loaded_at} {now}");

    // The reload task answers SIGHUP (this test's process is the server's).
    let hangup = || {
        // SAFETY: kill on our own process id, with a signal the server has
        // taken over.
        assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    };
    // Waits for the reload's outcome to show: the task runs when the
    // signal arrives, not on a schedule.
    async fn until_shown(server: &TestServer, series: &str, value: f64) -> String {
        for _ in 0..500 {
            let text = scrape(server).await;
            if sample(&text, series) == value {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{series} never became {value}");
    }
    std::fs::write(&auth, "[[principals]]\nname = 3\n").unwrap();
    hangup();
    let text = until_shown(&server, reload_ok, 0.0).await;
    assert_eq!(
        sample(&text, reload_time),
        loaded_at,
        "a failure keeps the time"
    );

    std::fs::write(&auth, &good).unwrap();
    hangup();
    let text = until_shown(&server, reload_ok, 1.0).await;
    assert!(sample(&text, reload_time) >= loaded_at, "{text}");
}
