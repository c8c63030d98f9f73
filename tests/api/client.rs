//! The command-line client (`aliasd key|alias|audit|auth|completions`) run
//! as a user runs it: the real binary against a real server on a loopback
//! port, checking its output, its exit code, and the server's state after.

use std::process::Output;
use std::time::Duration;

use aliasd::pb;
use serde_json::Value;

use crate::common::{token_sha256, uuid, write_secret_file, TestServer};

/// Runs `aliasd ARGS` against `endpoint` and waits for it.
async fn run(endpoint: &str, args: &[&str]) -> Output {
    crate::common::run_aliasd(args, &[("ALIASD_ENDPOINT", endpoint)]).await
}

fn endpoint(server: &TestServer) -> String {
    server.running.as_ref().unwrap().addr.to_string()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap_or_else(|e| panic!("{e}: {}", stdout(output)))
}

/// Asserts the exit code and that stderr names the reason and gives a hint.
fn failed(output: &Output, code: i32, reason: &str) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(&format!("reason: {reason} (")), "{err}");
    assert!(err.contains("hint: "), "{err}");
    assert!(stdout(output).is_empty(), "{}", stdout(output));
}

/// The value of `field` in a two-column `describe`/`get` table.
fn field(table: &str, field: &str) -> String {
    table
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(' ')?;
            (name == field).then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {field} in\n{table}"))
}

#[tokio::test]
async fn key_commands_print_tables_json_and_ids_and_change_the_server() {
    let server = TestServer::start().await;
    let at = endpoint(&server);
    let at = at.as_str();

    let id = ok(&run(at, &["key", "create", "--description", "payments", "-q"]).await);
    let id = id.trim();
    let key = server.describe(id).await.unwrap();
    assert_eq!(key.description, "payments");
    assert_eq!(key.key_state(), pb::KeyState::Enabled);

    let table = ok(&run(at, &["key", "describe", id]).await);
    assert_eq!(field(&table, "key_id"), id);
    assert_eq!(field(&table, "state"), "ENABLED");
    assert_eq!(field(&table, "key_spec"), "SYMMETRIC_DEFAULT");
    assert_eq!(field(&table, "description"), "payments");
    assert_eq!(field(&table, "arn"), key.arn);

    let document = json(&run(at, &["key", "describe", id, "--output", "json"]).await);
    assert_eq!(document["keyId"], id);
    assert_eq!(document["keyState"], "KEY_STATE_ENABLED");
    assert_eq!(document["description"], "payments");

    let disabled = json(&run(at, &["key", "disable", id, "-o", "json"]).await);
    assert_eq!(disabled["keyState"], "KEY_STATE_DISABLED");
    assert_eq!(
        server.describe(id).await.unwrap().key_state(),
        pb::KeyState::Disabled
    );
    ok(&run(at, &["key", "enable", id]).await);
    assert_eq!(
        server.describe(id).await.unwrap().key_state(),
        pb::KeyState::Enabled
    );

    let scheduled = json(
        &run(
            at,
            &[
                "key",
                "schedule-deletion",
                id,
                "--pending-window-days",
                "7",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(scheduled["keyState"], "KEY_STATE_PENDING_DELETION");
    assert_eq!(scheduled["pendingWindowInDays"], 7);
    let key = server.describe(id).await.unwrap();
    assert_eq!(key.key_state(), pb::KeyState::PendingDeletion);
    assert_eq!(key.pending_window_in_days, 7);
    let table = ok(&run(at, &["key", "cancel-deletion", id]).await);
    assert_eq!(field(&table, "state"), "DISABLED");
    assert_eq!(
        server.describe(id).await.unwrap().key_state(),
        pb::KeyState::Disabled
    );

    let rsa = ok(&run(
        at,
        &[
            "key",
            "create",
            "--key-spec",
            "rsa_2048",
            "--key-usage",
            "sign-verify",
            "-q",
        ],
    )
    .await);
    let rsa = server.describe(rsa.trim()).await.unwrap();
    assert_eq!(rsa.key_spec(), pb::KeySpec::Rsa2048);
    assert_eq!(rsa.key_usage(), pb::KeyUsage::SignVerify);

    // Listing follows pages (100 each) by itself; --limit stops it.
    for _ in 0..103 {
        server.create_key().await;
    }
    let ids = ok(&run(at, &["key", "list", "-q"]).await);
    assert_eq!(ids.lines().count(), 105, "{ids}");
    assert!(ids.lines().any(|line| line == id));
    assert_eq!(
        ok(&run(at, &["key", "list", "-q", "--limit", "101"]).await)
            .lines()
            .count(),
        101
    );
    let table = ok(&run(at, &["key", "list", "--limit", "2"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("KEY ID"), "{table}");
    let listed = json(&run(at, &["key", "list", "-o", "json"]).await);
    assert_eq!(listed["keys"].as_array().unwrap().len(), 105);

    // Exit codes: not found 3, invalid input 4, usage 2.
    failed(
        &run(at, &["key", "describe", &uuid()]).await,
        3,
        "KEY_NOT_FOUND",
    );
    failed(
        &run(at, &["key", "describe", "not-a-key"]).await,
        4,
        "INVALID_KEY_ID",
    );
    failed(
        &run(
            at,
            &["key", "schedule-deletion", id, "--pending-window-days", "3"],
        )
        .await,
        4,
        "INVALID_PENDING_WINDOW",
    );
    assert_eq!(
        server.describe(id).await.unwrap().key_state(),
        pb::KeyState::Disabled
    );
    let usage = run(at, &["key", "create", "--key-spec", "RSA_9"]).await;
    assert_eq!(usage.status.code(), Some(2), "{}", stderr(&usage));
    assert!(stderr(&usage).contains("--key-spec"), "{}", stderr(&usage));
    let ids = ok(&run(at, &["key", "list", "-q"]).await);
    assert_eq!(ids.lines().count(), 105, "a refused create made nothing");
}

#[tokio::test]
async fn alias_commands_change_aliases_and_tell_conflicts_apart() {
    let server = TestServer::start().await;
    let at = endpoint(&server);
    let at = at.as_str();
    let (k1, k2) = (
        server.create_key().await.key_id,
        server.create_key().await.key_id,
    );

    assert_eq!(
        ok(&run(at, &["alias", "create", "alias/x", &k1, "-q"]).await),
        "alias/x\n"
    );
    assert_eq!(server.get_alias("alias/x").await.unwrap().target_key_id, k1);

    let got = json(&run(at, &["alias", "get", "alias/x", "-o", "json"]).await);
    assert_eq!(got["targetKeyId"], k1.as_str());
    let etag = got["etag"].as_str().unwrap().to_owned();
    let table = ok(&run(at, &["alias", "get", "alias/x"]).await);
    assert_eq!(field(&table, "etag"), etag);
    assert_eq!(field(&table, "target_key_id"), k1);

    let updated = ok(&run(at, &["alias", "update", "alias/x", &k2, "--etag", &etag]).await);
    assert_eq!(field(&updated, "target_key_id"), k2);
    assert_eq!(server.get_alias("alias/x").await.unwrap().target_key_id, k2);

    // Conflicts exit 6 and change nothing.
    failed(
        &run(at, &["alias", "update", "alias/x", &k1, "--etag", &etag]).await,
        6,
        "ETAG_MISMATCH",
    );
    failed(
        &run(at, &["alias", "create", "alias/x", &k1]).await,
        6,
        "ALIAS_ALREADY_EXISTS",
    );
    assert_eq!(server.get_alias("alias/x").await.unwrap().target_key_id, k2);
    failed(
        &run(at, &["alias", "create", "x", &k1]).await,
        4,
        "INVALID_ALIAS_NAME",
    );
    // An etag no alias could have is a mistake in the input, not a conflict.
    failed(
        &run(at, &["alias", "update", "alias/x", &k1, "--etag", "nothex"]).await,
        4,
        "INVALID_ETAG",
    );

    let renamed = ok(&run(at, &["alias", "rename", "alias/x", "alias/y"]).await);
    assert_eq!(field(&renamed, "alias_name"), "alias/y");
    assert_eq!(server.get_alias("alias/y").await.unwrap().target_key_id, k2);
    assert_eq!(
        server.get_alias("alias/x").await.unwrap_err().code(),
        tonic::Code::NotFound
    );

    ok(&run(at, &["alias", "create", "alias/z", &k1]).await);
    assert_eq!(
        ok(&run(at, &["alias", "list", "--key", &k2, "-q"]).await),
        "alias/y\n"
    );
    let table = ok(&run(at, &["alias", "list"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ALIAS "), "{table}");
    assert!(
        lines[1].starts_with("alias/y ") && lines[1].contains(&k2),
        "{table}"
    );
    assert!(
        lines[2].starts_with("alias/z ") && lines[2].contains(&k1),
        "{table}"
    );
    let listed = json(&run(at, &["alias", "list", "-o", "json"]).await);
    assert_eq!(listed["aliases"].as_array().unwrap().len(), 2);
    assert_eq!(listed["revision"], "4");
    assert_eq!(
        ok(&run(at, &["alias", "list", "-q", "--limit", "1"]).await),
        "alias/y\n"
    );

    // -o json prints the response in the proto3 JSON mapping (empty).
    assert_eq!(
        json(&run(at, &["alias", "delete", "alias/z", "-o", "json"]).await),
        serde_json::json!({})
    );
    assert_eq!(
        ok(&run(at, &["alias", "delete", "alias/y", "-q"]).await),
        "alias/y\n"
    );
    assert_eq!(
        server.get_alias("alias/y").await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    failed(
        &run(at, &["alias", "get", "alias/y"]).await,
        3,
        "ALIAS_NOT_FOUND",
    );

    // With --output json a failure is a JSON document on stderr.
    let missing = run(at, &["alias", "delete", "alias/y", "-o", "json"]).await;
    assert_eq!(missing.status.code(), Some(3));
    let error: Value = serde_json::from_str(stderr(&missing).trim()).unwrap();
    assert_eq!(error["error"]["reason"], "ALIAS_NOT_FOUND");
    assert_eq!(error["error"]["code"], "NOT_FOUND");
    assert!(error["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("alias list"));

    // The audit log of all that, through the client.
    let audit = json(
        &run(
            at,
            &["audit", "list", "--action", "kms:CreateAlias", "-o", "json"],
        )
        .await,
    );
    let events = audit["events"].as_array().unwrap();
    let created: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["resources"][0].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    // Calls the rules refused are not audited; successes and denials are.
    assert_eq!(created, [("alias/x", "OK"), ("alias/z", "OK")], "{audit}");
    // Each names where it came from: the door, the client's address and
    // the CLI's user agent.
    let first = &events[0];
    assert_eq!(first["door"], "grpc", "{first}");
    assert_eq!(first["sourceAddress"], "127.0.0.1", "{first}");
    assert!(
        first["userAgent"]
            .as_str()
            .unwrap()
            .starts_with(concat!("aliasd-cli/", env!("CARGO_PKG_VERSION"))),
        "{first}"
    );
    let table = ok(&run(at, &["audit", "list", "--limit", "1"]).await);
    assert!(
        table.starts_with("SEQ ") && table.lines().count() == 2,
        "{table}"
    );
    let future = ok(&run(
        at,
        &["audit", "list", "-q", "--since", "2999-01-01T00:00:00Z"],
    )
    .await);
    assert_eq!(future, "");
    let bad = run(at, &["audit", "list", "--since", "yesterday"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

#[tokio::test]
async fn auth_token_output_is_accepted_by_the_server_and_denials_exit_5() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(
        "unused",
        &["auth", "token", "--name", "ci", "--account", "111122223333"],
    )
    .await;
    // The entry on stdout (`>> auth.toml` appends it as is), the token on
    // stderr only.
    let entry = ok(&output);
    let token = stderr(&output)
        .lines()
        .find_map(|line| line.strip_prefix("token: "))
        .unwrap()
        .to_owned();
    assert!(!entry.contains(&token), "{entry}");
    let reader_token = ok(&run("unused", &["auth", "token", "--name", "reader", "-q"]).await);
    let reader_token = reader_token.trim();
    assert_eq!(reader_token.len(), 43);
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "{entry}\n[[principals]]\nname = \"reader\"\naccount = \"111122223333\"\n\
             token_sha256 = \"{}\"\n[[principals.statements]]\nactions = \"kms:Describe*\"\n\
             resources = \"*\"\n",
            crate::common::token_sha256(reader_token)
        ),
    )
    .unwrap();
    let checked = ok(&run("unused", &["auth", "check", auth.to_str().unwrap()]).await);
    assert_eq!(checked, "ok: 2 principals (ci, reader)\n");

    let auth_file = auth.clone();
    let server = TestServer::start_configured(move |c| c.auth_file = Some(auth_file)).await;
    let at = endpoint(&server);
    let at = at.as_str();
    let id = ok(&run(at, &["key", "create", "-q", "--token", &token]).await);
    let described = ok(&run(at, &["key", "describe", id.trim(), "--token", reader_token]).await);
    assert_eq!(field(&described, "account"), "111122223333");

    failed(
        &run(at, &["key", "create", "--token", reader_token]).await,
        5,
        "ACCESS_DENIED",
    );
    failed(&run(at, &["key", "list"]).await, 5, "UNAUTHENTICATED");
    let err = stderr(&run(at, &["key", "list", "--token", "wrong"]).await);
    assert!(err.contains("--token"), "{err}");

    // A broken file: exit 1 and the server's own message.
    std::fs::write(
        &auth,
        "[[principals]]\nname = \"x\"\naccount = \"1\"\ntoken_sha256 = \"nothex\"\n",
    )
    .unwrap();
    let refused = run("unused", &["auth", "check", auth.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("token_sha256 must be 64 hex digits"),
        "{}",
        stderr(&refused)
    );

    // A file that names nobody would lock every caller out.
    std::fs::write(&auth, "principals = []\n").unwrap();
    let refused = run("unused", &["auth", "check", auth.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("names no principal"),
        "{}",
        stderr(&refused)
    );
}

#[tokio::test]
async fn an_unreachable_server_exits_7_with_a_hint() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run(&format!("127.0.0.1:{port}"), &["alias", "list"]).await;
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot reach the server"),
        "{}",
        stderr(&output)
    );
    assert!(
        stderr(&output).contains("hint: Is `aliasd serve` running"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn help_has_examples_and_describes_every_argument_and_tls_mistakes_get_their_own_hint() {
    // Help: examples, a description under every argument, and no
    // `[env: NAME=]` for a variable that is not set.
    for command in [
        &["alias", "update", "--help"][..],
        &["alias", "create", "--help"][..],
        &["key", "describe", "--help"][..],
        &["key", "disable", "--help"][..],
    ] {
        let help = ok(&run("unused", command).await);
        assert!(help.contains("Example"), "{command:?}:\n{help}");
        assert!(!help.contains("ALIASD_TLS_CA="), "{command:?}:\n{help}");
        let arguments = help
            .split("Arguments:")
            .nth(1)
            .and_then(|rest| rest.split("Options:").next())
            .unwrap_or_default();
        let lines: Vec<&str> = arguments.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with('<') {
                let description = lines.get(i + 1).map_or("", |next| next.trim());
                assert!(
                    !description.is_empty(),
                    "{command:?}: {line} undescribed\n{help}"
                );
            }
        }
    }

    // A TLS client at a plaintext server is told it spoke TLS.
    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().addr;
    let output = run(&format!("https://{addr}"), &["key", "list"]).await;
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("This client spoke TLS"), "{err}");
    assert!(err.contains("if the server is plaintext"), "{err}");
}

/// `aliasd ping` times one empty call; a server that is not there exits 7.
#[tokio::test]
async fn ping_answers_with_the_round_trip_or_says_why_not() {
    let server = TestServer::start().await;
    let endpoint = endpoint(&server);
    let text = ok(&run(&endpoint, &["ping"]).await);
    assert!(
        text.starts_with(&format!("{endpoint} answered in ")) && text.trim_end().ends_with(" ms"),
        "{text}"
    );
    let answer = json(&run(&endpoint, &["ping", "--output", "json"]).await);
    assert_eq!(answer["endpoint"], endpoint.as_str());
    assert!(answer["round_trip_ms"].as_f64().unwrap() > 0.0, "{answer}");
    assert_eq!(ok(&run(&endpoint, &["ping", "--quiet"]).await), "");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = run(&format!("127.0.0.1:{port}"), &["ping"]).await;
    assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
}

#[tokio::test]
async fn watch_prints_changes_and_resumes_after_the_server_restarts() {
    let server = TestServer::start().await;
    let addr = server.running.as_ref().unwrap().addr;
    let key = server.create_key().await.key_id;
    let mut watch = tokio::process::Command::new(env!("CARGO_BIN_EXE_aliasd"))
        .args([
            "alias",
            "watch",
            "--from-revision",
            "0",
            "--count",
            "3",
            "-o",
            "json",
        ])
        .env("ALIASD_ENDPOINT", addr.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    server.create_alias("alias/w", &key).await.unwrap();
    // Wait until the watcher has printed the first change, then restart the
    // server on the same port and data directory.
    let mut stdout = tokio::io::BufReader::new(watch.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncBufReadExt;
        stdout.read_line(&mut first).await.unwrap();
    })
    .await
    .expect("the watcher printed the first change");
    let dir = server.stop().await;
    let server = TestServer::start_in(
        dir,
        |c| c.listen = addr,
        std::sync::Arc::new(aliasd::domain::SystemClock),
    )
    .await;
    server.rename_alias("alias/w", "alias/v").await.unwrap();
    server.delete_alias("alias/v").await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        use tokio::io::AsyncReadExt;
        let mut rest = String::new();
        stdout.read_to_string(&mut rest).await.unwrap();
        rest
    })
    .await
    .expect("the watcher printed the rest and stopped");
    let status = watch.wait().await.unwrap();
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut watch.stderr.take().unwrap(), &mut err)
        .await
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("resuming after revision 1"), "{err}");
    let events: Vec<Value> = std::iter::once(first.as_str())
        .chain(rest.lines())
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["revision"].as_str().unwrap(),
                e["type"].as_str().unwrap(),
                e["alias"]["aliasName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("1", "ALIAS_EVENT_TYPE_CREATED", "alias/w"),
            ("2", "ALIAS_EVENT_TYPE_RENAMED", "alias/v"),
            ("3", "ALIAS_EVENT_TYPE_DELETED", "alias/v"),
        ]
    );
}

#[tokio::test]
async fn completions_are_generated_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&run("unused", &["completions", shell]).await);
        for word in ["alias", "watch", "schedule-deletion", "--endpoint"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
    }
    // The bash script parses.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aliasd.bash");
    std::fs::write(&path, ok(&run("unused", &["completions", "bash"]).await)).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", stderr(&checked));
    let bad = run("unused", &["completions", "powershell-9"]).await;
    assert_eq!(bad.status.code(), Some(2));
}

/// The reader of a command's output goes away (`| head -1`): the command
/// ends at once and quietly, without a panic and without holding a watch.
#[tokio::test]
async fn commands_whose_reader_goes_away_end_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use tokio::io::AsyncBufReadExt;
    let server = TestServer::start_configured(|c| c.max_watches_per_account = 2).await;
    let addr = server.running.as_ref().unwrap().addr;
    let key = server.create_key().await.key_id;
    server.create_alias("alias/first", &key).await.unwrap();
    let quiet = |status: std::process::ExitStatus, err: &str, what: &str| {
        assert!(
            status.success() || status.signal() == Some(libc::SIGPIPE),
            "{what}: {status:?} {err}"
        );
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(err.is_empty(), "{what}: {err}");
    };
    for args in [
        &["alias", "watch", "--from-revision", "0", "-o", "json"][..],
        &["alias", "watch", "--from-revision", "0"][..],
        &["completions", "bash"][..],
    ] {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_aliasd"))
            .args(args)
            .env("ALIASD_ENDPOINT", addr.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Read one line, then close the pipe as `head -1` does.
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).await.unwrap();
        assert!(!line.is_empty(), "{args:?}");
        drop(stdout);
        // The watch has nothing more to write: it must notice by itself.
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{args:?} still runs after its reader went away"))
            .unwrap();
        let mut err = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut err)
            .await
            .unwrap();
        quiet(status, &err, &format!("{args:?}"));
    }
    // The two watches let go of their slots (the account may have two).
    let mut open = Vec::new();
    for _ in 0..2 {
        let watch = server
            .aliases
            .clone()
            .watch_aliases(pb::WatchAliasesRequest::default())
            .await;
        open.push(watch.expect("a free watch slot"));
    }
}

#[tokio::test]
async fn the_watch_table_lines_up_under_its_header() {
    let server = TestServer::start().await;
    let at = endpoint(&server);
    let key = server.create_key().await.key_id;
    server.create_alias("alias/a", &key).await.unwrap();
    let printed = ok(&run(
        &at,
        &["alias", "watch", "--from-revision", "0", "--count", "1"],
    )
    .await);
    let mut lines = printed.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    for (column, value) in [
        ("EVENT", "CREATED"),
        ("ALIAS", "alias/a"),
        ("TARGET KEY", key.as_str()),
    ] {
        assert_eq!(
            header.find(column),
            row.find(value),
            "{column} over {value}:\n{header}\n{row}"
        );
    }
}

/// `aliasd encrypt|decrypt|sign|verify|random|key rotate`: binary data in
/// from files and out to stdout or files, unchanged; a signature that does
/// not verify exits 4 with its reason.
#[tokio::test]
async fn the_crypto_commands_are_binary_safe_and_exit_by_outcome() {
    let server = TestServer::start().await;
    let at = endpoint(&server);
    let key = server.create_key().await;
    server.create_alias("alias/cli", &key.key_id).await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let path = |name: &str| files.path().join(name).display().to_string();
    // Every byte value, zeros and 0xff included.
    let secret: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    std::fs::write(path("secret.bin"), &secret).unwrap();

    let sealed = run(
        &at,
        &[
            "encrypt",
            "--key-id",
            "alias/cli",
            "--context",
            "app=cli",
            "--in",
            &path("secret.bin"),
        ],
    )
    .await;
    let blob = sealed.stdout.clone();
    ok(&sealed);
    std::fs::write(path("secret.enc"), &blob).unwrap();
    let opened = run(
        &at,
        &[
            "decrypt",
            "--context",
            "app=cli",
            "--in",
            &path("secret.enc"),
            "--out",
            &path("back.bin"),
        ],
    )
    .await;
    ok(&opened);
    assert_eq!(std::fs::read(path("back.bin")).unwrap(), secret);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path("back.bin"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "a plaintext is written for its owner only");
    // Without the context: the server's reason, exit 4.
    let refused = run(&at, &["decrypt", "--in", &path("secret.enc")]).await;
    failed(&refused, 4, "INVALID_CIPHERTEXT");

    let signer = server
        .create_key_of(pb::KeySpec::EccNistP384, pb::KeyUsage::SignVerify)
        .await;
    std::fs::write(path("release.tar"), b"release contents").unwrap();
    let signed = run(
        &at,
        &[
            "sign",
            "--key-id",
            &signer.key_id,
            "--algorithm",
            "ecdsa_sha_384",
            "--in",
            &path("release.tar"),
            "--out",
            &path("release.sig"),
        ],
    )
    .await;
    ok(&signed);
    let verify = |message: String| {
        let at = at.clone();
        let (key, sig) = (signer.key_id.clone(), path("release.sig"));
        async move {
            run(
                &at,
                &[
                    "verify",
                    "--key-id",
                    &key,
                    "--algorithm",
                    "ECDSA_SHA_384",
                    "--signature",
                    &sig,
                    "--in",
                    &message,
                ],
            )
            .await
        }
    };
    assert!(ok(&verify(path("release.tar")).await).contains("valid"));
    std::fs::write(path("tampered.tar"), b"release contentz").unwrap();
    failed(
        &verify(path("tampered.tar")).await,
        4,
        "SIGNATURE_NOT_VALID",
    );
    let pem = ok(&run(&at, &["public-key", "--key-id", &signer.key_id]).await);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");

    let random = run(&at, &["random", "--bytes", "48"]).await;
    assert_eq!(random.stdout.len(), 48);
    ok(&random);

    let rotated = json(&run(&at, &["key", "rotate", &key.key_id, "-o", "json"]).await);
    assert_ne!(
        rotated["currentKeyMaterialId"],
        key.current_key_material_id.as_str()
    );
    let listed = ok(&run(&at, &["key", "rotations", &key.key_id, "-q"]).await);
    assert_eq!(
        listed.trim(),
        rotated["currentKeyMaterialId"].as_str().unwrap()
    );
    // What was sealed before the rotation still opens.
    let again = run(
        &at,
        &[
            "decrypt",
            "--context",
            "app=cli",
            "--in",
            &path("secret.enc"),
        ],
    )
    .await;
    assert_eq!(again.stdout, secret);
}

/// `aliasd key tag/untag/tags/policy/put-policy/set-description`: the
/// key's tags, policy and description from the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_detail_commands_tag_set_policies_and_describe() {
    let server = TestServer::start().await;
    let at = endpoint(&server);
    let key = ok(&run(&at, &["key", "create", "--quiet"]).await)
        .trim()
        .to_owned();
    ok(&run(
        &at,
        &["key", "tag", &key, "team=payments", "cost=", "env=dev"],
    )
    .await);
    ok(&run(&at, &["key", "untag", &key, "cost", "absent"]).await);
    let tags = json(&run(&at, &["key", "tags", &key, "-o", "json"]).await);
    assert_eq!(
        tags,
        serde_json::json!({"tags": [
            {"key": "env", "value": "dev"},
            {"key": "team", "value": "payments"},
        ]})
    );
    assert_eq!(
        ok(&run(&at, &["key", "tags", &key, "--quiet"]).await),
        "env=dev\nteam=payments\n"
    );
    // A pair without "=" is a usage error: nothing is sent.
    let bad = run(&at, &["key", "tag", &key, "novalue"]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    // A reserved tag key: the server's refusal, exit 4, nothing changed.
    let refused = run(&at, &["key", "tag", &key, "aws:x=y"]).await;
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("TAG_REFUSED"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(
        server.describe(&key).await.unwrap().key_id,
        key,
        "the key is still there"
    );

    let default = ok(&run(&at, &["key", "policy", &key]).await);
    assert!(default.contains("\"Id\" : \"key-default-1\""), "{default}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.json");
    std::fs::write(&file, "{\"Version\": \"2012-10-17\", \"Id\": \"mine\"}").unwrap();
    ok(&run(
        &at,
        &["key", "put-policy", &key, "--file", file.to_str().unwrap()],
    )
    .await);
    assert_eq!(
        ok(&run(&at, &["key", "policy", &key]).await),
        "{\"Version\": \"2012-10-17\", \"Id\": \"mine\"}\n"
    );
    std::fs::write(&file, "not json").unwrap();
    let malformed = run(
        &at,
        &["key", "put-policy", &key, "--file", file.to_str().unwrap()],
    )
    .await;
    assert_eq!(malformed.status.code(), Some(4), "{}", stderr(&malformed));
    assert!(stderr(&malformed).contains("MALFORMED_POLICY"));

    let described = json(
        &run(
            &at,
            &[
                "key",
                "set-description",
                &key,
                "payments, 2027",
                "-o",
                "json",
            ],
        )
        .await,
    );
    assert_eq!(described["description"], "payments, 2027");
    assert_eq!(
        server.describe(&key).await.unwrap().description,
        "payments, 2027"
    );
}

/// A config file with profiles: the token from a file, a command, or the
/// file itself only when it is private; `aliasd config` says where each
/// setting came from; `--query` and `version` through the binary; alias
/// names completed from the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_query_version_and_completion_through_the_binary() {
    let files = tempfile::tempdir().unwrap();
    let auth = files.path().join("auth.toml");
    write_secret_file(
        &auth,
        &format!(
            "[[principals]]\nname = \"ops\"\naccount = \"000000000000\"\n\
             token_sha256 = \"{}\"\n[[principals.statements]]\n\
             actions = [\"kms:*\"]\nresources = [\"*\"]\n",
            token_sha256("ops-token")
        ),
    );
    let server = TestServer::start_configured(|c| c.auth_file = Some(auth)).await;
    let at = endpoint(&server);
    std::fs::write(files.path().join("ops.token"), "ops-token\n").unwrap();
    let config = files.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "default_profile = \"local\"\n\
             [profiles.local]\nendpoint = \"{at}\"\ntoken_file = \"ops.token\"\n\
             [profiles.scripted]\nendpoint = \"{at}\"\ntoken_command = \"echo ops-token\"\n\
             output = \"json\"\n\
             [profiles.inline]\nendpoint = \"{at}\"\ntoken = \"ops-token\"\n\
             [profiles.nowhere]\nendpoint = \"127.0.0.1:1\"\n"
        ),
    )
    .unwrap();
    let config_env = config.to_str().unwrap();
    let cli = |args: &'static [&'static str], env: Vec<(&'static str, String)>| {
        let mut all = vec![("ALIASD_CONFIG", config_env.to_owned())];
        all.extend(env);
        async move {
            let env: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            crate::common::run_aliasd(args, &env).await
        }
    };

    // The default profile: endpoint and token from the file (relative to it).
    let key = ok(&cli(&["key", "create", "-q"], vec![]).await);
    let key = key.trim();
    assert!(!key.is_empty());
    for name in ["alias/payments", "alias/payroll"] {
        let mut env = vec![("ALIASD_CONFIG", config_env.to_owned())];
        env.push(("ALIASD_PROFILE", "scripted".to_owned()));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ok(&crate::common::run_aliasd(&["alias", "create", name, key], &env).await);
    }

    // --query over the JSON output (the scripted profile prints JSON).
    let names = json(
        &cli(
            &["alias", "list", "--query", "aliases[].aliasName"],
            vec![("ALIASD_PROFILE", "scripted".into())],
        )
        .await,
    );
    assert_eq!(
        names,
        serde_json::json!(["alias/payments", "alias/payroll"])
    );
    // --query implies JSON even where the profile says table.
    let target = json(
        &cli(
            &["alias", "get", "alias/payroll", "--query", "targetKeyId"],
            vec![],
        )
        .await,
    );
    assert_eq!(target, key);
    let bad = cli(&["alias", "list", "--query", "aliases[?"], vec![]).await;
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("JMESPath"), "{}", stderr(&bad));

    // aliasd config: where each setting came from; the token never shown.
    let shown = json(&cli(&["config", "-o", "json", "--timeout-secs", "7"], vec![]).await);
    assert_eq!(shown["profile"], "local", "{shown}");
    assert_eq!(shown["profileChosenBy"], "default_profile", "{shown}");
    let source = |name: &str| {
        shown["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| (s["value"].clone(), s["source"].as_str().unwrap().to_owned()))
            .unwrap()
    };
    assert_eq!(
        source("endpoint"),
        (at.clone().into(), "profile local".into())
    );
    assert_eq!(source("timeout_secs").1, "flag");
    assert_eq!(source("output"), ("json".into(), "flag".into()));
    assert!(
        source("token").1.starts_with("profile local (token_file "),
        "{shown}"
    );
    assert!(!shown.to_string().contains("ops-token"), "{shown}");
    let env_endpoint = json(
        &cli(
            &["config", "-o", "json"],
            vec![("ALIASD_ENDPOINT", "127.0.0.1:9".into())],
        )
        .await,
    );
    assert!(
        env_endpoint["settings"][0]["source"] == "env ALIASD_ENDPOINT",
        "{env_endpoint}"
    );

    // A token in the file itself only while the file is private.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = cli(&["alias", "list", "--profile", "inline"], vec![]).await;
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("chmod 600"),
        "{}",
        stderr(&refused)
    );
    // aliasd config shows the refusal rather than stopping.
    let report = json(&cli(&["config", "--profile", "inline", "-o", "json"], vec![]).await);
    let token = report["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "token")
        .unwrap()
        .clone();
    let token_source = token["source"].as_str().unwrap();
    assert!(
        token_source.starts_with("refused: ") && token_source.contains("chmod 600"),
        "{token}"
    );
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&cli(&["alias", "list", "--profile", "inline"], vec![]).await);
    let unknown = cli(&["alias", "list", "--profile", "nope"], vec![]).await;
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        stderr(&unknown).contains("local, nowhere"),
        "{}",
        stderr(&unknown)
    );

    // A token travels in a header: a trailing newline (a secret file, an
    // echo) is dropped; a token_command's first line is its token;
    // characters a header cannot carry are refused, not left off.
    let newline = cli(
        &["alias", "list", "-q"],
        vec![("ALIASD_TOKEN", "ops-token\n".into())],
    )
    .await;
    assert_eq!(ok(&newline).lines().count(), 2);
    let spaced = cli(
        &["alias", "list"],
        vec![("ALIASD_TOKEN", "ops token".into())],
    )
    .await;
    assert_eq!(spaced.status.code(), Some(2), "{}", stderr(&spaced));
    assert!(
        stderr(&spaced).contains("header cannot carry"),
        "{}",
        stderr(&spaced)
    );

    // aliasd config runs no token_command, and reports a refused token
    // instead of stopping.
    let marker = files.path().join("ran");
    let two_lines = files.path().join("two-lines.toml");
    std::fs::write(
        &two_lines,
        format!(
            "[profiles.two]\nendpoint = \"{at}\"\n\
             token_command = \"touch {}; echo ops-token; echo second-line\"\n",
            marker.display()
        ),
    )
    .unwrap();
    let two_env = || {
        vec![
            ("ALIASD_CONFIG", two_lines.to_str().unwrap().to_owned()),
            ("ALIASD_PROFILE", "two".to_owned()),
        ]
    };
    let shown = json(&cli(&["config", "-o", "json"], two_env()).await);
    assert!(!marker.exists(), "aliasd config ran the token command");
    assert!(
        shown.to_string().contains("token_command, not run"),
        "{shown}"
    );
    ok(&cli(&["alias", "list"], two_env()).await);
    assert!(marker.exists(), "a call runs the token command");
    // --query conflicts with -q and with an explicit table; config takes it.
    let quiet = cli(&["alias", "list", "-q", "--query", "aliases"], vec![]).await;
    assert_eq!(quiet.status.code(), Some(2), "{}", stderr(&quiet));
    let table = cli(
        &["alias", "list", "-o", "table", "--query", "aliases"],
        vec![],
    )
    .await;
    assert_eq!(table.status.code(), Some(2), "{}", stderr(&table));
    let profile = json(&cli(&["config", "--query", "profile"], vec![]).await);
    assert_eq!(profile, "local");

    // A server that accepts connections and never answers: the deadline
    // passes (exit 7), not a cancellation.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_at = silent.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(4).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let stuck = cli(
        &["ping", "--timeout-secs", "1", "-o", "json"],
        vec![("ALIASD_ENDPOINT", silent_at)],
    )
    .await;
    assert_eq!(stuck.status.code(), Some(7), "{}", stderr(&stuck));
    assert!(
        stderr(&stuck).contains("DEADLINE_EXCEEDED"),
        "{}",
        stderr(&stuck)
    );

    // version: the client's and the server's.
    let version = json(&cli(&["version", "-o", "json"], vec![]).await);
    assert_eq!(version["client"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(version["server"]["commit"], version["client"]["commit"]);
    let backend = if crate::common::on_etcd() {
        "etcd"
    } else {
        "sled"
    };
    assert_eq!(version["server"]["backend"], backend, "{version}");
    assert_eq!(version["server"]["features"], serde_json::json!(["auth"]));
    // Unreachable: the client's half, and the failure.
    let lonely = cli(&["version", "--profile", "nowhere"], vec![]).await;
    assert_ne!(lonely.status.code(), Some(0));
    assert!(
        stdout(&lonely).starts_with(&format!("client: aliasd {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout(&lonely)
    );
    let long = ok(&cli(&["--version"], vec![]).await);
    assert!(long.contains("(commit "), "{long}");

    // Dynamic completion: alias names from the server (the profile's).
    let completed = cli(
        &["--", "aliasd", "alias", "get", "alias/payr"],
        vec![
            ("COMPLETE", "bash".into()),
            ("_CLAP_COMPLETE_INDEX", "3".into()),
            ("_CLAP_COMPLETE_COMP_TYPE", "9".into()),
            ("_CLAP_COMPLETE_SPACE", "true".into()),
        ],
    )
    .await;
    let offered: Vec<String> = stdout(&completed)
        .split(['\u{b}', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(offered, ["alias/payroll"], "{}", stderr(&completed));
    // An alias's target is a key: only key ids are offered there.
    let target = cli(
        &["--", "aliasd", "alias", "create", "alias/new", ""],
        vec![
            ("COMPLETE", "bash".into()),
            ("_CLAP_COMPLETE_INDEX", "4".into()),
            ("_CLAP_COMPLETE_COMP_TYPE", "9".into()),
            ("_CLAP_COMPLETE_SPACE", "true".into()),
        ],
    )
    .await;
    let offered: Vec<String> = stdout(&target)
        .split(['\u{b}', '\n'])
        .filter(|s| !s.is_empty() && !s.starts_with('-'))
        .map(str::to_owned)
        .collect();
    assert_eq!(offered, [key.to_owned()], "{}", stderr(&target));
}
