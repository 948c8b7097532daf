//! What a check finds: its outcome, what was seen, how to fix it.

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Problem,
    /// Could not be checked (what it needs is missing or broken; that is
    /// reported by another check).
    Skipped,
}

/// One finding: which check, its outcome, what was seen, how to fix it.
#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static str,
    pub status: Status,
    pub what: String,
    pub fix: Option<String>,
}

impl Finding {
    pub(super) fn ok(check: &'static str, what: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Ok,
            what: what.into(),
            fix: None,
        }
    }
    pub(super) fn problem(
        check: &'static str,
        what: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            status: Status::Problem,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }
    pub(super) fn skipped(check: &'static str, why: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Skipped,
            what: why.into(),
            fix: None,
        }
    }
}

pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Problem => "problem",
        Status::Skipped => "skipped",
    }
}
