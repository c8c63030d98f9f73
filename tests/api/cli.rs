//! The command line through the real binary: `check` on what is not a
//! store, `bench` arguments and its temporary directory, flag parsing.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn aliasd() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aliasd"));
    command.env("RUST_LOG", "info");
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn check(data_dir: &Path) -> Output {
    aliasd()
        .args(["check", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap()
}

#[test]
fn check_of_a_missing_directory_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    let output = check(&typo);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "aliasd check: data directory {} does not exist (check opens an existing store and \
             creates nothing)\n",
            typo.display()
        )
    );
    assert!(!typo.exists(), "check created {}", typo.display());
    assert!(entries(dir.path()).is_empty());
}

#[test]
fn check_of_a_directory_that_is_not_an_aliasd_store_fails_and_changes_nothing() {
    // An empty directory, and one with unrelated files.
    let empty = tempfile::tempdir().unwrap();
    let output = check(empty.path());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is not an aliasd store: it holds no sled database"),
        "{}",
        stderr(&output)
    );
    assert!(
        entries(empty.path()).is_empty(),
        "{:?}",
        entries(empty.path())
    );

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), "not a store").unwrap();
    let output = check(other.path());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(entries(other.path()), vec!["notes.txt"]);

    // A sled database that aliasd never wrote.
    let foreign = tempfile::tempdir().unwrap();
    {
        let db = sled::open(foreign.path()).unwrap();
        db.insert(b"k", b"v").unwrap();
        db.flush().unwrap();
    }
    let output = check(foreign.path());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output)
            .contains("is not an aliasd store: its sled database was not written by aliasd"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_of_a_store_reports_that_all_invariants_hold() {
    let dir = tempfile::tempdir().unwrap();
    drop(aliasd::store::Store::open(&aliasd::store::Engine::sled(dir.path())).unwrap());
    let output = check(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    assert!(stdout.ends_with("ok: all invariants hold\n"), "{stdout}");
}

/// `aliasd bench` with its temporary directory under `tmp`.
fn bench(tmp: &Path, args: &[&str]) -> Command {
    let mut command = aliasd();
    command.arg("bench").args(args).env("TMPDIR", tmp);
    command
}

#[test]
fn bench_refuses_zero_counts_with_a_message_and_no_panic() {
    let tmp = tempfile::tempdir().unwrap();
    for (flag, value, range) in [
        ("--concurrency", "0", "0 is not in 1..=10000"),
        ("--aliases", "0", "0 is not in 1..=10000000"),
        ("--connections", "0", "0 is not in 1..=1000"),
        (
            "--seconds",
            "0",
            "0 is not a number of seconds in 0.05..=3600",
        ),
    ] {
        let output = bench(tmp.path(), &[flag, value]).output().unwrap();
        let stderr = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value '0' for '{flag}")),
            "{flag} {value}: {stderr}"
        );
        assert!(stderr.contains(range), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
    }
}

/// A short run prints a row for every operation, each with calls made, and
/// leaves nothing behind.
#[test]
fn bench_measures_every_operation_and_removes_its_temporary_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let output = bench(
        tmp.path(),
        &[
            "--aliases",
            "100",
            "--seconds",
            "0.2",
            "--concurrency",
            "2",
            "--connections",
            "1",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    for row in [
        "Ping (empty call), first",
        "GetAlias",
        "DescribeKey by alias name",
        "ListAliases, first page of 50",
        "ListAliases, a page halfway in",
        "ListAliases of one key",
        "CreateAlias (durable)",
        "UpdateAlias (durable)",
        "RenameAlias (durable)",
        "DeleteAlias (durable)",
        "Ping (empty call), last",
        "HTTP GET /ping (empty call)",
        "AWS DescribeKey by alias name",
        "AWS CreateAlias (durable)",
        "Huawei describe-key",
        "Huawei update-key-alias (durable)",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row:?} in\n{stdout}"));
        let rate: f64 = line[row.len()..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no rate in {line:?}"));
        assert!(rate > 0.0, "{line}");
    }
    assert!(
        stdout.contains("data directory after the prefill"),
        "{stdout}"
    );
    assert!(stdout.contains("bytes per alias"), "{stdout}");
    assert!(
        stdout.contains("start-up on this data directory"),
        "{stdout}"
    );
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// `--only` runs the rows it names (and the empty calls), no others.
#[test]
fn bench_only_runs_the_rows_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let output = bench(
        tmp.path(),
        &[
            "--aliases",
            "100",
            "--seconds",
            "0.1",
            "--concurrency",
            "2",
            "--connections",
            "1",
            "--only",
            "listaliases",
        ],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", stderr(&output));
    let rows: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("operation"))
        .skip(1)
        .take_while(|l| !l.starts_with("server RSS"))
        .map(|l| l.split("  ").next().unwrap_or_default())
        .collect();
    assert_eq!(
        rows,
        [
            "Bare tonic call, first",
            "Ping (empty call), first",
            "ListAliases, first page of 50",
            "ListAliases, a page halfway in",
            "ListAliases of one key",
            "Ping (empty call), last",
            "Bare tonic call, last",
            "HTTP GET /ping (empty call)",
        ],
        "{stdout}"
    );
}

#[test]
fn bench_removes_its_temporary_directory_and_stops_its_server_when_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let child = bench(
        tmp.path(),
        &[
            "--aliases",
            "10000000",
            "--concurrency",
            "1",
            "--connections",
            "1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // The directory appears once the bench is under way; the prefill then
    // runs far longer than the test waits.
    let started = Instant::now();
    while entries(tmp.path()).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the bench made no data directory"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = stderr(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    assert!(entries(tmp.path()).is_empty(), "{:?}", entries(tmp.path()));
}

/// `aliasd serve` with a setting that fails validation, so that the run ends
/// right after the flags were parsed: exit 1 means they were accepted.
fn serve_past_parsing(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    aliasd()
        .args(["serve", "--request-id-ttl-hours", "1", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn boolean_env_vars_and_host_names_are_accepted_by_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let accepted = "--request-id-ttl-hours must be at least 24";
    for spelling in ["1", "0", "yes", "NO", "on", "Off", "TRUE", "false"] {
        let output = serve_past_parsing(&data, &[], &[("ALIASD_ALLOW_ANONYMOUS", spelling)]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{spelling}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains(accepted), "{}", stderr(&output));
    }
    let output = serve_past_parsing(&data, &[], &[("ALIASD_ALLOW_ANONYMOUS", "maybe")]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("invalid value 'maybe' for '--allow-anonymous'"),
        "{}",
        stderr(&output)
    );

    let output = serve_past_parsing(&data, &["--listen", "localhost:0"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(stderr(&output).contains(accepted), "{}", stderr(&output));
    assert!(
        !data.exists(),
        "nothing is created before the flags are valid"
    );
}

#[test]
fn a_start_that_fails_leaves_no_store_behind() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    // A port in use: nothing is created.
    let data = dir.path().join("x1");
    let output = aliasd()
        .args(["serve", "--listen", &port, "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("cannot listen on"),
        "{}",
        stderr(&output)
    );
    assert!(!data.exists(), "a failed start created {}", data.display());

    // A seed file that cannot apply (an alias onto a key it does not
    // make): the store it opened is removed again, and an empty directory
    // given is left empty.
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"aliases": [{"alias_name": "alias/x", "target_key_id": "0d0466b0-e727-4d9c-b35d-f84bb474a37f"}]}"#,
    )
    .unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for data in [&data, &empty] {
        let output = aliasd()
            .args(["serve", "--listen", "127.0.0.1:0", "--seed"])
            .arg(&seed)
            .arg("--data-dir")
            .arg(data)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
        assert!(stderr(&output).contains("seed"), "{}", stderr(&output));
    }
    assert!(!data.exists(), "a failed start left {}", data.display());
    assert!(entries(&empty).is_empty(), "{:?}", entries(&empty));
}
