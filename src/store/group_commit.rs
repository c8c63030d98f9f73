//! Group commit: one flusher thread serves every writer. A writer commits its
//! transaction, then asks for a flush; the flusher takes every request queued
//! so far, runs one blocking `flush()`, and answers them all. Writers that
//! commit while a flush runs share the next one, so under load the cost of an
//! fsync is spread over many calls.
//!
//! sled 0.34's concurrent `flush_async` can deadlock; a single thread calling
//! the blocking `flush()` avoids that.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use crate::domain::Error;

type Waiter = oneshot::Sender<Result<(), String>>;

pub struct GroupCommit {
    /// None once dropping: closing the queue ends the flusher.
    queue: Option<mpsc::Sender<Waiter>>,
    flusher: Option<std::thread::JoinHandle<()>>,
    stats: Arc<FlushStats>,
}

/// How many flushes ran and how many writers they served.
#[derive(Debug, Default)]
pub struct FlushStats {
    pub flushes: AtomicU64,
    pub writers: AtomicU64,
}

impl FlushStats {
    /// (flushes, writers served) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.flushes.load(Ordering::Relaxed),
            self.writers.load(Ordering::Relaxed),
        )
    }
}

impl GroupCommit {
    pub fn start(db: sled::Db) -> GroupCommit {
        let (queue, requests) = mpsc::channel::<Waiter>();
        let stats = Arc::new(FlushStats::default());
        let counted = stats.clone();
        let flusher = std::thread::Builder::new()
            .name("aliasd-flusher".into())
            .spawn(move || {
                // Ends when the store (the last sender) is dropped.
                while let Ok(first) = requests.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(requests.try_iter());
                    let result = db.flush().map(drop).map_err(|e| e.to_string());
                    counted.flushes.fetch_add(1, Ordering::Relaxed);
                    counted
                        .writers
                        .fetch_add(waiters.len() as u64, Ordering::Relaxed);
                    if let Err(error) = &result {
                        tracing::error!(%error, "flush failed");
                    }
                    for waiter in waiters {
                        // A writer that gave up waiting is no concern of ours.
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .expect("the flusher thread must start");
        GroupCommit {
            queue: Some(queue),
            flusher: Some(flusher),
            stats,
        }
    }

    pub fn stats(&self) -> Arc<FlushStats> {
        self.stats.clone()
    }

    /// Returns once everything committed before the call is on disk.
    pub async fn flush(&self) -> Result<(), Error> {
        let (waiter, done) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| Error::internal("the flusher has stopped"))?
            .send(waiter)
            .map_err(|_| Error::internal("the flusher has stopped"))?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Error::internal(format!("flush failed: {error}"))),
            Err(_) => Err(Error::internal("the flusher has stopped")),
        }
    }
}

impl Drop for GroupCommit {
    /// Stops the flusher and waits for it, so that its handle on the
    /// database (and the data directory's lock) is gone when the store is.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}
