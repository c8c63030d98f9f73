//! Keys: specs, usages, states, and the rules that relate them.

use super::error::{Error, Reason, Result};
use super::names::{KeyId, Scope};
use super::time::Millis;

/// Longest key description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 8192;
/// Default, shortest and longest pending-deletion window, in days.
pub const DEFAULT_PENDING_WINDOW_DAYS: i32 = 30;
pub const MIN_PENDING_WINDOW_DAYS: i32 = 7;
pub const MAX_PENDING_WINDOW_DAYS: i32 = 30;
pub const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident),* $(,)? }) => {
        $(#[$meta])*
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),* }
            }

            pub fn from_name(name: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|v| v.as_str() == name)
            }
        }
    };
}

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
            ));
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
        )),
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
