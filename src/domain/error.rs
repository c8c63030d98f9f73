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
        "An etag longer than 64 characters.";
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
    ACCESS_DENIED => PermissionDenied, "AccessDeniedException", "KMS.0306" 403,
        "The principal's policy does not allow the action on the resource.";
    KEY_NOT_FOUND => NotFound, "NotFoundException", "KMS.0207" 404,
        "No such key in the caller's account.";
    ALIAS_NOT_FOUND => NotFound, "NotFoundException", "KMS.0207" 404,
        "No such alias in the caller's account.";
    ALIAS_ALREADY_EXISTS => AlreadyExists, "AlreadyExistsException", "KMS.1104" 400,
        "An alias with that name already exists.";
    KEY_PENDING_DELETION => FailedPrecondition, "KMSInvalidStateException", "KMS.0210" 400,
        "The key an alias would point at is pending deletion.";
    KEY_INVALID_STATE => FailedPrecondition, "KMSInvalidStateException", "KMS.0209" 400,
        "The key's state does not allow the operation.";
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
    UNKNOWN_METHOD => Unimplemented, "UnsupportedOperationException", "KMS.0201" 404,
        "The method does not exist on this server (check the service and method name; reflection lists them).";
    DEADLINE_EXCEEDED => DeadlineExceeded, "KMSInternalException", "KMS.0000" 504,
        "The call's deadline passed before it finished; a change may still have committed (retry with the same request_id).";
    INTERNAL => Internal, "KMSInternalException", "KMS.0000" 500,
        "A storage or server fault; details are in the server log.";
    STORE_FAILED => Unavailable, "KMSInternalException", "KMS.0000" 503,
        "The store hit an I/O error (a full disk, say) and this server must be restarted; it reports NOT_SERVING until then. The call changed nothing (`may_have_committed` = `false`): retry against the restarted server.";
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
            Reason::STORE_FAILED => Some(false),
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
}

impl Error {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// An INVALID_ARGUMENT-class error naming the field at fault.
    pub fn invalid(reason: Reason, field: &'static str, message: impl Into<String>) -> Self {
        Error {
            reason,
            message: message.into(),
            field: Some(field),
            retry_after: None,
        }
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

    #[test]
    fn the_readme_lists_every_reason_with_its_code_and_exception() {
        let readme = include_str!("../../README.md");
        for reason in Reason::ALL {
            let spec = reason.spec();
            let code = format!("{:?}", spec.code);
            // Code::InvalidArgument -> INVALID_ARGUMENT
            let code: String = code
                .chars()
                .enumerate()
                .flat_map(|(i, c)| {
                    let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                    sep.into_iter()
                        .chain(std::iter::once(c.to_ascii_uppercase()))
                })
                .collect();
            let row = format!(
                "| `{}` | {} | {} ({}) | {} ({}) |",
                reason.as_str(),
                code,
                spec.kms_exception,
                spec.aws_http_status(),
                spec.huawei_error_code,
                spec.huawei_http_status
            );
            assert!(readme.contains(&row), "README.md lacks the row {row}");
        }
        let rows = readme
            .lines()
            .filter(|l| l.starts_with("| `") && l.contains("Exception ("))
            .count();
        assert_eq!(
            rows,
            Reason::ALL.len(),
            "README.md lists reasons the code does not have"
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
}
