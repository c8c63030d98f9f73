//! request_id: idempotency tokens, and the fingerprint that tells a repeat of
//! a request from a different request under the same id.

use sha2::{Digest, Sha256};

use super::error::{Error, Reason, Result};
use super::names::quoted;

/// A request_id: a UUID in its 36-character form (Huawei's `sequence`),
/// kept lowercase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// Empty means "no request_id".
    pub fn parse(input: &str) -> Result<Option<RequestId>> {
        if input.is_empty() {
            return Ok(None);
        }
        let lower = input.to_ascii_lowercase();
        if super::names::is_lowercase_uuid(&lower) {
            Ok(Some(RequestId(lower)))
        } else {
            Err(Error::invalid(
                Reason::INVALID_REQUEST_ID,
                "request_id",
                format!(
                    "Invalid request_id {}: expected a UUID such as \
                     3f2504e0-4f89-41d3-9a0c-0305e82c3301.",
                    quoted(input)
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A digest of an operation and its parsed arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Digests the operation name and its arguments, each length-prefixed so
    /// that ("ab","c") and ("a","bc") differ.
    pub fn of(operation: &str, arguments: &[&str]) -> Fingerprint {
        let mut hasher = Sha256::new();
        for part in std::iter::once(operation).chain(arguments.iter().copied()) {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        Fingerprint(hasher.finalize().into())
    }
}

/// A request_id with the fingerprint of the request that carries it.
#[derive(Debug, Clone)]
pub struct Idempotency {
    pub request_id: RequestId,
    pub fingerprint: Fingerprint,
}

impl Idempotency {
    /// None when the request has no request_id.
    pub fn new(
        request_id: Option<RequestId>,
        operation: &str,
        arguments: &[&str],
    ) -> Option<Idempotency> {
        request_id.map(|request_id| Idempotency {
            request_id,
            fingerprint: Fingerprint::of(operation, arguments),
        })
    }

    /// Binds the request to its caller: the same request_id from another
    /// principal is a different request, so a replay can never hand one
    /// principal's response to another (replays skip the operation, and so
    /// its authorization).
    pub fn for_caller(mut self, caller: &str) -> Idempotency {
        let previous = self.fingerprint.0;
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update((caller.len() as u64).to_be_bytes());
        hasher.update(caller.as_bytes());
        self.fingerprint = Fingerprint(hasher.finalize().into());
        self
    }

    pub fn reused_error(&self) -> Error {
        Error::invalid(
            Reason::REQUEST_ID_REUSED,
            "request_id",
            format!(
                "request_id {} was already used for a different request; use a new request_id \
                 for a new request.",
                self.request_id.as_str()
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuids() {
        assert!(RequestId::parse("").unwrap().is_none());
        let id = RequestId::parse("3F2504E0-4F89-41D3-9A0C-0305E82C3301")
            .unwrap()
            .unwrap();
        assert_eq!(id.as_str(), "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
        assert!(RequestId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn fingerprints_separate_arguments() {
        assert_ne!(
            Fingerprint::of("op", &["ab", "c"]),
            Fingerprint::of("op", &["a", "bc"])
        );
        assert_eq!(Fingerprint::of("op", &["a"]), Fingerprint::of("op", &["a"]));
        assert_ne!(
            Fingerprint::of("op1", &["a"]),
            Fingerprint::of("op2", &["a"])
        );
    }
}
