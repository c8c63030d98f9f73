//! Key removal when the deletion time passes, driven by an injected clock.

use std::time::Duration;

use aliasd::domain::ops::Limits;
use aliasd::pb::{self, AliasEventType};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn a_key_past_its_deletion_time_goes_with_all_its_aliases() {
    let clock = ManualClock::at(1_800_000_000_000);
    let server = TestServer::start_with(|c| c.reap_interval_secs = 1, clock.clone()).await;
    let doomed = server.create_key().await;
    let kept = server.create_key().await;
    let cancelled = server.create_key().await;
    server
        .create_alias("alias/d1", &doomed.key_id)
        .await
        .unwrap();
    server
        .create_alias("alias/d2", &doomed.key_id)
        .await
        .unwrap();
    server
        .create_alias("alias/kept", &kept.key_id)
        .await
        .unwrap();
    server.schedule_deletion(&doomed.key_id, 7).await.unwrap();
    server
        .schedule_deletion(&cancelled.key_id, 7)
        .await
        .unwrap();
    server.cancel_deletion(&cancelled.key_id).await.unwrap();
    let mut events = server
        .aliases
        .clone()
        .watch_aliases(pb::WatchAliasesRequest::default())
        .await
        .unwrap()
        .into_inner();

    // Waits until a whole sweep has run after now (the next one may have
    // begun before the clock moved).
    let mut sweeps = server.running.as_ref().unwrap().sweeps.clone();
    let mut after_a_sweep = || {
        let from = *sweeps.borrow_and_update();
        let mut sweeps = sweeps.clone();
        async move {
            // Hang guard only: a sweep runs every --reap-interval-secs.
            tokio::time::timeout(
                Duration::from_secs(30),
                sweeps.wait_for(|done| *done >= from + 2),
            )
            .await
            .expect("a sweep ran")
            .unwrap();
        }
    };

    // Six days on, nothing is due: a sweep runs and leaves the key.
    clock.advance_days(6);
    after_a_sweep().await;
    assert!(server.describe(&doomed.key_id).await.is_ok());

    clock.advance_days(2);
    after_a_sweep().await;
    let gone = server.describe(&doomed.key_id).await.is_err();
    assert!(
        gone,
        "the key was removed by the first sweep after its deletion time"
    );
    assert_error(
        server.describe(&doomed.key_id).await,
        Code::NotFound,
        "KEY_NOT_FOUND",
    );
    assert_error(
        server.get_alias("alias/d1").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_error(
        server.get_alias("alias/d2").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_eq!(server.alias_names("").await, vec!["alias/kept"]);
    assert!(
        server.describe(&cancelled.key_id).await.is_ok(),
        "a cancelled deletion keeps the key"
    );

    // The watch saw both aliases go.
    let mut deleted = Vec::new();
    while deleted.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap();
        assert_eq!(event.r#type(), AliasEventType::Deleted);
        deleted.push(event.alias.unwrap().alias_name);
    }
    deleted.sort();
    assert_eq!(deleted, vec!["alias/d1", "alias/d2"]);

    // The key counter moved too: the store's invariants hold.
    let dir = server.stop().await;
    let store = crate::common::open_store(dir.path());
    let report = store.check(&Limits::default());
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!((report.keys, report.aliases), (2, 1));
}
