//! What systemd makes of a unit's `EnvironmentFile=` and `ExecStart=`, for
//! tests that start a process from a real-looking unit (systemd.exec(5)
//! "EnvironmentFile=", systemd.service(5) "Command lines"):
//!
//! - environment file: `KEY=VALUE` lines; blank lines and lines starting
//!   with `#` or `;` skipped; whitespace around the value stripped; one
//!   pair of enclosing single or double quotes removed;
//! - command line: words split at whitespace, quotes grouping and removed;
//!   a word that is exactly `$NAME` becomes the variable's value split at
//!   whitespace (zero or more arguments); `${NAME}` anywhere in a word is
//!   replaced by the value as it is (one argument); an unset variable is
//!   empty.
//!
//! Not modelled: backslash escapes, `%` specifiers, line continuations and
//! the `-@:+!` prefixes of the executable.

use std::collections::HashMap;

/// The variables of an environment file, in order.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), unquote(v.trim()).to_string()))
        .collect()
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// The value of `key=` in the unit's `[Service]` lines (the last one).
pub fn directive(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim().to_string())
}

/// Words of a command line: whitespace separates, quotes group.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => out.extend(cur.take()),
            (None, c) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    out.extend(cur);
    out
}

/// `${NAME}` replaced throughout `word`.
fn braced(word: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        match rest[i + 2..].find('}') {
            Some(j) => {
                let name = &rest[i + 2..i + 2 + j];
                out.push_str(env.get(name).map_or("", String::as_str));
                rest = &rest[i + 3 + j..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The argv systemd runs for `exec_start` with these variables.
pub fn expand(exec_start: &str, vars: &[(String, String)]) -> Vec<String> {
    let env: HashMap<String, String> = vars.iter().cloned().collect();
    let mut argv = Vec::new();
    for w in words(exec_start) {
        let whole = w
            .strip_prefix('$')
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        match whole {
            Some(name) => argv.extend(env.get(name).map(|v| words(v)).unwrap_or_default()),
            None => argv.push(braced(&w, &env)),
        }
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_files_and_command_lines_as_systemd_reads_them() {
        let vars = parse_env_file(
            "# comment\n; another\n\nA=\"x y\"\n B = 'q' \nOPTS=\"-v=2  -ip-masq\"\nEMPTY=\nnot a pair\n",
        );
        assert_eq!(
            vars,
            [
                ("A".into(), "x y".into()),
                ("B".into(), "q".into()),
                ("OPTS".into(), "-v=2  -ip-masq".into()),
                ("EMPTY".into(), String::new()),
            ]
        );
        let argv = expand(
            "/usr/bin/flanneld -a=${A} \"-b=${B} c\" $OPTS $EMPTY $UNSET -u=${UNSET} ${A}",
            &vars,
        );
        assert_eq!(
            argv,
            [
                "/usr/bin/flanneld",
                "-a=x y",
                "-b=q c",
                "-v=2",
                "-ip-masq",
                "-u=",
                "x y"
            ]
        );
        let unit = "[Service]\nType=notify\nExecStart=/usr/bin/flanneld $X\n";
        assert_eq!(
            directive(unit, "ExecStart").unwrap(),
            "/usr/bin/flanneld $X"
        );
        assert_eq!(directive(unit, "Type").unwrap(), "notify");
        assert_eq!(directive(unit, "User"), None);
    }
}
