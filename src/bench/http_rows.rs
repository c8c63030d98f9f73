//! The HTTP rows: the door's empty call and the AWS and Huawei dialects.

use super::*;

/// The HTTP rows: `GET /ping`, AWS DescribeKey by alias, AWS CreateAlias,
/// each caller on a keep-alive HTTP/1.1 connection of its own. Returns the
/// empty call's rate.
pub(super) async fn measure_http(
    args: &BenchArgs,
    http: SocketAddr,
    data: &Arc<DataSet>,
    run_id: &str,
    table: &mut Table,
) -> Result<f64, String> {
    let (c, secs) = (args.concurrency, args.seconds);
    let mut senders = Vec::with_capacity(c);
    for _ in 0..c {
        senders.push(http1_connection(http).await?);
    }
    let senders: Arc<Vec<tokio::sync::Mutex<HttpSender>>> =
        Arc::new(senders.into_iter().map(tokio::sync::Mutex::new).collect());

    // `make(caller, i)`: the caller's i-th request, None when it has no more.
    type Make = Arc<dyn Fn(usize, usize) -> Option<HttpCall> + Send + Sync>;
    let run_http = |name: &'static str, make: Make| {
        let senders = senders.clone();
        async move {
            let run = drive(c, secs, |w, deadline| {
                let (senders, make) = (senders.clone(), make.clone());
                async move {
                    let mut sender = senders[w].lock().await;
                    let mut latencies = Vec::new();
                    let mut i = 0;
                    while Instant::now() < deadline {
                        let Some(call) = make(w, i) else { break };
                        let t = Instant::now();
                        let status = send(&mut sender, &call).await?;
                        if status != call.expect {
                            return Err(format!("{name}: HTTP {status}, expected {}", call.expect));
                        }
                        latencies.push(t.elapsed());
                        i += 1;
                    }
                    Ok(latencies)
                }
            })
            .await?;
            Ok::<_, String>((name.to_owned(), run))
        }
    };
    let empty = run_http(
        "HTTP GET /ping (empty call)",
        Arc::new(|_, _| Some(HttpCall::get("/ping", 204))),
    )
    .await?;
    let empty_rate = empty.1.per_second();
    table.rows.push(empty);
    if args.wants("AWS DescribeKey by alias name") {
        let names = data.clone();
        table.rows.push(
            run_http(
                "AWS DescribeKey by alias name",
                Arc::new(move |w, i| {
                    let name = &names.names[(w * 7919 + i * 104_729) % names.names.len()];
                    Some(HttpCall::aws(
                        "DescribeKey",
                        serde_json::json!({ "KeyId": name }),
                    ))
                }),
            )
            .await?,
        );
    }
    // CreateAlias over AWS: each caller names up to `per_caller` aliases on
    // keys made first (40 aliases each), then stops.
    if args.wants("AWS CreateAlias (durable)") {
        let per_caller = ((secs * 1000.0) as usize).div_ceil(ALIASES_PER_KEY) * ALIASES_PER_KEY;
        let keys_per_caller = per_caller / ALIASES_PER_KEY;
        let made = Arc::new(Mutex::new(Vec::new()));
        let make_keys = drive(c, 3600.0, |w, _| {
            let (senders, made) = (senders.clone(), made.clone());
            async move {
                let mut sender = senders[w].lock().await;
                for k in 0..keys_per_caller {
                    let call = HttpCall::aws("CreateKey", serde_json::json!({}));
                    let (status, body) = send_full(&mut sender, &call).await?;
                    let key: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    match key["KeyMetadata"]["KeyId"].as_str() {
                        Some(id) if status == 200 => made
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((w, k, id.to_owned())),
                        _ => return Err(format!("AWS CreateKey: HTTP {status}")),
                    }
                }
                Ok(Vec::new())
            }
        });
        make_keys.await?;
        let mut made = std::mem::take(&mut *made.lock().unwrap_or_else(|p| p.into_inner()));
        made.sort();
        let keys: Arc<Vec<String>> = Arc::new(made.into_iter().map(|(_, _, id)| id).collect());
        let prefix = format!("alias/bench/{run_id}/aws/");
        table.rows.push(
            run_http(
                "AWS CreateAlias (durable)",
                Arc::new(move |w, i| {
                    (i < per_caller).then(|| {
                        let key = &keys[w * keys_per_caller + i / ALIASES_PER_KEY];
                        HttpCall::aws(
                            "CreateAlias",
                            serde_json::json!({ "AliasName": format!("{prefix}{w}/{i}"), "TargetKeyId": key }),
                        )
                    })
                }),
            )
            .await?,
        );
    }

    // Huawei: describe-key by key id, and update-key-alias, each caller
    // renaming the one alias of a key of its own back and forth.
    if args.wants("Huawei describe-key") {
        let set = data.clone();
        table.rows.push(
            run_http(
                "Huawei describe-key",
                Arc::new(move |w, i| {
                    let key = &set.keys[(w * 7919 + i * 104_729) % set.keys.len()];
                    Some(HttpCall::huawei(
                        "describe-key",
                        serde_json::json!({ "key_id": key }),
                    ))
                }),
            )
            .await?,
        );
    }
    if args.wants("Huawei update-key-alias (durable)") {
        let run = run_id.to_owned();
        let alias_of = move |w: usize, i: usize| format!("bench/{run}/huawei/{w}/{}", i % 2);
        let own = Arc::new(Mutex::new(vec![String::new(); c]));
        let made = drive(c, 3600.0, |w, _| {
            let (senders, own, alias) = (senders.clone(), own.clone(), alias_of(w, 0));
            async move {
                let mut sender = senders[w].lock().await;
                let call =
                    HttpCall::huawei("create-key", serde_json::json!({ "key_alias": alias }));
                let (status, body) = send_full(&mut sender, &call).await?;
                let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                match answer["key_info"]["key_id"].as_str() {
                    Some(id) if status == 200 => {
                        own.lock().unwrap_or_else(|p| p.into_inner())[w] = id.to_owned();
                        Ok(Vec::new())
                    }
                    _ => Err(format!("Huawei create-key: HTTP {status}")),
                }
            }
        });
        made.await?;
        let own: Arc<Vec<String>> = Arc::new(std::mem::take(
            &mut *own.lock().unwrap_or_else(|p| p.into_inner()),
        ));
        table.rows.push(
            run_http(
                "Huawei update-key-alias (durable)",
                Arc::new(move |w, i| {
                    Some(HttpCall::huawei(
                        "update-key-alias",
                        serde_json::json!({ "key_id": own[w], "key_alias": alias_of(w, i + 1) }),
                    ))
                }),
            )
            .await?,
        );
    }
    Ok(empty_rate)
}

pub(super) type HttpSender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One HTTP request of a row, and the status it must get.
pub(super) struct HttpCall {
    pub(super) method: http::Method,
    pub(super) path: String,
    /// The `X-Amz-Target` of an AWS call.
    pub(super) target: Option<String>,
    pub(super) content_type: &'static str,
    pub(super) body: Bytes,
    pub(super) expect: u16,
}

/// The project id of the bench's Huawei calls.
pub(super) const HUAWEI_PROJECT: &str = "bench";

impl HttpCall {
    pub(super) fn get(path: &str, expect: u16) -> HttpCall {
        HttpCall {
            method: http::Method::GET,
            path: path.to_owned(),
            target: None,
            content_type: "text/plain",
            body: Bytes::new(),
            expect,
        }
    }

    pub(super) fn aws(operation: &str, body: serde_json::Value) -> HttpCall {
        HttpCall {
            method: http::Method::POST,
            path: "/".to_owned(),
            target: Some(format!("TrentService.{operation}")),
            content_type: "application/x-amz-json-1.1",
            body: Bytes::from(body.to_string()),
            expect: 200,
        }
    }

    pub(super) fn huawei(operation: &str, body: serde_json::Value) -> HttpCall {
        HttpCall {
            method: http::Method::POST,
            path: format!("/v1.0/{HUAWEI_PROJECT}/kms/{operation}"),
            target: None,
            content_type: "application/json",
            body: Bytes::from(body.to_string()),
            expect: 200,
        }
    }
}

pub(super) async fn http1_connection(addr: SocketAddr) -> Result<HttpSender, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

pub(super) async fn send(sender: &mut HttpSender, call: &HttpCall) -> Result<u16, String> {
    send_full(sender, call).await.map(|(status, _)| status)
}

pub(super) async fn send_full(
    sender: &mut HttpSender,
    call: &HttpCall,
) -> Result<(u16, Bytes), String> {
    let mut request = http::Request::builder()
        .method(call.method.clone())
        .uri(call.path.as_str())
        .header(http::header::HOST, "localhost")
        .header(http::header::CONTENT_TYPE, call.content_type);
    if let Some(target) = &call.target {
        request = request.header("x-amz-target", target);
    }
    let request = request
        .body(Full::new(call.body.clone()))
        .map_err(|e| e.to_string())?;
    sender
        .ready()
        .await
        .map_err(|e| format!("HTTP connection: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("HTTP request: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("HTTP body: {e}"))?
        .to_bytes();
    Ok((status, body))
}
