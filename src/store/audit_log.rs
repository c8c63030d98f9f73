//! Audit records outside a change (denials, backups) and the JSON-lines
//! mirror of every record (`--audit-log`).

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{append_audit, append_audits, Store, AUDIT_ENTRY_RECORDS};
use crate::domain::audit::AuditEntry;
use crate::domain::Error;

/// Opens (or creates, owner-only) the `--audit-log` file for appending.
pub fn open_audit_log(path: &Path) -> Result<std::fs::File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::internal(format!("cannot open audit log {}: {e}", path.display())))
}

impl Store {
    /// Records the audit entry of a call that changed nothing (a denial, a
    /// backup): its own small transaction, made durable with the next flush.
    pub async fn record_audit(self: &Arc<Self>, entry: AuditEntry) -> Result<(), Error> {
        if self.failure().is_some() {
            // Nothing can be recorded any more; the failure was logged once.
            return Ok(());
        }
        let store = self.clone();
        let entry = tokio::task::spawn_blocking(move || {
            let appended = RefCell::new(None);
            store.gated_transact(&|tx| {
                *appended.borrow_mut() = Some(append_audit(tx, &entry)?);
                Ok(())
            })?;
            appended
                .into_inner()
                .ok_or_else(|| Error::internal("a transaction committed without running"))
        })
        .await
        .map_err(|e| Error::internal(format!("audit task failed: {e}")))??;
        self.mirror_audit(&entry);
        Ok(())
    }
    /// Records several audit entries (a batch of successful crypto calls)
    /// in as few transactions as the backend allows (one on sled), made
    /// durable before this returns.
    ///
    /// Outside the read gate: the batch touches only the audit log and its
    /// sequence, which no inline read of keys and aliases looks at, so the
    /// reads of the crypto calls keep their fast path while batches of
    /// their records are written (gated, every read during a batch fell
    /// back to a transaction of its own). A page of the audit log read
    /// meanwhile may end before the batch's records; the next page has
    /// them.
    pub async fn record_audits(self: &Arc<Self>, entries: Vec<AuditEntry>) -> Result<(), Error> {
        if self.failure().is_some() || entries.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        let entries = tokio::task::spawn_blocking(move || {
            let groups = by_transaction(entries, store.backend.max_writes_per_transaction());
            let mut appended = Vec::new();
            for group in groups {
                let done = RefCell::new(Vec::new());
                store.backend.transact(&|tx| {
                    *done.borrow_mut() = append_audits(tx, &group)?;
                    Ok(())
                })?;
                appended.extend(done.into_inner());
            }
            Ok::<_, Error>(appended)
        })
        .await
        .map_err(|e| Error::internal(format!("audit task failed: {e}")))??;
        self.backend
            .flush()
            .await
            .map_err(|cause| Error::internal(format!("audit records not made durable: {cause}")))?;
        for entry in &entries {
            self.mirror_audit(entry);
        }
        Ok(())
    }

    /// Mirrors audit records into `file` (see [`open_audit_log`]) as JSON
    /// lines, from now on.
    pub fn mirror_audit_into(&self, file: std::fs::File) {
        let _ = self.audit_mirror.set(Mutex::new(file));
    }
    pub(super) fn mirror_audit(&self, entry: &AuditEntry) {
        use std::io::Write;
        let Some(file) = self.audit_mirror.get() else {
            return;
        };
        let line = serde_json::json!({
            "sequence": entry.sequence,
            "time_ms": entry.time,
            "principal": entry.principal,
            "account": entry.account,
            "action": entry.action,
            "resources": entry.resources,
            "request_id": entry.request_id,
            "x_request_id": entry.x_request_id,
            "outcome": entry.outcome,
            "message": entry.message,
            "door": entry.origin.door,
            "source_address": entry.origin.source_address,
            "user_agent": entry.origin.user_agent,
        });
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(error) = writeln!(file, "{line}") {
            tracing::error!(%error, "cannot append to the audit log");
        }
    }
}

/// Splits a batch of audit records into groups each of which one
/// transaction can write within `max_writes`: an account's records stay in
/// one group, in order, and cost one write per log entry they fill plus one
/// for the account's sequence (and a read of it, which etcd counts as a
/// compare: so half the budget).
fn by_transaction(entries: Vec<AuditEntry>, max_writes: usize) -> Vec<Vec<AuditEntry>> {
    let mut by_account: Vec<Vec<AuditEntry>> = Vec::new();
    for entry in entries {
        match by_account
            .iter_mut()
            .find(|list| list[0].account == entry.account)
        {
            Some(list) => list.push(entry),
            None => by_account.push(vec![entry]),
        }
    }
    let budget = (max_writes / 2).max(1);
    let mut groups: Vec<Vec<AuditEntry>> = Vec::new();
    let mut cost = 0;
    for list in by_account {
        let needs = 1 + list.len().div_ceil(AUDIT_ENTRY_RECORDS);
        if groups.is_empty() || cost + needs > budget {
            groups.push(Vec::new());
            cost = 0;
        }
        cost += needs;
        groups.last_mut().expect("pushed above").extend(list);
    }
    groups
}
