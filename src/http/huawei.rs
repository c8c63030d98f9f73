//! Huawei Cloud KMS v1.0 (`/v1.0/{project_id}/kms/...`), as
//! `huaweicloudsdkkms` speaks it.

use std::sync::Arc;

use http::StatusCode;

use super::{json_response, HttpRequest, HttpResponse};
use crate::app::App;
use crate::domain::{Error, Reason};

/// The content type of Huawei's JSON bodies.
pub const CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Serves one Huawei KMS request: `operation` is the path after `/kms/`.
pub async fn handle(
    _app: &Arc<App>,
    _project_id: &str,
    operation: &str,
    request: HttpRequest,
) -> HttpResponse {
    error_response(&Error::new(
        Reason::UNKNOWN_OPERATION,
        format!("No operation {} {operation}.", request.method),
    ))
}

/// An error as Huawei renders it:
/// `{"error": {"error_code": "KMS.xxxx", "error_msg": ...}}`.
pub fn error_response(error: &Error) -> HttpResponse {
    let spec = error.reason.spec();
    let status =
        StatusCode::from_u16(spec.huawei_http_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(
        status,
        CONTENT_TYPE,
        &serde_json::json!({"error": {"error_code": spec.huawei_error_code, "error_msg": error.message}}),
    )
}
