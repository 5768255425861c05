//! A server with the test mock handler, for experiments with `virsh`:
//!
//! ```sh
//! cargo run -p rpc --example mock_server -- /tmp/mock.sock
//! virsh -c 'qemu+unix:///system?socket=/tmp/mock.sock' version
//! ```
//!
//! Every procedure received is logged (`RUST_LOG=debug` for more).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

#[path = "../tests/common/mock.rs"]
mod mock;

use std::sync::Arc;

use rpc::{Config, Server};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/ferrovirt-mock.sock".into());
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    let mock = Arc::new(mock::Mock::default());
    mock::Mock::register_arc(&mock);
    let server = Server::with_handler(Config::default(), mock.clone());
    eprintln!("listening on {path}");
    let s = server.clone();
    let serve = tokio::spawn(async move { s.serve(listener, false).await });
    let mut last = 0;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {
                let seen = mock.seen();
                for p in &seen[last..] {
                    eprintln!("call {}", rpc::server::describe_procedure(*p));
                }
                last = seen.len();
            }
        }
    }
    server.shutdown();
    server.wait_closed().await;
    let _ = serve.await;
    Ok(())
}
