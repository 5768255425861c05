//! Lifecycle against real QEMU (KVM if usable, else TCG): define, start,
//! suspend, resume, destroy, undefine, with events in order.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::Duration;

use common::*;
use qemu::state::{detail, paused, running, shutoff};
use qemu::{DomainState, Driver, EventKind, LifecycleKind as L, ListFilter, StateReason};

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_qemu_lifecycle_with_ordered_events() {
    let reaper = Reaper::default();
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let mut sub = drv.subscribe();
    let uuid = reaper.new_uuid();
    let dom = drv.define_xml(&real_xml("real1", &uuid)).await.unwrap();
    assert!(root.path().join("etc/qemu/real1.xml").exists());
    assert_eq!(drv.state(&dom), StateReason::shutoff(shutoff::UNKNOWN));

    drv.start(&dom, false).await.unwrap();
    assert_eq!(
        drv.state(&dom),
        StateReason::new(DomainState::Running, running::BOOTED)
    );
    let id = dom.id().expect("id while running");
    assert!(std::sync::Arc::ptr_eq(&drv.lookup_by_id(id).unwrap(), &dom));
    assert_eq!(drv.list(ListFilter::Active).len(), 1);
    let info = drv.info(&dom);
    assert_eq!(info.max_mem_kib, 64 * 1024);
    assert_eq!(info.nr_virt_cpu, 1);

    drv.suspend(&dom).await.unwrap();
    assert_eq!(
        drv.state(&dom),
        StateReason::new(DomainState::Paused, paused::USER)
    );
    drv.resume(&dom).await.unwrap();
    assert_eq!(
        drv.state(&dom),
        StateReason::new(DomainState::Running, running::UNPAUSED)
    );
    // Starting an active domain is refused with OperationInvalid.
    let e = drv.start(&dom, false).await.unwrap_err();
    assert_eq!(virterror::ToVirError::to_vir_error(&e).code.as_i32(), 55);

    let t0 = std::time::Instant::now();
    drv.destroy(&dom, false).await.unwrap();
    println!("destroy of a live real QEMU took {:?}", t0.elapsed());
    assert_eq!(drv.state(&dom), StateReason::shutoff(shutoff::DESTROYED));
    assert!(dom.id().is_none());
    assert!(drv.lookup_by_id(id).is_err());
    assert!(qemu::process::pids_with_arg(&uuid.to_string()).is_empty());
    assert!(!root.path().join(format!("run/qemu/{uuid}.json")).exists());

    drv.undefine(&dom).await.unwrap();
    let e = drv.lookup_by_name("real1").unwrap_err();
    assert_eq!(virterror::ToVirError::to_vir_error(&e).code.as_i32(), 42);

    let want = [
        lc(L::Defined, detail::DEFINED_ADDED),
        lc(L::Started, detail::STARTED_BOOTED),
        lc(L::Suspended, detail::SUSPENDED_PAUSED),
        lc(L::Resumed, detail::RESUMED_UNPAUSED),
        lc(L::Stopped, detail::STOPPED_DESTROYED),
        lc(L::Undefined, detail::UNDEFINED_REMOVED),
    ];
    for w in want {
        let ev = next_event_for(&mut sub, "real1", T).await;
        assert_eq!(ev.kind, w, "event order");
    }
    // Nothing duplicated (e.g. SUSPENDED from both the API and the STOP event).
    let extra = sub.try_recv().unwrap();
    assert!(extra.is_none(), "unexpected extra event {extra:?}");
    let _ = EventKind::Reboot;
}
