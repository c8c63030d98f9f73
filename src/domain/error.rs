//! Every error aliasd can return, declared once.
//!
//! A [`Reason`] is the stable code clients match on (the ErrorInfo reason);
//! its row fixes how each door renders it: the gRPC code, the AWS KMS
//! exception name (and so the AWS JSON endpoint's `__type` and HTTP status),
//! and the Huawei Cloud KMS `error_code` and HTTP status. No door keeps a
//! mapping of its own. The README's error table is this table.

use std::fmt;

/// gRPC status codes used by aliasd (a subset; kept here so that the domain
/// does not depend on tonic).
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

/// One row of the error table: how every door renders the reason.
pub struct ReasonSpec {
    /// The gRPC status code.
    pub code: Code,
    /// The AWS KMS exception name: the gRPC ErrorInfo's `kms_exception`, and
    /// the AWS JSON endpoint's `__type`.
    pub kms_exception: &'static str,
    /// The Huawei Cloud KMS `error_code` and its HTTP status.
    pub huawei_error_code: &'static str,
    pub huawei_http_status: u16,
    pub description: &'static str,
}

macro_rules! reasons {
    ($( $variant:ident => $code:ident, $exception:literal, $huawei:literal $huawei_status:literal, $description:literal; )*) => {
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

            /// The gRPC code, KMS exception and description of this reason.
            pub fn spec(self) -> ReasonSpec {
                match self {
                    $( Reason::$variant => ReasonSpec {
                        code: Code::$code,
                        kms_exception: $exception,
                        huawei_error_code: $huawei,
                        huawei_http_status: $huawei_status,
                        description: $description,
                    }, )*
                }
            }
        }
    };
}

reasons! {
    INVALID_ALIAS_NAME => InvalidArgument, "ValidationException", "KMS.1101" 400,
        "An alias name breaks rule 1, 2 or 3 of the name rules.";
    INVALID_KEY_ID => InvalidArgument, "ValidationException", "KMS.0205" 400,
        "A key id is not a lowercase UUID, or a key reference is malformed.";
    INVALID_ARN => InvalidArgument, "InvalidArnException", "KMS.0205" 400,
        "An ARN does not parse as a KMS key or alias ARN.";
    TARGET_NOT_A_KEY => InvalidArgument, "ValidationException", "KMS.0205" 400,
        "An alias name or alias ARN was given where only a key id or key ARN is accepted (aliases must refer to keys).";
    INVALID_KEY_SPEC => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "An unknown key spec.";
    INVALID_KEY_USAGE => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "An unknown key usage, a missing usage for a non-symmetric spec, or a usage the spec does not support.";
    INVALID_DESCRIPTION => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "A description longer than 8192 characters.";
    INVALID_PENDING_WINDOW => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "pending_window_in_days outside 7..30.";
    INVALID_PAGE_SIZE => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "A negative page_size.";
    INVALID_PAGE_TOKEN => InvalidArgument, "InvalidMarkerException", "KMS.0204" 400,
        "A page token that was forged, corrupted, or issued for another filter or account.";
    INVALID_REQUEST_ID => InvalidArgument, "ValidationException", "KMS.0206" 400,
        "A request_id that is not a UUID.";
    REQUEST_ID_REUSED => InvalidArgument, "ValidationException", "KMS.0206" 400,
        "A request_id already used for a different request.";
    INVALID_ETAG => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "An etag that is not 16 lowercase hex digits (no alias has any other).";
    FIELD_TOO_LONG => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "A string field is longer than its limit (see the proto comments).";
    REQUEST_BODY_TIMEOUT => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "The request body did not arrive in full within --request-body-timeout-secs.";
    MALFORMED_REQUEST => InvalidArgument, "ValidationException", "KMS.0202" 400,
        "The request message is not valid protobuf (including bad UTF-8 in a string).";
    REQUEST_TOO_LARGE => InvalidArgument, "ValidationException", "KMS.0203" 400,
        "The request message is larger than the server accepts (1 MiB).";
    RESERVED_ALIAS => PermissionDenied, "NotAuthorizedException", "KMS.0211" 400,
        "The alias name is reserved for PROVIDER keys (begins alias/aws/ or ends /default).";
    PROVIDER_KEY => PermissionDenied, "NotAuthorizedException", "KMS.0306" 403,
        "The key is a PROVIDER key: it cannot be the target of an alias or be changed through the API.";
    UNAUTHENTICATED => Unauthenticated, "UnrecognizedClientException", "KMS.0302" 401,
        "No credentials, or credentials no principal of the auth file has (bearer token or client certificate).";
    MISSING_AUTHENTICATION_TOKEN => Unauthenticated, "MissingAuthenticationTokenException", "KMS.0301" 401,
        "An HTTP request with neither a signature nor a token, to a server with an auth file.";
    INCOMPLETE_SIGNATURE => Unauthenticated, "IncompleteSignatureException", "KMS.0302" 401,
        "A request signature is malformed or lacks a part (credential scope, signed headers, signature, the date header).";
    UNRECOGNIZED_CLIENT => Unauthenticated, "UnrecognizedClientException", "KMS.0302" 401,
        "A request is signed with an access key id the auth file does not have.";
    INVALID_SIGNATURE => Unauthenticated, "InvalidSignatureException", "KMS.0302" 401,
        "A request signature does not match the request and the access key's secret.";
    SIGNATURE_EXPIRED => Unauthenticated, "InvalidSignatureException", "KMS.0303" 401,
        "A signed request's date is more than 15 minutes from the server's clock.";
    ACCESS_DENIED => PermissionDenied, "AccessDeniedException", "KMS.0306" 403,
        "The principal's policy does not allow the action on the resource.";
    KEY_NOT_FOUND => NotFound, "NotFoundException", "KMS.0207" 404,
        "No such key in the caller's account.";
    PROJECT_NOT_FOUND => NotFound, "NotFoundException", "KMS.0207" 404,
        "Huawei endpoint: the URL's project id is not one of the principal's `project_ids`.";
    ALIAS_NOT_FOUND => NotFound, "NotFoundException", "KMS.0207" 404,
        "No such alias in the caller's account.";
    ALIAS_ALREADY_EXISTS => AlreadyExists, "AlreadyExistsException", "KMS.1104" 400,
        "An alias with that name already exists.";
    KEY_PENDING_DELETION => FailedPrecondition, "KMSInvalidStateException", "KMS.0210" 400,
        "The key an alias would point at is pending deletion.";
    KEY_INVALID_STATE => FailedPrecondition, "KMSInvalidStateException", "KMS.0209" 400,
        "The key's state does not allow the operation.";
    KEY_HAS_SEVERAL_ALIASES => FailedPrecondition, "ValidationException", "KMS.1101" 400,
        "Huawei update-key-alias: the key has several aliases, so which to change is unclear; use the alias API.";
    KEY_TYPE_MISMATCH => FailedPrecondition, "ValidationException", "KMS.0204" 400,
        "UpdateAlias: the new key differs from the current one in key class or key usage.";
    ETAG_MISMATCH => Aborted, "ConflictException", "KMS.0204" 400,
        "The etag given is not the alias's current etag; nothing changed.";
    ALIAS_QUOTA_EXCEEDED => ResourceExhausted, "LimitExceededException", "KMS.1105" 400,
        "The key already has the maximum number of aliases.";
    KEY_QUOTA_EXCEEDED => ResourceExhausted, "LimitExceededException", "KMS.1105" 400,
        "The account already has the maximum number of keys.";
    SERVER_BUSY => ResourceExhausted, "ThrottlingException", "KMS.0208" 429,
        "The server has the most calls in progress it takes (--max-in-flight); retry shortly.";
    THROTTLED => ResourceExhausted, "ThrottlingException", "KMS.0208" 429,
        "The account has used up its request rate for the action; retry after the RetryInfo delay.";
    REVISION_COMPACTED => OutOfRange, "InvalidMarkerException", "KMS.0204" 400,
        "WatchAliases: start_revision is older than the retained change log; list again.";
    FUTURE_REVISION => OutOfRange, "InvalidMarkerException", "KMS.0204" 400,
        "WatchAliases: start_revision is newer than the store's latest revision.";
    WATCH_TOO_SLOW => ResourceExhausted, "LimitExceededException", "KMS.1105" 400,
        "WatchAliases: the client fell too far behind and was cut off; list and watch again.";
    TOO_MANY_WATCHES => ResourceExhausted, "LimitExceededException", "KMS.1105" 400,
        "WatchAliases: the account or the server already has the most open watches it allows (--max-watches-per-account, --max-watches).";
    SHUTTING_DOWN => Unavailable, "KMSInternalException", "KMS.0000" 503,
        "The server is shutting down; retry on another instance.";
    UNKNOWN_OPERATION => Unimplemented, "UnknownOperationException", "KMS.0201" 404,
        "HTTP: an X-Amz-Target that is not a TrentService operation aliasd serves, or a URL that is not a Huawei KMS operation.";
    MALFORMED_BODY => InvalidArgument, "SerializationException", "KMS.0202" 400,
        "HTTP: the request body is not a JSON object, or a field has the wrong JSON type.";
    MISSING_PARAMETER => InvalidArgument, "ValidationException", "KMS.0204" 400,
        "HTTP: a required field is missing or empty.";
    UNKNOWN_METHOD => Unimplemented, "UnsupportedOperationException", "KMS.0201" 404,
        "The method does not exist on this server (check the service and method name; reflection lists them).";
    DEADLINE_EXCEEDED => DeadlineExceeded, "KMSInternalException", "KMS.0000" 504,
        "The call's deadline passed before it finished; a change may still have committed (retry with the same request_id).";
    INTERNAL => Internal, "KMSInternalException", "KMS.0000" 500,
        "A storage or server fault; details are in the server log.";
    STORE_FAILED => Unavailable, "KMSInternalException", "KMS.0000" 503,
        "The store hit an I/O error (a full disk, say) and this server must be restarted; it reports NOT_SERVING until then. The call changed nothing (`may_have_committed` = `false`): retry against the restarted server.";
    STORE_UNAVAILABLE => Unavailable, "KMSInternalException", "KMS.0000" 503,
        "The store cannot be reached now (etcd, with --backend etcd), or a transaction kept meeting conflicting writes. The call changed nothing (`may_have_committed` = `false`); the server recovers by itself: retry shortly.";
    WRITE_OUTCOME_UNKNOWN => Unknown, "KMSInternalException", "KMS.0000" 500,
        "The change committed but could not be made durable, and the store failed: it may or may not be there after the restart (`may_have_committed` = `true`). Retry with the same request_id; not retried automatically by gRPC clients.";
}

impl ReasonSpec {
    /// The HTTP status of the AWS JSON endpoint's error response: AWS
    /// answers client errors with 400 and server faults with 500 (503 when
    /// the server cannot serve now).
    pub fn aws_http_status(&self) -> u16 {
        match self.code {
            Code::Unavailable => 503,
            Code::Internal | Code::Unknown | Code::DeadlineExceeded => 500,
            _ => 400,
        }
    }
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
}

impl Error {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            field: None,
            retry_after: None,
            read_only: false,
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
        }
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
    fn the_readme_lists_every_reason_with_its_code_and_exception() {
        let readme = include_str!("../../docs/reference.md");
        for reason in Reason::ALL {
            let spec = reason.spec();
            let row = format!(
                "| `{}` | {} | {} ({}) | {} ({}) |",
                reason.as_str(),
                code_name(spec.code),
                spec.kms_exception,
                spec.aws_http_status(),
                spec.huawei_error_code,
                spec.huawei_http_status
            );
            assert!(
                readme.contains(&row),
                "docs/reference.md lacks the row {row}"
            );
        }
        let rows = readme
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains("Exception ("))
            .count();
        assert_eq!(
            rows,
            Reason::ALL.len(),
            "docs/reference.md lists reasons the code does not have"
        );
    }

    #[test]
    fn every_reason_has_an_upper_snake_name_and_a_kms_exception() {
        for reason in Reason::ALL {
            let name = reason.as_str();
            assert!(name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()));
            let spec = reason.spec();
            assert!(spec.kms_exception.ends_with("Exception"));
            assert!(
                spec.huawei_error_code.starts_with("KMS.") && spec.huawei_error_code.len() == 8,
                "{}",
                spec.huawei_error_code
            );
            assert!((400..600).contains(&spec.huawei_http_status));
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
    const NOT_REASONS: &[&str] = &["ARN"];

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
