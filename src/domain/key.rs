//! Keys: specs, usages, states, and the rules that relate them.

use super::error::{Error, Reason, Result};
use super::names::{KeyId, Scope};
use super::time::Millis;

/// SM2 keys can be created and described, but there is no maintained
/// library this server uses that implements SM2: they cannot be used.
pub fn sm2_unsupported() -> Error {
    Error::new(
        Reason::SM2_UNSUPPORTED,
        "SM2 keys cannot be used on this server: no maintained cryptographic library it uses \
         implements SM2.",
    )
}

/// Longest key description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 8192;
/// Default, shortest and longest pending-deletion window, in days.
pub const DEFAULT_PENDING_WINDOW_DAYS: i32 = 30;
pub const MIN_PENDING_WINDOW_DAYS: i32 = 7;
pub const MAX_PENDING_WINDOW_DAYS: i32 = 30;
pub const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

named_enum!(
    /// The algorithm family and size of a key.
    KeySpec {
        SYMMETRIC_DEFAULT, RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384,
        ECC_NIST_P521, ECC_SECG_P256K1, HMAC_224, HMAC_256, HMAC_384, HMAC_512, SM2,
    }
);

named_enum!(
    /// What a key may be used for.
    KeyUsage { ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT }
);

named_enum!(
    /// Where a key is in its lifecycle.
    KeyState { ENABLED, DISABLED, PENDING_DELETION }
);

named_enum!(
    /// Who manages a key.
    KeyManager { CUSTOMER, PROVIDER }
);

named_enum!(
    /// How a key's material version came to be, after its first.
    RotationType { AUTOMATIC, ON_DEMAND }
);

/// Default, shortest and longest period of automatic rotation, in days.
pub const DEFAULT_ROTATION_PERIOD_DAYS: i32 = 365;
pub const MIN_ROTATION_PERIOD_DAYS: i32 = 90;
pub const MAX_ROTATION_PERIOD_DAYS: i32 = 2560;
/// How many times a key may be rotated on demand.
pub const MAX_ON_DEMAND_ROTATIONS: usize = 25;

/// The key class UpdateAlias compares: an alias may only move between keys of
/// one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    Symmetric,
    Hmac,
    Asymmetric,
}

impl KeySpec {
    pub fn class(self) -> KeyClass {
        use KeySpec::*;
        match self {
            SYMMETRIC_DEFAULT => KeyClass::Symmetric,
            HMAC_224 | HMAC_256 | HMAC_384 | HMAC_512 => KeyClass::Hmac,
            _ => KeyClass::Asymmetric,
        }
    }

    /// The usages this spec supports.
    pub fn usages(self) -> &'static [KeyUsage] {
        use KeySpec::*;
        use KeyUsage::*;
        match self {
            SYMMETRIC_DEFAULT => &[ENCRYPT_DECRYPT],
            HMAC_224 | HMAC_256 | HMAC_384 | HMAC_512 => &[GENERATE_VERIFY_MAC],
            RSA_2048 | RSA_3072 | RSA_4096 => &[ENCRYPT_DECRYPT, SIGN_VERIFY],
            ECC_NIST_P256 | ECC_NIST_P384 | ECC_NIST_P521 => &[SIGN_VERIFY, KEY_AGREEMENT],
            ECC_SECG_P256K1 => &[SIGN_VERIFY],
            SM2 => &[ENCRYPT_DECRYPT, SIGN_VERIFY, KEY_AGREEMENT],
        }
    }

    /// Resolves the (spec, usage) pair of a CreateKey call: an unset spec is
    /// SYMMETRIC_DEFAULT, an unset usage is allowed only for it.
    pub fn resolve_pair(
        spec: Option<KeySpec>,
        usage: Option<KeyUsage>,
    ) -> Result<(KeySpec, KeyUsage)> {
        let spec = spec.unwrap_or(KeySpec::SYMMETRIC_DEFAULT);
        let usage = match usage {
            Some(usage) => usage,
            None if spec == KeySpec::SYMMETRIC_DEFAULT => KeyUsage::ENCRYPT_DECRYPT,
            None => {
                return Err(Error::invalid(
                    Reason::INVALID_KEY_USAGE,
                    "key_usage",
                    format!(
                        "key_usage is required for key spec {}; valid usages: {}.",
                        spec.as_str(),
                        list(spec.usages())
                    ),
                )
                .with_kms_message(
                    "You must specify a KeyUsage value for all KMS keys except for symmetric \
                     encryption keys.",
                ))
            }
        };
        if !spec.usages().contains(&usage) {
            return Err(Error::invalid(
                Reason::INVALID_KEY_USAGE,
                "key_usage",
                format!(
                    "Key usage {} is not valid for key spec {}; valid usages: {}.",
                    usage.as_str(),
                    spec.as_str(),
                    list(spec.usages())
                ),
            )
            .with_kms_message(format!(
                "KeyUsage {} is not compatible with KeySpec {}",
                usage.as_str(),
                spec.as_str()
            )));
        }
        Ok((spec, usage))
    }
}

fn list(usages: &[KeyUsage]) -> String {
    usages
        .iter()
        .map(|u| u.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A key's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub key_id: KeyId,
    pub description: String,
    pub key_spec: KeySpec,
    pub key_usage: KeyUsage,
    pub key_state: KeyState,
    pub key_manager: KeyManager,
    pub creation_time: Millis,
    pub deletion_time: Option<Millis>,
    pub pending_window_in_days: i32,
    /// The key's material, oldest first: version 0 from its creation, one
    /// more per rotation. Empty for an SM2 key (none can be made), and for a
    /// key stored before keys had material until the server gives it some.
    pub materials: Vec<KeyMaterial>,
    /// Automatic rotation, when enabled.
    pub rotation: Option<AutoRotation>,
    /// Tags (TagResource), in key order.
    pub tags: super::key_details::Tags,
    /// The key policy as given (PutKeyPolicy, CreateKey's Policy); None:
    /// AWS's default policy for the account.
    pub policy: Option<String>,
}

/// One version of a key's material. The material itself is only ever held
/// here wrapped under the root key (see `crypto::RootKey`).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// 0 for the key's first material, then 1, 2, ... (ciphertexts name it).
    pub version: u32,
    /// AWS's KeyMaterialId: 64 lowercase hex digits, random, never reused.
    pub id: String,
    pub created: Millis,
    /// How it came: with the key (None), or by a rotation.
    pub rotation: Option<RotationType>,
    /// The material wrapped under the root key, bound to the account, the
    /// key id and `id`.
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("version", &self.version)
            .field("id", &self.id)
            .field("created", &self.created)
            .field("rotation", &self.rotation)
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// A key's automatic rotation: every `period_days`, next at `next`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoRotation {
    pub period_days: i32,
    pub next: Millis,
}

/// Material made for a key, not yet given a version (the transaction that
/// stores it numbers it).
#[derive(Clone, PartialEq, Eq)]
pub struct NewMaterial {
    pub id: String,
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for NewMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NewMaterial({})", self.id)
    }
}

/// Resolves a rotation period: None means the default (365); otherwise
/// 90..2560 days.
pub fn resolve_rotation_period(days: Option<i32>) -> Result<i32> {
    match days {
        None => Ok(DEFAULT_ROTATION_PERIOD_DAYS),
        Some(days @ MIN_ROTATION_PERIOD_DAYS..=MAX_ROTATION_PERIOD_DAYS) => Ok(days),
        Some(days) => Err(Error::invalid(
            Reason::INVALID_PARAMETER,
            "rotation_period_in_days",
            super::error::out_of_range(
                "rotationPeriodInDays",
                days.into(),
                MIN_ROTATION_PERIOD_DAYS.into(),
                MAX_ROTATION_PERIOD_DAYS.into(),
            ),
        )),
    }
}

/// Checks a description's length (0..8192 characters).
pub fn check_description(description: &str) -> Result<()> {
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            Reason::INVALID_DESCRIPTION,
            "description",
            format!("Description must be at most {MAX_DESCRIPTION_CHARS} characters; got {chars}."),
        ));
    }
    Ok(())
}

/// Resolves a pending window: 0 means the default; otherwise 7..30.
pub fn resolve_pending_window(days: i32) -> Result<i32> {
    match days {
        0 => Ok(DEFAULT_PENDING_WINDOW_DAYS),
        MIN_PENDING_WINDOW_DAYS..=MAX_PENDING_WINDOW_DAYS => Ok(days),
        _ => Err(Error::invalid(
            Reason::INVALID_PENDING_WINDOW,
            "pending_window_in_days",
            format!(
                "pending_window_in_days must be between {MIN_PENDING_WINDOW_DAYS} and \
                 {MAX_PENDING_WINDOW_DAYS}; got {days}."
            ),
        )
        .with_kms_message(super::error::out_of_range(
            "pendingWindowInDays",
            i64::from(days),
            i64::from(MIN_PENDING_WINDOW_DAYS),
            i64::from(MAX_PENDING_WINDOW_DAYS),
        ))),
    }
}

impl Key {
    pub fn is_pending_deletion(&self) -> bool {
        self.key_state == KeyState::PENDING_DELETION
    }

    /// Fails unless this key may be changed or targeted through the API.
    pub fn ensure_customer(&self, scope: &Scope) -> Result<()> {
        if self.key_manager == KeyManager::PROVIDER {
            return Err(Error::new(
                Reason::PROVIDER_KEY,
                format!(
                    "Key '{}' is a provider-managed key: it cannot be changed, and no alias can be \
                     pointed at it, through the API.",
                    scope.key_arn(&self.key_id)
                ),
            ));
        }
        Ok(())
    }

    fn invalid_state(&self, scope: &Scope, action: &str) -> Error {
        Error::new(
            Reason::KEY_INVALID_STATE,
            format!(
                "Key '{}' is {}; {action}.",
                scope.key_arn(&self.key_id),
                self.key_state.as_str()
            ),
        )
    }

    /// EnableKey / DisableKey: switches between ENABLED and DISABLED; the same
    /// state is a no-op; not allowed while pending deletion.
    pub fn set_enabled(&self, scope: &Scope, enabled: bool) -> Result<Key> {
        self.ensure_customer(scope)?;
        if self.is_pending_deletion() {
            return Err(self.invalid_state(
                scope,
                "a key pending deletion cannot be enabled or disabled (cancel the deletion first)",
            ));
        }
        let mut key = self.clone();
        key.key_state = if enabled {
            KeyState::ENABLED
        } else {
            KeyState::DISABLED
        };
        Ok(key)
    }

    /// ScheduleKeyDeletion with a resolved window of days `day_millis` long.
    pub fn schedule_deletion(
        &self,
        scope: &Scope,
        window_days: i32,
        now: Millis,
        day_millis: i64,
    ) -> Result<Key> {
        self.ensure_customer(scope)?;
        if self.is_pending_deletion() {
            return Err(self.invalid_state(scope, "its deletion is already scheduled"));
        }
        let mut key = self.clone();
        key.key_state = KeyState::PENDING_DELETION;
        key.deletion_time =
            Some(now.saturating_add(i64::from(window_days).saturating_mul(day_millis)));
        key.pending_window_in_days = window_days;
        Ok(key)
    }

    /// CancelKeyDeletion: only from PENDING_DELETION; the key ends DISABLED.
    pub fn cancel_deletion(&self, scope: &Scope) -> Result<Key> {
        self.ensure_customer(scope)?;
        if !self.is_pending_deletion() {
            return Err(self.invalid_state(
                scope,
                "only a key pending deletion can have its deletion cancelled",
            ));
        }
        let mut key = self.clone();
        key.key_state = KeyState::DISABLED;
        key.deletion_time = None;
        key.pending_window_in_days = 0;
        Ok(key)
    }

    /// The material new ciphertexts, signatures and MACs use: the newest.
    pub fn current_material(&self) -> Option<&KeyMaterial> {
        self.materials.last()
    }

    /// The material of `version` (what a ciphertext names).
    pub fn material(&self, version: u32) -> Option<&KeyMaterial> {
        self.materials
            .get(version as usize)
            .filter(|m| m.version == version)
    }

    /// Fails unless the key can be used now by `operation`, which needs
    /// one of `usages` (KEY_USAGE_NOT_ALLOWED; checked first, as AWS does),
    /// is ENABLED (KEY_DISABLED unless `allow_disabled`, KEY_INVALID_STATE
    /// when pending deletion), and is not SM2 (SM2_UNSUPPORTED).
    pub fn ensure_usable(
        &self,
        scope: &Scope,
        usages: &[KeyUsage],
        operation: &str,
        allow_disabled: bool,
    ) -> Result<()> {
        if !usages.contains(&self.key_usage) {
            return Err(Error::new(
                Reason::KEY_USAGE_NOT_ALLOWED,
                format!(
                    "{} key usage is {} which is not valid for {operation}.",
                    scope.key_arn(&self.key_id),
                    self.key_usage.as_str()
                ),
            ));
        }
        self.ensure_state_allows_use(scope, allow_disabled)?;
        if self.key_spec == KeySpec::SM2 {
            return Err(sm2_unsupported());
        }
        Ok(())
    }

    /// KEY_DISABLED (`<arn> is disabled.`) or KEY_INVALID_STATE (`<arn> is
    /// pending deletion.`), as AWS words them.
    fn ensure_state_allows_use(&self, scope: &Scope, allow_disabled: bool) -> Result<()> {
        let arn = scope.key_arn(&self.key_id);
        match self.key_state {
            KeyState::ENABLED => Ok(()),
            KeyState::DISABLED if allow_disabled => Ok(()),
            KeyState::DISABLED => Err(Error::new(
                Reason::KEY_DISABLED,
                format!("{arn} is disabled."),
            )),
            KeyState::PENDING_DELETION => Err(Error::new(
                Reason::KEY_INVALID_STATE,
                format!("{arn} is pending deletion."),
            )),
        }
    }

    /// Whether the key's material can rotate (symmetric encryption keys).
    pub fn can_rotate(&self) -> bool {
        self.key_spec == KeySpec::SYMMETRIC_DEFAULT
    }

    /// Fails unless the key's rotation may be changed: a CUSTOMER key that
    /// is ENABLED (checked first, as AWS does), and symmetric.
    fn ensure_rotatable(&self, scope: &Scope) -> Result<()> {
        self.ensure_customer(scope)?;
        self.ensure_state_allows_use(scope, false)?;
        if !self.can_rotate() {
            return Err(Error::new(
                Reason::UNSUPPORTED_OPERATION,
                format!(
                    "{} is a {} key; only symmetric encryption keys (SYMMETRIC_DEFAULT) can be \
                     rotated.",
                    scope.key_arn(&self.key_id),
                    self.key_spec.as_str()
                ),
            ));
        }
        Ok(())
    }

    /// EnableKeyRotation with a resolved period: the next rotation is a
    /// period after the newest material (or after now, if rotation was off).
    pub fn enable_rotation(
        &self,
        scope: &Scope,
        period_days: i32,
        now: Millis,
        day_millis: i64,
    ) -> Result<Key> {
        self.ensure_rotatable(scope)?;
        let base = match (self.rotation, self.current_material()) {
            (Some(_), Some(newest)) => newest.created,
            _ => now,
        };
        let period = i64::from(period_days).saturating_mul(day_millis);
        let mut key = self.clone();
        key.rotation = Some(AutoRotation {
            period_days,
            next: base.saturating_add(period).max(now),
        });
        Ok(key)
    }

    /// DisableKeyRotation: a key that cannot rotate has nothing to
    /// disable, and the call succeeds (as AWS answers).
    pub fn disable_rotation(&self, scope: &Scope) -> Result<Key> {
        self.ensure_customer(scope)?;
        self.ensure_state_allows_use(scope, false)?;
        let mut key = self.clone();
        key.rotation = None;
        Ok(key)
    }

    /// Adds `material` as the key's newest version: RotateKeyOnDemand (at
    /// most [`MAX_ON_DEMAND_ROTATIONS`] times; the automatic schedule is
    /// unchanged) or a due automatic rotation (the next one a period on).
    pub fn rotate(
        &self,
        scope: &Scope,
        material: NewMaterial,
        kind: RotationType,
        now: Millis,
        day_millis: i64,
    ) -> Result<Key> {
        self.ensure_rotatable(scope)?;
        let on_demand = self
            .materials
            .iter()
            .filter(|m| m.rotation == Some(RotationType::ON_DEMAND))
            .count();
        if kind == RotationType::ON_DEMAND && on_demand >= MAX_ON_DEMAND_ROTATIONS {
            return Err(Error::new(
                Reason::ROTATION_QUOTA_EXCEEDED,
                format!(
                    "The on-demand rotations limit has been reached for the given keyId. No more \
                     on-demand rotations can be performed for this key: {}",
                    scope.key_arn(&self.key_id)
                ),
            ));
        }
        let mut key = self.clone();
        key.push_material(material, Some(kind), now);
        if let (RotationType::AUTOMATIC, Some(rotation)) = (kind, key.rotation.as_mut()) {
            let period = i64::from(rotation.period_days).saturating_mul(day_millis);
            rotation.next = now.saturating_add(period);
        }
        Ok(key)
    }

    /// Appends `material` as the next version.
    pub fn push_material(
        &mut self,
        material: NewMaterial,
        rotation: Option<RotationType>,
        now: Millis,
    ) {
        let version = self.materials.len() as u32;
        self.materials.push(KeyMaterial {
            version,
            id: material.id,
            created: now,
            rotation,
            wrapped: material.wrapped,
        });
    }

    /// True once automatic rotation is due.
    pub fn is_due_for_rotation(&self, now: Millis) -> bool {
        self.rotation.is_some_and(|r| r.next <= now)
    }

    /// True once a pending deletion's time has come.
    pub fn is_due_for_removal(&self, now: Millis) -> bool {
        self.is_pending_deletion() && self.deletion_time.is_some_and(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_usage_pairs_follow_the_table() {
        use KeySpec::*;
        use KeyUsage::*;
        let ok = |s, u| KeySpec::resolve_pair(Some(s), Some(u)).is_ok();
        assert!(ok(SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT));
        assert!(!ok(SYMMETRIC_DEFAULT, SIGN_VERIFY));
        assert!(ok(HMAC_384, GENERATE_VERIFY_MAC));
        assert!(!ok(HMAC_384, ENCRYPT_DECRYPT));
        assert!(ok(RSA_3072, SIGN_VERIFY) && ok(RSA_3072, ENCRYPT_DECRYPT));
        assert!(!ok(RSA_3072, KEY_AGREEMENT));
        assert!(ok(ECC_NIST_P521, KEY_AGREEMENT) && !ok(ECC_NIST_P521, ENCRYPT_DECRYPT));
        assert!(ok(ECC_SECG_P256K1, SIGN_VERIFY) && !ok(ECC_SECG_P256K1, KEY_AGREEMENT));
        assert!(ok(SM2, ENCRYPT_DECRYPT) && ok(SM2, SIGN_VERIFY) && ok(SM2, KEY_AGREEMENT));
        assert!(!ok(SM2, GENERATE_VERIFY_MAC));
    }

    #[test]
    fn unset_spec_and_usage_default_to_symmetric_encrypt() {
        assert_eq!(
            KeySpec::resolve_pair(None, None).unwrap(),
            (KeySpec::SYMMETRIC_DEFAULT, KeyUsage::ENCRYPT_DECRYPT)
        );
        let err = KeySpec::resolve_pair(Some(KeySpec::RSA_2048), None).unwrap_err();
        assert_eq!(err.reason, Reason::INVALID_KEY_USAGE);
    }

    #[test]
    fn pending_window_is_7_to_30_with_0_meaning_30() {
        assert_eq!(resolve_pending_window(0).unwrap(), 30);
        assert_eq!(resolve_pending_window(7).unwrap(), 7);
        assert!(resolve_pending_window(6).is_err());
        assert!(resolve_pending_window(31).is_err());
        assert!(resolve_pending_window(-1).is_err());
    }

    #[test]
    fn key_classes() {
        assert_eq!(KeySpec::SYMMETRIC_DEFAULT.class(), KeyClass::Symmetric);
        assert_eq!(KeySpec::HMAC_224.class(), KeyClass::Hmac);
        assert_eq!(KeySpec::SM2.class(), KeyClass::Asymmetric);
        assert_eq!(KeySpec::RSA_4096.class(), KeyClass::Asymmetric);
    }
}
