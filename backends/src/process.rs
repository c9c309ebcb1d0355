//! Facts about processes: who we are (for lock metadata) and whether another process
//! is still alive (for stale temp files and locks).

pub(crate) use crate::sys::Liveness;
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
    /// The clock `ticks` counts on: on Linux the kernel's id of the current boot
    /// (`boot_id`), ticks being relative to it; where the start time is absolute, the
    /// clock's name — [`FILETIME_CLOCK`] on Windows, [`UNIX_MICROS_CLOCK`] on macOS.
    pub(crate) boot_id: String,
    /// Start time on that clock: clock ticks since boot (field 22 of
    /// `/proc/<pid>/stat`) on Linux, 100-ns intervals since 1601 on Windows,
    /// microseconds since 1970 on macOS.
    pub(crate) ticks: u64,
    /// The same instant as wall-clock time, for people.
    pub(crate) at: chrono::DateTime<chrono::Utc>,
}

/// The `boot_id` of a Windows start time: `ticks` is the process creation `FILETIME`.
#[cfg(windows)]
pub(crate) const FILETIME_CLOCK: &str = "windows-filetime";

/// The `boot_id` of a macOS start time: `ticks` is microseconds since the Unix epoch.
#[cfg(target_os = "macos")]
pub(crate) const UNIX_MICROS_CLOCK: &str = "unix-micros";

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

#[cfg(unix)]
fn parent_pid() -> Option<u32> {
    rustix::process::getppid().map(|p| p.as_raw_nonzero().get().unsigned_abs())
}

#[cfg(windows)]
fn parent_pid() -> Option<u32> {
    crate::sys::windows::parent_pid()
}

#[cfg(not(any(unix, windows)))]
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
#[cfg(windows)]
pub(crate) fn liveness(pid: u32) -> Liveness {
    crate::sys::windows::liveness(pid)
}

/// Whether the process `pid` on this host exists.
#[cfg(not(any(unix, windows)))]
pub(crate) fn liveness(pid: u32) -> Liveness {
    if pid == std::process::id() {
        Liveness::Alive
    } else {
        Liveness::Unknown
    }
}

/// When the process `pid` on this host started; `None` when it cannot be read, e.g.
/// because the process is gone.
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

/// When the process `pid` on this host started; `None` when it cannot be read, e.g.
/// because the process is gone.
#[cfg(windows)]
pub(crate) fn process_start(pid: u32) -> Option<ProcessStart> {
    /// Seconds from 1601-01-01 (the FILETIME epoch) to 1970-01-01.
    const FILETIME_TO_UNIX_SECS: i64 = 11_644_473_600;
    let ticks = crate::sys::windows::creation_time(pid)?;
    let secs = i64::try_from(ticks / 10_000_000).ok()? - FILETIME_TO_UNIX_SECS;
    let nanos = u32::try_from(ticks % 10_000_000).ok()? * 100;
    Some(ProcessStart {
        boot_id: FILETIME_CLOCK.to_owned(),
        ticks,
        at: chrono::DateTime::from_timestamp(secs, nanos)?,
    })
}

/// When the process `pid` on this host started; `None` when it cannot be read, e.g.
/// because the process is gone or belongs to another user.
#[cfg(target_os = "macos")]
pub(crate) fn process_start(pid: u32) -> Option<ProcessStart> {
    let ticks = crate::sys::macos::start_micros(pid)?;
    Some(ProcessStart {
        boot_id: UNIX_MICROS_CLOCK.to_owned(),
        ticks,
        at: chrono::DateTime::from_timestamp_micros(i64::try_from(ticks).ok()?)?,
    })
}

/// When the process `pid` on this host started: not known on this platform, so a
/// reused pid is told apart only by the holder's liveness lock.
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub(crate) fn process_start(_pid: u32) -> Option<ProcessStart> {
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use std::process::Stdio;

    use super::*;

    /// A process that exits at once: this test binary listing its tests.
    fn short_lived_child() -> std::process::Child {
        std::process::Command::new(std::env::current_exe().unwrap())
            .arg("--list")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// A process that waits until it is killed (or its stdin closes).
    pub(crate) fn long_lived_child() -> std::process::Child {
        let mut command = if cfg!(windows) {
            let mut command = std::process::Command::new("cmd");
            command.args(["/C", "pause"]);
            command
        } else {
            let mut command = std::process::Command::new("sleep");
            command.arg("30");
            command
        };
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    }

    #[test]
    fn this_process_is_alive_and_a_reaped_child_is_dead() {
        assert_eq!(liveness(std::process::id()), Liveness::Alive);
        let mut child = long_lived_child();
        let pid = child.id();
        assert_eq!(liveness(pid), Liveness::Alive);
        child.kill().unwrap();
        child.wait().unwrap();
        drop(child);
        assert_eq!(liveness(pid), Liveness::Dead);
        let mut child = short_lived_child();
        let pid = child.id();
        child.wait().unwrap();
        drop(child);
        assert_eq!(liveness(pid), Liveness::Dead);
    }

    #[cfg(any(target_os = "linux", target_os = "macos", windows))]
    #[test]
    fn start_times_tell_processes_apart() {
        let me = process_start(std::process::id()).unwrap();
        assert_eq!(process_start(std::process::id()), Some(me.clone()));
        let mut child = long_lived_child();
        let pid = child.id();
        let other = process_start(pid).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        drop(child);
        assert_eq!(other.boot_id, me.boot_id);
        assert!(other.ticks >= me.ticks);
        assert!(
            (other.at - chrono::Utc::now()).num_seconds().abs() < 60,
            "{:?}",
            other.at
        );
        assert_eq!(process_start(pid), None);
    }

    #[test]
    fn identity_is_filled_in() {
        let me = ProcessIdentity::current();
        assert_eq!(me.pid, std::process::id());
        #[cfg(any(unix, windows))]
        assert!(me.ppid.is_some_and(|ppid| ppid != me.pid), "{:?}", me.ppid);
        #[cfg(any(target_os = "linux", target_os = "macos", windows))]
        assert!(me.start.is_some());
        assert!(!me.hostname.is_empty());
        assert!(!me.user.is_empty());
    }
}
