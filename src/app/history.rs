//! An alias's history: its entries in the retained change log (created,
//! re-pointed, renamed to or from, deleted), for the console.

use super::{App, Call};
use crate::domain::names::parse_alias_ref;
use crate::domain::ops;
use crate::domain::policy::actions;
use crate::domain::{AliasEvent, Error};

/// Revisions looked back at most, so that one look at a busy account's log
/// costs a bounded read.
pub const HISTORY_SCAN: u64 = 10_000;

/// The changes of one alias, oldest first.
#[derive(Debug, Clone)]
pub struct AliasHistory {
    pub events: Vec<AliasEvent>,
    /// The revisions looked at: after `from`, up to `to`.
    pub from: u64,
    pub to: u64,
    /// Whether older changes may have been pruned or not looked at
    /// (`from` is past the account's first revision).
    pub truncated: bool,
}

impl App {
    /// The retained changes of the alias named `alias_name` (a name or an
    /// alias ARN) among the last [`HISTORY_SCAN`] revisions. It shows what
    /// an unfiltered WatchAliases shows, so it needs kms:WatchAliases on the
    /// whole account.
    pub async fn alias_history(
        &self,
        call: &Call,
        alias_name: &str,
    ) -> Result<AliasHistory, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::WATCH_ALIASES);
        let name = parse_alias_ref(&ctx.scope, "alias_name", alias_name)?;
        audit.resources = vec![name.to_string()];
        self.audited(
            ops::authorize_account_wide(&ctx, actions::WATCH_ALIASES),
            audit,
        )
        .await?;
        let recent = self
            .store
            .recent_changes(&ctx.scope.account, HISTORY_SCAN, move |event| {
                event.alias.name == name || event.previous_name.as_ref() == Some(&name)
            })
            .await?;
        Ok(AliasHistory {
            events: recent.events,
            from: recent.from,
            to: recent.to,
            truncated: recent.from > 0,
        })
    }
}
