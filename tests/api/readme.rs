//! The documentation's walk-through, run as written: the `sh walkthrough`
//! blocks of [`WALKTHROUGH_FILES`], file after file and in order within each,
//! as one bash script against the real server binary. It starts in the
//! README's five-minute tour and goes on in the docs; later blocks use the
//! variables, functions and servers of earlier ones.
//!
//! What the test changes, and only that: `cargo run --release --` runs the
//! binary under test, the ports 50051, 50052 and 4566 become free ephemeral ones,
//! `grpcurl` is `tests/python/grpcurl.py` (see that file for why) and `aws` the
//! venv's aws CLI. The
//! script runs with `set -euo pipefail`, so every command must succeed, and
//! the walk-through's own checks (`jq -e`, `expect REASON ...`, `kill; wait`
//! for a clean exit) are assertions.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The files that hold the walk-through, in the order its blocks run.
const WALKTHROUGH_FILES: &[&str] = &[
    "README.md",
    "docs/grpc-and-cli.md",
    "docs/security.md",
    "docs/aws-and-huawei.md",
];

/// The code blocks whose info string is `sh walkthrough`, in order.
fn walkthrough_blocks(markdown: &str) -> Vec<String> {
    fenced_blocks(markdown, "sh walkthrough")
}

/// The code blocks whose info string is `info`, in order.
fn fenced_blocks(markdown: &str, info: &str) -> Vec<String> {
    let fence = format!("```{info}");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim() == fence => current = Some(String::new()),
            None => {}
            Some(_) if line.trim() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "an unclosed {info} block");
    blocks
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A walk-through block outside [`WALKTHROUGH_FILES`] would never run.
#[test]
fn every_walkthrough_block_is_in_a_file_the_walkthrough_runs() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(manifest.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("docs/{}", path.file_name().unwrap().to_string_lossy());
        let text = std::fs::read_to_string(&path).unwrap();
        if !WALKTHROUGH_FILES.contains(&name.as_str()) {
            assert!(
                walkthrough_blocks(&text).is_empty(),
                "{name} has walkthrough blocks but is not in WALKTHROUGH_FILES"
            );
        }
    }
}

/// The snippets of docs/grpc-and-cli.md that read an error's reason are the
/// code the Python and Node client tests run: each paragraph of a snippet,
/// but for its imports and its comments, is in the test's script.
#[test]
fn the_error_reason_snippets_are_the_code_the_client_tests_run() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(manifest.join("docs/grpc-and-cli.md")).unwrap();
    for (info, script) in [
        ("python reason", "tests/python/generated_client.py"),
        ("js reason", "tests/node/error_reason.js"),
    ] {
        let script_text = std::fs::read_to_string(manifest.join(script)).unwrap();
        let blocks = fenced_blocks(&docs, info);
        assert_eq!(
            blocks.len(),
            1,
            "one `{info}` block in docs/grpc-and-cli.md"
        );
        let shown = |line: &str| {
            let line = line.trim_start();
            !(line.starts_with("import ")
                || line.starts_with("from ")
                || line.contains("= require(")
                || line.starts_with('#')
                || line.starts_with("//"))
        };
        for paragraph in blocks[0].split("\n\n") {
            let paragraph = paragraph.trim_end();
            if paragraph.lines().any(shown) {
                assert!(
                    script_text.contains(paragraph),
                    "{script} lacks this part of the `{info}` snippet:\n{paragraph}"
                );
            }
        }
    }
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks: Vec<String> = WALKTHROUGH_FILES
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(manifest.join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            walkthrough_blocks(&text)
        })
        .collect();
    assert!(blocks.len() >= 10, "the walk-through lost its blocks");
    let (first, second, http) = (free_port(), free_port(), free_port());
    // Through placeholders, so that a port chosen for one pattern cannot
    // contain another pattern and be rewritten again.
    let script: String = blocks
        .concat()
        .replace("50051", "\u{1}FIRST\u{1}")
        .replace("50052", "\u{1}SECOND\u{1}")
        .replace("4566", "\u{1}HTTP\u{1}")
        .replace("\u{1}FIRST\u{1}", &first.to_string())
        .replace("\u{1}SECOND\u{1}", &second.to_string())
        .replace("\u{1}HTTP\u{1}", &http.to_string());

    let python = crate::python::python();
    let work = tempfile::tempdir().unwrap();
    let bin = work.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let grpcurl = bin.join("grpcurl");
    std::fs::write(
        &grpcurl,
        format!(
            "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
            python.display(),
            manifest.join("tests/python/grpcurl.py").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &grpcurl,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    // `aws`: the aws CLI of the venv (the awscli package).
    let aws = bin.join("aws");
    std::fs::write(
        &aws,
        format!("#!/bin/sh\nexec '{}' -m awscli \"$@\"\n", python.display()),
    )
    .unwrap();
    std::fs::set_permissions(&aws, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let prelude = r#"set -euo pipefail
# `cargo run --release -- ARGS`: the binary under test. The walk-through runs
# it in the background, where exec makes $! the server's own pid.
cargo() {
  [ "$1 $2 $3" = "run --release --" ] || { echo "unexpected: cargo $*" >&2; return 1; }
  shift 3
  if [ "$BASHPID" != "$$" ]; then exec "$ALIASD_BIN" "$@"; else "$ALIASD_BIN" "$@"; fi
}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"#;
    let path = work.path().join("walkthrough.sh");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(prelude.as_bytes()).unwrap();
    file.write_all(script.as_bytes()).unwrap();
    file.write_all(b"echo WALKTHROUGH-COMPLETE\n").unwrap();
    drop(file);

    let output = Command::new("timeout")
        .args(["120", "bash"])
        .arg(&path)
        .current_dir(work.path())
        .env("ALIASD_BIN", env!("CARGO_BIN_EXE_aliasd"))
        .env("TMPDIR", work.path())
        .env("RUST_LOG", "warn")
        // No user's AWS configuration can change what the aws CLI does.
        .env("HOME", work.path())
        .env("AWS_CONFIG_FILE", work.path().join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            work.path().join("no-aws-credentials"),
        )
        .env("AWS_PAGER", "")
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("WALKTHROUGH-COMPLETE"),
        "the walk-through failed ({}):\n--- script ---\n{script}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    // Spot checks that the blocks really ran against a server.
    assert!(stdout.contains("aliasd.v1.AliasService"), "{stdout}");
    assert!(
        stdout.contains("\"aliasName\": \"alias/billing\""),
        "{stdout}"
    );
    assert!(stdout.contains("ETAG_MISMATCH"), "{stdout}");
    assert!(stdout.contains("x-request-id: my-trace-1"), "{stdout}");
    // The command-line client's tour.
    assert!(
        stdout.contains(
            "2 ALIAS_EVENT_TYPE_RENAMED alias/billing\n3 ALIAS_EVENT_TYPE_DELETED alias/billing"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("exit 3"), "{stdout}");
}
