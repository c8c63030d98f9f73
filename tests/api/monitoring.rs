//! The monitoring files in `deploy/`: the Prometheus alert rules pass
//! `promtool check rules` (Debian's prometheus package, fetched with
//! `apt-get download` and unpacked under `target/`) and their unit tests
//! (`tests/prometheus/alerts.test.yaml`), so do the Grafana dashboard's
//! queries, and every metric either of them names is one a running server
//! exports, so that neither can drift from the server. The dashboard is in
//! Grafana's export format, and its panels read as they should.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const PACKAGE: &str = "prometheus_2.42.0+ds-5+b6_amd64.deb";
const PACKAGE_SHA256: &str = "3b0e0255b059a7696bd4a139a4a4eb24d71df067936a61ece5093559cbc7991c";

/// Names in queries that Prometheus makes itself, not the server.
const MADE_BY_PROMETHEUS: [&str; 1] = ["up"];

fn deploy_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

/// promtool, unpacked under `target/test-tools/prometheus` on first use;
/// None when the package cannot be downloaded (no apt, no network): then
/// the rules are only parsed.
fn promtool() -> Option<PathBuf> {
    let _across_processes = crate::python::install_lock("prometheus-package");
    let dir = crate::etcd_support::cache_dir().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join("root/usr/bin/promtool");
    if binary.exists() {
        return Some(binary);
    }
    let fetched = crate::etcd_support::unpack_pinned_package(
        &dir,
        "prometheus=2.42.0+ds-5+b6",
        PACKAGE,
        PACKAGE_SHA256,
    );
    if let Err(why) = fetched {
        eprintln!("{why}; checking the rules with the parser only");
        return None;
    }
    assert!(binary.exists(), "promtool did not unpack");
    Some(binary)
}

/// `promtool check rules FILE` succeeds.
fn check_rules(promtool: &Path, file: &Path) {
    run_promtool(promtool, &["check", "rules"], file);
}

/// `promtool test rules FILE` succeeds: every unit test in FILE passes.
fn test_rules(promtool: &Path, file: &Path) {
    run_promtool(promtool, &["test", "rules"], file);
}

/// `promtool ARGS FILE` succeeds.
fn run_promtool(promtool: &Path, args: &[&str], file: &Path) {
    let output = Command::new(promtool)
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool {} {}: {}{}",
        args.join(" "),
        file.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `deploy/grafana-dashboard.json`, parsed.
fn dashboard() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(deploy_path("grafana-dashboard.json")).unwrap())
        .unwrap()
}

/// The dashboard's panels, rows' panels included.
fn dashboard_panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut all = Vec::new();
    let mut panels: Vec<&serde_json::Value> =
        dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        all.push(panel);
    }
    all
}

/// One rule of the rules file, as the parser reads it: its keys (`alert`,
/// `expr`, `for`, `labels.severity`, `annotations.summary`, ...) and values.
type Rule = std::collections::BTreeMap<String, String>;

/// The rules of a rules file as aliasd's is written (block style, two
/// spaces a level, `expr` inline or as a `|` block): the parser used where
/// promtool cannot be had, and the source of the queries either way.
fn parse_rules(text: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = Vec::new();
    let mut lines = text.lines().peekable();
    let mut section = String::new();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(item) = trimmed
            .strip_prefix("- alert:")
            .or(trimmed.strip_prefix("- record:"))
        {
            let mut rule = Rule::new();
            let key = if trimmed.starts_with("- alert:") {
                "alert"
            } else {
                "record"
            };
            rule.insert(key.into(), item.trim().to_owned());
            rules.push(rule);
            section.clear();
            continue;
        }
        let Some(rule) = rules.last_mut() else {
            continue;
        };
        let Some((key, value)) = trimmed.split_once(':') else {
            panic!("not a key: value line: {line:?}");
        };
        let value = value.trim();
        match (indent, value) {
            // A rule's own key (indented under `- alert:`).
            (8, "") => section = key.to_owned(),
            (8, "|") => {
                let mut block = Vec::new();
                while let Some(next) = lines.peek() {
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    lines.next();
                }
                rule.insert(key.to_owned(), block.join("\n").trim().to_owned());
                section.clear();
            }
            (8, value) => {
                rule.insert(key.to_owned(), value.to_owned());
                section.clear();
            }
            (10, value) if !section.is_empty() => {
                rule.insert(format!("{section}.{key}"), value.to_owned());
            }
            _ => {}
        }
    }
    rules
}

/// Every `expr` of the dashboard's panels (rows' panels included).
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<String> {
    dashboard_panels(dashboard)
        .into_iter()
        .flat_map(|panel| panel["targets"].as_array().into_iter().flatten())
        .map(|target| target["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// The dashboard's variables as a query means them, for promtool.
fn without_grafana_variables(query: &str) -> String {
    query
        .replace("$__rate_interval", "5m")
        .replace("$job", "aliasd")
}

/// The metric names a PromQL query reads: identifiers that are not
/// functions or aggregations (followed by `(`), not keywords, not label
/// names (inside `{}` or a `by (...)`-like list), and not in strings,
/// ranges or numbers.
fn metric_names(query: &str) -> BTreeSet<String> {
    // Aggregations may be followed by `by (...)` before their `(`.
    const KEYWORDS: [&str; 25] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "inf",
        "nan",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = query.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips to just past the `close` that matches the opener at `i`.
    let skip_past = |mut i: usize, close: char| {
        let open = chars[i];
        let mut depth = 0;
        while i < chars.len() {
            match chars[i] {
                c if c == open => depth += 1,
                c if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                '"' => {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_past(i, '}'),
            '[' => i = skip_past(i, ']'),
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += 1;
                }
                i += 1;
            }
            '0'..='9' | '.' | '$' => {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '.' || chars[i] == '_')
                {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let called = chars.get(next) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) && called {
                    i = skip_past(next, ')');
                } else if !called && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// The sample names a scrape (OpenMetrics) may hold, from its `# TYPE`
/// lines: a counter's `_total`, a histogram's `_bucket`, `_sum` and
/// `_count`, a gauge's own name.
fn exported_names(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = rest.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

#[test]
fn metric_names_are_read_from_queries_without_functions_labels_or_keywords() {
    let query = r#"histogram_quantile(0.99, sum by (le, grpc_method) (rate(a_bucket{job=~"$job",x="y}"}[$__rate_interval]))) / on (instance) group_left b_total > bool 0.5 or time() - c"#;
    assert_eq!(
        metric_names(query),
        ["a_bucket", "b_total", "c"].map(str::to_owned).into()
    );
}

/// Grafana's import asks for each `__inputs` data source and puts the
/// one chosen wherever its `${NAME}` stands; `__requires` names the plugins
/// the dashboard needs. Both as Grafana's export writes them.
#[test]
fn the_dashboard_asks_for_the_data_source_it_uses_and_requires_its_panel_types() {
    let dashboard = dashboard();
    let text = dashboard.to_string();
    let inputs = dashboard["__inputs"].as_array().expect("__inputs");
    assert!(
        !inputs.is_empty(),
        "no __inputs: the import asks for nothing"
    );
    for input in inputs {
        let name = input["name"].as_str().unwrap();
        assert_eq!(input["type"], "datasource", "{input}");
        assert_eq!(input["pluginId"], "prometheus", "{input}");
        assert!(
            text.contains(&format!("${{{name}}}")),
            "the input {name} is asked for but never used"
        );
    }
    // Every `${DS_...}` used is an input (or it stays unresolved).
    for (at, _) in text.match_indices("${DS_") {
        let name = &text[at + 2..at + text[at..].find('}').unwrap()];
        assert!(
            inputs.iter().any(|input| input["name"] == name),
            "{name} is used but not in __inputs"
        );
    }
    let requires = dashboard["__requires"].as_array().expect("__requires");
    let required = |kind: &str, id: &str| {
        requires
            .iter()
            .any(|plugin| plugin["type"] == kind && plugin["id"] == id)
    };
    assert!(required("grafana", "grafana"), "{requires:?}");
    assert!(required("datasource", "prometheus"), "{requires:?}");
    for panel in dashboard_panels(&dashboard) {
        let kind = panel["type"].as_str().unwrap();
        assert!(
            kind == "row" || required("panel", kind),
            "the panel type {kind} is not in __requires"
        );
    }
}

/// A series with a unit of its own has an override that finds it, and a
/// 0/1 flag (`_failed`, `_successful`) is read as words on a panel of its
/// own, never drawn as a number on another series' axis.
#[test]
fn the_dashboards_overrides_find_their_series_and_flags_read_as_words() {
    let dashboard = dashboard();
    for panel in dashboard_panels(&dashboard) {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        let ref_ids: Vec<&str> = targets
            .iter()
            .map(|target| target["refId"].as_str().unwrap())
            .collect();
        for set in panel["fieldConfig"]["overrides"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let matcher = &set["matcher"];
            assert_eq!(matcher["id"], "byFrameRefID", "{title}: {set}");
            assert!(
                ref_ids.contains(&matcher["options"].as_str().unwrap()),
                "{title}: the override {set} matches no query"
            );
        }
        let flags = targets.iter().any(|target| {
            metric_names(target["expr"].as_str().unwrap())
                .iter()
                .any(|name| name.ends_with("_failed") || name.ends_with("_successful"))
        });
        if flags {
            assert_eq!(targets.len(), 1, "{title}: a flag shares its panel");
            let mappings = panel["fieldConfig"]["defaults"]["mappings"][0]["options"].clone();
            for value in ["0", "1"] {
                assert!(
                    mappings[value]["text"].is_string(),
                    "{title}: no words for {value}"
                );
            }
        }
    }
    let group_commit = dashboard_panels(&dashboard)
        .into_iter()
        .find(|panel| panel["title"] == "Group commit p99 and writers per commit")
        .unwrap();
    assert_eq!(group_commit["fieldConfig"]["defaults"]["unit"], "s");
    let writers = &group_commit["fieldConfig"]["overrides"][0];
    assert_eq!(writers["matcher"]["options"], "B");
    assert!(
        writers["properties"]
            .as_array()
            .unwrap()
            .iter()
            .any(|property| property["id"] == "unit" && property["value"] == "short"),
        "{writers}"
    );
}

/// The alert rules' unit tests (`tests/prometheus/alerts.test.yaml`): for
/// instance, AliasdHighErrorRatio counts only server faults and needs a
/// minimum of traffic.
#[test]
fn the_alert_rules_pass_their_promtool_unit_tests() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool unavailable: the rules' unit tests did not run");
        return;
    };
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/prometheus/alerts.test.yaml");
    test_rules(&promtool, &tests);
}

/// The dashboard's server-fault ratio, evaluated by promtool: 0, not "No
/// data", on a server with calls and no fault; and it counts what the
/// alert counts (Internal, unary DeadlineExceeded), not a stream's end at
/// its client's deadline.
#[test]
fn the_dashboards_server_fault_ratio_is_zero_without_faults_and_counts_only_server_faults() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool unavailable: the fault ratio was not evaluated");
        return;
    };
    let dashboard = dashboard();
    let panel = dashboard_panels(&dashboard)
        .into_iter()
        .find(|panel| panel["title"] == "Server-fault ratio")
        .unwrap();
    let query = without_grafana_variables(panel["targets"][0]["expr"].as_str().unwrap());
    let series = |method: &str, kind: &str, code: &str, per_minute: u32| {
        format!(
            "      - series: 'grpc_server_handled_total{{job=\"aliasd\",grpc_service=\"aliasd.v1.AliasService\",\
             grpc_method=\"{method}\",grpc_type=\"{kind}\",grpc_code=\"{code}\"}}'\n        \
             values: '0+{per_minute}x20'\n"
        )
    };
    let case = |inputs: &[String], ratio: f64| {
        format!(
            "  - interval: 1m\n    input_series:\n{}    promql_expr_test:\n      - expr: {}\n        \
             eval_time: 10m\n        exp_samples:\n          - labels: '{{}}'\n            value: {ratio}\n",
            inputs.concat(),
            serde_json::to_string(&query).unwrap()
        )
    };
    let healthy = case(
        &[
            series("GetAlias", "unary", "OK", 60),
            series("GetAlias", "unary", "NotFound", 60),
        ],
        0.0,
    );
    // 12 faults a minute out of 120 calls: Internal and unary
    // DeadlineExceeded count; the watch's DeadlineExceeded does not.
    let faulty = case(
        &[
            series("GetAlias", "unary", "OK", 54),
            series("GetAlias", "unary", "Internal", 6),
            series("CreateAlias", "unary", "DeadlineExceeded", 6),
            series("WatchAliases", "server_stream", "DeadlineExceeded", 54),
        ],
        0.1,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fault-ratio.test.yaml");
    std::fs::write(
        &file,
        format!("evaluation_interval: 1m\ntests:\n{healthy}{faulty}"),
    )
    .unwrap();
    test_rules(&promtool, &file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_and_the_dashboard_pass_promtool_and_name_only_metrics_the_server_exports()
{
    let rules_file = deploy_path("prometheus-rules.yaml");
    let rules = parse_rules(&std::fs::read_to_string(&rules_file).unwrap());
    let dashboard = dashboard();
    let panels = dashboard_queries(&dashboard);

    // Every alert is complete: a query, a severity and a summary.
    assert!(rules.len() >= 8, "{rules:?}");
    for rule in &rules {
        for key in ["alert", "expr", "labels.severity", "annotations.summary"] {
            assert!(
                rule.get(key).is_some_and(|v| !v.is_empty()),
                "{key} missing in {rule:?}"
            );
        }
    }

    match tokio::task::spawn_blocking(promtool).await.unwrap() {
        Some(promtool) => {
            check_rules(&promtool, &rules_file);
            // The dashboard's queries, as recording rules: promtool parses
            // each one.
            let dir = tempfile::tempdir().unwrap();
            let as_rules = dir.path().join("dashboard-rules.yaml");
            let mut text = String::from("groups:\n  - name: dashboard\n    rules:\n");
            for (n, query) in panels.iter().enumerate() {
                let query = serde_json::to_string(&without_grafana_variables(query)).unwrap();
                text.push_str(&format!(
                    "      - record: dashboard:query_{n}\n        expr: {query}\n"
                ));
            }
            std::fs::write(&as_rules, text).unwrap();
            check_rules(&promtool, &as_rules);
        }
        None => eprintln!("promtool unavailable: the rules were parsed, not checked"),
    }

    // What a running server exports, after calls (a family shows its
    // `# TYPE` line whether or not it has samples yet).
    let server = TestServer::start_configured(|c| {
        c.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        c.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    server.create_key().await;
    let _ = server.get_alias("alias/none").await;
    let exported = exported_names(&crate::metrics::scrape(&server).await);

    let mut named = BTreeSet::new();
    for (source, query) in rules
        .iter()
        .map(|rule| ("rules", rule["expr"].clone()))
        .chain(panels.iter().map(|q| ("dashboard", q.clone())))
    {
        for name in metric_names(&query) {
            assert!(
                exported.contains(&name) || MADE_BY_PROMETHEUS.contains(&name.as_str()),
                "the {source} name {name}, which the server does not export (in {query})"
            );
            named.insert(name);
        }
    }
    // The standard gRPC families and aliasd's own are all on show.
    for family in [
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
        "aliasd_calls_total",
        "aliasd_flush_duration_seconds_bucket",
        "aliasd_sled_sync_duration_seconds_bucket",
        "aliasd_store_failed",
        "aliasd_etcd_request_duration_seconds_bucket",
        "aliasd_etcd_retries_total",
        "aliasd_etcd_conflicts_total",
        "aliasd_connections_open",
        "aliasd_config_last_reload_successful",
        "aliasd_config_last_reload_success_timestamp_seconds",
    ] {
        assert!(
            named.contains(family),
            "neither the rules nor the dashboard show {family}"
        );
    }
}
