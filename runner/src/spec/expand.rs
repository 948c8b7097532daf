//! Kubernetes' `$(VAR)` references in env values, command and args:
//! `$(NAME)` becomes NAME's value when NAME is defined (earlier in `env`
//! for env values, anywhere in it for command and args), `$$` becomes `$`,
//! and anything else, an undefined or unterminated reference included, is
//! kept as written.

use super::types::ContainerSpec;

/// Expands `s` against `vars` (the last definition of a name wins).
pub fn expand(s: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => out.push_str(&rest[i..i + 3 + end]),
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Expands a container's env (each value against those before it), then
/// its command and args against the whole env.
pub fn expand_container(c: &mut ContainerSpec) {
    let mut done: Vec<(String, String)> = Vec::with_capacity(c.env.0.len());
    for (k, v) in &c.env.0 {
        let v = expand(v, &done);
        done.push((k.clone(), v));
    }
    c.env.0 = done;
    for list in [&mut c.command, &mut c.args].into_iter().flatten() {
        for s in list.iter_mut() {
            *s = expand(s, &c.env.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![("A".into(), "1".into()), ("B".into(), "two".into())]
    }

    #[test]
    fn references_escapes_and_leftovers() {
        let v = vars();
        assert_eq!(expand("$(A)-$(B)", &v), "1-two");
        assert_eq!(expand("$$(A)", &v), "$(A)");
        assert_eq!(expand("$(C)", &v), "$(C)");
        assert_eq!(expand("$(A", &v), "$(A");
        assert_eq!(expand("a$b$", &v), "a$b$");
        assert_eq!(expand("$$$$", &v), "$$");
        assert_eq!(expand("x$()y", &v), "x$()y");
        assert_eq!(expand("ü$(A)ü", &v), "ü1ü");
    }
}
