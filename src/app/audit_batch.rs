//! Audit records of successful cryptographic calls, written in batches:
//! a call hands its record over and answers at once; a task writes what
//! has gathered in one transaction (at most [`MAX_BATCH`] records), then the
//! next batch. A crash loses the records not yet written: those of calls
//! answered in the last moments (at most the batch in flight and what
//! queued behind it, [`QUEUE`] records). When the queue is full, calls wait
//! for room: records are never dropped to keep up.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::audit::AuditEntry;
use crate::store::Store;

/// The most records one transaction writes.
pub const MAX_BATCH: usize = 512;
/// The most records waiting to be written.
pub const QUEUE: usize = 8192;
/// How long a batch may gather records before it is written.
pub const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Hands audit records to the writer task.
#[derive(Clone)]
pub struct AuditBatcher {
    queue: mpsc::Sender<AuditEntry>,
}

impl AuditBatcher {
    /// Starts the writer. It ends once every [`AuditBatcher`] is dropped
    /// and it has written what they handed over.
    pub fn start(store: Arc<Store>) -> (AuditBatcher, JoinHandle<()>) {
        let (queue, records) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(write_batches(store, records));
        (AuditBatcher { queue }, writer)
    }

    /// Queues `entry` (waiting only while the queue is full).
    pub async fn record(&self, entry: AuditEntry) {
        if self.queue.send(entry).await.is_err() {
            tracing::error!("the audit writer has stopped; a crypto call's record is lost");
        }
    }
}

async fn write_batches(store: Arc<Store>, mut records: mpsc::Receiver<AuditEntry>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while records.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Let a batch gather for a moment (unless it is full already): one
        // transaction and one sync for many calls.
        let gather = tokio::time::sleep(GATHER);
        tokio::pin!(gather);
        while batch.len() < MAX_BATCH {
            tokio::select! {
                _ = &mut gather => break,
                more = {
                    let room = MAX_BATCH - batch.len();
                    records.recv_many(&mut batch, room)
                } => {
                    if more == 0 {
                        break;
                    }
                }
            }
        }
        let entries = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let count = entries.len();
        if let Err(error) = store.record_audits(entries).await {
            tracing::error!(%error, count, "cannot record the audit records of crypto calls");
        }
    }
}
