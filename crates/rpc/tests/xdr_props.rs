//! Property tests: XDR round trips, and decoders that never panic on
//! arbitrary input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use bytes::BytesMut;
use proptest::prelude::*;
use rpc::frame::MessageCodec;
use rpc::protocol::remote::*;
use rpc::xdr::{Xdr, from_bytes, to_bytes};
use tokio_util::codec::Decoder as _;

fn domain() -> impl Strategy<Value = NonnullDomain> {
    ("[a-z0-9-]{0,40}", any::<[u8; 16]>(), any::<i32>())
        .prop_map(|(name, uuid, id)| NonnullDomain { name, uuid, id })
}

fn typed_param() -> impl Strategy<Value = TypedParam> {
    let value = prop_oneof![
        any::<i32>().prop_map(TypedParamValue::Int),
        any::<u32>().prop_map(TypedParamValue::UInt),
        any::<i64>().prop_map(TypedParamValue::LLong),
        any::<u64>().prop_map(TypedParamValue::ULLong),
        any::<i32>().prop_map(TypedParamValue::Boolean),
        // NaN != NaN; finite doubles round-trip bit for bit.
        (-1e300f64..1e300).prop_map(TypedParamValue::Double),
        ".{0,20}".prop_map(TypedParamValue::String),
    ];
    ("[a-z_]{1,20}", value).prop_map(|(field, value)| TypedParam { field, value })
}

fn round_trip<T: Xdr + PartialEq + std::fmt::Debug>(v: &T) {
    let b = to_bytes(v);
    assert_eq!(b.len() % 4, 0, "XDR output is 4-byte aligned");
    assert_eq!(&from_bytes::<T>(&b).unwrap(), v);
}

proptest! {
    #[test]
    fn primitives_round_trip(a: i32, b: u32, c: i64, d: u64, e: bool, s in ".{0,64}", o: Option<u32>, v: Vec<i32>) {
        round_trip(&a); round_trip(&b); round_trip(&c); round_trip(&d); round_trip(&e);
        round_trip(&s); round_trip(&o); round_trip(&v);
    }

    #[test]
    fn structs_round_trip(dom in domain(), params in proptest::collection::vec(typed_param(), 0..8),
                          msg in proptest::option::of(".{0,50}"), doms in proptest::collection::vec(domain(), 0..5)) {
        round_trip(&RemoteError {
            code: 1, domain: 2, message: msg.clone(), level: 2, dom: Some(dom.clone()),
            str1: msg, str2: None, str3: Some("x".into()), int1: 3, int2: -4, net: None,
        });
        round_trip(&DomainGetJobStatsRet { type_: 2, params });
        round_trip(&ConnectListAllDomainsRet { domains: doms, ret: 7 });
        round_trip(&DomainEventCallbackLifecycleMsg {
            callback_id: 1, msg: DomainEventLifecycleMsg { dom: dom.clone(), event: 5, detail: 1 },
        });
        round_trip(&ConnectDomainEventCallbackRegisterAnyArgs { event_id: 0, dom: Some(dom) });
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = from_bytes::<RemoteError>(&bytes);
        let _ = from_bytes::<ConnectListAllDomainsRet>(&bytes);
        let _ = from_bytes::<DomainGetJobStatsRet>(&bytes);
        let _ = from_bytes::<NodeGetInfoRet>(&bytes);
        let _ = from_bytes::<DomainGetInfoRet>(&bytes);
        let _ = from_bytes::<AuthListRet>(&bytes);
        let _ = from_bytes::<ConnectOpenArgs>(&bytes);
        let _ = from_bytes::<Vec<String>>(&bytes);
        let _ = from_bytes::<Option<Vec<u64>>>(&bytes);
    }

    #[test]
    fn frame_decoder_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8)) {
        let mut c = MessageCodec::new(4096);
        let mut buf = BytesMut::new();
        for ch in chunks {
            buf.extend_from_slice(&ch);
            loop {
                match c.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
            // Never buffers beyond what was received plus one frame limit.
            prop_assert!(buf.len() <= 4096 + 4 + 64 * 8);
        }
        let _ = c.decode_eof(&mut buf);
    }

    #[test]
    fn frame_round_trip(proc_: i32, serial: u32, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        use rpc::header::*;
        let h = Header::new(PROGRAM, VERSION, proc_, MessageType::Call, serial, MessageStatus::Ok);
        let f = rpc::frame::encode_frame(&h, &body, rpc::frame::MESSAGE_MAX).unwrap();
        let mut buf = BytesMut::from(&f[..]);
        let m = MessageCodec::default().decode(&mut buf).unwrap().unwrap();
        prop_assert_eq!(m.header, h);
        prop_assert_eq!(&m.body[..], &body[..]);
    }
}
