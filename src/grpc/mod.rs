//! The gRPC door: tonic services that translate proto <-> application calls
//! and nothing else, the layer that extracts credentials and admits calls,
//! and the rendering of errors as gRPC statuses.

mod admin;
mod aliases;
mod audit;
pub mod auth_layer;
pub mod codec;
mod convert;
mod crypto;
mod diagnostics;
pub mod health;
mod keys;
pub mod layers;

use std::collections::HashMap;
use std::sync::Arc;

use tonic::{Code as GrpcCode, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::app::{App, Call};
use crate::domain::policy::Caller;
use crate::domain::{Code, Error, Reason};
use crate::door::origin::Origin;

pub use admin::AdminApi;
pub use aliases::AliasApi;
pub use audit::AuditApi;
pub use crypto::CryptoApi;
pub use diagnostics::DiagnosticsApi;
pub use keys::KeyApi;

/// The ErrorInfo domain of every aliasd error.
pub const ERROR_DOMAIN: &str = "aliasd";

/// The application call of a request: its caller (put there by the
/// [`auth_layer`]) and x-request-id.
fn call_of<T>(app: &App, request: &tonic::Request<T>) -> Result<Call, Status> {
    let caller = match request.extensions().get::<Caller>() {
        Some(caller) => caller.clone(),
        // With an auth file, a call that reached here unauthenticated is
        // refused rather than treated as anonymous.
        None if app.authenticator.is_some() => {
            return Err(status(Error::new(
                Reason::UNAUTHENTICATED,
                "The call carries no credentials.",
            )))
        }
        None => Caller::Anonymous,
    };
    let x_request_id = request
        .metadata()
        .get(crate::door::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin = request.extensions().get::<Origin>().cloned();
    Ok(Call::new(caller, x_request_id, origin.unwrap_or_default()))
}

/// What the handlers share.
#[derive(Clone)]
struct Door {
    app: Arc<App>,
}

impl Door {
    fn call<T>(&self, request: &tonic::Request<T>) -> Result<Call, Status> {
        call_of(&self.app, request)
    }
}

fn grpc_code(code: Code) -> GrpcCode {
    match code {
        Code::InvalidArgument => GrpcCode::InvalidArgument,
        Code::NotFound => GrpcCode::NotFound,
        Code::AlreadyExists => GrpcCode::AlreadyExists,
        Code::PermissionDenied => GrpcCode::PermissionDenied,
        Code::FailedPrecondition => GrpcCode::FailedPrecondition,
        Code::Aborted => GrpcCode::Aborted,
        Code::ResourceExhausted => GrpcCode::ResourceExhausted,
        Code::OutOfRange => GrpcCode::OutOfRange,
        Code::Unavailable => GrpcCode::Unavailable,
        Code::DeadlineExceeded => GrpcCode::DeadlineExceeded,
        Code::Unimplemented => GrpcCode::Unimplemented,
        Code::Unauthenticated => GrpcCode::Unauthenticated,
        Code::Internal => GrpcCode::Internal,
        Code::Unknown => GrpcCode::Unknown,
    }
}

/// The gRPC status of an error: its code, message, an ErrorInfo (reason,
/// domain, kms_exception, and may_have_committed where it applies) and, for
/// invalid arguments, a BadRequest.
pub fn status(error: Error) -> Status {
    let spec = error.reason.spec();
    let door = crate::door::reasons::rendering(error.reason);
    let code = grpc_code(spec.code);
    if code == GrpcCode::Internal {
        tracing::error!(message = %error.message, "internal error");
    }
    let mut metadata = HashMap::from([("kms_exception".to_owned(), door.kms_exception.to_owned())]);
    if let Some(may) = error.may_have_committed() {
        metadata.insert("may_have_committed".to_owned(), may.to_string());
    }
    let mut details = ErrorDetails::with_error_info(error.reason.as_str(), ERROR_DOMAIN, metadata);
    if let Some(delay) = error.retry_after {
        details.set_retry_info(Some(delay));
    }
    if code == GrpcCode::InvalidArgument {
        details.add_bad_request_violation(error.field.unwrap_or("request"), error.message.clone());
    }
    Status::with_error_details(code, error.message, details)
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        status(error)
    }
}

/// The name of a gRPC code as the specification spells it: NOT_FOUND.
pub fn code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost_reflect::{DescriptorPool, EnumDescriptor};

    use super::*;
    use crate::pb;

    /// `aliasd.v1.ErrorReason` as the server's reflection serves it.
    fn error_reason_enum() -> EnumDescriptor {
        DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
            .expect("the built descriptor set decodes")
            .get_enum_by_name("aliasd.v1.ErrorReason")
            .expect("aliasd.v1.ErrorReason is in the descriptor set")
    }

    #[test]
    fn the_error_reason_enum_names_every_reason_and_no_other() {
        let published = error_reason_enum();
        assert_eq!(
            published
                .get_value(0)
                .map(|v| v.name().to_owned())
                .as_deref(),
            Some("ERROR_REASON_UNSPECIFIED")
        );
        let in_proto: BTreeSet<String> = published
            .values()
            .filter(|v| v.number() != 0)
            .map(|v| v.name().to_owned())
            .collect();
        let in_table: BTreeSet<String> =
            Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
        let missing: Vec<_> = in_table.difference(&in_proto).collect();
        let unknown: Vec<_> = in_proto.difference(&in_table).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "proto/aliasd/v1/errors.proto lacks the reasons {missing:?} and has values that \
             are no reason: {unknown:?}"
        );
        // The generated Rust enum is the same one.
        for reason in Reason::ALL {
            let generated = pb::ErrorReason::from_str_name(reason.as_str())
                .unwrap_or_else(|| panic!("pb::ErrorReason lacks {}", reason.as_str()));
            assert_eq!(generated.as_str_name(), reason.as_str());
        }
    }

    #[test]
    fn each_error_reason_value_documents_its_grpc_code_and_meaning() {
        let published = error_reason_enum();
        let file = published.parent_file_descriptor_proto();
        let info = file
            .source_code_info
            .as_ref()
            .expect("the descriptor set keeps the comments");
        for reason in Reason::ALL {
            let value = published
                .get_value_by_name(reason.as_str())
                .expect("every reason has a value (the test above)");
            let comment = info
                .location
                .iter()
                .find(|l| l.path == value.path())
                .map(|l| {
                    l.leading_comments()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let spec = reason.spec();
            let expected = format!("{}: {}", code_name(grpc_code(spec.code)), spec.description);
            assert_eq!(
                comment,
                expected,
                "the comment of ErrorReason.{}",
                reason.as_str()
            );
        }
    }
}
