//! Group commit: one flusher thread serves every writer. A writer commits its
//! transaction, then asks for a flush; the flusher takes every request queued
//! so far, runs one blocking `flush()` and one [`Syncer::sync`] (the real
//! `fsync`/`fdatasync`, see `sync.rs`), and only then answers them all.
//! Writers that commit while a flush runs share the next one, so under load
//! the cost of an fsync is spread over many calls.
//!
//! sled 0.34's concurrent `flush_async` can deadlock; a single thread calling
//! the blocking `flush()` avoids that.
//!
//! The first failed flush or sync fails the store ([`StoreHealth`]); later
//! requests are answered with that failure without flushing again.

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};

use tokio::sync::oneshot;

use super::sync::Syncer;
use crate::store::backend::FlushStats;
use crate::store::failure::StoreHealth;

/// How a flush request is answered: `Err` carries why the store failed.
type Answer = Box<dyn FnOnce(Result<(), Arc<str>>) + Send>;

pub struct GroupCommit {
    /// None once dropping: closing the queue ends the flusher.
    queue: Option<mpsc::Sender<Answer>>,
    flusher: Option<std::thread::JoinHandle<()>>,
    stats: Arc<FlushStats>,
    failure: StoreHealth,
}

/// Why a flush request got no answer.
const FLUSHER_GONE: &str = "the flusher thread has stopped";

impl GroupCommit {
    pub fn start(db: ::sled::Db, mut syncer: Box<dyn Syncer>, failure: StoreHealth) -> GroupCommit {
        let (queue, requests) = mpsc::channel::<Answer>();
        let stats = Arc::new(FlushStats::default());
        let counted = stats.clone();
        let failed = failure.clone();
        let flusher = std::thread::Builder::new()
            .name("aliasd-flusher".into())
            .spawn(move || {
                // Ends when the store (the last sender) is dropped.
                while let Ok(first) = requests.recv() {
                    let mut waiters = vec![first];
                    waiters.extend(requests.try_iter());
                    let result = match failed.cause() {
                        // Never flush or sync again after a failure (see failure.rs).
                        Some(cause) => Err(cause),
                        None => {
                            let started = std::time::Instant::now();
                            let flushed = db.flush().map_err(|e| format!("flush: {e}"));
                            let flush = started.elapsed();
                            let done = flushed
                                .and_then(|_| syncer.sync().map_err(|e| format!("fsync: {e}")));
                            counted.flushed_in_parts(
                                waiters.len() as u64,
                                started.elapsed(),
                                Some(flush),
                            );
                            done.map_err(|cause| {
                                failed.fail(&cause);
                                failed.cause().unwrap_or_else(|| cause.into())
                            })
                        }
                    };
                    for answer in waiters {
                        answer(result.clone());
                    }
                }
            })
            .expect("the flusher thread must start");
        GroupCommit {
            queue: Some(queue),
            flusher: Some(flusher),
            stats,
            failure,
        }
    }

    pub fn stats(&self) -> Arc<FlushStats> {
        self.stats.clone()
    }

    fn request(&self, answer: Answer) -> Result<(), Arc<str>> {
        self.queue
            .as_ref()
            .ok_or_else(|| Arc::from(FLUSHER_GONE))?
            .send(answer)
            .map_err(|_| self.flusher_gone())?;
        self.stats.requested.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// No answer means the flusher died (a panic in sled): nothing is being
    /// made durable any more, so the store has failed.
    fn flusher_gone(&self) -> Arc<str> {
        self.failure.fail(FLUSHER_GONE);
        self.failure
            .cause()
            .unwrap_or_else(|| Arc::from(FLUSHER_GONE))
    }

    /// Returns once everything committed before the call is on disk, or
    /// why the store failed.
    pub async fn flush(&self) -> Result<(), Arc<str>> {
        let (answer, done) = oneshot::channel();
        self.request(Box::new(move |result| {
            // A writer that gave up waiting is no concern of ours.
            let _ = answer.send(result);
        }))?;
        done.await.unwrap_or_else(|_| Err(self.flusher_gone()))
    }

    /// [`GroupCommit::flush`] for threads outside the async runtime.
    pub fn flush_blocking(&self) -> Result<(), Arc<str>> {
        let (answer, done) = mpsc::sync_channel(1);
        self.request(Box::new(move |result| {
            let _ = answer.send(result);
        }))?;
        done.recv().unwrap_or_else(|_| Err(self.flusher_gone()))
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
