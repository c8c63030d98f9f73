//! Audit records: every change and every denied call.

use super::time::Millis;

/// What the audit log keeps of one call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuditEntry {
    /// Assigned by the store: increases by one per record in the account.
    pub sequence: u64,
    pub time: Millis,
    /// The principal's name, "anonymous" without an auth file, or
    /// "unauthenticated".
    pub principal: String,
    pub account: String,
    /// e.g. "kms:UpdateAlias".
    pub action: String,
    /// Alias names and key ids the call named.
    pub resources: Vec<String>,
    pub request_id: String,
    pub x_request_id: String,
    /// "OK" for a change, else the error reason (ACCESS_DENIED, UNAUTHENTICATED).
    pub outcome: String,
    /// For a denial, the error message.
    pub message: String,
    /// Where the call came from.
    pub origin: Origin,
}

/// Where a call came from, as CloudTrail records it: the client's address
/// (behind a trusted proxy, the one the proxy forwarded), its user agent,
/// and the door it came through.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// "grpc", "aws", "huawei", "console", or "" for a call made inside
    /// the server.
    pub door: &'static str,
    /// An IP address, or "" when unknown.
    pub source_address: String,
    /// The caller's User-Agent ("" when it sent none).
    pub user_agent: String,
}

impl Origin {
    /// The doors' names as stored.
    pub const DOORS: [&'static str; 5] = ["grpc", "aws", "huawei", "http", "console"];

    /// A stored door name as one of [`Origin::DOORS`] ("" for any other).
    pub fn door_named(name: &str) -> &'static str {
        Self::DOORS
            .into_iter()
            .find(|door| *door == name)
            .unwrap_or_default()
    }
}

impl AuditEntry {
    pub const OK: &'static str = "OK";
}
