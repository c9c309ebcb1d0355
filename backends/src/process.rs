//! Facts about processes: who we are (for lock metadata) and whether another process
//! is still alive (for stale temp files and locks).

use std::sync::OnceLock;

/// Who this process is, as recorded in lock metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessIdentity {
    pub(crate) pid: u32,
    pub(crate) ppid: Option<u32>,
    pub(crate) hostname: String,
    pub(crate) user: String,
}

impl ProcessIdentity {
    /// This process, computed once.
    pub(crate) fn current() -> &'static ProcessIdentity {
        static CURRENT: OnceLock<ProcessIdentity> = OnceLock::new();
        CURRENT.get_or_init(|| ProcessIdentity {
            pid: std::process::id(),
            ppid: parent_pid(),
            hostname: whoami::hostname().unwrap_or_else(|_| "unknown-host".to_owned()),
            user: whoami::username().unwrap_or_else(|_| "unknown-user".to_owned()),
        })
    }
}

/// Whether a process exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// It exists (it may belong to another user).
    Alive,
    /// No process has this pid.
    Dead,
    /// This platform cannot tell.
    Unknown,
}

#[cfg(unix)]
fn parent_pid() -> Option<u32> {
    rustix::process::getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs())
}

#[cfg(not(unix))]
fn parent_pid() -> Option<u32> {
    None
}

/// Whether the process `pid` on this host exists.
#[cfg(unix)]
pub(crate) fn liveness(pid: u32) -> Liveness {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return Liveness::Dead;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => Liveness::Alive,
        // It exists but belongs to someone we may not signal.
        Err(rustix::io::Errno::PERM) => Liveness::Alive,
        Err(rustix::io::Errno::SRCH) => Liveness::Dead,
        Err(_) => Liveness::Unknown,
    }
}

/// Whether the process `pid` on this host exists.
#[cfg(not(unix))]
pub(crate) fn liveness(pid: u32) -> Liveness {
    if pid == std::process::id() {
        Liveness::Alive
    } else {
        Liveness::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_dead() {
        assert_eq!(liveness(std::process::id()), Liveness::Alive);
        #[cfg(unix)]
        {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            assert_eq!(liveness(pid), Liveness::Dead);
        }
    }

    #[test]
    fn identity_is_filled_in() {
        let me = ProcessIdentity::current();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.hostname.is_empty());
        assert!(!me.user.is_empty());
    }
}
