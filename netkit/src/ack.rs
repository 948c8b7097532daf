//! Decoding the extras of a netlink error ACK.
//!
//! With `NETLINK_EXT_ACK` on, the kernel appends TLVs after the echoed
//! request header (`NLM_F_ACK_TLVS`); `NLMSGERR_ATTR_MSG` carries a human
//! explanation such as "Unknown device type" or "Nexthop has invalid
//! gateway", far more useful than the bare errno. With `NETLINK_CAP_ACK`
//! (`NLM_F_CAPPED`) only the 16-byte header of the request is echoed;
//! otherwise the whole request is, and its length is in that header.

use netlink_packet_core::{NLM_F_ACK_TLVS, NLM_F_CAPPED};

const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;

/// Error context: the request's own words, the socket's namespace, and the
/// kernel's extended-ACK message when it sent one.
pub(crate) fn context(ctx: &str, label: &str, flags: u16, payload: &[u8]) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !ctx.is_empty() {
        parts.push(ctx.to_string());
    }
    if !label.is_empty() {
        parts.push(format!("socket in {label}"));
    }
    if let Some(msg) = ext_ack_message(flags, payload) {
        parts.push(format!("kernel: {msg}"));
    }
    parts.join("; ")
}

/// The `NLMSGERR_ATTR_MSG` string of an error payload (bytes after the
/// errno), if any.
pub(crate) fn ext_ack_message(flags: u16, payload: &[u8]) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 || payload.len() < NLMSG_HDRLEN {
        return None;
    }
    let echoed = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes(payload[..4].try_into().ok()?) as usize
    };
    let mut tlvs = payload.get(align4(echoed)..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let end = text.iter().position(|b| *b == 0).unwrap_or(text.len());
            let s = String::from_utf8_lossy(&text[..end]).trim().to_string();
            return (!s.is_empty()).then_some(s);
        }
        tlvs = tlvs.get(align4(len)..)?;
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_message_after_capped_header() {
        let mut p = vec![0u8; 16];
        let msg = b"Unknown device type\0";
        let len = (4 + msg.len()) as u16;
        p.extend_from_slice(&len.to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(msg);
        let flags = NLM_F_ACK_TLVS | NLM_F_CAPPED;
        assert_eq!(
            ext_ack_message(flags, &p).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &p), None);
        assert_eq!(ext_ack_message(flags, &p[..10]), None);
        assert_eq!(
            context("peer x", "", flags, &p),
            "peer x; kernel: Unknown device type"
        );
    }
}
