//! AdminService: backups, streamed from the application's spooled snapshot.

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::{status, Door};
use crate::app::App;
use crate::domain::Error;
use crate::pb::{self, admin_service_server::AdminService};

/// Bytes per streamed chunk.
const CHUNK: usize = 1 << 20;

pub struct AdminApi(Door);

impl AdminApi {
    pub fn new(app: Arc<App>) -> Self {
        AdminApi(Door { app })
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::BackupResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AdminService for AdminApi {
    type BackupStream = ChunkStream;

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        let call = self.0.call(&request)?;
        let (mut file, summary) = self.0.app.backup(&call).await?;
        tracing::info!(
            entries = summary.entries,
            bytes = summary.bytes,
            sha256 = %summary.sha256,
            "backup taken"
        );
        // A reader thread feeds the stream; a client that goes away closes
        // the channel, which ends the thread (and the spool file with it).
        let (chunks, stream) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || loop {
            let mut chunk = vec![0u8; CHUNK];
            let item = match file.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(pb::BackupResponse { chunk })
                }
                Err(e) => Err(status(Error::internal(format!("backup spool: {e}")))),
            };
            let failed = item.is_err();
            if chunks.blocking_send(item).is_err() || failed {
                return;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(stream),
        )))
    }
}
