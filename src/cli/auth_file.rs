//! `aliasd auth token` and `aliasd auth check`: tools for the auth file,
//! run where the file is written (no server needed).

use std::path::Path;
use std::process::ExitCode;

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::app::admission::auth::AuthConfig;

/// A new random bearer token (256 bits, URL-safe base64) and its SHA-256
/// (hex), the form the auth file keeps. It never begins with `-`, which a
/// command line would take for a flag (`aliasd --token -x...`).
pub fn new_token() -> Result<(String, String), String> {
    let token = loop {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !token.starts_with('-') {
            break token;
        }
    };
    let hash = hex(&Sha256::digest(token.as_bytes()));
    Ok((token, hash))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `aliasd auth token`: prints a new token (on stderr, for the person at
/// the terminal) and the auth-file entry that admits it (on stdout, so that
/// `>> auth.toml` appends the entry and never the token). `quiet`: the
/// token only, on stdout.
pub fn token(name: &str, account: &str, quiet: bool) -> ExitCode {
    if name.is_empty() || !crate::domain::names::is_arn_segment(account) {
        eprintln!(
            "aliasd auth token: --name must not be empty and --account must be 1..64 of A-Z a-z 0-9 -"
        );
        return ExitCode::from(2);
    }
    let (token, hash) = match new_token() {
        Ok(pair) => pair,
        Err(error) => {
            eprintln!("aliasd auth token: {error}");
            return ExitCode::FAILURE;
        }
    };
    if quiet {
        crate::outln!("{token}");
        return ExitCode::SUCCESS;
    }
    eprintln!("token: {token}");
    eprintln!(
        "(shown once: the auth file keeps only its SHA-256; pass it as --token or ALIASD_TOKEN)"
    );
    crate::outln!(
        "# Added to the auth file: narrow the statement, then reload the server (SIGHUP)."
    );
    crate::outln!("[[principals]]");
    crate::outln!("name = {}", toml_string(name));
    crate::outln!("account = {}", toml_string(account));
    crate::outln!("token_sha256 = \"{hash}\"");
    crate::outln!("[[principals.statements]]");
    crate::outln!("actions = [\"kms:*\"]");
    crate::outln!("resources = [\"*\"]");
    ExitCode::SUCCESS
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `aliasd auth check FILE`: the server's own checks. Exit 0 and a summary
/// when the file would be accepted; 1 and the reason when not.
pub fn check(path: &Path) -> ExitCode {
    match AuthConfig::load(path) {
        Ok(config) => {
            let names = config.principal_names();
            crate::outln!(
                "ok: {} principal{} ({}){}",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", "),
                if config.throttle.is_some() {
                    "; throttle limits set"
                } else {
                    ""
                }
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("aliasd auth check: {}", error.message);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_as_sha256sum_does() {
        let (a, hash) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash, hex(&Sha256::digest(a.as_bytes())));
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    /// One token in 64 would begin with `-` if nothing prevented it.
    #[test]
    fn no_token_begins_like_a_flag() {
        for _ in 0..2_000 {
            assert!(!new_token().unwrap().0.starts_with('-'));
        }
    }

    #[test]
    fn toml_strings_escape_quotes_and_controls() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny"), r#""x\u000Ay""#);
    }
}
