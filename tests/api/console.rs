//! The web console (`--console-listen`): its security over plain HTTP
//! (login, session cookie, CSRF, escaping), and a real headless Chromium
//! (Debian's `chromium`, driven by playwright-core from npm, pinned in
//! `tests/console/package.json` and installed under target/) that logs
//! in, sees a change made by the CLI arrive live, re-points an alias
//! through the form, and is refused as a principal without the policy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use aliasd::pb;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::common::*;
use crate::metrics::sample;

const OPERATOR_TOKEN: &str = "console-operator-token";
const VIEWER_TOKEN: &str = "console-viewer-token";

/// The operator may do anything; the viewer may read, and change only
/// `alias/sandbox-*` aliases (so it is offered the forms, and refused on
/// other aliases).
fn auth_file() -> String {
    format!(
        r#"
[[principals]]
name = "operator"
account = "{ACCOUNT}"
token_sha256 = "{}"
[[principals.statements]]
actions = ["kms:*", "kms:ListAuditEvents"]
resources = ["*"]

[[principals]]
name = "viewer"
account = "{ACCOUNT}"
token_sha256 = "{}"
[[principals.statements]]
actions = ["kms:List*", "kms:Describe*", "kms:GetAlias", "kms:WatchAliases"]
resources = ["*"]
[[principals.statements]]
actions = ["kms:UpdateAlias"]
resources = ["alias/sandbox-*"]
"#,
        token_sha256(OPERATOR_TOKEN),
        token_sha256(VIEWER_TOKEN)
    )
}

struct Console {
    server: TestServer,
    _files: tempfile::TempDir,
}

impl Console {
    async fn start() -> Console {
        Console::start_with(|_| {}).await
    }

    /// [`Console::start`] with more settings.
    async fn start_with(tweak: impl FnOnce(&mut aliasd::server::config::ServeConfig)) -> Console {
        let files = tempfile::tempdir().unwrap();
        let auth = files.path().join("auth.toml");
        std::fs::write(&auth, auth_file()).unwrap();
        let server = TestServer::start_configured(move |c| {
            c.auth_file = Some(auth);
            c.console_listen = Some("127.0.0.1:0".parse().unwrap());
            tweak(c);
        })
        .await;
        Console {
            server,
            _files: files,
        }
    }

    fn url(&self) -> String {
        let addr = self.server.running.as_ref().unwrap().console_addr;
        format!("http://{}", addr.expect("started with --console-listen"))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> HttpReply {
        let addr = self.server.running.as_ref().unwrap().console_addr.unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        http_exchange(stream, method, path, headers, body.as_bytes()).await
    }

    async fn key(&self, description: &str) -> String {
        self.server
            .keys
            .clone()
            .create_key(bearer(
                OPERATOR_TOKEN,
                pb::CreateKeyRequest {
                    description: description.into(),
                    ..Default::default()
                },
            ))
            .await
            .expect("CreateKey")
            .into_inner()
            .key
            .unwrap()
            .key_id
    }

    async fn alias(&self, name: &str, target: &str) {
        self.server
            .aliases
            .clone()
            .create_alias(bearer(
                OPERATOR_TOKEN,
                pb::CreateAliasRequest {
                    alias_name: name.into(),
                    target_key_id: target.into(),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("CreateAlias");
    }

    async fn target_of(&self, name: &str) -> String {
        self.server
            .aliases
            .clone()
            .get_alias(bearer(
                OPERATOR_TOKEN,
                pb::GetAliasRequest {
                    alias_name: name.into(),
                },
            ))
            .await
            .expect("GetAlias")
            .into_inner()
            .alias
            .unwrap()
            .target_key_id
    }

    /// A console with keys "first" and "second", `alias/app` on the first,
    /// an operator's session, and the alias's page: (console, the second
    /// key's id, the session, the page).
    async fn alias_app_page() -> (Console, String, String, String) {
        let console = Console::start().await;
        let first = console.key("first").await;
        let second = console.key("second").await;
        console.alias("alias/app", &first).await;
        let session = console.login(OPERATOR_TOKEN).await.unwrap();
        let page = text(&console.get("/alias?name=alias/app", &session).await);
        (console, second, session, page)
    }

    /// GETs `path` with the `session` cookie.
    async fn get(&self, path: &str, session: &str) -> HttpReply {
        self.call("GET", path, &[("Cookie", session)], "").await
    }

    /// POSTs a form with the `session` cookie.
    async fn post_form(&self, path: &str, session: &str, body: &str) -> HttpReply {
        self.call("POST", path, &[("Cookie", session), FORM], body)
            .await
    }

    /// Logs in with `token`: the session cookie (`name=value`).
    async fn login(&self, token: &str) -> Result<String, HttpReply> {
        let form = self.call("GET", "/login", &[], "").await;
        assert_eq!(form.status, 200);
        let pending = cookie(&form);
        let csrf = csrf(&text(&form));
        let reply = self
            .post_form("/login", &pending, &format!("csrf={csrf}&token={token}"))
            .await;
        match reply.status {
            303 => {
                assert_eq!(reply.headers["location"], "/");
                let session = cookie(&reply);
                assert_ne!(session, pending, "a login gets a new session id");
                Ok(session)
            }
            _ => Err(reply),
        }
    }
}

fn text(reply: &HttpReply) -> String {
    String::from_utf8_lossy(&reply.body).into_owned()
}

/// The `name=value` of the session cookie a reply sets, having checked its
/// attributes.
fn cookie(reply: &HttpReply) -> String {
    let set = reply
        .headers
        .get("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie in {:?}", reply.headers));
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_owned()
}

/// The value of the first hidden field `name` of a page.
fn hidden_field(page: &str, name: &str) -> String {
    let field = format!(r#"name="{name}" value=""#);
    let start = page
        .find(&field)
        .unwrap_or_else(|| panic!("no {name} field in {page}"))
        + field.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

/// The CSRF token of the first form of a page.
fn csrf(page: &str) -> String {
    hidden_field(page, "csrf")
}

/// The etag the first form of a page carries.
fn etag(page: &str) -> String {
    hidden_field(page, "etag")
}

/// The hidden fields (name, value) of the form `id` of a page.
fn form_fields(page: &str, id: &str) -> Vec<(String, String)> {
    let start = page
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no form {id} in {page}"));
    let form = &page[start..start + page[start..].find("</form>").unwrap()];
    let quoted = |text: &str, after: &str| -> String {
        let from = text.find(after).unwrap() + after.len();
        text[from..from + text[from..].find('"').unwrap()].to_owned()
    };
    form.split(r#"<input type="hidden" "#)
        .skip(1)
        .map(|input| (quoted(input, r#"name=""#), quoted(input, r#"value=""#)))
        .collect()
}

/// `fields` and `more` as a form body.
fn form_body(fields: &[(String, String)], more: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    fields
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .chain(more.iter().copied())
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn field_of<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
}

const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn the_console_needs_a_login_and_a_csrf_token_and_escapes_what_it_shows() {
    let console = Console::start().await;
    let hostile = console.key("<script>alert('x')</script>").await;
    let other = console.key("other").await;
    console.alias("alias/app", &hostile).await;

    // No cookie: to the login form.
    let reply = console.call("GET", "/", &[], "").await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.headers["location"], "/login");

    // A wrong token is refused with the application's message; it is not
    // echoed.
    let refused = console.login("not-a-token").await.unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(
        text(&refused).contains("UNAUTHENTICATED"),
        "{}",
        text(&refused)
    );
    assert!(!text(&refused).contains("not-a-token"));

    // The right token: a session, and the keys with their aliases, the
    // description escaped.
    let session = console.login(OPERATOR_TOKEN).await.unwrap();
    let page = console.get("/", &session).await;
    assert_eq!(page.status, 200);
    let html = text(&page);
    assert!(
        html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains(r#"data-alias="alias/app""#), "{html}");
    assert!(!html.contains(OPERATOR_TOKEN));
    assert!(page.headers["content-security-policy"].contains("script-src 'none'"));

    // A form without the session's CSRF token, or with another, is 403 and
    // changes nothing.
    let alias = console.get("/alias?name=alias/app", &session).await;
    let token = csrf(&text(&alias));
    for body in [
        format!("alias_name=alias/app&target_key_id={other}"),
        format!("csrf=x{token}&alias_name=alias/app&target_key_id={other}"),
    ] {
        let reply = console.post_form("/alias/update", &session, &body).await;
        assert_eq!(reply.status, 403, "{}", text(&reply));
    }
    assert_eq!(console.target_of("alias/app").await, hostile);
    // With it, the change is made.
    let reply = console
        .post_form(
            "/alias/update",
            &session,
            &format!("csrf={token}&alias_name=alias/app&target_key_id={other}"),
        )
        .await;
    assert_eq!(reply.status, 303, "{}", text(&reply));
    assert_eq!(console.target_of("alias/app").await, other);
    // The etag the page showed is stale now: refused with the application's
    // error, and nothing changes.
    let shown = etag(&text(&alias));
    let reply = console
        .post_form(
            "/alias/update",
            &session,
            &format!("csrf={token}&alias_name=alias/app&target_key_id={hostile}&etag={shown}"),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", text(&reply));
    assert!(text(&reply).contains("ETAG_MISMATCH"), "{}", text(&reply));
    assert_eq!(console.target_of("alias/app").await, other);

    // Logging out ends the session.
    let reply = console
        .post_form("/logout", &session, &format!("csrf={token}"))
        .await;
    assert_eq!(reply.status, 303);
    let reply = console.get("/", &session).await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.headers["location"], "/login");
}

#[tokio::test]
async fn without_an_auth_file_the_console_needs_no_login_and_is_off_unless_asked() {
    let server = TestServer::start().await;
    assert_eq!(server.running.as_ref().unwrap().console_addr, None);
    let server = TestServer::start_configured(|c| {
        c.console_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let addr = server.running.as_ref().unwrap().console_addr.unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let reply = http_exchange(stream, "GET", "/health", &[], b"").await;
    assert_eq!(reply.status, 200);
    let html = text(&reply);
    assert!(html.contains(r#"<td id="ready">ready</td>"#), "{html}");
    assert!(
        html.contains(r#"<b id="principal">anonymous</b>"#),
        "{html}"
    );
}

/// The Chromium the test drives: Debian's, installed if missing (as root),
/// else the test fails saying how to get it.
fn chromium() -> PathBuf {
    let chromium = PathBuf::from("/usr/bin/chromium");
    if chromium.exists() {
        return chromium;
    }
    let _installing = crate::python::install_lock("chromium");
    if !chromium.exists() && unsafe { libc::geteuid() } == 0 {
        let output = std::process::Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get runs");
        assert!(
            output.status.success(),
            "apt-get install chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(
        chromium.exists(),
        "this test needs Debian's chromium at /usr/bin/chromium: apt-get install -y \
         --no-install-recommends chromium (as root)"
    );
    chromium
}

/// The pinned playwright-core, installed with npm into target/ if not
/// there yet: its node_modules directory.
fn playwright() -> PathBuf {
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let _across_processes = crate::python::install_lock("console-playwright");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let wanted = std::fs::read_to_string(manifest.join("tests/console/package.json")).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-playwright");
    let modules = dir.join("node_modules");
    let marker = dir.join("installed-package.json");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str())
        && modules.join("playwright-core").exists()
    {
        return modules;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("package.json"), &wanted).unwrap();
    let output = std::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .output()
        .expect("npm runs (Node.js is needed for this test)");
    assert!(
        output.status.success() && modules.join("playwright-core").exists(),
        "npm install failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&marker, wanted).unwrap();
    modules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_chromium_an_operator_sees_a_cli_change_live_and_repoints_and_a_viewer_is_refused() {
    chromium();
    let modules = tokio::task::spawn_blocking(playwright).await.unwrap();
    let console = Console::start().await;
    let first = console.key("first").await;
    let by_cli = console.key("the CLI's").await;
    let by_form = console.key("the form's").await;
    console.alias("alias/app", &first).await;

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/drive.cjs");
    let mut driver = tokio::process::Command::new("node")
        .arg(&script)
        .args([
            &console.url(),
            shots.to_str().unwrap(),
            OPERATOR_TOKEN,
            VIEWER_TOKEN,
            "alias/app",
            &by_cli,
            &by_form,
        ])
        .env("NODE_PATH", &modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut to_driver = driver.stdin.take();
    let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let endpoint = console.server.running.as_ref().unwrap().addr.to_string();
    loop {
        // A bound on a stuck browser, not a timing assertion.
        let line = tokio::time::timeout(Duration::from_secs(180), lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the driver said nothing for 3 minutes after {said:#?}"))
            .unwrap();
        let Some(line) = line else { break };
        println!("driver: {line}");
        if line == "STREAM-LIVE" {
            let output = run_aliasd(
                &[
                    "alias",
                    "update",
                    "alias/app",
                    &by_cli,
                    "--token",
                    OPERATOR_TOKEN,
                ],
                &[("ALIASD_ENDPOINT", &endpoint)],
            )
            .await;
            assert!(
                output.status.success(),
                "aliasd alias update: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let mut stdin = to_driver.take().expect("STREAM-LIVE is said once");
            stdin.write_all(b"CHANGED\n").await.unwrap();
            stdin.flush().await.unwrap();
        }
        said.push(line);
    }
    let status = driver.wait().await.unwrap();
    assert!(status.success(), "the driver failed: {said:#?}");
    assert!(said.contains(&"PRINCIPAL operator".to_owned()), "{said:#?}");
    assert!(said.contains(&"SAW-CHANGE".to_owned()), "{said:#?}");
    assert!(said.contains(&format!("TARGET {by_form}")), "{said:#?}");
    // The form's change is the application's: the gRPC API sees it.
    assert_eq!(console.target_of("alias/app").await, by_form);
    let refused = said
        .iter()
        .find(|line| line.starts_with("REFUSED "))
        .unwrap_or_else(|| panic!("{said:#?}"));
    assert!(
        refused.contains("ACCESS_DENIED") && refused.contains("viewer"),
        "{refused}"
    );
    assert_eq!(said.last().map(String::as_str), Some("DONE"));

    let pngs: Vec<&str> = said
        .iter()
        .filter_map(|line| line.strip_prefix("SCREENSHOT "))
        .collect();
    assert_eq!(pngs.len(), 5, "{said:#?}");
    for png in pngs {
        let bytes = std::fs::read(png).unwrap();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 1000,
            "{png}"
        );
        println!("screenshot: {png}");
    }
}

#[tokio::test]
async fn each_alias_form_has_its_own_request_id_so_a_stale_delete_is_an_etag_mismatch() {
    let (console, second, session, page) = Console::alias_app_page().await;
    let update = form_fields(&page, "update-form");
    let rename = form_fields(&page, "rename-form");
    let delete = form_fields(&page, "delete-form");
    let ids = [&update, &rename, &delete].map(|form| field_of(form, "request_id").to_owned());
    assert!(
        ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2],
        "{ids:?}"
    );

    // Re-pointed through the page's form; sent twice, it changes once.
    let body = form_body(&update, &[("target_key_id", &second)]);
    for _ in 0..2 {
        let reply = console.post_form("/alias/update", &session, &body).await;
        assert_eq!(reply.status, 303, "{}", text(&reply));
    }
    assert_eq!(console.target_of("alias/app").await, second);

    // The delete form of the same (now stale) page: refused for its etag,
    // which the user can act on, not for its request_id.
    let reply = console
        .post_form("/alias/delete", &session, &form_body(&delete, &[]))
        .await;
    let html = text(&reply);
    assert_eq!(reply.status, 409, "{html}");
    assert!(html.contains("ETAG_MISMATCH"), "{html}");
    assert!(!html.contains("REQUEST_ID_REUSED"), "{html}");
    assert_eq!(console.target_of("alias/app").await, second);
}

/// The rows of the audit page's table whose action is `action`.
fn audit_rows(page: &str, action: &str) -> Vec<String> {
    let cell = format!(r#"<td class="action">{action}</td>"#);
    page.split("<tr>")
        .filter(|row| row.contains(&cell))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn the_audit_page_shows_the_door_source_address_and_user_agent_of_each_record() {
    let (console, second, session, page) = Console::alias_app_page().await;
    let update = form_fields(&page, "update-form");
    let reply = console
        .call(
            "POST",
            "/alias/update",
            &[("Cookie", &session), FORM, ("User-Agent", "<i>agent</i>")],
            &form_body(&update, &[("target_key_id", &second)]),
        )
        .await;
    assert_eq!(reply.status, 303, "{}", text(&reply));

    let reply = console
        .call(
            "GET",
            "/audit?action=kms:UpdateAlias",
            &[("Cookie", &session)],
            "",
        )
        .await;
    let html = text(&reply);
    assert_eq!(reply.status, 200, "{html}");
    assert!(html.contains("<th>Door</th>"), "{html}");
    let rows = audit_rows(&html, "kms:UpdateAlias");
    assert_eq!(rows.len(), 1, "{html}");
    let row = &rows[0];
    assert!(row.contains(r#"<td class="door">console</td>"#), "{row}");
    assert!(
        row.contains(r#"<td class="source">127.0.0.1</td>"#),
        "{row}"
    );
    assert!(
        row.contains(r#"<td class="user-agent">&lt;i&gt;agent&lt;/i&gt;</td>"#),
        "{row}"
    );
    assert!(!html.contains("<i>agent"), "{html}");
    // The CreateAlias made over gRPC says so.
    let created = text(
        &console
            .call(
                "GET",
                "/audit?action=kms:CreateAlias",
                &[("Cookie", &session)],
                "",
            )
            .await,
    );
    let rows = audit_rows(&created, "kms:CreateAlias");
    assert_eq!(rows.len(), 1, "{created}");
    assert!(
        rows[0].contains(r#"<td class="door">grpc</td>"#),
        "{}",
        rows[0]
    );
}

#[tokio::test]
async fn a_bad_time_in_an_audit_filter_is_invalid_parameter_with_the_filters_kept() {
    let console = Console::start().await;
    let session = console.login(OPERATOR_TOKEN).await.unwrap();
    for query in ["from=yesterday", "before=%3Cb%3Eyesterday"] {
        let reply = console
            .call(
                "GET",
                &format!("/audit?principal=operator&{query}"),
                &[("Cookie", &session)],
                "",
            )
            .await;
        let html = text(&reply);
        assert_eq!(reply.status, 400, "{html}");
        assert!(html.contains("INVALID_PARAMETER"), "{html}");
        assert!(!html.contains("MALFORMED_REQUEST"), "{html}");
        // The page is the filter form, kept as given (and escaped).
        assert!(
            html.contains(r#"<input name="principal" value="operator">"#),
            "{html}"
        );
        assert!(!html.contains("<b>yesterday"), "{html}");
    }
}

#[tokio::test]
async fn the_page_of_a_missing_alias_is_404() {
    let console = Console::start().await;
    let session = console.login(OPERATOR_TOKEN).await.unwrap();
    let reply = console
        .call(
            "GET",
            "/alias?name=alias/ghost",
            &[("Cookie", &session)],
            "",
        )
        .await;
    let html = text(&reply);
    assert_eq!(reply.status, 404, "{html}");
    assert!(html.contains("ALIAS_NOT_FOUND"), "{html}");
    // The same page as ever: the frame, who is looking.
    assert!(html.contains(r#"<b id="principal">operator</b>"#), "{html}");
}

#[tokio::test]
async fn a_failed_console_login_is_audited_as_console_login() {
    let console = Console::start().await;
    let refused = console.login("not-a-token").await.unwrap_err();
    assert_eq!(refused.status, 401);
    let mut audit =
        pb::audit_service_client::AuditServiceClient::new(console.server.channel.clone());
    let list = || pb::ListAuditEventsRequest {
        principal: "unauthenticated".into(),
        ..Default::default()
    };
    // The record is written in the background.
    let mut events = Vec::new();
    for _ in 0..500 {
        events = audit
            .list_audit_events(bearer(OPERATOR_TOKEN, list()))
            .await
            .unwrap()
            .into_inner()
            .events;
        if !events.is_empty() {
            break;
        }
        // Hang guard only.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(events.len(), 1, "{events:#?}");
    let event = &events[0];
    assert_eq!(event.action, "console:Login");
    assert_eq!(event.outcome, "UNAUTHENTICATED");
    assert_eq!(event.door, "console");
    assert_eq!(event.source_address, "127.0.0.1");
}

#[tokio::test]
async fn console_calls_are_counted_under_door_console_and_their_route() {
    let console = Console::start_with(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let key = console.key("k").await;
    console.alias("alias/app", &key).await;
    let before = crate::metrics::scrape(&console.server).await;
    assert_eq!(
        sample(
            &before,
            r#"aliasd_denied_calls_total{door="console",reason="UNAUTHENTICATED"}"#
        ),
        0.0,
        "the console's refusal series exist from the start: {before}"
    );
    assert!(
        before.contains(r#"aliasd_denied_calls_total{door="console",reason="ACCESS_DENIED"} 0"#),
        "{before}"
    );

    console.login("not-a-token").await.unwrap_err();
    let operator = console.login(OPERATOR_TOKEN).await.unwrap();
    let viewer = console.login(VIEWER_TOKEN).await.unwrap();
    for (path, status) in [("/", 200), ("/alias?name=alias/ghost", 404)] {
        let reply = console.get(path, &operator).await;
        assert_eq!(reply.status, status, "{path}");
    }
    assert_eq!(console.call("GET", "/nowhere", &[], "").await.status, 404);
    // The viewer may not re-point alias/app.
    let page = text(&console.get("/alias?name=alias/app", &viewer).await);
    let update = form_fields(&page, "update-form");
    let reply = console
        .post_form(
            "/alias/update",
            &viewer,
            &form_body(&update, &[("target_key_id", &key)]),
        )
        .await;
    assert_eq!(reply.status, 403, "{}", text(&reply));

    let text = crate::metrics::scrape(&console.server).await;
    let console_calls = |method: &str, status: &str| {
        sample(
            &text,
            &format!(r#"aliasd_calls_total{{door="console",method="{method}",status="{status}"}}"#),
        )
    };
    assert_eq!(console_calls("POST /login", "401"), 1.0, "{text}");
    assert_eq!(console_calls("POST /login", "303"), 2.0, "{text}");
    assert_eq!(console_calls("GET /", "200"), 1.0, "{text}");
    assert_eq!(console_calls("GET /alias", "404"), 1.0, "{text}");
    assert_eq!(console_calls("GET /alias", "200"), 1.0, "{text}");
    assert_eq!(console_calls("POST /alias/update", "403"), 1.0, "{text}");
    for reason in ["UNAUTHENTICATED", "ACCESS_DENIED"] {
        assert_eq!(
            sample(
                &text,
                &format!(r#"aliasd_denied_calls_total{{door="console",reason="{reason}"}}"#)
            ),
            1.0,
            "{text}"
        );
    }
    assert!(
        text.contains(
            r#"aliasd_call_duration_seconds_count{door="console",method="POST /alias/update"} 1"#
        ),
        "{text}"
    );
    // Bounded labels: no login form, no unknown path, no alias name.
    let console_lines: Vec<&str> = text
        .lines()
        .filter(|line| line.contains(r#"door="console""#))
        .collect();
    for absent in ["GET /login", "nowhere", "ghost", "alias/app"] {
        assert!(
            console_lines.iter().all(|line| !line.contains(absent)),
            "{absent}: {console_lines:#?}"
        );
    }
}

#[tokio::test]
async fn server_info_names_the_console_among_the_features_when_it_listens() {
    let console = Console::start().await;
    let mut diagnostics = pb::diagnostics_service_client::DiagnosticsServiceClient::new(
        console.server.channel.clone(),
    );
    let features = diagnostics
        .get_server_info(bearer(OPERATOR_TOKEN, pb::GetServerInfoRequest {}))
        .await
        .unwrap()
        .into_inner()
        .features;
    assert_eq!(features, ["auth", "console"]);
}

/// The live stream checks the session with every event: after a logout,
/// the next change ends the stream with a `failure` event and is not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_ends_when_its_session_does() {
    let console = Console::start().await;
    let key = console.key("streamed").await;
    let session = console.login(OPERATOR_TOKEN).await.expect("logs in");
    let page = console.get("/", &session).await;
    let token = csrf(&text(&page));

    let addr = console
        .server
        .running
        .as_ref()
        .unwrap()
        .console_addr
        .unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    writer
        .write_all(
            format!(
                "GET /events HTTP/1.1\r\nHost: localhost\r\nCookie: {session}\r\n\
                 Accept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut lines = BufReader::new(reader).lines();
    let mut seen = String::new();
    async fn next_line(
        lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    ) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("a line within 30 s (hang guard)")
            .unwrap()
    }
    // The answer's head: the watch is open once it has come.
    let status = next_line(&mut lines).await.expect("a status line");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    while !next_line(&mut lines).await.expect("headers").is_empty() {}
    // The first change arrives while the session stands.
    console.alias("alias/before", &key).await;
    while !seen.contains("alias/before") {
        seen.push_str(&next_line(&mut lines).await.expect("the stream goes on"));
        seen.push('\n');
    }

    let reply = console
        .post_form("/logout", &session, &format!("csrf={token}"))
        .await;
    assert_eq!(reply.status, 303);
    console.alias("alias/after", &key).await;
    let mut rest = String::new();
    while let Some(line) = next_line(&mut lines).await {
        rest.push_str(&line);
        rest.push('\n');
        if rest.contains("session ended") {
            break;
        }
    }
    assert!(rest.contains("event: failure"), "{rest}");
    assert!(rest.contains("UNAUTHENTICATED"), "{rest}");
    assert!(!rest.contains("alias/after"), "{rest}");
}

/// A login stands only while the auth file admits the token it was made
/// with: rotating the principal's token (and reloading) ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_a_token_ends_the_console_sessions_made_with_it() {
    let console = Console::start().await;
    let session = console.login(OPERATOR_TOKEN).await.expect("logs in");
    let page = console.get("/", &session).await;
    assert_eq!(page.status, 200);

    // The operator gets a new token; the old one is gone from the file.
    let auth = console._files.path().join("auth.toml");
    let rotated = auth_file().replace(
        &token_sha256(OPERATOR_TOKEN),
        &token_sha256("console-operator-token-2"),
    );
    std::fs::write(&auth, rotated).unwrap();
    // SAFETY: kill on our own process id, with a signal the server has
    // taken over (its reload task re-reads the auth file).
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    // The reload has happened once the old token is refused at the gRPC
    // door (hang guard: 500 × 20 ms).
    let mut reloaded = false;
    for _ in 0..500 {
        let old = console
            .server
            .keys
            .clone()
            .list_keys(bearer(OPERATOR_TOKEN, pb::ListKeysRequest::default()))
            .await;
        if matches!(&old, Err(status) if status.code() == tonic::Code::Unauthenticated) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reloaded, "the auth file was not reloaded");

    let reply = console.get("/", &session).await;
    assert_eq!(reply.status, 303, "{}", text(&reply));
    assert_eq!(reply.headers["location"], "/login");
    // The new token logs in.
    console
        .login("console-operator-token-2")
        .await
        .expect("the new token logs in");
}
