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
    /// When it started, where the platform tells (tells a reused pid apart).
    pub(crate) start: Option<ProcessStart>,
}

/// When a process started, precisely enough to tell two processes with the same pid
/// apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessStart {
    /// The kernel's id of the current boot (Linux `boot_id`).
    pub(crate) boot_id: String,
    /// Start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
    pub(crate) ticks: u64,
    /// The same instant as wall-clock time, for people.
    pub(crate) at: chrono::DateTime<chrono::Utc>,
}

impl ProcessIdentity {
    /// This process, computed once.
    pub(crate) fn current() -> &'static ProcessIdentity {
        static CURRENT: OnceLock<ProcessIdentity> = OnceLock::new();
        CURRENT.get_or_init(|| {
            let me = checklist_core::identity::current();
            ProcessIdentity {
                pid: me.pid,
                ppid: parent_pid(),
                hostname: me.hostname.clone(),
                user: me.user.clone(),
                start: process_start(me.pid),
            }
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

/// When the process `pid` on this host started (Linux only; `None` elsewhere or when
/// it cannot be read, e.g. because the process is gone).
#[cfg(target_os = "linux")]
pub(crate) fn process_start(pid: u32) -> Option<ProcessStart> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain anything, so count
    // fields from the last ')'. Field 3 is the first after it; starttime is field 22.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after_name.split_whitespace().nth(19)?.parse().ok()?;
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()?
        .trim()
        .to_owned();
    let boot_time: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let millis = i64::try_from(ticks.checked_mul(1000)? / hz).ok()?;
    let at = chrono::DateTime::from_timestamp(boot_time, 0)? + chrono::Duration::milliseconds(millis);
    Some(ProcessStart { boot_id, ticks, at })
}

/// When the process `pid` on this host started (Linux only; `None` elsewhere or when
/// it cannot be read, e.g. because the process is gone).
#[cfg(not(target_os = "linux"))]
pub(crate) fn process_start(_pid: u32) -> Option<ProcessStart> {
    None
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

    #[cfg(target_os = "linux")]
    #[test]
    fn start_times_tell_processes_apart() {
        let me = process_start(std::process::id()).unwrap();
        assert_eq!(process_start(std::process::id()), Some(me.clone()));
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let other = process_start(child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(other.boot_id, me.boot_id);
        assert!(other.ticks >= me.ticks);
        assert!(
            (other.at - chrono::Utc::now()).num_seconds().abs() < 60,
            "{:?}",
            other.at
        );
        assert_eq!(process_start(child.id()), None);
    }

    #[test]
    fn identity_is_filled_in() {
        let me = ProcessIdentity::current();
        assert_eq!(me.pid, std::process::id());
        assert!(!me.hostname.is_empty());
        assert!(!me.user.is_empty());
    }
}
