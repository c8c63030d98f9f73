//! Reading the audit log.

use super::{App, Call, Page};
use crate::domain::audit::AuditEntry;
use crate::domain::names::check_length;
use crate::domain::ops;
use crate::domain::paging::{page_size, Listing};
use crate::domain::policy::actions;
use crate::domain::{Error, Millis, Reason};

/// Records looked at per call at most, so that a narrow filter over a long
/// log cannot make one call arbitrarily expensive.
const SCAN_PER_PAGE: usize = 10_000;

/// ListAuditEvents' filters and paging.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records at or after this time.
    pub start: Option<Millis>,
    /// Only records before this time.
    pub end: Option<Millis>,
    /// Only this principal's records ("" for all).
    pub principal: String,
    /// Only this action's records ("" for all; compared without case).
    pub action: String,
    pub page_size: i32,
    pub page_token: String,
}

impl App {
    /// The account's audit records, oldest first.
    pub async fn list_audit_events(
        &self,
        call: &Call,
        query: AuditQuery,
    ) -> Result<Page<AuditEntry>, Error> {
        let ctx = self.ctx(call);
        let audit = self.audit_entry(call, &ctx, actions::LIST_AUDIT_EVENTS);
        self.audited(
            ops::authorize_account_wide(&ctx, actions::LIST_AUDIT_EVENTS),
            audit,
        )
        .await?;
        check_length("principal", &query.principal, 256)?;
        check_length("action", &query.action, 128)?;
        let limit = page_size(query.page_size)?;
        let (start, end) = (query.start, query.end);
        // The token is bound to the filters it was issued for.
        let filter = format!("{start:?}|{end:?}|{}|{}", query.principal, query.action);
        let listing = Listing {
            account: &ctx.scope.account,
            kind: "audit",
            filter: &filter,
        };
        let after = match query.page_token.as_str() {
            "" => 0,
            token => self.tokens.open(&listing, token)?.parse().map_err(|_| {
                Error::invalid(
                    Reason::INVALID_PAGE_TOKEN,
                    "page_token",
                    "Invalid page_token.",
                )
            })?,
        };
        let account = ctx.scope.account.clone();
        let (principal, action) = (query.principal, query.action);
        let keep = move |e: &AuditEntry| {
            start.is_none_or(|s| e.time >= s)
                && end.is_none_or(|t| e.time < t)
                && (principal.is_empty() || e.principal == principal)
                && (action.is_empty() || e.action.eq_ignore_ascii_case(&action))
        };
        let (events, last, head) = self
            .store
            .audit_page(&account, after, (limit, SCAN_PER_PAGE), keep)
            .await?;
        let next_page_token = match last {
            Some(last) if last < head => self.tokens.issue(&listing, &last.to_string()),
            _ => String::new(),
        };
        Ok(Page {
            items: events,
            next_page_token,
        })
    }
}
