//! Printing answers: aligned tables for people, JSON for programs (the
//! proto3 JSON mapping, read from the same descriptors reflection serves,
//! so it matches grpcurl and generated clients field for field).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::domain::time::rfc3339;
use crate::pb;

/// A message that prints as JSON under its proto name.
pub trait ProtoName: prost::Message + Sized {
    const NAME: &'static str;
}

macro_rules! proto_names {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl ProtoName for $ty { const NAME: &'static str = $name; })*
    };
}

proto_names! {
    pb::Key => "aliasd.v1.Key",
    pb::Alias => "aliasd.v1.Alias",
    pb::AliasEvent => "aliasd.v1.AliasEvent",
    pb::AuditEvent => "aliasd.v1.AuditEvent",
    pb::DeleteAliasResponse => "aliasd.v1.DeleteAliasResponse",
    pb::KeyRotation => "aliasd.v1.KeyRotation",
    pb::KeyRotationStatus => "aliasd.v1.KeyRotationStatus",
    pb::Tag => "aliasd.v1.Tag",
    pb::GetKeyPolicyResponse => "aliasd.v1.GetKeyPolicyResponse",
    pb::EncryptResponse => "aliasd.v1.EncryptResponse",
    pb::DecryptResponse => "aliasd.v1.DecryptResponse",
    pb::ReEncryptResponse => "aliasd.v1.ReEncryptResponse",
    pb::GenerateDataKeyResponse => "aliasd.v1.GenerateDataKeyResponse",
    pb::GenerateDataKeyWithoutPlaintextResponse => "aliasd.v1.GenerateDataKeyWithoutPlaintextResponse",
    pb::SignResponse => "aliasd.v1.SignResponse",
    pb::VerifyResponse => "aliasd.v1.VerifyResponse",
    pb::GenerateMacResponse => "aliasd.v1.GenerateMacResponse",
    pb::VerifyMacResponse => "aliasd.v1.VerifyMacResponse",
    pb::GenerateRandomResponse => "aliasd.v1.GenerateRandomResponse",
    pb::GetServerInfoResponse => "aliasd.v1.GetServerInfoResponse",
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(pb::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set built into the binary decodes")
    })
}

/// `message` in the proto3 JSON mapping (lowerCamelCase names, enum names,
/// RFC 3339 timestamps, 64-bit integers as strings), with every field
/// present so scripts need not guess defaults.
pub fn json<M: ProtoName>(message: &M) -> serde_json::Value {
    let descriptor = pool()
        .get_message_by_name(M::NAME)
        .expect("every ProtoName names a message of the built-in descriptors");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message re-decodes under its own descriptor");
    let options = SerializeOptions::new().skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("a message serializes to JSON")
}

/// The `--query` of this run, applied to every JSON document printed.
static QUERY: OnceLock<jmespath::Expression<'static>> = OnceLock::new();

/// Applies `expression` (JMESPath, checked by the flag's parser) to what
/// this run prints as JSON.
pub fn set_query(expression: &str) -> Result<(), String> {
    let compiled = jmespath::compile(expression).map_err(|e| e.to_string())?;
    let _ = QUERY.set(compiled);
    Ok(())
}

/// `value`, or what `--query` makes of it.
fn queried(value: &serde_json::Value) -> serde_json::Value {
    let Some(query) = QUERY.get() else {
        return value.clone();
    };
    query
        .search(value)
        .ok()
        .and_then(|found| serde_json::to_value(&*found).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Prints one JSON document (or line) to stdout.
pub fn print_json(value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(&queried(value)).unwrap_or_default();
    crate::outln!("{text}");
}

/// Prints one compact JSON line and flushes (for streams).
pub fn print_json_line(value: &serde_json::Value) {
    crate::outln!("{}", queried(value));
}

/// Rows under a header, each column as wide as its widest cell.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<&'static str>) -> Table {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn print(&self) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len().saturating_sub(1);
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i == last {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}  "));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        super::write_stdout(out.as_bytes());
    }
}

/// Prints `(field, value)` pairs as two aligned columns.
pub fn print_fields(fields: &[(&str, String)]) {
    let width = fields.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (field, value) in fields {
        out.push_str(&format!("{field:<width$}  {value}\n"));
    }
    super::write_stdout(out.as_bytes());
}

/// A timestamp as RFC 3339 (empty when absent).
pub fn time(timestamp: &Option<prost_types::Timestamp>) -> String {
    match timestamp {
        Some(t) => rfc3339(t.seconds * 1000 + i64::from(t.nanos) / 1_000_000),
        None => String::new(),
    }
}

/// An enum value's name without its type prefix: KEY_STATE_ENABLED -> ENABLED.
pub fn enum_name(full: &str, prefix: &str) -> String {
    full.strip_prefix(prefix).unwrap_or(full).to_owned()
}

pub fn key_state(key: &pb::Key) -> String {
    enum_name(key.key_state().as_str_name(), "KEY_STATE_")
}

pub fn key_fields(key: &pb::Key) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("key_id", key.key_id.clone()),
        ("arn", key.arn.clone()),
        ("state", key_state(key)),
        (
            "key_spec",
            enum_name(key.key_spec().as_str_name(), "KEY_SPEC_"),
        ),
        (
            "key_usage",
            enum_name(key.key_usage().as_str_name(), "KEY_USAGE_"),
        ),
        (
            "key_manager",
            enum_name(key.key_manager().as_str_name(), "KEY_MANAGER_"),
        ),
        ("description", key.description.clone()),
        ("created", time(&key.creation_time)),
    ];
    if key.deletion_time.is_some() {
        fields.push(("deletion_time", time(&key.deletion_time)));
        fields.push((
            "pending_window_days",
            key.pending_window_in_days.to_string(),
        ));
    }
    fields.push(("account", key.account.clone()));
    fields
}

pub fn alias_fields(alias: &pb::Alias) -> Vec<(&'static str, String)> {
    vec![
        ("alias_name", alias.alias_name.clone()),
        ("alias_arn", alias.alias_arn.clone()),
        ("target_key_id", alias.target_key_id.clone()),
        ("created", time(&alias.creation_time)),
        ("last_updated", time(&alias.last_updated_time)),
        ("etag", alias.etag.clone()),
    ]
}
