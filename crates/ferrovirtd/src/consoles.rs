//! Console sessions: at most one per character device of a domain, as
//! libvirt keeps them. A new session on a device in use is refused unless
//! forced (`virsh console --force`); then the old session is told to end
//! (its client gets an error) and the new one starts once the old one has
//! let go of the device, so the two never read the guest's output at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use virterror::{ErrorCode, ErrorDomain, VirError};

/// How long a forced session waits for the one it ends to let go.
const TAKEOVER_WAIT: Duration = Duration::from_secs(10);

/// A domain's character device, by the domain's uuid and the device's
/// alias.
type Key = (uuid::Uuid, String);

struct Entry {
    id: u64,
    /// Set to ask the session to end.
    stop: watch::Sender<bool>,
}

/// Every open console session of the daemon.
#[derive(Default)]
pub(crate) struct Consoles {
    sessions: Mutex<HashMap<Key, Entry>>,
    /// Signalled when a session lets go of its device.
    released: Notify,
    next_id: AtomicU64,
}

/// A session's hold on its device, given up on drop.
pub(crate) struct Claim {
    consoles: Arc<Consoles>,
    key: Key,
    id: u64,
    stop: watch::Receiver<bool>,
}

impl Consoles {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // Plain data: consistent between statements even after a panic.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `alias` of domain `uuid` for a new session. A device in use
    /// is refused (libvirt's error), or with `force` taken over.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        uuid: uuid::Uuid,
        alias: &str,
        force: bool,
    ) -> Result<Claim, VirError> {
        let key = (uuid, alias.to_owned());
        let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            {
                let mut s = self.lock();
                match s.get(&key) {
                    None => return Ok(self.insert(&mut s, key)),
                    Some(_) if !force => return Err(session_exists()),
                    Some(e) => {
                        e.stop.send_replace(true);
                    }
                }
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(VirError::new(
                    ErrorCode::OperationTimeout,
                    ErrorDomain::Qemu,
                    format!(
                        "Timed out during operation: the console session on {alias} did not end"
                    ),
                ));
            }
        }
    }

    fn insert(self: &Arc<Self>, s: &mut HashMap<Key, Entry>, key: Key) -> Claim {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (stop, stop_rx) = watch::channel(false);
        s.insert(key.clone(), Entry { id, stop });
        Claim {
            consoles: self.clone(),
            key,
            id,
            stop: stop_rx,
        }
    }

    /// Open sessions (for tests and diagnostics).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Claim {
    /// Resolves when another session takes the device over.
    pub(crate) async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|s| *s).await;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut s = self.consoles.lock();
        if s.get(&self.key).is_some_and(|e| e.id == self.id) {
            s.remove(&self.key);
        }
        drop(s);
        self.consoles.released.notify_waiters();
    }
}

/// libvirt's error for a second session without `--force`.
fn session_exists() -> VirError {
    VirError::new(
        ErrorCode::OperationFailed,
        ErrorDomain::Qemu,
        "operation failed: Active console session exists for this domain",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_session_per_device_and_force_takes_over() {
        let c = Arc::new(Consoles::default());
        let dom = uuid::Uuid::new_v4();
        let mut first = c.claim(dom, "serial0", false).await.unwrap();
        let e = c.claim(dom, "serial0", false).await.err().unwrap();
        assert_eq!(e.code, ErrorCode::OperationFailed);
        // Another device, or another domain, is another session.
        let other = c.claim(dom, "serial1", false).await.unwrap();
        let elsewhere = c
            .claim(uuid::Uuid::new_v4(), "serial0", false)
            .await
            .unwrap();
        // Forced: the first is told to stop and the second waits for it.
        let c2 = c.clone();
        let second = tokio::spawn(async move { c2.claim(dom, "serial0", true).await });
        first.stopped().await;
        assert!(!second.is_finished());
        drop(first);
        let second = second.await.unwrap().unwrap();
        assert_eq!(c.len(), 3);
        drop((second, other, elsewhere));
        assert_eq!(c.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_that_never_lets_go_times_the_takeover_out() {
        let c = Arc::new(Consoles::default());
        let dom = uuid::Uuid::new_v4();
        let _stuck = c.claim(dom, "serial0", false).await.unwrap();
        let e = c.claim(dom, "serial0", true).await.err().unwrap();
        assert_eq!(e.code, ErrorCode::OperationTimeout);
    }
}
