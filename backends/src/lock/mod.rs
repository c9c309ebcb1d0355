//! The lock providers: [`file`] (across processes, `.checklist/.lock`; its on-disk
//! [`format`] and staleness rule apart from the I/O), one per store [`directory`], and
//! [`in_process`] (the tasks of one process).

pub(crate) mod directory;
pub(crate) mod file;
pub(crate) mod format;
pub(crate) mod in_process;
pub(crate) mod queue;
