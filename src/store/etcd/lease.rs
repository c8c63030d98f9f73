//! The maintenance lease: the instances sharing a store take turns at
//! background work through one etcd key attached to a lease of the holder,
//! so that exactly one of them does it, and another takes over within
//! seconds when the holder dies.

use std::sync::Arc;
use std::time::Duration;

use super::client::{Auth, AuthChannel};
use super::etcdserverpb as pb;
use super::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use super::etcdserverpb::kv_client::KvClient;
use super::etcdserverpb::lease_client::LeaseClient;
use super::etcdserverpb::request_op::Request;

/// The key whose holder runs maintenance (under the empty account's
/// server-wide entries of `meta`).
pub(super) const MAINTENANCE_KEY: &[u8] = b"\0maintenance";
/// Seconds the maintenance lease lives without a keep-alive: how long the
/// other instances wait after its holder dies.
const MAINTENANCE_TTL: i64 = 6;

/// Competes for the maintenance key, attached to a lease of this process:
/// created only if absent, kept alive while held, competed for again when
/// the lease is lost (its holder died, or etcd could not be reached).
pub(super) async fn hold_maintenance(
    mut kv: KvClient<AuthChannel>,
    mut leases: LeaseClient<AuthChannel>,
    key: Vec<u8>,
    holding: Arc<std::sync::atomic::AtomicBool>,
    current: Arc<std::sync::atomic::AtomicI64>,
    auth: Arc<Auth>,
) {
    use std::sync::atomic::Ordering;
    let every = Duration::from_secs((MAINTENANCE_TTL as u64 / 3).max(1));
    loop {
        holding.store(false, Ordering::SeqCst);
        let lease = match leases
            .lease_grant(pb::LeaseGrantRequest {
                ttl: MAINTENANCE_TTL,
                id: 0,
            })
            .await
        {
            Ok(granted) => {
                let lease = granted.into_inner().id;
                current.store(lease, Ordering::SeqCst);
                lease
            }
            Err(status) => {
                auth.renewed(&status).await;
                tokio::time::sleep(every).await;
                continue;
            }
        };
        if !claim_maintenance(&mut kv, &mut leases, &key, lease, every).await {
            continue;
        }
        // Held: keep the lease alive; losing it ends the hold. (etcd answers
        // the call only once its first request is in.)
        let (requests, stream) = tokio::sync::mpsc::channel(1);
        if requests
            .send(pb::LeaseKeepAliveRequest { id: lease })
            .await
            .is_err()
        {
            continue;
        }
        let Ok(response) = leases
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await
        else {
            tokio::time::sleep(every).await;
            continue;
        };
        let mut answers = response.into_inner();
        let mut first = true;
        loop {
            let sent = first
                || requests
                    .send(pb::LeaseKeepAliveRequest { id: lease })
                    .await
                    .is_ok();
            first = false;
            if !sent {
                break;
            }
            match answers.message().await {
                Ok(Some(answer)) if answer.ttl > 0 => {
                    let ours = kv
                        .range(pb::RangeRequest {
                            key: key.clone(),
                            ..Default::default()
                        })
                        .await
                        .map(|r| {
                            r.into_inner()
                                .kvs
                                .first()
                                .is_some_and(|kv| kv.lease == lease)
                        })
                        .unwrap_or(false);
                    holding.store(ours, Ordering::SeqCst);
                    if !ours {
                        break;
                    }
                }
                _ => break,
            }
            tokio::time::sleep(every).await;
        }
        holding.store(false, Ordering::SeqCst);
        tokio::time::sleep(every).await;
    }
}

/// Tries to create the maintenance key under `lease` every `every` until it
/// is ours (true) or the lease is lost (false).
async fn claim_maintenance(
    kv: &mut KvClient<AuthChannel>,
    leases: &mut LeaseClient<AuthChannel>,
    key: &[u8],
    lease: i64,
    every: Duration,
) -> bool {
    loop {
        let claim = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.to_vec(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                range_end: Vec::new(),
            }],
            success: vec![pb::RequestOp {
                request: Some(Request::RequestPut(pb::PutRequest {
                    key: key.to_vec(),
                    value: lease.to_string().into_bytes(),
                    lease,
                    ..Default::default()
                })),
            }],
            failure: Vec::new(),
        };
        if matches!(kv.txn(claim).await, Ok(r) if r.get_ref().succeeded) {
            return true;
        }
        // Keep the unused lease alive meanwhile, or start over.
        let (requests, stream) = tokio::sync::mpsc::channel(1);
        let _ = requests.send(pb::LeaseKeepAliveRequest { id: lease }).await;
        drop(requests);
        let alive = match leases
            .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await
        {
            Ok(response) => matches!(
                response.into_inner().message().await,
                Ok(Some(answer)) if answer.ttl > 0
            ),
            Err(_) => false,
        };
        if !alive {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}
