use super::*;

fn emit(attrs: &[Attr]) -> Vec<u8> {
    let mut buf = vec![0; attrs.buffer_len()];
    attrs.emit(&mut buf);
    buf
}

/// A bitset as the kernel sends a plain list (`NOMASK`, set bits only).
fn list(kind: u16, names: &[&str]) -> Attr {
    let bits = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Attr::Nest(
                ETHTOOL_A_BITSET_BITS_BIT,
                vec![
                    Attr::U32(1, i as u32),
                    Attr::Str(ETHTOOL_A_BITSET_BIT_NAME, n.to_string()),
                ],
            )
        })
        .collect();
    Attr::Nest(
        kind,
        vec![
            Attr::Flag(ETHTOOL_A_BITSET_NOMASK),
            Attr::U32(2, 64),
            Attr::Nest(ETHTOOL_A_BITSET_BITS, bits),
        ],
    )
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn features(hw: &[&str], wanted: &[&str], active: &[&str]) -> Features {
    Features {
        dev: "flannel.1".into(),
        hw: set(hw),
        wanted: set(wanted),
        active: set(active),
    }
}

const GENERIC: &str = "tx-checksum-ip-generic";
const SCTP: &str = "tx-checksum-sctp";

#[test]
fn a_features_reply_decodes_by_name() {
    let reply = emit(&[
        Attr::Nest(
            ETHTOOL_A_FEATURES_HEADER,
            vec![
                Attr::U32(ETHTOOL_A_HEADER_DEV_INDEX, 5),
                Attr::Str(ETHTOOL_A_HEADER_DEV_NAME, "flannel.1".into()),
            ],
        ),
        list(ETHTOOL_A_FEATURES_HW, &[GENERIC, "tx-scatter-gather"]),
        list(ETHTOOL_A_FEATURES_WANTED, &[GENERIC]),
        list(ETHTOOL_A_FEATURES_ACTIVE, &[GENERIC, "tx-tcp-segmentation"]),
        list(5, &["tx-lockless"]),
    ]);
    let f = parse_features(&reply, "test").unwrap();
    assert_eq!(f, {
        let mut want = features(
            &[GENERIC, "tx-scatter-gather"],
            &[GENERIC],
            &[GENERIC, "tx-tcp-segmentation"],
        );
        want.dev = "flannel.1".into();
        want
    });
    assert_eq!(f.tx_state(), Some(true));
}

#[test]
fn a_masked_bitset_counts_only_bits_with_a_value() {
    let req = emit(&[bitset_by_name(
        ETHTOOL_A_FEATURES_WANTED,
        &[GENERIC.to_string(), SCTP.to_string()],
        true,
    )]);
    let top = attrs(&req, "test").unwrap();
    assert_eq!(top[0].0, ETHTOOL_A_FEATURES_WANTED);
    assert_eq!(
        parse_bitset(top[0].1, "test").unwrap(),
        set(&[GENERIC, SCTP])
    );

    let off = emit(&[bitset_by_name(3, &[GENERIC.to_string()], false)]);
    let top = attrs(&off, "test").unwrap();
    assert!(parse_bitset(top[0].1, "test").unwrap().is_empty());
}

#[test]
fn a_compact_bitset_is_refused() {
    let compact = emit(&[Attr::U32(2, 64), Attr::U32(4, 1)]);
    let err = parse_bitset(&compact, "read x").unwrap_err().to_string();
    assert!(err.contains("compact"), "{err}");
}

#[test]
fn off_asks_for_the_changeable_features_that_are_on() {
    // A veth: ip-generic and sctp changeable and on.
    let veth = features(&[GENERIC, SCTP], &[GENERIC, SCTP], &[GENERIC, SCTP]);
    assert_eq!(veth.tx_plan(false).unwrap(), vec![GENERIC, SCTP]);
    assert_eq!(veth.tx_plan(true).unwrap(), Vec::<String>::new());
    // Wanted on but held off by the kernel: still asked, so it stays off.
    let held = features(&[GENERIC], &[GENERIC], &[]);
    assert_eq!(held.tx_state(), Some(false));
    assert_eq!(held.tx_plan(false).unwrap(), vec![GENERIC]);
    assert_eq!(held.tx_plan(true).unwrap(), vec![GENERIC]);
}

#[test]
fn a_fixed_feature_is_refused_before_anything_changes() {
    // lo: ip-generic and sctp on, neither changeable.
    let lo = features(&["tx-scatter-gather"], &[], &[GENERIC, SCTP]);
    let err = lo.tx_plan(false).unwrap_err();
    assert!(err.contains(GENERIC) && err.contains(SCTP), "{err}");
    assert!(err.contains("fixed on"), "{err}");
    assert_eq!(
        lo.tx_plan(true).unwrap(),
        Vec::<String>::new(),
        "already on"
    );
    // Changeable generic, fixed-on sctp: off is still refused whole.
    let mixed = features(&[GENERIC], &[GENERIC], &[GENERIC, SCTP]);
    assert!(mixed.tx_plan(false).unwrap_err().contains(SCTP));
}

#[test]
fn a_device_without_tx_checksum_features() {
    let none = features(&["tx-scatter-gather"], &[], &["tx-scatter-gather"]);
    assert_eq!(none.tx_state(), None);
    assert_eq!(none.tx_plan(false).unwrap(), Vec::<String>::new());
    assert!(none.tx_plan(true).unwrap_err().contains("no tx checksum"));
}

#[test]
fn the_result_is_checked_against_what_was_asked() {
    let on = features(&[GENERIC], &[GENERIC], &[GENERIC]);
    let off = features(&[GENERIC], &[], &[]);
    assert!(on.check_tx(true).is_ok());
    assert!(off.check_tx(false).is_ok());
    assert!(on.check_tx(false).unwrap_err().contains(GENERIC));
    assert!(off.check_tx(true).unwrap_err().contains(GENERIC));
    assert_ne!(on.tx_snapshot(), off.tx_snapshot());
}
