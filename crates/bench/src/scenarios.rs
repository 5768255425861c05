//! The five scenarios of issue 7. Each returns JSON rows; every row names
//! the daemon and the QEMU it ran (`qemu`: "QEMU", "QEMU via qmp-proxy",
//! "qemu-sim").

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rpc::protocol::remote::NonnullDomain;
use serde_json::{Value, json};

use crate::client::{self, Listener, Op, Res, es};
use crate::daemon::{Daemon, Emu, Kind};
use crate::qmp;
use crate::util::{self, Sampler, round1, round3};

/// Parameters that differ between smoke and full runs.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub rpc_ns: Vec<usize>,
    pub cell: Duration,
    pub flood_s: f64,
    /// flood seconds of the qemu-sim rows
    pub sim_flood_s: f64,
    pub flood_rates: Vec<u64>,
    pub pre_s: f64,
    pub post_s: f64,
    pub bg_vms: usize,
    pub probe_rate: f64,
    pub hung_cap: Duration,
    pub hung_window: Duration,
    pub ev_samples: usize,
    pub scale_ns: Vec<usize>,
    pub rss_limit_mb: u64,
    /// Emulator of the ferrovirtd rpc rows and the quiet VMs of sim rows.
    pub rpc_emu_ferro: Emu,
}

pub(crate) fn emu_label(e: Emu) -> &'static str {
    match e {
        Emu::Real => "QEMU",
        Emu::Proxy => "QEMU via qmp-proxy",
        Emu::Sim => "qemu-sim",
    }
}

/// Defines and starts `names` (paused unless `running`) with `par` calls in
/// flight; returns (seconds, per-VM start latencies in ms p50/p99).
async fn start_vms(
    d: &Daemon,
    names: &[String],
    emu: Emu,
    extra: &dyn Fn(&str) -> Vec<String>,
    running: bool,
    par: usize,
) -> Res<Value> {
    let c = client::open_timeout(&d.sock, Duration::from_secs(10)).await?;
    let t0 = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut lat = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        while set.len() >= par {
            match set.join_next().await {
                Some(Ok(Ok(ns))) => lat.push(ns),
                Some(Ok(Err(e))) => errors.push(e),
                _ => {}
            }
        }
        let xml = d.domain_xml(n, emu, &extra(n))?;
        let c = c.clone();
        set.spawn(async move {
            let t = util::now_ns();
            client::define_start(&c, &xml, !running).await?;
            Ok::<u64, String>(util::now_ns() - t)
        });
    }
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(ns)) => lat.push(ns),
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    c.close().await;
    if !errors.is_empty() {
        return Err(format!(
            "{} of {} VMs failed to start, e.g. {}",
            errors.len(),
            names.len(),
            errors[0]
        ));
    }
    let s = util::lat_summary(&mut lat);
    Ok(
        json!({"vms": names.len(), "parallel": par, "total_s": round3(secs),
              "per_vm_ms_p50": round1(s["p50_us"].as_f64().unwrap_or(0.0) / 1e3),
              "per_vm_ms_p99": round1(s["p99_us"].as_f64().unwrap_or(0.0) / 1e3)}),
    )
}

fn names(prefix: &str, from: usize, to: usize) -> Vec<String> {
    (from..to)
        .map(|i| format!("{}{prefix}{:05}", util::run_tag(), i + 1))
        .collect()
}

fn no_extra(_: &str) -> Vec<String> {
    Vec::new()
}

fn daemon_mem(d: &Daemon) -> Value {
    match util::proc_status(d.pid()) {
        Some((rss, thr)) => json!({"rss_mib": util::mib(rss), "threads": thr}),
        None => json!(null),
    }
}

// ---------------------------------------------------------------- 1. rpc

pub(crate) async fn rpc(kind: Kind, emu: Emu, env: &crate::daemon::Env, p: &Params) -> Res<Value> {
    let d = Daemon::start(kind, env, "rpc")?;
    let r = rpc_inner(&d, emu, p).await;
    d.stop().await;
    r
}

async fn rpc_inner(d: &Daemon, emu: Emu, p: &Params) -> Res<Value> {
    let mut cells = Vec::new();
    let mut starts = Vec::new();
    let mut have = 0usize;
    let mut all: Vec<String> = Vec::new();
    for &n in &p.rpc_ns {
        let new = names("r", have, n);
        let st = start_vms(d, &new, emu, &no_extra, false, 4).await?;
        eprintln!(
            "  [{}] rpc: +{} VMs in {} s",
            d.label(),
            new.len(),
            st["total_s"]
        );
        starts.push(json!({"n": n, "start": st}));
        all.extend(new);
        have = n;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mem = daemon_mem(d);
        for op in [Op::Info, Op::State] {
            for conns in [1usize, 8] {
                let mut v = client::closed_loop(&d.sock, &all, op, conns, p.cell).await?;
                eprintln!(
                    "  [{}] rpc N={n} {} x{conns}: {} ops/s p50 {} p99 {} max {} us",
                    d.label(),
                    op.name(),
                    v["ops_per_s"],
                    v["p50_us"],
                    v["p99_us"],
                    v["max_us"]
                );
                v["n_vms"] = json!(n);
                v["daemon_after_start"] = mem.clone();
                cells.push(v);
            }
        }
    }
    Ok(
        json!({"daemon": d.label(), "qemu": emu_label(emu), "starts": starts, "cells": cells,
              "daemon_end": daemon_mem(d)}),
    )
}

// ---------------------------------------------------------------- 2. flood

/// The fault injector of one VM: qemu-sim's control socket or the proxy's.
#[derive(Clone)]
enum Injector {
    Sim(PathBuf),
    Proxy(PathBuf),
}

impl Injector {
    async fn flood(&self, event: &str, rate: u64, secs: f64) -> Res<()> {
        match self {
            Injector::Sim(p) => qmp::sim(p, &format!("flood {event} {rate} {secs}"))
                .await
                .map(|_| ()),
            Injector::Proxy(p) => qmp::proxy(p, &format!("flood {event} {rate} {secs}"))
                .await
                .map(|_| ()),
        }
    }

    async fn stop_flood(&self) -> Res<()> {
        match self {
            Injector::Sim(p) => qmp::sim(p, "flood off").await.map(|_| ()),
            Injector::Proxy(p) => qmp::proxy(p, "stop").await.map(|_| ()),
        }
    }

    /// Events delivered to the daemon so far.
    async fn sent(&self) -> Res<u64> {
        match self {
            Injector::Sim(p) => {
                let r = qmp::sim(p, "stats").await?;
                let v: Value =
                    serde_json::from_str(r.trim_start_matches("ok").trim()).map_err(es)?;
                Ok(v["events_sent"].as_u64().unwrap_or(0))
            }
            Injector::Proxy(p) => {
                let v = qmp::proxy(p, "stats").await?;
                Ok(v["stats"]["injected_total"].as_u64().unwrap_or(0))
            }
        }
    }

    async fn hang(&self, on: bool) -> Res<()> {
        let w = if on { "on" } else { "off" };
        match self {
            Injector::Sim(p) => qmp::sim(p, &format!("hang {w}")).await.map(|_| ()),
            Injector::Proxy(p) => qmp::proxy(p, &format!("swallow {w}")).await.map(|_| ()),
        }
    }

    fn path(&self) -> &Path {
        match self {
            Injector::Sim(p) | Injector::Proxy(p) => p,
        }
    }
}

/// A daemon with `bg` quiet paused VMs and one special VM (`name`) with a
/// fault injector. `special_emu`: Sim (control socket) or Proxy.
struct Rig {
    d: Daemon,
    quiet: Vec<String>,
    special: String,
    inj: Injector,
    special_emu: Emu,
}

async fn rig(
    kind: Kind,
    special_emu: Emu,
    env: &crate::daemon::Env,
    p: &Params,
    tag: &str,
    running: bool,
    extra: Vec<String>,
) -> Res<Rig> {
    let d = Daemon::start(kind, env, tag)?;
    let quiet_emu = if special_emu == Emu::Sim {
        Emu::Sim
    } else {
        Emu::Real
    };
    let quiet = names("q", 0, p.bg_vms);
    if let Err(e) = start_vms(&d, &quiet, quiet_emu, &no_extra, false, 4).await {
        d.stop().await;
        return Err(e);
    }
    let special = format!("{}fl00001", util::run_tag());
    let inj = if special_emu == Emu::Sim {
        Injector::Sim(d.root.join(format!("ctl-{special}.sock")))
    } else {
        Injector::Proxy(d.proxy_ctl(&special))
    };
    let mut args = extra;
    if let Injector::Sim(path) = &inj {
        args.push("-sim-control".into());
        args.push(path.display().to_string());
    }
    let r = start_vms(
        &d,
        std::slice::from_ref(&special),
        special_emu,
        &|_| args.clone(),
        running,
        1,
    )
    .await;
    if let Err(e) = r {
        d.stop().await;
        return Err(e);
    }
    if let Err(e) = qmp::wait_ctl(inj.path(), Duration::from_secs(10)).await {
        d.stop().await;
        return Err(e);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Rig {
        d,
        quiet,
        special,
        inj,
        special_emu,
    })
}

/// Does the daemon answer a fresh connection + GET_INFO within `t`?
async fn responsive(d: &Daemon, dom: &str, t: Duration) -> Option<f64> {
    let t0 = Instant::now();
    let fut = async {
        let c = client::open(&d.sock).await?;
        let dd = c.lookup_by_name(dom).await.map_err(es)?;
        c.domain_get_info(&dd).await.map_err(es)?;
        c.close().await;
        Ok::<_, String>(())
    };
    match tokio::time::timeout(t, fut).await {
        Ok(Ok(())) => Some(round3(t0.elapsed().as_secs_f64())),
        _ => None,
    }
}

fn brief(v: &Value) -> Value {
    json!({"p50_us": v["p50_us"], "p99_us": v["p99_us"], "max_us": v["max_us"], "ops": v["ops"],
           "errors": v["errors"], "success_rate": v["success_rate"], "stuck_call_age_s": v["stuck_call_age_s"],
           "setup_stuck": v.get("setup_stuck"), "worst_second_max_us": v["worst_second_max_us"]})
}

pub(crate) async fn flood(
    kind: Kind,
    emu: Emu,
    env: &crate::daemon::Env,
    p: &Params,
) -> Res<Value> {
    // RTC_CHANGE: no listener at each rate; then STOP_RESUME (lifecycle
    // events, which both daemons deliver) with a live listener at the
    // lowest rate; last RTC_CHANGE with a live listener at the highest rate
    // (the case that wedged libvirtd in the anchors).
    let lo = *p.flood_rates.iter().min().unwrap_or(&10_000);
    let hi = *p.flood_rates.iter().max().unwrap_or(&100_000);
    let mut cases = Vec::new();
    for &rate in &p.flood_rates {
        cases.push(("RTC_CHANGE", rate, false));
    }
    cases.push(("STOP_RESUME", lo, true));
    cases.push(("RTC_CHANGE", hi, true));
    let tag = format!("flood-{}", emu_label(emu).len());
    let mut r = rig(kind, emu, env, p, &tag, false, vec![]).await?;
    let mut rows = Vec::new();
    let ncases = cases.len();
    // the simulator rows are not like for like; in a full run they get a
    // shorter flood to keep the whole run under 15 minutes
    let mut pp = p.clone();
    if emu == Emu::Sim {
        pp.flood_s = p.flood_s.min(p.sim_flood_s);
    }
    let p = &pp;
    for (i, (event, rate, live)) in cases.into_iter().enumerate() {
        let row = flood_case(&r, event, rate, live, p).await;
        let wedged = row
            .as_ref()
            .map(|v| v["responsive_after_post_s"].is_null())
            .unwrap_or(true);
        rows.push(row.unwrap_or_else(|e| json!({"error": e})));
        eprintln!(
            "  [{}/{}] flood {event} {rate}/s live={live}: {}",
            r.d.label(),
            emu_label(emu),
            rows.last().map(summary_line).unwrap_or_default()
        );
        if wedged && i + 1 < ncases {
            // a daemon that stopped answering gets a fresh start for the next case
            r.d.wedged = true;
            r.d.stop().await;
            r = rig(kind, emu, env, p, &tag, false, vec![]).await?;
        }
    }
    if rows
        .last()
        .map(|v| v["responsive_after_post_s"].is_null())
        .unwrap_or(false)
    {
        r.d.wedged = true;
    }
    r.d.stop().await;
    Ok(
        json!({"daemon": match kind { Kind::Ferro => "ferrovirtd", Kind::Libvirt => "libvirtd" },
              "qemu": emu_label(emu), "cases": rows}),
    )
}

fn summary_line(v: &Value) -> String {
    format!(
        "achieved {} ev/s, CPU {}%, RSS {}→{} MiB, others p99 {}→{} us, flooded p99 {} us, listener {}, responsive {}",
        v["achieved_ev_s"],
        v["daemon_flood"]["cpu_pct_mean"],
        v["daemon_pre"]["rss_mib_end"],
        v["daemon_flood"]["rss_mib_peak"],
        v["others_pre"]["p99_us"],
        v["others_flood"]["p99_us"],
        v["flooded_flood"]["p99_us"],
        v["listener"]["received"],
        v["responsive_after_post_s"]
    )
}

async fn flood_case(r: &Rig, event: &str, rate: u64, live: bool, p: &Params) -> Res<Value> {
    let d = &r.d;
    let listener = if live {
        Some(Listener::start(&d.sock).await?)
    } else {
        None
    };
    let sampler = Sampler::start(d.pid(), Duration::from_millis(200), p.rss_limit_mb * 1024);
    let probe = |names: Vec<String>, secs: f64| {
        client::spawn_probe(
            d.sock.clone(),
            names,
            Op::Info,
            p.probe_rate,
            Duration::from_secs_f64(secs),
            Duration::from_secs(5),
        )
    };
    let pre_o = probe(r.quiet.clone(), p.pre_s);
    let pre_f = probe(vec![r.special.clone()], p.pre_s);
    let (pre_o, pre_f) = (pre_o.await.map_err(es)?, pre_f.await.map_err(es)?);
    let t_pre_end = sampler.now();
    let sent0 = r.inj.sent().await.unwrap_or(0);
    let t_flood = Instant::now();
    let t_flood_s = sampler.now();
    r.inj.flood(event, rate, p.flood_s).await?;
    let fl_o = probe(r.quiet.clone(), p.flood_s);
    let fl_f = probe(vec![r.special.clone()], p.flood_s);
    // guard: stop the flood if the daemon's RSS passes the limit
    let mut guard_tripped = false;
    while t_flood.elapsed().as_secs_f64() < p.flood_s {
        if !guard_tripped && sampler.tripped.load(Ordering::Relaxed) {
            guard_tripped = true;
            let _ = r.inj.stop_flood().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flood_elapsed = t_flood.elapsed().as_secs_f64();
    let sent1 = r.inj.sent().await.unwrap_or(sent0);
    let _ = r.inj.stop_flood().await;
    let t_flood_end = sampler.now();
    let (fl_o, fl_f) = (fl_o.await.map_err(es)?, fl_f.await.map_err(es)?);
    let listener_at_flood_end = listener.as_ref().map(|l| l.summary());
    let post_o = probe(r.quiet.clone(), p.post_s);
    let post_f = probe(vec![r.special.clone()], p.post_s);
    let (post_o, post_f) = (post_o.await.map_err(es)?, post_f.await.map_err(es)?);
    let t_post_end = sampler.now();
    let resp = responsive(d, &r.quiet[0], Duration::from_secs(10)).await;
    let lres = match listener {
        Some(l) => Some(l.stop().await),
        None => None,
    };
    let samples = sampler.finish();
    Ok(json!({
        "event": event, "target_ev_s": rate, "flood_target_s": p.flood_s, "listener_mode": if live { "live" } else { "none" },
        "flood_s": round1(flood_elapsed),
        "achieved_ev_s": round1(sent1.saturating_sub(sent0) as f64 / flood_elapsed),
        "rss_guard_tripped": guard_tripped,
        "daemon_pre": util::window(&samples, 0.0, t_pre_end),
        "daemon_flood": util::window(&samples, t_flood_s, t_flood_end),
        "daemon_post": util::window(&samples, t_flood_end, t_post_end),
        "rss_series": util::rss_series(&samples, 60),
        "others_pre": brief(&pre_o), "others_flood": brief(&fl_o), "others_post": brief(&post_o),
        "flooded_pre": brief(&pre_f), "flooded_flood": brief(&fl_f), "flooded_post": brief(&post_f),
        "listener": lres, "listener_at_flood_end": listener_at_flood_end,
        "responsive_after_post_s": resp,
    }))
}

// ---------------------------------------------------------------- 3. hung

pub(crate) async fn hung(kind: Kind, emu: Emu, env: &crate::daemon::Env, p: &Params) -> Res<Value> {
    // running, so that suspend really needs the monitor
    let r = rig(kind, emu, env, p, "hung", true, vec![]).await?;
    let out = hung_inner(&r, p).await;
    let label = r.d_label();
    r.d.stop().await;
    let mut v = out?;
    v["daemon"] = json!(label);
    v["qemu"] = json!(emu_label(emu));
    Ok(v)
}

impl Rig {
    fn d_label(&self) -> &'static str {
        self.d.label()
    }
}

async fn hung_inner(r: &Rig, p: &Params) -> Res<Value> {
    let d = &r.d;
    let sampler = Sampler::start(d.pid(), Duration::from_millis(200), u64::MAX);
    let win = p.hung_window.as_secs_f64();
    let base = client::spawn_probe(
        d.sock.clone(),
        r.quiet.clone(),
        Op::Info,
        p.probe_rate,
        Duration::from_secs(3),
        Duration::from_secs(5),
    )
    .await
    .map_err(es)?;
    r.inj.hang(true).await?;
    // the in-flight call: suspend needs the monitor (QMP "stop")
    let c = client::open_timeout(&d.sock, Duration::from_secs(10)).await?;
    let dom = c.lookup_by_name(&r.special).await.map_err(es)?;
    let cap = p.hung_cap;
    let t_call = Instant::now();
    let inflight = {
        let (c, dom) = (c.clone(), dom.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let res = tokio::time::timeout(cap, client::suspend(&c, &dom)).await;
            (t.elapsed().as_secs_f64(), res)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stuck_o = client::spawn_probe(
        d.sock.clone(),
        r.quiet.clone(),
        Op::Info,
        p.probe_rate,
        p.hung_window,
        Duration::from_secs(5),
    );
    let stuck_v = client::spawn_probe(
        d.sock.clone(),
        vec![r.special.clone()],
        Op::Info,
        p.probe_rate,
        p.hung_window,
        Duration::from_secs(5),
    );
    let (stuck_o, stuck_v) = (stuck_o.await.map_err(es)?, stuck_v.await.map_err(es)?);
    let _ = win;
    // wait for the in-flight call, up to the cap
    let (inflight_s, inflight_res) = inflight.await.map_err(es)?;
    let inflight_v = match &inflight_res {
        Ok(Ok(())) => json!({"returned_after_s": round3(inflight_s), "result": "ok"}),
        Ok(Err(e)) => {
            json!({"returned_after_s": round3(inflight_s), "result": format!("error: {e}")})
        }
        Err(_) => {
            json!({"returned_after_s": null, "result": format!("no answer within {} s", cap.as_secs())})
        }
    };
    let since_call = t_call.elapsed().as_secs_f64();
    // destroy the hung VM (monitor still not answering)
    let t = Instant::now();
    let dres = tokio::time::timeout(Duration::from_secs(60), c.destroy(&dom)).await;
    let destroy_s = t.elapsed().as_secs_f64();
    let destroy_v = match dres {
        Ok(Ok(())) => json!({"s": round3(destroy_s), "result": "ok"}),
        Ok(Err(e)) => json!({"s": round3(destroy_s), "result": format!("error: {e}")}),
        Err(_) => json!({"s": null, "result": "no answer within 60 s"}),
    };
    let after = client::spawn_probe(
        d.sock.clone(),
        r.quiet.clone(),
        Op::Info,
        p.probe_rate,
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .await
    .map_err(es)?;
    c.close().await;
    let samples = sampler.finish();
    Ok(json!({
        "how": if r.special_emu == Emu::Sim { "qemu-sim `hang on`, then DOMAIN_SUSPEND" } else { "qmp-proxy `swallow on`, then DOMAIN_SUSPEND" },
        "others_base": brief(&base), "others_stuck": brief(&stuck_o), "stuck_vm_info": brief(&stuck_v),
        "others_after": brief(&after),
        "inflight": inflight_v, "stuck_phase_s": round1(since_call),
        "destroy": destroy_v,
        "daemon": util::window(&samples, 0.0, f64::MAX),
    }))
}

// ---------------------------------------------------------------- 4. events

pub(crate) async fn events(
    kind: Kind,
    emu: Emu,
    env: &crate::daemon::Env,
    p: &Params,
) -> Res<Value> {
    let qmp_path = env.work.join(format!(
        "evq-{}-{}.sock",
        if kind == Kind::Ferro { "f" } else { "l" },
        emu_label(emu).len()
    ));
    let _ = std::fs::remove_file(&qmp_path);
    let extra = if emu == Emu::Sim {
        vec![]
    } else {
        vec![
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp_path.display()),
        ]
    };
    let mut pp = p.clone();
    pp.bg_vms = 1;
    let r = rig(kind, emu, env, &pp, "events", true, extra).await?;
    let out = events_inner(&r, &qmp_path, p).await;
    let label = r.d_label();
    r.d.stop().await;
    let _ = std::fs::remove_file(&qmp_path);
    let mut v = out?;
    v["daemon"] = json!(label);
    v["qemu"] = json!(emu_label(emu));
    Ok(v)
}

/// How an event is raised in QEMU.
enum Source {
    /// our own QMP monitor on the real QEMU: `stop` / `cont`
    Qmp(qmp::Qmp),
    /// qemu-sim control socket: `event STOP` / `event RESUME`
    Sim(PathBuf),
}

async fn events_inner(r: &Rig, qmp_path: &Path, p: &Params) -> Res<Value> {
    let d = &r.d;
    let mut stream = client::LifecycleStream::start(&d.sock).await?;
    let mut src = match &r.inj {
        Injector::Sim(path) => Source::Sim(path.clone()),
        Injector::Proxy(_) => {
            Source::Qmp(qmp::Qmp::connect(qmp_path, Duration::from_secs(10)).await?)
        }
    };
    let c = client::open_timeout(&d.sock, Duration::from_secs(10)).await?;
    let dom = c.lookup_by_name(&r.special).await.map_err(es)?;
    let idle = event_samples(
        &mut src,
        &mut stream,
        &c,
        &dom,
        &r.special,
        p.ev_samples,
        Duration::from_secs(60),
    )
    .await?;
    // a job held on the same VM: DOMAIN_SUSPEND whose monitor reply never
    // comes (sim `hang on` / proxy `swallow on`)
    r.inj.hang(true).await?;
    let job = {
        let (c, dom) = (c.clone(), dom.clone());
        tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(60), client::suspend(&c, &dom)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.drain();
    // stay well inside ferrovirtd's monitor deadline
    let budget = Duration::from_secs_f64((d.env.monitor_timeout_s as f64 - 1.5).max(1.0));
    let during = event_samples(
        &mut src,
        &mut stream,
        &c,
        &dom,
        &r.special,
        p.ev_samples,
        budget,
    )
    .await?;
    let job_still_running = !job.is_finished();
    r.inj.hang(false).await?;
    if d.kind == Kind::Libvirt {
        // the swallowed reply never comes: destroy frees the job
        let _ = tokio::time::timeout(Duration::from_secs(30), c.destroy(&dom)).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), job).await;
    stream.stop().await;
    c.close().await;
    Ok(json!({
        "how": match src { Source::Qmp(_) => "stop/cont on a second QMP monitor of the same QEMU; latency = callback receipt - our own receipt of the QMP event",
                           Source::Sim(_) => "qemu-sim control `event STOP|RESUME`; latency = callback receipt - control command sent" },
        "idle": idle,
        "during_job": during,
        "job": "DOMAIN_SUSPEND in flight whose monitor reply is withheld (hang/swallow) — a held modify job, not an async job (the bench does not drive DOMAIN_SAVE yet)",
        "job_still_in_flight_after_samples": job_still_running,
    }))
}

async fn event_samples(
    src: &mut Source,
    stream: &mut client::LifecycleStream,
    c: &rpc::Client,
    dom: &NonnullDomain,
    name: &str,
    n: usize,
    budget: Duration,
) -> Res<Value> {
    let mut lat = Vec::new();
    let mut lat_send = Vec::new();
    let mut missed = 0;
    let t_end = Instant::now() + budget;
    // the state QEMU is in decides the next event
    let mut running = match src {
        Source::Qmp(q) => q.status().await? == "running",
        Source::Sim(_) => {
            client::state(c, dom).await.unwrap_or(client::ST_RUNNING) == client::ST_RUNNING
        }
    };
    for _ in 0..n {
        if Instant::now() > t_end {
            break;
        }
        let (want, cmd, qev) = if running {
            (client::EV_SUSPENDED, "stop", "STOP")
        } else {
            (client::EV_RESUMED, "cont", "RESUME")
        };
        let (t_send, t_ev) = match src {
            Source::Qmp(q) => q.exec_until_event(cmd, qev).await?,
            Source::Sim(path) => {
                let t = util::now_ns();
                qmp::sim(path, &format!("event {qev}")).await?;
                (t, t)
            }
        };
        running = !running;
        match stream.wait_for(name, want, Duration::from_secs(5)).await {
            Some(t_cb) => {
                lat.push(t_cb.saturating_sub(t_ev));
                lat_send.push(t_cb.saturating_sub(t_send));
            }
            None => missed += 1,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        stream.drain();
    }
    let mut v = util::lat_summary(&mut lat);
    v["from_command_sent"] = util::lat_summary(&mut lat_send);
    v["missed_callbacks"] = json!(missed);
    Ok(v)
}

// ---------------------------------------------------------------- 5. scale

pub(crate) async fn scale(env: &crate::daemon::Env, p: &Params) -> Res<Value> {
    let mut rows = Vec::new();
    // ferrovirtd holds 2 fds per VM (monitor socket, pidfd); stay under
    // RLIMIT_NOFILE, which an unprivileged container may not raise
    let nofile = util::raise_nofile() as usize;
    let cap = nofile.saturating_sub(300) / 2;
    for &want in &p.scale_ns {
        let n = want.min(cap);
        if n < want {
            eprintln!(
                "  [ferrovirtd] scale: N={want} capped to {n} (RLIMIT_NOFILE {nofile}, 2 fds per VM)"
            );
        }
        let mut d = Daemon::start(Kind::Ferro, env, &format!("scale{n}"))?;
        let r = scale_one(&mut d, n).await;
        // 10,000 destroys through the RPC would take a while: SIGTERM the
        // daemon and kill the sims by PID (their command lines name the root)
        d.wedged = true;
        d.stop().await;
        let mut v = r.unwrap_or_else(|e| json!({"n": n, "error": e}));
        v["requested_n"] = json!(want);
        if n < want {
            v["capped_by"] = json!(format!(
                "RLIMIT_NOFILE hard limit {nofile} (cannot be raised here), 2 fds per VM"
            ));
        }
        eprintln!("  [ferrovirtd] scale N={n}: {v}");
        rows.push(v);
    }
    Ok(json!({"daemon": "ferrovirtd", "qemu": "qemu-sim", "rows": rows}))
}

async fn scale_one(d: &mut Daemon, n: usize) -> Res<Value> {
    let idle = daemon_mem(d);
    let all = names("s", 0, n);
    let st = start_vms(d, &all, Emu::Sim, &no_extra, true, 16).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mem = daemon_mem(d);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .map(|x| x.count())
        .unwrap_or(0);
    // PSS of a few sims
    let sims: Vec<i32> = util::pids_mentioning(&d.root.join("run").display().to_string())
        .into_iter()
        .filter(|&p| p != d.pid())
        .take(20)
        .collect();
    let pss: Vec<u64> = sims.iter().filter_map(|&p| util::proc_pss_kb(p)).collect();
    let pss_avg = if pss.is_empty() {
        0.0
    } else {
        pss.iter().sum::<u64>() as f64 / pss.len() as f64
    };
    // restart: SIGKILL + start, until every VM reports running
    let t0 = Instant::now();
    d.kill9_and_restart()?;
    let listening = t0.elapsed().as_secs_f64();
    let c = client::open_timeout(&d.sock, Duration::from_secs(60)).await?;
    let mut last;
    let reconnect = loop {
        // ACTIVE | RUNNING
        let running = c.list_all_domains(1 | 16).await.map_err(es)?.len();
        last = running;
        if running >= n {
            break Some(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() > Duration::from_secs(300) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // and they answer: GET_STATE on every VM
    let doms = c.list_all_domains(1).await.map_err(es)?;
    let mut ok = 0;
    for dd in &doms {
        if client::state(&c, dd).await == Ok(client::ST_RUNNING) {
            ok += 1;
        }
    }
    let after = daemon_mem(d);
    c.close().await;
    Ok(json!({
        "n": n, "start": st, "daemon_idle": idle, "daemon_after_start": mem, "daemon_fds": fds,
        "sim_pss_kib_avg": round1(pss_avg),
        "restart": {"listening_s": round3(listening), "all_running_s": reconnect.map(round3),
                    "running_seen": last, "get_state_running": ok},
        "daemon_after_restart": after,
    }))
}
