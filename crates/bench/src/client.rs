//! The one benchmark client for both daemons: `rpc::Client` (our async
//! client of libvirt's remote protocol), opened the way libvirt clients
//! open it, plus the load generators built on it: closed-loop workers, a
//! paced (open-loop) probe and event listeners.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rpc::Client;
use rpc::protocol::remote::{self, NonnullDomain, procedure};
use serde::{Deserialize, Serialize};
use tokio::time::{Instant, timeout};

use crate::error::{BenchError, BenchResult};
use crate::stats::{LatencySummary, round1};

/// Highest domain event ID of libvirt 9.0 (`VIR_DOMAIN_EVENT_ID_LAST - 1`).
const EVENT_ID_LAST: i32 = 26;
/// `VIR_DOMAIN_EVENT_SUSPENDED` and `VIR_DOMAIN_EVENT_RESUMED`.
pub(crate) const EVENT_SUSPENDED: i32 = 3;
pub(crate) const EVENT_RESUMED: i32 = 4;
/// `VIR_DOMAIN_RUNNING`.
pub(crate) const STATE_RUNNING: i32 = 1;
/// `VIR_CONNECT_LIST_DOMAINS_ACTIVE` and `_RUNNING`.
pub(crate) const LIST_ACTIVE: u32 = 1;
pub(crate) const LIST_RUNNING: u32 = 16;
/// How long opening a connection may take.
pub(crate) const CONNECT: Duration = Duration::from_secs(10);

/// Opens a connection like libvirt's client library, within `limit`.
pub(crate) async fn open_within(socket: &Path, limit: Duration) -> BenchResult<Client> {
    match timeout(limit, testkit::client::open(socket)).await {
        Ok(client) => Ok(client?),
        Err(_) => Err(BenchError::Timeout {
            what: format!("connect/open on {}", socket.display()),
            after: limit,
        }),
    }
}

/// Whether a started domain runs or waits paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartAs {
    Running,
    Paused,
}

/// Defines and starts a domain.
pub(crate) async fn define_start(
    client: &Client,
    xml: &str,
    start_as: StartAs,
) -> BenchResult<NonnullDomain> {
    let dom = client
        .define_xml(xml)
        .await
        .map_err(BenchError::rpc("define"))?;
    let args = remote::DomainFlagsArgs {
        dom,
        flags: u32::from(start_as == StartAs::Paused),
    };
    let started: remote::DomainRet = client
        .call(procedure::DOMAIN_CREATE_WITH_FLAGS, &args)
        .await
        .map_err(BenchError::rpc("start"))?;
    Ok(started.dom)
}

pub(crate) async fn suspend(client: &Client, dom: &NonnullDomain) -> BenchResult<()> {
    let args = remote::DomainArgs { dom: dom.clone() };
    client
        .call(procedure::DOMAIN_SUSPEND, &args)
        .await
        .map_err(BenchError::rpc("suspend"))
}

/// `running` (1), `paused` (3), ... of a domain.
pub(crate) async fn state(client: &Client, dom: &NonnullDomain) -> BenchResult<i32> {
    let state = client
        .domain_get_state(dom)
        .await
        .map_err(BenchError::rpc("get state"))?;
    Ok(state.state)
}

pub(crate) async fn lookup(client: &Client, name: &str) -> BenchResult<NonnullDomain> {
    client
        .lookup_by_name(name)
        .await
        .map_err(BenchError::rpc(format!("look up {name}")))
}

async fn lookup_all(client: &Client, names: &[String]) -> BenchResult<Vec<NonnullDomain>> {
    let mut doms = Vec::with_capacity(names.len());
    for name in names {
        doms.push(lookup(client, name).await?);
    }
    Ok(doms)
}

/// The call a load generator makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Op {
    #[serde(rename = "GET_INFO")]
    Info,
    #[serde(rename = "GET_STATE")]
    State,
}

impl Op {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Op::Info => "GET_INFO",
            Op::State => "GET_STATE",
        }
    }

    async fn call(self, client: &Client, dom: &NonnullDomain) -> Result<(), rpc::ClientError> {
        match self {
            Op::Info => client.domain_get_info(dom).await.map(drop),
            Op::State => client.domain_get_state(dom).await.map(drop),
        }
    }
}

/// Closed-loop figures of one call and one client count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoadFigures {
    #[serde(flatten)]
    pub latency: LatencySummary,
    pub ops: usize,
    pub ops_per_s: f64,
    pub errors: u64,
    pub op: Op,
    pub conns: usize,
    pub duration_s: f64,
}

/// Closed loop: `conns` connections, each calling `op` back to back,
/// round-robin over `names`, for `duration`.
pub(crate) async fn closed_loop(
    socket: &Path,
    names: &[String],
    op: Op,
    conns: usize,
    duration: Duration,
) -> BenchResult<LoadFigures> {
    let mut workers = Vec::new();
    for _ in 0..conns {
        let client = open_within(socket, CONNECT).await?;
        let doms = lookup_all(&client, names).await?;
        workers.push((client, doms));
    }
    let start = Instant::now();
    let end = start + duration;
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(first, (client, doms))| tokio::spawn(call_until(client, doms, op, first, end)))
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (worker_latencies, worker_errors) = task.await?;
        latencies.extend(worker_latencies);
        errors += worker_errors;
    }
    let wall = start.elapsed().as_secs_f64();
    Ok(LoadFigures {
        latency: LatencySummary::of(&latencies),
        ops: latencies.len(),
        ops_per_s: round1(latencies.len() as f64 / wall),
        errors,
        op,
        conns,
        duration_s: round1(wall),
    })
}

/// One closed-loop worker: calls back to back until `end`, starting at
/// domain `first`; returns its latencies and error count.
async fn call_until(
    client: Client,
    doms: Vec<NonnullDomain>,
    op: Op,
    first: usize,
    end: Instant,
) -> (Vec<Duration>, u64) {
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut next = first;
    while Instant::now() < end {
        let dom = &doms[next % doms.len()];
        next += 1;
        let sent = Instant::now();
        let result = op.call(&client, dom).await;
        latencies.push(sent.elapsed());
        if result.is_err() {
            errors += 1;
        }
    }
    (latencies, errors)
}

/// What a paced probe saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ProbeResult {
    #[serde(flatten)]
    pub latency: LatencySummary,
    /// Calls made (a call still stuck at the end counts).
    pub ops: u64,
    pub errors: u64,
    pub error_sample: Option<String>,
    /// Age of a call still unanswered `grace` after the end.
    pub stuck_call_age_s: Option<f64>,
    pub success_rate: f64,
    pub setup_s: Option<f64>,
    /// The slowest second's slowest call.
    pub worst_second_max_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_error: Option<String>,
    /// Could not even connect within the connect deadline.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub setup_stuck: bool,
}

/// A paced probe: one connection, one call every `period` on the schedule
/// (a stalled call shows up as one long sample, and the calls it delayed
/// are issued late), round-robin over `names`, for `duration`. Calls
/// still blocked `grace` after the end are reported as stuck.
#[derive(Debug, Clone)]
pub(crate) struct Probe {
    pub socket: PathBuf,
    pub names: Vec<String>,
    pub op: Op,
    pub period: Duration,
    pub duration: Duration,
    pub grace: Duration,
}

impl Probe {
    pub(crate) fn spawn(self) -> tokio::task::JoinHandle<ProbeResult> {
        tokio::spawn(self.run())
    }

    async fn run(self) -> ProbeResult {
        let set_up = Instant::now();
        let connect = async {
            let client = testkit::client::open(&self.socket).await?;
            let doms = lookup_all(&client, &self.names).await?;
            Ok::<_, BenchError>((client, doms))
        };
        match timeout(CONNECT, connect).await {
            Ok(Ok((client, doms))) => {
                let setup_s = round1(set_up.elapsed().as_secs_f64());
                ProbeResult {
                    setup_s: Some(setup_s),
                    ..self.paced(&client, &doms).await
                }
            }
            Ok(Err(error)) => ProbeResult {
                setup_error: Some(error.to_string()),
                ..ProbeResult::default()
            },
            Err(_) => ProbeResult {
                setup_stuck: true,
                ..ProbeResult::default()
            },
        }
    }

    async fn paced(&self, client: &Client, doms: &[NonnullDomain]) -> ProbeResult {
        let start = Instant::now();
        let end = start + self.duration;
        let hard_end = end + self.grace;
        let mut next = start;
        let mut calls = CallLog::default();
        while Instant::now() < end {
            next += self.period;
            tokio::time::sleep_until(next).await;
            let dom = &doms[calls.latencies.len() % doms.len()];
            let sent = Instant::now();
            match tokio::time::timeout_at(hard_end, self.op.call(client, dom)).await {
                Ok(result) => calls.record(sent, start, result),
                Err(_) => {
                    calls.stuck = Some(round1(sent.elapsed().as_secs_f64()));
                    break;
                }
            }
            if next + self.period < Instant::now() {
                // Fell behind (a stall): re-anchor the schedule.
                next = Instant::now();
            }
        }
        calls.result()
    }
}

/// The calls of one probe.
#[derive(Default)]
struct CallLog {
    latencies: Vec<Duration>,
    errors: u64,
    error_sample: Option<String>,
    stuck: Option<f64>,
    /// Slowest call per second since the start, µs.
    worst_per_second: Vec<u64>,
}

impl CallLog {
    fn record(&mut self, sent: Instant, start: Instant, result: Result<(), rpc::ClientError>) {
        let took = sent.elapsed();
        self.latencies.push(took);
        let second = usize::try_from((sent - start).as_secs()).unwrap_or(usize::MAX);
        if self.worst_per_second.len() <= second {
            self.worst_per_second.resize(second + 1, 0);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.worst_per_second[second] = self.worst_per_second[second].max(micros);
        if let Err(error) = result {
            self.errors += 1;
            self.error_sample.get_or_insert(error.to_string());
        }
    }

    fn result(self) -> ProbeResult {
        let answered = self.latencies.len() as u64;
        let attempted = answered + u64::from(self.stuck.is_some());
        let succeeded = answered - self.errors;
        ProbeResult {
            latency: LatencySummary::of(&self.latencies),
            ops: attempted,
            errors: self.errors,
            error_sample: self.error_sample,
            stuck_call_age_s: self.stuck,
            success_rate: if attempted == 0 {
                0.0
            } else {
                (succeeded as f64 / attempted as f64 * 10000.0).round() / 10000.0
            },
            setup_s: None,
            worst_second_max_us: self.worst_per_second.iter().max().copied(),
            setup_error: None,
            setup_stuck: false,
        }
    }
}

/// Registers `client` for every domain event ID the daemon accepts (like
/// `virsh event --all`); returns how many were accepted.
async fn register_all_events(client: &Client) -> usize {
    let mut accepted = 0;
    for event_id in 0..=EVENT_ID_LAST {
        let args = remote::ConnectDomainEventCallbackRegisterAnyArgs {
            event_id,
            dom: None,
        };
        let reply: Result<remote::ConnectDomainEventCallbackRegisterAnyRet, _> = client
            .call(procedure::CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY, &args)
            .await;
        if reply.is_ok() {
            accepted += 1;
        }
    }
    accepted
}

/// What a live listener received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ListenerCount {
    pub received: u64,
    /// Dropped by our client because its reader fell behind.
    pub dropped_in_client: u64,
    pub registered_event_ids: usize,
    pub connection_closed_by_daemon: bool,
}

/// A live event listener: its own connection, registered for all event
/// IDs, reading continuously; counts what it receives.
pub(crate) struct Listener {
    received: Arc<AtomicU64>,
    registered: usize,
    client: Client,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    pub(crate) async fn start(socket: &Path) -> BenchResult<Listener> {
        let client = open_within(socket, CONNECT).await?;
        let mut events = client
            .take_events()
            .ok_or(BenchError::Unsupported("the client's events were taken"))?;
        let registered = register_all_events(&client).await;
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            while events.recv().await.is_some() {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(Listener {
            received,
            registered,
            client,
            task,
        })
    }

    pub(crate) fn count(&self) -> ListenerCount {
        ListenerCount {
            received: self.received.load(Ordering::Relaxed),
            dropped_in_client: self.client.dropped_events(),
            registered_event_ids: self.registered,
            connection_closed_by_daemon: self.client.is_closed(),
        }
    }

    pub(crate) async fn stop(self) -> ListenerCount {
        let count = self.count();
        self.task.abort();
        let _ = timeout(Duration::from_secs(2), self.client.close()).await;
        count
    }
}

/// Lifecycle callbacks of a registered client, read as they are awaited
/// (the client's own event channel is bounded and counts what it drops).
pub(crate) struct LifecycleStream {
    client: Client,
    events: rpc::Events,
}

impl LifecycleStream {
    pub(crate) async fn start(socket: &Path) -> BenchResult<LifecycleStream> {
        let client = open_within(socket, CONNECT).await?;
        let events = client
            .take_events()
            .ok_or(BenchError::Unsupported("the client's events were taken"))?;
        client
            .register_lifecycle_callback(None)
            .await
            .map_err(BenchError::rpc("register a lifecycle callback"))?;
        Ok(LifecycleStream { client, events })
    }

    /// Waits for the next lifecycle event `want` of `dom`; returns when it
    /// was received.
    pub(crate) async fn wait_for(
        &mut self,
        dom: &str,
        want: i32,
        limit: Duration,
    ) -> Option<Instant> {
        let deadline = Instant::now() + limit;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            let received = Instant::now();
            if event.procedure != procedure::DOMAIN_EVENT_CALLBACK_LIFECYCLE {
                continue;
            }
            if let Ok(message) = event.decode::<remote::DomainEventCallbackLifecycleMsg>()
                && message.msg.dom.name == dom
                && message.msg.event == want
            {
                return Some(received);
            }
        }
    }

    /// Discards the events received so far.
    pub(crate) fn drain(&mut self) {
        while self.events.try_recv().is_some() {}
    }

    pub(crate) async fn stop(self) {
        let _ = timeout(Duration::from_secs(2), self.client.close()).await;
    }
}
