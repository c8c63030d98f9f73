//! Property tests of the parsers: no input panics, and what is made parses
//! back to itself.

use proptest::prelude::*;

use super::names::{
    is_lowercase_uuid, parse_alias_ref, parse_key_id, quoted, AliasName, KeyId, KeyRef, Scope,
};
use super::paging::{Listing, PageTokens};
use super::policy::glob_matches;

fn scope() -> Scope {
    Scope {
        partition: "aws".into(),
        region: "us-east-1".into(),
        account: "000000000000".into(),
    }
}

/// Valid alias names: "alias/" and 1..250 allowed characters.
fn alias_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9/_-]{1,250}".prop_map(|rest| format!("alias/{rest}"))
}

fn key_id() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_string_panics_any_parser(input in any::<String>()) {
        let s = scope();
        let _ = AliasName::parse("alias_name", &input);
        let _ = KeyId::parse("key_id", &input);
        let _ = KeyRef::parse(&s, "key_id", &input);
        let _ = parse_key_id(&s, "key_id", &input);
        let _ = parse_alias_ref(&s, "alias_name", &input);
        let _ = quoted(&input);
        let _ = is_lowercase_uuid(&input);
        let listing = Listing { account: "a", kind: "aliases", filter: "" };
        let _ = PageTokens::new([1; 32]).open(&listing, &input);
        let _ = glob_matches(&input, "alias/payments-eu", false);
        let _ = glob_matches("alias/*-eu*", &input, true);
    }

    #[test]
    fn arn_like_strings_never_panic(rest in "[a-z0-9:/_*-]{0,80}") {
        let s = scope();
        let input = format!("arn:{rest}");
        let _ = KeyRef::parse(&s, "key_id", &input);
        let _ = parse_alias_ref(&s, "alias_name", &input);
    }

    #[test]
    fn valid_alias_names_round_trip(name in alias_name()) {
        let parsed = AliasName::parse("alias_name", &name).unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
        let s = scope();
        // Its ARN resolves back to it.
        let arn = s.alias_arn(&parsed);
        prop_assert_eq!(KeyRef::parse(&s, "key_id", &arn).unwrap(), KeyRef::Alias(parsed.clone()));
        prop_assert_eq!(parse_alias_ref(&s, "alias_name", &arn).unwrap(), parsed);
    }

    #[test]
    fn names_with_a_forbidden_character_are_refused(name in alias_name(), at in any::<prop::sample::Index>(), bad in "[^A-Za-z0-9/_-]") {
        let mut chars: Vec<char> = name.chars().collect();
        let i = 6 + at.index(chars.len() - 6);
        chars[i] = bad.chars().next().unwrap();
        let broken: String = chars.into_iter().collect();
        prop_assert!(AliasName::parse("alias_name", &broken).is_err());
    }

    #[test]
    fn key_ids_and_key_arns_round_trip(id in key_id()) {
        let s = scope();
        let parsed = KeyId::parse("key_id", &id).unwrap();
        prop_assert_eq!(parsed.as_str(), id.as_str());
        let arn = s.key_arn(&parsed);
        prop_assert_eq!(parse_key_id(&s, "key_id", &arn).unwrap(), parsed.clone());
        prop_assert_eq!(parse_key_id(&s, "key_id", &id).unwrap(), parsed);
    }

    #[test]
    fn another_accounts_arn_is_never_resolved(id in key_id(), account in "[0-9]{12}") {
        prop_assume!(account != "000000000000");
        let arn = format!("arn:aws:kms:us-east-1:{account}:key/{id}");
        let error = KeyRef::parse(&scope(), "key_id", &arn).unwrap_err();
        prop_assert_eq!(error.reason, super::Reason::KEY_NOT_FOUND);
    }

    #[test]
    fn page_tokens_round_trip_and_resist_tampering(last in any::<String>(), filter in "[a-z0-9-]{0,36}", flip in any::<prop::sample::Index>()) {
        let tokens = PageTokens::new([7; 32]);
        let listing = Listing { account: "000000000000", kind: "aliases", filter: &filter };
        let token = tokens.issue(&listing, &last);
        prop_assert_eq!(tokens.open(&listing, &token).unwrap(), last);
        // Change one character: the token no longer opens.
        let mut bytes = token.into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        prop_assert!(tokens.open(&listing, &tampered).is_err());
        // And it is tied to its filter.
        let other = Listing { account: "000000000000", kind: "aliases", filter: "other-filter-value-xyz-0123456789abc" };
        prop_assert!(tokens.open(&other, &tokens.issue(&listing, "x")).is_err());
    }

    #[test]
    fn a_star_pattern_matches_every_text(text in any::<String>()) {
        prop_assert!(glob_matches("*", &text, false));
        prop_assert!(glob_matches(&text.replace('*', ""), &text.replace('*', ""), false));
    }
}
