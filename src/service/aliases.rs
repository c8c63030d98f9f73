//! AliasService.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{convert, App};
use crate::domain::alias::parse_etag;
use crate::domain::names::{parse_alias_ref, parse_key_id};
use crate::domain::ops;
use crate::domain::paging::{page_size, Listing};
use crate::domain::policy::actions;
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
        ctx: &ops::Ctx,
        action: &str,
        key_id: &str,
    ) -> Result<Option<KeyId>, Status> {
        if key_id.is_empty() {
            ops::authorize_listing(ctx, action, None)?;
            return Ok(None);
        }
        let id = parse_key_id(&ctx.scope, "key_id", key_id)?;
        ops::authorize_listing(ctx, action, Some(&id))?;
        let (checked, check_ctx) = (id.clone(), ctx.clone());
        self.app
            .store
            .read(&ctx.scope.account, move |txn| {
                ops::ensure_key_exists(txn, &check_ctx, &checked)
            })
            .await?;
        Ok(Some(id))
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAliasesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AliasService for AliasApi {
    async fn create_alias(
        &self,
        request: Request<pb::CreateAliasRequest>,
    ) -> Result<Response<pb::CreateAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        name.ensure_not_reserved(&scope)?;
        let target = parse_key_id(&scope, "target_key_id", &r.target_key_id)?;
        let idempotency = Idempotency::new(
            RequestId::parse(&r.request_id)?,
            "CreateAlias",
            &[name.as_str(), target.as_str()],
        );
        let alias = self
            .app
            .store
            .write(&scope.account, idempotency, ctx.now, move |txn| {
                ops::create_alias(txn, &ctx, &name, &target)
            })
            .await?;
        Ok(Response::new(pb::CreateAliasResponse {
            alias: Some(convert::alias(&scope, &alias)),
        }))
    }

    async fn update_alias(
        &self,
        request: Request<pb::UpdateAliasRequest>,
    ) -> Result<Response<pb::UpdateAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        name.ensure_not_reserved(&scope)?;
        let target = parse_key_id(&scope, "target_key_id", &r.target_key_id)?;
        let etag = parse_etag(&r.etag)?.map(str::to_owned);
        let idempotency = Idempotency::new(
            RequestId::parse(&r.request_id)?,
            "UpdateAlias",
            &[name.as_str(), target.as_str(), &r.etag],
        );
        let alias = self
            .app
            .store
            .write(&scope.account, idempotency, ctx.now, move |txn| {
                ops::update_alias(txn, &ctx, &name, &target, etag.as_deref())
            })
            .await?;
        Ok(Response::new(pb::UpdateAliasResponse {
            alias: Some(convert::alias(&scope, &alias)),
        }))
    }

    async fn delete_alias(
        &self,
        request: Request<pb::DeleteAliasRequest>,
    ) -> Result<Response<pb::DeleteAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        name.ensure_not_reserved(&scope)?;
        let etag = parse_etag(&r.etag)?.map(str::to_owned);
        let idempotency = Idempotency::new(
            RequestId::parse(&r.request_id)?,
            "DeleteAlias",
            &[name.as_str(), &r.etag],
        );
        self.app
            .store
            .write(&scope.account, idempotency, ctx.now, move |txn| {
                ops::delete_alias(txn, &ctx, &name, etag.as_deref())
            })
            .await?;
        Ok(Response::new(pb::DeleteAliasResponse {}))
    }

    async fn rename_alias(
        &self,
        request: Request<pb::RenameAliasRequest>,
    ) -> Result<Response<pb::RenameAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let name = AliasName::parse("alias_name", &r.alias_name)?;
        let new_name = AliasName::parse("new_alias_name", &r.new_alias_name)?;
        name.ensure_not_reserved(&scope)?;
        new_name.ensure_not_reserved(&scope)?;
        let etag = parse_etag(&r.etag)?.map(str::to_owned);
        let idempotency = Idempotency::new(
            RequestId::parse(&r.request_id)?,
            "RenameAlias",
            &[name.as_str(), new_name.as_str(), &r.etag],
        );
        let alias = self
            .app
            .store
            .write(&scope.account, idempotency, ctx.now, move |txn| {
                ops::rename_alias(txn, &ctx, &name, &new_name, etag.as_deref())
            })
            .await?;
        Ok(Response::new(pb::RenameAliasResponse {
            alias: Some(convert::alias(&scope, &alias)),
        }))
    }

    async fn get_alias(
        &self,
        request: Request<pb::GetAliasRequest>,
    ) -> Result<Response<pb::GetAliasResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let scope = ctx.scope.clone();
        let name = parse_alias_ref(&scope, "alias_name", &request.get_ref().alias_name)?;
        let alias = self
            .app
            .store
            .read(&scope.account, move |txn| ops::get_alias(txn, &ctx, &name))
            .await?;
        Ok(Response::new(pb::GetAliasResponse {
            alias: Some(convert::alias(&scope, &alias)),
        }))
    }

    async fn list_aliases(
        &self,
        request: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let limit = page_size(r.page_size)?;
        let filter = self
            .key_filter(&ctx, actions::LIST_ALIASES, &r.key_id)
            .await?;
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
        let scope = ctx.scope.clone();
        let r = request.into_inner();
        let filter = self
            .key_filter(&ctx, actions::WATCH_ALIASES, &r.key_id)
            .await?;
        let events = watch::open(
            self.app.store.clone(),
            scope.account.clone(),
            filter,
            r.start_revision,
            self.app.watch_send_timeout,
            self.app.shutdown.clone(),
        )?;
        let stream = events.map(move |item| match item {
            Ok(event) => Ok(pb::WatchAliasesResponse {
                event: Some(convert::event(&scope, &event)),
            }),
            Err(error) => Err(Status::from(error)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
