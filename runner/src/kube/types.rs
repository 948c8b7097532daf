//! The mapper's options and output.

use crate::spec::{PodSpec, SpecError};

/// Reading options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Turn refusals of unsupported fields into warnings.
    pub ignore_unsupported: bool,
}

/// One Pod document, mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct KubePod {
    /// The pod as podrun runs it; [`PodSpec::kube`] is set.
    pub spec: PodSpec,
    /// Unsupported fields skipped under `ignore_unsupported`, by path.
    pub warnings: Vec<SpecError>,
}
