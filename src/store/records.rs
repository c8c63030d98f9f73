//! How records are laid out on disk: a format byte, then a protobuf message.
//! Protobuf lets later versions add fields without rewriting old records;
//! the format byte leaves room for a change protobuf cannot absorb. Enums are
//! stored by name, so reordering them in code cannot corrupt data.

use prost::Message;

use crate::domain::key::{AutoRotation, KeyMaterial, RotationType};
use crate::domain::{
    Alias, AliasEvent, AliasName, ChangeKind, Error, Key, KeyId, KeyManager, KeySpec, KeyState,
    KeyUsage,
};

/// The format byte of every record written by this version.
const FORMAT_V1: u8 = 1;

#[derive(Clone, PartialEq, Message)]
pub struct KeyRecord {
    #[prost(string, tag = "1")]
    pub key_id: String,
    #[prost(string, tag = "2")]
    pub description: String,
    #[prost(string, tag = "3")]
    pub key_spec: String,
    #[prost(string, tag = "4")]
    pub key_usage: String,
    #[prost(string, tag = "5")]
    pub key_state: String,
    #[prost(string, tag = "6")]
    pub key_manager: String,
    #[prost(int64, tag = "7")]
    pub creation_time: i64,
    #[prost(int64, optional, tag = "8")]
    pub deletion_time: Option<i64>,
    #[prost(int32, tag = "9")]
    pub pending_window_in_days: i32,
    /// The key's material versions, oldest first (wrapped).
    #[prost(message, repeated, tag = "10")]
    pub materials: Vec<MaterialRecord>,
    /// Automatic rotation's period and next time, when it is enabled.
    #[prost(int32, optional, tag = "11")]
    pub rotation_period_days: Option<i32>,
    #[prost(int64, optional, tag = "12")]
    pub next_rotation: Option<i64>,
    /// Tags, in key order.
    #[prost(message, repeated, tag = "13")]
    pub tags: Vec<TagRecord>,
    /// The key policy as given; absent: AWS's default.
    #[prost(string, optional, tag = "14")]
    pub policy: Option<String>,
}

/// One version of a key's material; `wrapped` is under the root key.
#[derive(Clone, PartialEq, Message)]
pub struct TagRecord {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MaterialRecord {
    #[prost(uint32, tag = "1")]
    pub version: u32,
    #[prost(string, tag = "2")]
    pub id: String,
    #[prost(int64, tag = "3")]
    pub created: i64,
    /// "" for the key's first material, else AUTOMATIC or ON_DEMAND.
    #[prost(string, tag = "4")]
    pub rotation: String,
    #[prost(bytes = "vec", tag = "5")]
    pub wrapped: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AliasRecord {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub target: String,
    #[prost(int64, tag = "3")]
    pub creation_time: i64,
    #[prost(int64, tag = "4")]
    pub last_updated_time: i64,
    #[prost(string, tag = "5")]
    pub etag: String,
}

/// The per-key alias index: the names of a key's aliases, sorted.
#[derive(Clone, PartialEq, Message)]
pub struct AliasSetRecord {
    #[prost(string, repeated, tag = "1")]
    pub names: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ChangeRecord {
    #[prost(uint64, tag = "1")]
    pub revision: u64,
    #[prost(string, tag = "2")]
    pub kind: String,
    #[prost(message, optional, tag = "3")]
    pub alias: Option<AliasRecord>,
    #[prost(string, optional, tag = "4")]
    pub previous_name: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub previous_target: Option<String>,
    #[prost(int64, tag = "6")]
    pub time: i64,
    /// The events after this one in the same change-log entry (one entry
    /// holds a transaction's events, consecutive revisions; its key is the
    /// last one's revision). Empty in entries of one event, and in entries
    /// written before entries held several.
    #[prost(message, repeated, tag = "7")]
    pub more: Vec<ChangeRecord>,
}

impl ChangeRecord {
    /// One change-log entry holding `events` (consecutive revisions, at
    /// least one).
    pub fn entry(mut events: Vec<ChangeRecord>) -> ChangeRecord {
        let mut first = events.remove(0);
        first.more = events;
        first
    }

    /// The events of an entry, in revision order.
    pub fn events(mut self) -> Vec<ChangeRecord> {
        let more = std::mem::take(&mut self.more);
        std::iter::once(self).chain(more).collect()
    }
}

#[derive(Clone, PartialEq, Message)]
pub struct AuditRecord {
    #[prost(uint64, tag = "1")]
    pub sequence: u64,
    #[prost(int64, tag = "2")]
    pub time: i64,
    #[prost(string, tag = "3")]
    pub principal: String,
    #[prost(string, tag = "4")]
    pub account: String,
    #[prost(string, tag = "5")]
    pub action: String,
    #[prost(string, repeated, tag = "6")]
    pub resources: Vec<String>,
    #[prost(string, tag = "7")]
    pub request_id: String,
    #[prost(string, tag = "8")]
    pub x_request_id: String,
    #[prost(string, tag = "9")]
    pub outcome: String,
    #[prost(string, tag = "10")]
    pub message: String,
    /// The records after this one in the same audit-log entry (a batch of
    /// crypto calls' records: consecutive sequences, the entry's key is the
    /// last one's). Empty in entries of one record, and in entries written
    /// before entries held several.
    #[prost(message, repeated, tag = "11")]
    pub more: Vec<AuditRecord>,
    /// Where the call came from (empty in records written before origins
    /// were recorded).
    #[prost(string, tag = "12")]
    pub door: String,
    #[prost(string, tag = "13")]
    pub source_address: String,
    #[prost(string, tag = "14")]
    pub user_agent: String,
}

impl AuditRecord {
    /// The records of an entry, in sequence order.
    pub fn records(mut self) -> Vec<AuditRecord> {
        let more = std::mem::take(&mut self.more);
        std::iter::once(self).chain(more).collect()
    }

    /// The time of the entry's newest record.
    pub fn newest_time(&self) -> i64 {
        self.more.last().map_or(self.time, |last| last.time)
    }
}

impl From<&crate::domain::audit::AuditEntry> for AuditRecord {
    fn from(e: &crate::domain::audit::AuditEntry) -> Self {
        AuditRecord {
            sequence: e.sequence,
            time: e.time,
            principal: e.principal.clone(),
            account: e.account.clone(),
            action: e.action.clone(),
            resources: e.resources.clone(),
            request_id: e.request_id.clone(),
            x_request_id: e.x_request_id.clone(),
            outcome: e.outcome.clone(),
            message: e.message.clone(),
            more: Vec::new(),
            door: e.origin.door.to_owned(),
            source_address: e.origin.source_address.clone(),
            user_agent: e.origin.user_agent.clone(),
        }
    }
}

impl From<AuditRecord> for crate::domain::audit::AuditEntry {
    fn from(r: AuditRecord) -> Self {
        crate::domain::audit::AuditEntry {
            sequence: r.sequence,
            time: r.time,
            principal: r.principal,
            account: r.account,
            action: r.action,
            resources: r.resources,
            request_id: r.request_id,
            x_request_id: r.x_request_id,
            outcome: r.outcome,
            message: r.message,
            origin: crate::domain::audit::Origin {
                door: crate::domain::audit::Origin::door_named(&r.door),
                source_address: r.source_address,
                user_agent: r.user_agent,
            },
        }
    }
}

/// What a request_id remembers: which request it carried, and the response.
#[derive(Clone, PartialEq, Message)]
pub struct RequestRecord {
    #[prost(bytes = "vec", tag = "1")]
    pub fingerprint: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub response: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub created_at: i64,
}

pub fn encode<M: Message>(message: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + message.encoded_len());
    out.push(FORMAT_V1);
    // Encoding into a Vec only fails for lack of capacity, and a Vec grows.
    message.encode(&mut out).expect("a Vec grows as needed");
    out
}

pub fn decode<M: Message + Default>(what: &str, bytes: &[u8]) -> Result<M, Error> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => {
            M::decode(body).map_err(|e| Error::internal(format!("corrupt {what} record: {e}")))
        }
        Some((format, _)) => Err(Error::internal(format!(
            "{what} record has format {format}, which this version cannot read"
        ))),
        None => Err(Error::internal(format!("empty {what} record"))),
    }
}

fn enum_field<T>(what: &str, name: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T, Error> {
    parse(name)
        .ok_or_else(|| Error::internal(format!("corrupt key record: unknown {what} {name:?}")))
}

impl From<&Key> for KeyRecord {
    fn from(key: &Key) -> Self {
        KeyRecord {
            key_id: key.key_id.to_string(),
            description: key.description.clone(),
            key_spec: key.key_spec.as_str().into(),
            key_usage: key.key_usage.as_str().into(),
            key_state: key.key_state.as_str().into(),
            key_manager: key.key_manager.as_str().into(),
            creation_time: key.creation_time,
            deletion_time: key.deletion_time,
            pending_window_in_days: key.pending_window_in_days,
            materials: key
                .materials
                .iter()
                .map(|m| MaterialRecord {
                    version: m.version,
                    id: m.id.clone(),
                    created: m.created,
                    rotation: m.rotation.map(RotationType::as_str).unwrap_or("").into(),
                    wrapped: m.wrapped.clone(),
                })
                .collect(),
            rotation_period_days: key.rotation.map(|r| r.period_days),
            next_rotation: key.rotation.map(|r| r.next),
            tags: key
                .tags
                .iter()
                .map(|(key, value)| TagRecord {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
            policy: key.policy.clone(),
        }
    }
}

impl TryFrom<KeyRecord> for Key {
    type Error = Error;

    fn try_from(record: KeyRecord) -> Result<Key, Error> {
        Ok(Key {
            key_id: KeyId::from_trusted(record.key_id),
            description: record.description,
            key_spec: enum_field("key_spec", &record.key_spec, KeySpec::from_name)?,
            key_usage: enum_field("key_usage", &record.key_usage, KeyUsage::from_name)?,
            key_state: enum_field("key_state", &record.key_state, KeyState::from_name)?,
            key_manager: enum_field("key_manager", &record.key_manager, KeyManager::from_name)?,
            creation_time: record.creation_time,
            deletion_time: record.deletion_time,
            pending_window_in_days: record.pending_window_in_days,
            materials: record
                .materials
                .into_iter()
                .map(|m| {
                    let rotation = match m.rotation.as_str() {
                        "" => None,
                        name => Some(enum_field("rotation", name, RotationType::from_name)?),
                    };
                    Ok(KeyMaterial {
                        version: m.version,
                        id: m.id,
                        created: m.created,
                        rotation,
                        wrapped: m.wrapped,
                    })
                })
                .collect::<Result<_, Error>>()?,
            rotation: match (record.rotation_period_days, record.next_rotation) {
                (Some(period_days), Some(next)) => Some(AutoRotation { period_days, next }),
                _ => None,
            },
            tags: record.tags.into_iter().map(|t| (t.key, t.value)).collect(),
            policy: record.policy,
        })
    }
}

impl From<&Alias> for AliasRecord {
    fn from(alias: &Alias) -> Self {
        AliasRecord {
            name: alias.name.to_string(),
            target: alias.target.to_string(),
            creation_time: alias.creation_time,
            last_updated_time: alias.last_updated_time,
            etag: alias.etag.clone(),
        }
    }
}

impl From<AliasRecord> for Alias {
    fn from(record: AliasRecord) -> Self {
        Alias {
            name: AliasName::from_trusted(record.name),
            target: KeyId::from_trusted(record.target),
            creation_time: record.creation_time,
            last_updated_time: record.last_updated_time,
            etag: record.etag,
        }
    }
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Created => "CREATED",
        ChangeKind::Updated => "UPDATED",
        ChangeKind::Deleted => "DELETED",
        ChangeKind::Renamed => "RENAMED",
    }
}

impl From<&AliasEvent> for ChangeRecord {
    fn from(event: &AliasEvent) -> Self {
        ChangeRecord {
            revision: event.revision,
            kind: kind_name(event.kind).into(),
            alias: Some(AliasRecord::from(&event.alias)),
            previous_name: event.previous_name.as_ref().map(|n| n.to_string()),
            previous_target: event.previous_target.as_ref().map(|k| k.to_string()),
            time: event.time,
            more: Vec::new(),
        }
    }
}

impl TryFrom<ChangeRecord> for AliasEvent {
    type Error = Error;

    fn try_from(record: ChangeRecord) -> Result<AliasEvent, Error> {
        let kind = [
            ChangeKind::Created,
            ChangeKind::Updated,
            ChangeKind::Deleted,
            ChangeKind::Renamed,
        ]
        .into_iter()
        .find(|k| kind_name(*k) == record.kind)
        .ok_or_else(|| Error::internal(format!("corrupt change record: kind {:?}", record.kind)))?;
        let alias = record
            .alias
            .ok_or_else(|| Error::internal("corrupt change record: no alias"))?;
        Ok(AliasEvent {
            revision: record.revision,
            kind,
            alias: alias.into(),
            previous_name: record.previous_name.map(AliasName::from_trusted),
            previous_target: record.previous_target.map(KeyId::from_trusted),
            time: record.time,
        })
    }
}

/// A response that a request_id record can store and replay.
pub trait Replayable: Sized {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error>;
}

impl Replayable for Key {
    fn to_bytes(&self) -> Vec<u8> {
        encode(&KeyRecord::from(self))
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        decode::<KeyRecord>("key", bytes)?.try_into()
    }
}

impl Replayable for Alias {
    fn to_bytes(&self) -> Vec<u8> {
        encode(&AliasRecord::from(self))
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Ok(decode::<AliasRecord>("alias", bytes)?.into())
    }
}

/// Alias names (a read's answer; names hold no newline).
impl Replayable for Vec<crate::domain::AliasName> {
    fn to_bytes(&self) -> Vec<u8> {
        self.iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let text =
            std::str::from_utf8(bytes).map_err(|e| Error::internal(format!("alias names: {e}")))?;
        text.split('\n')
            .filter(|n| !n.is_empty())
            .map(|n| crate::domain::AliasName::parse("alias_name", n))
            .collect()
    }
}

/// Several keys' alias names (a read's answer): each list as above,
/// separated by NUL (no name holds one).
impl Replayable for Vec<Vec<crate::domain::AliasName>> {
    fn to_bytes(&self) -> Vec<u8> {
        let lists: Vec<Vec<u8>> = self.iter().map(Replayable::to_bytes).collect();
        lists.join(&0u8)
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Ok(Vec::new());
        }
        bytes.split(|b| *b == 0).map(Vec::from_bytes).collect()
    }
}

/// A key and its alias names (a read's answer).
impl Replayable for (Key, Vec<crate::domain::AliasName>) {
    fn to_bytes(&self) -> Vec<u8> {
        let key = self.0.to_bytes();
        let mut bytes = (key.len() as u32).to_be_bytes().to_vec();
        bytes.extend(key);
        bytes.extend(self.1.to_bytes());
        bytes
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = || Error::internal("a key with aliases: truncated record");
        let len = u32::from_be_bytes(
            bytes
                .get(..4)
                .ok_or_else(corrupt)?
                .try_into()
                .map_err(|_| corrupt())?,
        ) as usize;
        let key = bytes.get(4..4 + len).ok_or_else(corrupt)?;
        Ok((Key::from_bytes(key)?, Vec::from_bytes(&bytes[4 + len..])?))
    }
}

impl Replayable for () {
    fn to_bytes(&self) -> Vec<u8> {
        Vec::new()
    }
    fn from_bytes(_: &[u8]) -> Result<Self, Error> {
        Ok(())
    }
}

impl Replayable for bool {
    fn to_bytes(&self) -> Vec<u8> {
        vec![u8::from(*self)]
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Ok(bytes.first() == Some(&1))
    }
}

impl Replayable for usize {
    fn to_bytes(&self) -> Vec<u8> {
        (*self as u64).to_be_bytes().to_vec()
    }
    fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        <[u8; 8]>::try_from(bytes)
            .map(|b| u64::from_be_bytes(b) as usize)
            .map_err(|_| Error::internal("corrupt count record"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_round_trip() {
        let key = Key {
            key_id: KeyId::generate(),
            description: "d".into(),
            key_spec: KeySpec::RSA_2048,
            key_usage: KeyUsage::SIGN_VERIFY,
            key_state: KeyState::PENDING_DELETION,
            key_manager: KeyManager::CUSTOMER,
            creation_time: 1,
            deletion_time: Some(2),
            pending_window_in_days: 7,
            materials: vec![KeyMaterial {
                version: 0,
                id: "ab".repeat(32),
                created: 1,
                rotation: Some(RotationType::ON_DEMAND),
                wrapped: vec![1, 2, 3],
            }],
            rotation: Some(AutoRotation {
                period_days: 90,
                next: 5,
            }),
            tags: [("team", "a"), ("cost", "")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            policy: Some("{\"Version\": \"2012-10-17\"}".into()),
        };
        assert_eq!(Key::from_bytes(&key.to_bytes()).unwrap(), key);
        let names = vec![
            crate::domain::AliasName::parse("alias_name", "alias/a").unwrap(),
            crate::domain::AliasName::parse("alias_name", "alias/b/c").unwrap(),
        ];
        let both = (key.clone(), names.clone());
        assert_eq!(
            <(Key, Vec<crate::domain::AliasName>)>::from_bytes(&both.to_bytes()).unwrap(),
            both
        );
        let none = (key, Vec::new());
        assert_eq!(
            <(Key, Vec<crate::domain::AliasName>)>::from_bytes(&none.to_bytes()).unwrap(),
            none
        );
        assert!(<(Key, Vec<crate::domain::AliasName>)>::from_bytes(&[0, 0]).is_err());
    }

    #[test]
    fn unknown_formats_are_refused() {
        assert!(decode::<KeyRecord>("key", &[9, 1, 2]).is_err());
        assert!(decode::<KeyRecord>("key", &[]).is_err());
    }
}
