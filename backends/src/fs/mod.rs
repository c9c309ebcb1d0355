//! The file system as the file-based parts of every backend use it: the [`vfs`] seam
//! all their I/O goes through, [`fault`] injection and [`crash`] (power-loss)
//! simulation behind it, [`atomic`] durable replacement, and which file a path names.

pub mod atomic;
pub mod crash;
pub mod fault;
pub(crate) mod identity;
pub mod vfs;
pub(crate) mod watch;
