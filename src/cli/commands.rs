//! One function per client command: build the request, make the call, print
//! the answer.

use std::time::Duration;

use super::failure::Failure;
use super::render::{self, json, print_fields, print_json, print_json_line, Table};
use super::{AliasCommand, AuditCommand, Client, KeyCommand, Output, RequestId};
use crate::pb;
use crate::pb::alias_service_client::AliasServiceClient;
use crate::pb::audit_service_client::AuditServiceClient;
use crate::pb::key_service_client::KeyServiceClient;

/// The most a page may hold (the server's cap).
const PAGE: u64 = 100;

impl Client {
    fn keys(&self) -> KeyServiceClient<tonic::transport::Channel> {
        KeyServiceClient::new(self.channel.clone())
    }

    fn aliases(&self) -> AliasServiceClient<tonic::transport::Channel> {
        AliasServiceClient::new(self.channel.clone())
    }

    fn audit(&self) -> AuditServiceClient<tonic::transport::Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    fn output(&self) -> Output {
        self.args.output
    }

    fn quiet(&self) -> bool {
        self.args.quiet
    }
}

/// The call's idempotency key: the flag's, or a new one.
fn request_id(retry: RequestId) -> String {
    retry
        .request_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// A failed write: its request_id goes into the hint when the outcome is
/// unknown.
fn write_failed(id: &str) -> impl Fn(tonic::Status) -> Failure + '_ {
    move |status| Failure::from_status(&status, Some(id))
}

fn read_failed(status: tonic::Status) -> Failure {
    Failure::from_status(&status, None)
}

fn print_key(client: &Client, key: Option<pb::Key>) {
    let Some(key) = key else { return };
    match (client.quiet(), client.output()) {
        (true, _) => crate::outln!("{}", key.key_id),
        (false, Output::Json) => print_json(&json(&key)),
        (false, Output::Table) => print_fields(&render::key_fields(&key)),
    }
}

fn print_alias(client: &Client, alias: Option<pb::Alias>) {
    let Some(alias) = alias else { return };
    match (client.quiet(), client.output()) {
        (true, _) => crate::outln!("{}", alias.alias_name),
        (false, Output::Json) => print_json(&json(&alias)),
        (false, Output::Table) => print_fields(&render::alias_fields(&alias)),
    }
}

pub async fn key(client: &Client, command: KeyCommand) -> Result<(), Failure> {
    let mut keys = client.keys();
    let answer = match command {
        KeyCommand::Create {
            description,
            key_spec,
            key_usage,
            retry,
        } => {
            let key_spec = key_spec.map_or(0, |spec| spec as i32);
            let key_usage = key_usage.map_or(0, |usage| usage as i32);
            let id = request_id(retry);
            let request = pb::CreateKeyRequest {
                description,
                key_spec,
                key_usage,
                request_id: id.clone(),
                ..Default::default()
            };
            keys.create_key(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .key
        }
        KeyCommand::Describe { key } => {
            keys.describe_key(client.request(pb::DescribeKeyRequest { key_id: key }))
                .await
                .map_err(read_failed)?
                .into_inner()
                .key
        }
        KeyCommand::List { limit } => return list_keys(client, limit.limit).await,
        KeyCommand::Enable { key, retry } => {
            let id = request_id(retry);
            let request = pb::EnableKeyRequest {
                key_id: key,
                request_id: id.clone(),
            };
            keys.enable_key(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .key
        }
        KeyCommand::Disable { key, retry } => {
            let id = request_id(retry);
            let request = pb::DisableKeyRequest {
                key_id: key,
                request_id: id.clone(),
            };
            keys.disable_key(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .key
        }
        KeyCommand::ScheduleDeletion {
            key,
            pending_window_days,
            retry,
        } => {
            let id = request_id(retry);
            let request = pb::ScheduleKeyDeletionRequest {
                key_id: key,
                pending_window_in_days: pending_window_days.unwrap_or(0),
                request_id: id.clone(),
            };
            keys.schedule_key_deletion(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .key
        }
        KeyCommand::CancelDeletion { key, retry } => {
            let id = request_id(retry);
            let request = pb::CancelKeyDeletionRequest {
                key_id: key,
                request_id: id.clone(),
            };
            keys.cancel_key_deletion(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .key
        }
        KeyCommand::Rotate { key } => {
            keys.rotate_key_on_demand(client.request(pb::RotateKeyOnDemandRequest { key_id: key }))
                .await
                .map_err(read_failed)?
                .into_inner()
                .key
        }
        KeyCommand::EnableRotation { key, period_days } => {
            let request = pb::EnableKeyRotationRequest {
                key_id: key,
                rotation_period_in_days: period_days.unwrap_or(0),
            };
            let status = keys
                .enable_key_rotation(client.request(request))
                .await
                .map_err(read_failed)?
                .into_inner()
                .status;
            return print_rotation_status(client, status);
        }
        KeyCommand::DisableRotation { key } => {
            let request = pb::DisableKeyRotationRequest { key_id: key };
            let status = keys
                .disable_key_rotation(client.request(request))
                .await
                .map_err(read_failed)?
                .into_inner()
                .status;
            return print_rotation_status(client, status);
        }
        KeyCommand::RotationStatus { key } => {
            let request = pb::GetKeyRotationStatusRequest { key_id: key };
            let status = keys
                .get_key_rotation_status(client.request(request))
                .await
                .map_err(read_failed)?
                .into_inner()
                .status;
            return print_rotation_status(client, status);
        }
        KeyCommand::Rotations { key } => return list_rotations(client, key).await,
        KeyCommand::Tag { key, tags } => {
            let tags = tags
                .iter()
                .map(|pair| match pair.split_once('=') {
                    Some((key, value)) => Ok(pb::Tag {
                        key: key.into(),
                        value: value.into(),
                    }),
                    None => Err(Failure::usage(format!(
                        "a tag is KEY=VALUE (VALUE may be empty); got {pair:?}"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let request = pb::TagResourceRequest { key_id: key, tags };
            keys.tag_resource(client.request(request))
                .await
                .map_err(read_failed)?;
            return Ok(());
        }
        KeyCommand::Untag { key, tag_keys } => {
            let request = pb::UntagResourceRequest {
                key_id: key,
                tag_keys,
            };
            keys.untag_resource(client.request(request))
                .await
                .map_err(read_failed)?;
            return Ok(());
        }
        KeyCommand::Tags { key } => return list_tags(client, key).await,
        KeyCommand::Policy { key } => {
            let request = pb::GetKeyPolicyRequest {
                key_id: key,
                policy_name: String::new(),
            };
            let policy = keys
                .get_key_policy(client.request(request))
                .await
                .map_err(read_failed)?
                .into_inner();
            match client.output() {
                Output::Json if !client.quiet() => print_json(&json(&policy)),
                _ => crate::outln!("{}", policy.policy),
            }
            return Ok(());
        }
        KeyCommand::PutPolicy { key, file } => {
            let policy = match file.as_os_str() == "-" {
                true => std::io::read_to_string(std::io::stdin()),
                false => std::fs::read_to_string(&file),
            }
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", file.display())))?;
            let request = pb::PutKeyPolicyRequest {
                key_id: key,
                policy_name: String::new(),
                policy,
            };
            keys.put_key_policy(client.request(request))
                .await
                .map_err(read_failed)?;
            return Ok(());
        }
        KeyCommand::SetDescription { key, description } => {
            let request = pb::UpdateKeyDescriptionRequest {
                key_id: key.clone(),
                description,
            };
            keys.update_key_description(client.request(request))
                .await
                .map_err(read_failed)?;
            let request = pb::DescribeKeyRequest { key_id: key };
            keys.describe_key(client.request(request))
                .await
                .map_err(read_failed)?
                .into_inner()
                .key
        }
    };
    print_key(client, answer);
    Ok(())
}

fn print_rotation_status(
    client: &Client,
    status: Option<pb::KeyRotationStatus>,
) -> Result<(), Failure> {
    let Some(status) = status else { return Ok(()) };
    match (client.quiet(), client.output()) {
        (true, _) => crate::outln!("{}", status.key_rotation_enabled),
        (false, Output::Json) => print_json(&json(&status)),
        (false, Output::Table) => print_fields(&[
            ("key", status.key_id.clone()),
            ("rotation enabled", status.key_rotation_enabled.to_string()),
            (
                "period (days)",
                match status.rotation_period_in_days {
                    0 => "-".to_owned(),
                    days => days.to_string(),
                },
            ),
            ("next rotation", render::time(&status.next_rotation_time)),
        ]),
    }
    Ok(())
}

async fn list_tags(client: &Client, key: String) -> Result<(), Failure> {
    let mut tags = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListResourceTagsRequest {
            key_id: key.clone(),
            page_size: 50,
            page_token,
        };
        let page = client
            .keys()
            .list_resource_tags(client.request(request))
            .await
            .map_err(read_failed)?
            .into_inner();
        tags.extend(page.tags);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    match (client.quiet(), client.output()) {
        (true, _) => tags
            .iter()
            .for_each(|t| crate::outln!("{}={}", t.key, t.value)),
        (false, Output::Json) => print_json(&serde_json::json!({
            "tags": tags.iter().map(json).collect::<Vec<_>>(),
        })),
        (false, Output::Table) => {
            let mut table = Table::new(vec!["KEY", "VALUE"]);
            for t in &tags {
                table.push(vec![t.key.clone(), t.value.clone()]);
            }
            table.print();
        }
    }
    Ok(())
}

async fn list_rotations(client: &Client, key: String) -> Result<(), Failure> {
    let mut rotations = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListKeyRotationsRequest {
            key_id: key.clone(),
            page_size: 1000,
            page_token,
        };
        let page = client
            .keys()
            .list_key_rotations(client.request(request))
            .await
            .map_err(read_failed)?
            .into_inner();
        rotations.extend(page.rotations);
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    match (client.quiet(), client.output()) {
        (true, _) => rotations
            .iter()
            .for_each(|r| crate::outln!("{}", r.key_material_id)),
        (false, Output::Json) => print_json(&serde_json::json!({
            "rotations": rotations.iter().map(json).collect::<Vec<_>>(),
        })),
        (false, Output::Table) => {
            let mut table = Table::new(vec!["KEY MATERIAL ID", "TYPE", "ROTATED", "CURRENT"]);
            for r in &rotations {
                table.push(vec![
                    r.key_material_id.clone(),
                    render::enum_name(r.rotation_type().as_str_name(), "ROTATION_TYPE_"),
                    render::time(&r.rotation_time),
                    if r.current { "yes".into() } else { "".into() },
                ]);
            }
            table.print();
        }
    }
    Ok(())
}

/// How many to ask for next: a full page, or what is left of `--limit`.
fn next_page_size(limit: Option<u64>, so_far: usize) -> i32 {
    let left = limit.map_or(PAGE, |l| l.saturating_sub(so_far as u64));
    left.min(PAGE) as i32
}

fn limit_reached(limit: Option<u64>, so_far: usize) -> bool {
    limit.is_some_and(|l| so_far as u64 >= l)
}

async fn list_keys(client: &Client, limit: Option<u64>) -> Result<(), Failure> {
    let mut keys = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListKeysRequest {
            page_size: next_page_size(limit, keys.len()),
            page_token,
        };
        let page = client
            .keys()
            .list_keys(client.request(request))
            .await
            .map_err(read_failed)?
            .into_inner();
        keys.extend(page.keys);
        page_token = page.next_page_token;
        if page_token.is_empty() || limit_reached(limit, keys.len()) {
            break;
        }
    }
    match (client.quiet(), client.output()) {
        (true, _) => keys.iter().for_each(|k| crate::outln!("{}", k.key_id)),
        (false, Output::Json) => print_json(&serde_json::json!({
            "keys": keys.iter().map(json).collect::<Vec<_>>(),
        })),
        (false, Output::Table) => {
            let mut table = Table::new(vec![
                "KEY ID",
                "STATE",
                "SPEC",
                "USAGE",
                "CREATED",
                "DESCRIPTION",
            ]);
            for key in &keys {
                table.push(vec![
                    key.key_id.clone(),
                    render::key_state(key),
                    render::enum_name(key.key_spec().as_str_name(), "KEY_SPEC_"),
                    render::enum_name(key.key_usage().as_str_name(), "KEY_USAGE_"),
                    render::time(&key.creation_time),
                    key.description.clone(),
                ]);
            }
            table.print();
        }
    }
    Ok(())
}

pub async fn alias(client: &Client, command: AliasCommand) -> Result<(), Failure> {
    let mut aliases = client.aliases();
    let answer = match command {
        AliasCommand::Create { name, key, retry } => {
            let id = request_id(retry);
            let request = pb::CreateAliasRequest {
                alias_name: name,
                target_key_id: key,
                request_id: id.clone(),
            };
            aliases
                .create_alias(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .alias
        }
        AliasCommand::Get { name } => {
            aliases
                .get_alias(client.request(pb::GetAliasRequest { alias_name: name }))
                .await
                .map_err(read_failed)?
                .into_inner()
                .alias
        }
        AliasCommand::Update {
            name,
            key,
            etag,
            retry,
        } => {
            let id = request_id(retry);
            let request = pb::UpdateAliasRequest {
                alias_name: name,
                target_key_id: key,
                etag: etag.unwrap_or_default(),
                request_id: id.clone(),
            };
            aliases
                .update_alias(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .alias
        }
        AliasCommand::Rename {
            name,
            new_name,
            etag,
            retry,
        } => {
            let id = request_id(retry);
            let request = pb::RenameAliasRequest {
                alias_name: name,
                new_alias_name: new_name,
                etag: etag.unwrap_or_default(),
                request_id: id.clone(),
            };
            aliases
                .rename_alias(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner()
                .alias
        }
        AliasCommand::Delete { name, etag, retry } => {
            let id = request_id(retry);
            let request = pb::DeleteAliasRequest {
                alias_name: name.clone(),
                etag: etag.unwrap_or_default(),
                request_id: id.clone(),
            };
            let response = aliases
                .delete_alias(client.request(request))
                .await
                .map_err(write_failed(&id))?
                .into_inner();
            match (client.quiet(), client.output()) {
                (true, _) => crate::outln!("{name}"),
                // The response in the proto3 JSON mapping, as every command.
                (false, Output::Json) => print_json(&json(&response)),
                (false, Output::Table) => crate::outln!("deleted {name}"),
            }
            return Ok(());
        }
        AliasCommand::List { key, limit } => return list_aliases(client, key, limit.limit).await,
        AliasCommand::Watch {
            key,
            from_revision,
            count,
        } => return watch(client, key.unwrap_or_default(), from_revision, count).await,
    };
    print_alias(client, answer);
    Ok(())
}

async fn list_aliases(
    client: &Client,
    key: Option<String>,
    limit: Option<u64>,
) -> Result<(), Failure> {
    let mut aliases = Vec::new();
    let mut page_token = String::new();
    let mut revision = None;
    loop {
        let request = pb::ListAliasesRequest {
            key_id: key.clone().unwrap_or_default(),
            page_size: next_page_size(limit, aliases.len()),
            page_token,
        };
        let page = client
            .aliases()
            .list_aliases(client.request(request))
            .await
            .map_err(read_failed)?
            .into_inner();
        revision.get_or_insert(page.revision);
        aliases.extend(page.aliases);
        page_token = page.next_page_token;
        if page_token.is_empty() || limit_reached(limit, aliases.len()) {
            break;
        }
    }
    match (client.quiet(), client.output()) {
        (true, _) => aliases
            .iter()
            .for_each(|a| crate::outln!("{}", a.alias_name)),
        (false, Output::Json) => print_json(&serde_json::json!({
            "aliases": aliases.iter().map(json).collect::<Vec<_>>(),
            // As the proto3 JSON mapping writes a uint64.
            "revision": revision.unwrap_or_default().to_string(),
        })),
        (false, Output::Table) => {
            let mut table = Table::new(vec!["ALIAS", "TARGET KEY", "LAST UPDATED"]);
            for alias in &aliases {
                table.push(vec![
                    alias.alias_name.clone(),
                    alias.target_key_id.clone(),
                    render::time(&alias.last_updated_time),
                ]);
            }
            table.print();
        }
    }
    Ok(())
}

/// Whether a watch that ended with `status` should reconnect and resume:
/// the connection or the server went away, or this client fell behind.
fn resumable(status: &tonic::Status) -> bool {
    use tonic::Code;
    let reason = super::failure::reason_of(status);
    match status.code() {
        Code::Unavailable | Code::Cancelled => true,
        // A broken connection surfaces as UNKNOWN or INTERNAL without a
        // reason of ours.
        Code::Unknown | Code::Internal => reason.is_none(),
        Code::ResourceExhausted => reason.as_deref() == Some("WATCH_TOO_SLOW"),
        _ => false,
    }
}

async fn watch(
    client: &Client,
    key_id: String,
    from_revision: Option<u64>,
    count: Option<u64>,
) -> Result<(), Failure> {
    // Start from an explicit revision, so a reconnection before the first
    // change still misses nothing.
    let mut after = match from_revision {
        Some(revision) => revision,
        None => {
            let request = pb::ListAliasesRequest {
                key_id: key_id.clone(),
                page_size: 1,
                page_token: String::new(),
            };
            client
                .aliases()
                .list_aliases(client.request(request))
                .await
                .map_err(read_failed)?
                .into_inner()
                .revision
        }
    };
    // The reader of the output may go away while nothing happens.
    super::end_when_stdout_closes();
    if client.output() == Output::Table && !client.quiet() {
        crate::outln!(
            "{}",
            watch_row("REVISION", "EVENT", "ALIAS", "TARGET KEY", "(PREVIOUS)")
        );
    }
    let mut printed = 0u64;
    let mut pause = Duration::from_millis(100);
    loop {
        // Progress keeps proxies from closing a quiet watch, and moves the
        // revision to resume from.
        let request = pb::WatchAliasesRequest {
            key_id: key_id.clone(),
            start_revision: Some(after),
            progress_notify: true,
        };
        let interruption = match client
            .aliases()
            .watch_aliases(client.stream_request(request))
            .await
        {
            Err(status) if resumable(&status) => status.message().to_owned(),
            Err(status) => return Err(read_failed(status)),
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(pb::WatchAliasesResponse {
                            event: Some(event), ..
                        })) => {
                            pause = Duration::from_millis(100);
                            after = event.revision;
                            print_event(client, &event);
                            printed += 1;
                            if count.is_some_and(|c| printed >= c) {
                                return Ok(());
                            }
                        }
                        Ok(Some(pb::WatchAliasesResponse {
                            progress: Some(progress),
                            ..
                        })) => {
                            pause = Duration::from_millis(100);
                            after = after.max(progress.revision);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break "the server ended the stream".to_owned(),
                        Err(status) if resumable(&status) => break status.message().to_owned(),
                        Err(status) => return Err(read_failed(status)),
                    }
                }
            }
        };
        eprintln!("aliasd: watch interrupted ({interruption}); resuming after revision {after}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// One line of the watch table (the header too): columns of fixed widths,
/// since the rows to come are not known (an alias name longer than its
/// column pushes the rest of its line along).
fn watch_row(revision: &str, kind: &str, alias: &str, target: &str, previous: &str) -> String {
    let line = format!("{revision:<8}  {kind:<8}  {alias:<30}  {target:<36}  {previous}");
    line.trim_end().to_owned()
}

fn print_event(client: &Client, event: &pb::AliasEvent) {
    let alias = event.alias.clone().unwrap_or_default();
    match (client.quiet(), client.output()) {
        (true, _) => crate::outln!("{}", alias.alias_name),
        (false, Output::Json) => print_json_line(&json(event)),
        (false, Output::Table) => {
            let kind = render::enum_name(event.r#type().as_str_name(), "ALIAS_EVENT_TYPE_");
            let previous = match (&*event.previous_alias_name, &*event.previous_target_key_id) {
                ("", "") => String::new(),
                (name, "") => format!("(was {name})"),
                ("", key) => format!("(was on {key})"),
                (name, key) => format!("(was {name} on {key})"),
            };
            let revision = event.revision.to_string();
            let line = watch_row(
                &revision,
                &kind,
                &alias.alias_name,
                &alias.target_key_id,
                &previous,
            );
            crate::outln!("{line}");
        }
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

pub async fn audit(client: &Client, command: AuditCommand) -> Result<(), Failure> {
    let AuditCommand::List {
        principal,
        action,
        since,
        until,
        limit,
    } = command;
    let timestamp = |millis: i64| prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    };
    if let (Some(since), Some(until)) = (since, until) {
        if since >= until {
            return Err(Failure::usage("--since must be before --until".into()));
        }
    }
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListAuditEventsRequest {
            page_size: next_page_size(limit.limit, events.len()),
            page_token,
            start_time: since.map(timestamp),
            end_time: until.map(timestamp),
            principal: principal.clone().unwrap_or_default(),
            action: action.clone().unwrap_or_default(),
        };
        let page = client
            .audit()
            .list_audit_events(client.request(request))
            .await
            .map_err(read_failed)?
            .into_inner();
        events.extend(page.events);
        page_token = page.next_page_token;
        if page_token.is_empty() || limit_reached(limit.limit, events.len()) {
            break;
        }
    }
    match (client.quiet(), client.output()) {
        (true, _) => events.iter().for_each(|e| crate::outln!("{}", e.sequence)),
        (false, Output::Json) => print_json(&serde_json::json!({
            "events": events.iter().map(json).collect::<Vec<_>>(),
        })),
        (false, Output::Table) => {
            let mut table = Table::new(vec![
                "SEQ",
                "TIME",
                "PRINCIPAL",
                "SOURCE",
                "ACTION",
                "OUTCOME",
                "RESOURCES",
            ]);
            for event in &events {
                table.push(vec![
                    event.sequence.to_string(),
                    render::time(&event.time),
                    event.principal.clone(),
                    format!("{} {}", event.door, event.source_address)
                        .trim()
                        .to_owned(),
                    event.action.clone(),
                    event.outcome.clone(),
                    event.resources.join(" "),
                ]);
            }
            table.print();
        }
    }
    Ok(())
}

/// `aliasd backup --output FILE`: streams the server's snapshot into
/// `FILE.partial`, checks it whole, makes it durable, then renames it to
/// `FILE` (so `FILE` is only ever a complete, checked snapshot).
pub async fn backup(client: &Client, output: &std::path::Path) -> Result<(), Failure> {
    use std::io::Write;
    if output.exists() {
        return Err(Failure::usage(format!(
            "{} exists: choose a new file (a backup never overwrites one)",
            output.display()
        )));
    }
    let mut partial_name = output.as_os_str().to_owned();
    partial_name.push(".partial");
    let partial = std::path::PathBuf::from(partial_name);
    let local = Failure::local;
    // A backup holds every account's records: its owner's to read only.
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&partial)
            .map_err(|e| local(format!("cannot create {}: {e}", partial.display())))?
    };
    let outcome = async {
        let mut stream =
            crate::pb::admin_service_client::AdminServiceClient::new(client.channel.clone())
                .backup(client.stream_request(pb::BackupRequest {}))
                .await
                .map_err(read_failed)?
                .into_inner();
        while let Some(response) = stream.message().await.map_err(read_failed)? {
            file.write_all(&response.chunk)
                .map_err(|e| local(format!("cannot write {}: {e}", partial.display())))?;
        }
        file.sync_all()
            .map_err(|e| local(format!("cannot sync {}: {e}", partial.display())))?;
        let summary = crate::store::snapshot::read_snapshot(&partial, |_, _, _| Ok(()))
            .map_err(|e| local(format!("the backup received is not whole: {}", e.message)))?;
        std::fs::rename(&partial, output)
            .map_err(|e| local(format!("cannot rename to {}: {e}", output.display())))?;
        if let Some(parent) = output.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(dir) = std::fs::File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok::<_, Failure>(summary)
    }
    .await;
    let summary = match outcome {
        Ok(summary) => summary,
        Err(failure) => {
            let _ = std::fs::remove_file(&partial);
            return Err(failure);
        }
    };
    match (client.quiet(), client.output()) {
        (true, _) => crate::outln!("{}", output.display()),
        (false, Output::Json) => print_json(&serde_json::json!({
            "file": output.display().to_string(),
            "entries": summary.entries,
            "bytes": summary.bytes,
            "sha256": summary.sha256,
            "trees": summary
                .trees
                .iter()
                .map(|(tree, n)| (tree.clone(), serde_json::json!(n)))
                .collect::<serde_json::Map<_, _>>(),
        })),
        (false, Output::Table) => {
            crate::outln!(
                "backup {}: {} records, {} bytes, sha256 {}",
                output.display(),
                summary.entries,
                summary.bytes,
                summary.sha256
            );
            let counts: Vec<String> = summary
                .trees
                .iter()
                .map(|(tree, n)| format!("{tree} {n}"))
                .collect();
            crate::outln!("  {}", counts.join(", "));
        }
    }
    Ok(())
}

/// `aliasd ping`: one Ping (a call that does nothing on the server) and its
/// round trip.
/// `aliasd version`: the client's version, then the server's; the
/// client's is printed even when the server cannot be reached.
pub async fn version(args: &super::ClientArgs) -> Result<(), Failure> {
    let client_version = serde_json::json!({
        "version": crate::VERSION,
        "commit": crate::COMMIT,
    });
    let server = async {
        let client = Client::connect(args).await?;
        let info = crate::pb::diagnostics_service_client::DiagnosticsServiceClient::new(
            client.channel.clone(),
        )
        .get_server_info(client.request(pb::GetServerInfoRequest {}))
        .await
        .map_err(read_failed)?
        .into_inner();
        Ok::<_, Failure>(info)
    }
    .await;
    match args.output {
        Output::Json => print_json(&serde_json::json!({
            "client": client_version,
            "server": server.as_ref().ok().map(json),
        })),
        Output::Table => {
            crate::outln!("client: aliasd {}", crate::VERSION_LINE);
            if let Ok(info) = &server {
                let features = if info.features.is_empty() {
                    "none".to_owned()
                } else {
                    info.features.join(", ")
                };
                crate::outln!(
                    "server: aliasd {} (commit {}) at {}: backend {}, region {}, partition {}, features {}",
                    info.version,
                    info.commit,
                    args.endpoint,
                    info.backend,
                    info.region,
                    info.partition,
                    features
                );
            }
        }
    }
    server.map(|_| ())
}

pub async fn ping(client: &Client) -> Result<(), Failure> {
    let started = std::time::Instant::now();
    crate::pb::diagnostics_service_client::DiagnosticsServiceClient::new(client.channel.clone())
        .ping(client.request(pb::PingRequest {}))
        .await
        .map_err(read_failed)?;
    let round_trip_ms = started.elapsed().as_secs_f64() * 1000.0;
    let endpoint = &client.args.endpoint;
    match (client.quiet(), client.output()) {
        (true, _) => {}
        (false, Output::Json) => print_json(&serde_json::json!({
            "endpoint": endpoint,
            "round_trip_ms": round_trip_ms,
        })),
        (false, Output::Table) => crate::outln!("{endpoint} answered in {round_trip_ms:.2} ms"),
    }
    Ok(())
}
