//! DiagnosticsService: calls that do no work (the benchmark's baseline),
//! and what the server is.

use tonic::{Request, Response, Status};

use crate::pb::{self, diagnostics_service_server::DiagnosticsService};

pub struct DiagnosticsApi {
    /// GetServerInfo's answer, fixed at start-up.
    pub info: pb::GetServerInfoResponse,
}

#[tonic::async_trait]
impl DiagnosticsService for DiagnosticsApi {
    async fn ping(
        &self,
        _request: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }

    async fn get_server_info(
        &self,
        _request: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::GetServerInfoResponse>, Status> {
        Ok(Response::new(self.info.clone()))
    }
}
