//! Time as the rules see it: milliseconds since the Unix epoch, read from a
//! [`Clock`] that tests can replace. Its own module so that the rules
//! (`alias.rs`, `key.rs`, ...) do not import from `domain/mod.rs`, which
//! imports them.

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// Where time comes from; tests substitute a clock they can move.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}
