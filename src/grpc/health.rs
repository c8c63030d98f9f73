//! grpc.health.v1.Health, as tonic-health serves it, except that Watch
//! streams end when shutdown starts (after delivering NOT_SERVING), so a
//! probe's open Watch does not hold the drain for its whole timeout.

use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::Health;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthService;

use crate::domain::{Error, Reason};

/// How long a Watch stream waits for the NOT_SERVING update once shutdown
/// has started, before it ends.
const LAST_UPDATE_WAIT: Duration = Duration::from_millis(200);

pub struct ShutdownAwareHealth {
    inner: HealthService,
    shutdown: watch::Receiver<bool>,
}

impl ShutdownAwareHealth {
    pub fn new(inner: HealthService, shutdown: watch::Receiver<bool>) -> Self {
        ShutdownAwareHealth { inner, shutdown }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for ShutdownAwareHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let mut updates = self.inner.watch(request).await?.into_inner();
        let mut shutdown = self.shutdown.clone();
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    update = updates.next() => match update {
                        Some(update) => if sender.send(update).await.is_err() { return },
                        None => return,
                    },
                    // Also taken when shutdown began before this watch did.
                    _ = async { drop(shutdown.wait_for(|stopping| *stopping).await) } => {
                        if let Ok(Some(update)) = tokio::time::timeout(LAST_UPDATE_WAIT, updates.next()).await {
                            let _ = sender.send(update).await;
                        }
                        let ending = Error::new(Reason::SHUTTING_DOWN, "The server is shutting down.");
                        let _ = sender.send(Err(crate::grpc::status(ending))).await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }
}
