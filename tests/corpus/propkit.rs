//! The proptest settings of the hostile-input tests in the crates that have
//! proptest as a dev-dependency (`cni`, `netboot-cni`), which include this
//! file beside `fuzzkit` with
//! `#[path = ".../tests/corpus/propkit.rs"] mod propkit;`. It is apart from
//! `fuzzkit.rs` because `netboot` and `podrun` include that one without
//! proptest.

use proptest::test_runner::Config;

/// `cases` cases (pass `fuzzkit::cases(..)`), no failure file written, and
/// a case slower than 5 s fails: parsing takes microseconds.
pub fn config(cases: u32) -> Config {
    Config {
        cases,
        timeout: 5_000,
        failure_persistence: None,
        ..Config::default()
    }
}
