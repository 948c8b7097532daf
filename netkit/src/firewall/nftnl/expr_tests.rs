//! Unit tests of [`super`]: encodings checked against `nft --debug=mnl`,
//! and summaries of encoded and dumped expressions agreeing.

use super::super::attrs::tests::tree;
use super::*;

#[test]
fn masq_has_empty_data_nest_and_bitwise_zero_prefix() {
    let mut a = Attrs::default();
    Expr::Masq.encode(&mut a);
    let t = tree(&a.buf);
    assert_eq!(t, "1 N len=20\n  1 len=9 6d61737100\n  2 N len=4\n");
    let mut a = Attrs::default();
    Expr::Bitwise {
        mask: vec![0; 4],
        xor: vec![0; 4],
    }
    .encode(&mut a);
    let t = tree(&a.buf);
    assert_eq!(
        t,
        "1 N len=68\n  1 len=12 6269747769736500\n  2 N len=52\n    \
         1 len=8 00000001\n    2 len=8 00000001\n    3 len=8 00000004\n    \
         4 N len=12\n      1 len=8 00000000\n    5 N len=12\n      1 len=8 00000000\n"
    );
}

/// `fib daddr type local jump hostports` and a map lookup, transcribed
/// from `nft --debug=mnl` 1.0.6.
#[test]
fn encodes_fib_jump_and_lookup_like_nft() {
    let mut a = Attrs::default();
    Expr::FibDaddrType.encode(&mut a);
    Expr::Jump("hostports".into()).encode(&mut a);
    Expr::Lookup {
        set: "m".into(),
        set_id: Some(1),
        dreg: Some(NFT_REG_1),
    }
    .encode(&mut a);
    assert_eq!(tree(&a.buf), include_str!("testdata/fib_jump_lookup.mnl"));
}

#[test]
fn summaries_of_encoded_and_dumped_expressions_agree() {
    let exprs = vec![
        Expr::Meta(NFT_META_NFPROTO),
        Expr::CmpEq(vec![2]),
        Expr::dport(NFT_REG_1),
        Expr::Lookup {
            set: "hostports_ip_tcp".into(),
            set_id: None,
            dreg: Some(NFT_REG_1),
        },
        Expr::Dnat {
            family: 2,
            proto_reg: NFT_REG32_01,
            flags: false,
        },
        Expr::FibDaddrType,
        Expr::Jump("hostports".into()),
        Expr::Masq,
    ];
    let mut a = Attrs::default();
    for e in &exprs {
        e.encode(&mut a);
    }
    let want: Vec<String> = exprs.iter().map(Expr::summary).collect();
    assert_eq!(summarize(&a.buf), want);
    assert_eq!(
        want[..5],
        [
            "meta(15)",
            "cmp(02)",
            "payload(2,2,2)",
            "lookup(hostports_ip_tcp)",
            "dnat(2)"
        ]
    );
}
