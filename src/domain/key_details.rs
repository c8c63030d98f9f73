//! What a key carries besides its material and state: tags and its key
//! policy, with AWS's rules for each.

use std::collections::BTreeMap;

use super::error::{Error, Reason, Result};
use super::names::Scope;

/// The most tags a key may have.
pub const MAX_TAGS: usize = 50;
/// The longest tag key, in characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// The longest tag value, in characters.
pub const MAX_TAG_VALUE_CHARS: usize = 256;
/// The largest key policy, in bytes (AWS's limit).
pub const MAX_POLICY_BYTES: usize = 32 * 1024;
/// The one policy name a key has.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// A key's tags: key -> value, in key order.
pub type Tags = BTreeMap<String, String>;

fn tag_error(message: impl Into<String>) -> Error {
    Error::invalid(Reason::TAG_REFUSED, "tags", message)
}

/// Checks tags given in one request, in AWS's order: each key's and
/// value's length (AWS's validation form, naming the tag's position), then
/// duplicate keys, reserved `aws:` keys, and the count.
pub fn check_tags(given: &[(String, String)]) -> Result<()> {
    for (i, (key, value)) in given.iter().enumerate() {
        let n = i + 1;
        let (key_chars, value_chars) = (key.chars().count(), value.chars().count());
        if key_chars == 0 || key_chars > MAX_TAG_KEY_CHARS {
            let bound = match key_chars {
                0 => "greater than or equal to 1".to_owned(),
                _ => format!("less than or equal to {MAX_TAG_KEY_CHARS}"),
            };
            return Err(Error::invalid(
                Reason::INVALID_PARAMETER,
                "tags",
                format!(
                    "1 validation error detected: Value '{key}' at 'tags.{n}.member.tagKey' \
                     failed to satisfy constraint: Member must have length {bound}"
                ),
            ));
        }
        if value_chars > MAX_TAG_VALUE_CHARS {
            return Err(Error::invalid(
                Reason::INVALID_PARAMETER,
                "tags",
                format!(
                    "1 validation error detected: Value '{value}' at 'tags.{n}.member.tagValue' \
                     failed to satisfy constraint: Member must have length less than or equal \
                     to {MAX_TAG_VALUE_CHARS}"
                ),
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    if given.iter().any(|(key, _)| !seen.insert(key.as_str())) {
        return Err(tag_error("Duplicate tag keys"));
    }
    if given
        .iter()
        .any(|(key, _)| key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")))
    {
        return Err(tag_error("Tags beginning with aws: are reserved"));
    }
    if given.len() > MAX_TAGS {
        return Err(tag_error("Too many tags"));
    }
    Ok(())
}

/// `existing` with `given` added (a given key replaces its value), or
/// TagException when the key would have more than [`MAX_TAGS`].
pub fn with_tags(existing: &Tags, given: &[(String, String)]) -> Result<Tags> {
    check_tags(given)?;
    let mut tags = existing.clone();
    for (key, value) in given {
        tags.insert(key.clone(), value.clone());
    }
    if tags.len() > MAX_TAGS {
        return Err(tag_error("Too many tags"));
    }
    Ok(tags)
}

/// Checks a key policy: a JSON object of at most [`MAX_POLICY_BYTES`].
/// It is kept as given (aliasd's own auth file decides who may do what; a
/// key policy is stored and returned for the tools that read it).
pub fn check_policy(policy: &str) -> Result<()> {
    if policy.len() > MAX_POLICY_BYTES {
        return Err(Error::invalid(
            Reason::POLICY_TOO_LARGE,
            "policy",
            format!(
                "The key policy is {} bytes; the most a key policy may have is \
                 {MAX_POLICY_BYTES}.",
                policy.len()
            ),
        ));
    }
    match serde_json::from_str::<serde_json::Value>(policy) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(Error::invalid(
            Reason::MALFORMED_POLICY,
            "policy",
            "The key policy must be a JSON object.",
        )),
        Err(error) => Err(Error::invalid(
            Reason::MALFORMED_POLICY,
            "policy",
            format!("The key policy is not JSON: {error}."),
        )),
    }
}

/// Checks a policy name: a key has one policy, `default`.
pub fn check_policy_name(name: &str) -> Result<()> {
    if name == DEFAULT_POLICY_NAME {
        return Ok(());
    }
    Err(Error::new(
        Reason::POLICY_NOT_FOUND,
        format!("No such policy exists: {name:?} (a key has one policy, \"default\")."),
    )
    .with_kms_message("No such policy exists"))
}

/// The key policy AWS gives a key created without one, for `scope`'s
/// account, as AWS prints it.
pub fn default_policy(scope: &Scope) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ \
         {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \
         \"Principal\" : {{\n      \"AWS\" : \"arn:{}:iam::{}:root\"\n    }},\n    \"Action\" : \
         \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}",
        scope.partition, scope.account
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_follow_awss_rules_in_awss_order() {
        assert!(check_tags(&tags(&[("team", ""), ("cost", "42")])).is_ok());
        let reason = |given: &[(&str, &str)]| check_tags(&tags(given)).unwrap_err();
        let long_key = "k".repeat(129);
        let error = reason(&[("ok", "v"), (&long_key, "v")]);
        assert_eq!(error.reason, Reason::INVALID_PARAMETER);
        assert!(
            error.message.contains("'tags.2.member.tagKey'"),
            "{}",
            error.message
        );
        let long_value = "v".repeat(257);
        let error = reason(&[("ok", &long_value)]);
        assert!(
            error.message.contains("'tags.1.member.tagValue'"),
            "{}",
            error.message
        );
        assert_eq!(
            reason(&[("a", "1"), ("a", "2")]).message,
            "Duplicate tag keys"
        );
        for reserved in ["aws:x", "AWS:x", "Aws:x"] {
            assert_eq!(
                reason(&[(reserved, "v")]).message,
                "Tags beginning with aws: are reserved"
            );
        }
        let many: Vec<(String, String)> =
            (0..51).map(|i| (format!("k{i}"), String::new())).collect();
        assert_eq!(check_tags(&many).unwrap_err().message, "Too many tags");
        let fifty: Tags = (0..50).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(
            with_tags(&fifty, &tags(&[("k1", "new")])).is_ok(),
            "a replaced value"
        );
        assert_eq!(
            with_tags(&fifty, &tags(&[("k50", "")]))
                .unwrap_err()
                .message,
            "Too many tags"
        );
    }

    #[test]
    fn policies_are_json_objects_within_the_limit() {
        assert!(check_policy("{\"Version\": \"2012-10-17\"}").is_ok());
        assert_eq!(
            check_policy("not json").unwrap_err().reason,
            Reason::MALFORMED_POLICY
        );
        assert_eq!(
            check_policy("[1]").unwrap_err().reason,
            Reason::MALFORMED_POLICY
        );
        let big = format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_POLICY_BYTES));
        assert_eq!(
            check_policy(&big).unwrap_err().reason,
            Reason::POLICY_TOO_LARGE
        );
        let scope = Scope {
            partition: "aws".into(),
            region: "us-east-1".into(),
            account: "111122223333".into(),
        };
        let default = default_policy(&scope);
        assert!(check_policy(&default).is_ok());
        assert!(default.contains("\"AWS\" : \"arn:aws:iam::111122223333:root\""));
        assert_eq!(
            check_policy_name("other").unwrap_err().reason,
            Reason::POLICY_NOT_FOUND
        );
    }
}
