//! Following other instances' commits: an etcd watch on every account's
//! revision counter publishes their new revisions to this process's change
//! feed, so that its watchers hear of changes made anywhere; after a
//! compaction it catches up by reading every counter.

use std::sync::Arc;
use std::time::Duration;

use super::client::{Auth, AuthChannel};
use super::etcdserverpb as pb;
use super::etcdserverpb::kv_client::KvClient;
use super::etcdserverpb::watch_client::WatchClient;
use crate::store::feed::Feed;

/// The accounts' revision counters under `meta/`, followed for the feed.
#[derive(Clone)]
pub(super) struct Counters {
    /// The range `[from, to)` of `meta/` keys.
    pub(super) from: Vec<u8>,
    pub(super) to: Vec<u8>,
    pub(super) feed: Arc<Feed>,
}

impl Counters {
    /// Publishes `key`'s value to the feed if `key` is an account's
    /// revision counter (`meta/{account}\0revision`).
    fn publish(&self, key: &[u8], value: &[u8]) {
        use crate::store::layout;
        let counter = key.get(self.from.len()..).and_then(layout::split);
        if let (Some((account, layout::REVISION)), Ok(revision)) =
            (counter, <[u8; 8]>::try_from(value))
        {
            self.feed.publish(account, u64::from_be_bytes(revision));
        }
    }

    /// Reads every counter now and publishes it; returns the etcd revision
    /// to watch from (the one after the read's).
    async fn catch_up(&self, kv: &mut KvClient<AuthChannel>, auth: &Auth) -> Option<i64> {
        let request = pb::RangeRequest {
            key: self.from.clone(),
            range_end: self.to.clone(),
            ..Default::default()
        };
        let response = super::client::range_once(kv, auth, request).await?;
        for kv in &response.kvs {
            self.publish(&kv.key, &kv.value);
        }
        Some(response.header?.revision + 1)
    }
}

/// Publishes each revision-counter write to the feed, watching from `next`
/// (0: catching up first) and again whenever the watch ends. A watch from
/// a revision etcd has compacted away starts over by catching up: every
/// counter read as it is now, then watched from there, so no change is
/// missed (watchers read the change log itself; the feed only wakes them).
pub(super) async fn follow(
    mut kv: KvClient<AuthChannel>,
    mut client: WatchClient<AuthChannel>,
    counters: Counters,
    mut next: i64,
    auth: Arc<Auth>,
) {
    loop {
        if next == 0 {
            match counters.catch_up(&mut kv, &auth).await {
                Some(revision) => next = revision,
                None => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            }
        }
        let (requests, stream) = tokio::sync::mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: counters.from.clone(),
                    range_end: counters.to.clone(),
                    start_revision: next,
                    ..Default::default()
                },
            )),
        };
        if requests.send(create).await.is_ok() {
            let opened = client
                .watch(tokio_stream::wrappers::ReceiverStream::new(stream))
                .await;
            if let Err(status) = &opened {
                auth.renewed(status).await;
            }
            if let Ok(response) = opened {
                let mut events = response.into_inner();
                while let Ok(Some(message)) = events.message().await {
                    if message.compact_revision > 0 {
                        // The revisions since `next` are gone: catch up.
                        next = 0;
                        break;
                    }
                    for event in message.events {
                        let Some(kv) = event.kv else { continue };
                        next = next.max(kv.mod_revision + 1);
                        counters.publish(&kv.key, &kv.value);
                    }
                    if message.canceled {
                        break;
                    }
                }
            }
            drop(requests);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
