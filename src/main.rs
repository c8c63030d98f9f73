//! The `aliasd` command line: parse flags, call into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use aliasd::cli::{AliasCommand, AuditCommand, ClientArgs, ClientCommand, KeyCommand};

use aliasd::domain::names::counted;
use aliasd::domain::ops::Limits;
use aliasd::domain::SystemClock;
use aliasd::server::config::{LogFormat, QuotaFlags, ServeConfig, StoreFlags};

#[derive(Parser)]
#[command(
    name = "aliasd",
    version = aliasd::VERSION_LINE,
    about = "A key-and-alias registry served over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = "Examples:\n  \
        aliasd serve\n  \
        aliasd serve --listen 0.0.0.0:50051 --auth-file auth.toml --tls-cert server.pem --tls-key server.key\n  \
        aliasd serve --ephemeral --http-listen 127.0.0.1:4566")]
    Serve(Box<ServeConfig>),
    /// Keys of a running server: create, describe, list, enable, disable,
    /// schedule-deletion, cancel-deletion, rotate, enable-rotation,
    /// disable-rotation, rotation-status, rotations.
    Key {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Aliases of a running server: create, get, update, rename, delete,
    /// list, watch.
    Alias {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// The audit log of a running server.
    Audit {
        #[command(flatten)]
        client: ClientArgs,
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Back up a running server: a snapshot of its whole store at one
    /// instant, written to a new file (needs kms:Backup).
    #[command(after_help = "Example:\n  aliasd backup --file aliasd-$(date +%F).backup")]
    Backup {
        #[command(flatten)]
        client: ClientArgs,
        /// The file to write (it must not exist).
        #[arg(long, short = 'f')]
        file: PathBuf,
    },
    /// Check that a server answers: one empty call (DiagnosticsService/Ping)
    /// and how long it took.
    #[command(
        after_help = "Examples:\n  aliasd ping\n  aliasd ping --endpoint https://aliasd.example:50051 -q"
    )]
    Ping {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The client's version and commit, and the server's (with its backend,
    /// region and features: DiagnosticsService/GetServerInfo).
    #[command(after_help = "Examples:\n  \
        aliasd version\n  \
        aliasd version --profile prod -o json\n  \
        aliasd version --query server.version")]
    Version {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// The client's settings, each with where it came from (flag,
    /// environment, profile or default), and the config file's profiles.
    /// Connects to nothing; a token is never shown.
    #[command(after_help = "The config file is $ALIASD_CONFIG, else \
        $XDG_CONFIG_HOME/aliasd/config.toml, else ~/.config/aliasd/config.toml:\n\n  \
        default_profile = \"local\"\n\n  \
        [profiles.local]\n  \
        endpoint = \"127.0.0.1:50051\"\n\n  \
        [profiles.prod]\n  \
        endpoint = \"https://aliasd.example.com:50051\"\n  \
        tls_ca = \"~/.config/aliasd/prod-ca.pem\"\n  \
        token_command = \"vault kv get -field=token secret/aliasd\"\n\n\
        Examples:\n  \
        aliasd config\n  \
        aliasd config --profile prod -o json")]
    Config {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Restore a backup into a new or empty data directory, then check it.
    /// Exit 0: restored and every invariant holds; 1: not restored (nothing
    /// is left behind) or problems found.
    #[command(
        after_help = "Example:\n  aliasd restore --data-dir ./restored aliasd-2026-11-23.backup"
    )]
    Restore {
        /// Where to restore: with --backend sled a new or empty --data-dir,
        /// with --backend etcd an empty --etcd-prefix.
        #[command(flatten)]
        store: StoreFlags,
        /// The quotas the restored store is checked against.
        #[command(flatten)]
        quotas: QuotaFlags,
        /// The backup file.
        file: PathBuf,
    },
    #[command(flatten)]
    Crypto(aliasd::cli::crypto::CryptoCommand),
    /// Auth file tools: a new token, a check of a file.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Root key tools: a new root key file.
    RootKey {
        #[command(subcommand)]
        command: RootKeyCommand,
    },
    /// Print a shell completion script: `source <(aliasd completions bash)`.
    /// For alias names and key ids completed from the server, use the
    /// dynamic script instead: `source <(COMPLETE=bash aliasd)`.
    #[command(after_help = "Examples:\n  \
        aliasd completions zsh > ~/.zfunc/_aliasd\n  \
        source <(COMPLETE=bash aliasd)    # alias names and key ids from the server")]
    Completions {
        /// bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Measure throughput and latency of a server on loopback (one it starts, or --endpoint).
    #[command(
        after_help = "Examples:\n  aliasd bench\n  aliasd bench --aliases 1000000 --seconds 10"
    )]
    Bench(aliasd::bench::BenchArgs),
    /// The benchmark's floor: a bare tonic server (an empty unary RPC, no
    /// layers) on an ephemeral loopback port; `aliasd bench` runs it.
    #[command(hide = true)]
    BenchFloor,
    /// Verify the store's invariants (the server must not be running on it).
    /// Exit 0: all hold; 1: problems found; 2: no store to check.
    #[command(after_help = "Example:\n  aliasd check --data-dir ./aliasd-data")]
    Check {
        /// The store to check: an existing --data-dir (nothing is created),
        /// or --backend etcd and its prefix.
        #[command(flatten)]
        store: StoreFlags,
        /// The quotas to check against.
        #[command(flatten)]
        quotas: QuotaFlags,
    },
}

#[derive(Subcommand)]
enum RootKeyCommand {
    /// Write a new random root key (32 bytes, base64) to FILE, readable by
    /// its owner only; an existing file is never overwritten.
    #[command(after_help = "Example:\n  aliasd root-key new /etc/aliasd/root.key")]
    New {
        /// The file to create.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuthCommand {
    /// A new random bearer token, and the auth-file entry that admits it.
    #[command(
        after_help = "Example:\n  aliasd auth token --name deployer --account 111122223333 >> auth.toml"
    )]
    Token {
        /// The principal's name in the auth file.
        #[arg(long)]
        name: String,
        /// The principal's account.
        #[arg(long, default_value = "000000000000")]
        account: String,
        /// Print only the token.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check an auth file as the server would (exit 0: accepted; 1: refused).
    #[command(
        after_help = "Example:\n  aliasd auth check auth.toml && kill -HUP \"$(pidof aliasd)\""
    )]
    Check {
        /// The auth file (TOML).
        file: PathBuf,
    },
}

/// Logs to stderr through a buffer a background thread writes out in
/// batches ([`aliasd::operator::log_sink`]): a call's log line is formatted
/// on the call's thread and appended to the buffer; no call waits on a
/// write to stderr, nor wakes a thread per line. A reader that cannot keep
/// up loses lines (counted, and reported in the log) rather than stalling
/// calls. The guard writes out what is buffered when dropped, at the end of
/// `serve`.
fn init_logging(format: LogFormat) -> Option<aliasd::operator::log_sink::FlushGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // tonic reports a failed TLS handshake on the gRPC port only at
        // DEBUG (and without the peer): shown by default.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,tonic::transport::server::io_stream=debug")
        });
    let (writer, guard) = match aliasd::operator::log_sink::batched(std::io::stderr()) {
        Ok(started) => started,
        Err(error) => {
            eprintln!("aliasd: cannot start the log writer thread: {error}");
            return None;
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log reader that went away must not kill the server: by default
        // a failed write is reported with eprintln!, which panics on a
        // closed stderr.
        .log_internal_errors(false);
    match format {
        LogFormat::Text => builder.init(),
        // The call's span once (as "span"), not again in "spans".
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
    Some(guard)
}

/// `[env: NAME=]` in help reads as if NAME were set to nothing: for a
/// variable that is not set, help shows only its name.
fn hide_unset_env_values(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            let unset = arg
                .get_env()
                .is_some_and(|name| std::env::var_os(name).is_none());
            // Secrets (a token, a password) stay hidden when set.
            let hidden = arg.is_hide_env_values_set();
            arg.hide_env_values(unset || hidden)
        })
        .mut_subcommands(hide_unset_env_values)
}

fn main() -> ExitCode {
    // `COMPLETE=bash aliasd` prints the dynamic completion script; the
    // shell then calls back with COMPLETE set to complete a line (alias
    // names and key ids from the server). Otherwise this returns at once.
    clap_complete::CompleteEnv::with_factory(Cli::command).complete();
    let matches = hide_unset_env_values(Cli::command()).get_matches();
    let command = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli.command,
        Err(error) => error.exit(),
    };
    match command {
        Command::Serve(config) => serve(*config),
        Command::Bench(args) => bench(args),
        Command::BenchFloor => block_on(true, async {
            match aliasd::bench::floor::serve_floor().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("aliasd bench-floor: {error}");
                    ExitCode::FAILURE
                }
            }
        }),
        Command::Key { client, command } => {
            run_client(&matches, client, ClientCommand::Key(command))
        }
        Command::Alias { client, command } => {
            run_client(&matches, client, ClientCommand::Alias(command))
        }
        Command::Audit { client, command } => {
            run_client(&matches, client, ClientCommand::Audit(command))
        }
        Command::Backup { client, file } => {
            run_client(&matches, client, ClientCommand::Backup { output: file })
        }
        Command::Ping { client } => run_client(&matches, client, ClientCommand::Ping),
        Command::Version { client } => run_client(&matches, client, ClientCommand::Version),
        Command::Config { mut client } => {
            use aliasd::cli::profile;
            let leaf = profile::leaf(&matches);
            match profile::resolve(&mut client, leaf, profile::Purpose::Show)
                .and_then(|resolved| query_output(leaf, &mut client).map(|()| resolved))
            {
                Ok(resolved) => aliasd::cli::show_config(&client, &resolved),
                Err(failure) => aliasd::cli::exit(&failure, client.output),
            }
        }
        Command::Crypto(command) => {
            let client = command.client().clone();
            run_client(&matches, client, ClientCommand::Crypto(Box::new(command)))
        }
        Command::RootKey {
            command: RootKeyCommand::New { file },
        } => match aliasd::crypto::RootKey::create(&file) {
            Ok(key) => {
                aliasd::outln!(
                    "wrote a new root key to {} (fingerprint {}); keep a copy apart from the \
                     data and its backups",
                    file.display(),
                    key.fingerprint()
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("aliasd root-key new: {}", error.message);
                ExitCode::FAILURE
            }
        },
        Command::Restore {
            store,
            quotas,
            file,
        } => restore(&store, &file, quotas.limits()),
        Command::Auth {
            command:
                AuthCommand::Token {
                    name,
                    account,
                    quiet,
                },
        } => aliasd::cli::auth_file::token(&name, &account, quiet),
        Command::Auth {
            command: AuthCommand::Check { file },
        } => aliasd::cli::auth_file::check(&file),
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "aliasd", &mut script);
            aliasd::cli::write_stdout(&script);
            ExitCode::SUCCESS
        }
        Command::Check { store, quotas } => check(&store, quotas.limits()),
    }
}

/// Runs a client command with the settings its profile fills in.
fn run_client(
    matches: &clap::ArgMatches,
    mut client: ClientArgs,
    command: ClientCommand,
) -> ExitCode {
    use aliasd::cli::profile;
    let leaf = profile::leaf(matches);
    let resolved = profile::resolve(&mut client, leaf, profile::Purpose::Call)
        .and_then(|_| query_output(leaf, &mut client));
    if let Err(failure) = resolved {
        return aliasd::cli::exit(&failure, client.output);
    }
    block_on(false, aliasd::cli::run(&client, command))
}

/// With --query, the output is JSON (the query runs over it): asking for a
/// table as well is a usage error, and so is --quiet (clap refuses that).
fn query_output(
    leaf: &clap::ArgMatches,
    client: &mut ClientArgs,
) -> Result<(), aliasd::cli::Failure> {
    let Some(query) = &client.query else {
        return Ok(());
    };
    let table_asked = client.output == aliasd::cli::Output::Table
        && matches!(
            leaf.value_source("output"),
            Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
        );
    if table_asked {
        return Err(aliasd::cli::Failure::usage(
            "--query prints JSON (the query runs over the JSON output); drop -o table".into(),
        ));
    }
    aliasd::cli::set_query(query)?;
    client.output = aliasd::cli::Output::Json;
    Ok(())
}

/// The async runtime: a thread per core (`multi_thread`) or this thread
/// only; None after saying why it could not start.
fn runtime(multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let mut builder = match multi_thread {
        true => tokio::runtime::Builder::new_multi_thread(),
        false => tokio::runtime::Builder::new_current_thread(),
    };
    builder
        .enable_all()
        .build()
        .map_err(|error| eprintln!("aliasd: cannot start the async runtime: {error}"))
        .ok()
}

/// Runs `work` to its end on a new runtime.
fn block_on(multi_thread: bool, work: impl std::future::Future<Output = ExitCode>) -> ExitCode {
    match runtime(multi_thread) {
        Some(runtime) => runtime.block_on(work),
        None => ExitCode::FAILURE,
    }
}

fn serve(config: ServeConfig) -> ExitCode {
    let Some(_log_writer) = init_logging(config.log_format) else {
        return ExitCode::FAILURE;
    };
    let Some(runtime) = runtime(true) else {
        return ExitCode::FAILURE;
    };
    let code = runtime.block_on(async {
        let shutdown = aliasd::server::termination_signal();
        match aliasd::server::start(config, Arc::new(SystemClock), shutdown).await {
            Ok(mut running) => match running.wait().await {
                Ok(()) => ExitCode::SUCCESS,
                // 3 after a store failure, 1 otherwise (docs/reference.md: exit codes).
                Err(error) => {
                    // Not "server failed": the error's own message begins so.
                    tracing::error!(%error, "exiting");
                    ExitCode::from(error.exit_code())
                }
            },
            Err(error) => {
                tracing::error!(%error, "cannot start");
                ExitCode::FAILURE
            }
        }
    });
    // The store is flushed and closed; anything still running (a connection
    // past the drain timeout) is abandoned rather than waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

fn bench(args: aliasd::bench::BenchArgs) -> ExitCode {
    block_on(true, async {
        match aliasd::bench::run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("aliasd bench: {error}");
                ExitCode::FAILURE
            }
        }
    })
}

fn restore(store: &StoreFlags, file: &std::path::Path, limits: Limits) -> ExitCode {
    use aliasd::store::snapshot;
    let (outcome, into) = match store.etcd_if_chosen() {
        Some(etcd) => (
            snapshot::restore_etcd(&etcd, file, &limits),
            format!("etcd prefix {}", etcd.prefix),
        ),
        None => (
            snapshot::restore_dir(&store.data_dir, file, &limits),
            store.data_dir.display().to_string(),
        ),
    };
    match outcome {
        Ok((summary, report)) => {
            aliasd::outln!(
                "restored {} into {into}: {} ({}), sha256 {}",
                file.display(),
                counted(summary.entries, "record", "records"),
                report.summary(),
                summary.sha256
            );
            verdict(&report)
        }
        Err(error) => {
            eprintln!("aliasd restore: {}", error.message);
            ExitCode::FAILURE
        }
    }
}

fn check(store: &StoreFlags, limits: Limits) -> ExitCode {
    let data_dir = &store.data_dir;
    // The root key the keys' material is checked against: the flag's, or
    // the default file beside the data directory if there is one.
    let root = match store.root_key_path().filter(|path| path.exists()) {
        Some(path) => match aliasd::crypto::RootKey::load(&path) {
            Ok(root) => Some(root),
            Err(error) => {
                eprintln!("aliasd check: {}", error.message);
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let (checked, what) = match store.etcd_if_chosen() {
        Some(etcd) => (
            aliasd::store::check::check_etcd(&etcd, &limits, root.as_ref()),
            format!("etcd prefix {}", etcd.prefix),
        ),
        None => (
            aliasd::store::check::check_dir(data_dir, &limits, root.as_ref())
                .map_err(|e| e.to_string()),
            data_dir.display().to_string(),
        ),
    };
    let report = match checked {
        Ok(report) => report,
        Err(error) => {
            eprintln!("aliasd check: {error}");
            return ExitCode::from(2);
        }
    };
    aliasd::outln!(
        "checked {what}: {}, {}",
        report.summary(),
        counted(
            report.requests as u64,
            "request_id record",
            "request_id records"
        )
    );
    match &root {
        Some(root) => aliasd::outln!(
            "key material checked against root key {}",
            root.fingerprint()
        ),
        None => aliasd::outln!("key material not checked: no root key file (give --root-key-file)"),
    }
    verdict(&report)
}

/// Prints a check's problems, or that there are none: exit 0 when clean.
fn verdict(report: &aliasd::store::check::Report) -> ExitCode {
    if report.is_clean() {
        aliasd::outln!("ok: all invariants hold");
        return ExitCode::SUCCESS;
    }
    for problem in &report.problems {
        aliasd::outln!("PROBLEM: {problem}");
    }
    aliasd::outln!("{} problem(s) found", report.problems.len());
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command a user can run shows examples in its --help, and every
    /// argument says what it is.
    #[test]
    fn every_command_has_examples_and_every_argument_a_description() {
        fn walk(
            command: &clap::Command,
            path: &str,
            missing: &mut Vec<String>,
            leaves: &mut usize,
        ) {
            let path = format!("{path} {}", command.get_name());
            let leaf = !command.has_subcommands();
            if leaf && !command.is_hide_set() {
                *leaves += 1;
                let examples = command
                    .get_after_help()
                    .map(|help| help.to_string())
                    .unwrap_or_default();
                if !examples.contains("Example") {
                    missing.push(format!("{path}: no examples"));
                }
                for arg in command.get_arguments() {
                    if arg.is_hide_set() || arg.get_id() == "help" || arg.get_id() == "version" {
                        continue;
                    }
                    if arg.get_help().is_none() && arg.get_long_help().is_none() {
                        missing.push(format!("{path} {}: no description", arg.get_id()));
                    }
                }
            }
            for sub in command.get_subcommands() {
                if sub.get_name() != "help" {
                    walk(sub, &path, missing, leaves);
                }
            }
        }
        let (mut missing, mut leaves) = (Vec::new(), 0);
        walk(&Cli::command(), "", &mut missing, &mut leaves);
        assert!(missing.is_empty(), "{}", missing.join("\n"));
        // key, alias, crypto, audit and the tools: every one was looked at.
        assert!(leaves >= 45, "{leaves} commands");
    }
}
