//! The seed file (`--seed`, JSON or TOML): keys and aliases created at
//! start-up, idempotently. PROVIDER keys and reserved aliases come only from
//! here. A key or alias that already exists is left as it is, so a rerun
//! with the same file changes nothing.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::domain::key::check_description;
use crate::domain::ops::{self, Ctx, Limits};
use crate::domain::{
    AliasName, Error, Key, KeyId, KeyManager, KeySpec, KeyState, KeyUsage, Millis, Reason, Scope,
};
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedFile {
    #[serde(default)]
    pub keys: Vec<SeedKey>,
    #[serde(default)]
    pub aliases: Vec<SeedAlias>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedKey {
    pub key_id: String,
    #[serde(default)]
    pub description: String,
    pub key_spec: Option<String>,
    pub key_usage: Option<String>,
    /// CUSTOMER (default) or PROVIDER.
    pub key_manager: Option<String>,
    /// ENABLED (default) or DISABLED.
    pub key_state: Option<String>,
    /// Defaults to the server's --account.
    pub account: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAlias {
    pub alias_name: String,
    pub target_key_id: String,
    pub account: Option<String>,
}

/// How much a seed run created.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedOutcome {
    pub keys_created: usize,
    pub aliases_created: usize,
}

fn seed_error(message: String) -> Error {
    Error::new(Reason::INTERNAL, message)
}

pub fn parse(path: &Path) -> Result<SeedFile, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| seed_error(format!("cannot read seed file {}: {e}", path.display())))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text)
            .map_err(|e| seed_error(format!("seed file {}: {e}", path.display())))
    } else {
        toml::from_str(&text).map_err(|e| seed_error(format!("seed file {}: {e}", path.display())))
    }
}

fn named<T>(
    what: &str,
    value: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    default: T,
) -> Result<T, Error> {
    match value {
        None => Ok(default),
        Some(name) => {
            parse(name).ok_or_else(|| seed_error(format!("seed: unknown {what} {name:?}")))
        }
    }
}

impl SeedKey {
    fn to_key(&self, now: Millis) -> Result<Key, Error> {
        let key_id = KeyId::parse("key_id", &self.key_id)
            .map_err(|e| seed_error(format!("seed key {:?}: {}", self.key_id, e.message)))?;
        check_description(&self.description)
            .map_err(|e| seed_error(format!("seed key {key_id}: {}", e.message)))?;
        let spec = self
            .key_spec
            .as_deref()
            .map(|s| {
                KeySpec::from_name(s)
                    .ok_or_else(|| seed_error(format!("seed: unknown key_spec {s:?}")))
            })
            .transpose()?;
        let usage = self
            .key_usage
            .as_deref()
            .map(|u| {
                KeyUsage::from_name(u)
                    .ok_or_else(|| seed_error(format!("seed: unknown key_usage {u:?}")))
            })
            .transpose()?;
        let (key_spec, key_usage) = KeySpec::resolve_pair(spec, usage)
            .map_err(|e| seed_error(format!("seed key {key_id}: {}", e.message)))?;
        let key_state = named(
            "key_state",
            self.key_state.as_deref(),
            KeyState::from_name,
            KeyState::ENABLED,
        )?;
        if key_state == KeyState::PENDING_DELETION {
            return Err(seed_error(format!(
                "seed key {key_id}: key_state must be ENABLED or DISABLED"
            )));
        }
        Ok(Key {
            key_id,
            description: self.description.clone(),
            key_spec,
            key_usage,
            key_state,
            key_manager: named(
                "key_manager",
                self.key_manager.as_deref(),
                KeyManager::from_name,
                KeyManager::CUSTOMER,
            )?,
            creation_time: now,
            deletion_time: None,
            pending_window_in_days: 0,
        })
    }
}

/// Applies a seed file: creates what is missing, one transaction per record.
pub async fn apply(
    store: &Arc<Store>,
    seed: &SeedFile,
    scope: &Scope,
    limits: Limits,
    now: Millis,
) -> Result<SeedOutcome, Error> {
    let mut outcome = SeedOutcome::default();
    let scope_for = |account: &Option<String>| Scope {
        account: account.clone().unwrap_or_else(|| scope.account.clone()),
        ..scope.clone()
    };
    for seed_key in &seed.keys {
        let key = seed_key.to_key(now)?;
        let scope = scope_for(&seed_key.account);
        let created = store
            .write(&scope.account, None, None, now, move |txn| {
                ops::seed_key(txn, &key)
            })
            .await?;
        outcome.keys_created += usize::from(created);
    }
    for seed_alias in &seed.aliases {
        let scope = scope_for(&seed_alias.account);
        let name = AliasName::parse("alias_name", &seed_alias.alias_name)
            .map_err(|e| seed_error(format!("seed alias: {}", e.message)))?;
        let target = KeyId::parse("target_key_id", &seed_alias.target_key_id)
            .map_err(|e| seed_error(format!("seed alias {name}: {}", e.message)))?;
        let ctx = Ctx {
            scope: scope.clone(),
            now,
            limits,
            caller: crate::domain::policy::Caller::Anonymous,
        };
        let created = store
            .write(&scope.account, None, None, now, move |txn| {
                ops::seed_alias(txn, &ctx, &name, &target)
            })
            .await
            .map_err(|e| {
                seed_error(format!(
                    "seed alias {}: {}",
                    seed_alias.alias_name, e.message
                ))
            })?;
        outcome.aliases_created += usize::from(created);
    }
    Ok(outcome)
}
