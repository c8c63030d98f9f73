//! AWS KMS JSON 1.1 (`POST /`, `X-Amz-Target: TrentService.<Operation>`),
//! as boto3, the aws CLI and every AWS SDK speak it.

use std::sync::Arc;

use http::StatusCode;

use super::{json_response, HttpRequest, HttpResponse};
use crate::app::App;
use crate::domain::{Error, Reason};

/// The content type of every AWS JSON 1.1 body.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Serves one AWS JSON request.
pub async fn handle(_app: &Arc<App>, request: HttpRequest) -> HttpResponse {
    let target = request
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    error_response(&Error::new(
        Reason::UNKNOWN_OPERATION,
        format!("Unknown operation {target:?}."),
    ))
}

/// An error as AWS renders it: `{"__type": ..., "message": ...}`.
pub fn error_response(error: &Error) -> HttpResponse {
    let spec = error.reason.spec();
    let status =
        StatusCode::from_u16(spec.aws_http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        CONTENT_TYPE,
        &serde_json::json!({"__type": spec.kms_exception, "message": error.message}),
    )
}
