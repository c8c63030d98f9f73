//! The floor every gRPC row is also measured against: a bare tonic server
//! in its own process (`aliasd bench-floor`), serving an empty unary RPC
//! with tonic's defaults and no layers at all. The gap between it and
//! aliasd's own Ping is what aliasd's request stack costs per call
//! (admission, throttle, request id, span, metrics, the call log).

use std::net::SocketAddr;
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use tonic::{Request, Response, Status};

use crate::pb;
use crate::pb::diagnostics_service_server::{DiagnosticsService, DiagnosticsServiceServer};

/// The empty call, and nothing else.
struct Bare;

#[tonic::async_trait]
impl DiagnosticsService for Bare {
    async fn ping(
        &self,
        _: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }

    async fn get_server_info(
        &self,
        _: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::GetServerInfoResponse>, Status> {
        Err(Status::unimplemented("the benchmark's floor is not aliasd"))
    }
}

/// `aliasd bench-floor`: serves the bare server on an ephemeral loopback
/// port, prints `listening on ADDR` on stdout, and runs until killed.
pub async fn serve_floor() -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "listening on {addr}").map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    // TCP_NODELAY, as aliasd sets it: otherwise the floor would wait on
    // Nagle's algorithm and measure the network stack, not tonic.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |stream| {
            let stream = stream?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        },
    );
    tonic::transport::Server::builder()
        .add_service(DiagnosticsServiceServer::new(Bare))
        .serve_with_incoming(incoming)
        .await
        .map_err(|e| format!("the floor server failed: {e}"))
}

/// The running floor server (killed when dropped).
pub(super) struct Floor {
    _child: tokio::process::Child,
    pub(super) addr: SocketAddr,
}

/// Starts `aliasd bench-floor` and waits for its address.
pub(super) async fn start_floor() -> Result<Floor, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find aliasd: {e}"))?;
    let mut child = tokio::process::Command::new(exe)
        .arg("bench-floor")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start the floor server: {e}"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or("the floor server has no stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::io::BufReader::new(stdout).read_line(&mut line),
    )
    .await
    .map_err(|_| "the floor server did not listen within 30 s".to_owned())?
    .map_err(|e| format!("cannot read the floor server's address: {e}"))?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("the floor server said {line:?}"))?;
    Ok(Floor {
        _child: child,
        addr,
    })
}
