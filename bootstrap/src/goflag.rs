//! The syntax of Go's `flag` package, which flanneld's command line and
//! `FLANNELD_*` variables follow: how an argument names a flag, and how a
//! boolean or integer value is read (`strconv.ParseBool`, and
//! `strconv.ParseInt(s, 0, 64)` as `flag.IntVar` calls it).

/// A flag argument as Go's `FlagSet.parseOne` reads it: `-name`,
/// `--name`, `-name=value` or `--name=value` → `(name, value)`. `None` for
/// anything else: a non-flag argument, `-`, the terminator `--`, or a
/// malformed one (`---x`, `-=x`) that Go refuses.
pub fn split(arg: &str) -> Option<(&str, Option<&str>)> {
    let rest = arg.strip_prefix('-')?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    if rest.is_empty() || rest.starts_with('-') || rest.starts_with('=') {
        return None;
    }
    Some(match rest.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (rest, None),
    })
}

/// `strconv.ParseBool`: exactly 1, t, T, TRUE, true, True and their false
/// counterparts.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

/// `strconv.ParseInt(s, 0, 64)`: an optional sign, then decimal, `0x` hex,
/// `0o` or leading-`0` octal, or `0b` binary, with `_` allowed between
/// digits when a base prefix is given.
pub fn parse_int(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an integer");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    // Go allows `_` only with a base prefix, only between digits (or
    // right after the prefix).
    if digits.contains('_') && (!prefixed || digits.ends_with('_') || digits.contains("__")) {
        return Err(bad());
    }
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err(bad());
    }
    let n = i64::from_str_radix(&digits, radix).map_err(|_| bad())?;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_arguments() {
        assert_eq!(split("-ip-masq"), Some(("ip-masq", None)));
        assert_eq!(split("--ip-masq"), Some(("ip-masq", None)));
        assert_eq!(split("-iface=eth0"), Some(("iface", Some("eth0"))));
        assert_eq!(split("--v=2"), Some(("v", Some("2"))));
        assert_eq!(split("-public-ip="), Some(("public-ip", Some(""))));
        assert_eq!(split("-a=b=c"), Some(("a", Some("b=c"))));
        for not in ["", "-", "--", "---x", "-=x", "--=x", "eth0"] {
            assert_eq!(split(not), None, "{not:?}");
        }
    }

    #[test]
    fn booleans_as_go_reads_them() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        for bad in ["", "yes", "on", "tRUE", "2"] {
            assert!(parse_bool(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn integers_as_go_reads_them() {
        assert_eq!(parse_int("60"), Ok(60));
        assert_eq!(parse_int("-5"), Ok(-5));
        assert_eq!(parse_int("+7"), Ok(7));
        assert_eq!(parse_int("0"), Ok(0));
        assert_eq!(parse_int("0x3c"), Ok(60));
        assert_eq!(parse_int("0X3C"), Ok(60));
        assert_eq!(parse_int("074"), Ok(60));
        assert_eq!(parse_int("0o74"), Ok(60));
        assert_eq!(parse_int("0b111100"), Ok(60));
        assert_eq!(parse_int("0x_3c"), Ok(60));
        assert_eq!(
            parse_int("1_000"),
            Err("\"1_000\" is not an integer".into())
        );
        for bad in [
            "", "-", "1.5", "60m", "0x", "08", "0x3c_", "0x3__c", "--1", " 1",
        ] {
            assert!(parse_int(bad).is_err(), "{bad:?}");
        }
    }
}
