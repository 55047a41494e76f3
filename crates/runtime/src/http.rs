//! The service's HTTP endpoints: `/metrics`, `/healthz`, `/readyz` (a minimal HTTP/1.1 server).
//!
//! Three GET routes on a dedicated thread; one short-lived connection at a time is
//! plenty for a Prometheus scraper and kubelet probes, and needs no async runtime.

use crate::metrics::Metrics;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the endpoints read: the metrics registry and the readiness flag.
#[derive(Debug, Clone)]
pub struct Health {
    pub metrics: Arc<Mutex<Metrics>>,
    pub ready: Arc<AtomicBool>,
}

/// Bind `addr` and serve on a background thread; returns the bound address.
pub fn spawn(addr: &str, health: Health) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("levee-http".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = handle(stream, &health) {
                    tracing::debug!(error = %e, "http connection failed");
                }
            }
        })?;
    Ok(local)
}

fn handle(stream: TcpStream, health: &Health) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers (bounded by the read timeout and line count).
    for _ in 0..100 {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let (status, body, ctype) = match path {
        "/metrics" => {
            let text = health
                .metrics
                .lock()
                .map(|m| m.render())
                .unwrap_or_default();
            ("200 OK", text, "text/plain; version=0.0.4")
        }
        "/healthz" => ("200 OK", "ok\n".to_owned(), "text/plain"),
        "/readyz" if health.ready.load(Ordering::Relaxed) => {
            ("200 OK", "ready\n".to_owned(), "text/plain")
        }
        "/readyz" => (
            "503 Service Unavailable",
            "not ready\n".to_owned(),
            "text/plain",
        ),
        _ => ("404 Not Found", "not found\n".to_owned(), "text/plain"),
    };
    let mut out = stream;
    write!(out, "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())?;
    out.flush()
}
