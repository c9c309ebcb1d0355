//! What a compare-and-swap write expects to find: plain data, with no dependency on the
//! rest of the store, so errors can carry it. (`Expectation::current(&state)` is
//! defined beside the state, in `model.rs`, so that this file depends on nothing.)

use std::fmt;

use serde::Serialize;

/// What a compare-and-swap write expects to find in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase", tag = "expect", content = "revision")]
pub enum Expectation {
    /// No state yet: the write creates the store's first revision.
    Absent,
    /// The stored state is at exactly this revision.
    Revision(u64),
}

impl Expectation {
    /// The revision a successful write under this expectation creates.
    pub fn next_revision(self) -> u64 {
        match self {
            Self::Absent => 1,
            Self::Revision(r) => r.saturating_add(1),
        }
    }

    /// Whether a store whose current revision is `found` meets this expectation.
    pub fn is_met_by(self, found: Option<u64>) -> bool {
        match self {
            Self::Absent => found.is_none(),
            Self::Revision(r) => found == Some(r),
        }
    }
}

impl fmt::Display for Expectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("no state"),
            Self::Revision(r) => write!(f, "revision {r}"),
        }
    }
}
