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
}

impl AuditEntry {
    pub const OK: &'static str = "OK";
}
