//! Profiles: named servers in a config file, as the aws CLI, kubectl and
//! etcdctl keep them, so that `--profile prod` stands for an endpoint, TLS
//! files and where the token comes from.
//!
//! The file is `$ALIASD_CONFIG`, else `$XDG_CONFIG_HOME/aliasd/config.toml`,
//! else `~/.config/aliasd/config.toml`:
//!
//! ```toml
//! default_profile = "local"
//!
//! [profiles.local]
//! endpoint = "127.0.0.1:50051"
//!
//! [profiles.prod]
//! endpoint = "https://aliasd.example.com:50051"
//! tls_ca = "~/.config/aliasd/prod-ca.pem"
//! token_command = "vault kv get -field=token secret/aliasd"
//! output = "json"
//! timeout_secs = 5
//! ```
//!
//! A setting comes from, in order: its flag, its environment variable, the
//! profile, the default. The token comes from `--token`/`ALIASD_TOKEN`,
//! else the profile's `token_file` (its first line) or `token_command`
//! (the first line it prints), or its `token` itself only when the file is
//! readable by its owner alone (mode 0600).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

use super::failure::Failure;
use super::{ClientArgs, Output};

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// The profile used when none is named.
    default_profile: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// One named server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    tls_ca: Option<PathBuf>,
    tls_client_cert: Option<PathBuf>,
    tls_client_key: Option<PathBuf>,
    tls_server_name: Option<String>,
    output: Option<String>,
    timeout_secs: Option<f64>,
    /// A file whose first line is the token.
    token_file: Option<PathBuf>,
    /// A command (run with `sh -c`) that prints the token.
    token_command: Option<String>,
    /// The token itself: only in a file readable by its owner alone.
    token: Option<String>,
}

/// One effective setting and where it came from, for `aliasd config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    /// The value as shown (a token is never shown).
    pub value: String,
    /// "flag", "env ALIASD_...", "profile NAME", "default" or "unset".
    pub source: String,
}

/// What resolving the profile found, for `aliasd config`.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub file: PathBuf,
    pub file_exists: bool,
    /// The profile in use, and why it was chosen.
    pub profile: Option<(String, String)>,
    pub profiles: Vec<String>,
    pub settings: Vec<Setting>,
}

/// Where the config file is.
pub fn config_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ALIASD_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|home| home.join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("aliasd").join("config.toml")
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `~/x` under the home directory; a relative path beside the config file.
fn expand(path: &Path, config: &Path) -> PathBuf {
    if let (Ok(rest), Some(home)) = (path.strip_prefix("~"), home()) {
        return home.join(rest);
    }
    if path.is_relative() {
        if let Some(dir) = config.parent() {
            return dir.join(path);
        }
    }
    path.to_owned()
}

/// What the settings are resolved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A call: the token is fetched (a `token_command` runs) and checked.
    Call,
    /// `aliasd config`: nothing runs, and a token that would be refused
    /// is shown as such rather than stopping the report.
    Show,
    /// Tab completion: a `token_command` runs without the terminal (it
    /// must not prompt, or read keystrokes, in the middle of a line).
    Complete,
}

/// Fills in `args` from the chosen profile where neither a flag nor an
/// environment variable set a value; says where each setting came from.
pub fn resolve(
    args: &mut ClientArgs,
    matches: &ArgMatches,
    purpose: Purpose,
) -> Result<Resolved, Failure> {
    let path = config_path();
    let (file, file_exists, mode) = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let file: ConfigFile = toml::from_str(&text)
                .map_err(|e| Failure::usage(format!("{}: {}", path.display(), e.message())))?;
            (file, true, file_mode(&path))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            (ConfigFile::default(), false, None)
        }
        Err(error) => return Err(Failure::usage(format!("{}: {error}", path.display()))),
    };
    let profiles: Vec<String> = file.profiles.keys().cloned().collect();
    let chosen = match (&args.profile, &file.default_profile) {
        (Some(name), _) => Some((
            name.clone(),
            source_of(matches, "profile", "ALIASD_PROFILE"),
        )),
        (None, Some(name)) => Some((name.clone(), "default_profile".to_owned())),
        (None, None) if file.profiles.contains_key("default") => {
            Some(("default".to_owned(), "the profile named default".to_owned()))
        }
        (None, None) => None,
    };
    let profile = match &chosen {
        Some((name, _)) => Some(file.profiles.get(name).ok_or_else(|| {
            let known = if profiles.is_empty() {
                format!("{} has none", path.display())
            } else {
                format!("{} has {}", path.display(), profiles.join(", "))
            };
            Failure::usage(format!("no profile named {name:?} ({known})"))
        })?),
        None => None,
    };
    let from_profile = chosen
        .as_ref()
        .map(|(name, _)| format!("profile {name}"))
        .unwrap_or_default();
    let empty = Profile::default();
    let profile_or_empty = profile.unwrap_or(&empty);
    let mut settings = Vec::new();
    let mut setting = |name: &'static str, env: &str, value: String, from_profile_now: bool| {
        let source = if from_profile_now {
            from_profile.clone()
        } else {
            source_of(matches, name, env)
        };
        settings.push(Setting {
            name,
            value,
            source,
        });
    };

    let explicit = |id: &str| is_explicit(matches, id);
    // endpoint
    let set = !explicit("endpoint") && profile_or_empty.endpoint.is_some();
    if set {
        args.endpoint = profile_or_empty.endpoint.clone().unwrap_or_default();
    }
    setting("endpoint", "ALIASD_ENDPOINT", args.endpoint.clone(), set);
    // The TLS files.
    for (name, env, field, wanted) in [
        (
            "tls_ca",
            "ALIASD_TLS_CA",
            &mut args.tls_ca,
            &profile_or_empty.tls_ca,
        ),
        (
            "tls_client_cert",
            "ALIASD_TLS_CLIENT_CERT",
            &mut args.tls_client_cert,
            &profile_or_empty.tls_client_cert,
        ),
        (
            "tls_client_key",
            "ALIASD_TLS_CLIENT_KEY",
            &mut args.tls_client_key,
            &profile_or_empty.tls_client_key,
        ),
    ] {
        let set = !explicit(name) && wanted.is_some();
        if set {
            *field = wanted.as_deref().map(|p| expand(p, &path));
        }
        let value = field
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        setting(name, env, value, set);
    }
    let set = !explicit("tls_server_name") && profile_or_empty.tls_server_name.is_some();
    if set {
        args.tls_server_name = profile_or_empty.tls_server_name.clone();
    }
    setting(
        "tls_server_name",
        "ALIASD_TLS_SERVER_NAME",
        args.tls_server_name.clone().unwrap_or_default(),
        set,
    );
    // output
    let set = !explicit("output") && profile_or_empty.output.is_some();
    if set {
        let text = profile_or_empty.output.as_deref().unwrap_or_default();
        args.output = <Output as clap::ValueEnum>::from_str(text, true).map_err(|_| {
            Failure::usage(format!(
                "{}: output {text:?} is not table or json",
                path.display()
            ))
        })?;
    }
    let output = match args.output {
        Output::Table => "table",
        Output::Json => "json",
    };
    setting("output", "ALIASD_OUTPUT", output.to_owned(), set);
    // timeout_secs
    let set = !explicit("timeout_secs") && profile_or_empty.timeout_secs.is_some();
    if set {
        let secs = profile_or_empty.timeout_secs.unwrap_or_default();
        args.timeout_secs = super::timeout_secs(&secs.to_string())
            .map_err(|why| Failure::usage(format!("{}: timeout_secs: {why}", path.display())))?;
    }
    setting(
        "timeout_secs",
        "ALIASD_TIMEOUT_SECS",
        args.timeout_secs.to_string(),
        set,
    );
    // The token.
    let token_source = if explicit("token") {
        source_of(matches, "token", "ALIASD_TOKEN")
    } else if let Some(profile) = profile {
        match token_of(profile, &path, mode, &from_profile, purpose) {
            Ok(Some((token, how))) => {
                args.token = Some(token);
                how
            }
            Ok(None) => "unset".to_owned(),
            Err(failure) if purpose == Purpose::Show => format!("refused: {}", failure.message),
            Err(failure) => return Err(failure),
        }
    } else {
        "unset".to_owned()
    };
    // A token travels in a header: surrounding blanks (a trailing newline
    // from a secret file or `echo`) are dropped; anything else a header
    // cannot carry is refused here rather than the token left off.
    if let Some(token) = args.token.take() {
        let token = token.trim().to_owned();
        if !token.is_empty() && !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(Failure::usage(format!(
                "the token (from {token_source}) holds characters a header cannot carry \
                 (a second line, spaces or non-ASCII)"
            )));
        }
        args.token = (!token.is_empty()).then_some(token);
    }
    let shown = match &args.token {
        Some(token) => format!(
            "(set, {})",
            crate::domain::names::counted(token.chars().count() as u64, "character", "characters")
        ),
        None => String::new(),
    };
    settings.push(Setting {
        name: "token",
        value: shown,
        source: token_source,
    });
    Ok(Resolved {
        file: path,
        file_exists,
        profile: chosen,
        profiles,
        settings,
    })
}

/// The profile's token, and where it came from.
fn token_of(
    profile: &Profile,
    path: &Path,
    mode: Option<u32>,
    from_profile: &str,
    purpose: Purpose,
) -> Result<Option<(String, String)>, Failure> {
    let sources = [
        profile.token.is_some(),
        profile.token_file.is_some(),
        profile.token_command.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        return Err(Failure::usage(format!(
            "{}: {from_profile} names more than one of token, token_file and token_command",
            path.display()
        )));
    }
    if let Some(token) = &profile.token {
        if let Some(mode) = mode.filter(|m| m & 0o077 != 0) {
            return Err(Failure::usage(format!(
                "{}: {from_profile} holds a token, but the file is readable by others \
                 (mode {:o}); chmod 600 it, or use token_file or token_command",
                path.display(),
                mode & 0o777
            )));
        }
        return Ok(Some((token.clone(), format!("{from_profile} (token)"))));
    }
    if let Some(file) = &profile.token_file {
        let file = expand(file, path);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            Failure::usage(format!(
                "{from_profile}: token_file {}: {e}",
                file.display()
            ))
        })?;
        let token = text.lines().next().unwrap_or_default().trim().to_owned();
        if token.is_empty() {
            return Err(Failure::usage(format!(
                "{from_profile}: token_file {} is empty",
                file.display()
            )));
        }
        return Ok(Some((
            token,
            format!("{from_profile} (token_file {})", file.display()),
        )));
    }
    if let Some(command) = &profile.token_command {
        if purpose == Purpose::Show {
            return Ok(Some((
                String::new(),
                format!("{from_profile} (token_command, not run by aliasd config)"),
            )));
        }
        let terminal = || match purpose {
            Purpose::Complete => std::process::Stdio::null(),
            _ => std::process::Stdio::inherit(),
        };
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(terminal())
            .stderr(terminal())
            .output()
            .map_err(|e| Failure::usage(format!("{from_profile}: token_command: {e}")))?;
        // Its first line, as a token_file's.
        let printed = String::from_utf8_lossy(&output.stdout);
        let token = printed
            .trim()
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned();
        if !output.status.success() || token.is_empty() {
            return Err(Failure::usage(format!(
                "{from_profile}: token_command {command:?} {}",
                if output.status.success() {
                    "printed nothing".to_owned()
                } else {
                    format!("failed ({})", output.status)
                }
            )));
        }
        return Ok(Some((token, format!("{from_profile} (token_command)"))));
    }
    Ok(None)
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> Option<u32> {
    None
}

/// Whether the user set `id` (by flag or environment), not its default.
fn is_explicit(matches: &ArgMatches, id: &str) -> bool {
    matches!(
        matches
            .try_contains_id(id)
            .ok()
            .and(matches.value_source(id)),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// "flag", "env NAME" or "default", for a setting not from a profile.
fn source_of(matches: &ArgMatches, id: &str, env: &str) -> String {
    match matches
        .try_contains_id(id)
        .ok()
        .and(matches.value_source(id))
    {
        Some(ValueSource::CommandLine) => "flag".to_owned(),
        Some(ValueSource::EnvVariable) => format!("env {env}"),
        Some(ValueSource::DefaultValue) => "default".to_owned(),
        _ => "unset".to_owned(),
    }
}

/// The deepest subcommand's matches: where global flags land.
pub fn leaf(matches: &ArgMatches) -> &ArgMatches {
    let mut at = matches;
    while let Some((_, sub)) = at.subcommand() {
        at = sub;
    }
    at
}
