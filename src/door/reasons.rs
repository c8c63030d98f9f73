//! How each door renders a reason: the AWS KMS exception (the AWS JSON
//! endpoint's `__type`, and the gRPC ErrorInfo's `kms_exception`), the
//! AWS HTTP status, and Huawei Cloud KMS's `error_code` and HTTP status.
//! One exhaustive table: a reason added to the domain does not compile
//! until it has a row here. docs/reference.md lists this table (a test
//! keeps them equal).

use crate::domain::error::Code;
use crate::domain::Reason;

/// A reason as the doors render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rendering {
    /// The AWS KMS exception name.
    pub kms_exception: &'static str,
    /// The HTTP status of the AWS JSON endpoint's error response.
    pub aws_http_status: u16,
    /// The Huawei Cloud KMS `error_code` and its HTTP status.
    pub huawei_error_code: &'static str,
    pub huawei_http_status: u16,
}

/// How the doors render `reason`.
pub fn rendering(reason: Reason) -> Rendering {
    use Reason::*;
    let (kms_exception, huawei_error_code, huawei_http_status) = match reason {
        INVALID_ALIAS_NAME => ("ValidationException", "KMS.1101", 400),
        // AWS answers a malformed key id as a key it cannot find.
        INVALID_KEY_ID => ("NotFoundException", "KMS.0205", 400),
        INVALID_ARN => ("InvalidArnException", "KMS.0205", 400),
        TARGET_NOT_A_KEY => ("ValidationException", "KMS.0205", 400),
        INVALID_KEY_SPEC => ("ValidationException", "KMS.0204", 400),
        INVALID_KEY_USAGE => ("ValidationException", "KMS.0204", 400),
        INVALID_DESCRIPTION => ("ValidationException", "KMS.0204", 400),
        INVALID_PENDING_WINDOW => ("ValidationException", "KMS.0204", 400),
        INVALID_PAGE_SIZE => ("ValidationException", "KMS.0204", 400),
        INVALID_PAGE_TOKEN => ("InvalidMarkerException", "KMS.0204", 400),
        INVALID_REQUEST_ID => ("ValidationException", "KMS.0206", 400),
        REQUEST_ID_REUSED => ("ValidationException", "KMS.0206", 400),
        INVALID_ETAG => ("ValidationException", "KMS.0204", 400),
        FIELD_TOO_LONG => ("ValidationException", "KMS.0204", 400),
        REQUEST_BODY_TIMEOUT => ("ValidationException", "KMS.0204", 400),
        MALFORMED_REQUEST => ("ValidationException", "KMS.0202", 400),
        REQUEST_TOO_LARGE => ("ValidationException", "KMS.0203", 400),
        RESERVED_ALIAS => ("NotAuthorizedException", "KMS.0211", 400),
        PROVIDER_KEY => ("NotAuthorizedException", "KMS.0306", 403),
        UNAUTHENTICATED => ("UnrecognizedClientException", "KMS.0302", 401),
        MISSING_AUTHENTICATION_TOKEN => ("MissingAuthenticationTokenException", "KMS.0301", 401),
        INCOMPLETE_SIGNATURE => ("IncompleteSignatureException", "KMS.0302", 401),
        UNRECOGNIZED_CLIENT => ("UnrecognizedClientException", "KMS.0302", 401),
        INVALID_SIGNATURE => ("InvalidSignatureException", "KMS.0302", 401),
        SIGNATURE_EXPIRED => ("InvalidSignatureException", "KMS.0303", 401),
        ACCESS_DENIED => ("AccessDeniedException", "KMS.0306", 403),
        KEY_NOT_FOUND => ("NotFoundException", "KMS.0207", 404),
        PROJECT_NOT_FOUND => ("NotFoundException", "KMS.0207", 404),
        ALIAS_NOT_FOUND => ("NotFoundException", "KMS.0207", 404),
        ALIAS_ALREADY_EXISTS => ("AlreadyExistsException", "KMS.1104", 400),
        KEY_PENDING_DELETION => ("KMSInvalidStateException", "KMS.0210", 400),
        KEY_INVALID_STATE => ("KMSInvalidStateException", "KMS.0209", 400),
        KEY_DISABLED => ("DisabledException", "KMS.0209", 400),
        KEY_USAGE_NOT_ALLOWED => ("InvalidKeyUsageException", "KMS.0308", 400),
        INCORRECT_KEY => ("IncorrectKeyException", "KMS.2201", 400),
        INVALID_CIPHERTEXT => ("InvalidCiphertextException", "KMS.2201", 400),
        SIGNATURE_NOT_VALID => ("KMSInvalidSignatureException", "KMS.0204", 400),
        MAC_NOT_VALID => ("KMSInvalidMacException", "KMS.0204", 400),
        INVALID_PARAMETER => ("ValidationException", "KMS.0308", 400),
        UNSUPPORTED_OPERATION => ("UnsupportedOperationException", "KMS.0331", 400),
        SM2_UNSUPPORTED => ("UnsupportedOperationException", "KMS.0308", 400),
        KEY_MATERIAL_UNAVAILABLE => ("KMSInvalidStateException", "KMS.0101", 500),
        ROTATION_QUOTA_EXCEEDED => ("LimitExceededException", "KMS.1105", 400),
        DRY_RUN => ("DryRunOperationException", "KMS.0204", 412),
        TAG_REFUSED => ("TagException", "KMS.0204", 400),
        MALFORMED_POLICY => ("MalformedPolicyDocumentException", "KMS.0204", 400),
        POLICY_TOO_LARGE => ("LimitExceededException", "KMS.0204", 400),
        POLICY_NOT_FOUND => ("NotFoundException", "KMS.0207", 404),
        KEY_HAS_SEVERAL_ALIASES => ("ValidationException", "KMS.1101", 400),
        KEY_TYPE_MISMATCH => ("ValidationException", "KMS.0204", 400),
        ETAG_MISMATCH => ("ConflictException", "KMS.0204", 400),
        ALIAS_QUOTA_EXCEEDED => ("LimitExceededException", "KMS.1105", 400),
        KEY_QUOTA_EXCEEDED => ("LimitExceededException", "KMS.1105", 400),
        SERVER_BUSY => ("ThrottlingException", "KMS.0208", 429),
        THROTTLED => ("ThrottlingException", "KMS.0208", 429),
        REVISION_COMPACTED => ("InvalidMarkerException", "KMS.0204", 400),
        FUTURE_REVISION => ("InvalidMarkerException", "KMS.0204", 400),
        WATCH_TOO_SLOW => ("LimitExceededException", "KMS.1105", 400),
        TOO_MANY_WATCHES => ("LimitExceededException", "KMS.1105", 400),
        SHUTTING_DOWN => ("KMSInternalException", "KMS.0000", 503),
        UNKNOWN_OPERATION => ("UnknownOperationException", "KMS.0201", 404),
        MALFORMED_BODY => ("SerializationException", "KMS.0202", 400),
        MISSING_PARAMETER => ("ValidationException", "KMS.0204", 400),
        UNKNOWN_METHOD => ("UnsupportedOperationException", "KMS.0201", 404),
        DEADLINE_EXCEEDED => ("KMSInternalException", "KMS.0000", 504),
        INTERNAL => ("KMSInternalException", "KMS.0000", 500),
        STORE_FAILED => ("KMSInternalException", "KMS.0000", 503),
        STORE_UNAVAILABLE => ("KMSInternalException", "KMS.0000", 503),
        WRITE_OUTCOME_UNKNOWN => ("KMSInternalException", "KMS.0000", 500),
    };
    Rendering {
        kms_exception,
        // AWS answers a dry run that would have succeeded with 412.
        aws_http_status: match reason {
            DRY_RUN => 412,
            _ => aws_http_status(reason.spec().code),
        },
        huawei_error_code,
        huawei_http_status,
    }
}

/// AWS answers client errors with 400 and server faults with 500 (503 when
/// the server cannot serve now).
fn aws_http_status(code: Code) -> u16 {
    match code {
        Code::Unavailable => 503,
        Code::Internal | Code::Unknown | Code::DeadlineExceeded => 500,
        _ => 400,
    }
}

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
            let (spec, door) = (reason.spec(), rendering(*reason));
            let row = format!(
                "| `{}` | {} | {} ({}) | {} ({}) |",
                reason.as_str(),
                code_name(spec.code),
                door.kms_exception,
                door.aws_http_status,
                door.huawei_error_code,
                door.huawei_http_status
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
    fn every_reason_has_a_kms_exception_and_a_huawei_code() {
        for reason in Reason::ALL {
            let spec = rendering(*reason);
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
