//! The application layer: the use cases, shared by every door (gRPC, the
//! AWS JSON and Huawei REST endpoints, and through gRPC the CLI).
//!
//! Each operation takes a transport-free [`Call`] (who is calling, the trace
//! id) and plain arguments as the caller sent them, and returns domain values
//! or a [`domain::Error`](crate::domain::Error). It owns everything between
//! the wire and the rules: the order of checks (fields, then reserved names,
//! then the request_id, then stored state), authorization (per resource and
//! account-wide), idempotency fingerprints, audit records (changes and
//! denials), listing with page tokens, and watching. A door only translates
//! its wire format to these calls and renders the answer or the error.

mod admin;
pub mod admission;
mod aliases;
mod audit;
pub mod audit_batch;
pub mod crypto;
mod history;
mod key_details;
mod keys;
pub mod maintenance;
pub mod materials;
mod rotation;
pub mod seed;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::domain::audit::{AuditEntry, Origin};
use crate::domain::ops::{Ctx, Limits};
use crate::domain::paging::PageTokens;
use crate::domain::policy::Caller;
use crate::domain::request::{Idempotency, RequestId};
use crate::domain::{Clock, Error, Reason, Scope};
use crate::store::records::Replayable;
use crate::store::txn::{AccountTxn, Fail};
use crate::store::Store;

pub use admission::auth::Credentials;
pub use admission::slots::{CallBounds, Slot};
pub use admission::Admission;
pub use aliases::{AliasPage, WatchStream};
pub use audit::AuditQuery;
pub use history::AliasHistory;
pub use keys::NewKeyRequest;

/// A call, as every door describes it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who is calling (from [`App::admit`]).
    pub caller: Caller,
    /// The trace id of the call (x-request-id), recorded in audit records.
    pub x_request_id: String,
    /// Where the call came from, recorded in audit records.
    pub origin: Origin,
}

impl Call {
    pub fn new(caller: Caller, x_request_id: impl Into<String>, origin: Origin) -> Call {
        Call {
            caller,
            x_request_id: x_request_id.into(),
            origin,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque; empty on the last page.
    pub next_page_token: String,
}

/// What the use cases share.
pub struct App {
    pub store: Arc<Store>,
    /// Partition, region and the default account.
    pub scope: Scope,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    pub tokens: PageTokens,
    /// Becomes true when shutdown starts (ends watches).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// How long a watch may leave its buffer full before it is cut off.
    pub watch_send_timeout: std::time::Duration,
    /// How long an idle watch that asked for progress waits before it
    /// delivers its progress (None: never).
    pub watch_progress_interval: Option<std::time::Duration>,
    /// The auth file in force, if any: every call must then carry a known
    /// principal.
    pub authenticator: Option<Arc<crate::app::admission::auth::Authenticator>>,
    /// Bounds on open watches, per account and in total.
    pub watch_slots: Arc<crate::app::admission::watches::WatchSlots>,
    /// Authentication and throttling of every call.
    pub admission: Admission,
    /// The root key and the material it has unwrapped.
    pub materials: Arc<crate::crypto::MaterialCache>,
    /// Writes the audit records of successful crypto calls in batches.
    pub crypto_audit: audit_batch::AuditBatcher,
}

/// The request_id as the audit log keeps it ("" when none).
fn request_id_text(request_id: &Option<RequestId>) -> String {
    request_id
        .as_ref()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default()
}

impl App {
    /// Partition, region and the account a call runs in (its principal's,
    /// or the server's default for anonymous calls): what ARNs are made of.
    pub fn scope_of(&self, call: &Call) -> Scope {
        let account = match &call.caller {
            Caller::Principal(principal) => principal.account.clone(),
            Caller::Anonymous => self.scope.account.clone(),
        };
        Scope {
            account,
            ..self.scope.clone()
        }
    }

    /// The context of a call: its caller decides the account it runs in.
    fn ctx(&self, call: &Call) -> Ctx {
        Ctx {
            scope: self.scope_of(call),
            now: self.clock.now(),
            limits: self.limits,
            caller: call.caller.clone(),
        }
    }

    /// The audit record a call leaves if it changes something or is denied;
    /// operations add the resources and request_id.
    fn audit_entry(&self, call: &Call, ctx: &Ctx, action: &str) -> AuditEntry {
        AuditEntry {
            time: ctx.now,
            principal: ctx.caller.name().to_owned(),
            account: ctx.scope.account.clone(),
            action: action.to_owned(),
            x_request_id: call.x_request_id.clone(),
            outcome: AuditEntry::OK.to_owned(),
            origin: call.origin.clone(),
            ..AuditEntry::default()
        }
    }

    /// Runs a change; its audit record commits in the same transaction. A
    /// denied change is audited on its own; other failures leave no record.
    async fn write<T, F>(
        &self,
        ctx: &Ctx,
        audit: AuditEntry,
        idempotency: Option<Idempotency>,
        op: F,
    ) -> Result<T, Error>
    where
        T: Replayable + Send + 'static,
        F: Fn(&AccountTxn) -> Result<T, Fail> + Send + 'static,
    {
        let denial = audit.clone();
        self.write_audited(ctx, audit, denial, idempotency, op)
            .await
    }

    /// [`App::write`] for a change whose denial record names other
    /// resources than its change record (CreateKey: the new key id if it
    /// commits, `*` — what was authorized — if it is denied).
    async fn write_audited<T, F>(
        &self,
        ctx: &Ctx,
        audit: AuditEntry,
        denial: AuditEntry,
        idempotency: Option<Idempotency>,
        op: F,
    ) -> Result<T, Error>
    where
        T: Replayable + Send + 'static,
        F: Fn(&AccountTxn) -> Result<T, Fail> + Send + 'static,
    {
        let idempotency = idempotency.map(|i| i.for_caller(ctx.caller.name()));
        let result = self
            .store
            .write(&ctx.scope.account, idempotency, Some(audit), ctx.now, op)
            .await;
        self.audited(result, denial).await
    }

    /// Runs a read; only a denial is audited.
    async fn read<T, F>(&self, ctx: &Ctx, audit: AuditEntry, op: F) -> Result<T, Error>
    where
        T: Replayable + Send + 'static,
        F: Fn(&AccountTxn) -> Result<T, Fail> + Send + 'static,
    {
        let result = self.store.read(&ctx.scope.account, op).await;
        self.audited(result, audit).await
    }

    /// Passes a result through, auditing it if it is a denial.
    async fn audited<T>(
        &self,
        result: Result<T, Error>,
        mut audit: AuditEntry,
    ) -> Result<T, Error> {
        if let Err(error) = &result {
            if error.reason == Reason::ACCESS_DENIED {
                audit.outcome = error.reason.as_str().to_owned();
                audit.message = error.message.clone();
                if let Err(failure) = self.store.record_audit(audit).await {
                    tracing::error!(error = %failure, "cannot record a denied call");
                }
            }
        }
        result
    }
}
