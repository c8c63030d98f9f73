//! The operations: every rule of KeyService and AliasService, written against
//! [`Txn`], a view of one account inside one transaction. The store runs each
//! operation in a single transaction (and may run it again on a conflict, so
//! operations have no side effects beyond the `Txn` calls).

use super::alias::{Alias, AliasEvent, ChangeKind};
use super::error::{Error, Reason, Result};
use super::key::{Key, KeyManager, KeySpec, KeyState, KeyUsage, NewMaterial, RotationType};
use super::key_details;
use super::names::{AliasName, KeyId, KeyRef, Scope};
use super::policy::{actions, Caller, ANY_RESOURCE};
use super::time::Millis;

/// Reads and writes of one account, inside one transaction. The store keeps
/// the per-key alias index and the counters consistent with the records.
pub trait Txn {
    /// The transaction's failure type: a rule's [`Error`] or a storage fault.
    type Fail: From<Error>;

    fn key(&self, id: &KeyId) -> Result<Option<Key>, Self::Fail>;
    /// Writes a key; `is_new` counts it against the account's key quota.
    fn put_key(&self, key: &Key, is_new: bool) -> Result<(), Self::Fail>;
    fn remove_key(&self, id: &KeyId) -> Result<(), Self::Fail>;
    fn key_count(&self) -> Result<u64, Self::Fail>;

    fn alias(&self, name: &AliasName) -> Result<Option<Alias>, Self::Fail>;
    /// Writes an alias, moving it in the per-key index if its target changed.
    fn put_alias(&self, alias: &Alias) -> Result<(), Self::Fail>;
    /// Removes an alias and its index entry.
    fn remove_alias(&self, alias: &Alias) -> Result<(), Self::Fail>;
    /// The names of the aliases that target `key` (the per-key index).
    fn aliases_of(&self, key: &KeyId) -> Result<Vec<AliasName>, Self::Fail>;

    /// Allocates the next revision of the account's change log.
    fn next_revision(&self) -> Result<u64, Self::Fail>;
    /// Appends an event (with a revision from `next_revision`) to the log.
    fn log(&self, event: &AliasEvent) -> Result<(), Self::Fail>;
}

/// Quotas, and how long a day of a deletion's pending window lasts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_aliases_per_key: u64,
    pub max_keys_per_account: u64,
    /// A day of ScheduleKeyDeletion's window, in milliseconds: a real day,
    /// except on an `--ephemeral` server told otherwise (for test suites).
    pub day_millis: i64,
}

impl Limits {
    /// The alias quota per key unless configured (`--max-aliases-per-key`).
    pub const DEFAULT_MAX_ALIASES_PER_KEY: u64 = 50;
    /// The key quota per account unless configured.
    pub const DEFAULT_MAX_KEYS_PER_ACCOUNT: u64 = 100_000;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_aliases_per_key: Limits::DEFAULT_MAX_ALIASES_PER_KEY,
            max_keys_per_account: Limits::DEFAULT_MAX_KEYS_PER_ACCOUNT,
            day_millis: crate::domain::key::DAY_MILLIS,
        }
    }
}

/// What every operation needs besides the transaction.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub scope: Scope,
    pub now: Millis,
    pub limits: Limits,
    /// Who is calling; every operation authorizes its resources with it.
    pub caller: Caller,
}

impl Ctx {
    fn authorize(&self, action: &str, resource: &str) -> Result<()> {
        self.caller.authorize(action, resource)
    }

    /// Authorizes `action` on the key `id`, with the facts a statement's
    /// condition may test: the alias the request named the key by, and the
    /// aliases the key has now, read in this transaction (so a change to
    /// them racing the call is decided by the call's one consistent read),
    /// and only when some statement asks.
    fn authorize_key<T: Txn>(
        &self,
        txn: &T,
        action: &str,
        id: &KeyId,
        request_alias: Option<&AliasName>,
    ) -> Result<(), T::Fail> {
        let mut failed = None;
        let decided = {
            let mut read = || match txn.aliases_of(id) {
                Ok(names) => Ok(names.into_iter().map(|n| n.as_str().to_owned()).collect()),
                Err(fail) => {
                    failed = Some(fail);
                    Err(Error::internal("the key's aliases could not be read"))
                }
            };
            self.caller.authorize_with(
                action,
                id.as_str(),
                &mut crate::domain::policy::Facts {
                    request_alias: request_alias.map(AliasName::as_str),
                    resource_aliases: &mut read,
                },
            )
        };
        match failed {
            Some(fail) => Err(fail),
            None => decided.map_err(Into::into),
        }
    }
}

fn key_not_found(ctx: &Ctx, id: &KeyId) -> Error {
    Error::new(
        Reason::KEY_NOT_FOUND,
        format!("Key '{}' does not exist", ctx.scope.key_arn(id)),
    )
}

fn alias_not_found(ctx: &Ctx, name: &AliasName) -> Error {
    Error::new(
        Reason::ALIAS_NOT_FOUND,
        format!("Alias {} is not found.", ctx.scope.alias_arn(name)),
    )
}

fn alias_exists(ctx: &Ctx, name: &AliasName) -> Error {
    Error::new(
        Reason::ALIAS_ALREADY_EXISTS,
        format!(
            "An alias with the name {} already exists.",
            ctx.scope.alias_arn(name)
        ),
    )
}

fn pending_deletion(ctx: &Ctx, key: &Key) -> Error {
    Error::new(
        Reason::KEY_PENDING_DELETION,
        format!(
            "Key '{}' is pending deletion; an alias cannot be pointed at it.",
            ctx.scope.key_arn(&key.key_id)
        ),
    )
}

fn existing_key<T: Txn>(txn: &T, ctx: &Ctx, id: &KeyId) -> Result<Key, T::Fail> {
    txn.key(id)?.ok_or_else(|| key_not_found(ctx, id).into())
}

fn existing_alias<T: Txn>(txn: &T, ctx: &Ctx, name: &AliasName) -> Result<Alias, T::Fail> {
    txn.alias(name)?
        .ok_or_else(|| alias_not_found(ctx, name).into())
}

/// A key an alias may be pointed at: CUSTOMER and not pending deletion.
fn alias_target<T: Txn>(txn: &T, ctx: &Ctx, id: &KeyId) -> Result<Key, T::Fail> {
    let key = existing_key(txn, ctx, id)?;
    key.ensure_customer(&ctx.scope)?;
    if key.is_pending_deletion() {
        return Err(pending_deletion(ctx, &key).into());
    }
    Ok(key)
}

fn ensure_alias_room<T: Txn>(txn: &T, ctx: &Ctx, key: &KeyId) -> Result<(), T::Fail> {
    let count = txn.aliases_of(key)?.len() as u64;
    if count >= ctx.limits.max_aliases_per_key {
        return Err(Error::new(
            Reason::ALIAS_QUOTA_EXCEEDED,
            format!(
                "Key '{}' already has {}, the most a key may have ({}).",
                ctx.scope.key_arn(key),
                super::names::counted(count, "alias", "aliases"),
                ctx.limits.max_aliases_per_key
            ),
        )
        .into());
    }
    Ok(())
}

fn record<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    revision: u64,
    kind: ChangeKind,
    alias: &Alias,
    previous_name: Option<AliasName>,
    previous_target: Option<KeyId>,
) -> Result<(), T::Fail> {
    txn.log(&AliasEvent {
        revision,
        kind,
        alias: alias.clone(),
        previous_name,
        previous_target,
        time: ctx.now,
    })
}

// ---------------------------------------------------------------- keys

/// What CreateKey asks for, already parsed.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub description: String,
    pub key_spec: Option<KeySpec>,
    pub key_usage: Option<KeyUsage>,
    /// The key's first material (None only for SM2, which has none).
    pub material: Option<NewMaterial>,
    /// CreateKey's tags, in the order given.
    pub tags: Vec<(String, String)>,
    /// CreateKey's key policy (None: AWS's default one).
    pub policy: Option<String>,
}

pub fn create_key<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    new: &NewKey,
    key_id: &KeyId,
) -> Result<Key, T::Fail> {
    ctx.authorize(actions::CREATE_KEY, ANY_RESOURCE)?;
    super::key::check_description(&new.description)?;
    let (key_spec, key_usage) = KeySpec::resolve_pair(new.key_spec, new.key_usage)?;
    let tags = key_details::with_tags(&key_details::Tags::new(), &new.tags)?;
    if let Some(policy) = &new.policy {
        key_details::check_policy(policy)?;
    }
    let count = txn.key_count()?;
    if count >= ctx.limits.max_keys_per_account {
        return Err(Error::new(
            Reason::KEY_QUOTA_EXCEEDED,
            format!(
                "Account {} already has {count} keys, the most an account may have ({}).",
                ctx.scope.account, ctx.limits.max_keys_per_account
            ),
        )
        .into());
    }
    let key = Key {
        key_id: key_id.clone(),
        description: new.description.clone(),
        key_spec,
        key_usage,
        key_state: KeyState::ENABLED,
        key_manager: KeyManager::CUSTOMER,
        creation_time: ctx.now,
        deletion_time: None,
        pending_window_in_days: 0,
        materials: Vec::new(),
        rotation: None,
        tags,
        policy: new.policy.clone(),
    };
    let mut key = key;
    if let Some(material) = &new.material {
        key.push_material(material.clone(), None, ctx.now);
    }
    txn.put_key(&key, true)?;
    Ok(key)
}

/// DescribeKey: a key by key id, key ARN, alias name or alias ARN.
pub fn describe_key<T: Txn>(txn: &T, ctx: &Ctx, key_ref: &KeyRef) -> Result<Key, T::Fail> {
    let id = resolve_authorized(txn, ctx, key_ref, actions::DESCRIBE_KEY)?;
    existing_key(txn, ctx, &id)
}

/// The key id `key_ref` names (through its alias, for an alias), with
/// `action` allowed on that key. A denial names the alias the caller gave,
/// not the key it hides.
pub fn resolve_authorized<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    key_ref: &KeyRef,
    action: &str,
) -> Result<KeyId, T::Fail> {
    match key_ref {
        KeyRef::Key(id) => {
            ctx.authorize_key(txn, action, id, None)?;
            Ok(id.clone())
        }
        KeyRef::Alias(name) => {
            let id = existing_alias(txn, ctx, name)?.target;
            if ctx.authorize_key(txn, action, &id, Some(name)).is_err() {
                return Err(Error::new(
                    Reason::ACCESS_DENIED,
                    format!(
                        "Principal '{}' is not allowed {action} on the key of '{name}'.",
                        ctx.caller.name()
                    ),
                )
                .into());
            }
            Ok(id)
        }
    }
}

// ---------------------------------------------------------------- use

/// How a cryptographic operation uses a key: the action it is authorized
/// as, the usages it needs, its name in messages, and whether a disabled
/// key serves (GetPublicKey: AWS answers it).
#[derive(Debug, Clone, Copy)]
pub struct Use {
    pub action: &'static str,
    pub usages: &'static [KeyUsage],
    pub operation: &'static str,
    pub allow_disabled: bool,
}

/// The key `key_ref` names, for `usage`: resolved through its alias,
/// authorized on the key, and usable now (enabled, of a usage the operation
/// needs, not SM2).
pub fn key_for_use<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    key_ref: &KeyRef,
    usage: Use,
) -> Result<Key, T::Fail> {
    let id = resolve_authorized(txn, ctx, key_ref, usage.action)?;
    let key = existing_key(txn, ctx, &id)?;
    key.ensure_usable(
        &ctx.scope,
        usage.usages,
        usage.operation,
        usage.allow_disabled,
    )?;
    Ok(key)
}

/// Decrypt's key: the one the ciphertext names (`named`). When the caller
/// also named a key (`given`), it must be that one (INCORRECT_KEY).
pub fn key_for_decrypt<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    named: &KeyId,
    given: Option<&KeyRef>,
    usage: Use,
) -> Result<Key, T::Fail> {
    if let Some(given) = given {
        let id = resolve_authorized(txn, ctx, given, usage.action)?;
        if &id != named {
            existing_key(txn, ctx, &id)?;
            return Err(Error::new(
                Reason::INCORRECT_KEY,
                "The key ID in the request does not identify a CMK that can perform this \
                 operation.",
            )
            .into());
        }
    }
    // Through the alias it was named by, if any: conditions on
    // kms:RequestAlias see it.
    match given {
        Some(given) => key_for_use(txn, ctx, given, usage),
        None => key_for_use(txn, ctx, &KeyRef::Key(named.clone()), usage),
    }
}

// ---------------------------------------------------------------- key details

/// A change to what a key carries (tags, policy, description): `action`
/// authorized on the key, refused while the key is pending deletion (as
/// AWS's key state table has it), `change` applied and the key stored.
fn change_key_details<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    action: &str,
    change: impl FnOnce(&mut Key) -> Result<()>,
) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, action, id, None)?;
    let mut key = existing_key(txn, ctx, id)?;
    if key.key_state == KeyState::PENDING_DELETION {
        return Err(Error::new(
            Reason::KEY_PENDING_DELETION,
            format!("{} is pending deletion.", ctx.scope.key_arn(id)),
        )
        .into());
    }
    change(&mut key)?;
    txn.put_key(&key, false)?;
    Ok(key)
}

/// TagResource: adds `tags` (a given key's value replaces the old one).
pub fn tag_resource<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    tags: &[(String, String)],
) -> Result<Key, T::Fail> {
    key_details::check_tags(tags)?;
    change_key_details(txn, ctx, id, actions::TAG_RESOURCE, |key| {
        key.tags = key_details::with_tags(&key.tags, tags)?;
        Ok(())
    })
}

/// UntagResource: removes the tags with these keys (absent ones are not
/// an error, as on AWS).
pub fn untag_resource<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    tag_keys: &[String],
) -> Result<Key, T::Fail> {
    change_key_details(txn, ctx, id, actions::UNTAG_RESOURCE, |key| {
        for tag in tag_keys {
            key.tags.remove(tag);
        }
        Ok(())
    })
}

/// PutKeyPolicy: `policy` (checked) becomes the key's `default` policy.
pub fn put_key_policy<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    policy: &str,
) -> Result<Key, T::Fail> {
    key_details::check_policy(policy)?;
    change_key_details(txn, ctx, id, actions::PUT_KEY_POLICY, |key| {
        key.policy = Some(policy.to_owned());
        Ok(())
    })
}

/// UpdateKeyDescription.
pub fn update_key_description<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    description: &str,
) -> Result<Key, T::Fail> {
    super::key::check_description(description)?;
    change_key_details(txn, ctx, id, actions::UPDATE_KEY_DESCRIPTION, |key| {
        key.description = description.to_owned();
        Ok(())
    })
}

// ---------------------------------------------------------------- rotation

/// EnableKeyRotation with a resolved period.
pub fn enable_key_rotation<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    period_days: i32,
) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, actions::ENABLE_KEY_ROTATION, id, None)?;
    let key = existing_key(txn, ctx, id)?.enable_rotation(
        &ctx.scope,
        period_days,
        ctx.now,
        ctx.limits.day_millis,
    )?;
    txn.put_key(&key, false)?;
    Ok(key)
}

pub fn disable_key_rotation<T: Txn>(txn: &T, ctx: &Ctx, id: &KeyId) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, actions::DISABLE_KEY_ROTATION, id, None)?;
    let key = existing_key(txn, ctx, id)?.disable_rotation(&ctx.scope)?;
    txn.put_key(&key, false)?;
    Ok(key)
}

/// RotateKeyOnDemand with material made outside the transaction.
pub fn rotate_key_on_demand<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    material: &NewMaterial,
) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, actions::ROTATE_KEY_ON_DEMAND, id, None)?;
    let key = existing_key(txn, ctx, id)?.rotate(
        &ctx.scope,
        material.clone(),
        RotationType::ON_DEMAND,
        ctx.now,
        ctx.limits.day_millis,
    )?;
    txn.put_key(&key, false)?;
    Ok(key)
}

/// A key read by a call that only reads it (GetKeyRotationStatus,
/// ListKeyRotations, ListResourceTags, GetKeyPolicy, ListKeyPolicies): the
/// key, with `action` allowed on it (by key id or key ARN only).
pub fn key_for_read<T: Txn>(txn: &T, ctx: &Ctx, id: &KeyId, action: &str) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, action, id, None)?;
    existing_key(txn, ctx, id)
}

/// A due automatic rotation (maintenance): rotates an enabled key whose
/// time has come; a key that is not enabled is not rotated, and is looked
/// at again a day on. Returns whether it rotated; changes nothing
/// when the key is gone or no longer due (a concurrent change won).
pub fn rotate_due_key<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    material: &NewMaterial,
) -> Result<bool, T::Fail> {
    let Some(key) = txn.key(id)? else {
        return Ok(false);
    };
    if !key.is_due_for_rotation(ctx.now) {
        return Ok(false);
    }
    // A key that is not enabled is not rotated (as AWS): it is looked at
    // again a day later, so it rotates within a day of being enabled again.
    if key.key_state != KeyState::ENABLED {
        let mut key = key;
        if let Some(rotation) = key.rotation.as_mut() {
            rotation.next = ctx.now.saturating_add(ctx.limits.day_millis);
        }
        txn.put_key(&key, false)?;
        return Ok(false);
    }
    let key = key.rotate(
        &ctx.scope,
        material.clone(),
        RotationType::AUTOMATIC,
        ctx.now,
        ctx.limits.day_millis,
    )?;
    txn.put_key(&key, false)?;
    Ok(true)
}

/// Gives a key stored before keys had material its first material.
/// Returns whether it did (not when the key is gone or has material: a
/// concurrent start-up won).
pub fn give_first_material<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    material: &NewMaterial,
) -> Result<bool, T::Fail> {
    match txn.key(id)? {
        Some(mut key) if key.materials.is_empty() => {
            key.push_material(material.clone(), None, ctx.now);
            txn.put_key(&key, false)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// ListAliases / WatchAliases: allowed on the filter's key, or account-wide.
/// A listing filtered by key (ListAliases, WatchAliases): `action` on the
/// key, with its aliases for a statement's conditions, then whether the key
/// exists.
pub fn authorize_key_filter<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    action: &str,
    id: &KeyId,
) -> Result<(), T::Fail> {
    ctx.authorize_key(txn, action, id, None)?;
    existing_key(txn, ctx, id).map(drop)
}

/// ListKeys, ListAuditEvents and unfiltered listings act on the whole
/// account.
pub fn authorize_account_wide(ctx: &Ctx, action: &str) -> Result<()> {
    ctx.authorize(action, ANY_RESOURCE)
}

/// EnableKey (`enabled`) or DisableKey.
pub fn set_key_enabled<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    enabled: bool,
) -> Result<Key, T::Fail> {
    let action = if enabled {
        actions::ENABLE_KEY
    } else {
        actions::DISABLE_KEY
    };
    ctx.authorize_key(txn, action, id, None)?;
    let key = existing_key(txn, ctx, id)?.set_enabled(&ctx.scope, enabled)?;
    txn.put_key(&key, false)?;
    Ok(key)
}

/// ScheduleKeyDeletion with a window already resolved to 7..30 days.
pub fn schedule_key_deletion<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    id: &KeyId,
    window_days: i32,
) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, actions::SCHEDULE_KEY_DELETION, id, None)?;
    let key = existing_key(txn, ctx, id)?.schedule_deletion(
        &ctx.scope,
        window_days,
        ctx.now,
        ctx.limits.day_millis,
    )?;
    txn.put_key(&key, false)?;
    Ok(key)
}

pub fn cancel_key_deletion<T: Txn>(txn: &T, ctx: &Ctx, id: &KeyId) -> Result<Key, T::Fail> {
    ctx.authorize_key(txn, actions::CANCEL_KEY_DELETION, id, None)?;
    let key = existing_key(txn, ctx, id)?.cancel_deletion(&ctx.scope)?;
    txn.put_key(&key, false)?;
    Ok(key)
}

/// Removes a key whose deletion time has passed, and every alias that
/// targets it. Returns how many aliases went with it. Fails (changing
/// nothing) when the key is gone or no longer due: a concurrent
/// CancelKeyDeletion won.
pub fn remove_due_key<T: Txn>(txn: &T, ctx: &Ctx, id: &KeyId) -> Result<usize, T::Fail> {
    let key = existing_key(txn, ctx, id)?;
    if !key.is_due_for_removal(ctx.now) {
        return Err(Error::new(
            Reason::KEY_INVALID_STATE,
            format!("key {id} is not due for removal"),
        )
        .into());
    }
    let names = txn.aliases_of(id)?;
    for name in &names {
        let alias = existing_alias(txn, ctx, name)?;
        let revision = txn.next_revision()?;
        txn.remove_alias(&alias)?;
        record(txn, ctx, revision, ChangeKind::Deleted, &alias, None, None)?;
    }
    txn.remove_key(id)?;
    Ok(names.len())
}

// ---------------------------------------------------------------- aliases

pub fn create_alias<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    name: &AliasName,
    target: &KeyId,
) -> Result<Alias, T::Fail> {
    name.ensure_not_reserved(&ctx.scope)?;
    ctx.authorize(actions::CREATE_ALIAS, name.as_str())?;
    ctx.authorize_key(txn, actions::CREATE_ALIAS, target, None)?;
    alias_target(txn, ctx, target)?;
    if txn.alias(name)?.is_some() {
        return Err(alias_exists(ctx, name).into());
    }
    ensure_alias_room(txn, ctx, target)?;
    let revision = txn.next_revision()?;
    let alias = Alias {
        name: name.clone(),
        target: target.clone(),
        creation_time: ctx.now,
        last_updated_time: ctx.now,
        etag: Alias::etag_for(name, revision),
    };
    txn.put_alias(&alias)?;
    record(txn, ctx, revision, ChangeKind::Created, &alias, None, None)?;
    Ok(alias)
}

/// UpdateAlias: re-points an alias at a key of the same class and usage.
pub fn update_alias<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    name: &AliasName,
    target: &KeyId,
    etag: Option<&str>,
) -> Result<Alias, T::Fail> {
    name.ensure_not_reserved(&ctx.scope)?;
    ctx.authorize(actions::UPDATE_ALIAS, name.as_str())?;
    ctx.authorize_key(txn, actions::UPDATE_ALIAS, target, None)?;
    let current = existing_alias(txn, ctx, name)?;
    ctx.authorize_key(txn, actions::UPDATE_ALIAS, &current.target, None)?;
    current.check_etag(&ctx.scope, etag)?;
    if &current.target == target {
        return Ok(current);
    }
    let new_key = alias_target(txn, ctx, target)?;
    // The current key exists while an alias points at it (the store's
    // invariant); its absence is a fault, reported as such.
    let old_key = txn.key(&current.target)?.ok_or_else(|| {
        Error::internal(format!(
            "alias {name} targets missing key {}",
            current.target
        ))
    })?;
    old_key.ensure_customer(&ctx.scope)?;
    if old_key.key_spec.class() != new_key.key_spec.class()
        || old_key.key_usage != new_key.key_usage
    {
        return Err(Error::new(
            Reason::KEY_TYPE_MISMATCH,
            format!(
                "Alias {} cannot be moved from key '{}' ({}, {}) to key '{}' ({}, {}): the current \
                 and new key must be of the same type (symmetric, HMAC or asymmetric) and have the \
                 same key usage. Delete the alias and create it again instead.",
                ctx.scope.alias_arn(name),
                ctx.scope.key_arn(&old_key.key_id),
                old_key.key_spec.as_str(),
                old_key.key_usage.as_str(),
                ctx.scope.key_arn(&new_key.key_id),
                new_key.key_spec.as_str(),
                new_key.key_usage.as_str(),
            ),
        )
        .into());
    }
    ensure_alias_room(txn, ctx, target)?;
    let revision = txn.next_revision()?;
    let alias = Alias {
        target: target.clone(),
        last_updated_time: ctx.now,
        etag: Alias::etag_for(name, revision),
        ..current.clone()
    };
    txn.put_alias(&alias)?;
    record(
        txn,
        ctx,
        revision,
        ChangeKind::Updated,
        &alias,
        None,
        Some(current.target),
    )?;
    Ok(alias)
}

/// DeleteAlias: allowed in every key state.
pub fn delete_alias<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    name: &AliasName,
    etag: Option<&str>,
) -> Result<(), T::Fail> {
    name.ensure_not_reserved(&ctx.scope)?;
    ctx.authorize(actions::DELETE_ALIAS, name.as_str())?;
    let alias = existing_alias(txn, ctx, name)?;
    ctx.authorize_key(txn, actions::DELETE_ALIAS, &alias.target, None)?;
    alias.check_etag(&ctx.scope, etag)?;
    let revision = txn.next_revision()?;
    txn.remove_alias(&alias)?;
    record(txn, ctx, revision, ChangeKind::Deleted, &alias, None, None)
}

/// Huawei's DELETE aliases: several aliases of one key, all or none. Each
/// must exist and target `key` (else ALIAS_NOT_FOUND, naming it).
pub fn delete_aliases_of_key<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    key: &KeyId,
    names: &[AliasName],
) -> Result<(), T::Fail> {
    for name in names {
        name.ensure_not_reserved(&ctx.scope)?;
        match txn.alias(name)? {
            Some(alias) if &alias.target == key => {}
            Some(_) => {
                return Err(Error::new(
                    Reason::ALIAS_NOT_FOUND,
                    format!(
                        "Alias {} is not an alias of key {}.",
                        ctx.scope.alias_arn(name),
                        ctx.scope.key_arn(key)
                    ),
                )
                .into())
            }
            None => return Err(alias_not_found(ctx, name).into()),
        }
        delete_alias(txn, ctx, name, None)?;
    }
    Ok(())
}

/// RenameAlias: moves the name in one transaction, keeping the target.
pub fn rename_alias<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    name: &AliasName,
    new_name: &AliasName,
    etag: Option<&str>,
) -> Result<Alias, T::Fail> {
    name.ensure_not_reserved(&ctx.scope)?;
    new_name.ensure_not_reserved(&ctx.scope)?;
    ctx.authorize(actions::RENAME_ALIAS, name.as_str())?;
    ctx.authorize(actions::RENAME_ALIAS, new_name.as_str())?;
    let current = existing_alias(txn, ctx, name)?;
    // A rename is a delete and a create: it needs the action on the key too.
    ctx.authorize_key(txn, actions::RENAME_ALIAS, &current.target, None)?;
    current.check_etag(&ctx.scope, etag)?;
    if name == new_name {
        return Ok(current);
    }
    if txn.alias(new_name)?.is_some() {
        return Err(alias_exists(ctx, new_name).into());
    }
    let key = existing_key(txn, ctx, &current.target)?;
    key.ensure_customer(&ctx.scope)?;
    if key.is_pending_deletion() {
        return Err(pending_deletion(ctx, &key).into());
    }
    let revision = txn.next_revision()?;
    let renamed = Alias {
        name: new_name.clone(),
        last_updated_time: ctx.now,
        etag: Alias::etag_for(new_name, revision),
        ..current.clone()
    };
    txn.remove_alias(&current)?;
    txn.put_alias(&renamed)?;
    record(
        txn,
        ctx,
        revision,
        ChangeKind::Renamed,
        &renamed,
        Some(current.name),
        None,
    )?;
    Ok(renamed)
}

/// Huawei's update-key-alias ("change the alias of a CMK"): the key's alias
/// becomes `name`, in this one transaction. A key with one alias has it
/// renamed (as RenameAlias: at no instant do both or neither names
/// resolve); a key with none gets it created; a key with several is
/// refused (which one would change?). A reserved name, or a key whose
/// alias is reserved, is RESERVED_ALIAS; a key pending deletion,
/// KEY_PENDING_DELETION.
pub fn set_key_alias<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    key_id: &KeyId,
    name: &AliasName,
) -> Result<Alias, T::Fail> {
    name.ensure_not_reserved(&ctx.scope)?;
    let key = existing_key(txn, ctx, key_id)?;
    let mut current = txn.aliases_of(key_id)?;
    if let Some(reserved) = current.iter().find(|n| n.is_reserved()) {
        return Err(reserved.ensure_not_reserved(&ctx.scope).unwrap_err().into());
    }
    key.ensure_customer(&ctx.scope)?;
    if key.is_pending_deletion() {
        return Err(pending_deletion(ctx, &key).into());
    }
    match current.len() {
        0 => create_alias(txn, ctx, name, key_id),
        1 => rename_alias(txn, ctx, &current.remove(0), name, None),
        count => Err(Error::new(
            Reason::KEY_HAS_SEVERAL_ALIASES,
            format!(
                "Key {} has {count} aliases ({}); say which one to change with the alias API \
                 instead.",
                ctx.scope.key_arn(key_id),
                current
                    .iter()
                    .map(AliasName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .into()),
    }
}

/// The names of a key's aliases, in name order (for DescribeKey-like
/// answers that show them): needs DescribeKey on the key.
pub fn alias_names_of<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    key_id: &KeyId,
) -> Result<Vec<AliasName>, T::Fail> {
    ctx.authorize_key(txn, actions::DESCRIBE_KEY, key_id, None)?;
    existing_key(txn, ctx, key_id)?;
    let mut names = txn.aliases_of(key_id)?;
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}

/// Which of `names` the account holds (needs ListAliases on the account).
pub fn aliases_held<T: Txn>(txn: &T, ctx: &Ctx, names: &[&str]) -> Result<Vec<AliasName>, T::Fail> {
    ctx.authorize(actions::LIST_ALIASES, ANY_RESOURCE)?;
    let mut held = Vec::new();
    for name in names {
        let name = AliasName::parse("alias_name", name)?;
        if txn.alias(&name)?.is_some() {
            held.push(name);
        }
    }
    Ok(held)
}

pub fn get_alias<T: Txn>(txn: &T, ctx: &Ctx, name: &AliasName) -> Result<Alias, T::Fail> {
    ctx.authorize(actions::GET_ALIAS, name.as_str())?;
    existing_alias(txn, ctx, name)
}

// ---------------------------------------------------------------- seeding

/// Creates a seed key unless a key with its id exists. Returns whether it
/// was created.
pub fn seed_key<T: Txn>(txn: &T, key: &Key) -> Result<bool, T::Fail> {
    if txn.key(&key.key_id)?.is_some() {
        return Ok(false);
    }
    txn.put_key(key, true)?;
    Ok(true)
}

/// Creates a seed alias unless one with its name exists. Reserved names must
/// point at PROVIDER keys, other names follow the API's rules. Returns whether
/// it was created.
pub fn seed_alias<T: Txn>(
    txn: &T,
    ctx: &Ctx,
    name: &AliasName,
    target: &KeyId,
) -> Result<bool, T::Fail> {
    if txn.alias(name)?.is_some() {
        return Ok(false);
    }
    let key = existing_key(txn, ctx, target)?;
    let reserved = name.is_reserved();
    let provider = key.key_manager == KeyManager::PROVIDER;
    if reserved != provider {
        return Err(Error::invalid(
            Reason::RESERVED_ALIAS,
            "aliases",
            format!(
                "Seed alias {name}: reserved names (alias/aws/..., .../default) must point at \
                 PROVIDER keys and other names at CUSTOMER keys; key {target} is {}.",
                key.key_manager.as_str()
            ),
        )
        .into());
    }
    if key.is_pending_deletion() {
        return Err(pending_deletion(ctx, &key).into());
    }
    ensure_alias_room(txn, ctx, target)?;
    let revision = txn.next_revision()?;
    let alias = Alias {
        name: name.clone(),
        target: target.clone(),
        creation_time: ctx.now,
        last_updated_time: ctx.now,
        etag: Alias::etag_for(name, revision),
    };
    txn.put_alias(&alias)?;
    record(txn, ctx, revision, ChangeKind::Created, &alias, None, None)?;
    Ok(true)
}
