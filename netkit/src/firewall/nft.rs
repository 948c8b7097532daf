//! The small part of nftables netkit speaks: apply a script in one
//! transaction, list one table or chain as JSON, and render listed rules back
//! into the canonical text our scripts use, so "is this rule there?" is a
//! string comparison.

use serde_json::Value;

use super::exec;
use crate::error::{Error, Result};

/// `nft -f -`: the whole script is one netlink batch, which the kernel
/// commits atomically or not at all (nft(8), "-f": "the file is processed as
/// a single transaction").
pub(crate) fn apply(ctx: &str, script: &str) -> Result<()> {
    exec::run(ctx, "nft", &["-f", "-"], Some(script)).map(|_| ())
}

/// One rule as listed by `nft -j`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListedRule {
    pub family: String,
    pub chain: String,
    pub handle: u64,
    pub comment: Option<String>,
    /// Canonical text of the rule body (no comment), see [`render_expr`].
    pub text: String,
}

/// `nft -j list table FAMILY NAME` (or `list chain FAMILY TABLE CHAIN` when
/// `chain` is given), parsed. `Ok(None)` when the table/chain does not exist,
/// and also when `nft` is not installed: then nothing of ours can exist.
pub(crate) fn list(
    ctx: &str,
    family: &str,
    table: &str,
    chain: Option<&str>,
) -> Result<Option<Vec<ListedRule>>> {
    let mut args = vec!["-j", "list"];
    match chain {
        Some(c) => args.extend(["chain", family, table, c]),
        None => args.extend(["table", family, table]),
    }
    let out = match exec::run(ctx, "nft", &args, None) {
        Ok(o) => o,
        Err(e) if exec::is_nft_missing_object(&e) => return Ok(None),
        Err(Error::ToolMissing { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    parse_rules(&out.stdout)
        .map(Some)
        .map_err(|msg| Error::invalid(ctx, format!("cannot parse `nft -j` output: {msg}")))
}

/// Pick the `rule` objects out of `{"nftables": [...]}`.
pub(crate) fn parse_rules(json: &str) -> std::result::Result<Vec<ListedRule>, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let items = v["nftables"].as_array().ok_or("no \"nftables\" array")?;
    let mut out = Vec::new();
    for r in items.iter().filter_map(|i| i.get("rule")) {
        let exprs = r["expr"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        out.push(ListedRule {
            family: r["family"].as_str().unwrap_or_default().to_string(),
            chain: r["chain"].as_str().unwrap_or_default().to_string(),
            handle: r["handle"].as_u64().ok_or("rule without handle")?,
            comment: r["comment"].as_str().map(str::to_string),
            text: exprs.iter().map(render_expr).collect::<Vec<_>>().join(" "),
        });
    }
    Ok(out)
}

/// Render one JSON statement the way `nft list` prints it, for the subset of
/// statements our rules use (payload/fib matches, dnat, masquerade,
/// jump/goto, return). Anything else renders as `?{json}` and so never
/// equals a rule we expect.
fn render_expr(e: &Value) -> String {
    if let Some(m) = e.get("match") {
        let op = match m["op"].as_str() {
            Some("==") | Some("in") | None => String::new(),
            Some(op) => format!("{op} "),
        };
        return format!(
            "{} {op}{}",
            render_left(&m["left"]),
            render_value(&m["right"])
        );
    }
    if let Some(d) = e.get("dnat") {
        let addr = d["addr"].as_str().unwrap_or("?");
        return match d.get("port") {
            Some(p) if addr.contains(':') => format!("dnat to [{addr}]:{p}"),
            Some(p) => format!("dnat to {addr}:{p}"),
            None => format!("dnat to {addr}"),
        };
    }
    if e.get("masquerade").is_some() {
        return "masquerade".into();
    }
    for verdict in ["jump", "goto"] {
        if let Some(t) = e.get(verdict).and_then(|j| j["target"].as_str()) {
            return format!("{verdict} {t}");
        }
    }
    if e.get("return").is_some() {
        return "return".into();
    }
    if e.get("accept").is_some() {
        return "accept".into();
    }
    format!("?{e}")
}

fn render_left(l: &Value) -> String {
    if let Some(p) = l.get("payload") {
        return format!(
            "{} {}",
            p["protocol"].as_str().unwrap_or("?"),
            p["field"].as_str().unwrap_or("?")
        );
    }
    if let Some(f) = l.get("fib") {
        let flags: Vec<&str> = f["flags"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        return format!(
            "fib {} {}",
            flags.join(" . "),
            f["result"].as_str().unwrap_or("?")
        );
    }
    format!("?{l}")
}

/// Values: numbers, addresses, `{"prefix": ..}` and anonymous sets, whose
/// elements are sorted so the text does not depend on kernel order.
fn render_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) if o.contains_key("prefix") => {
            let p = &o["prefix"];
            format!("{}/{}", p["addr"].as_str().unwrap_or("?"), p["len"])
        }
        Value::Object(o) if o.contains_key("set") => {
            let mut items: Vec<String> = o["set"]
                .as_array()
                .map(|a| a.iter().map(render_value).collect())
                .unwrap_or_default();
            items.sort();
            format!("{{ {} }}", items.join(", "))
        }
        other => format!("?{other}"),
    }
}

/// A rule comment for an nft script, double-quoted. Only
/// `[A-Za-z0-9_.:@-]`, spaces and commas are accepted (no quote, backslash,
/// `;`, `#`, `$` or newline can reach the nft parser), at most 128 bytes
/// (`NFT_USERDATA_MAXLEN`).
pub(crate) fn quote_comment(ctx: &str, c: &str) -> Result<String> {
    let ok = !c.is_empty()
        && c.len() <= 128
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-, ".contains(&b));
    if !ok {
        return Err(Error::invalid(
            ctx,
            format!("{c:?} cannot be an nft comment (1-128 of [A-Za-z0-9_.:@-])"),
        ));
    }
    Ok(format!("\"{c}\""))
}

/// Validate an identifier we put into a comment (CNI network name,
/// container ID, interface name): non-empty, `[A-Za-z0-9_.:@-]` only.
pub(crate) fn check_ident(ctx: &str, what: &str, s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:@-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            ctx,
            format!("{what} {s:?} may only contain [A-Za-z0-9_.:@-]"),
        ))
    }
}

/// `delete rule FAMILY TABLE CHAIN handle N` for each rule.
pub(crate) fn delete_lines(table: &str, rules: &[&ListedRule]) -> String {
    rules
        .iter()
        .map(|r| {
            format!(
                "delete rule {} {table} {} handle {}\n",
                r.family, r.chain, r.handle
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_nft_list() {
        let json = r#"{"nftables":[{"metainfo":{}},
          {"rule":{"family":"ip","table":"t","chain":"hostports","handle":12,"comment":"abc","expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":"192.168.1.1"}},
            {"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":53}},
            {"dnat":{"addr":"10.0.0.2","port":53}}]}},
          {"rule":{"family":"ip","table":"t","chain":"prerouting","handle":7,"expr":[
            {"match":{"op":"==","left":{"fib":{"result":"type","flags":["daddr"]}},"right":"local"}},
            {"jump":{"target":"hostports_all"}}]}},
          {"rule":{"family":"inet","table":"t","chain":"p","handle":3,"expr":[
            {"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":{"prefix":{"addr":"10.244.1.0","len":24}}}},
            {"match":{"op":"!=","left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"set":[{"prefix":{"addr":"10.96.0.0","len":12}},{"prefix":{"addr":"10.244.0.0","len":16}}]}}},
            {"masquerade":null}]}},
          {"rule":{"family":"ip6","table":"t","chain":"hostports","handle":4,"expr":[
            {"dnat":{"addr":"fd00::2","port":80}}, {"counter":{"packets":0}}]}}]}"#;
        let r = parse_rules(json).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].text,
            "ip daddr 192.168.1.1 udp dport 53 dnat to 10.0.0.2:53"
        );
        assert_eq!(r[0].comment.as_deref(), Some("abc"));
        assert_eq!(r[1].text, "fib daddr type local jump hostports_all");
        assert_eq!(
            r[2].text,
            "ip saddr 10.244.1.0/24 ip daddr != { 10.244.0.0/16, 10.96.0.0/12 } masquerade"
        );
        assert!(r[3].text.starts_with("dnat to [fd00::2]:80 ?"));
    }

    #[test]
    fn comments_are_restricted() {
        assert_eq!(
            quote_comment("t", "abc-1.2:3@x").unwrap(),
            "\"abc-1.2:3@x\""
        );
        for bad in ["", "a\"b", "a\nb", "a;b", "a\\b", "a$b", &"x".repeat(129)] {
            assert!(quote_comment("t", bad).is_err(), "{bad:?}");
        }
        assert!(check_ident("t", "id", "a b").is_err());
        assert!(check_ident("t", "id", "cbr0_net.1-x").is_ok());
    }
}
