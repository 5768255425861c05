//! The one benchmark client for both daemons: `rpc::Client` (our async
//! client of libvirt's remote protocol), connected the way libvirt clients
//! connect (`AUTH_LIST`, `CONNECT_OPEN`), plus the load generators built on
//! it: closed-loop workers, a paced (open-loop) probe and event listeners.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc::Client;
use rpc::protocol::remote::{self, NonnullDomain, procedure as p};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout};

use crate::util::{lat_summary, now_ns, round1};

pub(crate) type Res<T> = Result<T, String>;

/// Highest domain event ID of libvirt 9.0 (VIR_DOMAIN_EVENT_ID_LAST - 1).
pub(crate) const EVENT_ID_LAST: i32 = 26;

pub(crate) fn es<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Connects and opens `qemu:///system` like libvirt's client library.
pub(crate) async fn open(sock: &Path) -> Res<Client> {
    let c = Client::connect(sock)
        .await
        .map_err(|e| format!("connect {}: {e}", sock.display()))?;
    let _: remote::AuthListRet = c.call(p::AUTH_LIST, &()).await.map_err(es)?;
    c.open(Some("qemu:///system"), 0).await.map_err(es)?;
    Ok(c)
}

pub(crate) async fn open_timeout(sock: &Path, t: Duration) -> Res<Client> {
    match timeout(t, open(sock)).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer to connect/open within {t:?}")),
    }
}

pub(crate) async fn define_start(c: &Client, xml: &str, paused: bool) -> Res<NonnullDomain> {
    let d = c.define_xml(xml).await.map_err(es)?;
    let r: remote::DomainRet = c
        .call(
            p::DOMAIN_CREATE_WITH_FLAGS,
            &remote::DomainFlagsArgs {
                dom: d,
                flags: u32::from(paused),
            },
        )
        .await
        .map_err(es)?;
    Ok(r.dom)
}

pub(crate) async fn suspend(c: &Client, dom: &NonnullDomain) -> Res<()> {
    c.call(p::DOMAIN_SUSPEND, &remote::DomainArgs { dom: dom.clone() })
        .await
        .map_err(es)
}

#[allow(dead_code)]
pub(crate) async fn resume(c: &Client, dom: &NonnullDomain) -> Res<()> {
    c.call(p::DOMAIN_RESUME, &remote::DomainArgs { dom: dom.clone() })
        .await
        .map_err(es)
}

#[allow(dead_code)]
pub(crate) async fn undefine(c: &Client, dom: &NonnullDomain) -> Res<()> {
    c.call(
        p::DOMAIN_UNDEFINE_FLAGS,
        &remote::DomainFlagsArgs {
            dom: dom.clone(),
            flags: 0,
        },
    )
    .await
    .map_err(es)
}

/// Destroys (if running) and undefines every domain whose name starts with
/// `prefix`; returns how many.
#[allow(dead_code)]
pub(crate) async fn teardown(c: &Client, prefix: &str) -> Res<usize> {
    let doms = c.list_all_domains(0).await.map_err(es)?;
    let mut n = 0;
    for d in doms.iter().filter(|d| d.name.starts_with(prefix)) {
        if d.id >= 0 {
            let _ = timeout(Duration::from_secs(30), c.destroy(d)).await;
        }
        let _ = undefine(c, d).await;
        n += 1;
    }
    Ok(n)
}

/// `running` (1) / `paused` (3) / ... of a domain.
pub(crate) async fn state(c: &Client, dom: &NonnullDomain) -> Res<i32> {
    Ok(c.domain_get_state(dom).await.map_err(es)?.state)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Info,
    State,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Info => "GET_INFO",
            Op::State => "GET_STATE",
        }
    }

    async fn call(self, c: &Client, d: &NonnullDomain) -> Result<(), rpc::ClientError> {
        match self {
            Op::Info => c.domain_get_info(d).await.map(|_| ()),
            Op::State => c.domain_get_state(d).await.map(|_| ()),
        }
    }
}

async fn lookup_all(c: &Client, names: &[String]) -> Res<Vec<NonnullDomain>> {
    let mut v = Vec::with_capacity(names.len());
    for n in names {
        v.push(c.lookup_by_name(n).await.map_err(es)?);
    }
    Ok(v)
}

/// Closed loop: `conns` connections, each calling `op` back to back,
/// round-robin over `names`, for `dur`. Returns ops/s and latency figures.
pub(crate) async fn closed_loop(
    sock: &Path,
    names: &[String],
    op: Op,
    conns: usize,
    dur: Duration,
) -> Res<Value> {
    let mut clients = Vec::new();
    for _ in 0..conns {
        let c = open_timeout(sock, Duration::from_secs(10)).await?;
        let doms = lookup_all(&c, names).await?;
        clients.push((c, doms));
    }
    let start = Instant::now();
    let end = start + dur;
    let mut tasks = Vec::new();
    for (i, (c, doms)) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut errs = 0u64;
            let mut k = i;
            while Instant::now() < end {
                let d = &doms[k % doms.len()];
                k += 1;
                let t0 = now_ns();
                let r = op.call(&c, d).await;
                lat.push(now_ns() - t0);
                if r.is_err() {
                    errs += 1;
                }
            }
            (lat, errs)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.map_err(es)?;
        all.extend(l);
        errors += e;
    }
    let wall = start.elapsed().as_secs_f64();
    let ops = all.len();
    let mut v = lat_summary(&mut all);
    v["ops"] = json!(ops);
    v["ops_per_s"] = json!(round1(ops as f64 / wall));
    v["errors"] = json!(errors);
    v["op"] = json!(op.name());
    v["conns"] = json!(conns);
    v["duration_s"] = json!(round1(wall));
    Ok(v)
}

/// An open-loop probe: one connection, one call every `1/rate` s on the
/// schedule (a stalled call shows up as one long sample, and the calls it
/// delayed are issued late), round-robin over `names`, for `dur`. Calls
/// still blocked `grace` after the end are reported as stuck. Connection
/// set-up that does not finish in 10 s is reported as `setup_stuck`.
pub(crate) fn spawn_probe(
    sock: PathBuf,
    names: Vec<String>,
    op: Op,
    rate: f64,
    dur: Duration,
    grace: Duration,
) -> tokio::task::JoinHandle<Value> {
    tokio::spawn(async move {
        let t_setup = Instant::now();
        let setup = async {
            let c = open(&sock).await?;
            let d = lookup_all(&c, &names).await?;
            Ok::<_, String>((c, d))
        };
        let (c, doms) = match timeout(Duration::from_secs(10), setup).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => return json!({"setup_error": e, "ops": 0, "success_rate": 0.0}),
            Err(_) => {
                return json!({"setup_stuck": true, "ops": 0, "success_rate": 0.0,
                              "note": "could not even connect within 10 s"});
            }
        };
        let setup_s = t_setup.elapsed().as_secs_f64();
        let period = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let end = start + dur;
        let hard = end + grace;
        let mut next = start;
        let mut lat = Vec::new();
        let mut errors = 0u64;
        let mut err_sample = None;
        let mut stuck = None;
        let mut k = 0usize;
        let mut per_sec: Vec<u64> = Vec::new();
        while Instant::now() < end {
            next += period;
            tokio::time::sleep_until(next).await;
            let d = &doms[k % doms.len()];
            k += 1;
            let t0 = now_ns();
            let tick = Instant::now();
            match tokio::time::timeout_at(hard, op.call(&c, d)).await {
                Ok(r) => {
                    let dt = now_ns() - t0;
                    lat.push(dt);
                    let sec = (tick - start).as_secs() as usize;
                    if per_sec.len() <= sec {
                        per_sec.resize(sec + 1, 0);
                    }
                    per_sec[sec] = per_sec[sec].max(dt / 1000);
                    if let Err(e) = r {
                        errors += 1;
                        err_sample.get_or_insert(e.to_string());
                    }
                }
                Err(_) => {
                    stuck = Some(round1(tick.elapsed().as_secs_f64()));
                    break;
                }
            }
            if next + period < Instant::now() {
                // fell behind (stall): re-anchor the schedule
                next = Instant::now();
            }
        }
        let ok = lat.len() as u64 - errors;
        let attempted = lat.len() as u64 + u64::from(stuck.is_some());
        let mut v = lat_summary(&mut lat);
        v["ops"] = json!(attempted);
        v["errors"] = json!(errors);
        v["error_sample"] = json!(err_sample);
        v["stuck_call_age_s"] = json!(stuck);
        v["success_rate"] = json!(if attempted == 0 {
            0.0
        } else {
            (ok as f64 / attempted as f64 * 10000.0).round() / 10000.0
        });
        v["setup_s"] = json!(round1(setup_s));
        v["worst_second_max_us"] = json!(per_sec.iter().max());
        v
    })
}

/// Registers `c` for every domain event ID 0..=EVENT_ID_LAST the daemon
/// accepts (like `virsh event --all`); returns how many were accepted.
pub(crate) async fn register_all_events(c: &Client) -> usize {
    let mut ok = 0;
    for id in 0..=EVENT_ID_LAST {
        let r: Result<remote::ConnectDomainEventCallbackRegisterAnyRet, _> = c
            .call(
                p::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY,
                &remote::ConnectDomainEventCallbackRegisterAnyArgs {
                    event_id: id,
                    dom: None,
                },
            )
            .await;
        if r.is_ok() {
            ok += 1;
        }
    }
    ok
}

/// A live event listener: its own connection, registered for all event IDs,
/// reading continuously; counts what it receives.
pub(crate) struct Listener {
    pub received: Arc<AtomicU64>,
    pub registered: usize,
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    pub(crate) async fn start(sock: &Path) -> Res<Listener> {
        let client = open_timeout(sock, Duration::from_secs(10)).await?;
        let mut ev = client.take_events().ok_or("events taken")?;
        let registered = register_all_events(&client).await;
        let received = Arc::new(AtomicU64::new(0));
        let r2 = received.clone();
        let task = tokio::spawn(async move {
            while ev.recv().await.is_some() {
                r2.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Listener {
            received,
            registered,
            client,
            task,
        })
    }

    pub(crate) fn summary(&self) -> Value {
        json!({
            "received": self.received.load(Ordering::Relaxed),
            "dropped_in_client": self.client.dropped_events(),
            "registered_event_ids": self.registered,
            "connection_closed_by_daemon": self.client.is_closed(),
        })
    }

    pub(crate) async fn stop(self) -> Value {
        let v = self.summary();
        self.task.abort();
        let _ = timeout(Duration::from_secs(2), self.client.close()).await;
        v
    }
}

/// Lifecycle callbacks as (monotonic ns at receipt, domain name, event).
pub(crate) struct LifecycleStream {
    pub client: Client,
    pub rx: tokio::sync::mpsc::UnboundedReceiver<(u64, String, i32)>,
    task: tokio::task::JoinHandle<()>,
}

impl LifecycleStream {
    pub(crate) async fn start(sock: &Path) -> Res<LifecycleStream> {
        let client = open_timeout(sock, Duration::from_secs(10)).await?;
        let mut ev = client.take_events().ok_or("events taken")?;
        client.register_lifecycle_callback(None).await.map_err(es)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                let t = now_ns();
                if e.procedure == p::DOMAIN_EVENT_CALLBACK_LIFECYCLE
                    && let Ok(m) = e.decode::<remote::DomainEventCallbackLifecycleMsg>()
                {
                    let _ = tx.send((t, m.msg.dom.name, m.msg.event));
                }
            }
        });
        Ok(LifecycleStream { client, rx, task })
    }

    /// Waits for the next lifecycle event `want` of `dom`; returns its
    /// receipt time.
    pub(crate) async fn wait_for(&mut self, dom: &str, want: i32, t: Duration) -> Option<u64> {
        let deadline = Instant::now() + t;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some((ts, name, ev))) if name == dom && ev == want => return Some(ts),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }

    pub(crate) fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }

    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = timeout(Duration::from_secs(2), self.client.close()).await;
    }
}

/// virDomainEventType values.
pub(crate) const EV_SUSPENDED: i32 = 3;
pub(crate) const EV_RESUMED: i32 = 4;
/// virDomainState values.
pub(crate) const ST_RUNNING: i32 = 1;
#[allow(dead_code)]
pub(crate) const ST_PAUSED: i32 = 3;
