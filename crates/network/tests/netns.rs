//! The network driver against the real kernel, dnsmasq, nft and tc, each
//! test inside a network namespace of its own (see `common`): lifecycle
//! with nothing left behind, DHCP leases and live updates, a dnsmasq that
//! dies, re-adoption after a killed daemon, and bad input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{bridges, dnsmasqs, in_netns, ruleset, runtime, sh, wait_for};
use network::{
    Health, NetworkConfig, NetworkDriver, NetworkFilter, NetworkLifecycle, Update, UpdateCommand,
    UpdateFlags, UpdateSection,
};
use virterror::{ErrorCode, ToVirError};

fn cfg(root: &Path) -> NetworkConfig {
    let mut c = NetworkConfig::new(root);
    c.default_network = false;
    c.stop_grace = Duration::from_secs(2);
    c.restart.initial_backoff = Duration::from_millis(50);
    c
}

fn net_xml(name: &str, bridge: &str, third: u8) -> String {
    format!(
        "<network><name>{name}</name><forward mode='nat'/><bridge name='{bridge}'/>\
         <ip address='10.77.{third}.1' prefix='24'><dhcp>\
         <range start='10.77.{third}.100' end='10.77.{third}.199'/></dhcp></ip></network>"
    )
}

fn code<T>(r: network::Result<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_vir_error().code,
    }
}

fn assert_nothing_left(root: &Path) {
    assert!(bridges().is_empty(), "bridges left: {:?}", bridges());
    assert!(ruleset().trim().is_empty(), "rules left:\n{}", ruleset());
    assert!(
        dnsmasqs(root).is_empty(),
        "dnsmasq left: {:?}",
        dnsmasqs(root)
    );
}

#[test]
fn default_network_lifecycle_leaves_nothing() {
    in_netns("default_network_lifecycle_leaves_nothing", || {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        let events = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            let mut c = cfg(root.path());
            c.default_network = true;
            c.autostart = false;
            let drv = NetworkDriver::open(c).await.unwrap();
            let ev = events.clone();
            drv.add_event_listener(Box::new(move |e| ev.lock().unwrap().push(e.lifecycle)));
            let net = drv.lookup_by_name("default").unwrap();
            // Nothing routes 192.168.122.0/24 in a fresh namespace.
            assert!(net.autostart() && net.is_persistent() && !net.is_active());
            assert_nothing_left(root.path());

            let t = Instant::now();
            drv.start(&net).await.unwrap();
            let started = t.elapsed();
            assert_eq!(bridges(), vec!["virbr0".to_string()]);
            assert!(sh("ip -o -4 addr show dev virbr0").contains("192.168.122.1/24"));
            let rules = ruleset();
            assert!(
                rules.contains("table ip ferrovirt") && rules.contains("masquerade"),
                "{rules}"
            );
            assert_eq!(dnsmasqs(root.path()).len(), 1);
            let s = net.summary();
            assert_eq!(s.dnsmasq_pid, Some(dnsmasqs(root.path())[0]));
            assert_eq!(net.bridge_name().as_deref(), Some("virbr0"));
            let live = net.to_xml(false);
            assert!(live.contains("<mac address='52:54:00:"), "{live}");
            assert_eq!(
                drv.list(NetworkFilter {
                    active: Some(true),
                    ..Default::default()
                })
                .len(),
                1
            );
            assert_eq!(code(drv.start(&net).await), ErrorCode::OperationInvalid);

            let t = Instant::now();
            drv.destroy(&net).await.unwrap();
            let stopped = t.elapsed();
            println!("network start {started:?}, stop {stopped:?}");
            assert_nothing_left(root.path());
            assert!(!root.path().join("run/network/default.xml").exists());
            drv.undefine(&net).await.unwrap();
            assert_eq!(code(drv.lookup_by_name("default")), ErrorCode::NoNetwork);
        });
        use NetworkLifecycle::*;
        assert_eq!(*events.lock().unwrap(), vec![Started, Stopped, Undefined]);
    });
}

#[test]
fn dhcp_lease_and_live_update() {
    in_netns("dhcp_lease_and_live_update", || {
        let root = tempfile::tempdir().unwrap();
        let guest_ns = format!("fvg{}", std::process::id());
        let rt = runtime();
        rt.block_on(async {
            let drv = NetworkDriver::open(cfg(root.path())).await.unwrap();
            let net = drv.create(&net_xml("lab", "fvbr0", 1)).await.unwrap();
            assert!(!net.is_persistent());
            let pid = net.summary().dnsmasq_pid.unwrap();

            // A guest: a veth whose far end lives in a namespace of its own.
            sh(&format!("ip netns add {guest_ns}"));
            sh(&format!("ip link add fvh0 type veth peer name fvg0 netns {guest_ns}"));
            sh("ip link set fvh0 master fvbr0 up");
            sh(&format!("ip netns exec {guest_ns} ip link set fvg0 address 52:54:00:12:34:56"));
            sh(&format!("ip netns exec {guest_ns} ip link set fvg0 up"));

            // A static lease added to the running network only.
            let u = Update {
                command: UpdateCommand::AddLast,
                section: UpdateSection::IpDhcpHost,
                parent_index: -1,
                xml: "<host mac='52:54:00:12:34:56' name='guest1' ip='10.77.1.50'/>",
                flags: UpdateFlags { live: true, config: false },
            };
            drv.update(&net, &u).await.unwrap();
            assert!(net.to_xml(false).contains("ip='10.77.1.50'"));
            assert_eq!(net.summary().dnsmasq_pid, Some(pid), "a live update must not restart dnsmasq");
            assert_eq!(code(drv.update(&net, &Update { flags: UpdateFlags { live: false, config: true }, ..u.clone() }).await),
                ErrorCode::OperationInvalid);

            let out = sh(&format!(
                "ip netns exec {guest_ns} busybox udhcpc -i fvg0 -n -q -t 10 -T 1 -x hostname:guest1 -s /bin/true 2>&1"
            ));
            assert!(out.contains("10.77.1.50"), "udhcpc: {out}");
            let leases = wait_for("the lease", Duration::from_secs(10), || {
                let l = drv.dhcp_leases(&net, None).unwrap();
                (!l.is_empty()).then_some(l)
            });
            assert_eq!(leases[0].ipaddr, "10.77.1.50");
            assert_eq!(leases[0].mac, "52:54:00:12:34:56");
            assert_eq!(leases[0].hostname.as_deref(), Some("guest1"));
            assert_eq!((leases[0].prefix, leases[0].iface.as_str()), (24, "fvbr0"));
            assert_eq!(drv.dhcp_leases(&net, Some("52:54:00:00:00:01")).unwrap().len(), 0);
            assert_eq!(drv.dhcp_leases(&net, Some("52:54:00:12:34:56")).unwrap().len(), 1);
            assert_eq!(code(drv.dhcp_leases(&net, Some("bogus"))), ErrorCode::InvalidArg);

            drv.destroy(&net).await.unwrap();
            assert_eq!(code(drv.lookup_by_name("lab")), ErrorCode::NoNetwork);
            common::cleanup_netns(&guest_ns);
            assert_nothing_left(root.path());
        });
    });
}

#[test]
fn dnsmasq_is_restarted_then_degraded() {
    in_netns("dnsmasq_is_restarted_then_degraded", || {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let mut c = cfg(root.path());
            c.restart.max_restarts = 2;
            let drv = NetworkDriver::open(c).await.unwrap();
            let net = drv.define(&net_xml("n1", "fvbr1", 2)).await.unwrap();
            drv.start(&net).await.unwrap();
            let first = net.summary().dnsmasq_pid.unwrap();
            sh(&format!("kill -9 {first}"));
            let second = wait_for("a restarted dnsmasq", Duration::from_secs(10), || {
                net.summary().dnsmasq_pid.filter(|p| *p != first)
            });
            assert_eq!(dnsmasqs(root.path()), vec![second]);
            assert_eq!(net.summary().dnsmasq_restarts, 1);
            assert_eq!(net.summary().health, Health::Ok);

            // Keeps dying: two restarts are allowed, the third death degrades.
            let mut pid = second;
            for _ in 0..2 {
                sh(&format!("kill -9 {pid}"));
                let before = pid;
                wait_for(
                    "the next dnsmasq or degradation",
                    Duration::from_secs(10),
                    || {
                        let s = net.summary();
                        match (s.dnsmasq_pid, s.health) {
                            (Some(p), _) if p != before => {
                                pid = p;
                                Some(())
                            }
                            (None, Health::Degraded(_)) => Some(()),
                            _ => None,
                        }
                    },
                );
            }
            let why = wait_for("degradation", Duration::from_secs(10), || {
                match net.summary().health {
                    Health::Degraded(w) => Some(w),
                    Health::Ok => None,
                }
            });
            assert!(why.contains("no longer restarted"), "{why}");
            assert!(dnsmasqs(root.path()).is_empty());
            drv.destroy(&net).await.unwrap();
            assert_nothing_left(root.path());
        });
    });
}

#[test]
fn killed_daemon_is_readopted_or_cleaned() {
    in_netns("killed_daemon_is_readopted_or_cleaned", || {
        let root = tempfile::tempdir().unwrap();
        // A daemon that dies: its runtime (and every task) goes, the host
        // state stays.
        let pid = {
            let rt = runtime();
            rt.block_on(async {
                let drv = NetworkDriver::open(cfg(root.path())).await.unwrap();
                let p = drv.define(&net_xml("keep", "fvbr2", 3)).await.unwrap();
                drv.start(&p).await.unwrap();
                drv.create(&net_xml("trans", "fvbr3", 4)).await.unwrap();
                p.summary().dnsmasq_pid.unwrap()
            })
        };
        let chains_before = ruleset().matches("chain ").count();
        // A duplicate dnsmasq of the same network (a second daemon's
        // start racing ours, say) must not survive the re-adoption.
        let conf = root.path().join("run/network/keep.conf");
        sh(&format!(
            "/usr/sbin/dnsmasq --conf-file={} --port=0",
            conf.display()
        ));
        assert_eq!(dnsmasqs(root.path()).len(), 3);
        // It took over the pid file; the record names the first one.
        std::fs::write(root.path().join("run/network/keep.pid"), format!("{pid}\n")).unwrap();

        let rt = runtime();
        rt.block_on(async {
            let drv = NetworkDriver::open(cfg(root.path())).await.unwrap();
            let keep = drv.lookup_by_name("keep").unwrap();
            let trans = drv.lookup_by_name("trans").unwrap();
            assert!(keep.is_active() && trans.is_active() && !trans.is_persistent());
            assert_eq!(
                keep.summary().dnsmasq_pid,
                Some(pid),
                "the running dnsmasq is adopted"
            );
            assert_eq!(dnsmasqs(root.path()).len(), 2, "one dnsmasq per network");
            let mut b = bridges();
            b.sort();
            assert_eq!(b, vec!["fvbr2".to_string(), "fvbr3".to_string()]);
            assert_eq!(
                ruleset().matches("chain ").count(),
                chains_before,
                "rules are not duplicated"
            );
            // The adopted dnsmasq is supervised like a started one.
            sh(&format!("kill -9 {pid}"));
            wait_for("a restarted dnsmasq", Duration::from_secs(10), || {
                keep.summary().dnsmasq_pid.filter(|p| *p != pid)
            });
        });
        drop(rt);

        // Killed mid-start: the record still says `starting`.
        for name in ["keep", "trans"] {
            let path = root.path().join(format!("run/network/{name}.xml"));
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("phase='active'", "phase='starting'")).unwrap();
        }
        let rt = runtime();
        rt.block_on(async {
            let drv = NetworkDriver::open(cfg(root.path())).await.unwrap();
            assert!(!drv.lookup_by_name("keep").unwrap().is_active());
            assert_eq!(code(drv.lookup_by_name("trans")), ErrorCode::NoNetwork);
            assert_nothing_left(root.path());
        });
    });
}

#[test]
fn bad_input_gets_libvirt_codes_and_leaves_nothing() {
    in_netns("bad_input_gets_libvirt_codes_and_leaves_nothing", || {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let drv = NetworkDriver::open(cfg(root.path())).await.unwrap();
            let a = drv.define(&net_xml("a", "fvbr4", 5)).await.unwrap();
            // duplicate name with another uuid, duplicate uuid with another name
            let other_uuid = net_xml("a", "fvbr5", 6);
            let e = drv.define(&other_uuid).await.unwrap_err();
            assert_eq!(e.to_vir_error().code, ErrorCode::OperationFailed);
            assert!(e.to_string().contains("network 'a' already exists with uuid"), "{e}");
            let same_uuid = a.config().to_xml().replace("<name>a</name>", "<name>b</name>").replace("fvbr4", "fvbr6");
            let e = drv.define(&same_uuid).await.unwrap_err();
            assert!(e.to_string().contains("is already defined with uuid"), "{e}");
            // bridge name of another network
            let e = drv.define(&net_xml("c", "fvbr4", 7)).await.unwrap_err();
            assert_eq!(e.to_vir_error().code, ErrorCode::InternalError);
            assert!(e.to_string().contains("bridge name 'fvbr4' already in use."), "{e}");
            // XML errors
            assert_eq!(code(drv.define("<network><name>x</name><forward mode='warp'/></network>").await), ErrorCode::ConfigUnsupported);
            assert_eq!(code(drv.define("<network><name>x</name><forward mode='bridge'/><bridge name='br0'/></network>").await), ErrorCode::ConfigUnsupported);
            assert_eq!(code(drv.define("<network><name>x</name><ip address='10.9.0.1' prefix='24'><dhcp><range start='10.9.1.2' end='10.9.1.9'/></dhcp></ip></network>").await), ErrorCode::InternalError);
            assert_eq!(code(drv.create("<network><name>x</name><ip family='ipv6' address='fd00::1' prefix='64'/></network>").await), ErrorCode::ConfigUnsupported);

            // A subnet another interface routes.
            sh("ip link add fvx0 type veth peer name fvx1 && ip addr add 10.77.8.5/24 dev fvx0 && ip link set fvx1 up && ip link set fvx0 up");
            let e = drv.create(&net_xml("clash", "fvbr7", 8)).await.unwrap_err();
            assert_eq!(e.to_vir_error().code, ErrorCode::InternalError);
            assert_eq!(e.to_string(), "internal error: Network is already in use by interface fvx0");
            // Overlapping subnets of two networks.
            drv.start(&a).await.unwrap();
            let wide = "<network><name>wide</name><bridge name='fvbr8'/><ip address='10.77.0.1' prefix='16'/></network>";
            let e = drv.create(wide).await.unwrap_err();
            assert_eq!(e.to_string(), "internal error: Network is already in use by interface fvbr4");
            drv.destroy(&a).await.unwrap();
            sh("ip link del fvx0");
            assert_nothing_left(root.path());

            // A start that fails half-way (dnsmasq will not run) is undone.
            let mut c = cfg(root.path());
            c.dnsmasq = "/bin/false".into();
            c.autostart = false;
            let broken = NetworkDriver::open(c).await.unwrap();
            let n = broken.lookup_by_name("a").unwrap();
            assert_eq!(code(broken.start(&n).await), ErrorCode::InternalError);
            assert!(!n.is_active());
            assert_nothing_left(root.path());
            assert!(!root.path().join("run/network/a.xml").exists());
        });
    });
}

#[test]
fn taps_with_bandwidth_and_counters() {
    in_netns("taps_with_bandwidth_and_counters", || {
        let root = tempfile::tempdir().unwrap();
        let rt = runtime();
        rt.block_on(async {
            let drv = NetworkDriver::open(cfg(root.path())).await.unwrap();
            let net = drv.create(&net_xml("t", "fvbr9", 9)).await.unwrap();
            let bw = network::Bandwidth {
                inbound: Some(network::Rate {
                    average: 1000,
                    peak: Some(2000),
                    burst: Some(64),
                }),
                outbound: Some(network::Rate {
                    average: 500,
                    peak: None,
                    burst: None,
                }),
            };
            let opts = network::TapOptions {
                name: None,
                mac: "52:54:00:aa:00:01".parse().unwrap(),
                attach: network::TapAttach::Network("t".into()),
                bandwidth: Some(bw),
            };
            let tap = drv.create_tap(&opts).await.unwrap();
            assert!(tap.name.starts_with("vnet"), "{}", tap.name);
            let link = sh(&format!("ip -o link show {}", tap.name));
            assert!(
                link.contains("master fvbr9") && link.contains("fe:54:00:aa:00:01"),
                "{link}"
            );
            let q = sh(&format!("tc qdisc show dev {}", tap.name));
            assert!(
                q.contains("htb 1:") && q.contains("pfifo 2:") && q.contains("ingress"),
                "{q}"
            );
            let class = sh(&format!("tc class show dev {}", tap.name));
            assert!(
                class.contains("rate 8Mbit") && class.contains("ceil 16Mbit"),
                "{class}"
            );
            let stats = drv.tap_stats(&tap.name).unwrap();
            assert_eq!(stats.rx_errs, 0);
            assert_eq!(code(drv.tap_stats("nope0")), ErrorCode::InvalidArg);
            drv.set_tap_bandwidth(&tap.name, None).await.unwrap();
            assert!(!sh(&format!("tc qdisc show dev {}", tap.name)).contains("htb"));
            let name = tap.name.clone();
            drv.remove_tap(&name).await.unwrap();
            drop(tap);
            assert!(
                sh("ip -o link show")
                    .lines()
                    .all(|l| !l.contains(&name) && !l.contains("fvifb"))
            );
            // On a network that is not running: refused, nothing made.
            assert_eq!(
                code(
                    drv.create_tap(&network::TapOptions {
                        attach: network::TapAttach::Network("none".into()),
                        ..opts
                    })
                    .await
                ),
                ErrorCode::NoNetwork
            );
            drv.destroy(&net).await.unwrap();
            assert_nothing_left(root.path());
        });
    });
}
