//! Key material for keys stored before keys had it: given at start-up, one
//! key per transaction (bounded, and safe when several instances start at
//! once: a key that got material meanwhile is left as it is).

use std::sync::Arc;

use crate::crypto::MaterialCache;
use crate::domain::ops::{self, Ctx, Limits};
use crate::domain::policy::Caller;
use crate::domain::{Error, KeySpec, Millis, Scope};
use crate::store::Store;

/// How many keys one pass reads at a time.
const BATCH: usize = 256;

/// Gives every key without material (but SM2 keys, which have none) its
/// first material; returns how many keys got it.
pub async fn give_missing_material(
    store: &Arc<Store>,
    materials: &Arc<MaterialCache>,
    scope: &Scope,
    limits: Limits,
    now: Millis,
) -> Result<usize, Error> {
    let mut given = 0;
    let mut after = None;
    loop {
        let (keys, last) = store
            .all_keys(after, BATCH, |key| {
                key.materials.is_empty() && key.key_spec != KeySpec::SM2
            })
            .await?;
        for (account, key) in keys {
            let cache = materials.clone();
            let (id, spec, owner) = (key.key_id.clone(), key.key_spec, account.clone());
            // RSA keys take a while to make: off the async threads.
            let material =
                tokio::task::spawn_blocking(move || cache.new_material(&owner, &id, spec))
                    .await
                    .map_err(|e| Error::internal(format!("material task failed: {e}")))??;
            let Some(material) = material else { continue };
            let ctx = Ctx {
                scope: Scope {
                    account: account.clone(),
                    ..scope.clone()
                },
                now,
                limits,
                caller: Caller::Anonymous,
            };
            let id = key.key_id.clone();
            let done = store
                .write(&account, None, None, now, move |txn| {
                    ops::give_first_material(txn, &ctx, &id, &material)
                })
                .await?;
            if done {
                given += 1;
            }
        }
        match last {
            Some(last) => after = Some(last),
            None => return Ok(given),
        }
    }
}
