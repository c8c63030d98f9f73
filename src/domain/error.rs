//! Every error aliasd can return, declared once.
//!
//! A [`Reason`] is the stable code clients match on (the ErrorInfo reason),
//! with its canonical class ([`Code`]) and meaning. The domain knows no
//! door: how each door renders a reason (the AWS exception and HTTP status,
//! Huawei's `error_code`) is the table in `door::reasons`, which must name
//! every reason.

use std::fmt;

/// The canonical error classes used by aliasd (gRPC's status codes, a
/// subset; kept here so that the domain depends on no transport).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    FailedPrecondition,
    Aborted,
    ResourceExhausted,
    OutOfRange,
    Unavailable,
    DeadlineExceeded,
    Unimplemented,
    Unauthenticated,
    Internal,
    Unknown,
}

/// One row of the error table: the reason's canonical class and what it
/// means. How each door renders it is the doors' own table
/// (`door::reasons`).
pub struct ReasonSpec {
    /// The canonical error class (gRPC's status codes, which Google's APIs
    /// use whatever the transport).
    pub code: Code,
    pub description: &'static str,
}

macro_rules! reasons {
    ($( $variant:ident => $code:ident, $description:literal; )*) => {
        /// The stable error codes of aliasd (ErrorInfo `reason`). Variants are
        /// spelled as sent on the wire.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason { $( $variant, )* }

        impl Reason {
            /// Every reason, in table order.
            pub const ALL: &'static [Reason] = &[ $( Reason::$variant, )* ];

            /// The reason named `name` (its ErrorInfo.reason).
            pub fn from_name(name: &str) -> Option<Reason> {
                Reason::ALL.iter().copied().find(|r| r.as_str() == name)
            }

            /// The UPPER_SNAKE name sent as ErrorInfo.reason.
            pub fn as_str(self) -> &'static str {
                match self { $( Reason::$variant => stringify!($variant), )* }
            }

            /// The canonical class and description of this reason.
            pub fn spec(self) -> ReasonSpec {
                match self {
                    $( Reason::$variant => ReasonSpec {
                        code: Code::$code,
                        description: $description,
                    }, )*
                }
            }
        }
    };
}

reasons! {
    INVALID_ALIAS_NAME => InvalidArgument,
        "An alias name breaks rule 1, 2 or 3 of the name rules.";
    INVALID_KEY_ID => InvalidArgument,
        "A key id is not a lowercase UUID, or a key reference is malformed.";
    INVALID_ARN => InvalidArgument,
        "An ARN does not parse as a KMS key or alias ARN.";
    TARGET_NOT_A_KEY => InvalidArgument,
        "An alias name or alias ARN was given where only a key id or key ARN is accepted (aliases must refer to keys).";
    INVALID_KEY_SPEC => InvalidArgument,
        "An unknown key spec.";
    INVALID_KEY_USAGE => InvalidArgument,
        "An unknown key usage, a missing usage for a non-symmetric spec, or a usage the spec does not support.";
    INVALID_DESCRIPTION => InvalidArgument,
        "A description longer than 8192 characters.";
    INVALID_PENDING_WINDOW => InvalidArgument,
        "pending_window_in_days outside 7..30.";
    INVALID_PAGE_SIZE => InvalidArgument,
        "A negative page_size.";
    INVALID_PAGE_TOKEN => InvalidArgument,
        "A page token that was forged, corrupted, or issued for another filter or account.";
    INVALID_REQUEST_ID => InvalidArgument,
        "A request_id that is not a UUID.";
    REQUEST_ID_REUSED => InvalidArgument,
        "A request_id already used for a different request.";
    INVALID_ETAG => InvalidArgument,
        "An etag that is not 16 lowercase hex digits (no alias has any other).";
    FIELD_TOO_LONG => InvalidArgument,
        "A string field is longer than its limit (see the proto comments).";
    REQUEST_BODY_TIMEOUT => InvalidArgument,
        "The request body did not arrive in full within --request-body-timeout-secs.";
    MALFORMED_REQUEST => InvalidArgument,
        "The request message is not valid protobuf (including bad UTF-8 in a string).";
    REQUEST_TOO_LARGE => InvalidArgument,
        "The request message is larger than the server accepts (1 MiB).";
    RESERVED_ALIAS => PermissionDenied,
        "The alias name is reserved for PROVIDER keys (begins alias/aws/ or ends /default).";
    PROVIDER_KEY => PermissionDenied,
        "The key is a PROVIDER key: it cannot be the target of an alias or be changed through the API.";
    UNAUTHENTICATED => Unauthenticated,
        "No credentials, or credentials no principal of the auth file has (bearer token or client certificate).";
    MISSING_AUTHENTICATION_TOKEN => Unauthenticated,
        "An HTTP request with neither a signature nor a token, to a server with an auth file.";
    INCOMPLETE_SIGNATURE => Unauthenticated,
        "A request signature is malformed or lacks a part (credential scope, signed headers, signature, the date header).";
    UNRECOGNIZED_CLIENT => Unauthenticated,
        "A request is signed with an access key id the auth file does not have.";
    INVALID_SIGNATURE => Unauthenticated,
        "A request signature does not match the request and the access key's secret.";
    SIGNATURE_EXPIRED => Unauthenticated,
        "A signed request's date is more than 15 minutes from the server's clock.";
    ACCESS_DENIED => PermissionDenied,
        "The principal's policy does not allow the action on the resource.";
    KEY_NOT_FOUND => NotFound,
        "No such key in the caller's account.";
    PROJECT_NOT_FOUND => NotFound,
        "Huawei endpoint: the URL's project id is not one of the principal's `project_ids`.";
    ALIAS_NOT_FOUND => NotFound,
        "No such alias in the caller's account.";
    ALIAS_ALREADY_EXISTS => AlreadyExists,
        "An alias with that name already exists.";
    KEY_PENDING_DELETION => FailedPrecondition,
        "The key an alias would point at is pending deletion.";
    KEY_INVALID_STATE => FailedPrecondition,
        "The key's state does not allow the operation.";
    KEY_DISABLED => FailedPrecondition,
        "The key is disabled: enable it (EnableKey) to use it in cryptographic operations.";
    KEY_USAGE_NOT_ALLOWED => FailedPrecondition,
        "The key's spec or usage does not allow the operation or the algorithm asked for (say, Sign with an ENCRYPT_DECRYPT key, or ECDSA_SHA_384 with an ECC_NIST_P256 key).";
    INCORRECT_KEY => InvalidArgument,
        "Decrypt or ReEncrypt named a key other than the one that made the ciphertext.";
    INVALID_CIPHERTEXT => InvalidArgument,
        "The ciphertext was not made by this server, was changed, or is given with another encryption context (or algorithm) than it was made with. The AWS door answers it without a message, as AWS does.";
    SIGNATURE_NOT_VALID => InvalidArgument,
        "Verify: the signature is not the key's signature of the message (the AWS door answers it without a message, as AWS does).";
    MAC_NOT_VALID => InvalidArgument,
        "VerifyMac: the MAC is not the key's MAC of the message (the AWS door answers it without a message, as AWS does).";
    INVALID_PARAMETER => InvalidArgument,
        "A field's value is outside what the operation takes: a plaintext, message or byte count out of range, an unknown algorithm or spec, a DIGEST of the wrong length, an encryption context that is not string pairs, a rotation period outside 90..2560.";
    UNSUPPORTED_OPERATION => FailedPrecondition,
        "The operation is not supported for this key: rotation of a key that is not symmetric, or GetPublicKey of a symmetric or HMAC key. The AWS door answers it without a message, as AWS does.";
    SM2_UNSUPPORTED => FailedPrecondition,
        "The key is an SM2 key: it can be created and described, but not used (no maintained library this server uses implements SM2).";
    KEY_MATERIAL_UNAVAILABLE => FailedPrecondition,
        "The key's material does not unwrap under this server's root key (it was made under another one): start the server with the root key file it was made with. `aliasd check` names such keys.";
    ROTATION_QUOTA_EXCEEDED => ResourceExhausted,
        "RotateKeyOnDemand: the key has already been rotated on demand the most times a key may be (25, as AWS documents).";
    TAG_REFUSED => InvalidArgument,
        "Tags that AWS's rules refuse: more than 50 on a key, a key beginning `aws:` (any case), or one key twice in a request.";
    MALFORMED_POLICY => InvalidArgument,
        "A key policy that is not a JSON object.";
    POLICY_TOO_LARGE => InvalidArgument,
        "A key policy over 32 KiB.";
    POLICY_NOT_FOUND => NotFound,
        "A policy name other than `default` (a key has one policy, `default`).";
    DRY_RUN => FailedPrecondition,
        "AWS door only: the call has `DryRun: true` and would have succeeded (its checks passed; nothing was returned, and a dry run changes nothing).";
    KEY_HAS_SEVERAL_ALIASES => FailedPrecondition,
        "Huawei update-key-alias: the key has several aliases, so which to change is unclear; use the alias API.";
    KEY_TYPE_MISMATCH => FailedPrecondition,
        "UpdateAlias: the new key differs from the current one in key class or key usage.";
    ETAG_MISMATCH => Aborted,
        "The etag given is not the alias's current etag; nothing changed.";
    ALIAS_QUOTA_EXCEEDED => ResourceExhausted,
        "The key already has the maximum number of aliases.";
    KEY_QUOTA_EXCEEDED => ResourceExhausted,
        "The account already has the maximum number of keys.";
    SERVER_BUSY => ResourceExhausted,
        "The server has the most calls in progress it takes (--max-in-flight); retry shortly.";
    THROTTLED => ResourceExhausted,
        "The account has used up its request rate for the action; retry after the RetryInfo delay.";
    REVISION_COMPACTED => OutOfRange,
        "WatchAliases: start_revision is older than the retained change log; list again.";
    FUTURE_REVISION => OutOfRange,
        "WatchAliases: start_revision is newer than the store's latest revision.";
    WATCH_TOO_SLOW => ResourceExhausted,
        "WatchAliases: the client fell too far behind and was cut off; list and watch again.";
    TOO_MANY_WATCHES => ResourceExhausted,
        "WatchAliases: the account or the server already has the most open watches it allows (--max-watches-per-account, --max-watches).";
    SHUTTING_DOWN => Unavailable,
        "The server is shutting down; retry on another instance.";
    UNKNOWN_OPERATION => Unimplemented,
        "HTTP: an X-Amz-Target that is not a TrentService operation aliasd serves, or a URL that is not a Huawei KMS operation.";
    MALFORMED_BODY => InvalidArgument,
        "HTTP: the request body is not a JSON object, or a field has the wrong JSON type.";
    MISSING_PARAMETER => InvalidArgument,
        "HTTP: a required field is missing or empty.";
    UNKNOWN_METHOD => Unimplemented,
        "The method does not exist on this server (check the service and method name; reflection lists them).";
    DEADLINE_EXCEEDED => DeadlineExceeded,
        "The call's deadline passed before it finished; a change may still have committed (retry with the same request_id).";
    INTERNAL => Internal,
        "A storage or server fault; details are in the server log.";
    STORE_FAILED => Unavailable,
        "The store hit an I/O error (a full disk, say) and this server must be restarted; it reports NOT_SERVING until then. The call changed nothing (`may_have_committed` = `false`): retry against the restarted server.";
    STORE_UNAVAILABLE => Unavailable,
        "The store cannot be reached now (etcd, with --backend etcd), or a transaction kept meeting conflicting writes. The call changed nothing (`may_have_committed` = `false`); the server recovers by itself: retry shortly.";
    WRITE_OUTCOME_UNKNOWN => Unknown,
        "The change committed but could not be made durable, and the store failed: it may or may not be there after the restart (`may_have_committed` = `true`). Retry with the same request_id; not retried automatically by gRPC clients.";
}

impl Reason {
    /// Whether a call that got this error may have changed something, for
    /// the ErrorInfo metadata `may_have_committed`; `None` for reasons that
    /// do not carry it (those calls changed nothing).
    pub fn may_have_committed(self) -> Option<bool> {
        match self {
            Reason::WRITE_OUTCOME_UNKNOWN | Reason::DEADLINE_EXCEEDED => Some(true),
            Reason::STORE_FAILED | Reason::STORE_UNAVAILABLE => Some(false),
            _ => None,
        }
    }
}

/// AWS's wording of a number outside its range: `1 validation error
/// detected: Value '0' at 'numberOfBytes' failed to satisfy constraint:
/// Member must have value greater than or equal to 1`.
pub fn out_of_range(member: &str, value: i64, min: i64, max: i64) -> String {
    let bound = match value < min {
        true => format!("greater than or equal to {min}"),
        false => format!("less than or equal to {max}"),
    };
    format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: \
         Member must have value {bound}"
    )
}

/// A request field as AWS's validation messages name it: `alias_name` ->
/// `aliasName`.
pub fn member_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// AWS's wording of a blob outside its length range (the value is not
/// shown: it may be secret).
pub fn bad_length(member: &str, len: usize, max: usize) -> String {
    let bound = match len {
        0 => "greater than or equal to 1".to_owned(),
        _ => format!("less than or equal to {max}"),
    };
    format!(
        "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member \
         must have length {bound}"
    )
}

/// An error with its reason, a KMS-style message, and (for invalid
/// arguments) the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub reason: Reason,
    pub message: String,
    /// The request field that was wrong, for google.rpc.BadRequest.
    pub field: Option<&'static str>,
    /// When to retry, for google.rpc.RetryInfo (throttling).
    pub retry_after: Option<std::time::Duration>,
    /// The call only reads: whatever the reason, it committed nothing.
    pub read_only: bool,
    /// The message in KMS's own words, where AWS's recorded answers word it
    /// otherwise than `message` (terser, and naming request members as
    /// AWS's API does): the AWS door answers this one.
    pub kms_message: Option<String>,
}

impl Error {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            field: None,
            retry_after: None,
            read_only: false,
            kms_message: None,
        }
    }

    /// An INVALID_ARGUMENT-class error naming the field at fault.
    pub fn invalid(reason: Reason, field: &'static str, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            field: Some(field),
            retry_after: None,
            read_only: false,
            kms_message: None,
        }
    }

    /// With KMS's own wording of the error (see [`Error::kms_message`]).
    pub fn with_kms_message(mut self, message: impl Into<String>) -> Self {
        self.kms_message = Some(message.into());
        self
    }

    /// The error of a call that only reads (a deadline that passed during
    /// a watch, say): it committed nothing, whatever its reason.
    pub fn of_a_read(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Whether the call may have changed something, for the ErrorInfo
    /// metadata `may_have_committed` (see [`Reason::may_have_committed`]).
    pub fn may_have_committed(&self) -> Option<bool> {
        self.reason
            .may_have_committed()
            .map(|may| may && !self.read_only)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Reason::INTERNAL, message)
    }

    pub fn code(&self) -> Code {
        self.reason.spec().code
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.reason.as_str())
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The gRPC name of a code: Code::InvalidArgument -> INVALID_ARGUMENT.
    fn code_name(code: Code) -> String {
        format!("{code:?}")
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                sep.into_iter()
                    .chain(std::iter::once(c.to_ascii_uppercase()))
            })
            .collect()
    }

    #[test]
    fn every_reason_has_an_upper_snake_name() {
        for reason in Reason::ALL {
            let name = reason.as_str();
            assert!(name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()));
        }
    }

    /// Every gRPC status code but OK, as the proto comments spell them.
    const GRPC_CODES: &[&str] = &[
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];

    /// Upper-case words that the prose of an error list may use and that are
    /// not reasons. Anything else in upper case inside a list must be one.
    const NOT_REASONS: &[&str] = &["ARN", "SM2", "HMAC"];

    /// The comment blocks of a proto file: each run of `//` lines, joined
    /// with spaces into one line, so that a list may wrap anywhere.
    fn comment_blocks(proto: &str) -> Vec<String> {
        let mut blocks = Vec::new();
        let mut current: Option<String> = None;
        for line in proto.lines() {
            match line.trim_start().strip_prefix("//") {
                Some(text) => {
                    let block = current.get_or_insert_with(String::new);
                    block.push(' ');
                    block.push_str(text.trim());
                }
                None => blocks.extend(current.take()),
            }
        }
        blocks.extend(current);
        blocks
    }

    /// The words of `text` (runs of A-Z a-z 0-9 _) with their byte offsets.
    fn words(text: &str) -> Vec<(usize, &str)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            let in_word = c.is_ascii_alphanumeric() || c == '_';
            match (start, in_word) {
                (None, true) => start = Some(i),
                (Some(s), false) => {
                    out.push((s, &text[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        out
    }

    /// UPPER_SNAKE: two or more of A-Z 0-9 _, beginning with a letter.
    fn is_upper_snake(word: &str) -> bool {
        word.len() >= 2
            && word.starts_with(|c: char| c.is_ascii_uppercase())
            && word
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    }

    /// The error lists of a comment block: each `GRPC_CODE (...)` as the code
    /// and the text inside its parentheses. Panics on an unclosed list.
    fn error_lists(block: &str) -> Vec<(&str, &str)> {
        let mut lists = Vec::new();
        for (at, word) in words(block) {
            if !GRPC_CODES.contains(&word) {
                continue;
            }
            let after = block[at + word.len()..].trim_start();
            let Some(inside) = after.strip_prefix('(') else {
                continue;
            };
            let mut depth = 1;
            let end = inside.find(|c| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            });
            let end = end.unwrap_or_else(|| panic!("unclosed error list after {word} in: {block}"));
            lists.push((word, &inside[..end]));
        }
        lists
    }

    /// In every error list of the proto comments (`GRPC_CODE (REASON,
    /// REASON: text; REASON ...)`, wrapped over any number of `//` lines),
    /// every UPPER_SNAKE word is a reason, and the reason's gRPC code is the
    /// one the list is written under. Every reason appears in some list.
    #[test]
    fn proto_error_lists_name_real_reasons_under_their_grpc_codes() {
        let protos = [
            (
                "keys.proto",
                include_str!("../../proto/aliasd/v1/keys.proto"),
            ),
            (
                "aliases.proto",
                include_str!("../../proto/aliasd/v1/aliases.proto"),
            ),
            (
                "audit.proto",
                include_str!("../../proto/aliasd/v1/audit.proto"),
            ),
            (
                "crypto.proto",
                include_str!("../../proto/aliasd/v1/crypto.proto"),
            ),
        ];
        let mut problems = Vec::new();
        let mut documented = std::collections::HashSet::new();
        for (file, proto) in protos {
            let blocks = comment_blocks(proto);
            let lists: Vec<_> = blocks.iter().flat_map(|b| error_lists(b)).collect();
            assert!(!lists.is_empty(), "{file}: no error lists found");
            for (code, inside) in lists {
                for (_, word) in words(inside) {
                    if !is_upper_snake(word) || NOT_REASONS.contains(&word) {
                        continue;
                    }
                    match Reason::ALL.iter().find(|r| r.as_str() == word) {
                        None => problems.push(format!(
                            "{file}: {code} ({inside}): {word} is not a reason (add prose \
                             acronyms to NOT_REASONS)"
                        )),
                        Some(reason) => {
                            documented.insert(*reason);
                            let expected = code_name(reason.spec().code);
                            if expected != code {
                                problems.push(format!(
                                    "{file}: {word} is listed under {code}; its code is {expected}"
                                ));
                            }
                        }
                    }
                }
            }
        }
        // Returned only by the HTTP doors (documented in the README's
        // sections on them), never by a gRPC method.
        const HTTP_ONLY: &[Reason] = &[
            Reason::MISSING_AUTHENTICATION_TOKEN,
            Reason::INCOMPLETE_SIGNATURE,
            Reason::UNRECOGNIZED_CLIENT,
            Reason::INVALID_SIGNATURE,
            Reason::SIGNATURE_EXPIRED,
            Reason::PROJECT_NOT_FOUND,
            Reason::KEY_HAS_SEVERAL_ALIASES,
            Reason::UNKNOWN_OPERATION,
            Reason::MALFORMED_BODY,
            Reason::MISSING_PARAMETER,
            Reason::DRY_RUN,
        ];
        for reason in Reason::ALL {
            if HTTP_ONLY.contains(reason) {
                assert!(
                    !documented.contains(reason),
                    "{} is listed in a proto but is HTTP-only",
                    reason.as_str()
                );
                continue;
            }
            if !documented.contains(reason) {
                problems.push(format!("no proto error list names {}", reason.as_str()));
            }
        }
        assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    }
}
