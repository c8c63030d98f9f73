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
            tags: r.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            policy: Some(r.policy).filter(|p| !p.is_empty()),
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

    async fn enable_key_rotation(
        &self,
        request: Request<pb::EnableKeyRotationRequest>,
    ) -> Result<Response<pb::EnableKeyRotationResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let period = (r.rotation_period_in_days != 0).then_some(r.rotation_period_in_days);
        let key = self
            .0
            .app
            .enable_key_rotation(&call, &r.key_id, period)
            .await?;
        Ok(Response::new(pb::EnableKeyRotationResponse {
            status: Some(convert::rotation_status(&self.0.app.scope_of(&call), &key)),
        }))
    }

    async fn disable_key_rotation(
        &self,
        request: Request<pb::DisableKeyRotationRequest>,
    ) -> Result<Response<pb::DisableKeyRotationResponse>, Status> {
        let call = self.0.call(&request)?;
        let key = self
            .0
            .app
            .disable_key_rotation(&call, &request.get_ref().key_id)
            .await?;
        Ok(Response::new(pb::DisableKeyRotationResponse {
            status: Some(convert::rotation_status(&self.0.app.scope_of(&call), &key)),
        }))
    }

    async fn get_key_rotation_status(
        &self,
        request: Request<pb::GetKeyRotationStatusRequest>,
    ) -> Result<Response<pb::GetKeyRotationStatusResponse>, Status> {
        let call = self.0.call(&request)?;
        let key = self
            .0
            .app
            .get_key_rotation_status(&call, &request.get_ref().key_id)
            .await?;
        Ok(Response::new(pb::GetKeyRotationStatusResponse {
            status: Some(convert::rotation_status(&self.0.app.scope_of(&call), &key)),
        }))
    }

    async fn rotate_key_on_demand(
        &self,
        request: Request<pb::RotateKeyOnDemandRequest>,
    ) -> Result<Response<pb::RotateKeyOnDemandResponse>, Status> {
        let call = self.0.call(&request)?;
        let key = self
            .0
            .app
            .rotate_key_on_demand(&call, &request.get_ref().key_id)
            .await?;
        Ok(Response::new(pb::RotateKeyOnDemandResponse {
            key: Some(key_response(&self.0.app, &call, &key)),
        }))
    }

    async fn list_key_rotations(
        &self,
        request: Request<pb::ListKeyRotationsRequest>,
    ) -> Result<Response<pb::ListKeyRotationsResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let (key, page) = self
            .0
            .app
            .list_key_rotations(&call, &r.key_id, r.page_size, &r.page_token, false)
            .await?;
        Ok(Response::new(pb::ListKeyRotationsResponse {
            rotations: page
                .items
                .iter()
                .map(|m| convert::rotation(&key, m))
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn tag_resource(
        &self,
        request: Request<pb::TagResourceRequest>,
    ) -> Result<Response<pb::TagResourceResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let tags = r.tags.into_iter().map(|t| (t.key, t.value)).collect();
        self.0.app.tag_resource(&call, &r.key_id, tags).await?;
        Ok(Response::new(pb::TagResourceResponse {}))
    }

    async fn untag_resource(
        &self,
        request: Request<pb::UntagResourceRequest>,
    ) -> Result<Response<pb::UntagResourceResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        self.0
            .app
            .untag_resource(&call, &r.key_id, r.tag_keys)
            .await?;
        Ok(Response::new(pb::UntagResourceResponse {}))
    }

    async fn list_resource_tags(
        &self,
        request: Request<pb::ListResourceTagsRequest>,
    ) -> Result<Response<pb::ListResourceTagsResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let limit = crate::domain::paging::page_size(r.page_size)?;
        let page = self
            .0
            .app
            .list_resource_tags(&call, &r.key_id, limit, &r.page_token)
            .await?;
        Ok(Response::new(pb::ListResourceTagsResponse {
            tags: page
                .items
                .into_iter()
                .map(|(key, value)| pb::Tag { key, value })
                .collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_key_policy(
        &self,
        request: Request<pb::GetKeyPolicyRequest>,
    ) -> Result<Response<pb::GetKeyPolicyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let name = policy_name(&r.policy_name);
        let policy = self.0.app.get_key_policy(&call, &r.key_id, name).await?;
        Ok(Response::new(pb::GetKeyPolicyResponse {
            policy,
            policy_name: name.to_owned(),
        }))
    }

    async fn put_key_policy(
        &self,
        request: Request<pb::PutKeyPolicyRequest>,
    ) -> Result<Response<pb::PutKeyPolicyResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        self.0
            .app
            .put_key_policy(&call, &r.key_id, policy_name(&r.policy_name), r.policy)
            .await?;
        Ok(Response::new(pb::PutKeyPolicyResponse {}))
    }

    async fn update_key_description(
        &self,
        request: Request<pb::UpdateKeyDescriptionRequest>,
    ) -> Result<Response<pb::UpdateKeyDescriptionResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        self.0
            .app
            .update_key_description(&call, &r.key_id, r.description)
            .await?;
        Ok(Response::new(pb::UpdateKeyDescriptionResponse {}))
    }
}

/// A policy name as the request gives it: empty means `default`.
fn policy_name(name: &str) -> &str {
    match name {
        "" => crate::domain::key_details::DEFAULT_POLICY_NAME,
        name => name,
    }
}
