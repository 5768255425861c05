//! The metrics endpoint (`metrics_listen` in the config, off by default):
//! `GET /metrics` in Prometheus' text format over plain HTTP/1.0.
//!
//! The HTTP side is a small responder written here rather than hyper or
//! axum: it serves one read-only resource to a scraper, needs no
//! keep-alive, chunking, TLS or routing, and a dozen bounded lines keep
//! the daemon's dependency tree (and its build on a 2-core machine)
//! small. Its bounds: at most [`MAX_SCRAPES`] connections served at once
//! (more are answered 503 and closed), requests of at most
//! [`MAX_REQUEST`] bytes read within [`IO_DEADLINE`], the reply written
//! within the same deadline, then the connection closed.

mod collect;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

pub(crate) use collect::Sources;

/// Connections served at once.
pub(crate) const MAX_SCRAPES: usize = 4;
/// Largest request head read.
pub(crate) const MAX_REQUEST: usize = 8192;
/// Deadline of reading the request and of writing the reply.
pub(crate) const IO_DEADLINE: Duration = Duration::from_secs(10);

/// Binds `addr` and serves scrapes until the process ends.
pub(crate) async fn serve(addr: SocketAddr, src: Sources) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "metrics endpoint listening");
    tokio::spawn(accept_loop(listener, src));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, src: Sources) {
    let slots = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = slots.clone().try_acquire_owned();
        let src = src.clone();
        tokio::spawn(async move {
            let r = match permit {
                Ok(_permit) => serve_one(stream, &src).await,
                Err(_) => reply(stream, "503 Service Unavailable", "busy\n").await,
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "metrics connection failed");
            }
        });
    }
}

async fn serve_one(mut stream: TcpStream, src: &Sources) -> std::io::Result<()> {
    let head = match tokio::time::timeout(IO_DEADLINE, read_head(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => return Ok(()),
    };
    match route(&head) {
        Route::Metrics => {
            let src = src.clone();
            let body = tokio::task::spawn_blocking(move || collect::render(&src))
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?;
            reply(stream, "200 OK", &body).await
        }
        Route::NotFound => reply(stream, "404 Not Found", "not found: try /metrics\n").await,
        Route::BadMethod => reply(stream, "405 Method Not Allowed", "GET only\n").await,
        Route::Bad => reply(stream, "400 Bad Request", "bad request\n").await,
    }
}

/// Reads until the end of the request head, at most [`MAX_REQUEST`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(buf)
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics,
    NotFound,
    BadMethod,
    Bad,
}

fn route(head: &[u8]) -> Route {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    if method != "GET" && method != "HEAD" {
        return Route::BadMethod;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == "/metrics" || path == "/" {
        Route::Metrics
    } else {
        Route::NotFound
    }
}

async fn reply(mut stream: TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(IO_DEADLINE, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /other HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n"), Route::BadMethod);
        assert_eq!(route(b"garbage"), Route::Bad);
        assert_eq!(route(b""), Route::Bad);
        assert_eq!(route(b"GET /metrics SPDY/3\r\n\r\n"), Route::Bad);
    }
}
