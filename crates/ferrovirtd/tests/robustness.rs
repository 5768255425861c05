//! Malformed and oversized messages, a client that never reads, 1,000 idle
//! clients, and mutating calls on the read-only socket each get the
//! documented outcome, and other clients keep working.
//!
//! The documented outcomes are the limits table of crates/rpc/src/lib.rs.
//! Every test runs against the real daemon with qemu-sim VMs, and keeps a
//! healthy client (rpc::Client and/or virsh) working alongside.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    Daemon, call_frame, define_and_start, raw_open, read_frame, rpc_open, sim_domain_xml,
    strip_ansi, tail,
};
use rpc::ClientError;
use rpc::header::{Header, MessageStatus, MessageType};
use rpc::protocol::remote::{self, NonnullDomain, procedure};
use testkit::latency::Percentiles;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// `VIR_ERR_NO_SUPPORT`.
const ERR_NO_SUPPORT: i32 = 3;
/// `VIR_ERR_OPERATION_DENIED`.
const ERR_OPERATION_DENIED: i32 = 29;
/// `VIR_ERR_RPC`.
const ERR_RPC: i32 = 39;
/// Slowest acceptable answer to the healthy client.
const MAX_CALL: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A daemon with two running qemu-sim VMs, and a client on it.
async fn daemon_with_vms(d: &Daemon) -> (rpc::Client, Vec<NonnullDomain>) {
    let c = rpc_open(&d.sock()).await;
    let mut doms = Vec::new();
    for name in ["vm-a", "vm-b"] {
        doms.push(define_and_start(&c, &sim_domain_xml(name, &[])).await);
    }
    (c, doms)
}

/// A healthy client asking for domain info every 5 ms until stopped.
struct Healthy {
    stop: Arc<AtomicBool>,
    lat: Arc<Mutex<Vec<Duration>>>,
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Healthy {
    fn start(rt: &tokio::runtime::Runtime, c: rpc::Client, doms: Vec<NonnullDomain>) -> Healthy {
        let stop = Arc::new(AtomicBool::new(false));
        let lat = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s, l, e) = (stop.clone(), lat.clone(), errors.clone());
        let task = rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) {
                tick.tick().await;
                let t0 = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(30),
                    c.domain_get_info(&doms[i % doms.len()]),
                )
                .await;
                l.lock().expect("lat").push(t0.elapsed());
                match r {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => e.lock().expect("errors").push(err.to_string()),
                    Err(_) => e.lock().expect("errors").push("no answer in 30 s".into()),
                }
                i += 1;
            }
        });
        Healthy {
            stop,
            lat,
            errors,
            task,
        }
    }

    /// Stops the probe; asserts it never failed nor waited long.
    fn finish(self, rt: &tokio::runtime::Runtime, what: &str, d: &Daemon) -> Percentiles {
        self.stop.store(true, Ordering::Relaxed);
        rt.block_on(self.task).expect("healthy task");
        let s = Percentiles::of(&self.lat.lock().expect("lat"));
        let errors = self.errors.lock().expect("errors").clone();
        println!("healthy client during {what}: {s}, errors={}", errors.len());
        assert!(
            errors.is_empty(),
            "healthy client failed during {what}: {errors:?}\n{}",
            tail(&d.log(), 40)
        );
        assert!(s.n > 0, "healthy client made no call during {what}");
        assert!(
            s.max < MAX_CALL,
            "healthy client waited {:?} during {what}",
            s.max
        );
        s
    }
}

/// Reads everything a server sends until it closes the connection:
/// `(frames, closed)`; `closed` is false if it was still open at the
/// deadline. A reset counts as closed.
async fn drain_until_closed(
    s: &mut UnixStream,
    timeout: Duration,
) -> (Vec<(Header, Vec<u8>)>, bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, read_frame(s)).await {
            Ok(Ok(Some(f))) => frames.push(f),
            Ok(Ok(None)) => return (frames, true),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                return (frames, true);
            }
            Ok(Err(e)) => panic!("reading from the server: {e}"),
            Err(_) => return (frames, false),
        }
    }
}

fn header_bytes(h: &Header) -> Vec<u8> {
    let mut e = rpc::xdr::Encoder::new();
    h.encode(&mut e);
    e.finish().to_vec()
}

fn remote_error(body: &[u8]) -> remote::RemoteError {
    rpc::xdr::from_bytes(body).expect("remote_error body")
}

/// One malformed message and what it must get.
struct Malformed {
    name: &'static str,
    bytes: Vec<u8>,
    /// Half-close our side after sending (the daemon sees EOF).
    shutdown: bool,
    /// What may come back before the close.
    reply: Reply,
}

#[derive(Clone, Copy)]
enum Reply {
    /// Nothing: the header was not readable.
    None,
    /// One `VIR_ERR_RPC` error reply to this serial.
    Error(u32),
    /// Random bytes: whatever header they spell may be answered.
    AtMostOneError,
}

fn call_header(proc_: i32, serial: u32, msg_type: u32) -> Header {
    Header {
        prog: remote::PROGRAM,
        vers: remote::VERSION,
        proc_,
        msg_type,
        serial,
        status: 0,
    }
}

/// A length word followed by `rest`.
fn framed(length: u32, rest: &[u8]) -> Vec<u8> {
    let mut bytes = length.to_be_bytes().to_vec();
    bytes.extend_from_slice(rest);
    bytes
}

/// Length words that are too short, garbage headers, random bytes.
fn garbage_cases() -> Vec<Malformed> {
    let get_type = procedure::CONNECT_GET_TYPE;
    let mut unknown_status = call_header(get_type, 42, 0);
    unknown_status.status = 7;
    let mut x: u32 = 0x1234_5678;
    let random: Vec<u8> = (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let mut type_99 = header_bytes(&call_header(get_type, 41, 99));
    type_99.extend_from_slice(&[0u8; 4]);
    let case = |name, bytes, shutdown, reply| Malformed {
        name,
        bytes,
        shutdown,
        reply,
    };
    vec![
        // A length word below length + header (28): nothing to reply to.
        case("length 16 < 28", framed(16, &[0u8; 24]), false, Reply::None),
        case("length 0", framed(0, &[0xAAu8; 60]), false, Reply::None),
        // A well-sized frame whose header has an unknown message type.
        case(
            "garbage header (message type 99)",
            framed(32, &type_99),
            false,
            Reply::Error(41),
        ),
        case(
            "garbage header (status 7)",
            framed(28, &header_bytes(&unknown_status)),
            false,
            Reply::Error(42),
        ),
        case("256 random bytes", random, true, Reply::AtMostOneError),
    ]
}

/// Length words over the 32 MiB limit, and a frame cut short by EOF.
fn oversized_cases() -> Vec<Malformed> {
    let get_type = procedure::CONNECT_GET_TYPE;
    // A 48 MiB length word (limit 32 MiB) with a valid header and some of
    // the announced body: error reply, then close.
    let mut body = header_bytes(&call_header(get_type, 43, 0));
    body.extend_from_slice(&vec![0u8; 64 * 1024]);
    let full = call_frame(get_type, 46, &[]);
    let case = |name, bytes, shutdown, reply| Malformed {
        name,
        bytes,
        shutdown,
        reply,
    };
    vec![
        case(
            "length 48 MiB > 32 MiB",
            framed(48 << 20, &body),
            false,
            Reply::Error(43),
        ),
        // Just over the limit: 32 MiB + 4 + 1.
        case(
            "length 32 MiB + 5",
            framed((32 << 20) + 5, &header_bytes(&call_header(get_type, 44, 0))),
            false,
            Reply::Error(44),
        ),
        // The maximal length word.
        case(
            "length 4 GiB - 1",
            framed(u32::MAX, &header_bytes(&call_header(get_type, 45, 0))),
            false,
            Reply::Error(45),
        ),
        // Half a frame, then EOF.
        case(
            "truncated frame then EOF",
            full[..20].to_vec(),
            true,
            Reply::None,
        ),
    ]
}

/// Sends `case` on a fresh connection and checks what came back before
/// the daemon closed it.
fn send_malformed(rt: &tokio::runtime::Runtime, d: &Daemon, case: &Malformed) {
    let t0 = Instant::now();
    let (frames, closed) = rt.block_on(async {
        let mut s = raw_open(&d.sock()).await;
        s.write_all(&case.bytes).await.expect("write malformed");
        if case.shutdown {
            s.shutdown().await.expect("shutdown");
        }
        drain_until_closed(&mut s, Duration::from_secs(10)).await
    });
    let took = t0.elapsed();
    println!(
        "{:<34} → {} frame(s) back, closed={closed} after {:.1} ms{}",
        case.name,
        frames.len(),
        took.as_secs_f64() * 1e3,
        frames
            .first()
            .filter(|(h, _)| h.status == MessageStatus::Error as u32)
            .map(|(_, b)| format!(
                ", error {}: {}",
                remote_error(b).code,
                remote_error(b).message.unwrap_or_default()
            ))
            .unwrap_or_default()
    );
    assert!(
        closed,
        "{}: the daemon did not close the connection",
        case.name
    );
    check_reply(case, &frames);
}

fn check_reply(case: &Malformed, frames: &[(Header, Vec<u8>)]) {
    match case.reply {
        Reply::Error(serial) => {
            assert_eq!(
                frames.len(),
                1,
                "{}: expected one error reply: {frames:?}",
                case.name
            );
            let (h, body) = &frames[0];
            assert_eq!(h.serial, serial, "{}", case.name);
            assert_eq!(h.msg_type, MessageType::Reply as u32, "{}", case.name);
            assert_eq!(h.status, MessageStatus::Error as u32, "{}", case.name);
            let e = remote_error(body);
            assert_eq!(e.code, ERR_RPC, "{}: {e:?}", case.name);
        }
        Reply::None => assert!(
            frames.is_empty(),
            "{}: unexpected frames {frames:?}",
            case.name
        ),
        Reply::AtMostOneError => {
            assert!(frames.len() <= 1, "{}: {frames:?}", case.name);
            for (h, body) in frames {
                assert_eq!(h.status, MessageStatus::Error as u32, "{}", case.name);
                assert_eq!(remote_error(body).code, ERR_RPC, "{}", case.name);
            }
        }
    }
}

#[test]
fn malformed_and_oversized_messages_close_only_that_client() {
    let rt = runtime();
    let d = Daemon::start();
    let (c, doms) = rt.block_on(daemon_with_vms(&d));
    let healthy = Healthy::start(&rt, c.clone(), doms.clone());
    let rss0 = d.rss_kib();
    for case in garbage_cases().iter().chain(&oversized_cases()) {
        send_malformed(&rt, &d, case);
        // The healthy client is unaffected right after each case.
        let info = rt.block_on(c.domain_get_info(&doms[0]));
        assert!(
            info.is_ok(),
            "{}: healthy client failed: {info:?}",
            case.name
        );
    }

    // Nothing of the 4 GiB / 48 MiB announced was buffered.
    let rss1 = d.rss_kib();
    println!("daemon RSS {rss0} KiB → {rss1} KiB across the malformed clients");
    assert!(
        rss1 < rss0 + 16 * 1024,
        "daemon RSS grew from {rss0} to {rss1} KiB"
    );
    let list = d.virsh_ok(&["list", "--name"]);
    assert!(list.contains("vm-a") && list.contains("vm-b"), "{list}");
    healthy.finish(&rt, "malformed clients", &d);
    // Each malformed client was closed for a protocol error (logged).
    let closes = strip_ansi(&d.log())
        .lines()
        .filter(|l| l.contains("closing client") && l.contains("protocol error"))
        .count();
    assert!(
        closes >= 8,
        "only {closes} protocol-error closes logged\n{}",
        tail(&d.log(), 40)
    );
}

#[test]
fn unknown_procedure_program_and_version_get_no_support_and_connection_keeps_working() {
    let rt = runtime();
    let d = Daemon::start();
    let (c, doms) = rt.block_on(daemon_with_vms(&d));
    rt.block_on(async {
        for (what, prog, vers, proc_) in [
            (
                "unknown procedure 99999",
                remote::PROGRAM,
                remote::VERSION,
                99_999,
            ),
            (
                "negative procedure -5",
                remote::PROGRAM,
                remote::VERSION,
                -5,
            ),
            ("procedure 0", remote::PROGRAM, remote::VERSION, 0),
            (
                "unknown program 0x1234",
                0x1234,
                1,
                procedure::CONNECT_GET_TYPE,
            ),
            (
                "remote program version 2",
                remote::PROGRAM,
                2,
                procedure::CONNECT_GET_TYPE,
            ),
        ] {
            for _ in 0..50 {
                let r = c.call_raw(prog, vers, proc_, Bytes::new()).await;
                match r {
                    Err(ClientError::Remote(e)) => {
                        assert_eq!(e.code, ERR_NO_SUPPORT, "{what}: {e:?}");
                    }
                    other => panic!("{what}: expected VIR_ERR_NO_SUPPORT, got {other:?}"),
                }
            }
            let err = c
                .call_raw(prog, vers, proc_, Bytes::new())
                .await
                .expect_err("error");
            println!("{what} → code {:?}: {err}", err.remote_code());
            // The same connection still works.
            assert_eq!(c.get_type().await.expect("get_type after error"), "QEMU");
            c.domain_get_info(&doms[0])
                .await
                .expect("get_info after error");
        }
        assert!(!c.is_closed());
        assert_eq!(c.list_all_domains(0).await.expect("list").len(), 2);
    });
}

#[test]
fn client_that_never_reads_its_replies_is_dropped_and_others_keep_working() {
    let rt = runtime();
    let d = Daemon::start();
    let (c, doms) = rt.block_on(daemon_with_vms(&d));
    let healthy = Healthy::start(&rt, c.clone(), doms.clone());
    let rss0 = d.rss_kib();
    let t0 = Instant::now();
    // Pipelines CONNECT_GET_CAPABILITIES calls (replies of a few KiB) and
    // never reads: the daemon's output queue for it fills (default 4096
    // messages / 8 MiB) and it is disconnected; our writes then fail.
    let (calls, write_err, rss_peak) = rt.block_on(async {
        let mut s = raw_open(&d.sock()).await;
        let mut batch = Vec::new();
        let mut serial = 100u32;
        let mut calls = 0u64;
        let mut rss_peak = 0;
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            batch.clear();
            for _ in 0..256 {
                batch.extend_from_slice(&call_frame(
                    procedure::CONNECT_GET_CAPABILITIES,
                    serial,
                    &[],
                ));
                serial = serial.wrapping_add(1);
            }
            match tokio::time::timeout(Duration::from_secs(5), s.write_all(&batch)).await {
                Ok(Ok(())) => calls += 256,
                Ok(Err(e)) => return (calls, Some(e.to_string()), rss_peak),
                // Our writes block: the daemon stopped reading us; it must
                // still close us (checked below by reading).
                Err(_) => {}
            }
            rss_peak = rss_peak.max(d.rss_kib());
            if Instant::now() > deadline {
                return (calls, None, rss_peak);
            }
        }
    });
    let took = t0.elapsed();
    let log = strip_ansi(&d.log());
    let full = log.lines().find(|l| l.contains("output queue full"));
    println!(
        "non-reading caller: {calls} calls written in {:.2} s before the write failed ({write_err:?}); daemon RSS {rss0} KiB → peak {rss_peak} KiB; log: {}",
        took.as_secs_f64(),
        full.unwrap_or("(no queue-full line)")
    );
    assert!(
        write_err.is_some(),
        "the daemon never disconnected the client that does not read"
    );
    assert!(
        full.is_some(),
        "no 'output queue full' disconnect logged\n{}",
        tail(&d.log(), 40)
    );
    // Bounded: the queue holds at most 8 MiB plus one message.
    assert!(
        rss_peak < rss0 + 48 * 1024,
        "daemon RSS grew from {rss0} KiB to {rss_peak} KiB for one client that does not read"
    );
    healthy.finish(&rt, "a client that never reads", &d);
    d.virsh_ok(&["domstate", "vm-a"]);
}

/// Opens `n` clients (AUTH_LIST + CONNECT_OPEN each), 50 at a time.
fn open_idle_clients(rt: &tokio::runtime::Runtime, d: &Daemon, n: usize) -> Vec<rpc::Client> {
    rt.block_on(async {
        let mut out = Vec::with_capacity(n);
        let path = d.sock();
        for chunk in 0..n / 50 {
            let mut set = tokio::task::JoinSet::new();
            for _ in 0..50 {
                let p = path.clone();
                set.spawn(async move { rpc_open(&p).await });
            }
            while let Some(c) = set.join_next().await {
                out.push(c.unwrap_or_else(|e| panic!("client in chunk {chunk}: {e}")));
            }
        }
        out
    })
}

/// virsh lists and runs a whole lifecycle of a new domain.
fn virsh_lifecycle_works(d: &Daemon, idle: usize) {
    let t = Instant::now();
    let list = d.virsh_ok(&["list", "--all", "--name"]);
    let list_time = t.elapsed();
    assert!(list.contains("vm-a") && list.contains("vm-b"), "{list}");
    let xml = d.file("vm-c.xml", &sim_domain_xml("vm-c", &[]));
    let t = Instant::now();
    d.virsh_ok(&["define", xml.to_str().expect("utf8")]);
    d.virsh_ok(&["start", "vm-c"]);
    assert_eq!(d.virsh_ok(&["domstate", "vm-c"]).trim(), "running");
    d.virsh_ok(&["destroy", "vm-c"]);
    assert_eq!(d.virsh_ok(&["domstate", "vm-c"]).trim(), "shut off");
    d.virsh_ok(&["undefine", "vm-c"]);
    let lifecycle_time = t.elapsed();
    println!(
        "with {idle} idle clients: virsh list {:.0} ms, virsh define+start+domstate+destroy+domstate+undefine {:.0} ms",
        list_time.as_secs_f64() * 1e3,
        lifecycle_time.as_secs_f64() * 1e3
    );
}

/// Every client answers a call within 20 s; returns the latencies.
fn all_answer(rt: &tokio::runtime::Runtime, clients: &[rpc::Client]) -> Vec<Duration> {
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, cl) in clients.iter().enumerate() {
            let cl = cl.clone();
            set.spawn(async move {
                let t0 = Instant::now();
                let r = tokio::time::timeout(Duration::from_secs(20), cl.get_type()).await;
                (i, r, t0.elapsed())
            });
        }
        let mut lat = Vec::new();
        while let Some(r) = set.join_next().await {
            let (i, r, took) = r.expect("join");
            match r {
                Ok(Ok(t)) => assert_eq!(t, "QEMU"),
                Ok(Err(e)) => panic!("idle client {i} failed: {e}"),
                Err(_) => panic!("idle client {i} got no answer in 20 s"),
            }
            lat.push(took);
        }
        lat
    })
}

#[test]
fn thousand_idle_clients_and_the_daemon_still_serves_everyone() {
    const N: usize = 1000;
    let nofile = testkit::raise_nofile().expect("raise RLIMIT_NOFILE");
    assert!(
        nofile >= 2 * N as u64 + 64,
        "RLIMIT_NOFILE {nofile} is too low for {N} clients"
    );
    let rt = runtime();
    let d = Daemon::start();
    let (c, _doms) = rt.block_on(daemon_with_vms(&d));
    // The version comes from the daemon's probe of the default emulator,
    // which it starts at start-up: once answered, the probe's pipes and
    // socket are closed and the descriptor count is the daemon's own.
    d.virsh_ok(&["version"]);
    let rss0 = d.rss_kib();
    let fds0 = d.fd_count();
    let sockets0 = d.socket_count();
    let t0 = Instant::now();
    let clients = open_idle_clients(&rt, &d, N);
    let connect_time = t0.elapsed();
    let rss1 = d.rss_kib();
    let fds1 = d.fd_count();
    let sockets1 = d.socket_count();
    println!(
        "{N} clients connected (AUTH_LIST + CONNECT_OPEN each) in {:.2} s; daemon RSS {:.1} → {:.1} MiB ({:.1} KiB/client), fds {fds0} → {fds1}",
        connect_time.as_secs_f64(),
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        (rss1.saturating_sub(rss0)) as f64 / N as f64
    );
    // The count before may still include the virsh connection the daemon
    // is closing; the held sockets are checked against the lower of the
    // socket counts before and after, once the clients have gone (files
    // the daemon opens for a moment, as its statistics poller does, are
    // not sockets and cannot shift the count).

    // With 1,000 idle clients, virsh and a full lifecycle still work, and
    // every idle client is still connected and answered.
    virsh_lifecycle_works(&d, N);
    let t = Instant::now();
    let lat = all_answer(&rt, &clients);
    println!(
        "all {N} idle clients answered in {:.0} ms: {}",
        t.elapsed().as_secs_f64() * 1e3,
        Percentiles::of(&lat)
    );
    assert!(rt.block_on(c.get_type()).is_ok());

    // Closing them releases the daemon's sockets.
    rt.block_on(async {
        for cl in &clients {
            cl.close().await;
        }
    });
    drop(clients);
    let released = testkit::wait::until(Duration::from_secs(20), || d.fd_count() <= fds0 + 8);
    assert!(
        released,
        "the daemon still holds {} fds after the clients closed (before: {fds0})",
        d.fd_count()
    );
    let fds2 = d.fd_count();
    println!(
        "after closing them: daemon fds {fds2}, RSS {:.1} MiB",
        d.rss_kib() as f64 / 1024.0
    );
    let base = sockets0.min(d.socket_count());
    assert!(
        sockets1 >= base + N,
        "the daemon did not hold {N} client sockets (sockets {base} → {sockets1}; fds {fds0} → {fds1} → {fds2})"
    );
}

/// Every mutating procedure with valid arguments: the new domain `new_xml`,
/// the running domain `running`, the inactive one `idle`.
fn mutating_calls(
    new_xml: &str,
    running: &NonnullDomain,
    idle: &NonnullDomain,
) -> Vec<(&'static str, i32, Bytes)> {
    use rpc::xdr::to_bytes as x;
    let new_xml = new_xml.to_owned();
    let flags = |dom: &NonnullDomain| {
        x(&remote::DomainFlagsArgs {
            dom: dom.clone(),
            flags: 0,
        })
    };
    let plain = |dom: &NonnullDomain| x(&remote::DomainArgs { dom: dom.clone() });
    vec![
        (
            "define (DEFINE_XML_FLAGS)",
            procedure::DOMAIN_DEFINE_XML_FLAGS,
            x(&remote::DomainDefineXmlFlagsArgs {
                xml: new_xml.clone(),
                flags: 0,
            }),
        ),
        (
            "define (DEFINE_XML)",
            procedure::DOMAIN_DEFINE_XML,
            x(&remote::DomainDefineXmlArgs {
                xml: new_xml.clone(),
            }),
        ),
        (
            "create (CREATE_XML)",
            procedure::DOMAIN_CREATE_XML,
            x(&remote::DomainCreateXmlArgs {
                xml_desc: new_xml.clone(),
                flags: 0,
            }),
        ),
        (
            "start (CREATE_WITH_FLAGS)",
            procedure::DOMAIN_CREATE_WITH_FLAGS,
            flags(idle),
        ),
        ("start (CREATE)", procedure::DOMAIN_CREATE, plain(idle)),
        (
            "destroy (DESTROY_FLAGS)",
            procedure::DOMAIN_DESTROY_FLAGS,
            flags(running),
        ),
        (
            "destroy (DESTROY)",
            procedure::DOMAIN_DESTROY,
            plain(running),
        ),
        ("suspend", procedure::DOMAIN_SUSPEND, plain(running)),
        ("resume", procedure::DOMAIN_RESUME, plain(running)),
        ("shutdown", procedure::DOMAIN_SHUTDOWN, plain(running)),
        (
            "shutdown (FLAGS)",
            procedure::DOMAIN_SHUTDOWN_FLAGS,
            flags(running),
        ),
        ("reboot", procedure::DOMAIN_REBOOT, flags(running)),
        (
            "undefine (UNDEFINE_FLAGS)",
            procedure::DOMAIN_UNDEFINE_FLAGS,
            flags(idle),
        ),
        (
            "undefine (UNDEFINE)",
            procedure::DOMAIN_UNDEFINE,
            plain(idle),
        ),
        (
            "set-autostart",
            procedure::DOMAIN_SET_AUTOSTART,
            x(&remote::DomainSetAutostartArgs {
                dom: idle.clone(),
                autostart: 1,
            }),
        ),
    ]
}

/// Each call is denied with VIR_ERR_OPERATION_DENIED, and the read-only
/// connection keeps answering reads after it.
async fn denied_and_reads_work(
    ro: &rpc::Client,
    calls: Vec<(&str, i32, Bytes)>,
    running: &NonnullDomain,
    idle: &NonnullDomain,
) {
    for (what, proc_, args) in calls {
        let r = ro
            .call_raw(remote::PROGRAM, remote::VERSION, proc_, args)
            .await;
        match &r {
            Err(ClientError::Remote(e)) => {
                println!(
                    "read-only {what} → code {}: {}",
                    e.code,
                    e.message.as_deref().unwrap_or("")
                );
                assert_eq!(e.code, ERR_OPERATION_DENIED, "{what}: {e:?}");
            }
            other => {
                panic!("read-only {what}: expected VIR_ERR_OPERATION_DENIED, got {other:?}")
            }
        }
        // The read-only connection keeps answering reads...
        let info = ro
            .domain_get_info(running)
            .await
            .unwrap_or_else(|e| panic!("get_info after {what}: {e}"));
        assert_eq!(
            info.state, 1,
            "after {what}: the running VM is no longer running"
        );
        let st = ro
            .domain_get_state(idle)
            .await
            .unwrap_or_else(|e| panic!("get_state after {what}: {e}"));
        assert_eq!(
            st.state, 5,
            "after {what}: the inactive VM is no longer shut off"
        );
        assert_eq!(
            ro.list_all_domains(0).await.expect("list").len(),
            2,
            "after {what}"
        );
    }
}

#[test]
fn every_mutating_call_on_the_read_only_socket_is_denied_and_reads_keep_working() {
    let rt = runtime();
    let d = Daemon::start();
    rt.block_on(async {
        let rw = rpc_open(&d.sock()).await;
        let running = define_and_start(&rw, &sim_domain_xml("ro-running", &[])).await;
        let idle = rw
            .define_xml(&sim_domain_xml("ro-idle", &[]))
            .await
            .expect("define");
        let ro = rpc_open(&d.ro_sock()).await;
        let calls = mutating_calls(&sim_domain_xml("ro-new", &[]), &running, &idle);
        denied_and_reads_work(&ro, calls, &running, &idle).await;
        // ...and nothing changed.
        let autostart: remote::DomainGetAutostartRet = rw
            .call(
                procedure::DOMAIN_GET_AUTOSTART,
                &remote::DomainArgs { dom: idle.clone() },
            )
            .await
            .expect("get_autostart");
        assert_eq!(
            autostart.autostart, 0,
            "autostart was set through the read-only socket"
        );
        assert!(
            rw.lookup_by_name("ro-new").await.is_err(),
            "a domain was defined through the read-only socket"
        );
        assert!(!ro.is_closed());
    });
    // virsh sees the same through the read-only URI.
    let out = common::virsh(&d.ro_uri, &["destroy", "ro-running"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("operation forbidden"), "{err}");
    let out = common::virsh(&d.ro_uri, &["list", "--all", "--name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names = String::from_utf8_lossy(&out.stdout);
    assert!(
        names.contains("ro-running") && names.contains("ro-idle"),
        "{names}"
    );
    assert_eq!(d.virsh_ok(&["domstate", "ro-running"]).trim(), "running");
}
