//! The service's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`, served by hyper.
//!
//! A current-thread tokio runtime on a dedicated thread (`levee-http`): the pipeline
//! stays synchronous, and the endpoints answer concurrently, so a client that connects
//! and sends nothing cannot hold up a kubelet probe. Each connection gets
//! [`HEADER_TIMEOUT`] to send its request head and [`CONNECTION_TIMEOUT`] in all,
//! request heads are bounded by [`MAX_HEAD_BYTES`] (bodies are never read), and at most
//! [`MAX_CONNECTIONS`] are served at once (beyond, new ones wait in the backlog).

use crate::metrics::Metrics;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time a client has to send its request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a connection may live, requests included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request head read (hyper's smallest buffer).
pub const MAX_HEAD_BYTES: usize = 8192;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// What the endpoints read: the metrics registry and the readiness flag.
#[derive(Debug, Clone)]
pub struct Health {
    pub metrics: Arc<Mutex<Metrics>>,
    pub ready: Arc<AtomicBool>,
}

/// Bind `addr` and serve on a background thread; returns the bound address.
pub fn spawn(addr: &str, health: Health) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("levee-http".into())
        .spawn(move || rt.block_on(serve(listener, health)))?;
    Ok(local)
}

async fn serve(listener: std::net::TcpListener, health: Health) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "http listener unusable");
            return;
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!(error = %e, "http accept failed");
                continue;
            }
        };
        let health = health.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let health = health.clone();
                async move { Ok::<_, Infallible>(route(&req, &health)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, conn).await {
                Ok(Err(e)) => tracing::debug!(error = %e, "http connection failed"),
                Err(_) => tracing::debug!("http connection timed out"),
                Ok(Ok(())) => {}
            }
            drop(permit);
        });
    }
}

fn route(req: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    let (status, body, ctype) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let text = health
                .metrics
                .lock()
                .map(|m| m.render())
                .unwrap_or_default();
            (StatusCode::OK, text, "text/plain; version=0.0.4")
        }
        (&Method::GET, "/healthz") => (StatusCode::OK, "ok\n".to_owned(), "text/plain"),
        (&Method::GET, "/readyz") if health.ready.load(Ordering::Relaxed) => {
            (StatusCode::OK, "ready\n".to_owned(), "text/plain")
        }
        (&Method::GET, "/readyz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\n".to_owned(),
            "text/plain",
        ),
        (&Method::GET, _) => (
            StatusCode::NOT_FOUND,
            "not found\n".to_owned(),
            "text/plain",
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".to_owned(),
            "text/plain",
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("read");
        out
    }

    #[test]
    fn probes_answer_while_stalled_clients_hold_connections() {
        let health = Health {
            metrics: Arc::new(Mutex::new(Metrics::new().expect("metrics"))),
            ready: Arc::new(AtomicBool::new(false)),
        };
        let addr = spawn("127.0.0.1:0", health.clone()).expect("bind");
        // Ten clients connect and send nothing (or half a request line).
        let stalled: Vec<TcpStream> = (0..10)
            .map(|i| {
                let mut s = TcpStream::connect(addr).expect("connect");
                if i % 2 == 0 {
                    s.write_all(b"GET /hea").expect("write");
                }
                s
            })
            .collect();
        let t = Instant::now();
        let healthz = get(addr, "/healthz");
        let probe = t.elapsed();
        assert!(healthz.starts_with("HTTP/1.1 200"), "{healthz}");
        assert!(
            probe < Duration::from_millis(900),
            "a probe waited {probe:?} behind stalled clients (kubelet's timeout is 1 s)"
        );
        assert!(get(addr, "/readyz").starts_with("HTTP/1.1 503"));
        health.ready.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics");
        assert!(metrics.contains("levee_"), "{metrics}");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        // An oversized request head is refused, not buffered.
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let huge = format!(
            "GET /healthz HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(64 * 1024)
        );
        let _ = s.write_all(huge.as_bytes());
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(!out.starts_with("HTTP/1.1 200"), "{out}");
        // The stalled clients are cut off after the header timeout.
        for mut s in stalled {
            s.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let mut buf = [0u8; 256];
            let n = s.read(&mut buf).unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(!text.starts_with("HTTP/1.1 200"), "{text}");
        }
    }
}
