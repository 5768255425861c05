//! Guest networking, inside a network namespace the bench creates: a
//! virtual network (bridge, dnsmasq, DHCP) started and destroyed one call
//! at a time, and a guest (real QEMU, no OS needed) started and destroyed
//! with no NIC and with one NIC on that network, to show what a tap costs
//! a start.
//!
//! ferrovirtd only: libvirtd 9.0's network driver needs iptables (or
//! firewalld) to start a network, and this host has neither; the libvirt
//! harness also starts libvirtd in the host's own network namespace.

use std::time::{Duration, Instant};

use rpc::Client;
use rpc::protocol::remote::{
    DomainArgs, DomainDefineXmlArgs, DomainRet, NameArgs, NetworkArgs, NetworkRet, NonnullDomain,
    procedure as p,
};
use testkit::netns::NetNs;

use crate::daemon::{Daemon, Emu, Env};
use crate::error::{BenchError, BenchResult};
use crate::params::Params;
use crate::results::NicsResult;
use crate::stats::LatencySummary;

const NETWORK: &str = "<network><name>benchnet</name><bridge name='fvbench0'/>\
    <ip address='10.91.0.1' netmask='255.255.255.0'><dhcp>\
    <range start='10.91.0.10' end='10.91.0.200'/></dhcp></ip></network>";

const NIC: &str =
    "<interface type='network'><source network='benchnet'/><model type='virtio'/></interface>";

pub(crate) async fn run(env: &Env, params: &Params) -> BenchResult<NicsResult> {
    let ns = NetNs::new("bench")?;
    let daemon = Daemon::start_ferrovirtd_in(
        env,
        "nics",
        Some(ns.name()),
        "default_network = false\nnetwork_autostart = false\n",
    )?;
    let result = measure(&daemon, params.nics_rounds).await;
    daemon.stop().await;
    drop(ns);
    result
}

async fn measure(daemon: &Daemon, rounds: usize) -> BenchResult<NicsResult> {
    let client = crate::client::open_within(&daemon.socket, crate::client::CONNECT).await?;
    let net: NetworkRet = call(
        &client,
        p::NETWORK_DEFINE_XML,
        &NameArgs {
            name: NETWORK.into(),
        },
    )
    .await?;
    let net = NetworkArgs { net: net.net };
    let (mut start, mut stop) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        start.push(timed(call::<_, ()>(&client, p::NETWORK_CREATE, &net)).await?);
        stop.push(timed(call::<_, ()>(&client, p::NETWORK_DESTROY, &net)).await?);
    }
    call::<_, ()>(&client, p::NETWORK_CREATE, &net).await?;
    let plain = guest_cycles(&client, daemon, "nonic", "", rounds).await?;
    let with_nic = guest_cycles(&client, daemon, "nic", NIC, rounds).await?;
    call::<_, ()>(&client, p::NETWORK_DESTROY, &net).await?;
    let r = NicsResult {
        rounds,
        network_start: LatencySummary::of(&start),
        network_stop: LatencySummary::of(&stop),
        guest_start_plain: LatencySummary::of(&plain.0),
        guest_destroy_plain: LatencySummary::of(&plain.1),
        guest_start_nic: LatencySummary::of(&with_nic.0),
        guest_destroy_nic: LatencySummary::of(&with_nic.1),
    };
    eprintln!(
        "  [{}] nics: net-start p50 {:?} us, guest start p50 {:?} us without a NIC, {:?} us with one",
        daemon.label(),
        r.network_start.p50_us,
        r.guest_start_plain.p50_us,
        r.guest_start_nic.p50_us
    );
    client.close().await;
    Ok(r)
}

/// Defines a guest with `nic` (maybe none) and starts and destroys it
/// `rounds` times: (start, destroy) latencies.
async fn guest_cycles(
    client: &Client,
    daemon: &Daemon,
    label: &str,
    nic: &str,
    rounds: usize,
) -> BenchResult<(Vec<Duration>, Vec<Duration>)> {
    let name = format!("{}{label}", super::run_tag());
    let xml = daemon.domain_xml(&name, Emu::Real, &[])?.replace(
        "<memballoon model='none'/>",
        &format!("<memballoon model='none'/>\n    {nic}"),
    );
    let dom: DomainRet = call(client, p::DOMAIN_DEFINE_XML, &DomainDefineXmlArgs { xml }).await?;
    let args = DomainArgs { dom: dom.dom };
    let (mut start, mut destroy) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        start.push(timed(call::<_, ()>(client, p::DOMAIN_CREATE, &args)).await?);
        destroy.push(timed(call::<_, ()>(client, p::DOMAIN_DESTROY, &args)).await?);
    }
    undefine(client, args.dom).await?;
    Ok((start, destroy))
}

async fn undefine(client: &Client, dom: NonnullDomain) -> BenchResult<()> {
    call::<_, ()>(client, p::DOMAIN_UNDEFINE, &DomainArgs { dom }).await
}

async fn timed<T>(f: impl Future<Output = BenchResult<T>>) -> BenchResult<Duration> {
    let t = Instant::now();
    f.await?;
    Ok(t.elapsed())
}

async fn call<A: rpc::xdr::Xdr, R: rpc::xdr::Xdr>(
    client: &Client,
    procedure: i32,
    args: &A,
) -> BenchResult<R> {
    client
        .call(procedure, args)
        .await
        .map_err(|e| BenchError::Refused {
            what: rpc::server::describe_procedure(procedure),
            answer: e.to_string(),
        })
}
