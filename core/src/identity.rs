//! Who this process is: recorded in locks and audit records.

use std::sync::OnceLock;

/// The process, host and user doing something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub hostname: String,
    /// User name.
    pub user: String,
}

/// This process, computed once.
pub fn current() -> &'static Identity {
    static CURRENT: OnceLock<Identity> = OnceLock::new();
    CURRENT.get_or_init(|| Identity {
        pid: std::process::id(),
        hostname: whoami::hostname().unwrap_or_else(|_| "unknown-host".to_owned()),
        user: whoami::username().unwrap_or_else(|_| "unknown-user".to_owned()),
    })
}
