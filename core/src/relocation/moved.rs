//! The mark a move leaves in the state it moved out of (docs/decisions/0030-moving-a-store.md).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where a store's state went when it was moved to another backend
/// (`checklist backend migrate`, docs/backends.md "Moving a store to another backend").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovedTo {
    /// The backend it was moved to.
    pub backend: String,
    /// Where that store is, as it names itself (never a password).
    pub location: String,
    /// The revision it was moved at: the new store's first.
    pub revision: u64,
    /// When.
    pub at: DateTime<Utc>,
}
