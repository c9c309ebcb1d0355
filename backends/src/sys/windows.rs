//! Windows: whether a process exists, when it started, our parent, and which file a
//! path names (volume serial number and file index).
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::Path;

use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, FILETIME, INVALID_HANDLE_VALUE, STILL_ACTIVE,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE,
    FILE_SHARE_READ, FILE_SHARE_WRITE, GetFileInformationByHandle,
};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, PROCESSENTRY32W, Process32FirstW, Process32NextW, TH32CS_SNAPPROCESS,
};
use windows_sys::Win32::System::Threading::{
    GetExitCodeProcess, GetProcessTimes, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
};

use super::Liveness;

/// A handle to process `pid` that may only query it, which Windows grants for nearly
/// every process, even another user's.
fn open_process(pid: u32) -> io::Result<OwnedHandle> {
    // SAFETY: OpenProcess takes no pointers; it returns a new handle or null.
    let handle = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid) };
    if handle.is_null() {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `handle` is a valid process handle that nothing else owns.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle) })
}

/// Whether process `pid` exists. A pid stays taken until the last handle to its
/// process is closed, so an exited process someone still holds is told apart by its
/// exit code. One that exited with code 259 (`STILL_ACTIVE`) reads as alive: its
/// lock then lasts until it expires, the safe side.
pub(crate) fn liveness(pid: u32) -> Liveness {
    let process = match open_process(pid) {
        Ok(process) => process,
        Err(e) => {
            return match e.raw_os_error().and_then(|code| u32::try_from(code).ok()) {
                // It exists but is protected (a system process, an elevated one).
                Some(ERROR_ACCESS_DENIED) => Liveness::Alive,
                // No process has this pid.
                Some(ERROR_INVALID_PARAMETER) => Liveness::Dead,
                _ => Liveness::Unknown,
            };
        }
    };
    match is_running(&process) {
        Some(true) => Liveness::Alive,
        Some(false) => Liveness::Dead,
        None => Liveness::Unknown,
    }
}

/// Whether `process` has not exited yet; `None` when Windows does not say.
fn is_running(process: &OwnedHandle) -> Option<bool> {
    let mut exit_code = 0u32;
    // SAFETY: the handle is valid while `process` lives; `exit_code` outlives the call.
    if unsafe { GetExitCodeProcess(process.as_raw_handle(), &mut exit_code) } == 0 {
        return None;
    }
    Some(exit_code == STILL_ACTIVE.cast_unsigned())
}

/// When process `pid` was created, in 100-ns intervals since 1601-01-01 UTC (a
/// `FILETIME`): an absolute time, so it tells a reused pid apart across reboots too.
/// `None` once the process has exited, even while someone still holds a handle to it.
pub(crate) fn creation_time(pid: u32) -> Option<u64> {
    let process = open_process(pid).ok()?;
    if !is_running(&process)? {
        return None;
    }
    let (mut created, mut exited, mut kernel, mut user) = Default::default();
    // SAFETY: the handle is valid while `process` lives; the four FILETIMEs outlive
    // the call.
    let ok = unsafe {
        GetProcessTimes(
            process.as_raw_handle(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    (ok != 0).then(|| filetime(created))
}

fn filetime(time: FILETIME) -> u64 {
    (u64::from(time.dwHighDateTime) << 32) | u64::from(time.dwLowDateTime)
}

/// The pid of the process that created this one, from a snapshot of the process
/// table (the documented way; it costs about a millisecond, once per process).
pub(crate) fn parent_pid() -> Option<u32> {
    // SAFETY: CreateToolhelp32Snapshot takes no pointers; it returns a new handle or
    // INVALID_HANDLE_VALUE.
    let snapshot = unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) };
    if snapshot == INVALID_HANDLE_VALUE || snapshot.is_null() {
        return None;
    }
    // SAFETY: `snapshot` is a valid handle that nothing else owns.
    let snapshot = unsafe { OwnedHandle::from_raw_handle(snapshot) };
    let me = std::process::id();
    let mut entry = PROCESSENTRY32W {
        dwSize: u32::try_from(size_of::<PROCESSENTRY32W>()).ok()?,
        ..PROCESSENTRY32W::default()
    };
    // SAFETY: the handle is valid while `snapshot` lives; `entry` outlives the call and
    // its dwSize is set as the call requires.
    let mut found = unsafe { Process32FirstW(snapshot.as_raw_handle(), &mut entry) } != 0;
    while found {
        if entry.th32ProcessID == me {
            return Some(entry.th32ParentProcessID);
        }
        // SAFETY: as for Process32FirstW.
        found = unsafe { Process32NextW(snapshot.as_raw_handle(), &mut entry) } != 0;
    }
    None
}

/// The volume serial number and file index of what `path` names (the link itself for
/// a symbolic link), which together identify a file as device and inode do on Unix.
/// The handle asks for no access and shares everything, so it never stands in the way
/// of another process reading, renaming or deleting the file.
pub(crate) fn file_id(path: &Path) -> io::Result<(u64, u64)> {
    let file = OpenOptions::new()
        .access_mode(0)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    let mut info = BY_HANDLE_FILE_INFORMATION::default();
    // SAFETY: the handle is valid while `file` lives; `info` outlives the call.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Ok((u64::from(info.dwVolumeSerialNumber), index))
}
