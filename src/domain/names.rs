//! Names and identifiers: alias names, key ids, ARNs and key references.
//! Handlers parse every incoming string into one of these types, so the rest
//! of the code never sees an unchecked name.

use std::fmt;

use super::error::{Error, Reason, Result};

/// Longest alias name, in characters (rule 1).
pub const MAX_ALIAS_NAME_CHARS: usize = 256;
/// Longest key reference accepted (key id, ARN or alias), in characters.
pub const MAX_KEY_REF_CHARS: usize = 2048;
const ALIAS_PREFIX: &str = "alias/";
const RESERVED_PREFIX: &str = "alias/aws/";
const RESERVED_SUFFIX: &str = "/default";

/// Where resources live: the ARN partition, the region and the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Scope {
    pub fn key_arn(&self, key_id: &KeyId) -> String {
        self.key_arn_of(key_id.as_str())
    }

    /// The key ARN of any id, even one that names no key aliasd can hold.
    pub fn key_arn_of(&self, key_id: &str) -> String {
        format!(
            "arn:{}:kms:{}:{}:key/{}",
            self.partition, self.region, self.account, key_id
        )
    }

    /// `arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME`, built in one
    /// allocation of the exact size (a listing builds one per alias).
    pub fn alias_arn(&self, alias_name: &AliasName) -> String {
        let parts = [
            "arn:",
            &self.partition,
            ":kms:",
            &self.region,
            ":",
            &self.account,
            ":",
            alias_name.as_str(),
        ];
        let mut arn = String::with_capacity(parts.iter().map(|p| p.len()).sum());
        parts.iter().for_each(|part| arn.push_str(part));
        arn
    }
}

/// Account, region and partition: 1..64 of A-Z a-z 0-9 -, so ARNs parse.
pub fn is_arn_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A count with its noun in the right number: `1 alias`, `2 aliases`.
pub fn counted(count: impl Into<u64>, one: &str, many: &str) -> String {
    match count.into() {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// Quotes a caller's string for an error message: escaped, and cut short so
/// that a megabyte of garbage does not come back in the message.
pub fn quoted(input: &str) -> String {
    const SHOWN: usize = 300;
    let shown: String = input.chars().take(SHOWN).collect();
    let escaped = format!("{shown:?}");
    if input.chars().count() > SHOWN {
        format!("{}...\"", &escaped[..escaped.len() - 1])
    } else {
        escaped
    }
}

/// Fails with FIELD_TOO_LONG when `value` has more than `max` characters.
pub fn check_length(field: &'static str, value: &str, max: usize) -> Result<()> {
    let chars = value.chars().count();
    if chars > max {
        return Err(Error::invalid(
            Reason::FIELD_TOO_LONG,
            field,
            format!("{field} must be at most {max} characters; got {chars}."),
        ));
    }
    Ok(())
}

/// A syntactically valid alias name (rules 1 to 3). Rule 4 (reserved names)
/// is a question of permission, asked with [`AliasName::is_reserved`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AliasName(String);

impl AliasName {
    /// Checks rules 1 to 3, in that order.
    pub fn parse(field: &'static str, input: &str) -> Result<AliasName> {
        let invalid = |message: String| Error::invalid(Reason::INVALID_ALIAS_NAME, field, message);
        let chars = input.chars().count();
        if chars == 0 {
            return Err(invalid(format!("{field} is required.")));
        }
        if chars > MAX_ALIAS_NAME_CHARS {
            return Err(invalid(format!(
                "Alias name must be at most {MAX_ALIAS_NAME_CHARS} characters; got {chars}."
            )));
        }
        if !input.starts_with(ALIAS_PREFIX) || input.len() == ALIAS_PREFIX.len() {
            return Err(invalid(format!(
                "Alias name {} must begin with 'alias/' followed by at least one character.",
                quoted(input)
            ))
            .with_kms_message(
                "Alias must start with the prefix \"alias/\". Please see \
                 https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
            ));
        }
        if let Some(bad) = input
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-')))
        {
            return Err(invalid(format!(
                "Alias name {} contains {bad:?}; only A-Z a-z 0-9 / _ - are allowed.",
                quoted(input)
            ))
            .with_kms_message(format!(
                "1 validation error detected: Value '{input}' at '{}' failed to satisfy \
                 constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
                super::error::member_name(field)
            )));
        }
        Ok(AliasName(input.to_owned()))
    }

    /// Rule 4: names beginning `alias/aws/` or ending `/default` belong to
    /// PROVIDER keys.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_PREFIX) || self.0.ends_with(RESERVED_SUFFIX)
    }

    /// Fails with RESERVED_ALIAS when rule 4 forbids changing this name
    /// through the API.
    pub fn ensure_not_reserved(&self, scope: &Scope) -> Result<()> {
        if self.is_reserved() {
            return Err(Error::new(
                Reason::RESERVED_ALIAS,
                format!(
                    "Alias {} is reserved for provider keys (names beginning 'alias/aws/' or \
                     ending '/default') and cannot be created, changed or deleted through the API.",
                    scope.alias_arn(self)
                ),
            ));
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For names read back from storage, which were checked when written.
    pub fn from_trusted(name: String) -> AliasName {
        AliasName(name)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key id: a lowercase UUID, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// A fresh random (v4) key id.
    pub fn generate() -> KeyId {
        KeyId(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Accepts exactly the lowercase hyphenated UUID form.
    pub fn parse(field: &'static str, input: &str) -> Result<KeyId> {
        if is_lowercase_uuid(input) {
            Ok(KeyId(input.to_owned()))
        } else {
            Err(Error::invalid(
                Reason::INVALID_KEY_ID,
                field,
                format!(
                    "Invalid key id {}: expected a key id (lowercase UUID such as \
                     1234abcd-12ab-34cd-56ef-1234567890ab) or a key ARN.",
                    quoted(input)
                ),
            )
            .with_kms_message(format!("Invalid keyId '{input}'")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For ids read back from storage, which were checked when written.
    pub fn from_trusted(id: String) -> KeyId {
        KeyId(id)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for `8-4-4-4-12` lowercase hex digits.
pub fn is_lowercase_uuid(input: &str) -> bool {
    let bytes = input.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// What a caller named: a key or an alias, in one of four spellings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Key(KeyId),
    Alias(AliasName),
}

impl KeyRef {
    /// Parses a *key reference*: key id, key ARN, alias name or alias ARN.
    /// An ARN of another partition, region or account is NOT_FOUND.
    pub fn parse(scope: &Scope, field: &'static str, input: &str) -> Result<KeyRef> {
        if input.is_empty() {
            return Err(Error::invalid(
                Reason::INVALID_KEY_ID,
                field,
                format!("{field} is required."),
            ));
        }
        if input.chars().count() > MAX_KEY_REF_CHARS {
            return Err(Error::invalid(
                Reason::INVALID_KEY_ID,
                field,
                format!("{field} must be at most {MAX_KEY_REF_CHARS} characters."),
            ));
        }
        if input.starts_with("arn:") {
            return Arn::parse(field, input)?.resolve(scope);
        }
        if input.starts_with(ALIAS_PREFIX) {
            return Ok(KeyRef::Alias(AliasName::parse(field, input)?));
        }
        if is_multi_region_id(input) {
            // A well-formed multi-Region key id: aliasd has none, so it
            // names no key (as AWS answers an unknown one).
            return Err(Error::new(
                Reason::KEY_NOT_FOUND,
                format!("Key '{}' does not exist", scope.key_arn_of(input)),
            ));
        }
        Ok(KeyRef::Key(KeyId::parse(field, input)?))
    }
}

/// `mrk-` and 32 lowercase hex digits: the form of a multi-Region key id.
fn is_multi_region_id(input: &str) -> bool {
    input.strip_prefix("mrk-").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Parses a *key id* parameter: a key id or key ARN. Alias forms are
/// INVALID_ARGUMENT (TARGET_NOT_A_KEY).
pub fn parse_key_id(scope: &Scope, field: &'static str, input: &str) -> Result<KeyId> {
    key_id_or(scope, field, input, || {
        format!(
            "{} is an alias; aliases must refer to keys: give a key id or key ARN.",
            quoted(input)
        )
    })
}

/// [`parse_key_id`] for an operation on a key (`kms:DisableKey`), whose
/// refusal of an alias names the operation.
pub fn parse_key_id_of(
    scope: &Scope,
    action: &str,
    field: &'static str,
    input: &str,
) -> Result<KeyId> {
    key_id_or(scope, field, input, || {
        format!(
            "{} takes a key id or key ARN, not an alias: {} is an alias.",
            action.trim_start_matches("kms:"),
            quoted(input)
        )
    })
}

fn key_id_or(
    scope: &Scope,
    field: &'static str,
    input: &str,
    an_alias: impl FnOnce() -> String,
) -> Result<KeyId> {
    match KeyRef::parse(scope, field, input) {
        Ok(KeyRef::Key(id)) => Ok(id),
        // An alias ARN of another account is still the wrong kind of thing.
        Ok(KeyRef::Alias(_))
        | Err(Error {
            reason: Reason::ALIAS_NOT_FOUND,
            ..
        }) => Err(Error::invalid(Reason::TARGET_NOT_A_KEY, field, an_alias())),
        Err(other) => Err(other),
    }
}

/// Parses an alias name or alias ARN (GetAlias).
pub fn parse_alias_ref(scope: &Scope, field: &'static str, input: &str) -> Result<AliasName> {
    if input.starts_with("arn:") {
        return match Arn::parse(field, input)?.resolve(scope)? {
            KeyRef::Alias(name) => Ok(name),
            KeyRef::Key(_) => Err(Error::invalid(
                Reason::INVALID_ALIAS_NAME,
                field,
                format!(
                    "{} is a key ARN; expected an alias name or alias ARN.",
                    quoted(input)
                ),
            )),
        };
    }
    AliasName::parse(field, input)
}

/// A parsed KMS ARN, not yet checked against the server's scope.
struct Arn<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
    resource: KeyRef,
    input: &'a str,
}

impl<'a> Arn<'a> {
    fn parse(field: &'static str, input: &'a str) -> Result<Arn<'a>> {
        let invalid = || {
            Error::invalid(
                Reason::INVALID_ARN,
                field,
                format!(
                    "Invalid ARN {}: expected arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or \
                     arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME.",
                    quoted(input)
                ),
            )
        };
        let parts: Vec<&str> = input.splitn(6, ':').collect();
        let [arn, partition, service, region, account, resource] = parts[..] else {
            return Err(invalid());
        };
        let well_formed_segment =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if arn != "arn"
            || service != "kms"
            || !well_formed_segment(partition)
            || !well_formed_segment(region)
            || !well_formed_segment(account)
        {
            return Err(invalid());
        }
        let resource = if let Some(id) = resource.strip_prefix("key/") {
            // Not KeyId::parse's message: it would say "Invalid key id" after
            // "Invalid ARN", and offer a key ARN inside a key ARN.
            if !is_lowercase_uuid(id) {
                return Err(Error::invalid(
                    Reason::INVALID_KEY_ID,
                    field,
                    format!(
                        "Invalid ARN {}: its key id {} is not a lowercase UUID such as \
                         1234abcd-12ab-34cd-56ef-1234567890ab.",
                        quoted(input),
                        quoted(id)
                    ),
                ));
            }
            KeyRef::Key(KeyId(id.to_owned()))
        } else if resource.starts_with(ALIAS_PREFIX) {
            // The name's own message begins "Alias name ...": no repetition.
            let name = AliasName::parse(field, resource).map_err(|error| {
                Error::invalid(
                    error.reason,
                    field,
                    format!("Invalid ARN {}: {}", quoted(input), error.message),
                )
            })?;
            KeyRef::Alias(name)
        } else {
            return Err(invalid());
        };
        Ok(Arn {
            partition,
            region,
            account,
            resource,
            input,
        })
    }

    /// An ARN outside the caller's scope names nothing the caller can see.
    fn resolve(self, scope: &Scope) -> Result<KeyRef> {
        if self.partition == scope.partition
            && self.region == scope.region
            && self.account == scope.account
        {
            return Ok(self.resource);
        }
        Err(match self.resource {
            KeyRef::Key(_) if self.region != scope.region => Error::new(
                Reason::KEY_NOT_FOUND,
                format!(
                    "Key '{}' does not exist: this server serves region {}, not {}.",
                    self.input, scope.region, self.region
                ),
            )
            .with_kms_message(format!("Invalid arn {}", self.region)),
            KeyRef::Key(_) => Error::new(
                Reason::KEY_NOT_FOUND,
                format!("Key '{}' does not exist", self.input),
            ),
            KeyRef::Alias(_) => Error::new(
                Reason::ALIAS_NOT_FOUND,
                format!("Alias {} is not found.", self.input),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "000000000000".into(),
        }
    }

    const ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn alias_name_rules_apply_in_order() {
        let reason = |s: &str| AliasName::parse("alias_name", s).map_err(|e| e.message);
        assert!(reason("").unwrap_err().contains("required"));
        assert!(reason(&format!("alias/{}", "a".repeat(251)))
            .unwrap_err()
            .contains("at most 256"));
        assert!(reason("alias/").unwrap_err().contains("must begin"));
        assert!(reason("aliasx").unwrap_err().contains("must begin"));
        assert!(reason("alias/a:b").unwrap_err().contains("':'"));
        assert!(reason("alias/a b").unwrap_err().contains("' '"));
        assert!(reason(&format!("alias/{}", "a".repeat(250))).is_ok());
        assert!(reason("alias/Payments_2024/eu-west-1").is_ok());
    }

    #[test]
    fn reserved_names_are_the_aws_prefix_and_default_suffix() {
        let reserved = |s: &str| AliasName::parse("n", s).unwrap().is_reserved();
        assert!(reserved("alias/aws/ebs"));
        assert!(reserved("alias/evs/default"));
        assert!(!reserved("alias/awsome"));
        assert!(!reserved("alias/defaults"));
    }

    #[test]
    fn key_refs_accept_four_spellings() {
        let s = scope();
        let key = KeyRef::Key(KeyId(ID.into()));
        assert_eq!(KeyRef::parse(&s, "k", ID).unwrap(), key);
        let arn = format!("arn:aws:kms:us-east-1:000000000000:key/{ID}");
        assert_eq!(KeyRef::parse(&s, "k", &arn).unwrap(), key);
        let alias = KeyRef::Alias(AliasName("alias/x".into()));
        assert_eq!(KeyRef::parse(&s, "k", "alias/x").unwrap(), alias);
        let alias_arn = "arn:aws:kms:us-east-1:000000000000:alias/x";
        assert_eq!(KeyRef::parse(&s, "k", alias_arn).unwrap(), alias);
    }

    #[test]
    fn arns_of_other_scopes_are_not_found_and_malformed_ones_invalid() {
        let s = scope();
        let reason = |input: &str| KeyRef::parse(&s, "k", input).unwrap_err().reason;
        let other_account = format!("arn:aws:kms:us-east-1:111111111111:key/{ID}");
        assert_eq!(reason(&other_account), Reason::KEY_NOT_FOUND);
        let other_region = "arn:aws:kms:eu-west-1:000000000000:alias/x";
        assert_eq!(reason(other_region), Reason::ALIAS_NOT_FOUND);
        assert_eq!(reason("arn:aws:s3:::bucket"), Reason::INVALID_ARN);
        assert_eq!(
            reason("arn:aws:kms:us-east-1:000000000000:key/nope"),
            Reason::INVALID_KEY_ID
        );
        assert_eq!(reason(&ID.to_uppercase()), Reason::INVALID_KEY_ID);
        assert_eq!(reason(""), Reason::INVALID_KEY_ID);
    }

    #[test]
    fn a_bad_id_or_name_inside_an_arn_is_reported_once_with_the_whole_arn() {
        let s = scope();
        let message = |input: &str| KeyRef::parse(&s, "key_id", input).unwrap_err().message;
        assert_eq!(
            message("arn:aws:kms:us-east-1:000000000000:key/nope"),
            "Invalid ARN \"arn:aws:kms:us-east-1:000000000000:key/nope\": its key id \"nope\" \
             is not a lowercase UUID such as 1234abcd-12ab-34cd-56ef-1234567890ab."
        );
        assert_eq!(
            message("arn:aws:kms:us-east-1:000000000000:alias/a b"),
            "Invalid ARN \"arn:aws:kms:us-east-1:000000000000:alias/a b\": Alias name \
             \"alias/a b\" contains ' '; only A-Z a-z 0-9 / _ - are allowed."
        );
        assert_eq!(
            message("arn:aws:kms:us-east-1:000000000000:bucket/x"),
            "Invalid ARN \"arn:aws:kms:us-east-1:000000000000:bucket/x\": expected \
             arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID or arn:PARTITION:kms:REGION:ACCOUNT:alias/NAME."
        );
        assert_eq!(
            message("nope"),
            "Invalid key id \"nope\": expected a key id (lowercase UUID such as \
             1234abcd-12ab-34cd-56ef-1234567890ab) or a key ARN."
        );
    }

    #[test]
    fn key_id_parameters_refuse_aliases() {
        let s = scope();
        let reason = |input: &str| parse_key_id(&s, "target_key_id", input).unwrap_err().reason;
        assert_eq!(reason("alias/x"), Reason::TARGET_NOT_A_KEY);
        assert_eq!(
            reason("arn:aws:kms:us-east-1:000000000000:alias/x"),
            Reason::TARGET_NOT_A_KEY
        );
        assert_eq!(
            reason("arn:aws:kms:us-east-1:999999999999:alias/x"),
            Reason::TARGET_NOT_A_KEY
        );
    }

    #[test]
    fn generated_key_ids_parse() {
        let id = KeyId::generate();
        assert_eq!(KeyId::parse("k", id.as_str()).unwrap(), id);
    }

    #[test]
    fn quoted_cuts_long_input() {
        let q = quoted(&"x".repeat(10_000));
        assert!(q.len() < 400 && q.ends_with("...\""));
    }
}
