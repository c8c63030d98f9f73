//! Dynamic completion (opt-in, as kubectl's): alias names and key ids
//! completed from the server, when the shell's completion was set up with
//! `source <(COMPLETE=bash aliasd)` rather than the static script of
//! `aliasd completions bash`.
//!
//! The completer cannot see the flags on the line being completed: it
//! reaches the server the environment (`ALIASD_ENDPOINT`, `ALIASD_TOKEN`,
//! `ALIASD_PROFILE`, ...) and the config file's profile name. It waits at
//! most a second in all (a profile's `token_command` included), reads at
//! most one page of each listing, and offers nothing when the server does
//! not answer in time.

use std::ffi::OsStr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use clap_complete::engine::CompletionCandidate;

use super::{profile, Client, ClientArgs};
use crate::pb;

/// How long a completion may wait for the server.
const PATIENCE: Duration = Duration::from_secs(1);
/// The most names read per listing.
const PAGE: i32 = 1000;

/// The client settings of the environment and the profile.
#[derive(Parser)]
struct FromEnvironment {
    #[command(flatten)]
    client: ClientArgs,
}

fn settings() -> Option<ClientArgs> {
    let matches = FromEnvironment::command()
        .try_get_matches_from(["aliasd"])
        .ok()?;
    let mut client = FromEnvironment::from_arg_matches(&matches).ok()?.client;
    profile::resolve(&mut client, &matches, profile::Purpose::Complete).ok()?;
    client.timeout_secs = client.timeout_secs.min(PATIENCE.as_secs_f64());
    Some(client)
}

/// What a completer offers.
#[derive(Clone, Copy)]
struct Wanted {
    aliases: bool,
    keys: bool,
}

/// Names from the server, those that start with `current`; nothing if the
/// settings and the server take longer than [`PATIENCE`] together.
fn names(current: &OsStr, wanted: Wanted) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let (found, found_rx) = std::sync::mpsc::channel();
    // Left behind if it takes too long: the shell has its answer by then.
    std::thread::spawn(move || {
        let _ = found.send(lookup(wanted));
    });
    let mut names = found_rx
        .recv_timeout(PATIENCE)
        .ok()
        .flatten()
        .unwrap_or_default();
    names.retain(|(name, _)| name.starts_with(current));
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|(name, help)| CompletionCandidate::new(name).help(help.map(Into::into)))
        .collect()
}

/// The settings, then the names from the server.
fn lookup(wanted: Wanted) -> Option<Vec<(String, Option<String>)>> {
    let args = settings()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(fetch(&args, wanted))
}

/// The account's alias names (with the key each names) and its key ids
/// (with their descriptions), as `wanted`.
async fn fetch(args: &ClientArgs, wanted: Wanted) -> Option<Vec<(String, Option<String>)>> {
    let client = Client::connect(args).await.ok()?;
    let mut names = Vec::new();
    if wanted.aliases {
        let aliases =
            crate::pb::alias_service_client::AliasServiceClient::new(client.channel.clone())
                .list_aliases(client.request(pb::ListAliasesRequest {
                    page_size: PAGE,
                    ..Default::default()
                }))
                .await
                .ok()?
                .into_inner();
        for alias in aliases.aliases {
            let key = (!alias.target_key_id.is_empty()).then_some(alias.target_key_id);
            names.push((alias.alias_name, key));
        }
    }
    if wanted.keys {
        let listed = crate::pb::key_service_client::KeyServiceClient::new(client.channel.clone())
            .list_keys(client.request(pb::ListKeysRequest {
                page_size: PAGE,
                ..Default::default()
            }))
            .await
            .ok()?
            .into_inner();
        for key in listed.keys {
            let description = (!key.description.is_empty()).then_some(key.description);
            names.push((key.key_id, description));
        }
    }
    Some(names)
}

/// Completes an alias name.
pub fn alias_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let wanted = Wanted {
        aliases: true,
        keys: false,
    };
    names(current, wanted)
}

/// Completes a key id (an alias's target must be one).
pub fn key_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let wanted = Wanted {
        aliases: false,
        keys: true,
    };
    names(current, wanted)
}

/// Completes a key reference: a key id or an alias name.
pub fn key_refs(current: &OsStr) -> Vec<CompletionCandidate> {
    let wanted = Wanted {
        aliases: true,
        keys: true,
    };
    names(current, wanted)
}
