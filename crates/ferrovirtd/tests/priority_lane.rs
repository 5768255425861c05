//! A client whose in-flight slots are all taken by calls stuck on a job
//! (here: on a qemu-sim whose monitor hangs) can still look the domain up
//! and destroy it on the same connection: those procedures never queue.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant};

use common::{
    Daemon, call_frame, define_and_start, read_frame, rpc_open, sim_control, sim_domain_xml,
};
use rpc::header::{Header, MessageStatus};
use rpc::protocol::remote::{
    self, DomainArgs, DomainFlagsArgs, DomainGetStateRet, DomainLookupByNameArgs, DomainRet,
    NonnullDomain, procedure as p,
};
use rpc::xdr;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// The harness's monitor deadline (`monitor_timeout_secs = 5`): a call
/// stuck on the hung monitor cannot answer sooner.
const MONITOR_DEADLINE: Duration = Duration::from_secs(5);

async fn send(s: &mut UnixStream, proc_: i32, serial: u32, body: &[u8]) {
    s.write_all(&call_frame(proc_, serial, body))
        .await
        .expect("write call");
}

async fn reply(s: &mut UnixStream) -> (Header, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(30), read_frame(s))
        .await
        .expect("a reply within 30 s")
        .expect("read")
        .expect("a reply before EOF")
}

fn ok<T: xdr::Xdr>(h: &Header, body: &[u8]) -> T {
    assert_eq!(
        h.message_status(),
        Some(MessageStatus::Ok),
        "call {} failed: {:?}",
        h.serial,
        xdr::from_bytes::<remote::RemoteError>(body)
    );
    xdr::from_bytes(body).expect("decode reply")
}

#[test]
fn destroy_and_lookups_answer_while_the_clients_slots_wait_on_a_hung_monitor() {
    let d = Daemon::start_with("max_client_requests = 2\nmax_client_priority_requests = 2\n");
    let ctl = d.qemu_dir().join("hung.ctl");
    let xml = sim_domain_xml("hung", &["-sim-control", ctl.to_str().expect("utf8")]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dom: NonnullDomain = rt.block_on(async {
        let c = rpc_open(&d.sock()).await;
        define_and_start(&c, &xml).await
    });
    assert_eq!(sim_control(&ctl, "hang on"), "ok");

    rt.block_on(async {
        let mut s = UnixStream::connect(d.sock()).await.expect("connect");
        let dom_args = xdr::to_bytes(&DomainArgs { dom: dom.clone() });
        let flags_args = xdr::to_bytes(&DomainFlagsArgs {
            dom: dom.clone(),
            flags: 0,
        });
        // Both normal slots: suspend takes the job and waits for QEMU,
        // reset waits for the job.
        let stuck_since = Instant::now();
        send(&mut s, p::DOMAIN_SUSPEND, 1, &dom_args).await;
        send(&mut s, p::DOMAIN_RESET, 2, &flags_args).await;

        // Queries and lookups on the same connection answer first.
        send(&mut s, p::DOMAIN_GET_STATE, 3, &flags_args).await;
        let (h, body) = reply(&mut s).await;
        assert_eq!(
            h.serial, 3,
            "the state query answers before the stuck calls"
        );
        let st: DomainGetStateRet = ok(&h, &body);
        assert_eq!(st.state, 1, "still running");
        let name = xdr::to_bytes(&DomainLookupByNameArgs {
            name: "hung".into(),
        });
        send(&mut s, p::DOMAIN_LOOKUP_BY_NAME, 4, &name).await;
        let (h, body) = reply(&mut s).await;
        assert_eq!(h.serial, 4, "the lookup answers before the stuck calls");
        let found: DomainRet = ok(&h, &body);
        assert_eq!(found.dom.uuid, dom.uuid);
        assert!(
            stuck_since.elapsed() < MONITOR_DEADLINE,
            "the answers came only after {:?}, when a stuck call could have freed its slot",
            stuck_since.elapsed()
        );

        // Destroy on the same connection: read at once, not when the
        // monitor deadline frees a slot.
        let sent = Instant::now();
        send(&mut s, p::DOMAIN_DESTROY, 5, &dom_args).await;
        let mut pending = vec![1, 2, 5];
        let mut destroyed_at = None;
        while !pending.is_empty() {
            let (h, body) = reply(&mut s).await;
            pending.retain(|&x| x != h.serial);
            if h.serial == 5 {
                let () = ok(&h, &body);
                destroyed_at = Some(stuck_since.elapsed());
                println!("destroy answered {:?} after it was sent", sent.elapsed());
            } else {
                // The stuck calls fail (QEMU is gone), they do not hang.
                assert_eq!(h.message_status(), Some(MessageStatus::Error));
            }
        }
        // Without the lane destroy would have been read only once the
        // stuck suspend's 5 s monitor deadline freed a slot; with it,
        // destroy (kill, wait for exit, clean up) is done well before.
        let at = destroyed_at.expect("destroy replied");
        assert!(
            at < MONITOR_DEADLINE - Duration::from_secs(1),
            "destroy answered {at:?} after the calls got stuck"
        );
    });
    assert_eq!(
        d.virsh_ok(&["domstate", "--reason", "hung"]).trim(),
        "shut off (destroyed)"
    );
}
