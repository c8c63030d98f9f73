//! The console's pages: login and logout, keys and aliases, one alias
//! (its details, history and forms), the audit log, health, and the alias
//! changes the forms send.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Request, State};
use http::{Response, StatusCode};

use super::html::{self, error_box, escape, notice, query_value};
use super::session::{self, Holder};
use super::{form, refused, reply, reply_with, see_other, status_of, Console, Visit};
use crate::app::{AuditQuery, Credentials};
use crate::domain::alias::ChangeKind;
use crate::domain::policy::actions;
use crate::domain::time::{parse_rfc3339, rfc3339};
use crate::domain::{AliasEvent, Error, Reason};

/// Rows per page of each listing.
const PAGE_SIZE: i32 = 100;

/// The action a refused login is audited under: a step of the console's
/// own, named as the server's own actions are (`aliasd:...`), not an API
/// action (no policy grants or needs it).
pub const LOGIN_ACTION: &str = "console:Login";

/// A query string's fields.
fn query(parts: &http::request::Parts) -> HashMap<String, String> {
    html::fields(parts.uri.query().unwrap_or_default())
}

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> &'a str {
    fields.get(name).map(String::as_str).unwrap_or_default()
}

/// A page for `visit`, titled `title`: 200, or, for a page whose subject
/// the application refused with `refusal` (a missing alias, a bad filter),
/// that refusal's status, with the same body.
fn visited(
    console: &Console,
    visit: Visit,
    title: &str,
    body: &str,
    refusal: Option<&Error>,
) -> Response<Body> {
    let account = console.app.scope_of(&visit.call).account;
    let page = html::page(title, Some(&visit.viewer(&account)), body);
    match refusal {
        None => reply_with(StatusCode::OK, page, visit.set_cookie, None),
        Some(error) => refused(
            error,
            reply_with(status_of(error), page, visit.set_cookie, None),
        ),
    }
}

/// The hidden fields every form of a session carries: its CSRF token, and
/// a request_id of its own (that form sent twice changes things once;
/// another form on the same page is another request). Called once per
/// form.
fn hidden(visit: &Visit) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}"><input type="hidden" name="request_id" value="{}">"#,
        escape(&visit.session.csrf),
        uuid::Uuid::new_v4()
    )
}

/// `GET /login`: the token form (a server without an auth file needs none).
pub async fn login_form(State(console): State<Console>) -> Response<Body> {
    if console.app.authenticator.is_none() {
        return see_other("/", None);
    }
    login_page(&console, StatusCode::OK, None)
}

fn login_page(console: &Console, status: StatusCode, error: Option<&Error>) -> Response<Body> {
    let pending = console.sessions.open(Holder::Pending);
    let body = format!(
        r#"{}<form method="post" action="/login">
<input type="hidden" name="csrf" value="{}">
<label>Bearer token <input type="password" name="token" id="token" autocomplete="off" required></label>
<button type="submit" id="login">Log in</button></form>
<p>The token of a principal in the server's auth file. A client certificate that names a principal logs in without one.</p>"#,
        error.map(error_box).unwrap_or_default(),
        escape(&pending.csrf)
    );
    reply_with(
        status,
        html::page("Log in", None, &body),
        Some(session::set_cookie(&pending, console.secure)),
        None,
    )
}

/// `POST /login`: the token names a principal, whose new session replaces
/// the login form's.
pub async fn login(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let fields = match form(body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let pending = session::cookie_id(&parts.headers).and_then(|id| console.sessions.get(&id));
    let Some(pending) = pending.filter(|s| session::same_token(field(&fields, "csrf"), &s.csrf))
    else {
        return super::forbidden_form();
    };
    if console.app.authenticator.is_none() {
        return see_other("/", None);
    }
    let token = field(&fields, "token").trim();
    let credentials = Credentials {
        bearer: Some(Ok(token.to_owned())),
        ..Credentials::default()
    };
    let admitted = console.app.admit_login(
        &credentials,
        LOGIN_ACTION,
        &Console::origin(&parts),
        &Console::x_request_id(&parts),
    );
    match admitted {
        Ok(caller) => {
            console.sessions.close(&pending.id);
            let session = console.sessions.open(Holder::Login(
                caller.name().to_owned(),
                crate::app::admission::auth::token_sha256(token),
            ));
            tracing::info!(principal = caller.name(), "console login");
            see_other("/", Some(session::set_cookie(&session, console.secure)))
        }
        Err(error) => {
            console.sessions.close(&pending.id);
            refused(
                &error,
                login_page(&console, status_of(&error), Some(&error)),
            )
        }
    }
}

/// `POST /logout`: the session ends.
pub async fn logout(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let fields = match form(body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let session = session::cookie_id(&parts.headers).and_then(|id| console.sessions.get(&id));
    match session.filter(|s| session::same_token(field(&fields, "csrf"), &s.csrf)) {
        Some(session) => {
            console.sessions.close(&session.id);
            see_other("/login", Some(session::clear_cookie(console.secure)))
        }
        None => super::forbidden_form(),
    }
}

/// A link to the next page of a listing, keeping the other parameters.
fn next_link(path: &str, params: &[(&str, &str)], token_name: &str, token: &str) -> String {
    if token.is_empty() {
        return String::new();
    }
    let mut href = format!("{path}?{token_name}={}", query_value(token));
    for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(href, "&{name}={}", query_value(value));
    }
    format!(r#"<p><a href="{}">Next page</a></p>"#, escape(&href))
}

fn alias_link(name: &str) -> String {
    format!(
        r#"<a href="/alias?name={}">{}</a>"#,
        escape(&query_value(name)),
        escape(name)
    )
}

/// What a `done=` parameter reports (only these words are shown).
fn done_notice(done: &str) -> String {
    match done {
        "created" => notice("Alias created."),
        "updated" => notice("Alias re-pointed."),
        "renamed" => notice("Alias renamed."),
        "deleted" => notice("Alias deleted."),
        _ => String::new(),
    }
}

/// `GET /`: the account's keys with their aliases, and its aliases with
/// their etags.
pub async fn index(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, _) = request.into_parts();
    let visit = match console.visit(&parts, Some(actions::LIST_KEYS)) {
        Ok(visit) => visit,
        Err(response) => return *response,
    };
    let q = query(&parts);
    let app = &console.app;
    let mut body = done_notice(field(&q, "done"));

    body.push_str("<h2>Keys</h2>");
    match app
        .list_keys_with_aliases(&visit.call, PAGE_SIZE, field(&q, "keys_page"))
        .await
    {
        Ok((page, aliases)) => {
            body.push_str(
                r#"<table id="keys"><tr><th>Key id</th><th>Description</th><th>Spec</th><th>Usage</th><th>State</th><th>Manager</th><th>Aliases</th></tr>"#,
            );
            for (key, names) in page.items.iter().zip(&aliases) {
                let names: Vec<String> = names.iter().map(|n| alias_link(n.as_str())).collect();
                let _ = write!(
                    body,
                    r#"<tr data-key="{id}"><td><code>{id}</code></td><td class="description">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    escape(&key.description),
                    key.key_spec.as_str(),
                    key.key_usage.as_str(),
                    key.key_state.as_str(),
                    key.key_manager.as_str(),
                    names.join(" "),
                    id = escape(key.key_id.as_str()),
                );
            }
            body.push_str("</table>");
            body.push_str(&next_link("/", &[], "keys_page", &page.next_page_token));
        }
        Err(error) => body.push_str(&error_box(&error)),
    }

    body.push_str("<h2>Aliases</h2>");
    match app
        .list_aliases(&visit.call, "", PAGE_SIZE, field(&q, "aliases_page"))
        .await
    {
        Ok(listed) => {
            let _ = write!(
                body,
                r#"<p>At revision <span id="revision">{}</span>.</p><table id="aliases"><tr><th>Alias</th><th>Target key</th><th>Etag</th><th>Last updated</th></tr>"#,
                listed.revision
            );
            for alias in &listed.page.items {
                let _ = write!(
                    body,
                    r#"<tr data-alias="{}"><td>{}</td><td class="target"><code>{}</code></td><td><code>{}</code></td><td>{}</td></tr>"#,
                    escape(alias.name.as_str()),
                    alias_link(alias.name.as_str()),
                    escape(alias.target.as_str()),
                    escape(&alias.etag),
                    rfc3339(alias.last_updated_time),
                );
            }
            body.push_str("</table>");
            body.push_str(&next_link(
                "/",
                &[],
                "aliases_page",
                &listed.page.next_page_token,
            ));
        }
        Err(error) => body.push_str(&error_box(&error)),
    }

    if visit.may(actions::CREATE_ALIAS) {
        let _ = write!(
            body,
            r#"<h2>Create an alias</h2><form method="post" action="/alias/create" id="create-form">{}
<label>Alias name <input name="alias_name" id="create-name" placeholder="alias/..." required></label>
<label>Target key id <input name="target_key_id" id="create-target" required></label>
<button type="submit" id="create">Create</button></form>"#,
            hidden(&visit)
        );
    }
    // A partly refused page (keys but no aliases, say) is still a page: 200.
    visited(&console, visit, "Keys and aliases", &body, None)
}

fn kind_name(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Created => "CREATED",
        ChangeKind::Updated => "UPDATED",
        ChangeKind::Deleted => "DELETED",
        ChangeKind::Renamed => "RENAMED",
    }
}

/// What a change did, in words.
pub(super) fn change_summary(event: &AliasEvent) -> String {
    match (event.kind, &event.previous_name, &event.previous_target) {
        (ChangeKind::Renamed, Some(previous), _) => {
            format!("renamed from {}", previous.as_str())
        }
        (ChangeKind::Updated, _, Some(previous)) => {
            format!("re-pointed from {}", previous.as_str())
        }
        _ => String::new(),
    }
}

pub(super) fn kind_of(event: &AliasEvent) -> &'static str {
    kind_name(event.kind)
}

/// `GET /alias?name=`: one alias, its history, and (for a principal who
/// may change aliases) its forms.
pub async fn alias(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, _) = request.into_parts();
    let visit = match console.visit(&parts, Some(actions::GET_ALIAS)) {
        Ok(visit) => visit,
        Err(response) => return *response,
    };
    let q = query(&parts);
    let name = field(&q, "name");
    let app = &console.app;
    let mut body = done_notice(field(&q, "done"));
    let got = app.get_alias(&visit.call, name).await;
    match &got {
        Ok(alias) => {
            let scope = app.scope_of(&visit.call);
            let _ = write!(
                body,
                r#"<table id="alias"><tr><th>Name</th><td id="alias-name">{}</td></tr><tr><th>ARN</th><td><code>{}</code></td></tr>
<tr><th>Target key</th><td id="alias-target"><code>{}</code></td></tr><tr><th>Etag</th><td id="alias-etag"><code>{}</code></td></tr>
<tr><th>Created</th><td>{}</td></tr><tr><th>Last updated</th><td>{}</td></tr></table>"#,
                escape(alias.name.as_str()),
                escape(&scope.alias_arn(&alias.name)),
                escape(alias.target.as_str()),
                escape(&alias.etag),
                rfc3339(alias.creation_time),
                rfc3339(alias.last_updated_time),
            );
            // Each form's own hidden fields: the alias and the etag shown, and
            // its own request_id.
            let kept = || {
                format!(
                    r#"{}<input type="hidden" name="alias_name" value="{}"><input type="hidden" name="etag" value="{}">"#,
                    hidden(&visit),
                    escape(alias.name.as_str()),
                    escape(&alias.etag)
                )
            };
            if visit.may(actions::UPDATE_ALIAS) {
                let _ = write!(
                    body,
                    r#"<fieldset><legend>Re-point</legend><form method="post" action="/alias/update" id="update-form">{}
<label>New target key id <input name="target_key_id" id="update-target" required></label>
<button type="submit" id="update">Re-point</button></form></fieldset>"#,
                    kept()
                );
            }
            if visit.may(actions::RENAME_ALIAS) {
                let _ = write!(
                    body,
                    r#"<fieldset><legend>Rename</legend><form method="post" action="/alias/rename" id="rename-form">{}
<label>New name <input name="new_alias_name" id="rename-name" placeholder="alias/..." required></label>
<button type="submit" id="rename">Rename</button></form></fieldset>"#,
                    kept()
                );
            }
            if visit.may(actions::DELETE_ALIAS) {
                let _ = write!(
                    body,
                    r#"<fieldset><legend>Delete</legend><form method="post" action="/alias/delete" id="delete-form">{}
<button type="submit" id="delete">Delete this alias</button></form></fieldset>"#,
                    kept()
                );
            }
        }
        Err(error) => body.push_str(&error_box(error)),
    }
    body.push_str("<h2>History</h2>");
    match app.alias_history(&visit.call, name).await {
        Ok(history) => {
            body.push_str(
                r#"<table id="history"><tr><th>Revision</th><th>Time</th><th>Change</th><th>Name</th><th>Target key</th><th></th></tr>"#,
            );
            for event in history.events.iter().rev() {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td></tr>"#,
                    event.revision,
                    rfc3339(event.time),
                    kind_of(event),
                    escape(event.alias.name.as_str()),
                    escape(event.alias.target.as_str()),
                    escape(&change_summary(event)),
                );
            }
            body.push_str("</table>");
            if history.truncated {
                let _ = write!(
                    body,
                    "<p>Revisions {} to {} of the retained change log; older changes are not shown.</p>",
                    history.from + 1,
                    history.to
                );
            }
        }
        Err(error) => body.push_str(&error_box(&error)),
    }
    // A missing (or refused) alias is that status, with the same page.
    visited(
        &console,
        visit,
        &format!("Alias {name}"),
        &body,
        got.as_ref().err(),
    )
}

/// The alias changes the forms send.
#[derive(Clone, Copy)]
enum Change {
    Create,
    Update,
    Rename,
    Delete,
}

pub async fn create_alias(State(console): State<Console>, request: Request) -> Response<Body> {
    change(console, request, Change::Create).await
}

pub async fn update_alias(State(console): State<Console>, request: Request) -> Response<Body> {
    change(console, request, Change::Update).await
}

pub async fn rename_alias(State(console): State<Console>, request: Request) -> Response<Body> {
    change(console, request, Change::Rename).await
}

pub async fn delete_alias(State(console): State<Console>, request: Request) -> Response<Body> {
    change(console, request, Change::Delete).await
}

/// Runs a form's change through the application; success goes to the
/// alias's page, a refusal shows the application's error.
async fn change(console: Console, request: Request, change: Change) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let fields = match form(body).await {
        Ok(fields) => fields,
        Err(response) => return response,
    };
    let action = match change {
        Change::Create => actions::CREATE_ALIAS,
        Change::Update => actions::UPDATE_ALIAS,
        Change::Rename => actions::RENAME_ALIAS,
        Change::Delete => actions::DELETE_ALIAS,
    };
    let visit = match console.visit_with_form(&parts, Some(action), &fields) {
        Ok(visit) => visit,
        Err(response) => return *response,
    };
    let (app, call) = (&console.app, &visit.call);
    let get = |name: &str| field(&fields, name).trim().to_owned();
    let (name, target, etag, request_id) = (
        get("alias_name"),
        get("target_key_id"),
        get("etag"),
        get("request_id"),
    );
    let done = match change {
        Change::Create => app
            .create_alias(call, &name, &target, &request_id)
            .await
            .map(|alias| (alias.name.to_string(), "created")),
        Change::Update => app
            .update_alias(call, &name, &target, &etag, &request_id)
            .await
            .map(|alias| (alias.name.to_string(), "updated")),
        Change::Rename => app
            .rename_alias(call, &name, &get("new_alias_name"), &etag, &request_id)
            .await
            .map(|alias| (alias.name.to_string(), "renamed")),
        Change::Delete => app
            .delete_alias(call, &name, &etag, &request_id)
            .await
            .map(|()| (String::new(), "deleted")),
    };
    match done {
        Ok((_, "deleted")) => see_other("/?done=deleted", None),
        Ok((name, done)) => see_other(
            &format!("/alias?name={}&done={done}", query_value(&name)),
            None,
        ),
        Err(error) => {
            let account = app.scope_of(call).account;
            let back = match name.as_str() {
                "" => r#"<a href="/">Back</a>"#.to_owned(),
                name => format!("Back to {}", alias_link(name)),
            };
            let body = format!("{}<p>{back}</p>", error_box(&error));
            refused(
                &error,
                reply(
                    status_of(&error),
                    html::page("Not done", Some(&visit.viewer(&account)), &body),
                ),
            )
        }
    }
}

/// `GET /audit?principal=&action=&from=&before=`: the account's audit
/// records, filtered by principal, action and time (RFC 3339, `from`
/// inclusive, `before` exclusive), each with where its call came from.
pub async fn audit(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, _) = request.into_parts();
    let visit = match console.visit(&parts, Some(actions::LIST_AUDIT_EVENTS)) {
        Ok(visit) => visit,
        Err(response) => return *response,
    };
    let q = query(&parts);
    let (principal, action, from, before) = (
        field(&q, "principal"),
        field(&q, "action"),
        field(&q, "from"),
        field(&q, "before"),
    );
    let mut body = format!(
        r#"<form method="get" action="/audit" id="audit-filters">
<label>Principal <input name="principal" value="{}"></label>
<label>Action <input name="action" value="{}" placeholder="kms:UpdateAlias"></label>
<label>From <input name="from" value="{}" placeholder="2025-01-01T00:00:00Z"></label>
<label>Before <input name="before" value="{}" placeholder="2025-12-31T00:00:00Z"></label>
<button type="submit">Filter</button></form>"#,
        escape(principal),
        escape(action),
        escape(from),
        escape(before)
    );
    // A value the listing cannot take, as ListAuditEvents refuses one.
    let time = |name: &'static str, text: &str| -> Result<Option<i64>, Error> {
        match text.trim() {
            "" => Ok(None),
            text => parse_rfc3339(text).map(Some).ok_or_else(|| {
                Error::invalid(
                    Reason::INVALID_PARAMETER,
                    name,
                    format!("{name} {text:?} is not an RFC 3339 time (2025-01-01T00:00:00Z)."),
                )
            }),
        }
    };
    let listed = match (time("from", from), time("before", before)) {
        (Ok(start), Ok(end)) => {
            console
                .app
                .list_audit_events(
                    &visit.call,
                    AuditQuery {
                        start,
                        end,
                        principal: principal.to_owned(),
                        action: action.to_owned(),
                        page_size: PAGE_SIZE,
                        page_token: field(&q, "page_token").to_owned(),
                    },
                )
                .await
        }
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    match &listed {
        Ok(page) => {
            body.push_str(
                r#"<table id="audit"><tr><th>Time</th><th>Principal</th><th>Action</th><th>Resources</th><th>Outcome</th><th>Message</th><th>Door</th><th>Source address</th><th>User agent</th><th>request_id</th><th>x-request-id</th></tr>"#,
            );
            for entry in &page.items {
                let _ = write!(
                    body,
                    r#"<tr><td>{}</td><td>{}</td><td class="action">{}</td><td>{}</td><td class="outcome">{}</td><td>{}</td><td class="door">{}</td><td class="source">{}</td><td class="user-agent">{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>"#,
                    rfc3339(entry.time),
                    escape(&entry.principal),
                    escape(&entry.action),
                    escape(&entry.resources.join(", ")),
                    escape(&entry.outcome),
                    escape(&entry.message),
                    escape(entry.origin.door),
                    escape(&entry.origin.source_address),
                    escape(&entry.origin.user_agent),
                    escape(&entry.request_id),
                    escape(&entry.x_request_id),
                );
            }
            body.push_str("</table>");
            body.push_str(&next_link(
                "/audit",
                &[
                    ("principal", principal),
                    ("action", action),
                    ("from", from),
                    ("before", before),
                ],
                "page_token",
                &page.next_page_token,
            ));
        }
        Err(error) => body.push_str(&error_box(error)),
    }
    visited(&console, visit, "Audit log", &body, listed.as_ref().err())
}

/// `GET /health`: what the probes answer (`/healthz`: the store has not
/// failed; `/readyz`: nor is the server shutting down).
pub async fn health(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, _) = request.into_parts();
    let visit = match console.visit(&parts, None) {
        Ok(visit) => visit,
        Err(response) => return *response,
    };
    let app = &console.app;
    let failure = app.store.failure();
    let shutting_down = *app.shutdown.borrow();
    let live = match &failure {
        Some(cause) => format!("store failed: {cause}; restart the server"),
        None => "ok".to_owned(),
    };
    let ready = match (&failure, shutting_down) {
        (Some(cause), _) => format!("not ready: store failed: {cause}"),
        (None, true) => "not ready: shutting down".to_owned(),
        (None, false) => "ready".to_owned(),
    };
    let body = format!(
        r#"<table id="health"><tr><th>Liveness (/healthz)</th><td id="live">{}</td></tr>
<tr><th>Readiness (/readyz)</th><td id="ready">{}</td></tr>
<tr><th>Version</th><td>aliasd {}</td></tr>
<tr><th>Authentication</th><td>{}</td></tr></table>"#,
        escape(&live),
        escape(&ready),
        env!("CARGO_PKG_VERSION"),
        match &app.authenticator {
            Some(_) => "auth file",
            None => "none (every call runs in the default account)",
        }
    );
    visited(&console, visit, "Health", &body, None)
}
