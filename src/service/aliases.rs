//! AliasService.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{convert, App};
use crate::domain::alias::parse_etag;
use crate::domain::audit::AuditEntry;
use crate::domain::names::{parse_alias_ref, parse_key_id};
use crate::domain::ops::{self, Ctx};
use crate::domain::paging::{page_size, Listing};
use crate::domain::policy::{actions, Caller, ANY_RESOURCE};
use crate::domain::request::{Idempotency, RequestId};
use crate::domain::{AliasName, KeyId};
use crate::pb::{self, alias_service_server::AliasService};
use crate::store::watch;

pub struct AliasApi {
    app: Arc<App>,
}

impl AliasApi {
    pub fn new(app: Arc<App>) -> Self {
        AliasApi { app }
    }

    /// The optional key filter of ListAliases and WatchAliases (a key id or
    /// key ARN of an existing key), once the caller is allowed `action` on it
    /// (or account-wide, without a filter).
    async fn key_filter(
        &self,
        ctx: &Ctx,
        mut audit: AuditEntry,
        key_id: &str,
    ) -> Result<Option<KeyId>, Status> {
        let filter = match key_id {
            "" => None,
            key_id => Some(parse_key_id(&ctx.scope, "key_id", key_id)?),
        };
        audit.resources = filter.iter().map(|k| k.to_string()).collect();
        let action = audit.action.clone();
        self.app
            .audited(ops::authorize_listing(ctx, &action, filter.as_ref()), audit)
            .await?;
        if let Some(id) = &filter {
            let (checked, check_ctx) = (id.clone(), ctx.clone());
            self.app
                .store
                .read(&ctx.scope.account, move |txn| {
                    ops::ensure_key_exists(txn, &check_ctx, &checked)
                })
                .await?;
        }
        Ok(filter)
    }
}

/// The request_id as the audit log keeps it ("" when none).
fn request_id_text(request_id: &Option<RequestId>) -> String {
    request_id
        .as_ref()
        .map(|r| r.as_str().to_owned())
        .unwrap_or_default()
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAliasesResponse, Status>> + Send>>;

/// A watch's events, ended with DEADLINE_EXCEEDED when the caller's
/// deadline passes, and holding the watch's slot until it is dropped.
struct Bounded<S> {
    events: S,
    deadline: Option<(std::time::Duration, Pin<Box<tokio::time::Sleep>>)>,
    done: bool,
    _slot: crate::watch_limits::WatchSlot,
}

impl<S> Stream for Bounded<S>
where
    S: Stream<Item = Result<pb::WatchAliasesResponse, Status>> + Unpin,
{
    type Item = S::Item;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        if let Some((timeout, sleep)) = self.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                let timeout = *timeout;
                self.done = true;
                return Poll::Ready(Some(Err(Status::from(crate::domain::Error::new(
                    crate::domain::Reason::DEADLINE_EXCEEDED,
                    format!(
                        "The watch's deadline of {timeout:?} passed; watch again from the last \
                         revision received."
                    ),
                )))));
            }
        }
        let next = Pin::new(&mut self.events).poll_next(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = next {
            self.done = true;
        }
        next
    }
}

#[tonic::async_trait]
impl AliasService for AliasApi {
    async fn create_alias(
        &self,
        request: Request<pb::CreateAliasRequest>,
    ) -> Result<Response<pb::CreateAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::CREATE_ALIAS);
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        // Rule 4 of the name rules comes before anything about the target.
        name.ensure_not_reserved(&ctx.scope)?;
        let target = parse_key_id(&ctx.scope, "target_key_id", &r.target_key_id)?;
        let request_id = RequestId::parse(&r.request_id)?;
        audit.resources = vec![name.to_string(), target.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency =
            Idempotency::new(request_id, "CreateAlias", &[name.as_str(), target.as_str()]);
        let op_ctx = ctx.clone();
        let alias = self
            .app
            .write(&ctx, audit, idempotency, move |txn| {
                ops::create_alias(txn, &op_ctx, &name, &target)
            })
            .await?;
        Ok(Response::new(pb::CreateAliasResponse {
            alias: Some(convert::alias(&ctx.scope, &alias)),
        }))
    }

    async fn update_alias(
        &self,
        request: Request<pb::UpdateAliasRequest>,
    ) -> Result<Response<pb::UpdateAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::UPDATE_ALIAS);
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        let target = parse_key_id(&ctx.scope, "target_key_id", &r.target_key_id)?;
        let etag = parse_etag(&r.etag)?.map(str::to_owned);
        let request_id = RequestId::parse(&r.request_id)?;
        audit.resources = vec![name.to_string(), target.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(
            request_id,
            "UpdateAlias",
            &[name.as_str(), target.as_str(), &r.etag],
        );
        let op_ctx = ctx.clone();
        let alias = self
            .app
            .write(&ctx, audit, idempotency, move |txn| {
                ops::update_alias(txn, &op_ctx, &name, &target, etag.as_deref())
            })
            .await?;
        Ok(Response::new(pb::UpdateAliasResponse {
            alias: Some(convert::alias(&ctx.scope, &alias)),
        }))
    }

    async fn delete_alias(
        &self,
        request: Request<pb::DeleteAliasRequest>,
    ) -> Result<Response<pb::DeleteAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::DELETE_ALIAS);
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        let etag = parse_etag(&r.etag)?.map(str::to_owned);
        let request_id = RequestId::parse(&r.request_id)?;
        audit.resources = vec![name.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(request_id, "DeleteAlias", &[name.as_str(), &r.etag]);
        let op_ctx = ctx.clone();
        self.app
            .write(&ctx, audit, idempotency, move |txn| {
                ops::delete_alias(txn, &op_ctx, &name, etag.as_deref())
            })
            .await?;
        Ok(Response::new(pb::DeleteAliasResponse {}))
    }

    async fn rename_alias(
        &self,
        request: Request<pb::RenameAliasRequest>,
    ) -> Result<Response<pb::RenameAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::RENAME_ALIAS);
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        let new_name = AliasName::parse("new_alias_name", &r.new_alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        new_name.ensure_not_reserved(&ctx.scope)?;
        let etag = parse_etag(&r.etag)?.map(str::to_owned);
        let request_id = RequestId::parse(&r.request_id)?;
        audit.resources = vec![name.to_string(), new_name.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(
            request_id,
            "RenameAlias",
            &[name.as_str(), new_name.as_str(), &r.etag],
        );
        let op_ctx = ctx.clone();
        let alias = self
            .app
            .write(&ctx, audit, idempotency, move |txn| {
                ops::rename_alias(txn, &op_ctx, &name, &new_name, etag.as_deref())
            })
            .await?;
        Ok(Response::new(pb::RenameAliasResponse {
            alias: Some(convert::alias(&ctx.scope, &alias)),
        }))
    }

    async fn get_alias(
        &self,
        request: Request<pb::GetAliasRequest>,
    ) -> Result<Response<pb::GetAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let mut audit = self.app.audit_entry(&request, &ctx, actions::GET_ALIAS);
        let name = parse_alias_ref(&ctx.scope, "alias_name", &request.get_ref().alias_name)?;
        audit.resources = vec![name.to_string()];
        let op_ctx = ctx.clone();
        let alias = self
            .app
            .read(&ctx, audit, move |txn| ops::get_alias(txn, &op_ctx, &name))
            .await?;
        Ok(Response::new(pb::GetAliasResponse {
            alias: Some(convert::alias(&ctx.scope, &alias)),
        }))
    }

    async fn list_aliases(
        &self,
        request: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self.app.audit_entry(&request, &ctx, actions::LIST_ALIASES);
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let filter = self.key_filter(&ctx, audit, &r.key_id).await?;
        let filter_text = filter.as_ref().map(|k| k.to_string()).unwrap_or_default();
        let listing = Listing {
            account: &scope.account,
            kind: "aliases",
            filter: &filter_text,
        };
        let after = match r.page_token.as_str() {
            "" => None,
            token => Some(self.app.tokens.open(&listing, token)?),
        };
        let account = scope.account.clone();
        let (revision, aliases, more) = self
            .app
            .store
            .blocking(move |store| {
                // Read before the scan: a watch from here misses nothing.
                let revision = store.head_revision(&account)?;
                let (aliases, more) =
                    store.list_aliases(&account, filter.as_ref(), after.as_deref(), limit)?;
                Ok((revision, aliases, more))
            })
            .await?;
        let next_page_token = match aliases.last() {
            Some(last) if more => self.app.tokens.issue(&listing, last.name.as_str()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAliasesResponse {
            aliases: aliases.iter().map(|a| convert::alias(&scope, a)).collect(),
            next_page_token,
            revision,
        }))
    }

    type WatchAliasesStream = EventStream;

    async fn watch_aliases(
        &self,
        request: Request<pb::WatchAliasesRequest>,
    ) -> Result<Response<Self::WatchAliasesStream>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self.app.audit_entry(&request, &ctx, actions::WATCH_ALIASES);
        // A stream outlives the layer that enforces deadlines on unary calls:
        // it ends itself when the caller's grpc-timeout passes. A little
        // early (a tenth, at most 100 ms), so that the caller gets the
        // server's DEADLINE_EXCEEDED rather than its own timer's.
        let deadline = crate::layers::grpc_timeout(request.metadata().as_ref()).map(|timeout| {
            let margin = (timeout / 10).min(std::time::Duration::from_millis(100));
            (timeout, tokio::time::Instant::now() + (timeout - margin))
        });
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let filter = self.key_filter(&ctx, audit, &r.key_id).await?;
        let still_allowed: watch::StillAllowed = match (&self.app.authenticator, &ctx.caller) {
            (Some(auth), Caller::Principal(principal)) => {
                let resource = filter
                    .as_ref()
                    .map_or_else(|| ANY_RESOURCE.to_owned(), |k| k.to_string());
                Box::new(auth.still_allowed(principal, actions::WATCH_ALIASES, resource))
            }
            _ => Box::new(|| Ok(())),
        };
        let slot = self.app.watch_slots.admit(&scope.account)?;
        let events = watch::open(
            self.app.store.clone(),
            scope.account.clone(),
            filter,
            r.start_revision,
            self.app.watch_send_timeout,
            still_allowed,
            self.app.shutdown.clone(),
        )?;
        let stream = events.map(move |item| match item {
            Ok(event) => Ok(pb::WatchAliasesResponse {
                event: Some(convert::event(&scope, &event)),
            }),
            Err(error) => Err(Status::from(error)),
        });
        Ok(Response::new(Box::pin(Bounded {
            events: stream,
            deadline: deadline
                .map(|(timeout, at)| (timeout, Box::pin(tokio::time::sleep_until(at)))),
            done: false,
            _slot: slot,
        })))
    }
}
