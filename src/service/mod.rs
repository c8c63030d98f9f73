//! tonic handlers: translate proto <-> domain, run the domain operation
//! through the store, and nothing else.

mod aliases;
mod audit;
mod convert;
mod keys;

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Code as GrpcCode, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::audit::AuditEntry;
use crate::domain::ops::{Ctx, Limits};
use crate::domain::paging::PageTokens;
use crate::domain::policy::Caller;
use crate::domain::request::Idempotency;
use crate::domain::{Clock, Code, Error, Reason, Scope};
use crate::store::records::Replayable;
use crate::store::txn::{Fail, SledTxn};
use crate::store::Store;

pub use aliases::AliasApi;
pub use audit::AuditApi;
pub use keys::KeyApi;

/// The ErrorInfo domain of every aliasd error.
pub const ERROR_DOMAIN: &str = "aliasd";

/// What the handlers share.
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
    /// The auth file in force, if any: every call must then carry a known
    /// principal.
    pub authenticator: Option<Arc<crate::auth::Authenticator>>,
    /// Bounds on open watches, per account and in total.
    pub watch_slots: Arc<crate::watch_limits::WatchSlots>,
}

impl App {
    /// The context of a call: who is calling (put in the request by the
    /// authentication layer) and so which account it runs in.
    pub fn ctx_of<T>(&self, request: &tonic::Request<T>) -> Result<Ctx, Status> {
        let caller = match request.extensions().get::<Caller>() {
            Some(caller) => caller.clone(),
            // With an auth file, a call that reached here unauthenticated is
            // refused rather than treated as anonymous.
            None if self.authenticator.is_some() => {
                return Err(status(Error::new(
                    Reason::UNAUTHENTICATED,
                    "The call carries no credentials.",
                )))
            }
            None => Caller::Anonymous,
        };
        let account = match &caller {
            Caller::Principal(principal) => principal.account.clone(),
            Caller::Anonymous => self.scope.account.clone(),
        };
        Ok(Ctx {
            scope: Scope {
                account,
                ..self.scope.clone()
            },
            now: self.clock.now(),
            limits: self.limits,
            caller,
        })
    }
}

impl App {
    /// The audit record a call leaves if it changes something or is denied;
    /// handlers add the resources and request_id.
    pub fn audit_entry<T>(
        &self,
        request: &tonic::Request<T>,
        ctx: &Ctx,
        action: &str,
    ) -> AuditEntry {
        AuditEntry {
            time: ctx.now,
            principal: ctx.caller.name().to_owned(),
            account: ctx.scope.account.clone(),
            action: action.to_owned(),
            x_request_id: request
                .metadata()
                .get(crate::layers::REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            outcome: AuditEntry::OK.to_owned(),
            ..AuditEntry::default()
        }
    }

    /// Runs a change; its audit record commits in the same transaction. A
    /// denied change is audited on its own; other failures leave no record.
    pub async fn write<T, F>(
        &self,
        ctx: &Ctx,
        audit: AuditEntry,
        idempotency: Option<Idempotency>,
        op: F,
    ) -> Result<T, Status>
    where
        T: Replayable + Send + 'static,
        F: Fn(&SledTxn) -> Result<T, Fail> + Send + 'static,
    {
        let denial = audit.clone();
        self.write_audited(ctx, audit, denial, idempotency, op)
            .await
    }

    /// [`App::write`] for a change whose denial record names other
    /// resources than its change record (CreateKey: the new key id if it
    /// commits, `*` — what was authorized — if it is denied).
    pub async fn write_audited<T, F>(
        &self,
        ctx: &Ctx,
        audit: AuditEntry,
        denial: AuditEntry,
        idempotency: Option<Idempotency>,
        op: F,
    ) -> Result<T, Status>
    where
        T: Replayable + Send + 'static,
        F: Fn(&SledTxn) -> Result<T, Fail> + Send + 'static,
    {
        let idempotency = idempotency.map(|i| i.for_caller(ctx.caller.name()));
        let result = self
            .store
            .write(&ctx.scope.account, idempotency, Some(audit), ctx.now, op)
            .await;
        self.audited(result, denial).await
    }

    /// Runs a read; only a denial is audited.
    pub async fn read<T, F>(&self, ctx: &Ctx, audit: AuditEntry, op: F) -> Result<T, Status>
    where
        T: Replayable + Send + 'static,
        F: Fn(&SledTxn) -> Result<T, Fail> + Send + 'static,
    {
        let result = self.store.read(&ctx.scope.account, op).await;
        self.audited(result, audit).await
    }

    /// Passes a result through, auditing it if it is a denial.
    pub async fn audited<T>(
        &self,
        result: Result<T, Error>,
        mut audit: AuditEntry,
    ) -> Result<T, Status> {
        match result {
            Ok(value) => Ok(value),
            Err(error) => {
                if error.reason == Reason::ACCESS_DENIED {
                    audit.outcome = error.reason.as_str().to_owned();
                    audit.message = error.message.clone();
                    if let Err(failure) = self.store.record_denial(audit).await {
                        tracing::error!(error = %failure, "cannot record a denied call");
                    }
                }
                Err(status(error))
            }
        }
    }
}

fn grpc_code(code: Code) -> GrpcCode {
    match code {
        Code::InvalidArgument => GrpcCode::InvalidArgument,
        Code::NotFound => GrpcCode::NotFound,
        Code::AlreadyExists => GrpcCode::AlreadyExists,
        Code::PermissionDenied => GrpcCode::PermissionDenied,
        Code::FailedPrecondition => GrpcCode::FailedPrecondition,
        Code::Aborted => GrpcCode::Aborted,
        Code::ResourceExhausted => GrpcCode::ResourceExhausted,
        Code::OutOfRange => GrpcCode::OutOfRange,
        Code::Unavailable => GrpcCode::Unavailable,
        Code::DeadlineExceeded => GrpcCode::DeadlineExceeded,
        Code::Unimplemented => GrpcCode::Unimplemented,
        Code::Unauthenticated => GrpcCode::Unauthenticated,
        Code::Internal => GrpcCode::Internal,
        Code::Unknown => GrpcCode::Unknown,
    }
}

/// The gRPC status of an error: its code, message, an ErrorInfo (reason,
/// domain, kms_exception) and, for invalid arguments, a BadRequest.
pub fn status(error: Error) -> Status {
    let spec = error.reason.spec();
    let code = grpc_code(spec.code);
    if code == GrpcCode::Internal {
        tracing::error!(message = %error.message, "internal error");
    }
    let mut metadata = HashMap::from([("kms_exception".to_owned(), spec.kms_exception.to_owned())]);
    if let Some(may) = error.reason.may_have_committed() {
        metadata.insert("may_have_committed".to_owned(), may.to_string());
    }
    let mut details = ErrorDetails::with_error_info(error.reason.as_str(), ERROR_DOMAIN, metadata);
    if let Some(delay) = error.retry_after {
        details.set_retry_info(Some(delay));
    }
    if code == GrpcCode::InvalidArgument {
        details.add_bad_request_violation(error.field.unwrap_or("request"), error.message.clone());
    }
    Status::with_error_details(code, error.message, details)
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        status(error)
    }
}
