//! Golden tests: for every tests/golden/NAME.xml
//!   NAME.argv      build_argv output, one argument per line
//!   NAME.out.xml   to_xml(None) (inactive dumpxml)
//!   NAME.live.xml  to_xml(Some(live))
//! and parse(NAME.out.xml) == parse(NAME.xml) (round trip).
//! Regenerate with UPDATE_GOLDEN=1 and review the diff.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use domain::{Accel, DomainDef, LiveInfo, XmlOptions, build_argv};
use std::path::{Path, PathBuf};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn check(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(expected) if expected == actual => {}
        Ok(expected) => failures.push(format!(
            "{} differs (UPDATE_GOLDEN=1 to regenerate)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )),
        Err(_) => failures.push(format!(
            "{} missing (UPDATE_GOLDEN=1 to generate)",
            path.display()
        )),
    }
}

fn inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            n.ends_with(".xml") && !n.ends_with(".out.xml") && !n.ends_with(".live.xml")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn golden_files() {
    let inputs = inputs();
    assert!(inputs.len() >= 12, "expected a dozen golden inputs");
    let mut failures = Vec::new();
    for input in inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap().to_string();
        let xml = std::fs::read_to_string(&input).unwrap();
        let def = DomainDef::parse(&xml).unwrap_or_else(|e| panic!("{stem}: {e}"));

        let launch = common::golden_launch(&def, Accel::for_domain(&def));
        let argv = build_argv(&def, &common::golden_caps(), &launch)
            .unwrap_or_else(|e| panic!("{stem}: build_argv: {e}"));
        let mut argv_text = argv.join("\n");
        argv_text.push('\n');
        check(
            &golden_dir().join(format!("{stem}.argv")),
            &argv_text,
            &mut failures,
        );

        let out = def.to_xml(None);
        check(
            &golden_dir().join(format!("{stem}.out.xml")),
            &out,
            &mut failures,
        );

        let live = LiveInfo {
            id: 7,
            serial_ptys: (0..def.devices.serials.len())
                .map(|i| Some(format!("/dev/pts/{}", i + 3)))
                .collect(),
            vnc_port: Some(5900),
            spice_port: Some(5910),
            run_dir: Some(PathBuf::from(format!("/run/ferrovirt/{}", def.uuid))),
            taps: Vec::new(),
        };
        let live_xml = def.to_xml(Some(&live));
        check(
            &golden_dir().join(format!("{stem}.live.xml")),
            &live_xml,
            &mut failures,
        );

        // Round trips: inactive and live XML both parse back to the same
        // definition, and formatting is a fixed point. With the secrets
        // (what is stored, and what --security-info shows): without them a
        // definition with a password is another guest.
        let secure = |live| def.to_xml_with(XmlOptions { live, secure: true });
        let again =
            DomainDef::parse(&secure(None)).unwrap_or_else(|e| panic!("{stem}: reparse: {e}"));
        assert_eq!(again, def, "{stem}: parse(to_xml(d)) != d");
        assert_eq!(again.to_xml(None), out, "{stem}: format not a fixed point");
        let from_live = DomainDef::parse(&secure(Some(&live)))
            .unwrap_or_else(|e| panic!("{stem}: reparse live: {e}"));
        assert_eq!(from_live, def, "{stem}: parse(live xml) != d");
        let has_password = def
            .devices
            .graphics
            .iter()
            .any(|g| g.display().is_some_and(|d| d.password.is_some()));
        if !has_password {
            assert_eq!(secure(None), out, "{stem}: only secrets differ");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A monitor handed over as a descriptor replaces the socket path, and a
/// pidfile the caller writes leaves QEMU none of its own.
#[test]
fn an_inherited_monitor_and_no_pidfile() {
    let input = inputs().into_iter().next().unwrap();
    let def = DomainDef::parse(&std::fs::read_to_string(&input).unwrap()).unwrap();
    let mut launch = common::golden_launch(&def, Accel::for_domain(&def));
    launch.monitor_fd = Some(4);
    launch.pidfile = None;
    let argv = build_argv(&def, &common::golden_caps(), &launch).unwrap();
    assert!(
        argv.iter()
            .any(|a| a == "socket,id=charmonitor,fd=4,server=on,wait=off"),
        "{argv:?}"
    );
    let socket = launch.qmp_socket.to_string_lossy().into_owned();
    assert!(!argv.iter().any(|a| a.contains(&socket)), "{argv:?}");
    assert!(!argv.iter().any(|a| a == "-pidfile"), "{argv:?}");
}

/// A serial or channel socket the caller bound is handed over as `fd=N`;
/// one it did not bind keeps its path.
#[test]
fn bound_chardev_sockets_are_inherited() {
    let xml = "<domain type='qemu'><name>s</name><memory unit='MiB'>64</memory>\
               <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
               <serial type='unix'><source mode='bind' path='/tmp/s0.sock'/><target port='0'/></serial>\
               <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>\
               <channel type='unix'><source mode='connect' path='/tmp/c.sock'/><target type='virtio' name='x.y'/></channel>\
               </devices></domain>";
    let def = DomainDef::parse(xml).unwrap();
    let mut launch = common::golden_launch(&def, Accel::Tcg);
    let listening = def.listening_sockets(&launch.domain_run_dir);
    assert_eq!(
        listening,
        vec![
            PathBuf::from("/tmp/s0.sock"),
            launch.domain_run_dir.join("org.qemu.guest_agent.0")
        ]
    );
    launch.bound_sockets = listening.into_iter().zip([7, 8]).collect();
    let argv = build_argv(&def, &common::golden_caps(), &launch).unwrap();
    for want in [
        "socket,id=charserial0,fd=7,server=on,wait=off",
        "socket,id=charchannel0,fd=8,server=on,wait=off",
        "socket,id=charchannel1,path=/tmp/c.sock",
    ] {
        assert!(argv.iter().any(|a| a == want), "no {want} in {argv:?}");
    }
}
