//! Durability and store failure: a server whose file sync fails (as on a
//! full disk) reports NOT_SERVING, refuses calls with UNAVAILABLE
//! (`STORE_FAILED`), answers the write it could not make durable with
//! UNKNOWN (`WRITE_OUTCOME_UNKNOWN`), and stops with exit code 3. The sync
//! is injected: the real file syncer, plus a switch that makes it fail.

use std::future::pending;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aliasd::domain::SystemClock;
use aliasd::pb;
use aliasd::server::{ServeError, SERVICE_NAMES};
use aliasd::store::sled::sync::{FileSyncer, Syncer};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_types::StatusExt;

use crate::common::{assert_error, config, uuid, TestServer};

/// The real syncer, failing with ENOSPC once `fail` is set.
struct SwitchableSyncer {
    real: FileSyncer,
    fail: Arc<AtomicBool>,
}

impl Syncer for SwitchableSyncer {
    fn sync(&mut self) -> std::io::Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.real.sync()
    }
}

/// Starts a server in `dir` whose syncs fail once the returned switch is set.
async fn start_switchable(dir: tempfile::TempDir) -> (TestServer, Arc<AtomicBool>) {
    start_switchable_with(dir, |_| {}).await
}

async fn start_switchable_with(
    dir: tempfile::TempDir,
    tweak: impl FnOnce(&mut aliasd::server::config::ServeConfig),
) -> (TestServer, Arc<AtomicBool>) {
    let fail = Arc::new(AtomicBool::new(false));
    let switch = fail.clone();
    let mut config = config(&dir);
    tweak(&mut config);
    let backend = aliasd::store::sled::SledBackend::open(
        &config.store.data_dir,
        Box::new(move |path| {
            let real = FileSyncer::open(path)?;
            Ok(Box::new(SwitchableSyncer { real, fail }) as Box<dyn Syncer>)
        }),
    )
    .expect("the store opens");
    let running =
        aliasd::server::start_on(config, Arc::new(SystemClock), pending(), Arc::new(backend))
            .await
            .expect("server starts");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", running.addr))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    let server = TestServer {
        keys: pb::key_service_client::KeyServiceClient::new(channel.clone()),
        aliases: pb::alias_service_client::AliasServiceClient::new(channel.clone()),
        channel,
        running: Some(running),
        dir,
    };
    (server, switch)
}

fn may_have_committed(status: &tonic::Status) -> String {
    status.get_details_error_info().unwrap().metadata["may_have_committed"].clone()
}

/// Fails the store through a CreateAlias whose sync fails; returns its status.
async fn fail_the_store(server: &TestServer, switch: &AtomicBool, key_id: &str) -> tonic::Status {
    switch.store(true, Ordering::SeqCst);
    let result = server.create_alias("alias/unsynced", key_id).await;
    assert_error(result, Code::Unknown, "WRITE_OUTCOME_UNKNOWN")
}

async fn health_of(
    health: &mut HealthClient<tonic::transport::Channel>,
    service: &str,
) -> ServingStatus {
    health
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status()
}

#[tokio::test]
async fn health_turns_not_serving_overall_and_per_service_once_a_sync_fails() {
    let (server, switch) = start_switchable(tempfile::tempdir().unwrap()).await;
    let key = server.create_key().await;
    let mut health = HealthClient::new(server.channel.clone());
    let mut watch = health
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    fail_the_store(&server, &switch, &key.key_id).await;
    // Hang guard only: the update comes as soon as the store has failed.
    let update = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a health update");
    assert_eq!(update.unwrap().unwrap().status(), ServingStatus::NotServing);
    // The services turn NOT_SERVING before the overall status does.
    assert_eq!(health_of(&mut health, "").await, ServingStatus::NotServing);
    for service in SERVICE_NAMES {
        assert_eq!(
            health_of(&mut health, service).await,
            ServingStatus::NotServing,
            "{service}"
        );
    }
}

#[tokio::test]
async fn a_write_whose_sync_failed_is_answered_unknown_with_may_have_committed_true() {
    let (server, switch) = start_switchable(tempfile::tempdir().unwrap()).await;
    let key = server.create_key().await;
    let status = fail_the_store(&server, &switch, &key.key_id).await;
    assert_eq!(may_have_committed(&status), "true");
    assert!(status.message().contains("request_id"), "{status:?}");
    assert!(
        status.message().contains("No space left on device"),
        "{status:?}"
    );
}

#[tokio::test]
async fn after_a_failed_sync_calls_are_unavailable_store_failed_and_change_nothing() {
    let (mut server, switch) = start_switchable(tempfile::tempdir().unwrap()).await;
    let key = server.create_key().await;
    server
        .create_alias("alias/before", &key.key_id)
        .await
        .unwrap();
    fail_the_store(&server, &switch, &key.key_id).await;

    let refused = server.create_alias("alias/refused", &key.key_id).await;
    let status = assert_error(refused, Code::Unavailable, "STORE_FAILED");
    assert_eq!(may_have_committed(&status), "false");
    assert!(status.message().contains("restart"), "{status:?}");
    let read = server.get_alias("alias/before").await;
    assert_error(read, Code::Unavailable, "STORE_FAILED");
    let created = server
        .keys
        .create_key(pb::CreateKeyRequest::default())
        .await;
    assert_error(created, Code::Unavailable, "STORE_FAILED");

    // The stop reports the failure; the refused calls left nothing behind.
    let stopped = server.running.take().unwrap().stop().await;
    assert!(
        matches!(stopped, Err(ServeError::StoreFailed(_))),
        "{stopped:?}"
    );
    let restarted = TestServer::start_in(server.dir, |_| {}, Arc::new(SystemClock)).await;
    assert!(restarted.get_alias("alias/before").await.is_ok());
    assert_error(
        restarted.get_alias("alias/refused").await,
        Code::NotFound,
        "ALIAS_NOT_FOUND",
    );
    assert_eq!(restarted.list_keys().await.len(), 1, "no key was created");
    restarted.stop().await;
}

#[tokio::test]
async fn a_write_of_unknown_outcome_retried_with_its_request_id_after_a_restart_is_applied_once() {
    let (mut server, switch) = start_switchable(tempfile::tempdir().unwrap()).await;
    switch.store(true, Ordering::SeqCst);
    let request_id = uuid();
    let request = pb::CreateKeyRequest {
        description: "made once".into(),
        request_id: request_id.clone(),
        ..Default::default()
    };
    let first = server.keys.create_key(request.clone()).await;
    assert_error(first, Code::Unknown, "WRITE_OUTCOME_UNKNOWN");
    let _ = server.running.take().unwrap().stop().await;

    let restarted = TestServer::start_in(server.dir, |_| {}, Arc::new(SystemClock)).await;
    let retried = restarted.keys.clone().create_key(request.clone()).await;
    let key = retried
        .expect("the retry succeeds")
        .into_inner()
        .key
        .unwrap();
    let again = restarted.keys.clone().create_key(request).await.unwrap();
    assert_eq!(again.into_inner().key.unwrap().key_id, key.key_id);
    assert_eq!(restarted.list_keys().await.len(), 1, "exactly one key");
    restarted.stop().await;
}

#[tokio::test]
async fn the_stop_of_a_server_whose_store_failed_has_exit_code_3_and_a_clean_one_succeeds() {
    let (mut server, switch) = start_switchable(tempfile::tempdir().unwrap()).await;
    let key = server.create_key().await;
    fail_the_store(&server, &switch, &key.key_id).await;
    let error = server
        .running
        .take()
        .unwrap()
        .stop()
        .await
        .expect_err("the stop reports the store failure");
    assert_eq!(error.exit_code(), 3, "{error}");

    // A clean shutdown is Ok (exit 0); a server that cannot start is 1.
    let (server, _switch) = start_switchable(server.dir).await;
    let dir = server.stop().await;
    let mut bad = config(&dir);
    bad.account = "not an account".into();
    let refused = aliasd::server::start(bad, Arc::new(SystemClock), pending()).await;
    let error = refused.err().expect("an invalid configuration is refused");
    assert_eq!(error.exit_code(), 1, "{error}");
}

/// The probes of `--health-listen` after a store failure: liveness and
/// readiness 503 (only a restart mends it), gRPC health NOT_SERVING.
#[tokio::test]
async fn the_health_listener_reports_a_failed_store() {
    let dir = tempfile::tempdir().unwrap();
    let (server, switch) = start_switchable_with(dir, |c| {
        c.health_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let health = server.running.as_ref().unwrap().health_addr.unwrap();
    let probe = |path: &'static str| async move {
        let stream = tokio::net::TcpStream::connect(health).await.unwrap();
        crate::common::http_exchange(stream, "GET", path, &[], b"").await
    };
    assert_eq!(probe("/healthz").await.status, 200);
    assert_eq!(probe("/readyz").await.status, 200);
    let key = server.create_key().await;
    fail_the_store(&server, &switch, &key.key_id).await;
    let live = probe("/healthz").await;
    assert_eq!(live.status, 503);
    assert!(String::from_utf8_lossy(&live.body).contains("store failed"));
    assert_eq!(probe("/readyz").await.status, 503);
    let channel = tonic::transport::Channel::from_shared(format!("http://{health}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::NotServing);
}
