//! WatchAliases: a reader of the change log that follows the durable head.
//!
//! Each watcher reads the log itself, from its own position, whenever a
//! commit becomes durable. Writers never wait for watchers: they bump a
//! counter and move on. A watcher whose client leaves its buffer full for
//! the send timeout is cut off (WATCH_TOO_SLOW); one that falls behind the
//! retained log is cut off with REVISION_COMPACTED. A watch that asked for
//! progress hears, whenever it has had nothing to deliver for its interval,
//! the revision up to which it has seen every change (so that a proxy in
//! between sees traffic, and the client a revision to resume from).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;

use super::Store;
use crate::domain::{AliasEvent, Error, KeyId, Reason};

/// Events buffered per watcher before it counts as slow.
pub const BUFFER: usize = 256;
/// Log entries read per batch.
const BATCH: usize = 512;

/// What a watch delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchItem {
    /// A committed change the watch shows.
    Change(AliasEvent),
    /// Every change up to this revision that the watch shows has been
    /// delivered (sent on an idle watch that asked for progress).
    Progress(u64),
}

/// The events of one watch, ending with an error if it was cut off.
pub struct WatchStream {
    events: mpsc::Receiver<WatchItem>,
    failure: Arc<Mutex<Option<Error>>>,
    done: bool,
}

impl WatchStream {
    fn take_failure(&mut self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchItem, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A cut-off watcher must re-list anyway: report it before what is buffered.
        if let Some(error) = self.take_failure() {
            self.done = true;
            return Poll::Ready(Some(Err(error)));
        }
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(self.take_failure().map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn compacted(account_floor: u64, position: u64) -> Error {
    Error::new(
        Reason::REVISION_COMPACTED,
        format!(
            "Revision {position} is older than the retained change log (the oldest retained \
             change is revision {}); list the aliases again and watch from the listed revision.",
            account_floor + 1
        ),
    )
}

/// How a watch paces itself.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How long a full buffer may wait for the client before it is cut off.
    pub send_timeout: Duration,
    /// With Some, how long the watch may go without delivering anything
    /// before it delivers its progress.
    pub progress_every: Option<Duration>,
}

/// Starts a watch of `account` after `start` (None: after the current head).
pub fn open(
    store: Arc<Store>,
    account: String,
    filter: Option<KeyId>,
    start: Option<u64>,
    pace: Pace,
    still_allowed: StillAllowed,
    shutdown: watch::Receiver<bool>,
) -> Result<WatchStream, Error> {
    let head = store.head_revision(&account)?;
    let floor = store.floor(&account)?;
    let position = start.unwrap_or(head);
    if position > head {
        return Err(Error::new(
            Reason::FUTURE_REVISION,
            format!(
                "start_revision {position} is newer than the store's latest revision {head}; list \
                 the aliases again and watch from the listed revision."
            ),
        ));
    }
    if position < floor {
        return Err(compacted(floor, position));
    }
    let (events, receiver) = mpsc::channel(BUFFER);
    let failure = Arc::new(Mutex::new(None));
    let watcher = Watcher {
        store,
        account,
        filter,
        position,
        events,
        pace,
        still_allowed,
        failure: failure.clone(),
    };
    tokio::spawn(watcher.run(shutdown));
    Ok(WatchStream {
        events: receiver,
        failure,
        done: false,
    })
}

struct Watcher {
    store: Arc<Store>,
    account: String,
    filter: Option<KeyId>,
    position: u64,
    events: mpsc::Sender<WatchItem>,
    pace: Pace,
    still_allowed: StillAllowed,
    failure: Arc<Mutex<Option<Error>>>,
}

/// Asked before each batch: may the watch's caller still see it? (The auth
/// file may have been reloaded since the watch began.)
pub type StillAllowed = Box<dyn Fn() -> Result<(), Error> + Send + Sync>;

impl Watcher {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        if let Err(error) = self.follow(&mut shutdown).await {
            *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
        }
        // Dropping the sender ends the stream (after the failure, if any).
    }

    /// Delivers `item`, waiting at most the send timeout for room: Ok(false)
    /// when the client went away.
    async fn deliver(&self, item: WatchItem) -> Result<bool, Error> {
        match tokio::time::timeout(self.pace.send_timeout, self.events.send(item)).await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(_)) => Ok(false),
            Err(_) => Err(Error::new(
                Reason::WATCH_TOO_SLOW,
                format!(
                    "The watch fell behind: {BUFFER} events waited more than {:?} for the \
                     client. List again and watch from the listed revision.",
                    self.pace.send_timeout
                ),
            )),
        }
    }

    /// Streams until the client leaves (Ok) or the watch must end (Err).
    async fn follow(&mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), Error> {
        let mut durable_moved = self.store.subscribe();
        // A failed store ends every watch (checked at the top of the loop).
        let mut failures = self.store.failures();
        let progress_due = |every: Duration| Box::pin(tokio::time::sleep(every));
        let mut progress = self.pace.progress_every.map(progress_due);
        loop {
            if *shutdown.borrow() {
                return Err(Error::new(
                    Reason::SHUTTING_DOWN,
                    "The server is shutting down; watch again (on another instance) from the last revision you received.",
                ));
            }
            self.store.check_not_failed()?;
            let durable = self.store.durable_revision(&self.account);
            while self.position < durable {
                (self.still_allowed)()?;
                let (account, after) = (self.account.clone(), self.position);
                let batch = self
                    .store
                    .blocking(move |store| {
                        let floor = store.floor(&account)?;
                        if after < floor {
                            return Err(compacted(floor, after));
                        }
                        let batch = store.changes_after(&account, after, durable, BATCH)?;
                        match batch.first() {
                            Some(first) if first.revision == after + 1 => Ok(batch),
                            _ => Err(compacted(store.floor(&account)?, after)),
                        }
                    })
                    .await?;
                for event in batch {
                    self.position = event.revision;
                    if self.filter.as_ref().is_some_and(|key| !event.touches(key)) {
                        continue;
                    }
                    if !self.deliver(WatchItem::Change(event)).await? {
                        return Ok(()); // the client went away
                    }
                    progress = self.pace.progress_every.map(progress_due);
                }
            }
            tokio::select! {
                moved = durable_moved.changed() => if moved.is_err() { return Ok(()) },
                failed = failures.changed() => if failed.is_err() { return Ok(()) },
                _ = shutdown.changed() => {}
                _ = self.events.closed() => return Ok(()),
                _ = async {
                    match progress.as_mut() {
                        Some(due) => due.await,
                        None => std::future::pending().await,
                    }
                } => {
                    if !self.deliver(WatchItem::Progress(self.position)).await? {
                        return Ok(());
                    }
                    progress = self.pace.progress_every.map(progress_due);
                }
            }
        }
    }
}
