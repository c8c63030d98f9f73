//! The prefilled set of aliases every row reads from.

use super::*;

/// The prefilled set: alias `i` is `names[i]` on key `keys[i / 40]`.
pub(super) struct DataSet {
    pub(super) keys: Vec<String>,
    pub(super) names: Vec<String>,
}

/// Creates `count` aliases, 40 per key, with a progress line on stderr.
pub(super) async fn prefill(
    channels: &[Channel],
    concurrency: usize,
    count: usize,
    run_id: &str,
) -> Result<DataSet, String> {
    let started = Instant::now();
    let key_count = count.div_ceil(ALIASES_PER_KEY);
    let next = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(Mutex::new(vec![String::new(); key_count]));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let mut client = KeyServiceClient::new(channels[worker % channels.len()].clone());
        let (next, keys) = (next.clone(), keys.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= key_count {
                    return Ok::<_, String>(());
                }
                let key = client
                    .create_key(pb::CreateKeyRequest::default())
                    .await
                    .map_err(|e| format!("CreateKey: {e:?}"))?
                    .into_inner()
                    .key
                    .ok_or("CreateKey answered no key")?;
                keys.lock().unwrap_or_else(|p| p.into_inner())[i] = key.key_id;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    let keys: Arc<Vec<String>> = Arc::new(std::mem::take(
        &mut *keys.lock().unwrap_or_else(|p| p.into_inner()),
    ));
    let names: Arc<Vec<String>> = Arc::new(
        (0..count)
            .map(|i| format!("alias/bench/{run_id}/{i:08}"))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    for worker in 0..concurrency {
        let mut client = AliasServiceClient::new(channels[worker % channels.len()].clone());
        let (next, done, keys, names) = (next.clone(), done.clone(), keys.clone(), names.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(());
                }
                client
                    .create_alias(pb::CreateAliasRequest {
                        alias_name: names[i].clone(),
                        target_key_id: keys[i / ALIASES_PER_KEY].clone(),
                        request_id: String::new(),
                    })
                    .await
                    .map_err(|e| format!("CreateAlias: {e:?}"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_tenth = 0;
    loop {
        tokio::select! {
            finished = tasks.join_next() => match finished {
                Some(result) => result.map_err(|e| e.to_string())??,
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                if terminal {
                    let filled = n * 30 / count.max(1);
                    eprint!(
                        "\rprefill [{}{}] {n}/{count} aliases, {rate:.0}/s ",
                        "#".repeat(filled),
                        " ".repeat(30 - filled)
                    );
                } else if n * 10 / count.max(1) > last_tenth {
                    last_tenth = n * 10 / count.max(1);
                    eprintln!("prefill: {n}/{count} aliases, {rate:.0}/s");
                }
            }
        }
    }
    if terminal {
        eprintln!();
    }
    println!(
        "prefill: {count} aliases on {key_count} keys in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(DataSet {
        keys: keys.to_vec(),
        names: names.to_vec(),
    })
}

/// A page token for the page that starts halfway through the set.
pub(super) async fn token_halfway(
    channel: &Channel,
    data: &DataSet,
    prefix: &str,
) -> Result<String, String> {
    let mut client = AliasServiceClient::new(channel.clone());
    let target = data.names.len() / 2;
    let mut seen = 0;
    let mut token = String::new();
    // The names sort after any other alias the account has: skip those.
    while seen < target {
        let page = client
            .list_aliases(pb::ListAliasesRequest {
                key_id: String::new(),
                page_size: 100,
                page_token: token.clone(),
            })
            .await
            .map_err(|e| format!("ListAliases: {e:?}"))?
            .into_inner();
        seen += page
            .aliases
            .iter()
            .filter(|a| a.alias_name.starts_with(prefix))
            .count();
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    Ok(token)
}
