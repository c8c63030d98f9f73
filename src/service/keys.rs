//! KeyService.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, App};
use crate::domain::audit::AuditEntry;
use crate::domain::key::{check_description, resolve_pending_window};
use crate::domain::names::parse_key_id;
use crate::domain::ops::{self, Ctx, NewKey};
use crate::domain::paging::{page_size, Listing};
use crate::domain::policy::{actions, ANY_RESOURCE};
use crate::domain::request::{Idempotency, RequestId};
use crate::domain::{Key, KeyId, KeyRef, KeySpec};
use crate::pb::{self, key_service_server::KeyService};
use crate::store::txn::{Fail, SledTxn};

pub struct KeyApi {
    app: Arc<App>,
}

impl KeyApi {
    pub fn new(app: Arc<App>) -> Self {
        KeyApi { app }
    }

    /// EnableKey, DisableKey, ScheduleKeyDeletion and CancelKeyDeletion: one
    /// key id, an optional request_id, one operation on the key.
    async fn change_key<F>(
        &self,
        ctx: Ctx,
        mut audit: AuditEntry,
        key_id: &str,
        request_id: &str,
        extra: &str,
        op: F,
    ) -> Result<pb::Key, Status>
    where
        F: Fn(&SledTxn, &Ctx, &KeyId) -> Result<Key, Fail> + Send + 'static,
    {
        let id = parse_key_id(&ctx.scope, "key_id", key_id)?;
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![id.to_string()];
        audit.request_id = request_id
            .as_ref()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        let idempotency = Idempotency::new(request_id, &audit.action, &[id.as_str(), extra]);
        let scope = ctx.scope.clone();
        let key = self
            .app
            .write(&ctx.clone(), audit, idempotency, move |txn| {
                op(txn, &ctx, &id)
            })
            .await?;
        Ok(convert::key(&scope, &key))
    }
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::CREATE_KEY);
        let request = request.into_inner();
        let new = NewKey {
            description: request.description,
            key_spec: convert::key_spec(request.key_spec)?,
            key_usage: convert::key_usage(request.key_usage)?,
        };
        check_description(&new.description)?;
        // Fingerprinted with defaults applied: an unset spec and an explicit
        // SYMMETRIC_DEFAULT are the same request.
        let (spec, usage) = KeySpec::resolve_pair(new.key_spec, new.key_usage)?;
        let request_id = RequestId::parse(&request.request_id)?;
        audit.request_id = request_id
            .as_ref()
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default();
        let idempotency = Idempotency::new(
            request_id,
            "CreateKey",
            &[&new.description, spec.as_str(), usage.as_str()],
        );
        // Chosen outside the transaction, so a retried transaction keeps it.
        let key_id = KeyId::generate();
        let mut denial = audit.clone();
        denial.resources = vec![ANY_RESOURCE.to_owned()];
        audit.resources = vec![key_id.to_string()];
        let op_ctx = ctx.clone();
        let key = self
            .app
            .write_audited(&ctx, audit, denial, idempotency, move |txn| {
                ops::create_key(txn, &op_ctx, &new, &key_id)
            })
            .await?;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(convert::key(&ctx.scope, &key)),
        }))
    }

    async fn describe_key(
        &self,
        request: Request<pb::DescribeKeyRequest>,
    ) -> Result<Response<pb::DescribeKeyResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::DESCRIBE_KEY);
        let key_ref = KeyRef::parse(&ctx.scope, "key_id", &request.get_ref().key_id)?;
        audit.resources = vec![request.get_ref().key_id.clone()];
        let op_ctx = ctx.clone();
        let key = self
            .app
            .read(&ctx, audit, move |txn| {
                ops::describe_key(txn, &op_ctx, &key_ref)
            })
            .await?;
        Ok(Response::new(pb::DescribeKeyResponse {
            key: Some(convert::key(&ctx.scope, &key)),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self.app.audit_entry(&request, &ctx, actions::LIST_KEYS);
        self.app
            .audited(ops::authorize_account_wide(&ctx, actions::LIST_KEYS), audit)
            .await?;
        let request = request.into_inner();
        let limit = page_size(request.page_size)?;
        let listing = Listing {
            account: &ctx.scope.account,
            kind: "keys",
            filter: "",
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(self.app.tokens.open(&listing, token)?),
        };
        let account = ctx.scope.account.clone();
        let (keys, more) = self
            .app
            .store
            .blocking(move |store| store.list_keys(&account, after.as_deref(), limit))
            .await?;
        let next_page_token = match keys.last() {
            Some(last) if more => self.app.tokens.issue(&listing, last.key_id.as_str()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(|k| convert::key(&ctx.scope, k)).collect(),
            next_page_token,
        }))
    }

    async fn enable_key(
        &self,
        request: Request<pb::EnableKeyRequest>,
    ) -> Result<Response<pb::EnableKeyResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self.app.audit_entry(&request, &ctx, actions::ENABLE_KEY);
        let r = request.into_inner();
        let key = self
            .change_key(ctx, audit, &r.key_id, &r.request_id, "", |txn, ctx, id| {
                ops::set_key_enabled(txn, ctx, id, true)
            })
            .await?;
        Ok(Response::new(pb::EnableKeyResponse { key: Some(key) }))
    }

    async fn disable_key(
        &self,
        request: Request<pb::DisableKeyRequest>,
    ) -> Result<Response<pb::DisableKeyResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self.app.audit_entry(&request, &ctx, actions::DISABLE_KEY);
        let r = request.into_inner();
        let key = self
            .change_key(ctx, audit, &r.key_id, &r.request_id, "", |txn, ctx, id| {
                ops::set_key_enabled(txn, ctx, id, false)
            })
            .await?;
        Ok(Response::new(pb::DisableKeyResponse { key: Some(key) }))
    }

    async fn schedule_key_deletion(
        &self,
        request: Request<pb::ScheduleKeyDeletionRequest>,
    ) -> Result<Response<pb::ScheduleKeyDeletionResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self
            .app
            .audit_entry(&request, &ctx, actions::SCHEDULE_KEY_DELETION);
        let r = request.into_inner();
        let window = resolve_pending_window(r.pending_window_in_days)?;
        let key = self
            .change_key(
                ctx,
                audit,
                &r.key_id,
                &r.request_id,
                &window.to_string(),
                move |txn, ctx, id| ops::schedule_key_deletion(txn, ctx, id, window),
            )
            .await?;
        Ok(Response::new(pb::ScheduleKeyDeletionResponse {
            key: Some(key),
        }))
    }

    async fn cancel_key_deletion(
        &self,
        request: Request<pb::CancelKeyDeletionRequest>,
    ) -> Result<Response<pb::CancelKeyDeletionResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self
            .app
            .audit_entry(&request, &ctx, actions::CANCEL_KEY_DELETION);
        let r = request.into_inner();
        let key = self
            .change_key(ctx, audit, &r.key_id, &r.request_id, "", |txn, ctx, id| {
                ops::cancel_key_deletion(txn, ctx, id)
            })
            .await?;
        Ok(Response::new(pb::CancelKeyDeletionResponse {
            key: Some(key),
        }))
    }
}
