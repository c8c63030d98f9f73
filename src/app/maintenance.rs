//! Background work: removing keys whose deletion time has passed (with their
//! aliases, in one transaction each), rotating keys whose automatic
//! rotation is due (one transaction each), and pruning the change log, old
//! request_id records and audit records past their retention (in bounded
//! transactions). Each tick runs only while
//! the backend grants this process the maintenance lease, so that processes
//! sharing a store do not all do the same work.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::audit::AuditEntry;
use crate::domain::ops::{self, Ctx, Limits};
use crate::domain::{Clock, Error, Reason, Scope};
use crate::store::Store;

/// How often the change log and request_id records are pruned.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(10);
/// How often a process that shares its store (etcd) looks whether it has
/// gained the maintenance lease.
const LEASE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub struct Maintenance {
    pub store: Arc<Store>,
    pub scope: Scope,
    pub clock: Arc<dyn Clock>,
    pub limits: Limits,
    pub change_log_retention: u64,
    pub request_id_ttl: Duration,
    /// How long audit records are kept (None: for ever).
    pub audit_retention: Option<Duration>,
    /// Counts the sweeps for due keys done (whatever they removed), so that
    /// a test can wait for one to have run rather than for a while.
    pub sweeps: tokio::sync::watch::Sender<u64>,
    /// Makes the material of due rotations.
    pub materials: Arc<crate::crypto::MaterialCache>,
    /// How often the backend's history (etcd's) is compacted; None: never.
    pub compaction_interval: Option<Duration>,
}

impl Maintenance {
    /// Removes every key due for removal; returns how many keys went.
    pub async fn reap_due_keys(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let due = self.store.keys_due(now).await?;
        let mut removed = 0;
        for (account, key_id) in due {
            let ctx = self.system_ctx(&account, now);
            let id = key_id.clone();
            let outcome = self
                .store
                .write(
                    &account,
                    None,
                    Some(system_audit(
                        &account,
                        &key_id,
                        now,
                        "aliasd:RemoveKeyPastDeletionTime",
                    )),
                    now,
                    move |txn| ops::remove_due_key(txn, &ctx, &id),
                )
                .await;
            match outcome {
                Ok(aliases) => {
                    removed += 1;
                    tracing::info!(%account, %key_id, aliases, "removed key whose deletion time passed");
                }
                // Cancelled or removed meanwhile: nothing to do.
                Err(e) if matches!(e.reason, Reason::KEY_NOT_FOUND | Reason::KEY_INVALID_STATE) => {
                }
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Rotates every key whose automatic rotation is due; returns how many
    /// rotated.
    pub async fn rotate_due_keys(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let due = self.store.rotations_due(now).await?;
        let mut rotated = 0;
        for (account, key_id) in due {
            let Some(material) = self.materials.new_material(
                &account,
                &key_id,
                crate::domain::KeySpec::SYMMETRIC_DEFAULT,
            )?
            else {
                continue;
            };
            let ctx = self.system_ctx(&account, now);
            let id = key_id.clone();
            let audit = system_audit(&account, &key_id, now, "aliasd:RotateKeyAutomatically");
            let done = self
                .store
                .write(&account, None, Some(audit), now, move |txn| {
                    ops::rotate_due_key(txn, &ctx, &id, &material)
                })
                .await?;
            if done {
                rotated += 1;
                tracing::info!(%account, %key_id, "rotated key whose automatic rotation was due");
            }
        }
        Ok(rotated)
    }

    /// The context of maintenance's own changes in `account`.
    fn system_ctx(&self, account: &str, now: crate::domain::Millis) -> Ctx {
        Ctx {
            scope: Scope {
                account: account.to_owned(),
                ..self.scope.clone()
            },
            now,
            limits: self.limits,
            caller: crate::domain::policy::Caller::Anonymous,
        }
    }

    /// Prunes the change log, expired request_id records and audit records
    /// past their retention; returns how many of each went.
    pub async fn prune(&self) -> Result<(u64, u64, u64), Error> {
        let retention = self.change_log_retention;
        let now = self.clock.now();
        let before = now - self.request_id_ttl.as_millis() as i64;
        let audit_before = self
            .audit_retention
            .map(|kept| now.saturating_sub(kept.as_millis() as i64));
        self.store.prune(retention, before, audit_before).await
    }

    /// Runs both jobs until `shutdown` turns true. They run only while this
    /// process holds the store's maintenance lease (always, on sled), and
    /// both run at once when it gains the lease (an instance taking over
    /// from one that stopped does not wait for its next tick).
    pub async fn run(
        self,
        reap_interval: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut reap = tokio::time::interval(reap_interval);
        let mut prune = tokio::time::interval(PRUNE_INTERVAL);
        let mut lease = tokio::time::interval(LEASE_CHECK_INTERVAL);
        // Without an interval its branch below is off (the period then
        // does not matter).
        let mut compact = tokio::time::interval(self.compaction_interval.unwrap_or(PRUNE_INTERVAL));
        for timer in [&mut reap, &mut prune, &mut lease, &mut compact] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut held = self.store.may_run_maintenance();
        loop {
            tokio::select! {
                _ = reap.tick() => {
                    // Another process holds the lease: the work is its.
                    if self.store.may_run_maintenance() {
                        self.reap_logged().await;
                    }
                }
                _ = prune.tick() => {
                    if self.store.may_run_maintenance() {
                        self.prune_logged().await;
                    }
                }
                _ = compact.tick(), if self.compaction_interval.is_some() => {
                    if self.store.may_run_maintenance() {
                        match self.store.compact_history().await {
                            Ok(Some(revision)) => {
                                tracing::debug!(revision, "compacted the store's history");
                            }
                            Ok(None) => {}
                            Err(error) if error.reason == Reason::STORE_FAILED => {}
                            Err(error) => tracing::warn!(%error, "compacting the store's history failed"),
                        }
                    }
                }
                _ = lease.tick() => {
                    let holds = self.store.may_run_maintenance();
                    if holds && !held {
                        self.reap_logged().await;
                        self.prune_logged().await;
                    }
                    held = holds;
                }
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn reap_logged(&self) {
        match self.reap_due_keys().await {
            // The store logged its failure once; no line per tick.
            Err(error) if error.reason == Reason::STORE_FAILED => {}
            Err(error) => tracing::error!(%error, "removing keys due for deletion failed"),
            Ok(_) => {}
        }
        match self.rotate_due_keys().await {
            Err(error) if error.reason == Reason::STORE_FAILED => {}
            Err(error) => tracing::error!(%error, "rotating keys due for rotation failed"),
            Ok(_) => {}
        }
        self.sweeps.send_modify(|sweeps| *sweeps += 1);
    }

    async fn prune_logged(&self) {
        match self.prune().await {
            Ok((changes, requests, audit)) if changes + requests + audit > 0 => {
                tracing::debug!(
                    changes,
                    requests,
                    audit,
                    "pruned change log, request_ids and audit records"
                );
            }
            Ok(_) => {}
            Err(error) if error.reason == Reason::STORE_FAILED => {}
            Err(error) => tracing::error!(%error, "pruning failed"),
        }
    }
}

/// The audit record of maintenance's change to a key (`action`: a key
/// removed because its deletion time passed, or rotated on schedule).
fn system_audit(
    account: &str,
    key_id: &crate::domain::KeyId,
    now: crate::domain::Millis,
    action: &str,
) -> AuditEntry {
    AuditEntry {
        time: now,
        principal: "aliasd".into(),
        account: account.to_owned(),
        action: action.into(),
        resources: vec![key_id.to_string()],
        outcome: AuditEntry::OK.into(),
        ..AuditEntry::default()
    }
}
