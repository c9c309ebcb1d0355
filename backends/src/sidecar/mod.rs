//! What lives beside a state document in `.checklist/`, as files, shared by the file
//! engine and the sqlite backend: the audit trail, the backups and their index, the
//! archive and its history, and the quarantine.

pub(crate) mod archive;
pub(crate) mod audit_log;
pub(crate) mod backups;
pub(crate) mod quarantine;
