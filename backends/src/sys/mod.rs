//! The operating-system calls std does not wrap, one small module per platform.
//!
//! This is the only place in the workspace allowed `unsafe` (the workspace denies
//! `unsafe_code`; each platform module allows it for itself). Every `unsafe` block is
//! one foreign call whose pointers are to locals that outlive it, with a `SAFETY`
//! comment saying so; handles are owned by `OwnedHandle` at once, so none leaks or is
//! closed twice. Linux needs nothing here: `/proc` and rustix cover it
//! (docs/decisions/0017-portability.md).

#[cfg(target_os = "macos")]
pub(crate) mod macos;
#[cfg(windows)]
pub(crate) mod windows;

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
