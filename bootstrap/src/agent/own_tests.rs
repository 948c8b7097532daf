//! The renewal schedule of this node's lease: always a margin before
//! expiry, and spread so that nodes started together (a cluster's first
//! boot, a rack powered on) do not renew in the same second (issue 20).
//! Deterministic: the nodes' seeds are made from fixed clocks and PIDs.

use std::collections::BTreeMap;
use std::time::Duration;

use super::own::renew_after;
use super::wake::Rng;
use crate::lease::seed_from;

fn mins(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

#[test]
fn renewal_comes_a_margin_before_expiry_less_up_to_half_the_margin() {
    let (ttl, margin) = (mins(24 * 60), mins(60));
    assert_eq!(renew_after(ttl, margin, |_| Duration::ZERO), mins(23 * 60));
    // The draw is asked for half the margin, and cannot take more.
    let mut asked = None;
    let d = renew_after(ttl, margin, |d| {
        asked = Some(d);
        d * 3
    });
    assert_eq!(asked, Some(mins(30)));
    assert_eq!(d, mins(22 * 60 + 30));
    // A margin not shorter than the TTL: half the TTL.
    assert_eq!(
        renew_after(mins(60), mins(120), |_| Duration::ZERO),
        mins(30)
    );
    assert_eq!(renew_after(mins(60), mins(60), |d| d), mins(15));
    // A margin longer than half the TTL: the spread is half of what is
    // left before the margin, so a renewal never comes at once.
    let s = Duration::from_secs;
    let mut asked = None;
    let d = renew_after(s(20), s(14), |d| {
        asked = Some(d);
        d
    });
    assert_eq!((asked, d), (Some(s(3)), s(3)));
    for m in 1..40 {
        let before = if m < 20 { s(20 - m) } else { s(10) };
        let d = renew_after(s(20), s(m), |d| d);
        assert!(
            d > Duration::ZERO && d * 2 >= before,
            "margin {m} s: renewal {d:?} after the grant"
        );
    }
}

#[test]
fn five_thousand_nodes_started_together_renew_spread_over_half_the_margin() {
    // Booted in the same second, every agent under the same PID: only the
    // clock's nanoseconds make their seeds differ.
    let (ttl, margin) = (mins(24 * 60), mins(60));
    let t0: u64 = 1_780_000_000_000_000_000;
    let mut per_second: BTreeMap<u64, u32> = BTreeMap::new();
    for i in 0..5000u64 {
        let mut rng = Rng::new(seed_from(t0 + i * 200_000, 812));
        let d = renew_after(ttl, margin, |d| rng.below(d));
        assert!(
            d <= mins(23 * 60) && d > mins(22 * 60 + 30),
            "node {i} renews {d:?} after the grant"
        );
        *per_second.entry(d.as_secs()).or_default() += 1;
    }
    // 5000 renewals over the 1800 seconds of half the margin: 2.8 a
    // second on average, 11 in the busiest second with these seeds. Without
    // the random part all 5000 would share one second; with the same draw
    // on every node, too.
    let busiest = per_second.values().copied().max().unwrap();
    assert!(busiest <= 16, "{busiest} nodes renew in the same second");
    let first = *per_second.keys().next().unwrap();
    let last = *per_second.keys().next_back().unwrap();
    assert!(
        last - first >= 1790,
        "renewals only spread over {} s",
        last - first
    );
    assert!(
        per_second.len() >= 1500,
        "renewals fall in {} distinct seconds",
        per_second.len()
    );
}

#[test]
fn the_spread_does_not_close_up_over_renewals() {
    // Each renewal is drawn afresh from the moment of the last one: after
    // 30 TTLs the nodes are still spread, not back in step.
    let (ttl, margin) = (mins(24 * 60), mins(60));
    let t0: u64 = 1_780_000_000_000_000_000;
    let mut at: Vec<Duration> = Vec::new();
    for i in 0..5000u64 {
        let mut rng = Rng::new(seed_from(t0 + i * 200_000, 812));
        let mut t = Duration::ZERO;
        for _ in 0..30 {
            t += renew_after(ttl, margin, |d| rng.below(d));
        }
        at.push(t);
    }
    let mut per_second: BTreeMap<u64, u32> = BTreeMap::new();
    for t in &at {
        *per_second.entry(t.as_secs()).or_default() += 1;
    }
    let busiest = per_second.values().copied().max().unwrap();
    assert!(busiest <= 16, "{busiest} nodes renew in the same second");
}
