//! Throttling: a token bucket per account and action. Each call takes a
//! token; tokens come back at `rate` per second up to `burst`. Over the limit
//! is RESOURCE_EXHAUSTED (THROTTLED) with a google.rpc.RetryInfo saying when
//! a token will be there.
//!
//! Limits come from the auth file's `[throttle]` section when it has one
//! (re-read on SIGHUP), else from `--throttle-rate` / `--throttle-burst`.
//! A rate of 0 means unlimited.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::domain::{Error, Reason};

/// One limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Calls per second (0: unlimited).
    pub rate: f64,
    /// Calls allowed at once after a quiet spell (at least 1).
    pub burst: f64,
}

/// The auth file's `[throttle]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Default for every action.
    pub rate: Option<f64>,
    pub burst: Option<f64>,
    /// Per action, e.g. `[throttle.actions."kms:CreateAlias"]`.
    #[serde(default)]
    pub actions: HashMap<String, Limit>,
}

/// The flags' limit, for every action.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    pub rate: f64,
    pub burst: f64,
}

/// Buckets kept before idle ones are dropped (keys can come from peers).
const MAX_BUCKETS: usize = 10_000;

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

pub struct Throttler {
    flags: ThrottleConfig,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl Throttler {
    pub fn new(flags: ThrottleConfig) -> Throttler {
        Throttler {
            flags,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn limit(&self, action: &str, file: Option<&ThrottleSettings>) -> Limit {
        let flags = Limit {
            rate: self.flags.rate,
            burst: self.flags.burst,
        };
        match file {
            None => flags,
            Some(file) => file.actions.get(action).copied().unwrap_or(Limit {
                rate: file.rate.unwrap_or(flags.rate),
                burst: file.burst.unwrap_or(flags.burst),
            }),
        }
    }

    /// Takes a token for (account, action), or says when to retry.
    pub fn admit(
        &self,
        account: &str,
        action: &str,
        file: Option<&ThrottleSettings>,
    ) -> Result<(), Error> {
        let limit = self.limit(action, file);
        if limit.rate <= 0.0 || !limit.rate.is_finite() {
            return Ok(());
        }
        let burst = limit.burst.max(1.0);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            // Buckets idle for a minute are full again: forgetting them changes nothing.
            buckets.retain(|_, b| now.duration_since(b.refilled) < Duration::from_secs(60));
        }
        let bucket = buckets
            .entry((account.to_owned(), action.to_owned()))
            .or_insert(Bucket {
                tokens: burst,
                refilled: now,
            });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.rate).min(burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / limit.rate);
        let mut error = Error::new(
            Reason::THROTTLED,
            format!(
                "Rate exceeded: account {account} may call {action} {} times per second (burst {}); \
                 retry in {} ms.",
                limit.rate,
                burst,
                wait.as_millis().max(1)
            ),
        );
        error.retry_after = Some(wait);
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_throttles_with_a_retry_delay() {
        let throttler = Throttler::new(ThrottleConfig {
            rate: 1.0,
            burst: 3.0,
        });
        for _ in 0..3 {
            throttler.admit("a", "kms:CreateAlias", None).unwrap();
        }
        let error = throttler.admit("a", "kms:CreateAlias", None).unwrap_err();
        assert_eq!(error.reason, Reason::THROTTLED);
        assert!(error.retry_after.unwrap() <= Duration::from_secs(1));
        // Other accounts and actions have their own buckets.
        throttler.admit("b", "kms:CreateAlias", None).unwrap();
        throttler.admit("a", "kms:DescribeKey", None).unwrap();
    }

    #[test]
    fn file_limits_override_flags_per_action() {
        let throttler = Throttler::new(ThrottleConfig {
            rate: 0.0,
            burst: 0.0,
        });
        let file = ThrottleSettings {
            actions: HashMap::from([(
                "kms:CreateKey".to_owned(),
                Limit {
                    rate: 0.001,
                    burst: 1.0,
                },
            )]),
            ..Default::default()
        };
        throttler.admit("a", "kms:CreateKey", Some(&file)).unwrap();
        assert!(throttler.admit("a", "kms:CreateKey", Some(&file)).is_err());
        for _ in 0..100 {
            throttler.admit("a", "kms:ListKeys", Some(&file)).unwrap();
        }
    }
}
