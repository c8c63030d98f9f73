//! Where the server's log lines go: a buffer that a background thread
//! writes out in batches.
//!
//! Every answered call logs a line, so what a line costs the call's thread
//! is a cost of every call. A channel with a writer thread behind it (as
//! `tracing-appender`'s non-blocking writer) costs a wake-up of that thread
//! per line, and the thread's `write(2)` per line; on a busy two-core
//! machine the wake-ups and the context switches cost more than formatting
//! the line. Here a line is appended to a shared buffer under a mutex held
//! only for the copy, and the writer thread wakes on its own every
//! [`BATCH_INTERVAL`] and writes everything buffered with one `write(2)`.
//!
//! A reader that cannot keep up (a stalled pipe) does not stall calls:
//! past [`MAX_BUFFERED`] bytes new lines are dropped, counted, and reported
//! by a line of their own once the buffer drains. Dropping the [`FlushGuard`]
//! writes out what is buffered (the end of `serve`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// How often the writer thread writes out what has been buffered: the
/// longest a line waits before a reader of the log sees it.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(20);

/// The most bytes held for a writer that cannot keep up; lines beyond are
/// dropped (and counted).
pub const MAX_BUFFERED: usize = 8 << 20;

/// What the calls' threads and the writer thread share.
struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Lines dropped since the writer last reported them.
    dropped: AtomicU64,
    stop: AtomicBool,
    /// Wakes the writer early: at shutdown.
    wake: Condvar,
}

/// The `MakeWriter` for tracing's fmt layer: each event's line arrives in
/// one `write_all` and is appended whole.
#[derive(Clone)]
pub struct BatchedLog {
    shared: Arc<Shared>,
}

/// Writes out what is buffered, and stops the writer thread, when dropped.
pub struct FlushGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts the writer thread for `out` and returns the writer to give the
/// fmt layer, and the guard that flushes it at the end.
pub fn batched<W: Write + Send + 'static>(out: W) -> std::io::Result<(BatchedLog, FlushGuard)> {
    let shared = Arc::new(Shared {
        buffer: Mutex::new(Vec::with_capacity(64 << 10)),
        dropped: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        wake: Condvar::new(),
    });
    let thread = std::thread::Builder::new()
        .name("aliasd-log".into())
        .spawn({
            let shared = shared.clone();
            move || write_batches(&shared, out)
        })?;
    Ok((
        BatchedLog {
            shared: shared.clone(),
        },
        FlushGuard {
            shared,
            thread: Some(thread),
        },
    ))
}

/// The writer thread: every [`BATCH_INTERVAL`] (or when woken at the end),
/// takes the whole buffer and writes it with one `write_all`. A failed
/// write (a reader that went away) loses that batch and nothing else: the
/// server must not stop over its log.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut spare = Vec::with_capacity(64 << 10);
    loop {
        let stopping = {
            let buffer = shared.buffer.lock().unwrap_or_else(PoisonError::into_inner);
            let _woken = shared
                .wake
                .wait_timeout_while(buffer, BATCH_INTERVAL, |_| {
                    !shared.stop.load(Ordering::Acquire)
                })
                .unwrap_or_else(PoisonError::into_inner);
            shared.stop.load(Ordering::Acquire)
        };
        std::mem::swap(
            &mut *shared.buffer.lock().unwrap_or_else(PoisonError::into_inner),
            &mut spare,
        );
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            // Written after what came before the drops, so the gap shows
            // where it was.
            let _ = writeln!(
                spare,
                "aliasd: {dropped} log lines dropped: the log's reader did not keep up"
            );
        }
        if !spare.is_empty() {
            let _ = out.write_all(&spare).and_then(|()| out.flush());
            // A burst's buffer is not kept for ever.
            spare.clear();
            spare.shrink_to(1 << 20);
        }
        if stopping {
            return;
        }
    }
}

impl BatchedLog {
    fn append(&self, line: &[u8]) {
        let mut buffer = self
            .shared
            .buffer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if buffer.len() + line.len() > MAX_BUFFERED {
            drop(buffer);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            buffer.extend_from_slice(line);
        }
    }
}

impl Write for &BatchedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes);
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.append(bytes);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedLog {
    type Writer = &'a BatchedLog;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        // Under the lock, so the writer cannot miss the wake-up between
        // checking `stop` and waiting.
        drop(
            self.shared
                .buffer
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer the test can read back, counting the writes it gets.
    #[derive(Clone, Default)]
    struct Collected {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<AtomicU64>,
    }

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.writes.fetch_add(1, Ordering::Relaxed);
            self.bytes.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_in_order_per_thread_and_in_few_writes() {
        let out = Collected::default();
        let (log, guard) = batched(out.clone()).unwrap();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let log = log.clone();
                scope.spawn(move || {
                    for i in 0..1000 {
                        (&log)
                            .write_all(format!("thread {thread} line {i}\n").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = String::from_utf8(out.bytes.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4000, "every line written, once");
        for thread in 0..4 {
            let own: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|line| line.starts_with(&format!("thread {thread} ")))
                .collect();
            let expected: Vec<String> = (0..1000)
                .map(|i| format!("thread {thread} line {i}"))
                .collect();
            assert_eq!(own, expected, "thread {thread}'s lines whole and in order");
        }
        // 4,000 lines written in a few batches, not a write each.
        let writes = out.writes.load(Ordering::Relaxed);
        assert!(writes < 100, "{writes} writes for 4,000 lines");
    }

    /// A writer that blocks until released: a reader that does not keep up.
    struct Stalled {
        release: Arc<(Mutex<bool>, Condvar)>,
        inner: Collected,
    }

    impl Write for Stalled {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (lock, released) = &*self.release;
            let _open = released
                .wait_while(lock.lock().unwrap(), |open| !*open)
                .unwrap();
            self.inner.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_does_not_keep_up_loses_lines_counted_and_reported_not_calls() {
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let inner = Collected::default();
        let (log, guard) = batched(Stalled {
            release: release.clone(),
            inner: inner.clone(),
        })
        .unwrap();
        // One line the writer takes and then stalls on.
        (&log).write_all(b"first\n").unwrap();
        while !log.shared.buffer.lock().unwrap().is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // The buffer fills to its bound; what does not fit is dropped,
        // without blocking the writing thread.
        let mut line = vec![b'x'; 1023];
        line.push(b'\n');
        for _ in 0..MAX_BUFFERED / line.len() + 10 {
            (&log).write_all(&line).unwrap();
        }
        let dropped = log.shared.dropped.load(Ordering::Relaxed);
        assert!(dropped >= 10, "{dropped} lines counted as dropped");
        *release.0.lock().unwrap() = true;
        release.1.notify_all();
        drop(guard);
        let text = String::from_utf8(inner.bytes.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("first\n"), "{}", &text[..20]);
        assert!(
            text.contains(&format!("aliasd: {dropped} log lines dropped")),
            "the drops are reported"
        );
    }
}
