//! `aliasd backup` and `aliasd restore`, run as an operator runs them: a
//! backup of a server under write load, restored into a new data directory,
//! holds every alias acknowledged before the backup began, checks clean,
//! and serves.

use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aliasd::domain::SystemClock;
use aliasd::pb;

use crate::common::*;

async fn aliasd(args: &[&str]) -> Output {
    run_aliasd(args, &[]).await
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every alias name of the account, page by page.
async fn all_alias_names(server: &TestServer) -> Vec<String> {
    let mut names = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = server
            .aliases
            .clone()
            .list_aliases(pb::ListAliasesRequest {
                key_id: String::new(),
                page_size: 100,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.aliases.into_iter().map(|a| a.alias_name));
        if page.next_page_token.is_empty() {
            return names;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_write_load_restores_every_acknowledged_alias() {
    let server = TestServer::start().await;
    let endpoint = server.running.as_ref().unwrap().addr.to_string();
    // A key with tags and a policy: both travel in the backup.
    let tagged = server
        .keys
        .clone()
        .create_key(pb::CreateKeyRequest {
            tags: vec![pb::Tag {
                key: "team".into(),
                value: "payments".into(),
            }],
            policy: "{\"Id\": \"backed-up\"}".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap()
        .key_id;
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..4 {
        let (keys, aliases) = (server.keys.clone(), server.aliases.clone());
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut keys, mut aliases) = (keys, aliases);
            let mut key = String::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                if i % 40 == 0 {
                    key = keys
                        .create_key(pb::CreateKeyRequest::default())
                        .await
                        .unwrap()
                        .into_inner()
                        .key
                        .unwrap()
                        .key_id;
                }
                let name = format!("alias/load/{writer}/{i}");
                aliases
                    .create_alias(pb::CreateAliasRequest {
                        alias_name: name.clone(),
                        target_key_id: key.clone(),
                        request_id: String::new(),
                    })
                    .await
                    .unwrap();
                acknowledged.lock().unwrap().push(name);
                i += 1;
            }
        }));
    }
    while acknowledged.lock().unwrap().len() < 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let files = tempfile::tempdir().unwrap();
    let backup = files.path().join("aliasd.backup");
    let backup_arg = backup.to_str().unwrap();
    let taken = aliasd(&["backup", "--endpoint", &endpoint, "--file", backup_arg]).await;
    let during = acknowledged.lock().unwrap().len();
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(taken.status.success(), "{}", text(&taken));
    assert!(
        during > before.len(),
        "the writers kept writing while the backup was taken"
    );
    let out = String::from_utf8_lossy(&taken.stdout);
    assert!(out.starts_with(&format!("backup {backup_arg}: ")), "{out}");
    assert!(!files.path().join("aliasd.backup.partial").exists());
    // It holds every account's records: its owner's to read only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "backup mode {mode:o}");

    // A second backup never overwrites the first.
    let again = aliasd(&["backup", "--endpoint", &endpoint, "--file", backup_arg]).await;
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));

    let restored_dir = tempfile::tempdir().unwrap();
    // The keys' material is wrapped under the server's root key: the
    // restored store is given the same one.
    crate::common::share_root_key(server.dir.path(), restored_dir.path());
    // The store of that directory: sled, or an etcd prefix on etcd runs.
    let store_args = crate::common::store_args(restored_dir.path());
    let data: Vec<&str> = store_args.iter().map(String::as_str).collect();
    let restored = aliasd(&[&["restore"], &data[..], &[backup_arg]].concat()).await;
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        String::from_utf8_lossy(&restored.stdout).contains("ok: all invariants hold"),
        "{}",
        text(&restored)
    );
    let checked = aliasd(&[&["check"], &data[..]].concat()).await;
    assert!(checked.status.success(), "{}", text(&checked));

    // Restoring again into the now full directory is refused, and changes
    // nothing there.
    let refused = aliasd(&[&["restore"], &data[..], &[backup_arg]].concat()).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not empty"),
        "{}",
        text(&refused)
    );

    let copy = TestServer::start_in(restored_dir, |_| {}, Arc::new(SystemClock)).await;
    let names = all_alias_names(&copy).await;
    let all: std::collections::HashSet<&String> = names.iter().collect();
    for name in &before {
        assert!(
            all.contains(name),
            "{name} was acknowledged before the backup and is missing"
        );
    }
    let total = acknowledged.lock().unwrap().len();
    assert!(
        names.len() >= before.len() && names.len() <= total,
        "{} of {}..{}",
        names.len(),
        before.len(),
        total
    );
    // The same records: an alias reads the same, etag and all; a key its
    // tags and policy.
    let original = server.get_alias(&before[0]).await.unwrap();
    assert_eq!(copy.get_alias(&before[0]).await.unwrap(), original);
    let tags = copy
        .keys
        .clone()
        .list_resource_tags(pb::ListResourceTagsRequest {
            key_id: tagged.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tags;
    assert_eq!(tags.len(), 1);
    assert_eq!(
        (tags[0].key.as_str(), tags[0].value.as_str()),
        ("team", "payments")
    );
    let policy = copy
        .keys
        .clone()
        .get_key_policy(pb::GetKeyPolicyRequest {
            key_id: tagged,
            policy_name: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .policy;
    assert_eq!(policy, "{\"Id\": \"backed-up\"}");
    // The restored store takes writes and continues the change log.
    let key = copy.create_key().await.key_id;
    copy.create_alias("alias/after-restore", &key)
        .await
        .unwrap();
    let page = copy
        .aliases
        .clone()
        .list_aliases(pb::ListAliasesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        page.revision,
        names.len() as u64 + 1,
        "revisions continue from the backup's"
    );
}

#[tokio::test]
async fn backup_needs_kms_backup_by_name_and_restore_refuses_a_damaged_file() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("auth.toml");
    std::fs::write(
        &auth,
        format!(
            "[[principals]]\nname = \"admin\"\naccount = \"111122223333\"\ntoken_sha256 = \"{}\"\n\
             [[principals.statements]]\nactions = \"kms:*\"\nresources = \"*\"\n\n\
             [[principals]]\nname = \"backup\"\naccount = \"111122223333\"\ntoken_sha256 = \"{}\"\n\
             [[principals.statements]]\nactions = \"kms:Backup\"\nresources = \"*\"\n\n\
             [[principals]]\nname = \"auditor\"\naccount = \"111122223333\"\ntoken_sha256 = \"{}\"\n\
             [[principals.statements]]\nactions = \"kms:ListAuditEvents\"\nresources = \"*\"\n",
            token_sha256("admin-token"),
            token_sha256("backup-token"),
            token_sha256("auditor-token")
        ),
    )
    .unwrap();
    let server = TestServer::start_configured(move |c| c.auth_file = Some(auth)).await;
    let endpoint = server.running.as_ref().unwrap().addr.to_string();
    let file = dir.path().join("b");
    let file_arg = file.to_str().unwrap();

    // kms:* does not grant a backup of every account.
    let denied = aliasd(&[
        "backup",
        "--endpoint",
        &endpoint,
        "-f",
        file_arg,
        "--token",
        "admin-token",
    ])
    .await;
    assert_eq!(denied.status.code(), Some(5), "{}", text(&denied));
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("ACCESS_DENIED"),
        "{}",
        text(&denied)
    );
    assert!(!file.exists() && !dir.path().join("b.partial").exists());

    let taken = aliasd(&[
        "backup",
        "--endpoint",
        &endpoint,
        "-f",
        file_arg,
        "--token",
        "backup-token",
        "-o",
        "json",
    ])
    .await;
    assert!(taken.status.success(), "{}", text(&taken));
    let summary: serde_json::Value = serde_json::from_slice(&taken.stdout).unwrap();
    assert_eq!(summary["bytes"], std::fs::metadata(&file).unwrap().len());
    assert_eq!(summary["sha256"].as_str().unwrap().len(), 64);

    // Both are in the audit log: the denial and the backup, with its checksum.
    let audit = aliasd(&[
        "audit",
        "list",
        "--endpoint",
        &endpoint,
        "--token",
        "auditor-token",
        "--action",
        "kms:Backup",
        "-o",
        "json",
    ])
    .await;
    assert!(audit.status.success(), "{}", text(&audit));
    let events: serde_json::Value = serde_json::from_slice(&audit.stdout).unwrap();
    let seen: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["principal"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, [("admin", "ACCESS_DENIED"), ("backup", "OK")]);
    assert!(events["events"][1]["message"]
        .as_str()
        .unwrap()
        .contains(summary["sha256"].as_str().unwrap()));

    // A damaged file is refused before anything is written.
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let damaged = dir.path().join("damaged");
    std::fs::write(&damaged, bytes).unwrap();
    let target = tempfile::tempdir().unwrap();
    let refused = aliasd(&[
        "restore",
        "--data-dir",
        target.path().to_str().unwrap(),
        damaged.to_str().unwrap(),
    ])
    .await;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("checksum"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        std::fs::read_dir(target.path()).unwrap().count(),
        0,
        "nothing is left behind"
    );
}
