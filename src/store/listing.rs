//! Listings: pages of keys, aliases and audit records, and the change log,
//! each over one committed state. The async calls are the app's; the
//! blocking ones do the reading.

use std::sync::Arc;

use super::backend::{self, Tree};
use super::records::{self, AliasRecord, ChangeRecord, KeyRecord};
use super::{layout, Store};
use crate::domain::audit::AuditEntry;
use crate::domain::{Alias, AliasEvent, Error, Key, KeyId};

impl Store {
    /// Audit records of `account` after sequence `after`, oldest first, that
    /// pass `keep`; at most `limit`, looking at no more than `scan` log
    /// entries (an entry holds one record, or a batch of up to 128).
    /// Returns them and the last sequence looked at.
    pub(super) fn list_audit(
        &self,
        account: &str,
        after: u64,
        limit: usize,
        scan: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<(Vec<AuditEntry>, Option<u64>), Error> {
        let start = layout::change_key(account, after.saturating_add(1));
        let end = layout::prefix_end(&layout::prefix(account));
        let mut out = Vec::new();
        let mut last = None;
        // An entry may hold a batch of records, keyed by its last: the
        // first entry scanned may begin at or before `after`.
        'entries: for (_, bytes) in self.backend.scan(Tree::Audit, &start, Some(&end), scan)? {
            for record in records::decode::<records::AuditRecord>("audit", &bytes)?.records() {
                let entry = AuditEntry::from(record);
                if entry.sequence <= after {
                    continue;
                }
                last = Some(entry.sequence);
                if keep(&entry) {
                    out.push(entry);
                    if out.len() == limit {
                        break 'entries;
                    }
                }
            }
        }
        Ok((out, last))
    }
    /// Up to `limit` aliases of `account` after `after`, in name order, and
    /// whether more follow. With `key`, only that key's aliases (read from
    /// the per-key index). Reads only what the page needs.
    pub(super) fn list_aliases(
        &self,
        account: &str,
        key: Option<&KeyId>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Alias>, bool), Error> {
        let decode_alias =
            |bytes: &[u8]| records::decode::<AliasRecord>("alias", bytes).map(Alias::from);
        let mut page = Vec::with_capacity(limit + 1);
        match key {
            Some(key) => {
                let set = self.backend.get(
                    Tree::KeyAliases,
                    &layout::scoped(account, key.as_str().as_bytes()),
                )?;
                let names = match set {
                    Some(bytes) => {
                        records::decode::<records::AliasSetRecord>("alias index", &bytes)?.names
                    }
                    None => Vec::new(),
                };
                let mut names = names
                    .iter()
                    .filter(|n| after.is_none_or(|a| n.as_str() > a))
                    .peekable();
                // Read in batches of what the page still needs.
                while page.len() <= limit && names.peek().is_some() {
                    let wanted = limit + 1 - page.len();
                    let batch: Vec<Vec<u8>> = names
                        .by_ref()
                        .take(wanted)
                        .map(|name| layout::scoped(account, name.as_bytes()))
                        .collect();
                    for bytes in self.backend.get_many(Tree::Aliases, &batch)?.into_iter() {
                        let Some(bytes) = bytes else { continue };
                        let alias = decode_alias(&bytes)?;
                        // Read outside a transaction: skip one re-pointed meanwhile.
                        if &alias.target == key {
                            page.push(alias);
                        }
                    }
                }
            }
            None => {
                let prefix = layout::prefix(account);
                let start = match after {
                    Some(after) => backend::after(&layout::scoped(account, after.as_bytes())),
                    None => prefix.clone(),
                };
                let end = layout::prefix_end(&prefix);
                self.backend.scan_each(
                    Tree::Aliases,
                    &start,
                    Some(&end),
                    limit + 1,
                    &mut |_, bytes| {
                        page.push(decode_alias(bytes)?);
                        Ok(())
                    },
                )?;
            }
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }
    /// Up to `limit` keys of `account` after key id `after`, and whether more
    /// follow.
    pub(super) fn list_keys(
        &self,
        account: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Key>, bool), Error> {
        let prefix = layout::prefix(account);
        let start = match after {
            Some(after) => backend::after(&layout::scoped(account, after.as_bytes())),
            None => prefix.clone(),
        };
        let end = layout::prefix_end(&prefix);
        let mut page = Vec::with_capacity(limit + 1);
        for (_, bytes) in self
            .backend
            .scan(Tree::Keys, &start, Some(&end), limit + 1)?
        {
            page.push(Key::try_from(records::decode::<KeyRecord>("key", &bytes)?)?);
        }
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }
    /// Change-log entries of `account` with revisions in `after+1 ..= up_to`,
    /// at most `limit`.
    pub(super) fn changes_after(
        &self,
        account: &str,
        after: u64,
        up_to: u64,
        limit: usize,
    ) -> Result<Vec<AliasEvent>, Error> {
        if after >= up_to {
            return Ok(Vec::new());
        }
        // Entries sit under their last revision: the first at or after
        // `after + 1` may begin before it.
        let mut start = layout::change_key(account, after + 1);
        let end = layout::prefix_end(&layout::prefix(account));
        let mut events = Vec::new();
        loop {
            let entries = self
                .backend
                .scan(Tree::Changes, &start, Some(&end), limit)?;
            for (_, bytes) in &entries {
                for record in records::decode::<ChangeRecord>("change", bytes)?.events() {
                    if record.revision > up_to || events.len() == limit {
                        return Ok(events);
                    }
                    if record.revision > after {
                        events.push(AliasEvent::try_from(record)?);
                    }
                }
            }
            match entries.last() {
                Some((last, _)) if entries.len() == limit => start = backend::after(last),
                _ => return Ok(events),
            }
        }
    }

    /// One page of `account`'s keys after the key id `after`: the keys and
    /// whether more follow.
    pub async fn keys_page(
        self: &Arc<Self>,
        account: &str,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Key>, bool), Error> {
        let account = account.to_owned();
        self.read_now(move |store| store.list_keys(&account, after.as_deref(), limit))
            .await
    }

    /// One page of `account`'s aliases (of one key, with `filter`) after
    /// the name `after`, with the revision read before the scan, so that a
    /// watch from it misses nothing.
    pub async fn aliases_page(
        self: &Arc<Self>,
        account: &str,
        filter: Option<KeyId>,
        after: Option<String>,
        limit: usize,
    ) -> Result<AliasesPage, Error> {
        let account = account.to_owned();
        self.read_now(move |store| {
            let revision = store.head_revision(&account)?;
            let (aliases, more) =
                store.list_aliases(&account, filter.as_ref(), after.as_deref(), limit)?;
            Ok(AliasesPage {
                revision,
                aliases,
                more,
            })
        })
        .await
    }

    /// One page of `account`'s audit records after sequence `after` that
    /// pass `keep`: at most `limit`, looking at no more than `scan`. Returns
    /// them, the last sequence looked at, and the account's last sequence.
    pub async fn audit_page(
        self: &Arc<Self>,
        account: &str,
        after: u64,
        (limit, scan): (usize, usize),
        keep: impl Fn(&AuditEntry) -> bool + Send + 'static,
    ) -> Result<(Vec<AuditEntry>, Option<u64>, u64), Error> {
        let account = account.to_owned();
        self.blocking(move |store| {
            let head = store.audit_head(&account)?;
            let (events, last) = store.list_audit(&account, after, limit, scan, keep)?;
            Ok((events, last, head))
        })
        .await
    }
    /// The change-log entries of `account` that pass `keep`, oldest
    /// first, looking back at most `scan` revisions from the head (never
    /// before the retained floor), with the revisions looked at.
    pub async fn recent_changes(
        self: &Arc<Self>,
        account: &str,
        scan: u64,
        keep: impl Fn(&AliasEvent) -> bool + Send + Sync + 'static,
    ) -> Result<RecentChanges, Error> {
        let account = account.to_owned();
        self.read_now(move |store| {
            let head = store.head_revision(&account)?;
            let floor = store.floor(&account)?;
            let from = head.saturating_sub(scan).max(floor);
            let limit = usize::try_from(head - from).unwrap_or(usize::MAX);
            let events = store
                .changes_after(&account, from, head, limit)?
                .into_iter()
                .filter(|event| keep(event))
                .collect();
            Ok(RecentChanges {
                events,
                from,
                to: head,
            })
        })
        .await
    }
}

/// Change-log entries read by [`Store::recent_changes`].
pub struct RecentChanges {
    pub events: Vec<AliasEvent>,
    /// The entries are those after this revision...
    pub from: u64,
    /// ...up to this one (the head when read).
    pub to: u64,
}

/// A page of aliases ([`Store::aliases_page`]).
pub struct AliasesPage {
    /// The account's revision, read before the scan.
    pub revision: u64,
    pub aliases: Vec<Alias>,
    /// Whether more aliases follow.
    pub more: bool,
}
