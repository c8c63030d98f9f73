//! The seed file (`--seed`, JSON or TOML): keys and aliases created at
//! start-up, idempotently. PROVIDER keys and reserved aliases come only from
//! here. A key or alias that already exists is left as it is (a warning names
//! what differs), so a rerun with the same file changes nothing.
//!
//! The whole file is checked before anything is written, then applied in one
//! transaction: a file with a mistake anywhere changes nothing, and once
//! corrected it applies as if the mistake had never been made.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::domain::key::check_description;
use crate::domain::names::is_arn_segment;
use crate::domain::names::{is_lowercase_uuid, quoted};
use crate::domain::ops::{self, Ctx, Limits, Txn};
use crate::domain::policy::Caller;
use crate::domain::{
    AliasName, Error, Key, KeyId, KeyManager, KeySpec, KeyState, KeyUsage, Millis, Reason, Scope,
};
use crate::store::txn::{AccountTxn, Fail};
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
    /// As the API prints it (`KEY_SPEC_RSA_2048`) or without the prefix.
    pub key_spec: Option<String>,
    /// As the API prints it (`KEY_USAGE_SIGN_VERIFY`) or without the prefix.
    pub key_usage: Option<String>,
    /// CUSTOMER (default) or PROVIDER; the `KEY_MANAGER_` prefix is optional.
    pub key_manager: Option<String>,
    /// ENABLED (default) or DISABLED; the `KEY_STATE_` prefix is optional.
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

/// How a seed run went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SeedOutcome {
    pub keys_created: usize,
    pub aliases_created: usize,
    /// Fields of records that already existed with other values than the
    /// file's; the stored values were kept.
    pub differences: Vec<Difference>,
}

/// One field of a stored key or alias that differs from the seed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub account: String,
    /// `key <key_id>` or `alias <alias_name>`.
    pub record: String,
    pub field: &'static str,
    pub stored: String,
    pub file: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is {} (the file says {})",
            self.field,
            quoted(&self.stored),
            quoted(&self.file)
        )
    }
}

/// Start-up stops on a bad seed file; the server prefixes "seed: ".
fn seed_error(message: String) -> Error {
    Error::new(Reason::INTERNAL, message)
}

pub fn parse(path: &Path) -> Result<SeedFile, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| seed_error(format!("cannot read {}: {e}", path.display())))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if is_json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        toml::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| seed_error(format!("{}: {e}", path.display())))
}

/// An optional enum field as the seed file spells it: `RSA_2048`, or
/// `KEY_SPEC_RSA_2048` as the API prints it. `Ok(None)` when absent; a bad
/// name is noted in `problems`.
fn enum_field<T: Copy>(
    problems: &mut Vec<String>,
    field: &str,
    api_prefix: &str,
    value: Option<&str>,
    all: &[T],
    name: fn(T) -> &'static str,
) -> Result<Option<T>, ()> {
    let Some(value) = value else {
        return Ok(None);
    };
    let bare = value.strip_prefix(api_prefix).unwrap_or(value);
    match all.iter().copied().find(|v| name(*v) == bare) {
        Some(v) => Ok(Some(v)),
        None => {
            let names: Vec<&str> = all.iter().map(|v| name(*v)).collect();
            problems.push(format!(
                "unknown {field} {} (expected one of {}, with or without the {api_prefix} prefix)",
                quoted(value),
                names.join(", ")
            ));
            Err(())
        }
    }
}

fn not_a_uuid(field: &str, value: &str) -> String {
    format!(
        "{field} {} is not a lowercase UUID (such as 1234abcd-12ab-34cd-56ef-1234567890ab)",
        quoted(value)
    )
}

/// The entry's account (the server's by default), if ARNs can carry it.
fn account_of(entry: &Option<String>, scope: &Scope) -> Result<String, String> {
    let account = entry.clone().unwrap_or_else(|| scope.account.clone());
    if is_arn_segment(&account) {
        Ok(account)
    } else {
        Err(format!(
            "account {} must be 1..64 characters of A-Z a-z 0-9 -",
            quoted(&account)
        ))
    }
}

impl SeedKey {
    /// The key this entry describes, or every problem with it.
    fn to_key(&self, now: Millis) -> Result<Key, Vec<String>> {
        let mut problems = Vec::new();
        if !is_lowercase_uuid(&self.key_id) {
            problems.push(not_a_uuid("key_id", &self.key_id));
        }
        if let Err(e) = check_description(&self.description) {
            problems.push(e.message);
        }
        let p = &mut problems;
        let spec = enum_field(
            p,
            "key_spec",
            "KEY_SPEC_",
            self.key_spec.as_deref(),
            KeySpec::ALL,
            KeySpec::as_str,
        );
        let usage = enum_field(
            p,
            "key_usage",
            "KEY_USAGE_",
            self.key_usage.as_deref(),
            KeyUsage::ALL,
            KeyUsage::as_str,
        );
        let manager = enum_field(
            p,
            "key_manager",
            "KEY_MANAGER_",
            self.key_manager.as_deref(),
            KeyManager::ALL,
            KeyManager::as_str,
        );
        let state = enum_field(
            p,
            "key_state",
            "KEY_STATE_",
            self.key_state.as_deref(),
            KeyState::ALL,
            KeyState::as_str,
        );
        if state == Ok(Some(KeyState::PENDING_DELETION)) {
            problems.push("key_state must be ENABLED or DISABLED".into());
        }
        // Only when both parsed: otherwise this would repeat their problem.
        let pair = match (spec, usage) {
            (Ok(spec), Ok(usage)) => {
                KeySpec::resolve_pair(spec, usage).map_err(|e| problems.push(e.message))
            }
            _ => Err(()),
        };
        match (pair, manager, state) {
            (Ok((key_spec, key_usage)), Ok(manager), Ok(state)) if problems.is_empty() => Ok(Key {
                key_id: KeyId::from_trusted(self.key_id.clone()),
                description: self.description.clone(),
                key_spec,
                key_usage,
                key_state: state.unwrap_or(KeyState::ENABLED),
                key_manager: manager.unwrap_or(KeyManager::CUSTOMER),
                creation_time: now,
                deletion_time: None,
                pending_window_in_days: 0,
                // Given at start-up, with every other key that lacks it.
                materials: Vec::new(),
                rotation: None,
                tags: Default::default(),
                policy: None,
            }),
            _ => Err(problems),
        }
    }
}

/// A key of the file, checked.
struct PlannedKey {
    /// Index into [`Plan::accounts`].
    account: usize,
    key: Key,
}

/// An alias of the file, checked as far as the file alone allows.
struct PlannedAlias {
    account: usize,
    /// 1-based position in the file, for messages.
    number: usize,
    name: AliasName,
    target: KeyId,
}

/// The whole file, checked: what one transaction will apply.
#[derive(Default)]
struct Plan {
    accounts: Vec<String>,
    keys: Vec<PlannedKey>,
    aliases: Vec<PlannedAlias>,
}

impl Plan {
    fn account_index(&mut self, account: &str) -> usize {
        match self.accounts.iter().position(|a| a == account) {
            Some(index) => index,
            None => {
                self.accounts.push(account.to_owned());
                self.accounts.len() - 1
            }
        }
    }
}

/// Checks every entry of the file: its fields, duplicates, and the
/// references between aliases and the file's keys. Reports every problem at
/// once, numbered, so that one round of corrections is enough.
fn check_file(seed: &SeedFile, scope: &Scope, now: Millis) -> Result<Plan, Error> {
    let mut problems = Vec::new();
    let mut plan = Plan::default();

    // (account, key_id) -> (number, key manager) of the file's keys.
    let mut file_keys: HashMap<(String, String), (usize, KeyManager)> = HashMap::new();
    for (index, entry) in seed.keys.iter().enumerate() {
        let number = index + 1;
        let label = if is_lowercase_uuid(&entry.key_id) {
            format!("key #{number} {}", entry.key_id)
        } else {
            format!("key #{number}")
        };
        let (account, key) = match (account_of(&entry.account, scope), entry.to_key(now)) {
            (Ok(account), Ok(key)) => (account, key),
            (account, key) => {
                let found = account
                    .err()
                    .into_iter()
                    .chain(key.err().into_iter().flatten());
                problems.extend(found.map(|problem| format!("{label}: {problem}")));
                continue;
            }
        };
        let id = (account.clone(), entry.key_id.clone());
        if let Some((first, _)) = file_keys.get(&id) {
            problems.push(format!(
                "{label}: key #{first} has the same key_id in the same account"
            ));
            continue;
        }
        file_keys.insert(id, (number, key.key_manager));
        let account = plan.account_index(&account);
        plan.keys.push(PlannedKey { account, key });
    }

    let mut file_aliases: HashMap<(String, String), usize> = HashMap::new();
    for (index, entry) in seed.aliases.iter().enumerate() {
        let number = index + 1;
        let before = problems.len();
        let name = AliasName::parse("alias_name", &entry.alias_name);
        let label = match &name {
            Ok(name) => format!("alias #{number} {name}"),
            Err(e) => {
                problems.push(format!("alias #{number}: {}", e.message));
                format!("alias #{number}")
            }
        };
        let account = account_of(&entry.account, scope)
            .map_err(|problem| problems.push(format!("{label}: {problem}")));
        if !is_lowercase_uuid(&entry.target_key_id) {
            problems.push(format!(
                "{label}: {}",
                not_a_uuid("target_key_id", &entry.target_key_id)
            ));
        }
        let (Ok(name), Ok(account)) = (name, account) else {
            continue;
        };
        let id = (account.clone(), name.as_str().to_owned());
        if let Some(first) = file_aliases.get(&id) {
            problems.push(format!(
                "{label}: alias #{first} has the same name in the same account"
            ));
        } else {
            file_aliases.insert(id, number);
        }
        // A target among the file's keys is checked here; any other must be
        // stored already, which the transaction checks.
        let target = (account.clone(), entry.target_key_id.clone());
        if let Some((key_number, manager)) = file_keys.get(&target) {
            let reserved = name.is_reserved();
            if reserved != (*manager == KeyManager::PROVIDER) {
                let rule = if reserved {
                    "a reserved name (alias/aws/..., .../default) must target a PROVIDER key"
                } else {
                    "a name that is not reserved must target a CUSTOMER key"
                };
                problems.push(format!(
                    "{label}: {rule}, and key #{key_number} is {}",
                    manager.as_str()
                ));
            }
        }
        if problems.len() > before {
            continue;
        }
        let account = plan.account_index(&account);
        plan.aliases.push(PlannedAlias {
            account,
            number,
            name,
            target: KeyId::from_trusted(entry.target_key_id.clone()),
        });
    }

    match problems.len() {
        0 => Ok(plan),
        1 => Err(seed_error(format!("nothing applied: {}", problems[0]))),
        n => {
            let numbered: Vec<String> = problems
                .iter()
                .enumerate()
                .map(|(i, problem)| format!("({}) {}", i + 1, problem.trim_end_matches('.')))
                .collect();
            Err(seed_error(format!(
                "{n} problems, nothing applied: {}",
                numbered.join("; ")
            )))
        }
    }
}

/// What differs between a stored key and the file's.
fn key_differences(account: &str, stored: &Key, file: &Key) -> Vec<Difference> {
    let fields: [(&'static str, String, String); 5] = [
        (
            "description",
            stored.description.clone(),
            file.description.clone(),
        ),
        (
            "key_spec",
            stored.key_spec.as_str().into(),
            file.key_spec.as_str().into(),
        ),
        (
            "key_usage",
            stored.key_usage.as_str().into(),
            file.key_usage.as_str().into(),
        ),
        (
            "key_manager",
            stored.key_manager.as_str().into(),
            file.key_manager.as_str().into(),
        ),
        (
            "key_state",
            stored.key_state.as_str().into(),
            file.key_state.as_str().into(),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, stored_value, file_value)| stored_value != file_value)
        .map(|(field, stored_value, file_value)| Difference {
            account: account.to_owned(),
            record: format!("key {}", file.key_id),
            field,
            stored: stored_value,
            file: file_value,
        })
        .collect()
}

/// Applies the plan inside one transaction: creates what is missing, and
/// notes what exists with other values.
fn apply_plan(
    txns: &[AccountTxn],
    plan: &Plan,
    scope: &Scope,
    limits: Limits,
    now: Millis,
) -> Result<SeedOutcome, Fail> {
    let mut outcome = SeedOutcome::default();
    for planned in &plan.keys {
        let txn = &txns[planned.account];
        let account = &plan.accounts[planned.account];
        match txn.key(&planned.key.key_id)? {
            Some(stored) => {
                let differences = key_differences(account, &stored, &planned.key);
                outcome.differences.extend(differences);
            }
            None => {
                ops::seed_key(txn, &planned.key)?;
                outcome.keys_created += 1;
            }
        }
    }
    for planned in &plan.aliases {
        let txn = &txns[planned.account];
        let account = &plan.accounts[planned.account];
        match txn.alias(&planned.name)? {
            Some(stored) if stored.target != planned.target => {
                outcome.differences.push(Difference {
                    account: account.clone(),
                    record: format!("alias {}", planned.name),
                    field: "target_key_id",
                    stored: stored.target.to_string(),
                    file: planned.target.to_string(),
                });
            }
            Some(_) => {}
            None => {
                let ctx = Ctx {
                    scope: Scope {
                        account: account.clone(),
                        ..scope.clone()
                    },
                    now,
                    limits,
                    caller: Caller::Anonymous,
                };
                ops::seed_alias(txn, &ctx, &planned.name, &planned.target).map_err(|fail| {
                    match fail {
                        Fail::Abort(e) => Fail::Abort(seed_error(format!(
                            "nothing applied: alias #{} {}: {}",
                            planned.number, planned.name, e.message
                        ))),
                        other => other,
                    }
                })?;
                outcome.aliases_created += 1;
            }
        }
    }
    Ok(outcome)
}

/// Applies a seed file: checks all of it, then creates what is missing in
/// one transaction. A stored key or alias that differs from the file is left
/// as it is, logged at WARN, and listed in [`SeedOutcome::differences`].
pub async fn apply(
    store: &Arc<Store>,
    seed: &SeedFile,
    scope: &Scope,
    limits: Limits,
    now: Millis,
) -> Result<SeedOutcome, Error> {
    let plan = Arc::new(check_file(seed, scope, now)?);
    let accounts = plan.accounts.clone();
    let in_txn = {
        let (plan, scope) = (plan.clone(), scope.clone());
        move |txns: &[AccountTxn]| apply_plan(txns, &plan, &scope, limits, now)
    };
    let outcome = store.write_accounts(accounts, in_txn).await?;
    let mut by_record: Vec<(&str, &str, Vec<String>)> = Vec::new();
    for difference in &outcome.differences {
        match by_record.last_mut() {
            Some((account, record, fields))
                if *account == difference.account && *record == difference.record =>
            {
                fields.push(difference.to_string())
            }
            _ => by_record.push((
                &difference.account,
                &difference.record,
                vec![difference.to_string()],
            )),
        }
    }
    for (account, record, fields) in by_record {
        tracing::warn!(
            account,
            record,
            differences = fields.join("; "),
            "the stored record differs from the seed file; it is left as it is"
        );
    }
    Ok(outcome)
}
