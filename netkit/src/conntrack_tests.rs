//! Unit tests of [`super`]: flow matching and parsing a dumped entry.

use super::*;

fn t(src: &str, dst: &str, sport: u16, dport: u16) -> Tuple4 {
    Tuple4 {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        sport,
        dport,
    }
}

#[test]
fn matches_protocol_port_and_optional_address() {
    let f = Flow::new(
        UDP,
        t("192.0.2.9", "10.0.0.1", 4000, 5353),
        t("10.244.1.5", "192.0.2.9", 53, 4000),
    );
    let m = |proto, dport, dst: Option<&str>| FlowMatch {
        proto,
        dport,
        dst: dst.map(|d| d.parse().unwrap()),
        nat_to: None,
    };
    assert!(m(UDP, 5353, None).matches(&f));
    assert!(m(UDP, 5353, Some("10.0.0.1")).matches(&f));
    assert!(!m(UDP, 5353, Some("10.0.0.2")).matches(&f));
    assert!(!m(TCP, 5353, None).matches(&f));
    assert!(
        !m(UDP, 53, None).matches(&f),
        "reply port is not the hostPort"
    );
    let to = |a: &str| FlowMatch {
        nat_to: Some(a.parse().unwrap()),
        ..m(UDP, 5353, None)
    };
    assert!(to("10.244.1.5").matches(&f), "DNATed to that pod");
    assert!(!to("10.244.1.6").matches(&f), "another pod's flow");
}

#[test]
fn a_dumped_entry_round_trips_through_the_crate() {
    let f = Flow::new(
        UDP,
        t("2001:db8::9", "2001:db8::1", 4000, 5353),
        t("fd00::5", "2001:db8::9", 53, 4000),
    );
    let mut attrs = vec![
        ConntrackAttribute::CtaTupleOrig(tuple(f.proto, &f.orig)),
        ConntrackAttribute::CtaTupleReply(tuple(f.proto, &f.reply)),
        ConntrackAttribute::Other(DefaultNla::new(CTA_ID, 7u32.to_be_bytes().to_vec())),
        ConntrackAttribute::Other(DefaultNla::new(CTA_ZONE, 3u16.to_be_bytes().to_vec())),
    ];
    let got = parse_flow(&attrs).unwrap();
    assert_eq!(
        (got.orig, got.reply, got.zone, got.id),
        (f.orig, f.reply, 3, Some(7))
    );
    assert!(got.is_v6());
    attrs.remove(1);
    assert_eq!(parse_flow(&attrs), None, "no reply tuple");
}
