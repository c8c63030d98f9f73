//! What a key carries besides its material (SPEC §12): tags
//! (TagResource, UntagResource, ListResourceTags), its key policy
//! (GetKeyPolicy, PutKeyPolicy, ListKeyPolicies) and its description
//! (UpdateKeyDescription). Each names its key by key id or key ARN.

use super::{App, Call, Page};
use crate::domain::key_details::{self, DEFAULT_POLICY_NAME};
use crate::domain::ops;
use crate::domain::paging::Listing;
use crate::domain::policy::actions;
use crate::domain::Error;

/// The most tags one ListResourceTags page holds, and its default.
pub const MAX_TAGS_PAGE: usize = 50;

impl App {
    /// TagResource: adds tags to the key (a given tag key's value replaces
    /// the old one); at most 50 on a key.
    pub async fn tag_resource(
        &self,
        call: &Call,
        key_id: &str,
        tags: Vec<(String, String)>,
    ) -> Result<(), Error> {
        let extra: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.change_key(
            call,
            actions::TAG_RESOURCE,
            key_id,
            "",
            &extra.join("\n"),
            move |txn, ctx, id| ops::tag_resource(txn, ctx, id, &tags),
        )
        .await
        .map(drop)
    }

    /// UntagResource: removes the tags with these keys (absent ones are not
    /// an error).
    pub async fn untag_resource(
        &self,
        call: &Call,
        key_id: &str,
        tag_keys: Vec<String>,
    ) -> Result<(), Error> {
        let extra = tag_keys.join("\n");
        self.change_key(
            call,
            actions::UNTAG_RESOURCE,
            key_id,
            "",
            &extra,
            move |txn, ctx, id| ops::untag_resource(txn, ctx, id, &tag_keys),
        )
        .await
        .map(drop)
    }

    /// ListResourceTags: the key's tags in key order, `limit` (1..50; 0:
    /// 50) at a time.
    pub async fn list_resource_tags(
        &self,
        call: &Call,
        key_id: &str,
        limit: usize,
        page_token: &str,
    ) -> Result<Page<(String, String)>, Error> {
        let limit = match limit {
            0 => MAX_TAGS_PAGE,
            n => n.min(MAX_TAGS_PAGE),
        };
        let key = self
            .key_read(call, actions::LIST_RESOURCE_TAGS, key_id)
            .await?;
        let account = self.scope_of(call).account;
        let id = key.key_id.to_string();
        let listing = Listing {
            account: &account,
            kind: "tags",
            filter: &id,
        };
        let after = match page_token {
            "" => None,
            token => Some(self.tokens.open(&listing, token)?),
        };
        let mut tags: Vec<(String, String)> = key
            .tags
            .into_iter()
            .filter(|(k, _)| after.as_deref().is_none_or(|after| k.as_str() > after))
            .take(limit + 1)
            .collect();
        let more = tags.len() > limit;
        tags.truncate(limit);
        let next_page_token = match tags.last() {
            Some((last, _)) if more => self.tokens.issue(&listing, last),
            _ => String::new(),
        };
        Ok(Page {
            items: tags,
            next_page_token,
        })
    }

    /// GetKeyPolicy: the key's policy as given, or AWS's default one.
    pub async fn get_key_policy(
        &self,
        call: &Call,
        key_id: &str,
        policy_name: &str,
    ) -> Result<String, Error> {
        key_details::check_policy_name(policy_name)?;
        let key = self.key_read(call, actions::GET_KEY_POLICY, key_id).await?;
        Ok(key
            .policy
            .unwrap_or_else(|| key_details::default_policy(&self.scope_of(call))))
    }

    /// PutKeyPolicy: `policy` (a JSON object, at most 32 KiB) becomes the
    /// key's policy.
    pub async fn put_key_policy(
        &self,
        call: &Call,
        key_id: &str,
        policy_name: &str,
        policy: String,
    ) -> Result<(), Error> {
        key_details::check_policy_name(policy_name)?;
        key_details::check_policy(&policy)?;
        let extra = policy.clone();
        self.change_key(
            call,
            actions::PUT_KEY_POLICY,
            key_id,
            "",
            &extra,
            move |txn, ctx, id| ops::put_key_policy(txn, ctx, id, &policy),
        )
        .await
        .map(drop)
    }

    /// ListKeyPolicies: a key has one policy, `default`.
    pub async fn list_key_policies(
        &self,
        call: &Call,
        key_id: &str,
    ) -> Result<Vec<&'static str>, Error> {
        self.key_read(call, actions::LIST_KEY_POLICIES, key_id)
            .await?;
        Ok(vec![DEFAULT_POLICY_NAME])
    }

    /// UpdateKeyDescription.
    pub async fn update_key_description(
        &self,
        call: &Call,
        key_id: &str,
        description: String,
    ) -> Result<(), Error> {
        let extra = description.clone();
        self.change_key(
            call,
            actions::UPDATE_KEY_DESCRIPTION,
            key_id,
            "",
            &extra,
            move |txn, ctx, id| ops::update_key_description(txn, ctx, id, &description),
        )
        .await
        .map(drop)
    }
}
