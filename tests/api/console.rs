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
        let files = tempfile::tempdir().unwrap();
        let auth = files.path().join("auth.toml");
        std::fs::write(&auth, auth_file()).unwrap();
        let server = TestServer::start_configured(move |c| {
            c.auth_file = Some(auth);
            c.console_listen = Some("127.0.0.1:0".parse().unwrap());
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

    /// Logs in with `token`: the session cookie (`name=value`).
    async fn login(&self, token: &str) -> Result<String, HttpReply> {
        let form = self.call("GET", "/login", &[], "").await;
        assert_eq!(form.status, 200);
        let pending = cookie(&form);
        let csrf = csrf(&text(&form));
        let reply = self
            .call(
                "POST",
                "/login",
                &[
                    ("Cookie", &pending),
                    ("Content-Type", "application/x-www-form-urlencoded"),
                ],
                &format!("csrf={csrf}&token={token}"),
            )
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
    let page = console.call("GET", "/", &[("Cookie", &session)], "").await;
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
    let alias = console
        .call("GET", "/alias?name=alias/app", &[("Cookie", &session)], "")
        .await;
    let token = csrf(&text(&alias));
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    for body in [
        format!("alias_name=alias/app&target_key_id={other}"),
        format!("csrf=x{token}&alias_name=alias/app&target_key_id={other}"),
    ] {
        let reply = console
            .call(
                "POST",
                "/alias/update",
                &[("Cookie", &session), form],
                &body,
            )
            .await;
        assert_eq!(reply.status, 403, "{}", text(&reply));
    }
    assert_eq!(console.target_of("alias/app").await, hostile);
    // With it, the change is made.
    let reply = console
        .call(
            "POST",
            "/alias/update",
            &[("Cookie", &session), form],
            &format!("csrf={token}&alias_name=alias/app&target_key_id={other}"),
        )
        .await;
    assert_eq!(reply.status, 303, "{}", text(&reply));
    assert_eq!(console.target_of("alias/app").await, other);
    // The etag the page showed is stale now: refused with the application's
    // error, and nothing changes.
    let shown = etag(&text(&alias));
    let reply = console
        .call(
            "POST",
            "/alias/update",
            &[("Cookie", &session), form],
            &format!("csrf={token}&alias_name=alias/app&target_key_id={hostile}&etag={shown}"),
        )
        .await;
    assert_eq!(reply.status, 409, "{}", text(&reply));
    assert!(text(&reply).contains("ETAG_MISMATCH"), "{}", text(&reply));
    assert_eq!(console.target_of("alias/app").await, other);

    // Logging out ends the session.
    let reply = console
        .call(
            "POST",
            "/logout",
            &[("Cookie", &session), form],
            &format!("csrf={token}"),
        )
        .await;
    assert_eq!(reply.status, 303);
    let reply = console.call("GET", "/", &[("Cookie", &session)], "").await;
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
