//! AuditService: proto <-> application calls.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, Door};
use crate::app::{App, AuditQuery};
use crate::domain::Millis;
use crate::pb::{self, audit_service_server::AuditService};

pub struct AuditApi(Door);

impl AuditApi {
    pub fn new(app: Arc<App>) -> Self {
        AuditApi(Door { app })
    }
}

fn millis(timestamp: &Option<prost_types::Timestamp>) -> Option<Millis> {
    timestamp.as_ref().map(|t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos) / 1_000_000)
    })
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let call = self.0.call(&request)?;
        let r = request.into_inner();
        let query = AuditQuery {
            start: millis(&r.start_time),
            end: millis(&r.end_time),
            principal: r.principal,
            action: r.action,
            page_size: r.page_size,
            page_token: r.page_token,
        };
        let page = self.0.app.list_audit_events(&call, query).await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.items.iter().map(convert::audit_event).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}
