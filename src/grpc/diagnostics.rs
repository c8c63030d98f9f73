//! DiagnosticsService: calls that do no work (the benchmark's baseline).

use tonic::{Request, Response, Status};

use crate::pb::{self, diagnostics_service_server::DiagnosticsService};

pub struct DiagnosticsApi;

#[tonic::async_trait]
impl DiagnosticsService for DiagnosticsApi {
    async fn ping(
        &self,
        _request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }
}
