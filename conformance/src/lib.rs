//! # checklist-conformance
//!
//! The acceptance suite every checklist state-store backend must pass: one public async
//! function per `# Contract` bullet of [`StateStore`], [`LockProvider`] and
//! [`BackupPolicy`], and the [`conformance_tests!`] macro that gives a backend one named
//! test per case.
//!
//! A backend author adds this crate as a dev-dependency, writes an async factory that
//! returns a fresh, empty [`Subject`], and expands the macro:
//!
//! ```
//! use std::sync::Arc;
//! use checklist_backends::{InProcessLockProvider, MemoryStore};
//! use checklist_conformance::{Subject, conformance_tests};
//!
//! async fn subject() -> Subject {
//!     let store = MemoryStore::new();
//!     let reopen = store.clone();
//!     Subject::new(Arc::new(store.clone()), Arc::new(InProcessLockProvider::new("memory:doc")))
//!         .reopen_with(move || Arc::new(reopen.clone()))
//!         .raw_access(checklist_conformance::RawAccess::new(
//!             { let s = store.clone(); move || Ok(s.raw()) },
//!             move |bytes| { store.replace_raw(bytes.to_vec()); Ok(()) },
//!         ))
//! }
//!
//! conformance_tests!(subject);
//! # fn main() {}
//! ```
//!
//! Each case is a plain `#[test]` that runs the async case on a multi-threaded tokio
//! runtime, so the backend's crate does not need tokio's test macros.
//!
//! [`builtin::subject_for`] builds the subject of a built-in backend (yaml, json,
//! memory) in a directory of the caller's choosing; it is what this crate's own tests
//! and `checklist conformance` (the suite run on the user's file system) share, and
//! [`all_cases`] with [`Case::run`] lets such a runner list and run the cases itself.
#![deny(missing_docs)]

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use checklist_core::config::BackupSettings;
use checklist_core::{BackupPolicy, BackupRecord, LockInfo, LockProvider, RollingBackups, StateStore};

pub mod backup_policy;
pub mod builtin;
pub mod coordinator;
pub mod follow;
mod forward;
pub mod holder;
pub mod locks;
#[cfg(feature = "postgres")]
pub mod pg_server;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod recovery;
pub mod store;
mod support;
pub mod testkit;

/// Why a case failed: one sentence saying what the contract expected and what
/// happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// The result of one case.
pub type CaseResult = Result<(), Failure>;

type ReadRaw = dyn Fn() -> io::Result<Option<Vec<u8>>> + Send + Sync;
type WriteRaw = dyn Fn(&[u8]) -> io::Result<()> + Send + Sync;
type RemoveRaw = dyn Fn() -> io::Result<()> + Send + Sync;

/// Direct access to the stored document's bytes, bypassing the store — how the
/// corruption cases damage a document the way a disk or a careless editor would.
#[derive(Clone)]
pub struct RawAccess {
    read: Arc<ReadRaw>,
    write: Arc<WriteRaw>,
    remove: Option<Arc<RemoveRaw>>,
}

impl RawAccess {
    /// Access through two closures: read the bytes (`None` when nothing is stored)
    /// and replace them.
    pub fn new(
        read: impl Fn() -> io::Result<Option<Vec<u8>>> + Send + Sync + 'static,
        write: impl Fn(&[u8]) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        Self {
            read: Arc::new(read),
            write: Arc::new(write),
            remove: None,
        }
    }

    /// The same access, able to delete the stored bytes too.
    pub fn removable(mut self, remove: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> Self {
        self.remove = Some(Arc::new(remove));
        self
    }

    /// Access to a document kept in the file at `path`.
    pub fn file(path: impl Into<std::path::PathBuf>) -> Self {
        let path = path.into();
        let read_path = path.clone();
        let remove_path = path.clone();
        Self::new(
            move || match std::fs::read(&read_path) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            },
            move |bytes| std::fs::write(&path, bytes),
        )
        .removable(move || std::fs::remove_file(&remove_path))
    }

    /// The stored bytes.
    ///
    /// # Errors
    /// The I/O error of the underlying read.
    pub fn read(&self) -> io::Result<Option<Vec<u8>>> {
        (self.read)()
    }

    /// Replaces the stored bytes.
    ///
    /// # Errors
    /// The I/O error of the underlying write.
    pub fn write(&self, bytes: &[u8]) -> io::Result<()> {
        (self.write)(bytes)
    }

    /// Deletes the stored bytes.
    ///
    /// # Errors
    /// [`io::ErrorKind::Unsupported`] when this access was built without
    /// [`removable`](Self::removable); otherwise the underlying error.
    pub fn remove(&self) -> io::Result<()> {
        match &self.remove {
            Some(remove) => remove(),
            None => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this raw access cannot delete; build it with `removable`",
            )),
        }
    }
}

impl fmt::Debug for RawAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawAccess")
    }
}

type Reopen = dyn Fn() -> Arc<dyn StateStore> + Send + Sync;
type ReopenLocks = dyn Fn() -> Arc<dyn LockProvider> + Send + Sync;
type PlantStaleLock = dyn Fn(&LockInfo) -> io::Result<()> + Send + Sync;
type BackupAccess = dyn Fn(&BackupRecord) -> RawAccess + Send + Sync;
type TearAudit = dyn Fn() -> io::Result<()> + Send + Sync;
type HoldElsewhere = dyn Fn(std::time::Duration) -> io::Result<holder::HolderProcess> + Send + Sync;

/// The backend under test: a fresh, empty store with its lock provider and backup
/// policy, plus what the cases need to inspect it.
pub struct Subject {
    /// The store, empty.
    pub store: Arc<dyn StateStore>,
    /// Its lock provider, free.
    pub locks: Arc<dyn LockProvider>,
    /// The backup policy to check (default: [`RollingBackups`] keeping 3).
    pub policy: Arc<dyn BackupPolicy>,
    policy_keeps: Option<usize>,
    reopen: Option<Arc<Reopen>>,
    reopen_locks: Option<Arc<ReopenLocks>>,
    plant_stale_lock: Option<Arc<PlantStaleLock>>,
    raw: Option<RawAccess>,
    backup_index: Option<RawAccess>,
    backup_access: Option<Arc<BackupAccess>>,
    tear_audit: Option<Arc<TearAudit>>,
    hold_elsewhere: Option<Arc<HoldElsewhere>>,
    _keep_alive: Vec<Box<dyn Any + Send + Sync>>,
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subject")
            .field("store", &self.store)
            .field("locks", &self.locks)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Subject {
    /// A subject made of `store` and `locks`. What they can do beyond the common
    /// contract is what they declare ([`StoreInfo`](checklist_core::StoreInfo) and
    /// [`LockProvider::capabilities`]).
    pub fn new(store: Arc<dyn StateStore>, locks: Arc<dyn LockProvider>) -> Self {
        Self {
            store,
            locks,
            policy: Arc::new(RollingBackups::default()),
            policy_keeps: Some(BackupSettings::default().keep),
            reopen: None,
            reopen_locks: None,
            plant_stale_lock: None,
            raw: None,
            backup_index: None,
            backup_access: None,
            tear_audit: None,
            hold_elsewhere: None,
            _keep_alive: Vec::new(),
        }
    }

    /// Sets the backup policy to check, without declaring how many backups it keeps.
    pub fn with_policy(mut self, policy: Arc<dyn BackupPolicy>) -> Self {
        self.policy = policy;
        self.policy_keeps = None;
        self
    }

    /// Sets the backup policy to check, declaring that it keeps the newest `keep`
    /// backups (a keep-N rolling policy); the case `prune_keeps_the_declared_newest_n`
    /// holds it to that. The default policy is declared as keeping 3.
    pub fn with_policy_keeping(mut self, policy: Arc<dyn BackupPolicy>, keep: usize) -> Self {
        self.policy = policy;
        self.policy_keeps = Some(keep);
        self
    }

    /// How many backups the policy is declared to keep, if it was.
    pub fn policy_keeps(&self) -> Option<usize> {
        self.policy_keeps
    }

    /// How to open a second, independent handle on the same store (another
    /// `FileStore::open` of the same directory, a clone of a memory store…).
    pub fn reopen_with(mut self, reopen: impl Fn() -> Arc<dyn StateStore> + Send + Sync + 'static) -> Self {
        self.reopen = Some(Arc::new(reopen));
        self
    }

    /// How to open a second, independent lock provider on the same lock — what
    /// another process would open (another `FileLockProvider::new` of the same
    /// directory, a clone of an in-process provider…).
    pub fn reopen_locks_with(
        mut self,
        reopen: impl Fn() -> Arc<dyn LockProvider> + Send + Sync + 'static,
    ) -> Self {
        self.reopen_locks = Some(Arc::new(reopen));
        self
    }

    /// How to make the lock look held by a process that is gone: given the metadata
    /// of a real (released) acquisition, write a lock with that metadata but a pid
    /// that no longer exists. Needed when `stale_lock_detection` is declared.
    pub fn plant_stale_lock_with(
        mut self,
        plant: impl Fn(&LockInfo) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.plant_stale_lock = Some(Arc::new(plant));
        self
    }

    /// Direct access to the stored bytes, for the corruption cases.
    pub fn raw_access(mut self, raw: RawAccess) -> Self {
        self.raw = Some(raw);
        self
    }

    /// Direct access to the backup index (`.backup/manifest.yaml` of the file
    /// backends), for the case that loses it. Needed when the store's capabilities
    /// declare a [`backup_index`](checklist_core::Capabilities::backup_index).
    pub fn backup_index_access(mut self, index: RawAccess) -> Self {
        self.backup_index = Some(index);
        self
    }

    /// The backup index access.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing [`backup_index_access`](Self::backup_index_access).
    pub fn backup_index(&self) -> Result<&RawAccess, Failure> {
        self.backup_index.as_ref().ok_or_else(|| {
            Failure(
                "the store declares a backup index but the subject gives no `backup_index_access` to test it"
                    .into(),
            )
        })
    }

    /// Direct access to the bytes one backup keeps, given its record as listed: how the
    /// cases damage a backup the way a disk would, and check that what the store
    /// promises to leave alone is still there.
    pub fn backup_access_with(
        mut self,
        access: impl Fn(&BackupRecord) -> RawAccess + Send + Sync + 'static,
    ) -> Self {
        self.backup_access = Some(Arc::new(access));
        self
    }

    /// The raw access to the bytes of `backup`.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing [`backup_access_with`](Self::backup_access_with).
    pub fn backup_access(&self, backup: &BackupRecord) -> Result<RawAccess, Failure> {
        self.backup_access.as_ref().map(|access| access(backup)).ok_or_else(|| {
            Failure("this case needs direct access to a backup's bytes: give the subject `backup_access_with`".into())
        })
    }

    /// How to leave in the audit trail what a crash in the middle of an append leaves:
    /// the first part of a record, cut off (a file's unterminated last line, a row
    /// holding half a record).
    pub fn tear_audit_with(mut self, tear: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> Self {
        self.tear_audit = Some(Arc::new(tear));
        self
    }

    /// Tears the audit trail as a crash mid-append would.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing hook, or the hook's I/O error.
    pub fn tear_audit(&self) -> Result<(), Failure> {
        let tear = self.tear_audit.as_ref().ok_or_else(|| {
            Failure("this case needs to tear the audit trail as a crash would: give the subject `tear_audit_with`".into())
        })?;
        tear().map_err(|e| Failure(format!("tearing the audit trail: {e}")))
    }

    /// How to make another process hold the lock, with the given expiry: for a lock
    /// that [`holder::LockSpec`] can describe, `move |expiry|
    /// HolderProcess::spawn(&spec, expiry)`. The cases with a live, stopped or killed
    /// holder in another process need it where the provider declares itself
    /// cross-process.
    pub fn hold_in_another_process_with(
        mut self,
        hold: impl Fn(std::time::Duration) -> io::Result<holder::HolderProcess> + Send + Sync + 'static,
    ) -> Self {
        self.hold_elsewhere = Some(Arc::new(hold));
        self
    }

    /// Starts a holder of the lock in another process, with `expiry`, once it holds it.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing hook, or why the holder did not take the lock.
    pub fn hold_in_another_process(
        &self,
        expiry: std::time::Duration,
    ) -> Result<holder::HolderProcess, Failure> {
        let hold = self.hold_elsewhere.as_ref().ok_or_else(|| {
            Failure(
                "this case needs a holder in another process: give the subject `hold_in_another_process_with`"
                    .into(),
            )
        })?;
        hold(expiry).map_err(|e| Failure(format!("starting a holder in another process: {e}")))
    }

    /// Keeps `value` (a temp directory, say) alive as long as the subject.
    pub fn keep_alive(mut self, value: impl Any + Send + Sync) -> Self {
        self._keep_alive.push(Box::new(value));
        self
    }

    /// A second handle on the same store.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing [`reopen_with`](Self::reopen_with).
    pub fn reopen(&self) -> Result<Arc<dyn StateStore>, Failure> {
        self.reopen.as_ref().map(|f| f()).ok_or_else(|| {
            Failure("this case needs a second handle on the store: give the subject `reopen_with`".into())
        })
    }

    /// A second, independent lock provider on the same lock.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing [`reopen_locks_with`](Self::reopen_locks_with).
    pub fn reopen_locks(&self) -> Result<Arc<dyn LockProvider>, Failure> {
        self.reopen_locks.as_ref().map(|f| f()).ok_or_else(|| {
            Failure("this case needs a second lock provider on the same lock: give the subject `reopen_locks_with`".into())
        })
    }

    /// Plants a lock held by a process that is gone.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing hook, or the hook's I/O error.
    pub fn plant_stale_lock(&self, like: &LockInfo) -> Result<(), Failure> {
        let plant = self.plant_stale_lock.as_ref().ok_or_else(|| {
            Failure(
                "the subject declares stale_lock_detection but gives no `plant_stale_lock_with` to test it"
                    .into(),
            )
        })?;
        plant(like).map_err(|e| Failure(format!("planting a stale lock: {e}")))
    }

    /// The raw access.
    ///
    /// # Errors
    /// A [`Failure`] naming the missing [`raw_access`](Self::raw_access).
    pub fn raw(&self) -> Result<&RawAccess, Failure> {
        self.raw.as_ref().ok_or_else(|| {
            Failure("this case needs direct access to the stored bytes: give the subject `raw_access`".into())
        })
    }
}

/// A boxed case future.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

/// One case of the suite, for runners that list and run cases themselves.
#[derive(Clone, Copy)]
pub struct Case {
    /// The contract it checks: `store`, `locks`, `coordinator`, `recovery`,
    /// `backup_policy` or `follow`.
    pub suite: &'static str,
    /// Its name, the same as its function's.
    pub name: &'static str,
    /// Runs it.
    pub run: for<'a> fn(&'a Subject) -> CaseFuture<'a>,
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{}", self.suite, self.name)
    }
}

/// Calls `$callback!` with the whole list of cases, grouped by suite. The single
/// source of truth for [`conformance_tests!`] and [`all_cases`].
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*)
            store: [
                read_of_empty_store_is_absent,
                first_write_creates_revision_1,
                write_then_read_round_trips,
                revision_increases_by_one_per_write,
                absent_expectation_conflicts_when_state_exists,
                stale_revision_conflicts,
                future_revision_conflicts,
                revision_expectation_on_an_empty_store_conflicts,
                concurrent_writers_with_the_same_expectation_exactly_one_wins,
                readers_never_see_a_torn_write,
                caller_revision_and_checksum_are_ignored,
                invalid_document_is_refused_and_nothing_changes,
                checksum_is_verified_on_read,
                unparseable_bytes_are_a_parse_error,
                failed_write_leaves_the_previous_state,
                a_second_handle_sees_every_commit,
                audit_records_read_back_in_order,
                audit_rotation_keeps_records_in_order,
                concurrent_audit_appends_are_all_kept,
                backup_keeps_the_current_state,
                write_keeping_backup_keeps_the_replaced_revision,
                write_keeping_backup_prunes_by_the_policy,
                archive_round_trips_and_indexes_once_per_instance,
                unknown_or_unsafe_archive_ids_are_refused,
                every_json_value_round_trips,
                an_unchanged_document_commits_a_new_revision,
                absent_expectation_over_a_corrupt_state_changes_nothing,
                audit_records_keep_every_character,
                a_torn_audit_record_is_reported_not_fatal,
                delete_backup_removes_only_that_backup,
                a_deleted_backup_is_gone_for_good,
                a_damaged_backup_is_refused,
                rebuilding_the_backup_index_deletes_nothing,
                read_archived_returns_the_instance_asked_for,
                archiving_again_replaces_the_archived_document,
                an_invalid_instance_is_not_archived,
                quarantine_is_listed_oldest_first,
                an_imported_backup_is_listed_as_it_was,
                an_imported_quarantined_document_is_kept_as_it_was,
                a_moved_state_refuses_every_write_but_one_naming_its_bytes,
            ],
            locks: [
                lock_is_exclusive,
                acquire_times_out_with_holder,
                waiters_are_visible,
                release_lets_the_next_acquire_in,
                lock_ids_are_unique,
                force_release_needs_the_lock_id,
                dropping_the_acquire_future_cancels_it,
                many_tasks_take_turns,
                independent_providers_exclude_each_other,
                holder_notes_are_shown_to_every_provider,
                a_live_holder_keeps_the_lock_past_its_expiry,
                stale_lock_is_reclaimed,
                stale_lock_is_broken_by_exactly_one_waiter,
                a_holder_learns_of_a_release_by_another_provider,
                a_live_holder_in_another_process_keeps_the_lock,
                a_stopped_holder_loses_the_lock_after_its_expiry,
                a_killed_holder_in_another_process_is_replaced_at_once,
            ],
            coordinator: [
                commit_applies_the_change_and_audits_it,
                change_error_rolls_back,
                change_panic_rolls_back,
                async_change_panic_rolls_back,
                schema_violation_rolls_back,
                secret_is_refused_and_rolls_back,
                secret_is_redacted,
                lost_lock_rolls_back,
                conflict_rolls_back_and_is_recorded,
                conflict_retry_is_bounded,
                concurrent_transactions_each_add_one_step,
                nested_read_returns_and_nested_write_is_refused,
                snapshot_is_independent,
                backups_follow_the_policy,
            ],
            recovery: [
                read_raw_returns_the_stored_bytes,
                quarantine_keeps_the_exact_bytes,
                write_over_needs_the_exact_bytes,
                read_backup_verifies,
                backup_index_is_rebuilt_after_deletion,
                rotation_keeps_exactly_n,
                flipped_byte_is_recovered,
                truncation_at_every_tenth_is_recovered,
                emptied_state_is_recovered,
                unparseable_state_is_recovered,
                schema_violation_is_recovered,
                wrong_checksum_is_recovered,
                recovery_without_a_lost_revision_has_no_data_loss,
                recovered_state_loads_clean_and_is_not_recovered_again,
                concurrent_loads_recover_once,
                missing_state_is_recovered,
                missing_state_restores_and_resets_above_every_committed_revision,
                recovery_of_an_uninitialized_store_says_so,
                no_valid_backup_is_a_clear_error_and_nothing_changes,
                reset_records_data_loss,
                auto_recovery_off_changes_nothing,
                explicit_restore_is_audited,
                restore_over_a_corrupt_state_quarantines_it,
                reseal_accepts_a_checksum_only_edit,
                reseal_refuses_a_schema_violation,
            ],
            backup_policy: [
                nothing_to_back_up_before_the_first_write,
                prune_never_removes_the_newest_backup,
                prune_only_names_listed_backups,
                prune_keeps_the_declared_newest_n,
                prune_counts_a_revision_once,
                recovery_order_is_a_permutation,
                a_keep_n_policy_backs_up_every_commit,
            ],
            follow: [
                a_watch_wakes_for_a_commit_through_another_handle,
                a_watch_wakes_for_every_commit_after_it_was_made,
                a_follower_sees_every_commit_in_order_once,
                a_follower_starting_between_commits_misses_none_after_its_start,
            ],
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_tests {
    (($factory:path) $($suite:ident : [ $($case:ident),* $(,)? ]),* $(,)?) => {
        $($(
            #[test]
            fn $case() {
                $crate::run_case(stringify!($case), async {
                    let subject = $factory().await;
                    $crate::$suite::$case(&subject).await
                });
            }
        )*)*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_optional_tests {
    (($factory:path) $($suite:ident : [ $($case:ident),* $(,)? ]),* $(,)?) => {
        $($(
            #[test]
            fn $case() {
                $crate::run_case(stringify!($case), async {
                    match $factory().await {
                        Some(subject) => $crate::$suite::$case(&subject).await,
                        None => Ok(()),
                    }
                });
            }
        )*)*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __emit_case_list {
    (() $($suite:ident : [ $($case:ident),* $(,)? ]),* $(,)?) => {
        vec![$($(
            $crate::Case {
                suite: stringify!($suite),
                name: stringify!($case),
                run: |subject| Box::pin($crate::$suite::$case(subject)),
            },
        )*)*]
    };
}

/// Expands to one `#[test]` per conformance case, each calling `$factory().await` for
/// a fresh [`Subject`]. Use it inside a module per backend.
///
/// `conformance_tests!(factory, optional)` takes a factory returning
/// `Option<Subject>`, for a backend whose storage a machine may lack (a server): a case
/// whose factory returns `None` passes without running — the factory says why, and a
/// CI that must not skip makes the factory fail instead.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::__for_each_case!(__emit_tests!($factory));
    };
    ($factory:path, optional) => {
        $crate::__for_each_case!(__emit_optional_tests!($factory));
    };
}

/// Every case, in suite order.
///
/// In a process started as a lock holder ([`holder::HOLD_ENV`]) it serves that order
/// instead and exits: how a runner of its own in a test is its own holder process.
pub fn all_cases() -> Vec<Case> {
    holder::serve_if_asked();
    __for_each_case!(__emit_case_list!())
}

/// Runs one case on a fresh multi-threaded tokio runtime and panics with the case's
/// name and failure if it fails. Used by [`conformance_tests!`].
///
/// In a process started as a lock holder ([`holder::HOLD_ENV`]) it serves that order
/// instead and exits: how a test binary is its own holder process.
pub fn run_case(name: &str, case: impl Future<Output = CaseResult>) {
    holder::serve_if_asked();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the conformance case");
    if let Err(failure) = runtime.block_on(case) {
        panic!("conformance case {name} failed: {failure}");
    }
}

/// What the exported macros name, whatever the calling crate calls its dependencies.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use checklist_core as core;
}
