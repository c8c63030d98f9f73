//! The alias use cases: the changes, GetAlias, ListAliases and WatchAliases.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_stream::Stream;

use super::{request_id_text, App, Call, Page};
use crate::domain::alias::parse_etag;
use crate::domain::audit::AuditEntry;
use crate::domain::names::{parse_alias_ref, parse_key_id, parse_key_id_of};
use crate::domain::ops::{self, Ctx};
use crate::domain::paging::{page_size, Listing};
use crate::domain::policy::{actions, Caller, ANY_RESOURCE};
use crate::domain::request::{Idempotency, RequestId};
use crate::domain::{Alias, AliasName, Error, KeyId, Reason};
use crate::store::watch;

/// A page of ListAliases, with the store revision read before the scan.
#[derive(Debug, Clone)]
pub struct AliasPage {
    pub page: Page<Alias>,
    /// Watching from it misses no change made since the scan began.
    pub revision: u64,
}

impl App {
    pub async fn create_alias(
        &self,
        call: &Call,
        alias_name: &str,
        target_key_id: &str,
        request_id: &str,
    ) -> Result<Alias, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::CREATE_ALIAS);
        let name = AliasName::parse("alias_name", alias_name)?;
        // Rule 4 of the name rules comes before anything about the target.
        name.ensure_not_reserved(&ctx.scope)?;
        let target = parse_key_id(&ctx.scope, "target_key_id", target_key_id)?;
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![name.to_string(), target.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency =
            Idempotency::new(request_id, "CreateAlias", &[name.as_str(), target.as_str()]);
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, idempotency, move |txn| {
            ops::create_alias(txn, &op_ctx, &name, &target)
        })
        .await
    }

    /// UpdateAlias; an empty `etag` means unconditional.
    pub async fn update_alias(
        &self,
        call: &Call,
        alias_name: &str,
        target_key_id: &str,
        etag: &str,
        request_id: &str,
    ) -> Result<Alias, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::UPDATE_ALIAS);
        let name = AliasName::parse("alias_name", alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        let target = parse_key_id(&ctx.scope, "target_key_id", target_key_id)?;
        let parsed_etag = parse_etag(etag)?.map(str::to_owned);
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![name.to_string(), target.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(
            request_id,
            "UpdateAlias",
            &[name.as_str(), target.as_str(), etag],
        );
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, idempotency, move |txn| {
            ops::update_alias(txn, &op_ctx, &name, &target, parsed_etag.as_deref())
        })
        .await
    }

    pub async fn delete_alias(
        &self,
        call: &Call,
        alias_name: &str,
        etag: &str,
        request_id: &str,
    ) -> Result<(), Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::DELETE_ALIAS);
        let name = AliasName::parse("alias_name", alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        let parsed_etag = parse_etag(etag)?.map(str::to_owned);
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![name.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(request_id, "DeleteAlias", &[name.as_str(), etag]);
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, idempotency, move |txn| {
            ops::delete_alias(txn, &op_ctx, &name, parsed_etag.as_deref())
        })
        .await
    }

    /// Huawei's DELETE aliases: aliases of one key, deleted in one
    /// transaction (all or none).
    pub async fn delete_aliases_of_key(
        &self,
        call: &Call,
        key_id: &str,
        alias_names: &[String],
    ) -> Result<(), Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::DELETE_ALIAS);
        let key = parse_key_id_of(&ctx.scope, actions::DELETE_ALIAS, "key_id", key_id)?;
        let names = alias_names
            .iter()
            .map(|name| AliasName::parse("aliases", name))
            .collect::<Result<Vec<_>, _>>()?;
        for name in &names {
            name.ensure_not_reserved(&ctx.scope)?;
        }
        audit.resources = names.iter().map(|n| n.to_string()).collect();
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, None, move |txn| {
            ops::delete_aliases_of_key(txn, &op_ctx, &key, &names)
        })
        .await
    }

    pub async fn rename_alias(
        &self,
        call: &Call,
        alias_name: &str,
        new_alias_name: &str,
        etag: &str,
        request_id: &str,
    ) -> Result<Alias, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::RENAME_ALIAS);
        let name = AliasName::parse("alias_name", alias_name)?;
        let new_name = AliasName::parse("new_alias_name", new_alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        new_name.ensure_not_reserved(&ctx.scope)?;
        let parsed_etag = parse_etag(etag)?.map(str::to_owned);
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![name.to_string(), new_name.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(
            request_id,
            "RenameAlias",
            &[name.as_str(), new_name.as_str(), etag],
        );
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, idempotency, move |txn| {
            ops::rename_alias(txn, &op_ctx, &name, &new_name, parsed_etag.as_deref())
        })
        .await
    }

    /// Huawei's update-key-alias: the key's alias becomes `alias_name` (see
    /// [`ops::set_key_alias`]): renamed if it has one, created if none.
    pub async fn set_key_alias(
        &self,
        call: &Call,
        key_id: &str,
        alias_name: &str,
        request_id: &str,
    ) -> Result<Alias, Error> {
        let ctx = self.ctx(call);
        // Recorded (and throttled, and authorized) as the RenameAlias it
        // is, or the CreateAlias it becomes for a key with no alias.
        let mut audit = self.audit_entry(call, &ctx, actions::RENAME_ALIAS);
        let id = parse_key_id_of(&ctx.scope, "UpdateKeyAlias", "key_id", key_id)?;
        let name = AliasName::parse("key_alias", alias_name)?;
        name.ensure_not_reserved(&ctx.scope)?;
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![id.to_string(), name.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency =
            Idempotency::new(request_id, "UpdateKeyAlias", &[id.as_str(), name.as_str()]);
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, idempotency, move |txn| {
            ops::set_key_alias(txn, &op_ctx, &id, &name)
        })
        .await
    }

    /// GetAlias: by alias name or alias ARN.
    pub async fn get_alias(&self, call: &Call, alias_name: &str) -> Result<Alias, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::GET_ALIAS);
        let name = parse_alias_ref(&ctx.scope, "alias_name", alias_name)?;
        audit.resources = vec![name.to_string()];
        let op_ctx = ctx.clone();
        self.read(&ctx, audit, move |txn| ops::get_alias(txn, &op_ctx, &name))
            .await
    }

    /// Which of `names` the caller's account holds: for the AWS door's
    /// ListAliases, which lists AWS's predefined aliases after the
    /// account's own (the caller may list the account's aliases, so it
    /// learns nothing new).
    pub async fn aliases_held(
        &self,
        call: &Call,
        names: &'static [&'static str],
    ) -> Result<Vec<String>, Error> {
        let ctx = self.ctx(call);
        let audit = self.audit_entry(call, &ctx, actions::LIST_ALIASES);
        let op_ctx = ctx.clone();
        let held = self
            .read(&ctx, audit, move |txn| {
                ops::aliases_held(txn, &op_ctx, names)
            })
            .await?;
        Ok(held.iter().map(|name| name.to_string()).collect())
    }

    /// ListAliases: optionally only those of one key (`key_id` empty: all).
    pub async fn list_aliases(
        &self,
        call: &Call,
        key_id: &str,
        page_size_wanted: i32,
        page_token: &str,
    ) -> Result<AliasPage, Error> {
        let ctx = self.ctx(call);
        let audit = self.audit_entry(call, &ctx, actions::LIST_ALIASES);
        let limit = page_size(page_size_wanted)?;
        let filter = self.key_filter(&ctx, audit, key_id).await?;
        let filter_text = filter.as_ref().map(|k| k.to_string()).unwrap_or_default();
        let listing = Listing {
            account: &ctx.scope.account,
            kind: "aliases",
            filter: &filter_text,
        };
        let after = match page_token {
            "" => None,
            token => Some(self.tokens.open(&listing, token)?),
        };
        let crate::store::AliasesPage {
            revision,
            aliases,
            more,
        } = self
            .store
            .aliases_page(&ctx.scope.account, filter, after, limit)
            .await?;
        let next_page_token = match aliases.last() {
            Some(last) if more => self.tokens.issue(&listing, last.name.as_str()),
            _ => String::new(),
        };
        Ok(AliasPage {
            page: Page {
                items: aliases,
                next_page_token,
            },
            revision,
        })
    }

    /// WatchAliases: the account's alias changes after `start_revision`
    /// (None: after the current head), optionally only those touching
    /// `key_id`. With `deadline`, the stream ends with DEADLINE_EXCEEDED
    /// when it passes. With `progress_notify`, an idle watch delivers its
    /// progress every `--watch-progress-interval-secs`. Each open watch
    /// holds one of the bounded watch slots.
    pub async fn watch_aliases(
        &self,
        call: &Call,
        key_id: &str,
        start_revision: Option<u64>,
        deadline: Option<Duration>,
        progress_notify: bool,
    ) -> Result<WatchStream, Error> {
        let ctx = self.ctx(call);
        let audit = self.audit_entry(call, &ctx, actions::WATCH_ALIASES);
        // A little early (a tenth, at most 100 ms), so that the caller gets
        // the server's DEADLINE_EXCEEDED rather than its own timer's.
        let deadline = deadline.map(|timeout| {
            let margin = (timeout / 10).min(Duration::from_millis(100));
            (
                timeout,
                Box::pin(tokio::time::sleep_until(
                    tokio::time::Instant::now() + (timeout - margin),
                )),
            )
        });
        let filter = self.key_filter(&ctx, audit, key_id).await?;
        let still_allowed: watch::StillAllowed = match (&self.authenticator, &ctx.caller) {
            (Some(auth), Caller::Principal(principal)) => {
                let resource = filter
                    .as_ref()
                    .map_or_else(|| ANY_RESOURCE.to_owned(), |k| k.to_string());
                Box::new(auth.still_allowed(principal, actions::WATCH_ALIASES, resource))
            }
            _ => Box::new(|| Ok(())),
        };
        let slot = self.watch_slots.admit(&ctx.scope.account)?;
        let events = watch::open(
            self.store.clone(),
            ctx.scope.account.clone(),
            filter,
            start_revision,
            watch::Pace {
                send_timeout: self.watch_send_timeout,
                progress_every: self.watch_progress_interval.filter(|_| progress_notify),
            },
            still_allowed,
            self.shutdown.clone(),
        )?;
        Ok(WatchStream {
            events,
            deadline,
            done: false,
            _slot: slot,
        })
    }

    /// The optional key filter of ListAliases and WatchAliases (a key id or
    /// key ARN of an existing key), once the caller is allowed the action on
    /// it (or account-wide, without a filter).
    async fn key_filter(
        &self,
        ctx: &Ctx,
        mut audit: AuditEntry,
        key_id: &str,
    ) -> Result<Option<KeyId>, Error> {
        let filter = match key_id {
            "" => None,
            key_id => Some(parse_key_id_of(
                &ctx.scope,
                &audit.action,
                "key_id",
                key_id,
            )?),
        };
        audit.resources = filter.iter().map(|k| k.to_string()).collect();
        let action = audit.action.clone();
        match &filter {
            None => {
                self.audited(ops::authorize_account_wide(ctx, &action), audit)
                    .await?
            }
            // On the key, in one read with its aliases (a statement's
            // kms:ResourceAliases condition sees them), then whether it
            // exists.
            Some(id) => {
                let (checked, check_ctx) = (id.clone(), ctx.clone());
                let outcome = self
                    .store
                    .read(&ctx.scope.account, move |txn| {
                        ops::authorize_key_filter(txn, &check_ctx, &action, &checked)
                    })
                    .await;
                self.audited(outcome, audit).await?
            }
        }
        Ok(filter)
    }
}

/// The events of one watch, in commit order; it ends with an error when the
/// watch is cut off, and with DEADLINE_EXCEEDED when its deadline passes. It
/// holds the watch's slot until it is dropped.
pub struct WatchStream {
    events: watch::WatchStream,
    deadline: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    done: bool,
    _slot: crate::app::admission::watches::WatchSlot,
}

impl Stream for WatchStream {
    type Item = Result<watch::WatchItem, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some((timeout, sleep)) = self.deadline.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                let timeout = *timeout;
                self.done = true;
                return Poll::Ready(Some(Err(Error::new(
                    Reason::DEADLINE_EXCEEDED,
                    format!(
                        "The watch's deadline of {timeout:?} passed; watch again from the last \
                         revision received."
                    ),
                )
                .of_a_read())));
            }
        }
        let next = Pin::new(&mut self.events).poll_next(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = next {
            self.done = true;
        }
        next
    }
}
