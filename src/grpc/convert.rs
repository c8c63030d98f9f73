//! Domain values to proto messages and back.

use prost_types::Timestamp;

use crate::domain::algorithms::{
    self, DataKeySpec, EncryptionAlgorithm, KeyPairSpec, MacAlgorithm, MessageType,
    SigningAlgorithm,
};
use crate::domain::alias::ChangeKind;
use crate::domain::key::{KeyMaterial, RotationType};
use crate::domain::{Alias, AliasEvent, Error, Key, KeySpec, KeyUsage, Millis, Reason, Scope};
use crate::pb;

pub fn timestamp(millis: Millis) -> Timestamp {
    Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A proto enum value -> domain enum, through their shared names
/// (`KEY_SPEC_RSA_2048` <-> `RSA_2048`). Unset is None; unknown is an error.
fn from_wire<P, D>(
    value: i32,
    prefix: &str,
    proto: impl Fn(i32) -> Option<P>,
    name: impl Fn(&P) -> &'static str,
    domain: impl Fn(&str) -> Option<D>,
) -> Option<Option<D>> {
    if value == 0 {
        return Some(None);
    }
    let proto = proto(value)?;
    domain(name(&proto).strip_prefix(prefix)?).map(Some)
}

pub fn key_spec(value: i32) -> Result<Option<KeySpec>, Error> {
    from_wire(
        value,
        "KEY_SPEC_",
        |v| pb::KeySpec::try_from(v).ok(),
        |p| p.as_str_name(),
        KeySpec::from_name,
    )
    .ok_or_else(|| {
        Error::invalid(
            Reason::INVALID_KEY_SPEC,
            "key_spec",
            format!("Unknown key_spec value {value}."),
        )
    })
}

pub fn key_usage(value: i32) -> Result<Option<KeyUsage>, Error> {
    from_wire(
        value,
        "KEY_USAGE_",
        |v| pb::KeyUsage::try_from(v).ok(),
        |p| p.as_str_name(),
        KeyUsage::from_name,
    )
    .ok_or_else(|| {
        Error::invalid(
            Reason::INVALID_KEY_USAGE,
            "key_usage",
            format!("Unknown key_usage value {value}."),
        )
    })
}

/// Domain enum -> proto enum number, through the shared name.
fn to_wire(prefix: &str, name: &str, proto: impl Fn(&str) -> Option<i32>) -> i32 {
    proto(&format!("{prefix}{name}")).unwrap_or(0)
}

/// The two ways of an enum shared by the domain and the proto: `$from`
/// (proto number -> domain value; unset is None, unknown INVALID_PARAMETER)
/// and `$to` (domain value -> proto number).
macro_rules! wire_enum {
    ($from:ident, $to:ident, $domain:ty, $pb:ty, $prefix:literal, $field:literal) => {
        #[cfg_attr(not(test), allow(dead_code))]
        pub fn $from(value: i32) -> Result<Option<$domain>, Error> {
            from_wire(
                value,
                $prefix,
                |v| <$pb>::try_from(v).ok(),
                |p| p.as_str_name(),
                <$domain>::from_name,
            )
            .ok_or_else(|| {
                Error::invalid(
                    Reason::INVALID_PARAMETER,
                    $field,
                    format!("Unknown {} value {value}.", $field),
                )
            })
        }

        #[cfg_attr(not(test), allow(dead_code))]
        pub fn $to(value: $domain) -> i32 {
            to_wire($prefix, value.as_str(), |n| {
                <$pb>::from_str_name(n).map(|v| v as i32)
            })
        }
    };
}

wire_enum!(
    encryption_algorithm,
    encryption_algorithm_wire,
    EncryptionAlgorithm,
    pb::EncryptionAlgorithm,
    "ENCRYPTION_ALGORITHM_",
    "encryption_algorithm"
);
wire_enum!(
    signing_algorithm,
    signing_algorithm_wire,
    SigningAlgorithm,
    pb::SigningAlgorithm,
    "SIGNING_ALGORITHM_",
    "signing_algorithm"
);
wire_enum!(
    mac_algorithm,
    mac_algorithm_wire,
    MacAlgorithm,
    pb::MacAlgorithm,
    "MAC_ALGORITHM_",
    "mac_algorithm"
);
wire_enum!(
    message_type,
    message_type_wire,
    MessageType,
    pb::MessageType,
    "MESSAGE_TYPE_",
    "message_type"
);
wire_enum!(
    data_key_spec,
    data_key_spec_wire,
    DataKeySpec,
    pb::DataKeySpec,
    "DATA_KEY_SPEC_",
    "key_spec"
);
wire_enum!(
    key_pair_spec,
    key_pair_spec_wire,
    KeyPairSpec,
    pb::KeyPairSpec,
    "KEY_PAIR_SPEC_",
    "key_pair_spec"
);
wire_enum!(
    rotation_type,
    rotation_type_wire,
    RotationType,
    pb::RotationType,
    "ROTATION_TYPE_",
    "rotation_type"
);

/// A required field's value: unset is INVALID_PARAMETER.
pub fn required<T>(field: &'static str, value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| {
        Error::invalid(
            Reason::INVALID_PARAMETER,
            field,
            format!("{field} is required."),
        )
    })
}

pub fn key_spec_wire(spec: KeySpec) -> i32 {
    to_wire("KEY_SPEC_", spec.as_str(), |n| {
        pb::KeySpec::from_str_name(n).map(|v| v as i32)
    })
}

pub fn key_usage_wire(usage: KeyUsage) -> i32 {
    to_wire("KEY_USAGE_", usage.as_str(), |n| {
        pb::KeyUsage::from_str_name(n).map(|v| v as i32)
    })
}

/// A key's automatic rotation as the API returns it.
pub fn rotation_status(scope: &Scope, key: &Key) -> pb::KeyRotationStatus {
    let rotation = key.rotation.filter(|_| !key.is_pending_deletion());
    pb::KeyRotationStatus {
        key_id: scope.key_arn(&key.key_id),
        key_rotation_enabled: rotation.is_some(),
        rotation_period_in_days: rotation.map(|r| r.period_days).unwrap_or(0),
        next_rotation_time: rotation.map(|r| timestamp(r.next)),
    }
}

/// One rotation as ListKeyRotations returns it.
pub fn rotation(key: &Key, material: &KeyMaterial) -> pb::KeyRotation {
    pb::KeyRotation {
        key_id: key.key_id.to_string(),
        key_material_id: material.id.clone(),
        rotation_time: Some(timestamp(material.created)),
        rotation_type: material.rotation.map(rotation_type_wire).unwrap_or(0),
        current: key.current_material().map(|m| &m.id) == Some(&material.id),
    }
}

pub fn key(scope: &Scope, key: &Key) -> pb::Key {
    pb::Key {
        key_id: key.key_id.to_string(),
        arn: scope.key_arn(&key.key_id),
        description: key.description.clone(),
        key_spec: key_spec_wire(key.key_spec),
        key_usage: key_usage_wire(key.key_usage),
        key_state: to_wire("KEY_STATE_", key.key_state.as_str(), |n| {
            pb::KeyState::from_str_name(n).map(|v| v as i32)
        }),
        key_manager: to_wire("KEY_MANAGER_", key.key_manager.as_str(), |n| {
            pb::KeyManager::from_str_name(n).map(|v| v as i32)
        }),
        creation_time: Some(timestamp(key.creation_time)),
        deletion_time: key.deletion_time.map(timestamp),
        pending_window_in_days: key.pending_window_in_days,
        account: scope.account.clone(),
        current_key_material_id: match key.can_rotate() {
            true => key
                .current_material()
                .map(|m| m.id.clone())
                .unwrap_or_default(),
            false => String::new(),
        },
        encryption_algorithms: algorithms::encryption_algorithms(key.key_spec, key.key_usage)
            .iter()
            .map(|a| encryption_algorithm_wire(*a))
            .collect(),
        signing_algorithms: algorithms::signing_algorithms(key.key_spec, key.key_usage)
            .iter()
            .map(|a| signing_algorithm_wire(*a))
            .collect(),
        mac_algorithms: algorithms::mac_algorithm(key.key_spec)
            .into_iter()
            .map(mac_algorithm_wire)
            .collect(),
    }
}

/// The alias's strings move into the message (a listing converts 50).
pub fn alias(scope: &Scope, alias: Alias) -> pb::Alias {
    pb::Alias {
        alias_arn: scope.alias_arn(&alias.name),
        alias_name: alias.name.into_string(),
        target_key_id: alias.target.into_string(),
        creation_time: Some(timestamp(alias.creation_time)),
        last_updated_time: Some(timestamp(alias.last_updated_time)),
        etag: alias.etag,
    }
}

pub fn event(scope: &Scope, event: &AliasEvent) -> pb::AliasEvent {
    let kind = match event.kind {
        ChangeKind::Created => pb::AliasEventType::Created,
        ChangeKind::Updated => pb::AliasEventType::Updated,
        ChangeKind::Deleted => pb::AliasEventType::Deleted,
        ChangeKind::Renamed => pb::AliasEventType::Renamed,
    };
    pb::AliasEvent {
        revision: event.revision,
        r#type: kind as i32,
        alias: Some(alias(scope, event.alias.clone())),
        previous_alias_name: event
            .previous_name
            .as_ref()
            .map(|n| n.to_string())
            .unwrap_or_default(),
        previous_target_key_id: event
            .previous_target
            .as_ref()
            .map(|k| k.to_string())
            .unwrap_or_default(),
        event_time: Some(timestamp(event.time)),
    }
}

pub fn audit_event(entry: &crate::domain::audit::AuditEntry) -> pb::AuditEvent {
    pb::AuditEvent {
        sequence: entry.sequence,
        time: Some(timestamp(entry.time)),
        principal: entry.principal.clone(),
        account: entry.account.clone(),
        action: entry.action.clone(),
        resources: entry.resources.clone(),
        request_id: entry.request_id.clone(),
        x_request_id: entry.x_request_id.clone(),
        outcome: entry.outcome.clone(),
        message: entry.message.clone(),
        door: entry.origin.door.to_owned(),
        source_address: entry.origin.source_address.clone(),
        user_agent: entry.origin.user_agent.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_domain_enum_has_a_proto_twin() {
        for spec in KeySpec::ALL {
            let wire = to_wire("KEY_SPEC_", spec.as_str(), |n| {
                pb::KeySpec::from_str_name(n).map(|v| v as i32)
            });
            assert_eq!(key_spec(wire).unwrap(), Some(*spec));
        }
        for usage in KeyUsage::ALL {
            let wire = to_wire("KEY_USAGE_", usage.as_str(), |n| {
                pb::KeyUsage::from_str_name(n).map(|v| v as i32)
            });
            assert_eq!(key_usage(wire).unwrap(), Some(*usage));
        }
        assert!(key_spec(999).is_err());
        assert_eq!(key_spec(0).unwrap(), None);
    }

    #[test]
    fn every_algorithm_has_a_proto_twin() {
        for a in EncryptionAlgorithm::ALL {
            let wire = encryption_algorithm_wire(*a);
            assert_eq!(encryption_algorithm(wire).unwrap(), Some(*a));
        }
        for a in SigningAlgorithm::ALL {
            let wire = signing_algorithm_wire(*a);
            assert_eq!(signing_algorithm(wire).unwrap(), Some(*a));
        }
        for a in MacAlgorithm::ALL {
            assert_eq!(mac_algorithm(mac_algorithm_wire(*a)).unwrap(), Some(*a));
        }
        for a in MessageType::ALL {
            assert_eq!(message_type(message_type_wire(*a)).unwrap(), Some(*a));
        }
        for a in DataKeySpec::ALL {
            assert_eq!(data_key_spec(data_key_spec_wire(*a)).unwrap(), Some(*a));
        }
        for a in RotationType::ALL {
            assert_eq!(rotation_type(rotation_type_wire(*a)).unwrap(), Some(*a));
        }
        for a in KeyPairSpec::ALL {
            assert_eq!(key_pair_spec(key_pair_spec_wire(*a)).unwrap(), Some(*a));
        }
        assert_eq!(
            signing_algorithm(999).unwrap_err().reason,
            Reason::INVALID_PARAMETER
        );
    }

    #[test]
    fn timestamps_split_millis() {
        let t = timestamp(1_500);
        assert_eq!((t.seconds, t.nanos), (1, 500_000_000));
    }
}
