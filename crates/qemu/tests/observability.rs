//! What needs a human shows, and what does not stays quiet: a status file
//! that cannot be written is returned to the operation that caused it and
//! shown by `domcontrol` until a later write succeeds; a routine destroy
//! logs no warning.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use qemu::{ControlState, DomainState, Driver};
use virterror::ToVirError;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_status_file_is_returned_and_shown_until_written() {
    let reaper = Reaper::default();
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let uuid = reaper.new_uuid();
    let dom = drv.define_xml(&sim_xml("st1", &uuid, &[])).await.unwrap();
    drv.start(&dom, false).await.unwrap();
    let status = root.path().join(format!("run/qemu/{uuid}.json"));
    assert!(status.is_file());
    assert_eq!(drv.control_info(&dom).state, ControlState::Ok);

    // A directory where the status file goes: the atomic rename onto it
    // fails (EISDIR), for root too.
    std::fs::remove_file(&status).unwrap();
    std::fs::create_dir(&status).unwrap();
    let e = drv.suspend(&dom).await.unwrap_err();
    assert_eq!(e.to_vir_error().code.as_i32(), 38, "{e}");
    assert!(e.to_string().contains("status file"), "{e}");
    // The suspend itself happened; the failure to record it is shown.
    assert_eq!(drv.state(&dom).state, DomainState::Paused);
    let c = drv.control_info(&dom);
    assert_eq!((c.state, c.details), (ControlState::Error, 3), "{c:?}");

    std::fs::remove_dir(&status).unwrap();
    drv.resume(&dom).await.unwrap();
    assert_eq!(drv.control_info(&dom).state, ControlState::Ok);
    assert!(status.is_file());
    drv.destroy(&dom, false).await.unwrap();
}

/// Records every WARN and ERROR event, as "LEVEL message".
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let level = *e.metadata().level();
        if level <= tracing::Level::WARN {
            let mut m = Message(level.to_string());
            e.record(&mut m);
            self.0.lock().unwrap().push(m.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// With the real QEMU, which closes its monitor a moment before it exits.
/// A current-thread runtime, so the capturing subscriber (set for this
/// thread) sees the events of every task the driver spawns.
#[tokio::test]
async fn a_routine_destroy_logs_no_warning() {
    let warnings = Warnings::default();
    let _guard = tracing::subscriber::set_default(warnings.clone());
    let reaper = Reaper::default();
    let root = root();
    let drv = Driver::open(config(root.path())).await.unwrap();
    let uuid = reaper.new_uuid();
    let dom = drv.define_xml(&real_xml("quiet", &uuid)).await.unwrap();
    // Held by the test and the registry (by name, by uuid) when idle; the
    // run's event and action tasks hold more until they end.
    let idle = Arc::strong_count(&dom);
    for round in 0..5 {
        drv.start(&dom, false).await.unwrap();
        drv.destroy(&dom, round % 2 == 0).await.unwrap();
        assert!(
            testkit::wait::until_async(T, || Arc::strong_count(&dom) == idle).await,
            "the run's tasks did not end"
        );
    }
    let seen = warnings.0.lock().unwrap().clone();
    assert!(seen.is_empty(), "warnings for routine destroys: {seen:?}");
}
