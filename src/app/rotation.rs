//! Rotation of a symmetric key's material (SPEC §11): EnableKeyRotation,
//! DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand and
//! ListKeyRotations. Due automatic rotations are maintenance's.

use super::{App, Call, Page};
use crate::domain::key::{resolve_rotation_period, KeyMaterial};
use crate::domain::names::parse_key_id_of;
use crate::domain::ops;
use crate::domain::paging::Listing;
use crate::domain::policy::actions;
use crate::domain::{Error, Key, KeySpec, Reason};

/// The most rotations one ListKeyRotations page holds, and its default.
pub const MAX_ROTATIONS_PAGE: usize = 1000;
pub const DEFAULT_ROTATIONS_PAGE: usize = 100;

impl App {
    /// EnableKeyRotation: every `period_days` (90..2560; None: 365).
    pub async fn enable_key_rotation(
        &self,
        call: &Call,
        key_id: &str,
        period_days: Option<i32>,
    ) -> Result<Key, Error> {
        // The period is checked first, whatever the key.
        let period = resolve_rotation_period(period_days)?;
        self.change_key(
            call,
            actions::ENABLE_KEY_ROTATION,
            key_id,
            "",
            &period.to_string(),
            move |txn, ctx, id| ops::enable_key_rotation(txn, ctx, id, period),
        )
        .await
    }

    pub async fn disable_key_rotation(&self, call: &Call, key_id: &str) -> Result<Key, Error> {
        self.change_key(
            call,
            actions::DISABLE_KEY_ROTATION,
            key_id,
            "",
            "",
            |txn, ctx, id| ops::disable_key_rotation(txn, ctx, id),
        )
        .await
    }

    /// RotateKeyOnDemand: new material, made before the transaction (which
    /// numbers it), becomes the key's current material at once.
    pub async fn rotate_key_on_demand(&self, call: &Call, key_id: &str) -> Result<Key, Error> {
        let scope = self.scope_of(call);
        let id = parse_key_id_of(&scope, actions::ROTATE_KEY_ON_DEMAND, "key_id", key_id)?;
        let material = self
            .materials
            .new_material(&scope.account, &id, KeySpec::SYMMETRIC_DEFAULT)?
            .ok_or_else(|| Error::internal("no material made for a symmetric key"))?;
        self.change_key(
            call,
            actions::ROTATE_KEY_ON_DEMAND,
            key_id,
            "",
            "",
            move |txn, ctx, id| ops::rotate_key_on_demand(txn, ctx, id, &material),
        )
        .await
    }

    /// GetKeyRotationStatus: the key, whose `rotation` says whether and
    /// when (a key that cannot rotate, or is pending deletion, reads as not
    /// rotating).
    pub async fn get_key_rotation_status(&self, call: &Call, key_id: &str) -> Result<Key, Error> {
        self.key_read(call, actions::GET_KEY_ROTATION_STATUS, key_id)
            .await
    }

    /// ListKeyRotations: the key's rotations (material versions after the
    /// first; with `include_first`, the first too), oldest first, `limit`
    /// (1..1000; 0: 100) at a time.
    pub async fn list_key_rotations(
        &self,
        call: &Call,
        key_id: &str,
        limit: i32,
        page_token: &str,
        include_first: bool,
    ) -> Result<(Key, Page<KeyMaterial>), Error> {
        let limit = match limit {
            0 => DEFAULT_ROTATIONS_PAGE,
            1.. if limit as usize <= MAX_ROTATIONS_PAGE => limit as usize,
            _ => {
                return Err(Error::invalid(
                    Reason::INVALID_PARAMETER,
                    "limit",
                    crate::domain::error::out_of_range(
                        "limit",
                        limit.into(),
                        1,
                        MAX_ROTATIONS_PAGE as i64,
                    ),
                ))
            }
        };
        let key = self
            .key_read(call, actions::LIST_KEY_ROTATIONS, key_id)
            .await?;
        let account = self.scope_of(call).account;
        let id = key.key_id.to_string();
        let listing = Listing {
            account: &account,
            kind: "rotations",
            filter: &id,
        };
        let after: Option<u32> = match page_token {
            "" => None,
            token => Some(self.tokens.open(&listing, token)?.parse().map_err(|_| {
                Error::invalid(
                    Reason::INVALID_PAGE_TOKEN,
                    "marker",
                    "The marker is not one this server issued.",
                )
            })?),
        };
        let rotations: Vec<KeyMaterial> = key
            .materials
            .iter()
            .filter(|m| include_first || m.rotation.is_some())
            .filter(|m| after.is_none_or(|after| m.version > after))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = rotations.len() > limit;
        let items: Vec<KeyMaterial> = rotations.into_iter().take(limit).collect();
        let next_page_token = match items.last() {
            Some(last) if more => self.tokens.issue(&listing, &last.version.to_string()),
            _ => String::new(),
        };
        Ok((
            key,
            Page {
                items,
                next_page_token,
            },
        ))
    }

    /// A key, read for a call that only reads it (rotation status, tags,
    /// policy): `action` allowed on it; key id or key ARN only.
    pub(super) async fn key_read(
        &self,
        call: &Call,
        action: &'static str,
        key_id: &str,
    ) -> Result<Key, Error> {
        let ctx = self.ctx(call);
        let id = parse_key_id_of(&ctx.scope, action, "key_id", key_id)?;
        let mut audit = self.audit_entry(call, &ctx, action);
        audit.resources = vec![id.to_string()];
        let op_ctx = ctx.clone();
        self.read(&ctx, audit, move |txn| {
            ops::key_for_read(txn, &op_ctx, &id, action)
        })
        .await
    }
}
