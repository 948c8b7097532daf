//! Hostile-input driver shared by the parser tests of every crate
//! (`cni`, `netboot-cni`, `netboot`, `podrun`), which include this file with
//! `#[path = ".../tests/corpus/fuzzkit.rs"] mod fuzzkit;`.
//!
//! cargo-fuzz needs a nightly toolchain, which the project's machines cannot
//! install, so hostile input is generated here, on stable, two ways:
//! - proptest strategies (structured values, with shrinking) where a crate
//!   has proptest as a dev-dependency;
//! - this seeded mutator: every file of `tests/corpus/<target>/` is a seed,
//!   and each case applies 1-8 random edits (byte flips, inserts of hostile
//!   tokens, deletions, duplications, truncation, splices of another seed).
//!
//! Every case is bounded ([`MAX_LEN`] bytes) and watched: a case that runs
//! longer than [`HANG_LIMIT`] fails the test with its input (no hang). The
//! number of cases is [`cases`]: `NETBOOT_FUZZ_CASES`, or the modest default
//! CI runs. `NETBOOT_FUZZ_SEED` replays a run; a failure prints the seed and
//! the input.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest generated input.
pub const MAX_LEN: usize = 64 * 1024;
/// Longest a single case may take before it counts as a hang.
pub const HANG_LIMIT: Duration = Duration::from_secs(5);

/// Tokens that have broken parsers before, or that must never reach a shell,
/// a path or an nft script unescaped.
pub const HOSTILE: &[&str] = &[
    "../../etc",
    "..",
    "/",
    "a/b",
    "/etc/passwd",
    "\0",
    "\n",
    "\r\n",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    ";",
    "|",
    "&&",
    "\"",
    "'",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "=",
    "@",
    "#",
    " ",
    "\t",
    "null",
    "true",
    "false",
    "-1",
    "0",
    "1e309",
    "18446744073709551616",
    "-9223372036854775809",
    "4294967296",
    "65536",
    "0.1.0",
    "0.2.0",
    "0.3.1",
    "0.4.0",
    "1.0.0",
    "1.1.0",
    "9.9.9",
    "10.2.1.1/24",
    "fd00::1/64",
    "::",
    "256.1.1.1",
    "10.0.0.0/33",
    "é",
    "\u{202e}",
    "\u{feff}",
    "\u{1f600}",
    "\\u0000",
    "\\ud800",
    "&anchor",
    "*anchor",
    "!!binary",
    "<<: ",
    "---",
    "~",
];

/// splitmix64: small, fast, and the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How many cases each target runs: `NETBOOT_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("NETBOOT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's seed: `NETBOOT_FUZZ_SEED`, else the clock.
pub fn seed() -> u64 {
    std::env::var("NETBOOT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// `tests/corpus` of the workspace, found from any crate's manifest dir.
pub fn corpus_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in here.ancestors() {
        let c = dir.join("tests").join("corpus");
        if c.is_dir() {
            return c;
        }
    }
    panic!("no tests/corpus above {}", here.display());
}

/// Every seed of `target`, as (file name, bytes), sorted by name.
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_root().join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap_or_default();
            (name, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "corpus {} is empty", dir.display());
    out
}

/// Applies 1-8 random edits to `input`, drawing tokens from [`HOSTILE`] and
/// `dict`, and splices from `others`. The result is at most [`MAX_LEN`].
pub fn mutate(input: &[u8], others: &[Vec<u8>], dict: &[&str], rng: &mut Rng) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = if b.is_empty() {
            0
        } else {
            rng.below(b.len() + 1)
        };
        match rng.below(10) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.insert(at, rng.next_u64() as u8),
            2 | 3 => {
                let tok = if !dict.is_empty() && rng.below(2) == 0 {
                    *rng.pick(dict)
                } else {
                    *rng.pick(HOSTILE)
                };
                b.splice(at..at, tok.bytes());
            }
            4 if !b.is_empty() => {
                let start = rng.below(b.len());
                let end = (start + 1 + rng.below(16)).min(b.len());
                b.drain(start..end);
            }
            5 if !b.is_empty() => {
                let start = rng.below(b.len());
                let end = (start + 1 + rng.below(64)).min(b.len());
                let chunk: Vec<u8> = b[start..end].to_vec();
                for _ in 0..1 + rng.below(4) {
                    b.splice(at..at, chunk.iter().copied());
                }
            }
            6 => b.truncate(at),
            7 if !others.is_empty() => {
                let other = rng.pick(others);
                if !other.is_empty() {
                    let s = rng.below(other.len());
                    let e = (s + 1 + rng.below(256)).min(other.len());
                    b.splice(at..at, other[s..e].iter().copied());
                }
            }
            8 => {
                // Deep nesting: the recursion limits must hold.
                let depth = 1 + rng.below(300);
                let (open, close) = if rng.below(2) == 0 {
                    ("[", "]")
                } else {
                    ("{\"a\":", "}")
                };
                let mut s = open.repeat(depth);
                s.push_str(&close.repeat(depth));
                b.splice(at..at, s.bytes());
            }
            _ => {
                // A long run of one byte (long names, long lines).
                let n = 1 + rng.below(5000);
                let c = *rng.pick(b"a0/.;\n\"x");
                b.splice(at..at, std::iter::repeat_n(c, n));
            }
        }
    }
    b.truncate(MAX_LEN);
    b
}

/// What one target run saw, printed as `fuzz <target>: ...` for the campaign.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub cases: u64,
    pub accepted: u64,
    pub rejected: u64,
}

/// Runs `check` on every corpus seed of `target` and then on `n` mutants
/// (see [`cases`]). `check` returns `Ok(true)` for an accepted input,
/// `Ok(false)` for a correctly rejected one, and `Err` for a broken
/// property; a panic or a case over [`HANG_LIMIT`] also fails. The failing
/// input is printed (escaped) with the seed that reproduces it.
pub fn run<F>(target: &str, default_cases: u32, dict: &[&str], check: F) -> Tally
where
    F: Fn(&[u8]) -> Result<bool, String> + Send + Sync + 'static,
{
    run_named(target, target, default_cases, dict, check)
}

/// [`run`] reported as `label` while mutating the corpus of `corpus_name`
/// (several targets share one corpus).
pub fn run_named<F>(
    label: &str,
    corpus_name: &str,
    default_cases: u32,
    dict: &[&str],
    check: F,
) -> Tally
where
    F: Fn(&[u8]) -> Result<bool, String> + Send + Sync + 'static,
{
    let target = label;
    let seeds: Vec<Vec<u8>> = corpus(corpus_name).into_iter().map(|(_, b)| b).collect();
    let n = cases(default_cases);
    let seed = seed();
    let dict: Vec<String> = dict.iter().map(|s| s.to_string()).collect();
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let started_ms = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let worker = {
        let (current, started_ms, done) = (current.clone(), started_ms.clone(), done.clone());
        let target = target.to_string();
        std::thread::spawn(move || {
            let dict: Vec<&str> = dict.iter().map(String::as_str).collect();
            let mut rng = Rng::new(seed);
            let mut tally = Tally::default();
            let total = seeds.len() as u64 + u64::from(n);
            for i in 0..total {
                let input = match seeds.get(i as usize) {
                    Some(s) => s.clone(),
                    None => {
                        let base = rng.pick(&seeds).clone();
                        mutate(&base, &seeds, &dict, &mut rng)
                    }
                };
                *current.lock().unwrap_or_else(|p| p.into_inner()) = input.clone();
                started_ms.store(t0.elapsed().as_millis() as u64 + 1, Ordering::SeqCst);
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
                started_ms.store(0, Ordering::SeqCst);
                match outcome {
                    Ok(Ok(true)) => tally.accepted += 1,
                    Ok(Ok(false)) => tally.rejected += 1,
                    Ok(Err(why)) => {
                        done.store(true, Ordering::SeqCst);
                        panic!(
                            "fuzz {target}: case {i} (NETBOOT_FUZZ_SEED={seed}) broke a property: {why}\ninput: {}",
                            escape(&input)
                        );
                    }
                    Err(_) => {
                        done.store(true, Ordering::SeqCst);
                        panic!(
                            "fuzz {target}: case {i} (NETBOOT_FUZZ_SEED={seed}) panicked\ninput: {}",
                            escape(&input)
                        );
                    }
                }
                tally.cases += 1;
            }
            done.store(true, Ordering::SeqCst);
            tally
        })
    };
    while !done.load(Ordering::SeqCst) && !worker.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let s = started_ms.load(Ordering::SeqCst);
        if s != 0 && t0.elapsed().as_millis() as u64 > s + HANG_LIMIT.as_millis() as u64 {
            let input = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
            panic!(
                "fuzz {target}: a case ran over {HANG_LIMIT:?} (NETBOOT_FUZZ_SEED={seed})\ninput: {}",
                escape(&input)
            );
        }
    }
    let tally = match worker.join() {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e),
    };
    eprintln!(
        "fuzz {target}: {} cases ({} accepted, {} rejected), 0 failures, {:.1}s, seed {seed}",
        tally.cases,
        tally.accepted,
        tally.rejected,
        t0.elapsed().as_secs_f64()
    );
    tally
}

/// Input bytes as a Rust-escaped string, cut to 2000 characters.
pub fn escape(b: &[u8]) -> String {
    let s: String = String::from_utf8_lossy(b).escape_debug().collect();
    if s.len() > 2000 {
        format!(
            "{}... ({} bytes)",
            &s[..s.floor_char_boundary_compat(2000)],
            b.len()
        )
    } else {
        s
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
