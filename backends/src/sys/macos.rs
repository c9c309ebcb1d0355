//! macOS: when a process started.
#![allow(unsafe_code)]

/// When process `pid` started, in microseconds since the Unix epoch (`proc_pidinfo`
/// with `PROC_PIDTBSDINFO`). An absolute time, so it tells a reused pid apart across
/// reboots too. `None` when the process is gone or belongs to another user (the kernel
/// answers this flavor only for the same user or root).
pub(crate) fn start_micros(pid: u32) -> Option<u64> {
    let pid = libc::c_int::try_from(pid).ok()?;
    let size = libc::c_int::try_from(size_of::<libc::proc_bsdinfo>()).ok()?;
    let mut info = std::mem::MaybeUninit::<libc::proc_bsdinfo>::zeroed();
    // SAFETY: `info` is a writable buffer of exactly `size` bytes that outlives the
    // call; proc_pidinfo writes at most `size` bytes into it.
    let written =
        unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDTBSDINFO, 0, info.as_mut_ptr().cast(), size) };
    if written != size {
        return None;
    }
    // SAFETY: the kernel filled all `size` bytes (and all-zero bytes are a valid
    // proc_bsdinfo anyway: it holds only integers and byte arrays).
    let info = unsafe { info.assume_init() };
    info.pbi_start_tvsec
        .checked_mul(1_000_000)?
        .checked_add(info.pbi_start_tvusec)
}
