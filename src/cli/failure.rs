//! A failed command: what went wrong, the server's reason, what to do, and
//! an exit code that tells kinds of failure apart.

use std::process::ExitCode;

use tonic::Code;
use tonic_types::StatusExt;

use super::Output;
use crate::grpc::code_name;

/// Exit codes of the client commands (docs/grpc-and-cli.md: "The command-line client").
pub mod codes {
    /// Anything else: an internal error, an outcome the server could not
    /// tell (WRITE_OUTCOME_UNKNOWN).
    pub const OTHER: u8 = 1;
    /// Bad flags or arguments, found before any call (clap also exits 2).
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    /// The server refused the input (INVALID_ARGUMENT, OUT_OF_RANGE).
    pub const INVALID: u8 = 4;
    /// Not authenticated, or not allowed.
    pub const DENIED: u8 = 5;
    /// The state is in the way: the alias exists, the etag moved, the key's
    /// state forbids it, a quota is full.
    pub const CONFLICT: u8 = 6;
    /// The server could not be reached or could not serve now (unavailable,
    /// throttled, busy, deadline passed): trying again later may work.
    pub const UNAVAILABLE: u8 = 7;
}

#[derive(Debug)]
pub struct Failure {
    pub message: String,
    /// The server's reason (ErrorInfo), when it sent one.
    pub reason: Option<String>,
    /// The gRPC code's name, for a failed call.
    pub code: Option<&'static str>,
    pub hint: Option<String>,
    pub exit: u8,
}

impl Failure {
    pub fn usage(message: String) -> Failure {
        Failure {
            message,
            reason: None,
            code: None,
            hint: None,
            exit: codes::USAGE,
        }
    }

    /// A failure on this side (a file that cannot be written, ...).
    pub fn local(message: String) -> Failure {
        Failure {
            message,
            reason: None,
            code: None,
            hint: None,
            exit: codes::OTHER,
        }
    }

    /// Nothing usable answered at `endpoint`; `tls`: whether this client
    /// spoke TLS (the hint names the mistake it most likely made).
    pub fn unreachable(endpoint: &str, cause: &str, tls: bool) -> Failure {
        let refused = cause.contains("refused") || cause.contains("timed out");
        let hint = match (refused, tls) {
            (false, true) => {
                "This client spoke TLS (--tls-ca, a client certificate or an https:// endpoint) \
                 and the handshake failed: if the server is plaintext, use an http:// endpoint \
                 and no TLS flags; otherwise check --tls-ca and --tls-server-name."
            }
            (false, false) => {
                "This client spoke plaintext: for a TLS server, give --tls-ca or an https:// \
                 endpoint."
            }
            (true, _) => {
                "Is `aliasd serve` running there? Set --endpoint (or ALIASD_ENDPOINT); for a TLS \
                 server, --tls-ca or an https:// endpoint."
            }
        };
        Failure {
            message: format!("cannot reach the server at {endpoint}: {cause}"),
            reason: None,
            code: Some("UNAVAILABLE"),
            hint: Some(hint.into()),
            exit: codes::UNAVAILABLE,
        }
    }

    /// A failed call. `request_id`: the idempotency key the call carried.
    pub fn from_status(status: &tonic::Status, request_id: Option<&str>) -> Failure {
        // tonic reports its own deadline (--timeout-secs passed with no
        // answer) as CANCELLED "Timeout expired": it is a deadline.
        if status.code() == Code::Cancelled && status.message().contains("Timeout expired") {
            let deadline =
                tonic::Status::deadline_exceeded("the server did not answer within --timeout-secs");
            return Failure::from_status(&deadline, request_id);
        }
        let reason = reason_of(status);
        // The connection itself failed (tonic reports it without a reason of
        // ours): most often plaintext spoken to a TLS port, or the reverse.
        let message = status.message();
        if reason.is_none()
            && matches!(
                status.code(),
                Code::Internal | Code::Unknown | Code::Unavailable
            )
            && ["h2 protocol error", "transport error", "connection"]
                .iter()
                .any(|sign| message.contains(sign))
        {
            return Failure {
                message: format!("the connection to the server failed: {message}"),
                reason: None,
                code: Some(code_name(status.code())),
                hint: Some(
                    "A TLS server needs --tls-ca (or an https:// endpoint); a plaintext one \
                     needs neither. Is --endpoint the gRPC port?"
                        .into(),
                ),
                exit: codes::UNAVAILABLE,
            };
        }
        let exit = match (status.code(), reason.as_deref()) {
            (_, Some("WRITE_OUTCOME_UNKNOWN")) => codes::OTHER,
            (_, Some("ALIAS_QUOTA_EXCEEDED" | "KEY_QUOTA_EXCEEDED")) => codes::CONFLICT,
            (Code::NotFound, _) => codes::NOT_FOUND,
            (Code::InvalidArgument | Code::OutOfRange, _) => codes::INVALID,
            (Code::Unauthenticated | Code::PermissionDenied, _) => codes::DENIED,
            (Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition, _) => codes::CONFLICT,
            (Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted, _) => {
                codes::UNAVAILABLE
            }
            _ => codes::OTHER,
        };
        let message = match status.message() {
            "" => format!("the call failed with {}", code_name(status.code())),
            message => message.to_owned(),
        };
        Failure {
            hint: hint(status.code(), reason.as_deref(), request_id),
            message,
            reason,
            code: Some(code_name(status.code())),
            exit,
        }
    }
}

/// The server's reason (ErrorInfo) of a failed call, when it sent one.
pub fn reason_of(status: &tonic::Status) -> Option<String> {
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .filter(|r| !r.is_empty())
}

/// What to do about a failure, where there is something to say.
fn hint(code: Code, reason: Option<&str>, request_id: Option<&str>) -> Option<String> {
    let text = match reason {
        Some("ALIAS_NOT_FOUND") => "`aliasd alias list` shows the account's aliases.",
        Some("KEY_NOT_FOUND") => "`aliasd key list` shows the account's keys.",
        Some("ALIAS_ALREADY_EXISTS") => {
            "Choose another name, or point the alias elsewhere with `aliasd alias update NAME KEY`."
        }
        Some("ETAG_MISMATCH") => {
            "The alias changed since you read it: `aliasd alias get NAME` shows its etag now."
        }
        Some("INVALID_ETAG") => "Copy the etag `aliasd alias get NAME` shows (16 hex digits).",
        Some("INVALID_ALIAS_NAME") => {
            "An alias name is alias/ and then letters, digits, /, _ and -, at most 256 characters in all."
        }
        Some("INVALID_KEY_ID" | "INVALID_ARN") => {
            "Name a key by its id (a UUID), its ARN, or one of its alias names; `aliasd key list` shows the ids."
        }
        Some("INVALID_PENDING_WINDOW") => "--pending-window-days is 7 to 30.",
        Some("INVALID_REQUEST_ID" | "REQUEST_ID_REUSED") => {
            "A --request-id is a UUID, used again only to retry the very same change."
        }
        Some("TARGET_NOT_A_KEY") => "Name the key by its id or ARN (`aliasd alias get NAME` shows an alias's key).",
        Some("KEY_PENDING_DELETION") => "`aliasd key cancel-deletion KEY` brings the key back (disabled).",
        Some("KEY_INVALID_STATE") => "`aliasd key describe KEY` shows the key's state.",
        Some("ALIAS_QUOTA_EXCEEDED") => "Delete an alias of the key first, or use another key.",
        Some("REVISION_COMPACTED") => {
            "The change log no longer reaches back that far: list the aliases again and watch from the listing's revision."
        }
        Some("WRITE_OUTCOME_UNKNOWN") => {
            return Some(match request_id {
                Some(id) => format!(
                    "The change may or may not have been made. Run the same command with --request-id {id}: \
                     it is applied at most once."
                ),
                None => "The change may or may not have been made: read the state before retrying.".into(),
            })
        }
        Some("THROTTLED" | "SERVER_BUSY") => "The server is shedding load: try again shortly.",
        _ => match code {
            Code::Unauthenticated => {
                "Pass a token with --token (or ALIASD_TOKEN), or a client certificate with \
                 --tls-client-cert and --tls-client-key."
            }
            Code::PermissionDenied => {
                "The server's auth file does not allow this principal to do this: ask its operator."
            }
            Code::Unavailable => "The server is not serving now (starting, stopping, or its store failed): try again shortly.",
            Code::DeadlineExceeded => "The call took longer than --timeout-secs.",
            Code::InvalidArgument => "The message says what is wrong; `--help` lists each command's arguments.",
            _ => return None,
        },
    };
    Some(text.to_owned())
}

/// An error and its causes, one after another (a transport error's own
/// message is often just "transport error").
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

/// Prints `failure` to stderr (as JSON with `--output json`) and returns its
/// exit code.
pub fn exit(failure: &Failure, output: Output) -> ExitCode {
    match output {
        Output::Json => {
            let document = serde_json::json!({ "error": {
                "message": failure.message,
                "code": failure.code,
                "reason": failure.reason,
                "hint": failure.hint,
            }});
            eprintln!("{document}");
        }
        Output::Table => {
            eprintln!("aliasd: {}", failure.message);
            match (&failure.reason, failure.code) {
                (Some(reason), Some(code)) => eprintln!("  reason: {reason} ({code})"),
                (None, Some(code)) => eprintln!("  code: {code}"),
                _ => {}
            }
            if let Some(hint) = &failure.hint {
                eprintln!("  hint: {hint}");
            }
        }
    }
    ExitCode::from(failure.exit)
}
