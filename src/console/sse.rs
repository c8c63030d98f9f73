//! The live change stream: a page whose small inline script follows
//! `GET /events`, server-sent events fed by WatchAliases from the revision
//! the page was rendered at (so nothing committed after the page is
//! missed, however late the browser connects), each event carrying its
//! revision as its id (a reconnecting browser resumes after the last).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use bytes::Bytes;
use http::{header, Response, StatusCode};
use tokio_stream::StreamExt;

use super::html::{self, error_box};
use super::{reply_with, Console};
use crate::domain::policy::actions;
use crate::domain::time::rfc3339;
use crate::domain::Error;
use crate::store::watch::WatchItem;

/// How long an idle stream waits before it sends a comment, so that
/// proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The script of the stream page: it appends a row per change, with
/// text (never markup) taken from the event.
const SCRIPT: &str = r#"
const rows = document.getElementById('changes');
const state = document.getElementById('stream-state');
const source = new EventSource('/events?after=' + rows.dataset.after);
source.onopen = () => { state.textContent = 'live'; state.dataset.state = 'live'; };
source.onerror = () => { state.textContent = 'reconnecting'; state.dataset.state = 'reconnecting'; };
source.addEventListener('change', (message) => {
  const change = JSON.parse(message.data);
  const row = rows.insertRow(1);
  row.dataset.revision = change.revision;
  row.dataset.alias = change.alias_name;
  row.dataset.target = change.target_key_id;
  for (const text of [change.revision, change.time, change.kind, change.alias_name, change.target_key_id, change.summary]) {
    row.insertCell().textContent = text;
  }
});
source.addEventListener('failure', (message) => {
  const failure = JSON.parse(message.data);
  state.textContent = 'ended: ' + failure.reason + ': ' + failure.message;
  state.dataset.state = 'ended';
  source.close();
});
"#;

/// `GET /stream`: the page.
pub async fn page(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, _) = request.into_parts();
    let visit = match console.visit(&parts, Some(actions::WATCH_ALIASES)) {
        Ok(visit) => visit,
        Err(response) => return *response,
    };
    let app = &console.app;
    // The revision to follow from: ListAliases's, read now.
    let body = match app.list_aliases(&visit.call, "", 1, "").await {
        Ok(listed) => {
            let nonce = uuid::Uuid::new_v4().simple().to_string();
            let body = format!(
                r#"<p>Changes to the account's aliases after revision {after}, as they commit: <b id="stream-state" data-state="connecting">connecting</b></p>
<table id="changes" data-after="{after}"><tr><th>Revision</th><th>Time</th><th>Change</th><th>Alias</th><th>Target key</th><th></th></tr></table>
<script nonce="{nonce}">{SCRIPT}</script>"#,
                after = listed.revision,
            );
            (body, Some(nonce))
        }
        Err(error) => (error_box(&error), None),
    };
    let account = app.scope_of(&visit.call).account;
    let html = html::page("Live changes", Some(&visit.viewer(&account)), &body.0);
    reply_with(StatusCode::OK, html, visit.set_cookie, body.1.as_deref())
}

/// One server-sent event.
fn event(name: &str, id: Option<u64>, data: &serde_json::Value) -> Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: {name}\ndata: {data}\n\n"))
}

fn failure(error: &Error) -> Bytes {
    event(
        "failure",
        None,
        &serde_json::json!({"reason": error.reason.as_str(), "message": error.message}),
    )
}

/// `GET /events?after=REVISION`: the changes after REVISION (or after the
/// `Last-Event-ID` a reconnecting browser sends), as `change` events; a
/// watch that ends with an error sends it as a `failure` event.
pub async fn events(State(console): State<Console>, request: Request) -> Response<Body> {
    let (parts, _) = request.into_parts();
    let visit = match console.visit(&parts, Some(actions::WATCH_ALIASES)) {
        Ok(visit) => visit,
        Err(_) => {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .body(Body::from("log in to the console first\n"))
                .unwrap_or_default()
        }
    };
    let app = console.app.clone();
    let after = parts
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| html::fields(parts.uri.query().unwrap_or_default()).remove("after"))
        .and_then(|text| text.trim().parse::<u64>().ok());
    let stream: std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Bytes> + Send>> =
        match app.watch_aliases(&visit.call, "", after, None, false).await {
            Ok(watch) => Box::pin(
                watch
                    .map(|item| match item {
                        Ok(WatchItem::Change(change)) => event(
                            "change",
                            Some(change.revision),
                            &serde_json::json!({
                                "revision": change.revision,
                                "time": rfc3339(change.time),
                                "kind": super::pages::kind_of(&change),
                                "alias_name": change.alias.name.as_str(),
                                "target_key_id": change.alias.target.as_str(),
                                "summary": super::pages::change_summary(&change),
                            }),
                        ),
                        Ok(WatchItem::Progress(revision)) => {
                            Bytes::from(format!("id: {revision}\n: progress\n\n"))
                        }
                        Err(error) => failure(&error),
                    })
                    .timeout_repeating(tokio::time::interval_at(
                        tokio::time::Instant::now() + KEEP_ALIVE,
                        KEEP_ALIVE,
                    ))
                    .map(|item| item.unwrap_or_else(|_| Bytes::from_static(b": keep-alive\n\n"))),
            ),
            Err(error) => Box::pin(tokio_stream::once(failure(&error))),
        };
    // The session is checked again with every event and keep-alive: a
    // logout, an expiry or an auth file that no longer admits the login
    // ends the stream (with a last `failure` event), as it ends every page.
    let session = visit.session.id.clone();
    let mut ended = false;
    let stream = stream
        .map(move |item| {
            if ended {
                return None;
            }
            let admitted = console
                .sessions
                .get(&session)
                .is_some_and(|s| matches!(console.admit_session(&parts, &s, None), Ok(Some(_))));
            if admitted {
                return Some(item);
            }
            ended = true;
            Some(failure(&Error::new(
                crate::domain::Reason::UNAUTHENTICATED,
                "The console session ended; log in again.",
            )))
        })
        .take_while(Option::is_some)
        .map(|item| item.unwrap_or_default());
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream.map(Ok::<_, Infallible>)))
        .unwrap_or_default()
}
