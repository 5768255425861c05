//! Raw codec throughput: decode + parse + classify, no socket. In its own
//! test binary so its test data does not pollute the flood test's RSS.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::event_line;
use serde_json::json;

/// Raw codec throughput: decode + parse + classify, no socket.
#[test]
fn codec_throughput() {
    use qmp::codec::{LineDecoder, parse_message};
    const N: usize = 200_000;
    let mut data = Vec::with_capacity(N * 120);
    for i in 0..N {
        data.extend_from_slice(
            event_line(
                "JOB_STATUS_CHANGE",
                &json!({"id": format!("job{}", i % 50), "status": "running"}),
            )
            .as_bytes(),
        );
        data.extend_from_slice(b"\r\n");
    }
    let t = std::time::Instant::now();
    let mut dec = LineDecoder::new(10 * 1024 * 1024);
    let mut rest = &data[..];
    let mut n = 0;
    loop {
        while let Some(line) = dec.next_line().expect("decode") {
            if parse_message(line).expect("parse").is_some() {
                n += 1;
            }
        }
        if rest.is_empty() {
            break;
        }
        let k = dec.feed(&rest[..rest.len().min(64 * 1024)]);
        rest = &rest[k..];
    }
    let el = t.elapsed();
    assert_eq!(n, N);
    println!(
        "codec: {} events ({} MiB) in {:.2?} = {:.0} events/s",
        N,
        data.len() / (1024 * 1024),
        el,
        N as f64 / el.as_secs_f64()
    );
}
