//! The gRPC rows, between two runs of the empty call.

use super::*;

/// What every gRPC row uses: the connections, the prefilled set, the
/// callers and how long each row runs.
#[derive(Clone)]
struct Rows {
    channels: Arc<Vec<Channel>>,
    data: Arc<DataSet>,
    /// A page token halfway through the prefilled set.
    deep_token: Arc<String>,
    run_id: String,
    c: usize,
    secs: f64,
}

impl Rows {
    /// The connection of caller `i`.
    fn channel(&self, i: usize) -> Channel {
        self.channels[i % self.channels.len()].clone()
    }

    /// The empty call (DiagnosticsService/Ping), under `name`.
    async fn ping(&self, name: &'static str) -> Result<(String, Run), String> {
        let channels = self.channels.clone();
        let run = drive(self.c, self.secs, |w, deadline| {
            let client = DiagnosticsServiceClient::new(channels[w % channels.len()].clone());
            until(deadline, move |_| {
                let mut client = client.clone();
                async move { client.ping(pb::PingRequest {}).await.map(|_| true) }
            })
        })
        .await?;
        Ok((name.to_owned(), run))
    }

    /// GetAlias and DescribeKey by alias name, of random prefilled aliases.
    async fn reads(&self, args: &BenchArgs, table: &mut Table) -> Result<(), String> {
        let (c, secs, data) = (self.c, self.secs, &self.data);
        let channel = |w| self.channel(w);
        if args.wants("GetAlias") {
            let run = drive(c, secs, |w, deadline| {
                let client = AliasServiceClient::new(channel(w));
                let (data, mut rng) = (data.clone(), XorShift::new(w));
                until(deadline, move |_| {
                    let mut client = client.clone();
                    let alias_name = data.names[rng.below(data.names.len())].clone();
                    async move {
                        client
                            .get_alias(pb::GetAliasRequest { alias_name })
                            .await
                            .map(|_| true)
                    }
                })
            })
            .await?;
            table.rows.push(("GetAlias".into(), run));
        }

        if args.wants("DescribeKey by alias name") {
            let run = drive(c, secs, |w, deadline| {
                let client = KeyServiceClient::new(channel(w));
                let (data, mut rng) = (data.clone(), XorShift::new(w));
                until(deadline, move |_| {
                    let mut client = client.clone();
                    let key_id = data.names[rng.below(data.names.len())].clone();
                    async move {
                        client
                            .describe_key(pb::DescribeKeyRequest { key_id })
                            .await
                            .map(|_| true)
                    }
                })
            })
            .await?;
            table.rows.push(("DescribeKey by alias name".into(), run));
        }

        Ok(())
    }

    /// The keys at work, by alias: Encrypt 4 KiB, Decrypt it,
    /// GenerateDataKey, and Sign with an ECC P-256 key.
    async fn crypto(&self, args: &BenchArgs, table: &mut Table) -> Result<(), String> {
        let (c, secs, data) = (self.c, self.secs, &self.data);
        let channel = |w| self.channel(w);
        let plaintext = bytes::Bytes::from(vec![0x5a_u8; 4096]);
        if args.wants("Encrypt 4 KiB by alias") {
            let run = drive(c, secs, |w, deadline| {
                let client = CryptoServiceClient::new(channel(w));
                let (data, plaintext, mut rng) =
                    (data.clone(), plaintext.clone(), XorShift::new(w));
                until(deadline, move |_| {
                    let mut client = client.clone();
                    let request = pb::EncryptRequest {
                        key_id: data.names[rng.below(data.names.len())].clone(),
                        plaintext: plaintext.clone(),
                        ..Default::default()
                    };
                    async move { client.encrypt(request).await.map(|_| true) }
                })
            })
            .await?;
            table.rows.push(("Encrypt 4 KiB by alias".into(), run));
        }
        if args.wants("Decrypt 4 KiB") {
            // A ciphertext per caller, made by a key of its own.
            let mut blobs = Vec::with_capacity(c);
            for w in 0..c {
                let request = pb::EncryptRequest {
                    key_id: data.names[w % data.names.len()].clone(),
                    plaintext: plaintext.clone(),
                    ..Default::default()
                };
                let sealed = CryptoServiceClient::new(channel(w))
                    .encrypt(request)
                    .await
                    .map_err(|e| format!("Encrypt: {e:?}"))?
                    .into_inner();
                blobs.push(sealed.ciphertext_blob);
            }
            let blobs = Arc::new(blobs);
            let run = drive(c, secs, |w, deadline| {
                let client = CryptoServiceClient::new(channel(w));
                let blobs = blobs.clone();
                until(deadline, move |_| {
                    let mut client = client.clone();
                    let request = pb::DecryptRequest {
                        ciphertext_blob: blobs[w].clone(),
                        ..Default::default()
                    };
                    async move { client.decrypt(request).await.map(|_| true) }
                })
            })
            .await?;
            table.rows.push(("Decrypt 4 KiB".into(), run));
        }
        if args.wants("GenerateDataKey by alias") {
            let run = drive(c, secs, |w, deadline| {
                let client = CryptoServiceClient::new(channel(w));
                let (data, mut rng) = (data.clone(), XorShift::new(w));
                until(deadline, move |_| {
                    let mut client = client.clone();
                    let request = pb::GenerateDataKeyRequest {
                        key_id: data.names[rng.below(data.names.len())].clone(),
                        key_spec: pb::DataKeySpec::Aes256 as i32,
                        ..Default::default()
                    };
                    async move { client.generate_data_key(request).await.map(|_| true) }
                })
            })
            .await?;
            table.rows.push(("GenerateDataKey by alias".into(), run));
        }
        if args.wants("Sign ECC P-256 by alias") {
            let signer = KeyServiceClient::new(channel(0))
                .create_key(pb::CreateKeyRequest {
                    key_spec: pb::KeySpec::EccNistP256 as i32,
                    key_usage: pb::KeyUsage::SignVerify as i32,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("CreateKey: {e:?}"))?
                .into_inner()
                .key
                .ok_or("no key")?;
            let alias_name = format!("alias/bench/{}/signer", self.run_id);
            AliasServiceClient::new(channel(0))
                .create_alias(pb::CreateAliasRequest {
                    alias_name: alias_name.clone(),
                    target_key_id: signer.key_id,
                    request_id: String::new(),
                })
                .await
                .map_err(|e| format!("CreateAlias: {e:?}"))?;
            let alias_name = Arc::new(alias_name);
            let run = drive(c, secs, |w, deadline| {
                let client = CryptoServiceClient::new(channel(w));
                let alias_name = alias_name.clone();
                until(deadline, move |i| {
                    let mut client = client.clone();
                    let request = pb::SignRequest {
                        key_id: alias_name.to_string(),
                        message: format!("message {w} {i}").into_bytes(),
                        signing_algorithm: pb::SigningAlgorithm::EcdsaSha256 as i32,
                        ..Default::default()
                    };
                    async move { client.sign(request).await.map(|_| true) }
                })
            })
            .await?;
            table.rows.push(("Sign ECC P-256 by alias".into(), run));
        }
        Ok(())
    }

    /// ListAliases: the first page, a page halfway in, one key's aliases.
    async fn listings(&self, args: &BenchArgs, table: &mut Table) -> Result<(), String> {
        let (c, secs, data, deep_token) = (self.c, self.secs, &self.data, &self.deep_token);
        let channel = |w| self.channel(w);
        for (name, deep, by_key) in [
            ("ListAliases, first page of 50", false, false),
            ("ListAliases, a page halfway in", true, false),
            ("ListAliases of one key", false, true),
        ] {
            if !args.wants(name) {
                continue;
            }
            let run = drive(c, secs, |w, deadline| {
                let client = AliasServiceClient::new(channel(w));
                let (data, token, mut rng) = (data.clone(), deep_token.clone(), XorShift::new(w));
                until(deadline, move |_| {
                    let mut client = client.clone();
                    let request = pb::ListAliasesRequest {
                        key_id: match by_key {
                            true => data.keys[rng.below(data.keys.len())].clone(),
                            false => String::new(),
                        },
                        page_size: PAGE,
                        page_token: match deep {
                            true => token.to_string(),
                            false => String::new(),
                        },
                    };
                    async move { client.list_aliases(request).await.map(|_| true) }
                })
            })
            .await?;
            table.rows.push((name.into(), run));
        }

        Ok(())
    }

    /// CreateAlias; returns each caller's new aliases (DeleteAlias removes
    /// them).
    async fn creates(
        &self,
        args: &BenchArgs,
        table: &mut Table,
    ) -> Result<Arc<Vec<Mutex<Vec<String>>>>, String> {
        let (c, secs, run_id) = (self.c, self.secs, &self.run_id);
        let channel = |w| self.channel(w);
        // CreateAlias: each caller names aliases on keys of its own, a new key
        // every 40 aliases (that CreateKey is not timed).
        let created: Arc<Vec<Mutex<Vec<String>>>> =
            Arc::new((0..c).map(|_| Mutex::new(Vec::new())).collect());
        if args.wants("CreateAlias (durable)") || args.wants("DeleteAlias (durable)") {
            let run = drive(c, secs, |w, deadline| {
                let channel = channel(w);
                let (created, prefix) =
                    (created.clone(), format!("alias/bench/{run_id}/create/{w}/"));
                async move {
                    let mut keys = KeyServiceClient::new(channel.clone());
                    let mut aliases = AliasServiceClient::new(channel);
                    let mut latencies = Vec::new();
                    let mut key = String::new();
                    let mut i = 0;
                    while Instant::now() < deadline {
                        if i % ALIASES_PER_KEY == 0 {
                            key = keys
                                .create_key(pb::CreateKeyRequest::default())
                                .await
                                .map_err(|e| format!("CreateKey: {e:?}"))?
                                .into_inner()
                                .key
                                .ok_or("no key")?
                                .key_id;
                        }
                        let name = format!("{prefix}{i}");
                        let t = Instant::now();
                        aliases
                            .create_alias(pb::CreateAliasRequest {
                                alias_name: name.clone(),
                                target_key_id: key.clone(),
                                request_id: String::new(),
                            })
                            .await
                            .map_err(|e| format!("CreateAlias: {e:?}"))?;
                        latencies.push(t.elapsed());
                        created[w]
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(name);
                        i += 1;
                    }
                    Ok(latencies)
                }
            })
            .await?;
            if args.wants("CreateAlias (durable)") {
                table.rows.push(("CreateAlias (durable)".into(), run));
            }
        }

        Ok(created)
    }

    /// UpdateAlias and RenameAlias.
    async fn moves(&self, args: &BenchArgs, table: &mut Table) -> Result<(), String> {
        let (c, secs, run_id) = (self.c, self.secs, &self.run_id);
        let channel = |w| self.channel(w);
        // UpdateAlias and RenameAlias: each caller moves an alias of its own
        // between two keys of its own, and renames it back and forth.
        if args.wants("UpdateAlias (durable)") || args.wants("RenameAlias (durable)") {
            let mut own = Vec::with_capacity(c);
            {
                let mut keys = KeyServiceClient::new(channel(0));
                let mut aliases = AliasServiceClient::new(channel(0));
                for w in 0..c {
                    let mut pair = Vec::new();
                    for _ in 0..2 {
                        pair.push(
                            keys.create_key(pb::CreateKeyRequest::default())
                                .await
                                .map_err(|e| format!("CreateKey: {e:?}"))?
                                .into_inner()
                                .key
                                .ok_or("no key")?
                                .key_id,
                        );
                    }
                    let name = format!("alias/bench/{run_id}/own/{w}");
                    aliases
                        .create_alias(pb::CreateAliasRequest {
                            alias_name: name.clone(),
                            target_key_id: pair[0].clone(),
                            request_id: String::new(),
                        })
                        .await
                        .map_err(|e| format!("CreateAlias: {e:?}"))?;
                    own.push((name, pair));
                }
            }
            let own = Arc::new(own);
            let run = drive(c, secs, |w, deadline| {
                let client = AliasServiceClient::new(channel(w));
                let own = own.clone();
                until(deadline, move |i| {
                    let mut client = client.clone();
                    let (name, pair) = &own[w];
                    let request = pb::UpdateAliasRequest {
                        alias_name: name.clone(),
                        target_key_id: pair[(i + 1) % 2].clone(),
                        ..Default::default()
                    };
                    async move { client.update_alias(request).await.map(|_| true) }
                })
            })
            .await?;
            if args.wants("UpdateAlias (durable)") {
                table.rows.push(("UpdateAlias (durable)".into(), run));
            }
            let run = drive(c, secs, |w, deadline| {
                let client = AliasServiceClient::new(channel(w));
                let own = own.clone();
                until(deadline, move |i| {
                    let mut client = client.clone();
                    let name = &own[w].0;
                    let other = format!("{name}-renamed");
                    let (from, to) = match i % 2 {
                        0 => (name.clone(), other),
                        _ => (other, name.clone()),
                    };
                    let request = pb::RenameAliasRequest {
                        alias_name: from,
                        new_alias_name: to,
                        ..Default::default()
                    };
                    async move { client.rename_alias(request).await.map(|_| true) }
                })
            })
            .await?;
            if args.wants("RenameAlias (durable)") {
                table.rows.push(("RenameAlias (durable)".into(), run));
            }
        }

        Ok(())
    }

    /// DeleteAlias, of the aliases CreateAlias made.
    async fn deletes(
        &self,
        args: &BenchArgs,
        table: &mut Table,
        created: &[Mutex<Vec<String>>],
    ) -> Result<(), String> {
        let (c, secs) = (self.c, self.secs);
        let channel = |w| self.channel(w);
        if args.wants("DeleteAlias (durable)") {
            // DeleteAlias: the aliases the CreateAlias row made.
            let run = drive(c, secs, |w, deadline| {
                let client = AliasServiceClient::new(channel(w));
                let names =
                    std::mem::take(&mut *created[w].lock().unwrap_or_else(|p| p.into_inner()));
                until(deadline, move |i| {
                    let mut client = client.clone();
                    let name = names.get(i).cloned();
                    async move {
                        match name {
                            Some(alias_name) => client
                                .delete_alias(pb::DeleteAliasRequest {
                                    alias_name,
                                    ..Default::default()
                                })
                                .await
                                .map(|_| true),
                            None => Ok(false),
                        }
                    }
                })
            })
            .await?;
            table.rows.push(("DeleteAlias (durable)".into(), run));
        }

        Ok(())
    }
}

/// The measurements themselves: the prefill, every row, the empty call
/// first and last, the HTTP rows, then the server's memory and disk.
pub(super) async fn measure(args: &BenchArgs, server: &Target) -> Result<(), String> {
    let mut channels = Vec::new();
    for _ in 0..args.connections {
        channels.push(connect(server.grpc).await?);
    }
    let channels = Arc::new(channels);
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let (c, secs) = (args.concurrency, args.seconds);
    println!(
        "aliasd bench: {} aliases, {c} callers over {} gRPC connections ({c} HTTP/1.1 \
         connections for the HTTP rows), {secs} s per operation",
        args.aliases, args.connections
    );
    let data = Arc::new(prefill(&channels, c, args.aliases, &run_id).await?);
    // Every prefill write was acknowledged, so it is on disk.
    let prefilled_size = server
        .process
        .as_ref()
        .and_then(|(_, store, _)| store.dir())
        .map(crate::store::disk_usage);
    let prefix = format!("alias/bench/{run_id}/");
    let deep_token = Arc::new(token_halfway(&channels[0], &data, &prefix).await?);
    let rows = Rows {
        channels,
        data: data.clone(),
        deep_token,
        run_id: run_id.clone(),
        c,
        secs,
    };
    let mut table = Table { rows: Vec::new() };
    // The floor: the bare tonic server's empty call, first and last too.
    let floor = super::floor::start_floor().await?;
    let mut floor_channels = Vec::new();
    for _ in 0..args.connections {
        floor_channels.push(connect(floor.addr).await?);
    }
    let floor_rows = Rows {
        channels: Arc::new(floor_channels),
        ..rows.clone()
    };
    let first_bare = floor_rows.ping("Bare tonic call, first").await?;
    let first_ping = rows.ping("Ping (empty call), first").await?;
    rows.reads(args, &mut table).await?;
    rows.crypto(args, &mut table).await?;
    rows.listings(args, &mut table).await?;
    let created = rows.creates(args, &mut table).await?;
    rows.moves(args, &mut table).await?;
    rows.deletes(args, &mut table, &created).await?;
    let last_ping = rows.ping("Ping (empty call), last").await?;
    let last_bare = floor_rows.ping("Bare tonic call, last").await?;
    drop(floor);
    let empty_grpc = (first_ping.1.per_second() + last_ping.1.per_second()) / 2.0;
    let bare = (first_bare.1.per_second() + last_bare.1.per_second()) / 2.0;
    table.rows.insert(0, first_ping);
    table.rows.insert(0, first_bare);
    table.rows.push(last_ping);
    table.rows.push(last_bare);

    let empty_http = match server.http {
        Some(http) => Some(measure_http(args, http, &data, &run_id, &mut table).await?),
        None => None,
    };
    table.print(empty_grpc, bare, empty_http);
    report_resources(args, server, prefilled_size);
    Ok(())
}

/// The server's memory and data directory (for a server the bench started).
fn report_resources(args: &BenchArgs, server: &Target, prefilled_size: Option<u64>) {
    if let Some((process, store, _)) = &server.process {
        let mib = |bytes: u64| bytes as f64 / 1048576.0;
        let rss = mib(process.rss_bytes().unwrap_or(0));
        match (store.dir(), prefilled_size) {
            (Some(data_dir), Some(prefilled)) => println!(
                "server RSS: {rss:.0} MiB; data directory after the prefill: {:.1} MiB, {:.0} \
                 bytes per alias; after the run: {:.1} MiB",
                mib(prefilled),
                prefilled as f64 / args.aliases as f64,
                mib(crate::store::disk_usage(data_dir))
            ),
            // etcd's disk is etcd's (and shared with whatever else it keeps).
            _ => println!("server RSS: {rss:.0} MiB"),
        }
    }
}
