//! What every door (gRPC, the HTTP dialects) shares, belonging to none of
//! them: which door a call came through, accepting connections within their
//! limits ([`connections`]), and a call's identity in logs and traces: its
//! x-request-id, its span with the caller's W3C trace context, and its
//! latency as logged. The limits every door applies to a request are here
//! too.

pub mod connections;
pub mod origin;
pub mod reasons;

use std::time::Duration;

use http::HeaderValue;

/// The largest request a door takes: a gRPC message or an HTTP body.
pub const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Which door a call came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Door {
    Grpc,
    Aws,
    Huawei,
    /// The HTTP listener itself (`GET /ping`).
    Http,
    /// The web console (`--console-listen`).
    Console,
}

impl Door {
    /// The door's name in metrics, logs and audit records.
    pub fn name(self) -> &'static str {
        match self {
            Door::Grpc => "grpc",
            Door::Aws => "aws",
            Door::Huawei => "huawei",
            Door::Http => "http",
            Door::Console => "console",
        }
    }
}

/// The header that carries a call's x-request-id, in and out.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest x-request-id taken from a caller; longer ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The caller's x-request-id when it is usable (visible ASCII, at most 128
/// characters), else a fresh UUID.
pub fn request_id(headers: &http::HeaderMap) -> HeaderValue {
    headers
        .get(REQUEST_ID_HEADER)
        .filter(|v| {
            let bytes = v.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID_LEN
                // Characters that cannot dress up a log line.
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:/@+".contains(b))
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value")
        })
}

/// Milliseconds, rounded to two decimals for the log (`latency_ms=0.04`).
pub fn rounded_ms(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 100_000.0).round() / 100.0
}

/// The span of one call, at any door: its method, x-request-id, TCP peer
/// and [`origin::Origin`] (door, client address, user agent); the W3C
/// trace context the caller sent (`traceparent`: trace_id and
/// parent_span_id; `tracestate`), so that its log lines join the caller's
/// trace; and the principal, recorded once admitted.
pub fn call_span(
    method: &str,
    x_request_id: &str,
    peer: Option<std::net::SocketAddr>,
    origin: &origin::Origin,
    headers: &http::HeaderMap,
) -> tracing::Span {
    let span = tracing::info_span!(
        "call",
        method = %method,
        x_request_id = %x_request_id,
        door = origin.door,
        peer = tracing::field::display(OrEmpty(peer)),
        source_address = %origin.source_address,
        user_agent = %origin.user_agent,
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
        tracestate = tracing::field::Empty,
        principal = tracing::field::Empty,
    );
    if let Some((trace_id, parent)) = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent)
    {
        span.record("trace_id", trace_id);
        span.record("parent_span_id", parent);
        if let Some(state) = headers
            .get("tracestate")
            .and_then(|v| v.to_str().ok())
            .filter(|s| s.len() <= 512 && !s.is_empty())
        {
            span.record("tracestate", state);
        }
    }
    span
}

/// An optional value, displayed as "" when absent.
struct OrEmpty<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for OrEmpty<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => Ok(()),
        }
    }
}

/// A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`): its trace id and
/// parent span id, if it is well formed and neither id is all zeros.
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    // Version 00 has exactly four parts; a later version may add more.
    let more = parts.next().is_some();
    let valid = hex(version, 2)
        && version != "ff"
        && !(version == "00" && more)
        && hex(trace_id, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0');
    valid.then_some((trace_id, parent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_traceparent_is_taken() {
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some(("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"))
        );
        // A later version may carry more fields.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
                .is_some()
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn caller_request_ids_are_kept_when_sane() {
        let mut headers = http::HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        assert_ne!(request_id(&headers), "has space");
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("a}:_status=Ok"));
        assert_ne!(request_id(&headers), "a}:_status=Ok");
    }
}
