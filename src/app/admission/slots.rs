//! Bounded slots, per key and in total: what keeps one caller from taking
//! the capacity every other caller needs. A slot is held from the moment it
//! is taken until it is dropped; past a bound, taking one fails at once
//! (callers are refused, never queued).
//!
//! Used for the calls in progress (a fair share per principal, and a small
//! bound of its own, per client address and in total, for requests whose
//! credentials are not yet checked) and for open watches (per account and
//! in total).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::app::admission::auth::Claim;
use crate::domain::policy::Caller;
use crate::domain::{Error, Reason};

/// The bounds and the slots held now.
#[derive(Debug)]
pub struct Slots {
    max_total: usize,
    max_per_key: usize,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    per_key: HashMap<String, usize>,
}

/// Why a slot could not be taken: the key's bound or the total is reached
/// (with how many slots it holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Key(usize),
    Total(usize),
}

/// One slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Slots>,
    key: String,
}

impl Slots {
    pub fn new(max_total: usize, max_per_key: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max_total,
            max_per_key,
            held: Mutex::new(Held::default()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // The counts stay consistent whatever panicked while holding it:
        // every update is a single step.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for `key`, or says which bound is reached.
    pub fn take(self: &Arc<Self>, key: &str) -> Result<Slot, Full> {
        let mut held = self.held();
        let of_key = held.per_key.get(key).copied().unwrap_or(0);
        if of_key >= self.max_per_key {
            return Err(Full::Key(of_key));
        }
        if held.total >= self.max_total {
            return Err(Full::Total(held.total));
        }
        held.total += 1;
        match held.per_key.get_mut(key) {
            Some(count) => *count += 1,
            None => {
                held.per_key.insert(key.to_owned(), 1);
            }
        }
        Ok(Slot {
            slots: self.clone(),
            key: key.to_owned(),
        })
    }

    /// Slots held now (all keys).
    pub fn held_total(&self) -> usize {
        self.held().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.slots.held();
        held.total = held.total.saturating_sub(1);
        if let Some(count) = held.per_key.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.per_key.remove(&self.key);
            }
        }
    }
}

/// The bounds on calls in progress that every door applies (each door also
/// has its own total, `--max-in-flight`).
#[derive(Debug, Clone, Copy)]
pub struct CallBounds {
    /// Calls one principal (or, without an auth file, one client address)
    /// may have in progress at once.
    pub per_principal: usize,
    /// Requests whose credentials are not checked yet (an HTTP body still
    /// arriving, with no known access key or token in its headers), in
    /// total and per client address.
    pub unauthenticated: usize,
    pub unauthenticated_per_address: usize,
}

/// The slots of calls in progress, shared by every door.
#[derive(Debug)]
pub struct CallSlots {
    principals: Arc<Slots>,
    unauthenticated: Arc<Slots>,
}

impl CallSlots {
    pub fn new(bounds: CallBounds) -> CallSlots {
        CallSlots {
            principals: Slots::new(usize::MAX, bounds.per_principal),
            unauthenticated: Slots::new(bounds.unauthenticated, bounds.unauthenticated_per_address),
        }
    }

    /// A slot for a call of an admitted `caller` from `address` (an
    /// anonymous caller's share is its address's).
    pub fn for_caller(&self, caller: &Caller, address: &str) -> Result<Slot, Error> {
        match caller {
            Caller::Principal(principal) => self.for_principal(&principal.name),
            Caller::Anonymous => self.for_principal(&format!("anonymous@{address}")),
        }
    }

    fn for_principal(&self, name: &str) -> Result<Slot, Error> {
        self.principals.take(name).map_err(|full| {
            let held = match full {
                Full::Key(held) | Full::Total(held) => held,
            };
            Error::new(
                Reason::SERVER_BUSY,
                format!(
                    "{name} has {held} calls in progress, the most one caller may have \
                     (--max-in-flight-per-principal); retry shortly."
                ),
            )
        })
    }

    /// A slot for a request from `address` whose credentials are not
    /// checked yet.
    pub fn unauthenticated(&self, address: &str) -> Result<Slot, Error> {
        self.unauthenticated.take(address).map_err(|full| {
            Error::new(
                Reason::SERVER_BUSY,
                match full {
                    Full::Key(held) => format!(
                        "{address} has {held} requests in progress whose credentials are not \
                         checked yet, the most one address may have \
                         (--max-unauthenticated-in-flight-per-ip); retry shortly."
                    ),
                    Full::Total(held) => format!(
                        "The server has {held} requests in progress whose credentials are not \
                         checked yet, the most it takes (--max-unauthenticated-in-flight); retry \
                         shortly."
                    ),
                },
            )
        })
    }

    /// Calls in progress of principals (or anonymous addresses) now.
    pub fn held_by_callers(&self) -> usize {
        self.principals.held_total()
    }
}

impl crate::app::App {
    /// The slot a request takes before its body is read, from what its
    /// headers claim: a known access key or a valid token takes its
    /// principal's share, anything else the small unauthenticated bound
    /// (so that requests without credentials cannot hold what
    /// authenticated callers need). The request is still authenticated in
    /// full once its body has arrived ([`App::admit`](crate::app::App::admit)).
    pub fn claim_slot(&self, claim: &Claim, address: &str) -> Result<Slot, Error> {
        let Some(auth) = &self.authenticator else {
            return self.admission.calls.for_caller(&Caller::Anonymous, address);
        };
        match auth.current().claimant(claim) {
            Some(principal) => self
                .admission
                .calls
                .for_caller(&Caller::Principal(principal), address),
            None => self.admission.calls.unauthenticated(address),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_per_key_and_in_total_and_freed_on_drop() {
        let slots = Slots::new(3, 2);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Full::Key(2));
        let _b1 = slots.take("b").unwrap();
        assert_eq!(slots.take("c").unwrap_err(), Full::Total(3));
        drop(a1);
        assert_eq!(slots.held_total(), 2);
        let _c1 = slots.take("c").unwrap();
        assert_eq!(slots.held_total(), 3);
    }

    #[test]
    fn each_principal_and_each_anonymous_address_has_its_own_share() {
        let calls = CallSlots::new(CallBounds {
            per_principal: 1,
            unauthenticated: 2,
            unauthenticated_per_address: 1,
        });
        let _one = calls.for_caller(&Caller::Anonymous, "127.0.0.1").unwrap();
        let error = calls
            .for_caller(&Caller::Anonymous, "127.0.0.1")
            .unwrap_err();
        assert_eq!(error.reason, Reason::SERVER_BUSY);
        assert!(error.message.contains("--max-in-flight-per-principal"));
        let _other = calls.for_caller(&Caller::Anonymous, "127.0.0.2").unwrap();

        let _u1 = calls.unauthenticated("10.0.0.1").unwrap();
        let error = calls.unauthenticated("10.0.0.1").unwrap_err();
        assert!(error.message.contains("-per-ip"), "{}", error.message);
        let _u2 = calls.unauthenticated("10.0.0.2").unwrap();
        let error = calls.unauthenticated("10.0.0.3").unwrap_err();
        assert!(
            error.message.contains("(--max-unauthenticated-in-flight)"),
            "{}",
            error.message
        );
        assert_eq!(calls.held_by_callers(), 2);
    }
}
