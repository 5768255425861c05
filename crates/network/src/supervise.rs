//! Keeping a running network's dnsmasq alive.
//!
//! One task per running network waits on a pidfd for dnsmasq to exit (it
//! is not our child, so this also works for a dnsmasq adopted after a
//! daemon restart). When it dies the task restarts it after a backoff that
//! doubles each time; more than `max_restarts` deaths within `window`
//! and the network is marked degraded and left alone: a dnsmasq that dies
//! at once every time would otherwise be restarted forever.
//!
//! The task takes no job. Destroy stops it first (and waits for it), then
//! stops dnsmasq, so a restart can never race the teardown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::driver::Shared;
use crate::host::dnsmasq::Files;
use crate::host::proc::PidFd;
use crate::network::{Health, Network, Supervisor};

pub(crate) fn spawn(s: Arc<Shared>, net: Arc<Network>, pid: i32) -> Supervisor {
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(run(s, net, pid, rx));
    Supervisor { stop, task }
}

/// Stops the supervisor and waits (bounded) for it to finish.
pub(crate) async fn stop(sup: Supervisor, wait: Duration) {
    let _ = sup.stop.send(true);
    let abort = sup.task.abort_handle();
    if tokio::time::timeout(wait, sup.task).await.is_err() {
        abort.abort();
    }
}

/// Resolves when a stop is asked (or the driver side is gone).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

async fn run(s: Arc<Shared>, net: Arc<Network>, first: i32, mut rx: watch::Receiver<bool>) {
    let policy = s.cfg.restart;
    let files = Files::new(&s.layout, net.name());
    let mut pid = Some(first);
    let mut deaths: VecDeque<Instant> = VecDeque::new();
    let mut backoff = policy.initial_backoff;
    loop {
        if let Some(p) = pid {
            let Ok(watch) = PidFd::open(p) else {
                // Already gone: count it as a death below.
                pid = None;
                continue;
            };
            tokio::select! {
                () = watch.exited() => {}
                () = stopped(&mut rx) => return,
            }
            tracing::warn!(network = net.name(), pid = p, "dnsmasq exited");
        }
        let now = Instant::now();
        deaths.push_back(now);
        while deaths
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.window)
        {
            deaths.pop_front();
        }
        if deaths.len() > policy.max_restarts as usize {
            degrade(&net, &s, deaths.len(), policy.window);
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut rx) => return,
        }
        backoff = (backoff * 2).min(policy.max_backoff);
        pid = restart(&s, &net, &files, &mut rx).await;
        if *rx.borrow() {
            return;
        }
    }
}

/// Starts dnsmasq again with the running definition; records its pid.
async fn restart(
    s: &Shared,
    net: &Network,
    files: &Files,
    rx: &mut watch::Receiver<bool>,
) -> Option<i32> {
    let def = net.lock().live.as_ref().map(|l| l.def.clone())?;
    let bridge = def.bridge_name().unwrap_or_default().to_owned();
    let started = tokio::select! {
        r = s.dnsmasq.start(&def, &bridge, files) => r,
        () = stopped(rx) => return None,
    };
    match started {
        Ok(p) => {
            let mut g = net.lock();
            if let Some(l) = g.live.as_mut() {
                l.dnsmasq = Some(p);
                l.restarts += 1;
            }
            tracing::info!(network = net.name(), pid = p, "dnsmasq restarted");
            Some(p)
        }
        Err(e) => {
            tracing::error!(network = net.name(), error = %e, "cannot restart dnsmasq");
            None
        }
    }
}

fn degrade(net: &Network, _s: &Shared, deaths: usize, window: Duration) {
    let why = format!("dnsmasq exited {deaths} times within {window:?}; it is no longer restarted");
    tracing::error!(network = net.name(), "{why}");
    let mut g = net.lock();
    if let Some(l) = g.live.as_mut() {
        l.dnsmasq = None;
        l.health = Health::Degraded(why);
    }
}
