//! QMP BLOCK_IO_ERROR and WATCHDOG turned into libvirt's IO_ERROR,
//! IO_ERROR_REASON and WATCHDOG events: pure mappings, no state.
//!
//! QEMU's strings are outside data: an absent or unknown action maps to
//! libvirt's NONE (libvirt's qemu driver does the same), never to an
//! error, and a disk that cannot be identified is reported with an empty
//! source path and alias.

use qmp::events::{BlockIoErrorData, WatchdogData};

use super::throttle::Key;
use crate::object::def::Def;
use crate::state::{EventKind, io_error_action as io, watchdog_action as wd};

/// `virDomainEventIOErrorAction` of QEMU's BLOCK_IO_ERROR `action`
/// (`BlockErrorAction`: ignore, report, stop).
pub(crate) fn io_error_action(qmp: Option<&str>) -> i32 {
    match qmp {
        Some("stop") => io::PAUSE,
        Some("report") => io::REPORT,
        _ => io::NONE,
    }
}

/// The IO_ERROR_REASON `reason` of a BLOCK_IO_ERROR.
///
/// libvirt documents the reason as "enospc" when the error is known to be
/// the host running out of space (growing the storage lets the guest be
/// resumed), and as "" otherwise; its qemu driver sends exactly that,
/// from QEMU's `nospace` flag. We do the same rather than invent a value
/// (such as "eio") that no libvirt client would expect; QEMU's free-text
/// `reason` is not used, since libvirt does not put it in the event.
pub(crate) fn io_error_reason(nospace: Option<bool>) -> &'static str {
    if nospace == Some(true) { "enospc" } else { "" }
}

/// `virDomainEventWatchdogAction` of QEMU's WATCHDOG `action`
/// (`WatchdogAction`).
pub(crate) fn watchdog_action(qmp: Option<&str>) -> i32 {
    match qmp {
        Some("pause") => wd::PAUSE,
        Some("reset") => wd::RESET,
        Some("poweroff") => wd::POWEROFF,
        Some("shutdown") => wd::SHUTDOWN,
        Some("debug") => wd::DEBUG,
        Some("inject-nmi") => wd::INJECTNMI,
        _ => wd::NONE,
    }
}

/// The event a BLOCK_IO_ERROR raises, and the throttle key of its disk.
///
/// `live` is the running definition (its source paths follow block-job
/// pivots); `pivoted` maps node names a block job moved a disk onto to
/// that disk's target, for the nodes [`Def::disk_of_qmp`] cannot know.
pub(crate) fn io_error_event(
    live: Option<&Def>,
    pivoted: &[(String, String)],
    d: &BlockIoErrorData,
) -> (Key, EventKind) {
    let node = d.node_name.as_deref();
    let disk = live.and_then(|def| {
        def.disk_of_qmp(d.device.as_deref(), node, d.qom_path.as_deref())
            .or_else(|| {
                let target = pivoted.iter().find(|(n, _)| Some(n.as_str()) == node)?;
                def.disk(&target.1)
            })
    });
    let key = Key::IoError(disk.as_ref().map(|d| d.index));
    let (src_path, dev_alias) = disk
        .map(|d| {
            let src = d.source.map(|p| p.to_string_lossy().into_owned());
            (src.unwrap_or_default(), d.alias)
        })
        .unwrap_or_default();
    let ev = EventKind::IoError {
        src_path,
        dev_alias,
        action: io_error_action(d.action.as_deref()),
        reason: io_error_reason(d.nospace).to_owned(),
    };
    (key, ev)
}

/// The event a WATCHDOG raises.
pub(crate) fn watchdog_event(d: &WatchdogData) -> EventKind {
    EventKind::Watchdog {
        action: watchdog_action(d.action.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_actions_map_to_libvirt() {
        assert_eq!(io_error_action(Some("ignore")), 0);
        assert_eq!(io_error_action(Some("stop")), 1);
        assert_eq!(io_error_action(Some("report")), 2);
        assert_eq!(io_error_action(Some("enospc")), 0);
        assert_eq!(io_error_action(Some("")), 0);
        assert_eq!(io_error_action(None), 0);
    }

    #[test]
    fn io_error_reason_is_enospc_or_empty() {
        assert_eq!(io_error_reason(Some(true)), "enospc");
        assert_eq!(io_error_reason(Some(false)), "");
        assert_eq!(io_error_reason(None), "");
    }

    #[test]
    fn watchdog_actions_map_to_libvirt() {
        let cases = [
            ("none", 0),
            ("pause", 1),
            ("reset", 2),
            ("poweroff", 3),
            ("shutdown", 4),
            ("debug", 5),
            ("inject-nmi", 6),
            ("self-destruct", 0),
        ];
        for (qmp, want) in cases {
            assert_eq!(watchdog_action(Some(qmp)), want, "{qmp}");
        }
        assert_eq!(watchdog_action(None), 0);
    }

    fn def() -> Def {
        Def::parse(
            "<domain type='qemu'><name>d</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>\
             <os><type arch='x86_64' machine='q35'>hvm</type></os><devices>\
             <disk type='file' device='disk'><source file='/a.img'/><target dev='vda' bus='virtio'/></disk>\
             <disk type='file' device='disk'><source file='/b.img'/><target dev='vdb' bus='virtio'/></disk>\
             </devices></domain>",
        )
        .expect("valid XML")
    }

    fn data(node: &str, action: &str, nospace: Option<bool>) -> BlockIoErrorData {
        serde_json::from_value(serde_json::json!({
            "device": "", "node-name": node, "operation": "write",
            "action": action, "nospace": nospace, "reason": "No space left on device",
        }))
        .expect("BLOCK_IO_ERROR data")
    }

    fn io(src: &str, alias: &str, action: i32, reason: &str) -> EventKind {
        EventKind::IoError {
            src_path: src.into(),
            dev_alias: alias.into(),
            action,
            reason: reason.into(),
        }
    }

    #[test]
    fn io_error_event_names_the_disk_and_keys_it() {
        let d = def();
        let got = io_error_event(Some(&d), &[], &data("libvirt-2-format", "stop", Some(true)));
        let want = io("/b.img", "virtio-disk1", 1, "enospc");
        assert_eq!(got, (Key::IoError(Some(1)), want));

        let got = io_error_event(Some(&d), &[], &data("libvirt-1-storage", "report", None));
        assert_eq!(
            got,
            (Key::IoError(Some(0)), io("/a.img", "virtio-disk0", 2, ""))
        );
    }

    #[test]
    fn io_error_on_a_pivoted_node_finds_its_disk() {
        let mut d = def();
        d = d.with_disk_source("vdb", std::path::Path::new("/copy.qcow2"), true);
        let pivoted = [("fv9-format".to_owned(), "vdb".to_owned())];
        let got = io_error_event(Some(&d), &pivoted, &data("fv9-format", "ignore", None));
        assert_eq!(
            got,
            (
                Key::IoError(Some(1)),
                io("/copy.qcow2", "virtio-disk1", 0, "")
            )
        );
    }

    #[test]
    fn io_error_on_an_unknown_node_is_reported_without_a_disk() {
        let d = def();
        for (live, node) in [(Some(&d), "whatever"), (None, "libvirt-1-format")] {
            let got = io_error_event(live, &[], &data(node, "report", Some(false)));
            assert_eq!(got, (Key::IoError(None), io("", "", 2, "")));
        }
    }

    #[test]
    fn watchdog_event_carries_the_action() {
        let d: WatchdogData =
            serde_json::from_value(serde_json::json!({"action": "inject-nmi"})).expect("data");
        assert_eq!(watchdog_event(&d), EventKind::Watchdog { action: 6 });
        let d: WatchdogData = serde_json::from_value(serde_json::json!({})).expect("data");
        assert_eq!(watchdog_event(&d), EventKind::Watchdog { action: 0 });
    }
}
