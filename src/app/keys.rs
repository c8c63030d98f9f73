//! The key use cases: CreateKey, DescribeKey, ListKeys and the state changes.

use super::{request_id_text, App, Call, Page};
use crate::domain::key::{check_description, resolve_pending_window};
use crate::domain::names::parse_key_id_of;
use crate::domain::ops::{self, Ctx, NewKey};
use crate::domain::paging::Listing;
use crate::domain::policy::{actions, ANY_RESOURCE};
use crate::domain::request::{Idempotency, RequestId};
use crate::domain::{AliasName, Error, Key, KeyId, KeyRef, KeySpec, KeyUsage};
use crate::store::txn::{AccountTxn, Fail};

/// CreateKey's arguments; spec and usage already parsed by the door (each
/// door spells them its own way), unset as None.
#[derive(Debug, Clone, Default)]
pub struct NewKeyRequest {
    pub description: String,
    pub key_spec: Option<KeySpec>,
    pub key_usage: Option<KeyUsage>,
    pub request_id: String,
    /// An alias to create with the key, in the same transaction (Huawei's
    /// create-key with `key_alias`); a full `alias/...` name.
    pub alias_name: Option<String>,
    /// Tags, in the order given (checked by the rules).
    pub tags: Vec<(String, String)>,
    /// A key policy (None: AWS's default one).
    pub policy: Option<String>,
}

impl App {
    pub async fn create_key(&self, call: &Call, request: NewKeyRequest) -> Result<Key, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::CREATE_KEY);
        let new = NewKey {
            description: request.description,
            key_spec: request.key_spec,
            key_usage: request.key_usage,
            material: None,
            tags: request.tags,
            policy: request.policy,
        };
        check_description(&new.description)?;
        // Fingerprinted with defaults applied: an unset spec and an explicit
        // SYMMETRIC_DEFAULT are the same request.
        let (spec, usage) = KeySpec::resolve_pair(new.key_spec, new.key_usage)?;
        let alias = match &request.alias_name {
            Some(name) => {
                let name = AliasName::parse("alias_name", name)?;
                name.ensure_not_reserved(&ctx.scope)?;
                Some(name)
            }
            None => None,
        };
        let request_id = RequestId::parse(&request.request_id)?;
        audit.request_id = request_id_text(&request_id);
        let mut fingerprint = vec![new.description.as_str(), spec.as_str(), usage.as_str()];
        // Only with an alias, so that a CreateKey without one fingerprints
        // the same through every door.
        if let Some(alias) = &alias {
            fingerprint.push(alias.as_str());
        }
        // So are tags and a policy: a retry with others is another request.
        let tag_text: Vec<String> = new
            .tags
            .iter()
            .map(|(k, v)| format!("tag {k}={v}"))
            .collect();
        fingerprint.extend(tag_text.iter().map(String::as_str));
        if let Some(policy) = &new.policy {
            fingerprint.push(policy);
        }
        let idempotency = Idempotency::new(request_id, "CreateKey", &fingerprint);
        // Chosen outside the transaction, so a retried transaction keeps it.
        let key_id = KeyId::generate();
        // So is the material (an RSA key takes a while to make: off the
        // async threads).
        let (cache, account, id) = (
            self.materials.clone(),
            ctx.scope.account.clone(),
            key_id.clone(),
        );
        let mut new = new;
        new.material = tokio::task::spawn_blocking(move || cache.new_material(&account, &id, spec))
            .await
            .map_err(|e| Error::internal(format!("key material task failed: {e}")))??;
        let mut denial = audit.clone();
        denial.resources = vec![ANY_RESOURCE.to_owned()];
        audit.resources = vec![key_id.to_string()];
        audit.resources.extend(alias.iter().map(|a| a.to_string()));
        let op_ctx = ctx.clone();
        self.write_audited(&ctx, audit, denial, idempotency, move |txn| {
            let key = ops::create_key(txn, &op_ctx, &new, &key_id)?;
            if let Some(alias) = &alias {
                ops::create_alias(txn, &op_ctx, alias, &key_id)?;
            }
            Ok(key)
        })
        .await
    }

    /// DescribeKey with the key's alias names (in name order), from one
    /// read.
    pub async fn describe_key_with_aliases(
        &self,
        call: &Call,
        key_ref: &str,
    ) -> Result<(Key, Vec<AliasName>), Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::DESCRIBE_KEY);
        let parsed = KeyRef::parse(&ctx.scope, "key_id", key_ref)?;
        audit.resources = vec![key_ref.to_owned()];
        let op_ctx = ctx.clone();
        self.read(&ctx, audit, move |txn| {
            let key = ops::describe_key(txn, &op_ctx, &parsed)?;
            let aliases = ops::alias_names_of(txn, &op_ctx, &key.key_id)?;
            Ok((key, aliases))
        })
        .await
    }

    /// DescribeKey: `key_ref` is a key id, key ARN, alias name or alias ARN.
    pub async fn describe_key(&self, call: &Call, key_ref: &str) -> Result<Key, Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::DESCRIBE_KEY);
        let parsed = KeyRef::parse(&ctx.scope, "key_id", key_ref)?;
        audit.resources = vec![key_ref.to_owned()];
        let op_ctx = ctx.clone();
        self.read(&ctx, audit, move |txn| {
            ops::describe_key(txn, &op_ctx, &parsed)
        })
        .await
    }

    pub async fn list_keys(
        &self,
        call: &Call,
        page_size_wanted: i32,
        page_token: &str,
    ) -> Result<Page<Key>, Error> {
        let ctx = self.ctx(call);
        let audit = self.audit_entry(call, &ctx, actions::LIST_KEYS);
        self.audited(ops::authorize_account_wide(&ctx, actions::LIST_KEYS), audit)
            .await?;
        let limit = crate::domain::paging::page_size_up_to(
            page_size_wanted,
            crate::domain::paging::MAX_KEYS_PAGE_SIZE,
        )?;
        let listing = Listing {
            account: &ctx.scope.account,
            kind: "keys",
            filter: "",
        };
        let after = match page_token {
            "" => None,
            token => Some(self.tokens.open(&listing, token)?),
        };
        let (keys, more) = self
            .store
            .keys_page(&ctx.scope.account, after, limit)
            .await?;
        let next_page_token = match keys.last() {
            Some(last) if more => self.tokens.issue(&listing, last.key_id.as_str()),
            _ => String::new(),
        };
        Ok(Page {
            items: keys,
            next_page_token,
        })
    }

    /// A page of keys with each key's alias names, in name order (Huawei's
    /// list-keys with `key_details`): the page, then every key's aliases in
    /// one read. Needs kms:DescribeKey on each key, as DescribeKey does.
    pub async fn list_keys_with_aliases(
        &self,
        call: &Call,
        page_size_wanted: i32,
        page_token: &str,
    ) -> Result<(Page<Key>, Vec<Vec<AliasName>>), Error> {
        let page = self.list_keys(call, page_size_wanted, page_token).await?;
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::DESCRIBE_KEY);
        let ids: Vec<KeyId> = page.items.iter().map(|key| key.key_id.clone()).collect();
        audit.resources = ids.iter().map(|id| id.to_string()).collect();
        let op_ctx = ctx.clone();
        let names = self
            .read(&ctx, audit, move |txn| {
                ids.iter()
                    .map(|id| ops::alias_names_of(txn, &op_ctx, id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok((page, names))
    }

    pub async fn enable_key(
        &self,
        call: &Call,
        key_id: &str,
        request_id: &str,
    ) -> Result<Key, Error> {
        self.change_key(
            call,
            actions::ENABLE_KEY,
            key_id,
            request_id,
            "",
            |txn, ctx, id| ops::set_key_enabled(txn, ctx, id, true),
        )
        .await
    }

    pub async fn disable_key(
        &self,
        call: &Call,
        key_id: &str,
        request_id: &str,
    ) -> Result<Key, Error> {
        self.change_key(
            call,
            actions::DISABLE_KEY,
            key_id,
            request_id,
            "",
            |txn, ctx, id| ops::set_key_enabled(txn, ctx, id, false),
        )
        .await
    }

    /// ScheduleKeyDeletion: `pending_window_in_days` 0 means the default (30).
    pub async fn schedule_key_deletion(
        &self,
        call: &Call,
        key_id: &str,
        pending_window_in_days: i32,
        request_id: &str,
    ) -> Result<Key, Error> {
        // The window is checked first, whatever the key.
        let window = resolve_pending_window(pending_window_in_days)?;
        self.change_key(
            call,
            actions::SCHEDULE_KEY_DELETION,
            key_id,
            request_id,
            &window.to_string(),
            move |txn, ctx, id| ops::schedule_key_deletion(txn, ctx, id, window),
        )
        .await
    }

    pub async fn cancel_key_deletion(
        &self,
        call: &Call,
        key_id: &str,
        request_id: &str,
    ) -> Result<Key, Error> {
        self.change_key(
            call,
            actions::CANCEL_KEY_DELETION,
            key_id,
            request_id,
            "",
            |txn, ctx, id| ops::cancel_key_deletion(txn, ctx, id),
        )
        .await
    }

    /// EnableKey, DisableKey, ScheduleKeyDeletion and CancelKeyDeletion: one
    /// key id, an optional request_id, one operation on the key.
    pub(super) async fn change_key<F>(
        &self,
        call: &Call,
        action: &'static str,
        key_id: &str,
        request_id: &str,
        extra: &str,
        op: F,
    ) -> Result<Key, Error>
    where
        F: Fn(&AccountTxn, &Ctx, &KeyId) -> Result<Key, Fail> + Send + 'static,
    {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, action);
        let id = parse_key_id_of(&ctx.scope, action, "key_id", key_id)?;
        let request_id = RequestId::parse(request_id)?;
        audit.resources = vec![id.to_string()];
        audit.request_id = request_id_text(&request_id);
        let idempotency = Idempotency::new(request_id, action, &[id.as_str(), extra]);
        let op_ctx = ctx.clone();
        self.write(&ctx, audit, idempotency, move |txn| op(txn, &op_ctx, &id))
            .await
    }
}
