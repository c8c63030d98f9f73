//! Page sizes and page tokens.
//!
//! A page token names the last item of the previous page (the scan resumes
//! after it, so an item present for the whole walk appears exactly once) and
//! is bound by an HMAC to the account, the listing and its filter: a forged,
//! altered or transplanted token fails to verify.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::{Error, Reason, Result};

pub const DEFAULT_PAGE_SIZE: usize = 50;
pub const MAX_PAGE_SIZE: usize = 100;
const TOKEN_VERSION: u8 = 1;
const MAC_BYTES: usize = 16;
/// Longest token accepted; ours are well under (a 256-character name).
const MAX_TOKEN_CHARS: usize = 1024;

/// The most keys a page of ListKeys holds (AWS's ListKeys takes a `Limit`
/// up to 1000).
pub const MAX_KEYS_PAGE_SIZE: usize = 1000;

/// page_size: 0 means 50, above 100 means 100, negative is invalid.
pub fn page_size(requested: i32) -> Result<usize> {
    page_size_up_to(requested, MAX_PAGE_SIZE)
}

/// page_size with another largest page: 0 means 50, above `max` means
/// `max`, negative is invalid.
pub fn page_size_up_to(requested: i32, max: usize) -> Result<usize> {
    match requested {
        0 => Ok(DEFAULT_PAGE_SIZE.min(max)),
        n if n < 0 => Err(Error::invalid(
            Reason::INVALID_PAGE_SIZE,
            "page_size",
            format!("page_size must not be negative; got {n}."),
        )),
        n => Ok((n as usize).min(max)),
    }
}

/// Issues and verifies page tokens with a server secret.
#[derive(Clone)]
pub struct PageTokens {
    secret: [u8; 32],
}

/// What a token is bound to.
pub struct Listing<'a> {
    pub account: &'a str,
    /// "aliases" or "keys".
    pub kind: &'a str,
    /// The filter of the listing ("" for none).
    pub filter: &'a str,
}

impl PageTokens {
    pub fn new(secret: [u8; 32]) -> Self {
        PageTokens { secret }
    }

    fn mac(&self, listing: &Listing, last: &[u8]) -> [u8; MAC_BYTES] {
        // The key is 32 bytes; HMAC accepts keys of any length.
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        for part in [
            listing.account.as_bytes(),
            listing.kind.as_bytes(),
            listing.filter.as_bytes(),
        ] {
            mac.update(&(part.len() as u32).to_be_bytes());
            mac.update(part);
        }
        mac.update(&[TOKEN_VERSION]);
        mac.update(last);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_BYTES];
        out.copy_from_slice(&full[..MAC_BYTES]);
        out
    }

    /// A token that resumes `listing` after the item `last`.
    pub fn issue(&self, listing: &Listing, last: &str) -> String {
        let mut raw = Vec::with_capacity(1 + last.len() + MAC_BYTES);
        raw.push(TOKEN_VERSION);
        raw.extend_from_slice(last.as_bytes());
        raw.extend_from_slice(&self.mac(listing, last.as_bytes()));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The item to resume after, or INVALID_PAGE_TOKEN.
    pub fn open(&self, listing: &Listing, token: &str) -> Result<String> {
        let invalid = || {
            Error::invalid(
                Reason::INVALID_PAGE_TOKEN,
                "page_token",
                "Invalid page_token: it was not issued by this server for this listing and \
                 filter, or it was altered. Start again with an empty page_token.",
            )
            .with_kms_message(
                "Invalid marker: it was not issued by this server for this listing and \
                 filter, or it was altered. Start again without one.",
            )
        };
        if token.len() > MAX_TOKEN_CHARS {
            return Err(invalid());
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < 1 + MAC_BYTES || raw[0] != TOKEN_VERSION {
            return Err(invalid());
        }
        let (body, mac) = raw.split_at(raw.len() - MAC_BYTES);
        let last = &body[1..];
        let expected = self.mac(listing, last);
        // Constant-time comparison, so the MAC cannot be guessed byte by byte.
        let diff = expected
            .iter()
            .zip(mac)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(invalid());
        }
        String::from_utf8(last.to_vec()).map_err(|_| invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing<'a>(account: &'a str, filter: &'a str) -> Listing<'a> {
        Listing {
            account,
            kind: "aliases",
            filter,
        }
    }

    #[test]
    fn tokens_round_trip_and_bind_to_the_listing() {
        let tokens = PageTokens::new([7; 32]);
        let token = tokens.issue(&listing("1", ""), "alias/b");
        assert_eq!(tokens.open(&listing("1", ""), &token).unwrap(), "alias/b");
        assert!(tokens.open(&listing("2", ""), &token).is_err());
        assert!(tokens.open(&listing("1", "key"), &token).is_err());
        assert!(PageTokens::new([8; 32])
            .open(&listing("1", ""), &token)
            .is_err());
    }

    #[test]
    fn altered_tokens_fail() {
        let tokens = PageTokens::new([7; 32]);
        let token = tokens.issue(&listing("1", ""), "alias/b");
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[2] ^= 1;
        let altered = URL_SAFE_NO_PAD.encode(raw);
        assert!(tokens.open(&listing("1", ""), &altered).is_err());
        assert!(tokens.open(&listing("1", ""), "garbage!").is_err());
        assert!(tokens.open(&listing("1", ""), "").is_err());
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0).unwrap(), 50);
        assert_eq!(page_size(7).unwrap(), 7);
        assert_eq!(page_size(1000).unwrap(), 100);
        assert_eq!(page_size(-1).unwrap_err().reason, Reason::INVALID_PAGE_SIZE);
    }
}
