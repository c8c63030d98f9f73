//! Who may do what: principals, their policy statements, and the check
//! every operation makes before it touches a resource.
//!
//! A statement allows actions (`kms:CreateAlias`, `kms:Describe*`, `kms:*`)
//! on resources (alias name patterns such as `alias/payments-*`, key ids,
//! `*`). `*` in a pattern matches any run of characters. Actions compare
//! without regard to case, as in IAM. Account-wide actions (CreateKey,
//! ListKeys, an unfiltered ListAliases or WatchAliases, ListAuditEvents) act
//! on the resource `*`, which only the pattern `*` matches.
//!
//! Some actions must be granted on purpose: no wildcard (`kms:List*`,
//! `kms:*`, `*`) grants them, only their exact name. Reading the audit log is
//! one: a deployer given `kms:List*` must not read the whole account's audit.

use std::fmt;

use super::error::{Error, Reason, Result};

/// The actions, as policy statements name them.
pub mod actions {
    pub const CREATE_KEY: &str = "kms:CreateKey";
    pub const DESCRIBE_KEY: &str = "kms:DescribeKey";
    pub const LIST_KEYS: &str = "kms:ListKeys";
    pub const ENABLE_KEY: &str = "kms:EnableKey";
    pub const DISABLE_KEY: &str = "kms:DisableKey";
    pub const SCHEDULE_KEY_DELETION: &str = "kms:ScheduleKeyDeletion";
    pub const CANCEL_KEY_DELETION: &str = "kms:CancelKeyDeletion";
    pub const CREATE_ALIAS: &str = "kms:CreateAlias";
    pub const UPDATE_ALIAS: &str = "kms:UpdateAlias";
    pub const DELETE_ALIAS: &str = "kms:DeleteAlias";
    pub const RENAME_ALIAS: &str = "kms:RenameAlias";
    pub const GET_ALIAS: &str = "kms:GetAlias";
    pub const LIST_ALIASES: &str = "kms:ListAliases";
    pub const WATCH_ALIASES: &str = "kms:WatchAliases";
    pub const LIST_AUDIT_EVENTS: &str = "kms:ListAuditEvents";
    /// A snapshot of the whole server (every account): AdminService/Backup.
    pub const BACKUP: &str = "kms:Backup";
    pub const ENCRYPT: &str = "kms:Encrypt";
    pub const DECRYPT: &str = "kms:Decrypt";
    pub const RE_ENCRYPT_FROM: &str = "kms:ReEncryptFrom";
    pub const RE_ENCRYPT_TO: &str = "kms:ReEncryptTo";
    pub const GENERATE_DATA_KEY: &str = "kms:GenerateDataKey";
    pub const GENERATE_DATA_KEY_WITHOUT_PLAINTEXT: &str = "kms:GenerateDataKeyWithoutPlaintext";
    pub const GENERATE_DATA_KEY_PAIR: &str = "kms:GenerateDataKeyPair";
    pub const GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT: &str =
        "kms:GenerateDataKeyPairWithoutPlaintext";
    pub const SIGN: &str = "kms:Sign";
    pub const VERIFY: &str = "kms:Verify";
    pub const GET_PUBLIC_KEY: &str = "kms:GetPublicKey";
    pub const GENERATE_MAC: &str = "kms:GenerateMac";
    pub const VERIFY_MAC: &str = "kms:VerifyMac";
    /// Account-wide: it uses no key.
    pub const GENERATE_RANDOM: &str = "kms:GenerateRandom";
    pub const ENABLE_KEY_ROTATION: &str = "kms:EnableKeyRotation";
    pub const DISABLE_KEY_ROTATION: &str = "kms:DisableKeyRotation";
    pub const GET_KEY_ROTATION_STATUS: &str = "kms:GetKeyRotationStatus";
    pub const ROTATE_KEY_ON_DEMAND: &str = "kms:RotateKeyOnDemand";
    pub const LIST_KEY_ROTATIONS: &str = "kms:ListKeyRotations";
    pub const TAG_RESOURCE: &str = "kms:TagResource";
    pub const UNTAG_RESOURCE: &str = "kms:UntagResource";
    pub const LIST_RESOURCE_TAGS: &str = "kms:ListResourceTags";
    pub const GET_KEY_POLICY: &str = "kms:GetKeyPolicy";
    pub const PUT_KEY_POLICY: &str = "kms:PutKeyPolicy";
    pub const LIST_KEY_POLICIES: &str = "kms:ListKeyPolicies";
    pub const UPDATE_KEY_DESCRIPTION: &str = "kms:UpdateKeyDescription";

    /// The actions that change something (a deadline that passes during
    /// one of them may still see it commit).
    pub const CHANGES: &[&str] = &[
        CREATE_KEY,
        ENABLE_KEY,
        DISABLE_KEY,
        SCHEDULE_KEY_DELETION,
        CANCEL_KEY_DELETION,
        CREATE_ALIAS,
        UPDATE_ALIAS,
        DELETE_ALIAS,
        RENAME_ALIAS,
        ENABLE_KEY_ROTATION,
        DISABLE_KEY_ROTATION,
        ROTATE_KEY_ON_DEMAND,
        TAG_RESOURCE,
        UNTAG_RESOURCE,
        PUT_KEY_POLICY,
        UPDATE_KEY_DESCRIPTION,
    ];

    /// Actions that only a statement naming them exactly grants.
    pub const EXPLICIT_ONLY: &[&str] = &[LIST_AUDIT_EVENTS, BACKUP];

    /// Every action of the API.
    pub const ALL: &[&str] = &[
        CREATE_KEY,
        DESCRIBE_KEY,
        LIST_KEYS,
        ENABLE_KEY,
        DISABLE_KEY,
        SCHEDULE_KEY_DELETION,
        CANCEL_KEY_DELETION,
        CREATE_ALIAS,
        UPDATE_ALIAS,
        DELETE_ALIAS,
        RENAME_ALIAS,
        GET_ALIAS,
        LIST_ALIASES,
        WATCH_ALIASES,
        LIST_AUDIT_EVENTS,
        BACKUP,
        ENCRYPT,
        DECRYPT,
        RE_ENCRYPT_FROM,
        RE_ENCRYPT_TO,
        GENERATE_DATA_KEY,
        GENERATE_DATA_KEY_WITHOUT_PLAINTEXT,
        GENERATE_DATA_KEY_PAIR,
        GENERATE_DATA_KEY_PAIR_WITHOUT_PLAINTEXT,
        SIGN,
        VERIFY,
        GET_PUBLIC_KEY,
        GENERATE_MAC,
        VERIFY_MAC,
        GENERATE_RANDOM,
        ENABLE_KEY_ROTATION,
        DISABLE_KEY_ROTATION,
        GET_KEY_ROTATION_STATUS,
        ROTATE_KEY_ON_DEMAND,
        LIST_KEY_ROTATIONS,
        TAG_RESOURCE,
        UNTAG_RESOURCE,
        LIST_RESOURCE_TAGS,
        GET_KEY_POLICY,
        PUT_KEY_POLICY,
        LIST_KEY_POLICIES,
        UPDATE_KEY_DESCRIPTION,
    ];
}

/// The resource of account-wide actions.
pub const ANY_RESOURCE: &str = "*";

/// `*` matches any run of characters (including none); everything else
/// matches itself. Iterative, so no pattern can blow the stack.
pub fn glob_matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && eq(p[pi], t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whether a statement allows or denies what it matches (a deny wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effect {
    #[default]
    Allow,
    Deny,
}

/// Conditions on the aliases of a request (access by alias, ABAC): every
/// one given must hold for the statement to apply. Patterns are
/// `StringLike`: `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Condition {
    /// `kms:RequestAlias`: the alias the request named as its key matches
    /// one of these (a request that named no alias does not).
    pub request_alias: Option<Vec<String>>,
    /// `kms:ResourceAliases`: some alias the key has at the moment of the
    /// call matches one of these (ForAnyValue; a key with no alias, or a
    /// resource that is not a key, does not).
    pub resource_aliases: Option<Vec<String>>,
}

/// One statement: these actions on these resources are allowed (or
/// denied), when its condition holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Statement {
    pub effect: Effect,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub condition: Condition,
}

/// What the conditions of a call are decided on, besides its action and
/// resource: the alias the request named, and (read only when a statement
/// asks, in the call's own consistent read) the aliases the key has now.
pub struct Facts<'a> {
    pub request_alias: Option<&'a str>,
    pub resource_aliases: &'a mut dyn FnMut() -> Result<Vec<String>>,
}

impl Facts<'_> {
    /// No alias named, and no key aliases (account-wide and alias
    /// resources).
    pub fn none<R>(f: impl FnOnce(&mut Facts<'_>) -> R) -> R {
        let mut empty = || Ok(Vec::new());
        f(&mut Facts {
            request_alias: None,
            resource_aliases: &mut empty,
        })
    }
}

/// Whether a statement's action pattern grants `action`.
fn action_matches(pattern: &str, action: &str) -> bool {
    if actions::EXPLICIT_ONLY
        .iter()
        .any(|explicit| explicit.eq_ignore_ascii_case(action))
    {
        return pattern.eq_ignore_ascii_case(action);
    }
    glob_matches(pattern, action, true)
}

impl Statement {
    /// Whether the statement's actions and resources cover the call.
    fn covers(&self, action: &str, resource: &str) -> bool {
        self.actions.iter().any(|a| action_matches(a, action))
            && self.resources.iter().any(|r| {
                if resource == ANY_RESOURCE {
                    r == ANY_RESOURCE
                } else {
                    glob_matches(r, resource, false)
                }
            })
    }

    /// Whether the statement applies to the call: it covers it and its
    /// condition holds. `aliases` caches the key's aliases across
    /// statements.
    fn applies(
        &self,
        action: &str,
        resource: &str,
        facts: &mut Facts<'_>,
        aliases: &mut Option<Vec<String>>,
    ) -> Result<bool> {
        if !self.covers(action, resource) {
            return Ok(false);
        }
        let any = |patterns: &[String], value: &str| {
            patterns.iter().any(|p| glob_matches(p, value, false))
        };
        if let Some(patterns) = &self.condition.request_alias {
            match facts.request_alias {
                Some(alias) if any(patterns, alias) => {}
                _ => return Ok(false),
            }
        }
        if let Some(patterns) = &self.condition.resource_aliases {
            if aliases.is_none() {
                *aliases = Some((facts.resource_aliases)()?);
            }
            let held = aliases.as_deref().unwrap_or_default();
            if !held.iter().any(|alias| any(patterns, alias)) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub account: String,
    pub statements: Vec<Statement>,
    /// Huawei project ids this principal may name in a URL (its calls run in
    /// its account whatever the project); empty: any.
    pub project_ids: Vec<String>,
}

impl Principal {
    /// Whether some statement allows the call and none denies it, with no
    /// alias facts (account-wide and alias resources).
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        Facts::none(|facts| self.decide(action, resource, facts)).unwrap_or(false)
    }

    /// Whether some statement allows `action` on some resource (a door
    /// offers the forms of actions the caller may be allowed; the call
    /// itself is authorized as any other).
    pub fn may_be_allowed(&self, action: &str) -> bool {
        self.statements.iter().any(|statement| {
            statement.effect == Effect::Allow
                && statement.actions.iter().any(|a| action_matches(a, action))
        })
    }

    /// Whether some statement allows the call and none denies it: an
    /// explicit deny wins over any allow, as in IAM.
    pub fn decide(&self, action: &str, resource: &str, facts: &mut Facts<'_>) -> Result<bool> {
        let mut aliases = None;
        let mut allowed = false;
        for statement in &self.statements {
            if statement.applies(action, resource, facts, &mut aliases)? {
                match statement.effect {
                    Effect::Deny => return Ok(false),
                    Effect::Allow => allowed = true,
                }
            }
        }
        Ok(allowed)
    }
}

/// Who is calling: a principal from the auth file, or anyone (no auth file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    Principal(std::sync::Arc<Principal>),
}

impl Caller {
    /// The name recorded in audit records.
    pub fn name(&self) -> &str {
        match self {
            Caller::Anonymous => "anonymous",
            Caller::Principal(p) => &p.name,
        }
    }

    /// Fails with ACCESS_DENIED unless the caller may do `action` on
    /// `resource` (an alias name, a key id, or `*`).
    pub fn authorize(&self, action: &str, resource: &str) -> Result<()> {
        Facts::none(|facts| self.authorize_with(action, resource, facts))
    }

    /// [`Caller::authorize`] with the facts a statement's condition may
    /// test.
    pub fn authorize_with(
        &self,
        action: &str,
        resource: &str,
        facts: &mut Facts<'_>,
    ) -> Result<()> {
        match self {
            Caller::Anonymous => Ok(()),
            Caller::Principal(principal) if principal.decide(action, resource, facts)? => Ok(()),
            Caller::Principal(principal) => Err(Error::new(
                Reason::ACCESS_DENIED,
                format!(
                    "Principal '{}' is not allowed {action} on {}.",
                    principal.name,
                    if resource == ANY_RESOURCE {
                        "this account (resource '*')".to_owned()
                    } else {
                        format!("'{resource}'")
                    }
                ),
            )),
        }
    }
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_matches("*", "", false));
        assert!(glob_matches("alias/payments-*", "alias/payments-eu", false));
        assert!(!glob_matches("alias/payments-*", "alias/billing", false));
        assert!(glob_matches("kms:Describe*", "kms:DescribeKey", true));
        assert!(glob_matches("KMS:*", "kms:CreateAlias", true));
        assert!(!glob_matches("kms:Create*", "kms:DescribeKey", true));
        assert!(glob_matches("a*b*c", "axxbyyc", false));
        assert!(!glob_matches("a*b*c", "axxbyy", false));
        assert!(glob_matches("exact", "exact", false));
        assert!(!glob_matches("exact", "exactly", false));
        assert!(
            !glob_matches("Alias/x", "alias/x", false),
            "resources are case-sensitive"
        );
    }

    #[test]
    fn reading_the_audit_log_is_granted_only_by_name() {
        let with = |pattern: &str| {
            Caller::Principal(std::sync::Arc::new(Principal {
                project_ids: Vec::new(),
                name: "p".into(),
                account: "1".into(),
                statements: vec![Statement {
                    effect: Effect::Allow,
                    condition: Condition::default(),
                    actions: vec![pattern.into()],
                    resources: vec!["*".into()],
                }],
            }))
        };
        for wildcard in ["kms:List*", "kms:*", "*", "kms:ListAudit*"] {
            let caller = with(wildcard);
            assert_eq!(
                caller
                    .authorize(actions::LIST_AUDIT_EVENTS, ANY_RESOURCE)
                    .unwrap_err()
                    .reason,
                Reason::ACCESS_DENIED,
                "{wildcard} must not grant the audit log"
            );
        }
        assert!(with("kms:List*")
            .authorize(actions::LIST_ALIASES, ANY_RESOURCE)
            .is_ok());
        assert!(with("kms:ListAuditEvents")
            .authorize(actions::LIST_AUDIT_EVENTS, ANY_RESOURCE)
            .is_ok());
        assert!(with("KMS:listauditevents")
            .authorize(actions::LIST_AUDIT_EVENTS, ANY_RESOURCE)
            .is_ok());
    }

    #[test]
    fn account_wide_actions_need_the_star_resource() {
        let principal = Principal {
            project_ids: Vec::new(),
            name: "p".into(),
            account: "1".into(),
            statements: vec![Statement {
                effect: Effect::Allow,
                condition: Condition::default(),
                actions: vec!["kms:*".into()],
                resources: vec!["alias/*".into()],
            }],
        };
        let caller = Caller::Principal(std::sync::Arc::new(principal));
        assert!(caller.authorize(actions::CREATE_ALIAS, "alias/x").is_ok());
        assert_eq!(
            caller
                .authorize(actions::LIST_KEYS, ANY_RESOURCE)
                .unwrap_err()
                .reason,
            Reason::ACCESS_DENIED
        );
        assert!(caller
            .authorize(
                actions::CREATE_ALIAS,
                "1234abcd-12ab-34cd-56ef-1234567890ab"
            )
            .is_err());
    }
}
