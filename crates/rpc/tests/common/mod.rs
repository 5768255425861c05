#![allow(dead_code)]

pub mod mock;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rpc::{Config, Server};

pub use mock::Mock;

/// A server with the mock handler on a temporary socket (and a read-only
/// one next to it).
pub struct TestServer {
    pub server: Server<Mock>,
    pub mock: Arc<Mock>,
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub ro_path: PathBuf,
}

impl TestServer {
    pub async fn start(cfg: Config) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let ro_path = dir.path().join("sock-ro");
        let mock = Arc::new(Mock::default());
        Mock::register_arc(&mock);
        let server = Server::with_handler(cfg, mock.clone());
        let rw = tokio::net::UnixListener::bind(&path).unwrap();
        let ro = tokio::net::UnixListener::bind(&ro_path).unwrap();
        let s = server.clone();
        tokio::spawn(async move { s.serve(rw, false).await });
        let s = server.clone();
        tokio::spawn(async move { s.serve(ro, true).await });
        TestServer {
            server,
            mock,
            dir,
            path,
            ro_path,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Polls `cond` until it holds; fails the test after 10 s.
pub async fn eventually(what: &str, cond: impl FnMut() -> bool) {
    let held = testkit::wait::until_async(Duration::from_secs(10), cond).await;
    assert!(held, "timed out waiting for {what}");
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}
