//! AuditService.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{convert, App};
use crate::domain::audit::AuditEntry;
use crate::domain::names::check_length;
use crate::domain::ops;
use crate::domain::paging::{page_size, Listing};
use crate::domain::policy::actions;
use crate::domain::{Error, Millis, Reason};
use crate::pb::{self, audit_service_server::AuditService};

/// Records looked at per call at most, so that a narrow filter over a long
/// log cannot make one call arbitrarily expensive.
const SCAN_PER_PAGE: usize = 10_000;

pub struct AuditApi {
    app: Arc<App>,
}

impl AuditApi {
    pub fn new(app: Arc<App>) -> Self {
        AuditApi { app }
    }
}

fn millis(timestamp: &Option<prost_types::Timestamp>) -> Option<Millis> {
    timestamp.as_ref().map(|t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos) / 1_000_000)
    })
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let ctx = self.app.ctx_of(&request)?;
        let audit = self
            .app
            .audit_entry(&request, &ctx, actions::LIST_AUDIT_EVENTS);
        self.app
            .audited(
                ops::authorize_account_wide(&ctx, actions::LIST_AUDIT_EVENTS),
                audit,
            )
            .await?;
        let r = request.into_inner();
        check_length("principal", &r.principal, 256)?;
        check_length("action", &r.action, 128)?;
        let limit = page_size(r.page_size)?;
        let (start, end) = (millis(&r.start_time), millis(&r.end_time));
        // The token is bound to the filters it was issued for.
        let filter = format!("{start:?}|{end:?}|{}|{}", r.principal, r.action);
        let listing = Listing {
            account: &ctx.scope.account,
            kind: "audit",
            filter: &filter,
        };
        let after = match r.page_token.as_str() {
            "" => 0,
            token => self
                .app
                .tokens
                .open(&listing, token)?
                .parse()
                .map_err(|_| {
                    Error::invalid(
                        Reason::INVALID_PAGE_TOKEN,
                        "page_token",
                        "Invalid page_token.",
                    )
                })?,
        };
        let account = ctx.scope.account.clone();
        let (principal, action) = (r.principal, r.action);
        let keep = move |e: &AuditEntry| {
            start.is_none_or(|s| e.time >= s)
                && end.is_none_or(|t| e.time < t)
                && (principal.is_empty() || e.principal == principal)
                && (action.is_empty() || e.action.eq_ignore_ascii_case(&action))
        };
        let (events, last, head) = self
            .app
            .store
            .blocking(move |store| {
                let head = store.audit_head(&account)?;
                let (events, last) =
                    store.list_audit(&account, after, limit, SCAN_PER_PAGE, keep)?;
                Ok((events, last, head))
            })
            .await?;
        let next_page_token = match last {
            Some(last) if last < head => self.app.tokens.issue(&listing, &last.to_string()),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }
}
