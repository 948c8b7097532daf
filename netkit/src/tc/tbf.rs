//! The token bucket filter qdisc (`tc qdisc add ... root tbf`) and the
//! arithmetic that turns a CNI bandwidth entry into its parameters.
//!
//! The arithmetic is the reference bandwidth plugin's
//! (containernetworking/plugins `plugins/meta/bandwidth/ifb_creator.go`,
//! `createTBF`, unchanged from v1.1.1 to today), so that a node shaped by
//! either gets the same kernel state:
//! - rate and burst arrive in bits (per second); the kernel wants bytes;
//! - `buffer` is the time the burst lasts at the rate, in scheduler ticks
//!   (`/proc/net/psched`, iproute2's `tc_core_init`);
//! - `limit` is what 25 ms of rate queue on top of the burst.
//!
//! Two deliberate differences, both where the reference misbehaves:
//! - Go's `uint32(float64)` wraps on overflow (containerd sends a burst of
//!   2^32-1 bits for an annotation, whose buffer overflows below ~15
//!   Mbit/s); here it saturates, which is also what the kernel does with
//!   any buffer beyond 2^32 ns (`tbf_change` clamps it);
//! - a burst below the device MTU makes tbf drop every full-sized packet
//!   (the kernel warns "burst ... is lower than device ... mtu"); it is
//!   raised to the MTU.

use netlink_packet_core::DefaultNla;
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage, TcOption};
use netlink_packet_route::RouteNetlinkMessage;

use super::handle::TrafficHandle;
use crate::error::Result;
use crate::socket::{Request, CREATE_EXCL};

// linux/pkt_sched.h
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
/// `TC_LINKLAYER_ETHERNET`, what `tc` puts in a rate spec.
const LINKLAYER_ETHERNET: u8 = 1;
/// `struct tc_tbf_qopt`: two 12-byte `tc_ratespec`, limit, buffer, mtu.
const QOPT_LEN: usize = 36;

/// The reference plugin's queueing latency (`latencyInMillis`).
pub const LATENCY_MS: u64 = 25;
const USEC_PER_SEC: f64 = 1_000_000.0;

/// A tbf's parameters in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TbfParams {
    /// Bytes per second.
    pub rate: u64,
    /// Bucket size as time at `rate`, in scheduler ticks.
    pub buffer: u32,
    /// Bytes that may wait in the queue.
    pub limit: u32,
}

impl TbfParams {
    /// The parameters for `rate_bits` bits/s and a `burst_bits` bucket on
    /// a device of `mtu` bytes (see the module comment).
    pub fn from_bits(rate_bits: u64, burst_bits: u64, mtu: u32, tick_in_usec: f64) -> TbfParams {
        let rate = (rate_bits / 8).max(1);
        let burst = u32::try_from(burst_bits / 8).unwrap_or(u32::MAX).max(mtu);
        let usec = (f64::from(burst) * USEC_PER_SEC / rate as f64).min(f64::from(u32::MAX));
        // `as` saturates (and truncates like Go's conversion in range).
        let buffer = ((usec as u32) as f64 * tick_in_usec) as u32;
        let queued = (rate as f64 * (LATENCY_MS as f64 * 1000.0) / USEC_PER_SEC) as u32;
        TbfParams {
            rate,
            buffer,
            limit: queued.saturating_add(burst),
        }
    }

    fn qopt(&self) -> Vec<u8> {
        let mut b = vec![0u8; QOPT_LEN];
        b[1] = LINKLAYER_ETHERNET;
        let rate32 = u32::try_from(self.rate).unwrap_or(u32::MAX);
        b[8..12].copy_from_slice(&rate32.to_ne_bytes());
        b[24..28].copy_from_slice(&self.limit.to_ne_bytes());
        b[28..32].copy_from_slice(&self.buffer.to_ne_bytes());
        b
    }
}

/// Scheduler ticks per microsecond, as iproute2 (`tc_core_init`) and the
/// reference plugin's netlink library compute it from `/proc/net/psched`
/// (one clock for the whole kernel, not per namespace). Modern kernels
/// say 15.625 (64 ns ticks), the fallback.
pub fn tick_in_usec() -> f64 {
    std::fs::read_to_string("/proc/net/psched")
        .ok()
        .and_then(|s| parse_psched(&s))
        .unwrap_or(15.625)
}

fn parse_psched(s: &str) -> Option<f64> {
    let v: Vec<u64> = s
        .split_whitespace()
        .take(3)
        .map(|w| u64::from_str_radix(w, 16).ok())
        .collect::<Option<_>>()?;
    let (mut t2us, us2t, clock_res) = (*v.first()?, *v.get(1)?, *v.get(2)?);
    if us2t == 0 || clock_res == 0 {
        return None;
    }
    if clock_res == 1_000_000_000 {
        t2us = us2t;
    }
    Some(t2us as f64 / us2t as f64 * (clock_res as f64 / USEC_PER_SEC))
}

/// The parameters in a dumped tbf's `TCA_OPTIONS` (kind, value) pairs.
pub(crate) fn parse(attrs: impl Iterator<Item = (u16, Vec<u8>)>) -> Option<TbfParams> {
    let mut out: Option<TbfParams> = None;
    let mut rate64 = None;
    for (kind, v) in attrs {
        let word = |at: usize| -> Option<u32> {
            Some(u32::from_ne_bytes(v.get(at..at + 4)?.try_into().ok()?))
        };
        match kind {
            TCA_TBF_PARMS => {
                out = Some(TbfParams {
                    rate: u64::from(word(8)?),
                    limit: word(24)?,
                    buffer: word(28)?,
                })
            }
            TCA_TBF_RATE64 => rate64 = v.get(..8).and_then(|b| b.try_into().ok()),
            _ => {}
        }
    }
    let mut p = out?;
    if let Some(r) = rate64 {
        p.rate = u64::from_ne_bytes(r);
    }
    Some(p)
}

impl TrafficHandle<'_> {
    /// `tc qdisc add dev IDX root handle 1: tbf rate R burst B limit L`
    /// (burst given as buffer time, as the reference plugin sends it).
    pub fn add_tbf(&mut self, index: u32, p: &TbfParams) -> Result<()> {
        let mut msg = TcMessage::with_index(i32::try_from(index).unwrap_or_default());
        msg.header.handle = TcHandle { major: 1, minor: 0 };
        msg.header.parent = TcHandle::ROOT;
        let mut opts = vec![TcOption::Other(DefaultNla::new(TCA_TBF_PARMS, p.qopt()))];
        if p.rate > u64::from(u32::MAX) {
            opts.push(TcOption::Other(DefaultNla::new(
                TCA_TBF_RATE64,
                p.rate.to_ne_bytes().to_vec(),
            )));
        }
        msg.attributes.push(TcAttribute::Kind("tbf".into()));
        msg.attributes.push(TcAttribute::Options(opts));
        let req = Request::new(
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            CREATE_EXCL,
            format!("add tbf qdisc (rate {} B/s) to link #{index}", p.rate),
        );
        self.0.exec(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psched_of_a_modern_kernel_gives_64ns_ticks() {
        assert_eq!(
            parse_psched("000003e8 00000040 000f4240 3b9aca00\n"),
            Some(15.625)
        );
        assert_eq!(parse_psched("garbage"), None);
    }

    #[test]
    fn matches_the_reference_arithmetic() {
        // 8 Mbit/s, 80 kbit burst: 1e6 B/s, 10000 B = 10 ms = 156250 ticks;
        // limit = 25 ms of rate (25000 B) + burst.
        let p = TbfParams::from_bits(8_000_000, 80_000, 1500, 15.625);
        assert_eq!(
            p,
            TbfParams {
                rate: 1_000_000,
                buffer: 156_250,
                limit: 35_000
            }
        );
    }

    #[test]
    fn containerd_burst_saturates_instead_of_wrapping() {
        // containerd: burst = 2^32-1 bits for a 10 Mbit/s annotation.
        let p = TbfParams::from_bits(10_000_000, u64::from(u32::MAX), 1500, 15.625);
        assert_eq!(p.buffer, u32::MAX);
        assert_eq!(p.limit, 31_250 + 536_870_911);
    }

    #[test]
    fn burst_below_mtu_is_raised_to_it() {
        let p = TbfParams::from_bits(8_000_000, 800, 1500, 15.625);
        assert_eq!(p.limit, 25_000 + 1500);
        assert_eq!(p.buffer, (1500.0 * 15.625) as u32);
    }

    #[test]
    fn qopt_round_trips() {
        let p = TbfParams {
            rate: 123_456,
            buffer: 777,
            limit: 999,
        };
        assert_eq!(parse([(TCA_TBF_PARMS, p.qopt())].into_iter()), Some(p));
    }
}
