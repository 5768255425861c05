//! The parser never panics: arbitrary strings, and mutations of every
//! golden input. Valid results must round-trip through the full (secure)
//! form, and the form without secrets must still be well-formed XML.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub,
    reason = "a test: a failed unwrap is a failed test"
)]

use domain::{DomainDef, XmlOptions};
use proptest::prelude::*;

fn golden_inputs() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let n = p.file_name()?.to_str()?.to_string();
            (n.ends_with(".xml") && !n.ends_with(".out.xml") && !n.ends_with(".live.xml"))
                .then(|| std::fs::read_to_string(&p).ok())?
        })
        .collect();
    v.sort();
    v
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn apply(s: &str, muts: &[Mutation]) -> String {
    let mut b: Vec<char> = s.chars().collect();
    for m in muts {
        let len = b.len().max(1);
        match m {
            Mutation::Delete(at, n) => {
                let at = at % len;
                let end = (at + n).min(b.len());
                if at < b.len() {
                    b.drain(at..end);
                }
            }
            Mutation::Insert(at, t) => {
                let at = (at % len).min(b.len());
                b.splice(at..at, t.chars());
            }
            Mutation::Replace(at, c) => {
                if !b.is_empty() {
                    let at = at % b.len();
                    b[at] = *c;
                }
            }
            Mutation::Duplicate(at, n) => {
                let at = at % len;
                let end = (at + n).min(b.len());
                if at < end {
                    let piece: Vec<char> = b[at..end].to_vec();
                    b.splice(end..end, piece);
                }
            }
        }
    }
    b.into_iter().collect()
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let tokens = prop::sample::select(vec![
        "<",
        ">",
        "/>",
        "'",
        "\"",
        "&",
        "&amp;",
        "<disk>",
        "</devices>",
        "unit='EiB'",
        "0",
        "-1",
        "99999999999999999999",
        "<![CDATA[x]]>",
        "<!--",
        "xmlns:q='x'",
        "é",
        "\u{0}",
        " ",
        "=",
        "<boot order='1'/>",
        "<target dev='vda'/>",
        "bus='sata'",
    ])
    .prop_map(str::to_string);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(a, n)| Mutation::Delete(a, n)),
        (any::<usize>(), tokens).prop_map(|(a, t)| Mutation::Insert(a, t)),
        (any::<usize>(), any::<char>()).prop_map(|(a, c)| Mutation::Replace(a, c)),
        (any::<usize>(), 1usize..200).prop_map(|(a, n)| Mutation::Duplicate(a, n)),
    ]
}

fn check_no_panic(xml: &str) {
    if let Ok(d) = DomainDef::parse(xml) {
        let public = d.to_xml(None);
        domain::xml::parse_document(&public)
            .unwrap_or_else(|e| panic!("the XML without secrets is malformed: {e}\n{public}"));
        let out = d.to_xml_with(XmlOptions {
            live: None,
            secure: true,
        });
        let again = DomainDef::parse(&out)
            .unwrap_or_else(|e| panic!("accepted input formats to invalid XML: {e}\n{out}"));
        assert_eq!(again, d, "round trip differs for\n{xml}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in ".*") {
        check_no_panic(&s);
    }

    #[test]
    fn xmlish_strings_never_panic(s in "[<>/a-z ='\"&;:!?-]{0,200}") {
        check_no_panic(&s);
    }

    #[test]
    fn mutated_goldens_never_panic(idx in any::<usize>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let inputs = golden_inputs();
        let base = &inputs[idx % inputs.len()];
        check_no_panic(&apply(base, &muts));
    }
}
