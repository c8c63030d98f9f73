//! Keys of the sled trees. Everything an account owns sits under the prefix
//! `account \0`, so accounts never see each other's records and a prefix
//! scan lists one account.
//!
//! | tree          | key                                  | value              |
//! |---------------|--------------------------------------|--------------------|
//! | `keys`        | account \0 key_id                    | KeyRecord          |
//! | `aliases`     | account \0 alias_name                | AliasRecord        |
//! | `key_aliases` | account \0 key_id                    | AliasSetRecord     |
//! | `changes`     | account \0 last revision (u64 BE)    | ChangeRecord(s)    |
//! | `meta`        | account \0 `revision` / `key_count` / `floor` | u64 BE    |
//! | `requests`    | account \0 request_id                | RequestRecord      |
//! | `schedule`    | deletion_time (i64 BE) account \0 key_id | empty          |
//! | `requests_by_time` | created_at (i64 BE) account \0 request_id | empty  |
//! | `audit`       | account \0 last sequence (u64 BE)    | AuditRecord(s)     |
//!
//! `meta` also holds server-wide entries under the empty account (`\0...`).

use crate::domain::{KeyId, Millis};

pub const SEP: u8 = 0;
pub const REVISION: &[u8] = b"revision";
pub const KEY_COUNT: &[u8] = b"key_count";
/// The highest revision pruned from the change log.
pub const FLOOR: &[u8] = b"floor";
/// The last audit sequence number of the account.
pub const AUDIT_SEQUENCE: &[u8] = b"audit_sequence";
/// Server-wide: the page-token secret.
pub const TOKEN_SECRET: &[u8] = b"\0token_secret";
/// Server-wide: the settings that define the data (see `StoreSettings`).
pub const SETTINGS: &[u8] = b"\0settings";

pub fn prefix(account: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(account.len() + 1);
    out.extend_from_slice(account.as_bytes());
    out.push(SEP);
    out
}

pub fn scoped(account: &str, rest: &[u8]) -> Vec<u8> {
    let mut out = prefix(account);
    out.extend_from_slice(rest);
    out
}

/// Splits `account \0 rest`.
pub fn split(key: &[u8]) -> Option<(&str, &[u8])> {
    let at = key.iter().position(|&b| b == SEP)?;
    let account = std::str::from_utf8(&key[..at]).ok()?;
    Some((account, &key[at + 1..]))
}

pub fn change_key(account: &str, revision: u64) -> Vec<u8> {
    scoped(account, &revision.to_be_bytes())
}

/// Time-ordered keys: `time (i64 BE, sign-flipped) account \0 id`.
pub fn timed_key(time: Millis, account: &str, id: &str) -> Vec<u8> {
    let mut out = ((time as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    out.extend_from_slice(&scoped(account, id.as_bytes()));
    out
}

pub fn schedule_key(time: Millis, account: &str, key: &KeyId) -> Vec<u8> {
    timed_key(time, account, key.as_str())
}

/// Splits a time-ordered key into its time, account and id.
pub fn split_timed(key: &[u8]) -> Option<(Millis, &str, &str)> {
    let (time, rest) = key.split_at_checked(8)?;
    let time = (u64::from_be_bytes(time.try_into().ok()?) ^ (1 << 63)) as Millis;
    let (account, id) = split(rest)?;
    Some((time, account, std::str::from_utf8(id).ok()?))
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timed_keys_sort_by_time_and_split_back() {
        let a = timed_key(-5, "acct", "x");
        let b = timed_key(3, "acct", "y");
        assert!(a < b);
        assert_eq!(split_timed(&b), Some((3, "acct", "y")));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_end(&[1, 255]), vec![2]);
    }
}
