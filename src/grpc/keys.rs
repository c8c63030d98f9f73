//! KeyService: proto <-> application calls.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, Door};
use crate::app::{App, NewKeyRequest};
use crate::pb::{self, key_service_server::KeyService};

pub struct KeyApi(Door);

impl KeyApi {
    pub fn new(app: Arc<App>) -> Self {
        KeyApi(Door { app })
    }
}

/// A key as the API returns it.
fn key_response(app: &App, call: &crate::app::Call, key: &crate::domain::Key) -> pb::Key {
    convert::key(&app.scope_of(call), key)
}

#[tonic::async_trait]
impl KeyService for KeyApi {
    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreateKeyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let new = NewKeyRequest {
            key_spec: convert::key_spec(r.key_spec)?,
            key_usage: convert::key_usage(r.key_usage)?,
            description: r.description,
            request_id: r.request_id,
            alias_name: None,
        };
        let key = self.0.app.create_key(&call, new).await?;
        Ok(Response::new(pb::CreateKeyResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }

    async fn describe_key(
        &self,
        request: Request<pb::DescribeKeyRequest>,
    ) -> Result<Response<pb::DescribeKeyResponse>, Status> {
        let call = self.0.call(&request)?;
        let key = self
            .0
            .app
            .describe_key(&call, &request.get_ref().key_id)
            .await?;
        Ok(Response::new(pb::DescribeKeyResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }

    async fn list_keys(
        &self,
        request: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let page = self
            .0
            .app
            .list_keys(&call, r.page_size, &r.page_token)
            .await?;
        let scope = self.0.app.scope_of(&call);
        Ok(Response::new(pb::ListKeysResponse {
            keys: page.items.iter().map(|k| convert::key(&scope, k)).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn enable_key(
        &self,
        request: Request<pb::EnableKeyRequest>,
    ) -> Result<Response<pb::EnableKeyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let key = self
            .0
            .app
            .enable_key(&call, &r.key_id, &r.request_id)
            .await?;
        Ok(Response::new(pb::EnableKeyResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }

    async fn disable_key(
        &self,
        request: Request<pb::DisableKeyRequest>,
    ) -> Result<Response<pb::DisableKeyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let key = self
            .0
            .app
            .disable_key(&call, &r.key_id, &r.request_id)
            .await?;
        Ok(Response::new(pb::DisableKeyResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }

    async fn schedule_key_deletion(
        &self,
        request: Request<pb::ScheduleKeyDeletionRequest>,
    ) -> Result<Response<pb::ScheduleKeyDeletionResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let key = self
            .0
            .app
            .schedule_key_deletion(&call, &r.key_id, r.pending_window_in_days, &r.request_id)
            .await?;
        Ok(Response::new(pb::ScheduleKeyDeletionResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }

    async fn cancel_key_deletion(
        &self,
        request: Request<pb::CancelKeyDeletionRequest>,
    ) -> Result<Response<pb::CancelKeyDeletionResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let key = self
            .0
            .app
            .cancel_key_deletion(&call, &r.key_id, &r.request_id)
            .await?;
        Ok(Response::new(pb::CancelKeyDeletionResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }
}
