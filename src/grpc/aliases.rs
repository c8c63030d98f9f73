//! AliasService: proto <-> application calls.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{convert, status, Door};
use crate::app::{App, Call};
use crate::domain::Alias;
use crate::pb::{self, alias_service_server::AliasService};
use crate::store::watch::WatchItem;

pub struct AliasApi(Door);

impl AliasApi {
    pub fn new(app: Arc<App>) -> Self {
        AliasApi(Door { app })
    }

    fn alias(&self, call: &Call, alias: Alias) -> pb::Alias {
        convert::alias(&self.0.app.scope_of(call), alias)
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchAliasesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AliasService for AliasApi {
    async fn create_alias(
        &self,
        request: Request<pb::CreateAliasRequest>,
    ) -> Result<Response<pb::CreateAliasResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let alias = self
            .0
            .app
            .create_alias(&call, &r.alias_name, &r.target_key_id, &r.request_id)
            .await?;
        Ok(Response::new(pb::CreateAliasResponse {
            alias: Some(self.alias(&call, alias)),
        }))
    }

    async fn update_alias(
        &self,
        request: Request<pb::UpdateAliasRequest>,
    ) -> Result<Response<pb::UpdateAliasResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let alias = self
            .0
            .app
            .update_alias(
                &call,
                &r.alias_name,
                &r.target_key_id,
                &r.etag,
                &r.request_id,
            )
            .await?;
        Ok(Response::new(pb::UpdateAliasResponse {
            alias: Some(self.alias(&call, alias)),
        }))
    }

    async fn delete_alias(
        &self,
        request: Request<pb::DeleteAliasRequest>,
    ) -> Result<Response<pb::DeleteAliasResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        self.0
            .app
            .delete_alias(&call, &r.alias_name, &r.etag, &r.request_id)
            .await?;
        Ok(Response::new(pb::DeleteAliasResponse {}))
    }

    async fn rename_alias(
        &self,
        request: Request<pb::RenameAliasRequest>,
    ) -> Result<Response<pb::RenameAliasResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let alias = self
            .0
            .app
            .rename_alias(
                &call,
                &r.alias_name,
                &r.new_alias_name,
                &r.etag,
                &r.request_id,
            )
            .await?;
        Ok(Response::new(pb::RenameAliasResponse {
            alias: Some(self.alias(&call, alias)),
        }))
    }

    async fn get_alias(
        &self,
        request: Request<pb::GetAliasRequest>,
    ) -> Result<Response<pb::GetAliasResponse>, Status> {
        let call = self.0.call(&request)?;
        let alias = self
            .0
            .app
            .get_alias(&call, &request.get_ref().alias_name)
            .await?;
        Ok(Response::new(pb::GetAliasResponse {
            alias: Some(self.alias(&call, alias)),
        }))
    }

    async fn list_aliases(
        &self,
        request: Request<pb::ListAliasesRequest>,
    ) -> Result<Response<pb::ListAliasesResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let listed = self
            .0
            .app
            .list_aliases(&call, &r.key_id, r.page_size, &r.page_token)
            .await?;
        let scope = self.0.app.scope_of(&call);
        Ok(Response::new(pb::ListAliasesResponse {
            aliases: listed
                .page
                .items
                .into_iter()
                .map(|a| convert::alias(&scope, a))
                .collect(),
            next_page_token: listed.page.next_page_token,
            revision: listed.revision,
        }))
    }

    type WatchAliasesStream = EventStream;

    async fn watch_aliases(
        &self,
        request: Request<pb::WatchAliasesRequest>,
    ) -> Result<Response<Self::WatchAliasesStream>, Status> {
        let call = self.0.call(&request)?;
        // A stream outlives the layer that enforces deadlines on unary
        // calls: the application ends it at the caller's grpc-timeout.
        let deadline = crate::grpc::layers::grpc_timeout(request.metadata().as_ref());
        let r = request.into_inner();
        let events = self
            .0
            .app
            .watch_aliases(
                &call,
                &r.key_id,
                r.start_revision,
                deadline,
                r.progress_notify,
            )
            .await?;
        let scope = self.0.app.scope_of(&call);
        let stream = events.map(move |item| match item {
            Ok(WatchItem::Change(event)) => Ok(pb::WatchAliasesResponse {
                event: Some(convert::event(&scope, &event)),
                progress: None,
            }),
            Ok(WatchItem::Progress(revision)) => Ok(pb::WatchAliasesResponse {
                event: None,
                progress: Some(pb::WatchProgress { revision }),
            }),
            Err(error) => Err(status(error)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
