//! `aliasd check`: verifies the store's invariants from the records alone,
//! through any backend's reads (the conformance suite runs it after each
//! check); `check_dir` opens a sled directory without creating anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use super::backend::{scan_all, Entries, Reads, Tree};
use super::records::{self, AliasRecord, AliasSetRecord, ChangeRecord, KeyRecord, RequestRecord};
use super::{layout, txn, OpenError, Store};
use crate::crypto::RootKey;
use crate::domain::ops::Limits;
use crate::domain::{AliasName, Key, KeyState};

/// What `check` found.
#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub keys: usize,
    pub aliases: usize,
    pub changes: usize,
    pub requests: usize,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }

    /// `3 keys, 1 alias, 4 change-log entries`.
    pub fn summary(&self) -> String {
        use crate::domain::names::counted;
        format!(
            "{}, {}, {}",
            counted(self.keys as u64, "key", "keys"),
            counted(self.aliases as u64, "alias", "aliases"),
            counted(
                self.changes as u64,
                "change-log entry",
                "change-log entries"
            ),
        )
    }
}

/// Why a directory could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(
        "data directory {0} does not exist (check opens an existing store and creates nothing)"
    )]
    Missing(PathBuf),
    #[error("data directory {0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("data directory {0} is not an aliasd store: {1}")]
    NotAStore(PathBuf, &'static str),
    #[error("cannot read data directory {0}: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// The files sled keeps in every database directory.
const SLED_FILES: [&str; 2] = ["conf", "db"];
/// The tree that holds every aliasd store's page-token secret, written when
/// the store is first opened.
const META_TREE: &str = "meta";

/// Checks the store in `dir` without creating one: a missing directory, or
/// one that holds no aliasd store, is an error and is left as it was. Fails
/// with [`OpenError::InUse`] while a server runs on it.
pub fn check_dir(
    dir: &Path,
    limits: &Limits,
    root: Option<&RootKey>,
) -> Result<Report, CheckError> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(CheckError::NotADirectory(dir.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckError::Missing(dir.to_owned()))
        }
        Err(e) => return Err(CheckError::Unreadable(dir.to_owned(), e)),
    }
    // Before sled opens it: sled would turn any directory into a database.
    if !SLED_FILES.iter().all(|name| dir.join(name).is_file()) {
        return Err(CheckError::NotAStore(
            dir.to_owned(),
            "it holds no sled database (no conf and db files)",
        ));
    }
    // Opening a tree creates it: look before opening.
    let trees = super::sled::open_existing(dir, |db| {
        let has_meta = db
            .tree_names()
            .iter()
            .any(|name| name.as_ref() == META_TREE.as_bytes());
        Ok(has_meta
            && db
                .open_tree(META_TREE)?
                .contains_key(layout::TOKEN_SECRET)?)
    })?;
    match trees {
        Some(trees) => Ok(check_trees(&trees, limits, root)),
        None => Err(CheckError::NotAStore(
            dir.to_owned(),
            "its sled database was not written by aliasd",
        )),
    }
}

/// Checks the store under an etcd prefix without creating one: a prefix
/// that holds no aliasd store (no page-token secret) is an error.
pub fn check_etcd(
    config: &super::etcd::EtcdConfig,
    limits: &Limits,
    root: Option<&RootKey>,
) -> Result<Report, String> {
    let backend = super::etcd::EtcdBackend::connect(config).map_err(|e| e.message)?;
    match backend.get(super::backend::Tree::Meta, layout::TOKEN_SECRET) {
        Ok(Some(_)) => Ok(check_trees(&backend, limits, root)),
        Ok(None) => Err(format!(
            "no aliasd store under prefix {} at {}",
            config.prefix,
            config.endpoints.join(",")
        )),
        Err(error) => Err(error.message),
    }
}

impl Store {
    /// Checks every invariant of this open store (see [`check_trees`]).
    pub fn check(&self, limits: &Limits) -> Report {
        check_trees(self.backend.as_ref(), limits, None)
    }
}

/// Every entry of `tree` (the check holds a tree's worth in memory; it
/// builds maps of that size anyway). A read error ends the walk and is
/// reported.
fn all(t: &dyn Reads, tree: Tree, problems: &mut Vec<String>) -> Entries {
    let mut entries = Vec::new();
    let walked = scan_all(t, tree, &[], None, |key, value| {
        entries.push((key.to_vec(), value.to_vec()));
        Ok(())
    });
    if let Err(e) = walked {
        problems.push(format!("{}: unreadable: {e}", tree.name()));
    }
    entries
}

/// A counter of `meta` (absent or unreadable: 0).
fn meta_u64(t: &dyn Reads, account: &str, name: &[u8]) -> u64 {
    let value = t
        .get(Tree::Meta, &layout::scoped(account, name))
        .ok()
        .flatten();
    txn::read_u64(value.as_deref())
}

/// Checks every invariant: records decode and sit under their own key;
/// every alias targets an existing key of its account; the per-key index
/// matches the aliases exactly; quotas and key counters hold; the
/// deletion schedule matches the keys; each change log is contiguous.
/// With `root`, also that every key's material unwraps under it (naming
/// the keys whose material does not: they were made under another root
/// key).
fn check_trees(t: &dyn Reads, limits: &Limits, root: Option<&RootKey>) -> Report {
    let mut report = Report::default();
    let problems = &mut report.problems;

    // account -> key_id -> key
    let mut keys: HashMap<String, BTreeMap<String, Key>> = HashMap::new();
    for (key, bytes) in all(t, Tree::Keys, problems) {
        let Some((account, id)) = layout::split(&key) else {
            problems.push(format!("keys: malformed key {key:?}"));
            continue;
        };
        let id = String::from_utf8_lossy(id).into_owned();
        match records::decode::<KeyRecord>("key", &bytes).and_then(Key::try_from) {
            Ok(record) if record.key_id.as_str() == id => {
                keys.entry(account.to_owned())
                    .or_default()
                    .insert(id, record);
            }
            Ok(record) => problems.push(format!(
                "key {account}/{id}: record names key {}",
                record.key_id
            )),
            Err(e) => problems.push(format!("key {account}/{id}: {e}")),
        }
    }
    for (account, account_keys) in &keys {
        let counted = meta_u64(t, account, layout::KEY_COUNT);
        if counted != account_keys.len() as u64 {
            problems.push(format!(
                "account {account}: key counter says {counted}, {} keys stored",
                account_keys.len()
            ));
        }
        if account_keys.len() as u64 > limits.max_keys_per_account {
            problems.push(format!(
                "account {account}: {} keys, above the quota",
                account_keys.len()
            ));
        }
        for key in account_keys.values() {
            // Tags and the policy as the rules would have taken them.
            let tags: Vec<(String, String)> = key
                .tags
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Err(error) = crate::domain::key_details::check_tags(&tags) {
                problems.push(format!(
                    "key {account}/{}: tags the rules refuse: {}",
                    key.key_id, error.message
                ));
            }
            if let Some(Err(error)) = key
                .policy
                .as_deref()
                .map(crate::domain::key_details::check_policy)
            {
                problems.push(format!(
                    "key {account}/{}: a key policy the rules refuse: {}",
                    key.key_id, error.message
                ));
            }
            if let Some(root) = root {
                for material in &key.materials {
                    if root
                        .unwrap(account, &key.key_id, &material.id, &material.wrapped)
                        .is_err()
                    {
                        problems.push(format!(
                            "key {account}/{}: material {} (version {}) does not unwrap under \
                             root key {}",
                            key.key_id,
                            material.id,
                            material.version,
                            root.fingerprint()
                        ));
                    }
                }
            }
            let rotating = key.rotation.map(|rotation| {
                t.get(
                    Tree::Rotations,
                    &layout::schedule_key(rotation.next, account, &key.key_id),
                )
                .is_ok_and(|entry| entry.is_some())
            });
            if rotating == Some(false) {
                problems.push(format!(
                    "key {account}/{}: its automatic rotation is not in the rotation index",
                    key.key_id
                ));
            }
            let scheduled = key.deletion_time.map(|time| {
                t.get(
                    Tree::Schedule,
                    &layout::schedule_key(time, account, &key.key_id),
                )
                .is_ok_and(|entry| entry.is_some())
            });
            match (key.key_state == KeyState::PENDING_DELETION, scheduled) {
                (true, Some(true)) | (false, None) => {}
                _ => problems.push(format!(
                    "key {account}/{}: state {} does not match the deletion schedule",
                    key.key_id,
                    key.key_state.as_str()
                )),
            }
        }
    }
    report.keys = keys.values().map(BTreeMap::len).sum();

    // account -> key_id -> alias names (from the alias records)
    let mut targets: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (key, bytes) in all(t, Tree::Aliases, problems) {
        let Some((account, name)) = layout::split(&key) else {
            problems.push(format!("aliases: malformed key {key:?}"));
            continue;
        };
        let name = String::from_utf8_lossy(name).into_owned();
        report.aliases += 1;
        let record = match records::decode::<AliasRecord>("alias", &bytes) {
            Ok(record) => record,
            Err(e) => {
                problems.push(format!("alias {account}/{name}: {e}"));
                continue;
            }
        };
        if record.name != name {
            problems.push(format!(
                "alias {account}/{name}: record names {}",
                record.name
            ));
        }
        if let Err(e) = AliasName::parse("alias_name", &name) {
            problems.push(format!("alias {account}/{name}: {}", e.message));
        }
        if !keys
            .get(account)
            .is_some_and(|k| k.contains_key(&record.target))
        {
            problems.push(format!(
                "alias {account}/{name}: targets missing key {}",
                record.target
            ));
        }
        targets
            .entry((account.to_owned(), record.target))
            .or_default()
            .push(name);
    }

    for (key, bytes) in all(t, Tree::KeyAliases, problems) {
        let Some((account, id)) = layout::split(&key) else {
            problems.push(format!("key_aliases: malformed key {key:?}"));
            continue;
        };
        let id = String::from_utf8_lossy(id).into_owned();
        let names = match records::decode::<AliasSetRecord>("alias index", &bytes) {
            Ok(set) => set.names,
            Err(e) => {
                problems.push(format!("alias index {account}/{id}: {e}"));
                continue;
            }
        };
        if names.len() as u64 > limits.max_aliases_per_key {
            problems.push(format!(
                "key {account}/{id}: {}, above the quota of {}",
                crate::domain::names::counted(names.len() as u64, "alias", "aliases"),
                limits.max_aliases_per_key
            ));
        }
        let mut actual = targets
            .remove(&(account.to_owned(), id.clone()))
            .unwrap_or_default();
        actual.sort();
        if names != actual {
            problems.push(format!(
                "key {account}/{id}: index lists {names:?}, aliases targeting it are {actual:?}"
            ));
        }
    }
    for ((account, id), names) in targets {
        problems.push(format!(
            "key {account}/{id}: aliases {names:?} target it but it has no index entry"
        ));
    }

    // Change logs: entries of consecutive events, each under its last
    // revision; above the floor, together contiguous from floor+1 to head.
    let mut logs: HashMap<String, Vec<u64>> = HashMap::new();
    for (key, bytes) in all(t, Tree::Changes, problems) {
        let Some((account, revision)) = layout::split(&key) else {
            problems.push(format!("changes: malformed key {key:?}"));
            continue;
        };
        let revision = <[u8; 8]>::try_from(revision)
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let events = match records::decode::<ChangeRecord>("change", &bytes) {
            Ok(record) => record.events(),
            Err(e) => {
                problems.push(format!("change {account}/{revision}: {e}"));
                continue;
            }
        };
        let revisions: Vec<u64> = events.iter().map(|event| event.revision).collect();
        let first = revisions[0];
        if revisions != (first..first + revisions.len() as u64).collect::<Vec<_>>()
            || revisions.last() != Some(&revision)
        {
            problems.push(format!(
                "change {account}/{revision}: entry holds revisions {revisions:?}"
            ));
            continue;
        }
        if revision <= meta_u64(t, account, layout::FLOOR) {
            problems.push(format!(
                "change {account}/{revision}: entry wholly at or under the floor"
            ));
        }
        report.changes += revisions.len();
        logs.entry(account.to_owned())
            .or_default()
            .extend(revisions);
    }
    for (key, value) in all(t, Tree::Meta, problems) {
        let Some((account, layout::REVISION)) = layout::split(&key) else {
            continue;
        };
        let head = txn::read_u64(Some(&value));
        let floor = meta_u64(t, account, layout::FLOOR);
        let mut revisions = logs.remove(account).unwrap_or_default();
        // An entry straddling the floor keeps the events under it.
        revisions.retain(|revision| *revision > floor);
        let expected: Vec<u64> = (floor + 1..=head).collect();
        if revisions != expected {
            problems.push(format!(
                "account {account}: change log holds {} entries, expected revisions {}..={head}",
                revisions.len(),
                floor + 1
            ));
        }
    }
    for (account, revisions) in logs {
        problems.push(format!(
            "account {account}: {} changes but no revision counter",
            revisions.len()
        ));
    }

    for (key, bytes) in all(t, Tree::Requests, problems) {
        report.requests += 1;
        if let Err(e) = records::decode::<RequestRecord>("request", &bytes) {
            problems.push(format!("request {}: {e}", String::from_utf8_lossy(&key)));
        }
    }
    report
}
