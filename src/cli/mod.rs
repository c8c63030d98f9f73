//! `aliasd key|alias|audit ...`: a command-line client of a running server,
//! over the same gRPC API every other client uses. It translates flags into
//! requests and answers into tables or JSON; it holds no rules of its own.
//!
//! - [`ClientArgs`]: where the server is and how to reach it (flags, each
//!   with an environment variable), and how to print.
//! - [`commands`]: one function per command.
//! - [`render`]: tables, `--output json`, `--quiet`.
//! - [`failure`]: a failed call as a message, a reason, a hint and an exit
//!   code.

pub mod auth_file;
mod commands;
pub mod complete;
pub mod crypto;
mod failure;
pub mod profile;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

pub use failure::{exit, Failure};

use crate::pb;

/// The default endpoint: the server's default `--listen`.
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:50051";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns for people.
    Table,
    /// One JSON document (JSON lines for `alias watch`), in the proto3
    /// JSON mapping that grpcurl and generated clients use.
    Json,
}

/// How to reach the server and how to print; each flag also reads an
/// environment variable. Listed in `--help` under their own heading, after
/// the command's own options.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Client options")]
pub struct ClientArgs {
    /// The server: HOST:PORT, http://HOST:PORT or https://HOST:PORT (a
    /// profile's endpoint replaces the default; `aliasd config` shows which
    /// is used).
    #[arg(long, global = true, env = "ALIASD_ENDPOINT", default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Bearer token (the server's auth file holds its SHA-256).
    #[arg(long, global = true, env = "ALIASD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to verify the server with; turns TLS on.
    /// An https:// endpoint without it uses the system's roots.
    #[arg(long, global = true, env = "ALIASD_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a server that asks for one.
    #[arg(long, global = true, env = "ALIASD_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "ALIASD_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
    /// The name to check in the server's certificate (default: the
    /// endpoint's host).
    #[arg(long, global = true, env = "ALIASD_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// How to print answers.
    #[arg(
        long,
        short,
        global = true,
        env = "ALIASD_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    pub output: Output,
    /// Print only the id or name of what a command made or found (one per
    /// line for lists), for scripts.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Seconds a call may take before it is abandoned.
    #[arg(long, global = true, env = "ALIASD_TIMEOUT_SECS", default_value_t = 10.0,
          value_parser = timeout_secs)]
    pub timeout_secs: f64,
    /// The profile of the config file to use (`aliasd config` shows the
    /// file and what each setting came from).
    #[arg(long, global = true, env = "ALIASD_PROFILE")]
    pub profile: Option<String>,
    /// A JMESPath expression applied to the JSON output (implies -o json),
    /// as the aws CLI's --query, e.g. "aliases[].aliasName".
    #[arg(long, global = true, value_parser = query, conflicts_with = "quiet")]
    pub query: Option<String>,
}

/// Checks a --query expression when the command line is read.
fn query(text: &str) -> Result<String, String> {
    jmespath::compile(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("not a JMESPath expression: {e}"))
}

fn timeout_secs(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value > 0.0 && value <= 3600.0 => Ok(value),
        _ => Err(format!("{text} is not a number of seconds in (0, 3600]")),
    }
}

/// `aliasd key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints it (--quiet: its id).
    #[command(after_help = "Examples:\n  \
        aliasd key create --description payments\n  \
        aliasd key create --key-spec RSA_2048 --key-usage SIGN_VERIFY\n  \
        KEY=$(aliasd key create -q)")]
    Create {
        /// Free text about the key, up to 8192 characters.
        #[arg(long, default_value = "")]
        description: String,
        /// SYMMETRIC_DEFAULT (default), RSA_2048, RSA_3072, RSA_4096,
        /// ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1,
        /// HMAC_224, HMAC_256, HMAC_384, HMAC_512, SM2.
        #[arg(long, value_parser = key_spec)]
        key_spec: Option<pb::KeySpec>,
        /// ENCRYPT_DECRYPT, SIGN_VERIFY, GENERATE_VERIFY_MAC, KEY_AGREEMENT.
        #[arg(long, value_parser = key_usage)]
        key_usage: Option<pb::KeyUsage>,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Show a key, by key id, key ARN, alias name or alias ARN.
    #[command(after_help = "Examples:\n  \
        aliasd key describe alias/payments\n  \
        aliasd key describe 0d0466b0-e727-4d9c-b35d-f84bb474a37f -o json")]
    Describe {
        /// The key: its id, its ARN, one of its alias names or an alias ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// List the account's keys (every page; --limit to stop).
    #[command(after_help = "Examples:\n  \
        aliasd key list\n  \
        aliasd key list --limit 10 -q")]
    List {
        #[command(flatten)]
        limit: Limit,
    },
    /// Enable a key.
    #[command(after_help = "Example:\n  aliasd key enable 0d0466b0-e727-4d9c-b35d-f84bb474a37f")]
    Enable {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Disable a key (its aliases stay; it cannot be used until enabled).
    #[command(after_help = "Example:\n  aliasd key disable 0d0466b0-e727-4d9c-b35d-f84bb474a37f")]
    Disable {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Schedule a key's deletion; its aliases go with it.
    #[command(after_help = "Example:\n  \
        aliasd key schedule-deletion 0d0466b0-e727-4d9c-b35d-f84bb474a37f --pending-window-days 7")]
    ScheduleDeletion {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        /// Days until deletion, 7..=30 (the server's default: 30).
        #[arg(long)]
        pending_window_days: Option<i32>,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Give a symmetric key new material now (older ciphertexts still
    /// decrypt); prints the key.
    #[command(after_help = "Example:\n  aliasd key rotate 0d0466b0-e727-4d9c-b35d-f84bb474a37f")]
    Rotate {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// Rotate a symmetric key automatically, every --period-days.
    #[command(after_help = "Example:\n  \
        aliasd key enable-rotation 0d0466b0-e727-4d9c-b35d-f84bb474a37f --period-days 90")]
    EnableRotation {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        /// Days between rotations, 90..=2560 (default 365).
        #[arg(long)]
        period_days: Option<i32>,
    },
    /// Stop rotating a key automatically.
    #[command(
        after_help = "Example:\n  aliasd key disable-rotation 0d0466b0-e727-4d9c-b35d-f84bb474a37f"
    )]
    DisableRotation {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// Whether and when a key rotates.
    #[command(
        after_help = "Example:\n  aliasd key rotation-status 0d0466b0-e727-4d9c-b35d-f84bb474a37f"
    )]
    RotationStatus {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// A key's rotations, oldest first.
    #[command(
        after_help = "Example:\n  aliasd key rotations 0d0466b0-e727-4d9c-b35d-f84bb474a37f"
    )]
    Rotations {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// Tag a key (a tag key given again gets the new value).
    #[command(after_help = "Example:\n  \
        aliasd key tag 0d0466b0-e727-4d9c-b35d-f84bb474a37f team=payments env=prod")]
    Tag {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        /// KEY=VALUE pairs (50 tags at most on a key; keys 1..128 characters,
        /// values 0..256; no key beginning aws:).
        #[arg(required = true, value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Remove tags from a key (keys it does not have are not an error).
    #[command(
        after_help = "Example:\n  aliasd key untag 0d0466b0-e727-4d9c-b35d-f84bb474a37f env"
    )]
    Untag {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        /// The tag keys to remove.
        #[arg(required = true, value_name = "TAG_KEY")]
        tag_keys: Vec<String>,
    },
    /// A key's tags, in tag-key order.
    #[command(after_help = "Example:\n  aliasd key tags 0d0466b0-e727-4d9c-b35d-f84bb474a37f")]
    Tags {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// Print a key's policy (JSON; AWS's default when none was set).
    #[command(after_help = "Example:\n  aliasd key policy 0d0466b0-e727-4d9c-b35d-f84bb474a37f")]
    Policy {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
    },
    /// Set a key's policy from a file of JSON (at most 32 KiB). Kept for the
    /// tools that read it; who may do what is the auth file's.
    #[command(after_help = "Example:\n  \
        aliasd key put-policy 0d0466b0-e727-4d9c-b35d-f84bb474a37f --file policy.json")]
    PutPolicy {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        /// The policy document ("-": stdin).
        #[arg(long, value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Set a key's description.
    #[command(after_help = "Example:\n  \
        aliasd key set-description 0d0466b0-e727-4d9c-b35d-f84bb474a37f \"payments, 2027\"")]
    SetDescription {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        /// Free text, up to 8192 characters.
        description: String,
    },
    /// Cancel a scheduled deletion (the key comes back disabled).
    #[command(after_help = "Example:\n  \
        aliasd key cancel-deletion 0d0466b0-e727-4d9c-b35d-f84bb474a37f")]
    CancelDeletion {
        /// The key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_refs))]
        key: String,
        #[command(flatten)]
        retry: RequestId,
    },
}

/// `aliasd alias ...`
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create an alias for a key; prints it (--quiet: its name).
    #[command(after_help = "Examples:\n  \
        aliasd alias create alias/payments 0d0466b0-e727-4d9c-b35d-f84bb474a37f\n  \
        aliasd alias create alias/payments \"$(aliasd key create -q)\"")]
    Create {
        /// The new name: alias/ and then letters, digits, /, _ and -.
        name: String,
        /// The key: its id or ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_ids))]
        key: String,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Show an alias.
    #[command(after_help = "Examples:\n  \
        aliasd alias get alias/payments\n  \
        aliasd alias get alias/payments -o json")]
    Get {
        /// The alias: its name or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::alias_names))]
        name: String,
    },
    /// Point an alias at another key (of the same type and usage).
    #[command(after_help = "Examples:\n  \
        aliasd alias update alias/payments 7c1f3a52-4b2d-4c59-9a0e-3d1e2f6a8b90\n  \
        ETAG=$(aliasd alias get alias/payments -o json | jq -r .etag)\n  \
        aliasd alias update alias/payments 7c1f3a52-4b2d-4c59-9a0e-3d1e2f6a8b90 --etag \"$ETAG\"")]
    Update {
        /// The alias to re-point: its name.
        #[arg(add = ArgValueCompleter::new(complete::alias_names))]
        name: String,
        /// The new key: its id or its ARN.
        #[arg(add = ArgValueCompleter::new(complete::key_ids))]
        key: String,
        /// Only if the alias is still at this etag (from `alias get`).
        #[arg(long)]
        etag: Option<String>,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Rename an alias (it keeps its key).
    #[command(after_help = "Example:\n  aliasd alias rename alias/payments alias/payments-v1")]
    Rename {
        /// The alias's name now.
        #[arg(add = ArgValueCompleter::new(complete::alias_names))]
        name: String,
        /// Its new name (not in use).
        new_name: String,
        /// Only if the alias is still at this etag (from `alias get`).
        #[arg(long)]
        etag: Option<String>,
        #[command(flatten)]
        retry: RequestId,
    },
    /// Delete an alias (its key stays).
    #[command(after_help = "Example:\n  aliasd alias delete alias/payments-v1")]
    Delete {
        /// The alias's name.
        #[arg(add = ArgValueCompleter::new(complete::alias_names))]
        name: String,
        /// Only if the alias is still at this etag (from `alias get`).
        #[arg(long)]
        etag: Option<String>,
        #[command(flatten)]
        retry: RequestId,
    },
    /// List the account's aliases, or one key's (every page; --limit to
    /// stop).
    #[command(after_help = "Examples:\n  \
        aliasd alias list\n  \
        aliasd alias list --key alias/payments -q")]
    List {
        /// Only the aliases of this key (id, ARN or alias name).
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        limit: Limit,
    },
    /// Print alias changes as they happen. After a lost connection it
    /// reconnects and resumes after the last change it printed.
    #[command(after_help = "Examples:\n  \
        aliasd alias watch\n  \
        aliasd alias watch --key 0d0466b0-e727-4d9c-b35d-f84bb474a37f -o json\n  \
        REV=$(aliasd alias list -o json | jq -r .revision); aliasd alias watch --from-revision \"$REV\"")]
    Watch {
        /// Only the changes touching this key.
        #[arg(long)]
        key: Option<String>,
        /// Start after this revision (default: now; `alias list --output
        /// json` prints the revision a listing was read at).
        #[arg(long)]
        from_revision: Option<u64>,
        /// Stop after this many changes.
        #[arg(long)]
        count: Option<u64>,
    },
}

/// `aliasd audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List the account's audit records, oldest first (every page;
    /// --limit to stop).
    #[command(after_help = "Examples:\n  \
        aliasd audit list --since 2026-11-23T08:00:00Z\n  \
        aliasd audit list --principal deployer --action kms:UpdateAlias -o json")]
    List {
        /// Only this principal's calls.
        #[arg(long)]
        principal: Option<String>,
        /// Only this action, e.g. kms:CreateAlias.
        #[arg(long)]
        action: Option<String>,
        /// Only records at or after this time (RFC 3339, e.g.
        /// 2026-11-23T08:00:00Z).
        #[arg(long, value_parser = rfc3339)]
        since: Option<i64>,
        /// Only records before this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        until: Option<i64>,
        #[command(flatten)]
        limit: Limit,
    },
}

/// Parses an enum flag given as its short name (RSA_2048) or its proto name
/// (KEY_SPEC_RSA_2048), in any case.
pub(crate) fn enum_flag<E>(
    value: &str,
    prefix: &str,
    parse: fn(&str) -> Option<E>,
) -> Result<E, String> {
    let upper = value.trim().to_ascii_uppercase().replace('-', "_");
    let full = match upper.starts_with(prefix) {
        true => upper,
        false => format!("{prefix}{upper}"),
    };
    match parse(&full) {
        Some(parsed) if !full.ends_with("_UNSPECIFIED") => Ok(parsed),
        _ => Err("see --help for the values".into()),
    }
}

fn key_spec(value: &str) -> Result<pb::KeySpec, String> {
    enum_flag(value, "KEY_SPEC_", pb::KeySpec::from_str_name)
}

fn key_usage(value: &str) -> Result<pb::KeyUsage, String> {
    enum_flag(value, "KEY_USAGE_", pb::KeyUsage::from_str_name)
}

fn rfc3339(text: &str) -> Result<i64, String> {
    crate::domain::time::parse_rfc3339(text)
        .ok_or_else(|| format!("{text} is not an RFC 3339 time such as 2026-11-23T08:00:00Z"))
}

#[derive(Debug, Clone, Args)]
pub struct RequestId {
    /// Idempotency key (a UUID). Default: a new one, printed if the outcome
    /// is unknown so the same change can be retried safely.
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Limit {
    /// Stop after this many items.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
}

/// A connected client: the channel and what every request carries.
pub struct Client {
    channel: Channel,
    args: ClientArgs,
}

impl Client {
    /// Connects to `--endpoint` (failing fast when nothing answers there).
    pub async fn connect(args: &ClientArgs) -> Result<Client, Failure> {
        let endpoint = endpoint(args)?;
        let tls = endpoint.uri().scheme_str() == Some("https");
        let channel = endpoint.connect().await.map_err(|error| {
            Failure::unreachable(&args.endpoint, &crate::cli::failure::chain(&error), tls)
        })?;
        Ok(Client {
            channel,
            args: args.clone(),
        })
    }

    /// `message` as a request with the token and the call's deadline.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(Duration::from_secs_f64(self.args.timeout_secs));
        self.authorize(&mut request);
        request
    }

    /// `message` as a streaming request: the token, no deadline.
    fn stream_request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        self.authorize(&mut request);
        request
    }

    fn authorize<T>(&self, request: &mut tonic::Request<T>) {
        if let Some(token) = &self.args.token {
            if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
                request.metadata_mut().insert("authorization", value);
            }
        }
    }
}

/// The tonic endpoint `--endpoint` and the TLS flags describe.
fn endpoint(args: &ClientArgs) -> Result<Endpoint, Failure> {
    let tls_wanted = args.tls_ca.is_some() || args.tls_client_cert.is_some();
    let text = args.endpoint.trim();
    let uri = if text.contains("://") {
        text.to_owned()
    } else if tls_wanted {
        format!("https://{text}")
    } else {
        format!("http://{text}")
    };
    let bad = |why: String| Failure::usage(format!("--endpoint {text}: {why}"));
    let mut endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| bad(e.to_string()))?;
    let scheme = uri.split("://").next().unwrap_or_default();
    match scheme {
        "http" if tls_wanted => {
            return Err(bad(
                "an http:// endpoint with TLS flags; use https:// (or HOST:PORT)".into(),
            ))
        }
        "http" => {}
        "https" => {
            endpoint = endpoint
                .tls_config(tls(args)?)
                .map_err(|e| bad(e.to_string()))?
        }
        other => return Err(bad(format!("unknown scheme {other}://"))),
    }
    // The server's audit log names the client (tonic adds its own name).
    let endpoint = endpoint
        .user_agent(concat!("aliasd-cli/", env!("CARGO_PKG_VERSION")))
        .map_err(|e| bad(e.to_string()))?;
    Ok(endpoint
        .connect_timeout(Duration::from_secs_f64(args.timeout_secs.min(10.0)))
        .tcp_nodelay(true))
}

fn tls(args: &ClientArgs) -> Result<ClientTlsConfig, Failure> {
    let read = |flag: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| Failure::usage(format!("{flag} {}: {e}", path.display())))
    };
    let mut config = ClientTlsConfig::new();
    config = match &args.tls_ca {
        Some(ca) => config.ca_certificate(Certificate::from_pem(read("--tls-ca", ca)?)),
        None => config.with_native_roots(),
    };
    match (&args.tls_client_cert, &args.tls_client_key) {
        (Some(cert), Some(key)) => {
            config = config.identity(Identity::from_pem(
                read("--tls-client-cert", cert)?,
                read("--tls-client-key", key)?,
            ))
        }
        (None, None) => {}
        _ => {
            return Err(Failure::usage(
                "--tls-client-cert and --tls-client-key go together".into(),
            ))
        }
    }
    if let Some(name) = &args.tls_server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}

/// Runs `aliasd key ...`, `alias ...` or `audit ...` and prints its outcome;
/// the exit code says how it ended (docs/grpc-and-cli.md: "The command-line client").
pub async fn run(args: &ClientArgs, command: ClientCommand) -> ExitCode {
    let outcome = async {
        if let ClientCommand::Version = command {
            return commands::version(args).await;
        }
        let client = Client::connect(args).await?;
        match command {
            ClientCommand::Key(command) => commands::key(&client, command).await,
            ClientCommand::Alias(command) => commands::alias(&client, command).await,
            ClientCommand::Audit(command) => commands::audit(&client, command).await,
            ClientCommand::Backup { output } => commands::backup(&client, &output).await,
            ClientCommand::Ping => commands::ping(&client).await,
            ClientCommand::Version => unreachable!("answered before connecting"),
            ClientCommand::Crypto(command) => crypto::run(&client, *command).await,
        }
    }
    .await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => exit(&failure, args.output),
    }
}

/// Applies `--query` to what this run prints as JSON (the command line's
/// reader calls it before [`run`]).
pub fn set_query(query: &str) -> Result<(), Failure> {
    render::set_query(query).map_err(|why| Failure::usage(format!("--query: {why}")))
}

/// `aliasd config`: the settings and where each came from.
pub fn show_config(args: &ClientArgs, resolved: &profile::Resolved) -> ExitCode {
    let profile = resolved
        .profile
        .as_ref()
        .map(|(name, why)| (name.as_str(), why.as_str()));
    match args.output {
        Output::Json => render::print_json(&serde_json::json!({
            "configFile": resolved.file.display().to_string(),
            "configFileExists": resolved.file_exists,
            "profile": profile.map(|(name, _)| name),
            "profileChosenBy": profile.map(|(_, why)| why),
            "profiles": resolved.profiles,
            "settings": resolved.settings.iter().map(|s| serde_json::json!({
                "name": s.name,
                "value": s.value,
                "source": s.source,
            })).collect::<Vec<_>>(),
        })),
        Output::Table => {
            let exists = if resolved.file_exists { "" } else { " (none)" };
            crate::outln!("config file: {}{exists}", resolved.file.display());
            match profile {
                Some((name, why)) => crate::outln!("profile: {name} (chosen by {why})"),
                None => crate::outln!("profile: none"),
            }
            if !resolved.profiles.is_empty() {
                crate::outln!("profiles: {}", resolved.profiles.join(", "));
            }
            crate::outln!();
            let mut table = render::Table::new(vec!["SETTING", "VALUE", "SOURCE"]);
            for setting in &resolved.settings {
                table.push(vec![
                    setting.name.to_owned(),
                    setting.value.clone(),
                    setting.source.clone(),
                ]);
            }
            table.print();
        }
    }
    ExitCode::SUCCESS
}

/// The client's command groups.
pub enum ClientCommand {
    Key(KeyCommand),
    Alias(AliasCommand),
    Audit(AuditCommand),
    /// The client's version and the server's.
    Version,
    /// A snapshot of the server's whole store, into `output`.
    Backup {
        output: PathBuf,
    },
    /// One empty call, timed.
    Ping,
    /// `aliasd encrypt`, `decrypt`, `sign`, ...
    Crypto(Box<crypto::CryptoCommand>),
}

/// Writes the command line's output to stdout. A reader that went away (a
/// closed pipe: `aliasd alias list | head -1`) ends the process at once and
/// quietly (exit 0), as Unix tools do, instead of a panic in `println!`.
/// SIGPIPE stays ignored (Rust's default), so that a server closing the
/// connection is an error the client reports, not a silent death.
pub fn write_stdout(bytes: &[u8]) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_all(bytes).and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

/// `println!` for the command line's output, through [`write_stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(b"\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format!("{}\n", format_args!($($arg)*)).as_bytes())
    };
}

/// A command that may wait long between writes (a watch) learns that the
/// reader of its output went away only at its next write. When stdout is a
/// pipe, a thread waits for the pipe to close and then ends the process as
/// the write would have (quietly), so that the watch does not hold its slot
/// on the server meanwhile.
pub fn end_when_stdout_closes() {
    use std::os::fd::AsRawFd;
    let fd = std::io::stdout().as_raw_fd();
    // SAFETY: fstat writes into the zeroed struct it is given.
    let is_pipe = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut stat) == 0 && (stat.st_mode & libc::S_IFMT) == libc::S_IFIFO
    };
    if !is_pipe {
        return;
    }
    std::thread::spawn(move || loop {
        let mut poll = libc::pollfd {
            fd,
            events: 0,
            revents: 0,
        };
        // SAFETY: one valid pollfd; with no events asked, poll reports only
        // POLLERR (the read end closed), POLLHUP and POLLNVAL.
        let ready = unsafe { libc::poll(&mut poll, 1, -1) };
        if ready > 0 && poll.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            std::process::exit(0);
        }
    });
}
