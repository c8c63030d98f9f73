//! ListAliases paging and WatchAliases.

use std::time::Duration;

use aliasd::pb::{self, AliasEventType};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::common::*;

fn list(key_id: &str, page_size: i32, page_token: &str) -> pb::ListAliasesRequest {
    pb::ListAliasesRequest {
        key_id: key_id.into(),
        page_size,
        page_token: page_token.into(),
    }
}

#[tokio::test]
async fn list_aliases_is_ordered_by_name_and_filters_by_key() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    for name in ["alias/c", "alias/a", "alias/b"] {
        server.create_alias(name, &a.key_id).await.unwrap();
    }
    server.create_alias("alias/0", &b.key_id).await.unwrap();
    assert_eq!(
        server.alias_names("").await,
        vec!["alias/0", "alias/a", "alias/b", "alias/c"]
    );
    assert_eq!(
        server.alias_names(&a.key_id).await,
        vec!["alias/a", "alias/b", "alias/c"]
    );
    assert_eq!(server.alias_names(&b.arn).await, vec!["alias/0"]);
}

#[tokio::test]
async fn list_aliases_key_filter_rules() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/a", &key.key_id).await.unwrap();
    let mut aliases = server.aliases.clone();
    let status = assert_error(
        aliases.list_aliases(list("alias/a", 0, "")).await,
        Code::InvalidArgument,
        "TARGET_NOT_A_KEY",
    );
    assert_eq!(bad_field(&status), "key_id");
    assert_error(
        aliases.list_aliases(list(&uuid(), 0, "")).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_error(
        aliases.list_aliases(list("xyz", 0, "")).await,
        Code::InvalidArgument,
        "INVALID_KEY_ID",
    );
}

#[tokio::test]
async fn list_aliases_page_sizes() {
    let server = TestServer::start().await;
    let key = server
        .create_key_of(pb::KeySpec::SymmetricDefault, pb::KeyUsage::Unspecified)
        .await;
    let other = server.create_key().await;
    let other2 = server.create_key().await;
    let other3 = server.create_key().await;
    // 120 aliases over four keys (quota 50 each).
    for i in 0..120 {
        let target = [&key, &other, &other2, &other3][i % 4];
        server
            .create_alias(&format!("alias/n{i:03}"), &target.key_id)
            .await
            .unwrap();
    }
    let mut aliases = server.aliases.clone();
    let page = aliases
        .list_aliases(list("", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.aliases.len(), 50, "0 means 50");
    let page = aliases
        .list_aliases(list("", 1000, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.aliases.len(), 100, "above 100 is 100");
    assert!(!page.next_page_token.is_empty());
    let rest = aliases
        .list_aliases(list("", 100, &page.next_page_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.aliases.len(), 20);
    assert!(
        rest.next_page_token.is_empty(),
        "an empty token means the end"
    );
    let status = assert_error(
        aliases.list_aliases(list("", -5, "")).await,
        Code::InvalidArgument,
        "INVALID_PAGE_SIZE",
    );
    assert_eq!(bad_field(&status), "page_size");
}

#[tokio::test]
async fn page_tokens_are_tamper_evident_and_tied_to_the_filter() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    for i in 0..4 {
        server
            .create_alias(&format!("alias/a{i}"), &a.key_id)
            .await
            .unwrap();
        server
            .create_alias(&format!("alias/b{i}"), &b.key_id)
            .await
            .unwrap();
    }
    let mut aliases = server.aliases.clone();
    let page = aliases
        .list_aliases(list(&a.key_id, 2, ""))
        .await
        .unwrap()
        .into_inner();
    let token = page.next_page_token;
    // Used with another filter.
    for filter in ["", b.key_id.as_str()] {
        let status = assert_error(
            aliases.list_aliases(list(filter, 2, &token)).await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
        assert_eq!(bad_field(&status), "page_token");
        assert_eq!(kms_exception(&status), "InvalidMarkerException");
    }
    // Altered in any character.
    let mut altered = token.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_error(
        aliases.list_aliases(list(&a.key_id, 2, &altered)).await,
        Code::InvalidArgument,
        "INVALID_PAGE_TOKEN",
    );
    // Forged.
    for forged in ["alias/a1", "AAAA", "%%%", &"x".repeat(5000)] {
        assert_error(
            aliases.list_aliases(list("", 2, forged)).await,
            Code::InvalidArgument,
            "INVALID_PAGE_TOKEN",
        );
    }
    // The genuine token still works.
    let next = aliases
        .list_aliases(list(&a.key_id, 2, &token))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = next.aliases.into_iter().map(|a| a.alias_name).collect();
    assert_eq!(names, vec!["alias/a2", "alias/a3"]);
}

#[tokio::test]
async fn aliases_present_for_the_whole_walk_appear_exactly_once() {
    let server = TestServer::start().await;
    let keys = [server.create_key().await, server.create_key().await];
    let stable: Vec<String> = (0..40).map(|i| format!("alias/s{i:02}")).collect();
    for (i, name) in stable.iter().enumerate() {
        server
            .create_alias(name, &keys[i % 2].key_id)
            .await
            .unwrap();
    }
    let mut aliases = server.aliases.clone();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut round = 0;
    loop {
        let page = aliases
            .list_aliases(list("", 7, &token))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.aliases.into_iter().map(|a| a.alias_name));
        // Churn between pages: new names before and after the cursor, deletions of new names.
        server
            .create_alias(&format!("alias/a-new{round}"), &keys[0].key_id)
            .await
            .unwrap();
        server
            .create_alias(&format!("alias/z-new{round}"), &keys[1].key_id)
            .await
            .unwrap();
        if round > 0 {
            server
                .delete_alias(&format!("alias/a-new{}", round - 1))
                .await
                .unwrap();
        }
        round += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    for name in &stable {
        assert_eq!(seen.iter().filter(|s| *s == name).count(), 1, "{name}");
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "pages are in name order");
}

async fn next_event(stream: &mut tonic::Streaming<pb::WatchAliasesResponse>) -> pb::AliasEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("an event within 10s")
        .expect("the stream is open")
        .expect("an event, not an error")
        .event
        .unwrap()
}

#[tokio::test]
async fn list_then_watch_from_the_listed_revision_misses_nothing() {
    let server = TestServer::start().await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    server
        .create_alias("alias/before", &a.key_id)
        .await
        .unwrap();
    let listed = server
        .aliases
        .clone()
        .list_aliases(list("", 0, ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.revision, 1);
    // Changes between the list and the watch.
    server.create_alias("alias/x", &a.key_id).await.unwrap();
    server.update_alias("alias/x", &b.key_id).await.unwrap();
    let mut stream = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: String::new(),
            start_revision: Some(listed.revision),
            progress_notify: false,
        })
        .await
        .unwrap()
        .into_inner();
    // And after the watch started.
    server.rename_alias("alias/x", "alias/y").await.unwrap();
    server.delete_alias("alias/y").await.unwrap();

    let created = next_event(&mut stream).await;
    assert_eq!(
        (created.revision, created.r#type()),
        (2, AliasEventType::Created)
    );
    assert_eq!(created.alias.unwrap().alias_name, "alias/x");
    let updated = next_event(&mut stream).await;
    assert_eq!(
        (updated.revision, updated.r#type()),
        (3, AliasEventType::Updated)
    );
    assert_eq!(updated.previous_target_key_id, a.key_id);
    assert_eq!(updated.alias.unwrap().target_key_id, b.key_id);
    let renamed = next_event(&mut stream).await;
    assert_eq!(
        (renamed.revision, renamed.r#type()),
        (4, AliasEventType::Renamed)
    );
    assert_eq!(renamed.previous_alias_name, "alias/x");
    assert_eq!(renamed.alias.unwrap().alias_name, "alias/y");
    let deleted = next_event(&mut stream).await;
    assert_eq!(
        (deleted.revision, deleted.r#type()),
        (5, AliasEventType::Deleted)
    );
    assert_eq!(deleted.alias.unwrap().alias_name, "alias/y");
}

#[tokio::test]
async fn watch_with_a_key_filter_sees_only_changes_touching_that_key() {
    let server = TestServer::start().await;
    let (a, b, c) = (
        server.create_key().await,
        server.create_key().await,
        server.create_key().await,
    );
    let mut stream = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: b.key_id.clone(),
            start_revision: Some(0),
            progress_notify: false,
        })
        .await
        .unwrap()
        .into_inner();
    server.create_alias("alias/on-a", &a.key_id).await.unwrap();
    server.create_alias("alias/on-c", &c.key_id).await.unwrap();
    server.update_alias("alias/on-a", &b.key_id).await.unwrap();
    server.update_alias("alias/on-a", &c.key_id).await.unwrap();
    let onto_b = next_event(&mut stream).await;
    assert_eq!(
        (onto_b.revision, onto_b.r#type()),
        (3, AliasEventType::Updated)
    );
    let away_from_b = next_event(&mut stream).await;
    assert_eq!(away_from_b.revision, 4);
    assert_eq!(away_from_b.previous_target_key_id, b.key_id);
}

#[tokio::test]
async fn watch_without_start_revision_streams_only_new_changes() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    server.create_alias("alias/old", &key.key_id).await.unwrap();
    let mut stream = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    server.create_alias("alias/new", &key.key_id).await.unwrap();
    let event = next_event(&mut stream).await;
    assert_eq!(event.alias.unwrap().alias_name, "alias/new");
    assert_eq!(event.revision, 2);
}

#[tokio::test]
async fn watch_from_a_compacted_or_future_revision_is_out_of_range() {
    let retain = |c: &mut aliasd::server::config::ServeConfig| c.change_log_retention = 2;
    let clock = std::sync::Arc::new(aliasd::domain::SystemClock);
    let server = TestServer::start_with(retain, clock.clone()).await;
    let key = server.create_key().await;
    for i in 0..5 {
        server
            .create_alias(&format!("alias/{i}"), &key.key_id)
            .await
            .unwrap();
    }
    let result = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: String::new(),
            start_revision: Some(99),
            progress_notify: false,
        })
        .await;
    assert_error(result, Code::OutOfRange, "FUTURE_REVISION");
    let result = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: uuid(),
            start_revision: Some(0),
            progress_notify: false,
        })
        .await;
    assert_error(result, Code::NotFound, "KEY_NOT_FOUND");

    // Pruning runs at start-up (then every minute): after a restart only
    // revisions 4 and 5 are retained. (On etcd the first server prunes once
    // it holds the maintenance lease, which may be while the aliases are
    // being created: the floor may first be seen part of the way up.)
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, retain, clock).await;
    let mut watch = server.aliases.clone();
    let mut compacted = None;
    for _ in 0..100 {
        let result = watch
            .watch_aliases(pb::WatchAliasesRequest {
                key_id: String::new(),
                start_revision: Some(0),
                progress_notify: false,
            })
            .await;
        if result
            .as_ref()
            .is_err_and(|status| status.message().contains("revision 4"))
        {
            compacted = Some(result);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = assert_error(
        compacted.expect("pruned within 5s"),
        Code::OutOfRange,
        "REVISION_COMPACTED",
    );
    assert!(
        status.message().contains("revision 4"),
        "{}",
        status.message()
    );
    let mut stream = watch
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: String::new(),
            start_revision: Some(3),
            progress_notify: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_event(&mut stream).await.revision, 4);
    assert_eq!(next_event(&mut stream).await.revision, 5);
}

#[tokio::test]
async fn shutdown_ends_watches_with_unavailable() {
    let server = TestServer::start().await;
    let mut stream = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let stop = tokio::spawn(async move { server.stop().await });
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("ends promptly");
    match end {
        Some(Err(status)) => {
            assert_eq!(status.code(), Code::Unavailable);
            assert_error::<()>(Err(status), Code::Unavailable, "SHUTTING_DOWN");
        }
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    stop.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_that_does_not_read_is_cut_off_and_writers_go_on() {
    let server = TestServer::start_with(
        |c| c.watch_send_timeout_secs = 1,
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    // A client with small HTTP/2 windows (hyper's default stream window is
    // 2 MiB, which would absorb this whole test).
    let addr = server.running.as_ref().unwrap().addr;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    let mut stream = aliasd::pb::alias_service_client::AliasServiceClient::new(channel)
        .watch_aliases(pb::WatchAliasesRequest {
            key_id: String::new(),
            start_revision: Some(0),
            progress_notify: false,
        })
        .await
        .unwrap()
        .into_inner();
    // 2,000 large events (about 1.2 MB), more than the HTTP/2 windows and the
    // watcher's buffer hold, while the stream is not read.
    let mut keys = Vec::new();
    for _ in 0..40 {
        keys.push(server.create_key().await.key_id);
    }
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let mut client = server.aliases.clone();
            let keys = keys.clone();
            tokio::spawn(async move {
                for i in (w..2000).step_by(8) {
                    let name = format!("alias/{i:05}-{}", "x".repeat(230));
                    client
                        .create_alias(pb::CreateAliasRequest {
                            alias_name: name,
                            target_key_id: keys[i / 50].clone(),
                            request_id: String::new(),
                        })
                        .await
                        .expect("writers are neither slowed nor failed by the watcher");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut received = 0;
    let status = loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
        match next.unwrap_or_else(|_| panic!("no error after {received} events")) {
            Some(Ok(_)) => received += 1,
            Some(Err(status)) => break status,
            None => panic!("the stream ended without an error after {received} events"),
        }
    };
    assert!(
        received < 2000,
        "cut off before the end ({received} events)"
    );
    assert_error::<()>(Err(status), Code::ResourceExhausted, "WATCH_TOO_SLOW");
}

#[tokio::test]
async fn a_watch_ends_with_deadline_exceeded_when_its_grpc_timeout_passes() {
    let server = TestServer::start().await;
    let key = server.create_key().await;
    let mut request = tonic::Request::new(pb::WatchAliasesRequest::default());
    request.set_timeout(Duration::from_millis(600));
    let mut stream = server
        .aliases
        .clone()
        .watch_aliases(request)
        .await
        .unwrap()
        .into_inner();
    // Events flow until the deadline...
    server
        .create_alias("alias/before-deadline", &key.key_id)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut stream).await.alias.unwrap().alias_name,
        "alias/before-deadline"
    );
    // ...then the server ends the stream (the ErrorInfo shows it was the
    // server, not the client giving up).
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("the stream ends at its deadline, not hours later");
    match end {
        Some(result) => {
            // A watch only reads: it cannot have committed anything.
            if let Err(status) = &result {
                use tonic_types::StatusExt;
                let info = status.get_details_error_info().unwrap();
                assert_eq!(info.metadata["may_have_committed"], "false", "{status:?}");
            }
            assert_error(result, Code::DeadlineExceeded, "DEADLINE_EXCEEDED");
        }
        None => panic!("the stream ended without a status"),
    }
}

#[tokio::test]
async fn open_watches_are_bounded_per_account_and_freed_when_closed() {
    let server = TestServer::start_with(
        |config| {
            config.max_watches_per_account = 2;
        },
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    let open = || async {
        server
            .aliases
            .clone()
            .watch_aliases(pb::WatchAliasesRequest::default())
            .await
    };
    let first = open().await.unwrap().into_inner();
    let mut second = open().await.unwrap().into_inner();
    let status = assert_error(open().await, Code::ResourceExhausted, "TOO_MANY_WATCHES");
    assert!(
        status.message().contains("--max-watches-per-account"),
        "{}",
        status.message()
    );
    // The open watches still work.
    let key = server.create_key().await;
    server
        .create_alias("alias/still-watched", &key.key_id)
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut second).await.alias.unwrap().alias_name,
        "alias/still-watched"
    );
    // Closing one frees its slot (the server notices the reset stream).
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        match open().await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(status) => {
                assert_error::<()>(Err(status), Code::ResourceExhausted, "TOO_MANY_WATCHES");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    assert!(reopened.is_some(), "a closed watch's slot was never freed");
}

#[tokio::test]
async fn an_idle_watch_that_asks_for_progress_gets_it_and_others_do_not() {
    let server = TestServer::start_configured(|c| c.watch_progress_interval_secs = 1).await;
    let (a, b) = (server.create_key().await, server.create_key().await);
    server.create_alias("alias/on-b", &b.key_id).await.unwrap();
    let watch = |progress_notify| {
        let mut aliases = server.aliases.clone();
        let key_id = a.key_id.clone();
        async move {
            aliases
                .watch_aliases(pb::WatchAliasesRequest {
                    key_id,
                    start_revision: Some(0),
                    progress_notify,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut asked = watch(true).await;
    let mut silent = watch(false).await;
    // Key B's change is not shown, but the progress says it was seen.
    let first = tokio::time::timeout(Duration::from_secs(10), asked.next())
        .await
        .expect("progress within 10 s")
        .unwrap()
        .unwrap();
    assert_eq!(first.event, None);
    assert_eq!(first.progress, Some(pb::WatchProgress { revision: 1 }));
    // A change resets the interval; the next progress covers it.
    server.create_alias("alias/on-a", &a.key_id).await.unwrap();
    let mut after_change = Vec::new();
    while after_change.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(10), asked.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        match (&message.event, &message.progress) {
            // Progress sent before the change was committed.
            (None, Some(pb::WatchProgress { revision: 1 })) if after_change.is_empty() => {}
            _ => after_change.push(message),
        }
    }
    assert_eq!(after_change[0].event.as_ref().map(|e| e.revision), Some(2));
    assert_eq!(
        after_change[1].progress,
        Some(pb::WatchProgress { revision: 2 })
    );
    // The watch that did not ask gets only the change.
    assert_eq!(next_event(&mut silent).await.revision, 2);
}
