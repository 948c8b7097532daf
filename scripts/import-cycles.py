#!/usr/bin/env python3
"""Report import cycles between the source files of each crate in the workspace.

A file A "uses" a file B when A names an item that lives in B: through
`use crate::...`, `use super::...`, `use self::...`, a `crate::x::y` /
`super::y` path in code, or a `child::y` path to one of its own child
modules. A cycle is a set of two or more files that reach each other through
such uses (a strongly connected component of the file graph).

The module tree is read the way rustc reads it: from each crate root
(src/lib.rs, src/main.rs, src/bin/*.rs, tests/*.rs, examples/*.rs,
benches/*.rs), following `mod x;` (with `#[path = "..."]`) and inline
`mod x { ... }`. Declaring a module is not a use. Paths through a `pub use`
re-export are followed to the file that defines the item, so importing
`crate::CniError` counts as a use of the file defining it, not of lib.rs.
Comments (doc links included), strings and macros' `$crate` are ignored.

Usage: scripts/import-cycles.py [CRATE_DIR ...]
With no argument, every member of the workspace in the current directory
(or the one above this script) is checked. Exit status 1 when a cycle exists.
"""

import os
import re
import sys

IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------- tokenizer


def tokenize(src):
    """Tokens (kind, value, line) with comments dropped; kinds: id, str, p."""
    toks, i, n, line = [], 0, len(src), 1
    while i < n:
        c = src[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    line += src[i] == "\n"
                    i += 1
        elif re.match(r'(b?r#*")', src[i:i + 40]) and not (
                i and (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'b?r(#*)"', src[i:])
            close = '"' + m.group(1)
            start = i + m.end()
            j = src.find(close, start)
            j = n if j < 0 else j
            toks.append(("str", src[start:j], line))
            line += src.count("\n", i, j)
            i = j + len(close)
        elif c == '"' or (c == "b" and src.startswith('b"', i)):
            j = i + (2 if c == "b" else 1)
            start = j
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            toks.append(("str", src[start:j], line))
            line += src.count("\n", i, j)
            i = j + 1
        elif c == "'":
            # char literal or lifetime
            if src.startswith("\\", i + 1):
                j = src.find("'", i + 3)
                i = n if j < 0 else j + 1
            elif i + 2 < n and src[i + 2] == "'":
                i += 3
            else:
                m = IDENT_RE.match(src, i + 1)
                i = m.end() if m else i + 1
        elif c == "r" and src.startswith("r#", i) and IDENT_RE.match(src, i + 2):
            m = IDENT_RE.match(src, i + 2)
            toks.append(("id", m.group(0), line))
            i = m.end()
        elif c.isalpha() or c == "_":
            m = IDENT_RE.match(src, i)
            toks.append(("id", m.group(0), line))
            i = m.end()
        elif c.isdigit():
            m = re.compile(r"[0-9][0-9A-Za-z_]*(\.[0-9][0-9A-Za-z_]*)?").match(src, i)
            i = m.end()
        elif src.startswith("::", i):
            toks.append(("p", "::", line))
            i += 2
        else:
            toks.append(("p", c, line))
            i += 1
    return toks


# ---------------------------------------------------------------- module tree


class Module:
    def __init__(self, path, file, inline):
        self.path = path          # tuple of segments, () is the crate root
        self.file = file          # the file holding its items
        self.inline = inline
        self.children = set()     # child module names
        self.bindings = {}        # name -> full path (from `use`)
        self.globs = []           # full paths of `use x::*`
        self.defines = set()      # names of items defined here


class Crate:
    def __init__(self, root):
        self.root = root
        self.modules = {}         # path tuple -> Module
        self.refs = []            # (file, module path, full path, line)
        self.files = {}           # file -> module path of the file


def parse_attr_path(toks, i):
    """If toks[i] starts `#[path = "x"]`, return (x, index after)."""
    if i + 5 < len(toks) and toks[i][1] == "#" and toks[i + 1][1] == "[" \
            and toks[i + 2] == ("id", "path", toks[i + 2][2]) and toks[i + 3][1] == "=" \
            and toks[i + 4][0] == "str" and toks[i + 5][1] == "]":
        return toks[i + 4][1], i + 6
    return None, i


def parse_use_tree(toks, i, prefix):
    """Parse a use tree at i; return ([(full path, binding name or '*')], i)."""
    out, segs = [], list(prefix)
    while i < len(toks):
        kind, val, _ = toks[i]
        if val == "{":
            i += 1
            while i < len(toks) and toks[i][1] != "}":
                sub, i = parse_use_tree(toks, i, segs)
                out += sub
                if i < len(toks) and toks[i][1] == ",":
                    i += 1
            return out, i + 1
        if val == "*":
            out.append((tuple(segs), "*"))
            return out, i + 1
        if kind != "id":
            return out, i
        if val == "self" and segs and len(segs) == len(prefix) and prefix:
            name = segs[-1]
        else:
            segs.append(val)
            name = val
        i += 1
        if i < len(toks) and toks[i][1] == "::":
            i += 1
            continue
        if i + 1 < len(toks) and toks[i][1] == "as":
            name = toks[i + 1][1]
            i += 2
        out.append((tuple(segs), name))
        return out, i
    return out, i


def absolutize(segs, mod_path, crate):
    """Turn a path relative to module mod_path into a crate-absolute one."""
    segs = list(segs)
    if not segs:
        return None
    cur = list(mod_path)
    if segs[0] == "crate":
        return tuple(segs[1:])
    if segs[0] in ("self", "super"):
        while segs and segs[0] in ("self", "super"):
            if segs.pop(0) == "super":
                if not cur:
                    return None
                cur.pop()
        return tuple(cur + segs)
    mod = crate.modules.get(tuple(mod_path))
    if mod and segs[0] in mod.children:
        return tuple(cur + segs)
    return None  # an external crate or a name in scope


ITEM_KW = {"fn", "struct", "enum", "trait", "type", "const", "static", "union"}


def load_module_file(crate, file, mod_path, seen):
    if file in seen or not os.path.isfile(file):
        return
    seen.add(file)
    with open(file, encoding="utf-8") as f:
        toks = tokenize(f.read())
    crate.files[file] = tuple(mod_path)
    root_like = os.path.basename(file) in ("mod.rs", "lib.rs", "main.rs") or \
        file == crate.root
    base_dir = os.path.dirname(file) if root_like else \
        os.path.join(os.path.dirname(file), os.path.splitext(os.path.basename(file))[0])
    mod = crate.modules.setdefault(tuple(mod_path), Module(tuple(mod_path), file, False))
    # stack of (module path, directory for `mod x;`, brace depth when opened)
    stack = [(tuple(mod_path), base_dir, 0)]
    depth, i, pending_path, pending_files = 0, 0, None, []
    while i < len(toks):
        kind, val, line = toks[i]
        cur_path, cur_dir, _ = stack[-1]
        cur = crate.modules[cur_path]
        p, j = parse_attr_path(toks, i)
        if p is not None:
            pending_path, i = p, j
            continue
        if val == "{":
            depth += 1
        elif val == "}":
            depth -= 1
            if len(stack) > 1 and depth == stack[-1][2]:
                stack.pop()
        elif val == ";" or val == "]":
            if val == ";":
                pending_path = None
        if kind == "id" and val == "mod" and i + 2 < len(toks) and toks[i + 1][0] == "id":
            name, nxt = toks[i + 1][1], toks[i + 2][1]
            child = cur_path + (name,)
            cur.children.add(name)
            cur.defines.add(name)
            if nxt == ";":
                if pending_path:
                    dir_for_attr = os.path.dirname(file) if len(stack) == 1 else cur_dir
                    cfile = os.path.normpath(os.path.join(dir_for_attr, pending_path))
                else:
                    cfile = os.path.join(cur_dir, name + ".rs")
                    if not os.path.isfile(cfile):
                        cfile = os.path.join(cur_dir, name, "mod.rs")
                pending_files.append((cfile, child))
                pending_path = None
                i += 3
                continue
            if nxt == "{":
                crate.modules.setdefault(child, Module(child, file, True))
                depth += 1
                stack.append((child, os.path.join(cur_dir, name), depth - 1))
                pending_path = None
                i += 3
                continue
        if kind == "id" and val in ITEM_KW and i + 1 < len(toks) and toks[i + 1][0] == "id":
            cur.defines.add(toks[i + 1][1])
        if kind == "id" and val == "macro_rules" and i + 2 < len(toks):
            cur.defines.add(toks[i + 2][1])
        if kind == "id" and val == "use":
            tree, j = parse_use_tree(toks, i + 1, [])
            for segs, name in tree:
                full = absolutize(segs, cur_path, crate) if segs else None
                target = full if full is not None else None
                if name == "*":
                    if target is not None:
                        cur.globs.append(target)
                elif target is not None:
                    cur.bindings[name] = target
                crate.refs.append((file, cur_path, tuple(segs), line, True))
            i = j
            continue
        # a path in code: crate::.., super::.., self::.., child::..
        prev = toks[i - 1][1] if i else ""
        if kind == "id" and prev not in ("::", "$", ".") and i + 1 < len(toks) \
                and toks[i + 1][1] == "::" and not (
                    prev == "in" and i > 1 and toks[i - 2][1] == "("):
            segs, j = [val], i + 1
            while j + 1 < len(toks) and toks[j][1] == "::" and toks[j + 1][0] == "id":
                segs.append(toks[j + 1][1])
                j += 2
            crate.refs.append((file, cur_path, tuple(segs), line, False))
            i = j
            continue
        i += 1
    for cfile, child in pending_files:
        load_module_file(crate, cfile, child, seen)
        m = crate.modules.get(child)
        if m is None:
            crate.modules[child] = Module(child, cfile, False)


def resolve(crate, full, depth=0):
    """The file defining the item at crate-absolute path `full`."""
    if depth > 16:
        return None
    # deepest module on the path
    k = len(full)
    while k > 0 and full[:k] not in crate.modules:
        k -= 1
    mod = crate.modules.get(full[:k])
    if mod is None:
        return None
    rest = full[k:]
    if not rest:
        return mod.file
    name = rest[0]
    if name in mod.bindings and name not in mod.defines:
        return resolve(crate, mod.bindings[name] + rest[1:], depth + 1)
    if name not in mod.defines:
        for g in mod.globs:
            f = resolve(crate, g + rest, depth + 1)
            if f is not None and f != mod.file:
                return f
    return mod.file


def build_graph(crate):
    edges = {}  # (a, b) -> first (line, path text)
    for file, mod_path, segs, line, _is_use in crate.refs:
        full = absolutize(segs, mod_path, crate)
        if full is None:
            continue
        target = resolve(crate, full)
        if target is None or target == file:
            continue
        edges.setdefault((file, target), (line, "::".join(segs)))
    return edges


def sccs(nodes, adj):
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


# ---------------------------------------------------------------- workspace


def crate_roots(crate_dir):
    roots = []
    for name in ("src/lib.rs", "src/main.rs"):
        p = os.path.join(crate_dir, name)
        if os.path.isfile(p):
            roots.append(p)
    for sub in ("src/bin", "tests", "examples", "benches"):
        d = os.path.join(crate_dir, sub)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                p = os.path.join(d, f)
                if f.endswith(".rs"):
                    roots.append(p)
                elif os.path.isfile(os.path.join(p, "main.rs")):
                    roots.append(os.path.join(p, "main.rs"))
    return roots


def workspace_members(ws):
    text = open(os.path.join(ws, "Cargo.toml"), encoding="utf-8").read()
    m = re.search(r"members\s*=\s*\[(.*?)\]", text, re.S)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else ["."]


def check_crate_dir(crate_dir, rel_to):
    found = 0
    for root in crate_roots(crate_dir):
        crate = Crate(root)
        load_module_file(crate, root, (), set())
        edges = build_graph(crate)
        adj = {}
        for a, b in edges:
            adj.setdefault(a, set()).add(b)
        for comp in sccs(crate.files.keys(), adj):
            if len(comp) < 2:
                continue
            found += 1
            rel = [os.path.relpath(f, rel_to) for f in comp]
            print(f"cycle in {os.path.relpath(root, rel_to)}: {' <-> '.join(rel)}")
            members = set(comp)
            for (a, b), (line, text) in sorted(edges.items()):
                if a in members and b in members:
                    print(f"    {os.path.relpath(a, rel_to)}:{line} uses "
                          f"{os.path.relpath(b, rel_to)} ({text})")
    return found


def main(argv):
    here = os.getcwd()
    if argv:
        dirs = argv
    else:
        ws = here if os.path.isfile(os.path.join(here, "Cargo.toml")) else \
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        dirs = [os.path.join(ws, m) for m in workspace_members(ws)]
    total = 0
    for d in dirs:
        n = check_crate_dir(d, here)
        name = os.path.relpath(d, here)
        print(f"{name}: {n} cycle(s)" if n else f"{name}: no cycles")
        total += n
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
