//! The [`LockProvider`] trait: exclusive access to a store across tasks and processes.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::LockSettings;

pub(crate) mod info;

use crate::error::Result;
pub use info::{LockCapabilities, LockInfo, LockNote, LockStatus, Operation, UnreadableLock, Waiter};

/// A request for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// What the holder will do.
    pub operation: Operation,
    /// Give up with [`Error::LockTimeout`](crate::Error::LockTimeout) after this long.
    pub timeout: Duration,
    /// How often a waiter re-checks a lock it cannot be woken for.
    pub retry_interval: Duration,
    /// How long the lock stays valid without renewal; the guard renews it every third.
    pub expiry: Duration,
    /// Why the caller wants the lock, stored with its holder where the provider's
    /// [`LockCapabilities::holder_notes`] says so: `lock status`, another caller's
    /// lock timeout and the audit records of the holder's transaction show it.
    pub note: Option<LockNote>,
}

impl Default for LockRequest {
    fn default() -> Self {
        Self::from_settings(Operation::Write, &LockSettings::default())
    }
}

impl LockRequest {
    /// A request for `operation` with the timing of `settings` (config.yaml `lock:`).
    pub fn from_settings(operation: Operation, settings: &LockSettings) -> Self {
        Self {
            operation,
            timeout: settings.timeout(),
            retry_interval: settings.retry_interval(),
            expiry: settings.expiry(),
            note: settings.note.clone(),
        }
    }

    /// The same request with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl LockNote {
    /// A note from `text`, as a person or a CI job gave it: secrets in it are replaced
    /// by `[REDACTED:<kind>]` (docs/decisions/0012-secrets-outside-the-document.md), so
    /// no lock, lease row, error or audit record ever holds one.
    ///
    /// # Errors
    /// [`Error::InvalidOperation`](crate::Error::InvalidOperation) for an empty note, a
    /// control character (a newline, a tab, an escape: a note is one line, and must not
    /// forge lines of `lock status`), or more than [`MAX_CHARS`](Self::MAX_CHARS)
    /// characters once redacted.
    pub fn new(text: &str) -> Result<Self> {
        if text.trim().is_empty() {
            return Err(crate::Error::invalid(
                "the lock note is empty; give a short text that says why the lock is held, or no note",
            ));
        }
        if let Some(bad) = text.chars().find(|c| c.is_control()) {
            return Err(crate::Error::invalid(format!(
                "the lock note contains the control character {:?}; a note is one line of printable text",
                bad
            )));
        }
        let mut text = text.to_owned();
        crate::secrets::redact_text(&mut text);
        let chars = text.chars().count();
        if chars > Self::MAX_CHARS {
            return Err(crate::Error::invalid(format!(
                "the lock note is {chars} characters long, more than the {} a note may have; shorten it",
                Self::MAX_CHARS
            )));
        }
        Ok(Self::from_checked(text))
    }

    /// `text` with every control character (a newline, a tab, an escape) replaced by
    /// U+FFFD: how a note read from a lock or a trail written by another tool is shown,
    /// so that it never adds lines or terminal sequences of its own.
    pub fn one_line(text: &str) -> String {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect()
    }

    /// A note as a lock recorded it, made to fit whoever wrote it: control characters
    /// become U+FFFD, secrets are redacted and the text is cut to
    /// [`MAX_CHARS`](Self::MAX_CHARS). What [`new`](Self::new) made reads back as it was.
    fn from_stored(text: String) -> Self {
        let mut text = Self::one_line(&text);
        crate::secrets::redact_text(&mut text);
        Self::from_checked(text.chars().take(Self::MAX_CHARS).collect())
    }
}

impl<'de> serde::Deserialize<'de> for LockNote {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from_stored)
    }
}

/// The provider-specific side of a held lock, owned by a [`LockGuard`].
///
/// Providers implement this; callers use [`LockGuard`]. Releasing is async, so a
/// provider whose lock lives on a server releases it with a round trip instead of
/// blocking a thread of the runtime; a guard dropped without
/// [`LockGuard::release`] hands its lock to
/// [`release_in_background`](Self::release_in_background).
#[async_trait]
pub trait HeldLock: Send + Sync + fmt::Debug {
    /// The metadata of this acquisition.
    fn info(&self) -> &LockInfo;

    /// Fails with [`Error::LockLost`](crate::Error::LockLost) if the lock is known to
    /// have been broken, force-released or taken over since it was acquired.
    async fn ensure_held(&self) -> Result<()>;

    /// Releases the lock and reports a failure to. Called at most once, by the guard.
    async fn release(self: Box<Self>) -> Result<()>;

    /// Lets the lock go without waiting for it, for a guard dropped unreleased (a
    /// panic, a cancelled task). It must not block the calling thread on I/O that can
    /// take long: a provider hands the work to a thread or task of its own, or, when
    /// it cannot, leaves the lock to be judged stale. Failures are only logged.
    fn release_in_background(self: Box<Self>);
}

/// A held lock. Released by [`release`](Self::release); a guard dropped without it
/// lets its lock go in the background (see [`HeldLock::release_in_background`]).
#[derive(Debug)]
pub struct LockGuard {
    held: Option<Box<dyn HeldLock>>,
}

impl LockGuard {
    /// Wraps a provider's held lock.
    pub fn new(held: Box<dyn HeldLock>) -> Self {
        Self { held: Some(held) }
    }

    /// The metadata of this acquisition.
    pub fn info(&self) -> &LockInfo {
        self.held
            .as_deref()
            .map(HeldLock::info)
            .expect("a guard holds its lock until dropped")
    }

    /// Fails with [`Error::LockLost`](crate::Error::LockLost) if the lock was lost.
    /// Call it right before a write.
    pub async fn ensure_held(&self) -> Result<()> {
        match &self.held {
            Some(held) => held.ensure_held().await,
            None => Ok(()),
        }
    }

    /// Releases the lock now, reporting a failure to release.
    pub async fn release(mut self) -> Result<()> {
        match self.held.take() {
            Some(held) => held.release().await,
            None => Ok(()),
        }
    }

    /// Releases the lock now and logs (with `tracing`) a failure to, instead of
    /// returning it: what a caller wants after work that stands whether or not the
    /// lock comes off, such as a commit.
    pub async fn release_logging_failure(self) {
        let lock_id = self.info().lock_id.clone();
        if let Err(error) = self.release().await {
            tracing::warn!(%error, lock_id, "could not release a lock");
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            held.release_in_background();
        }
    }
}

/// Exclusive access to a store across tasks (and, for file providers, processes).
///
/// # Contract
/// Each bullet has a case of the same name in `checklist-conformance`.
/// - `lock_is_exclusive`: while a guard is alive, no other `acquire` on the same
///   resource succeeds — from this task, another task or (where the provider says it
///   is cross-process) another process.
/// - `acquire_times_out_with_holder`: an `acquire` that cannot get the lock within
///   `request.timeout` fails with [`Error::LockTimeout`](crate::Error::LockTimeout)
///   naming the holder, no later than one retry interval after the timeout.
/// - `waiters_are_visible`: while an `acquire` waits, [`inspect`](Self::inspect) lists
///   it among the waiters and shows the holder (and no unreadable lock); once it stops
///   waiting (acquired, timed out or its future dropped), it is gone from the list, and
///   a free lock shows neither a holder nor an unreadable lock.
/// - `release_lets_the_next_acquire_in`: after [`LockGuard::release`] the lock is free
///   at once; after a guard is dropped unreleased, the next `acquire` succeeds without
///   waiting for the timeout and the lock is free soon after (a provider may let it go
///   in the background).
/// - `lock_ids_are_unique`: every acquisition gets a fresh `lock_id`.
/// - `force_release_needs_the_lock_id`: [`force_release`](Self::force_release) with
///   a wrong id changes nothing and reports it; with the holder's id it frees the lock,
///   and the old holder's [`LockGuard::ensure_held`] then fails with `LockLost`.
/// - `dropping_the_acquire_future_cancels_it`: a waiting `acquire` whose future is
///   dropped leaves no trace and does not get the lock later.
/// - `many_tasks_take_turns`: many tasks contending through one provider hold the lock
///   one at a time, and all of them get it.
/// - `independent_providers_exclude_each_other`: two providers opened independently on
///   the same resource (what two processes would open) report the same
///   [`resource`](Self::resource) and [`capabilities`](Self::capabilities), exclude each other (the timeout names that resource)
///   and see each other's holder.
/// - `holder_notes_are_shown_to_every_provider`: a provider whose
///   [`capabilities`](Self::capabilities) declare holder notes stores
///   [`LockRequest::note`] with the holder, and every provider on the lock shows it in
///   [`LockInfo::note`] (the guard, `inspect`, a lock timeout); a holder without a note
///   shows none, whatever an earlier holder noted. One that does not declare them shows
///   no note.
/// - `a_live_holder_keeps_the_lock_past_its_expiry`: a guard that stays alive keeps
///   the lock for as long as it is held, however short `request.expiry` (a file
///   provider renews it): [`LockGuard::ensure_held`] keeps succeeding and other
///   providers time out naming the holder.
/// - `stale_lock_is_reclaimed`: a provider whose [`capabilities`](Self::capabilities)
///   declare stale-lock detection breaks a lock whose holder is gone on the next
///   `acquire`, well within the timeout; one that does not (in-process) keeps a leaked
///   lock until `force_release` with its id.
/// - `stale_lock_is_broken_by_exactly_one_waiter`: where stale locks are detected, many
///   waiters that find the same stale lock at once take it one at a time — whoever
///   breaks it never deletes a fresh lock another waiter took in the meantime.
/// - `a_holder_learns_of_a_release_by_another_provider`: a lock force-released through
///   another provider (another process) is lost to its holder: its
///   [`LockGuard::ensure_held`] fails with `LockLost`, in this process or another.
/// - `a_live_holder_in_another_process_keeps_the_lock`: where the provider is
///   cross-process, a holder alive in another process keeps the lock past its expiry
///   many times over (it renews); no waiter judges it gone.
/// - `a_stopped_holder_loses_the_lock_after_its_expiry`: where stale locks are
///   detected, a holder that is alive but stopped (hung) loses the lock once its expiry
///   passes without renewal — not before, and not only after a waiter's whole timeout —
///   and learns so when it runs again.
/// - `a_killed_holder_in_another_process_is_replaced_at_once`: where stale locks are
///   detected, the lock of a holder killed in another process is taken by the next
///   `acquire` long before its expiry.
#[async_trait]
pub trait LockProvider: Send + Sync + fmt::Debug + 'static {
    /// The lock's resource as messages name it: the lock file's path, a
    /// `memory:` name, a server and store key. Never a password.
    fn resource(&self) -> &str;

    /// What this provider can do (across processes, stale-lock detection).
    ///
    /// # Contract
    /// Every provider opened on the same resource declares the same
    /// (`independent_providers_exclude_each_other`); the stale-lock cases hold the
    /// provider to what it declares.
    fn capabilities(&self) -> LockCapabilities;

    /// Waits for the lock and returns a guard that holds it.
    ///
    /// # Contract
    /// Returns within `request.timeout` (plus one retry interval) with either a guard
    /// or [`Error::LockTimeout`](crate::Error::LockTimeout). Cancel-safe: dropping the
    /// future while it waits gives up cleanly.
    async fn acquire(&self, request: &LockRequest) -> Result<LockGuard>;

    /// Reports the holder and the waiters without changing anything.
    ///
    /// # Contract
    /// Never changes the lock and never waits for it. While the lock is held, exactly
    /// one of [`LockStatus::holder`] (its metadata could be read) and
    /// [`LockStatus::unreadable`] is set; while it is free, neither is.
    async fn inspect(&self) -> Result<LockStatus>;

    /// Breaks the lock held under `lock_id`.
    ///
    /// # Contract
    /// Returns `Ok(true)` when a lock with exactly that id was held and is now
    /// released, `Ok(false)` when no lock with that id is held (nothing changes).
    async fn force_release(&self, lock_id: &str) -> Result<bool>;
}

/// Forwarding impls, so `Arc<dyn LockProvider>` and `Box<dyn LockProvider>` are
/// providers.
macro_rules! forward_lock_provider {
    ($($wrapper:ident),*) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: LockProvider + ?Sized> LockProvider for $wrapper<T> {
            fn resource(&self) -> &str {
                (**self).resource()
            }
            fn capabilities(&self) -> LockCapabilities {
                (**self).capabilities()
            }
            async fn acquire(&self, request: &LockRequest) -> Result<LockGuard> {
                (**self).acquire(request).await
            }
            async fn inspect(&self) -> Result<LockStatus> {
                (**self).inspect().await
            }
            async fn force_release(&self, lock_id: &str) -> Result<bool> {
                (**self).force_release(lock_id).await
            }
        }
    )*};
}

forward_lock_provider!(Arc, Box);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_one_printable_line_of_bounded_length() {
        let note = LockNote::new("ci job 4711 (nightly import)").unwrap();
        assert_eq!(note.as_str(), "ci job 4711 (nightly import)");
        for bad in ["", "   ", "job 1\n  waiting: pid 1", "tab\there", "\u{1b}[31mred"] {
            let error = LockNote::new(bad).unwrap_err();
            assert!(error.to_string().contains("lock note"), "{bad:?}: {error}");
        }
        assert!(LockNote::new(&"x".repeat(LockNote::MAX_CHARS)).is_ok());
        let error = LockNote::new(&"x".repeat(LockNote::MAX_CHARS + 1)).unwrap_err();
        assert!(error.to_string().contains("201 characters"), "{error}");
        // Characters, not bytes: a note in another script is not cut short.
        assert!(LockNote::new(&"ü".repeat(LockNote::MAX_CHARS)).is_ok());
    }

    #[test]
    fn a_secret_in_a_note_is_redacted_before_it_is_stored() {
        let token = format!("ghp_{}", "a".repeat(36));
        let note = LockNote::new(&format!("deploy with {token}")).unwrap();
        assert_eq!(note.as_str(), "deploy with [REDACTED:github_token]");
        let stored: LockNote = serde_json::from_str(&serde_json::to_string(&note).unwrap()).unwrap();
        assert_eq!(stored, note);
    }

    #[test]
    fn a_request_takes_the_note_of_its_settings() {
        let settings = LockSettings {
            note: Some(LockNote::new("job 7").unwrap()),
            ..LockSettings::default()
        };
        let request = LockRequest::from_settings(Operation::Write, &settings);
        assert_eq!(request.note.as_ref().map(LockNote::as_str), Some("job 7"));
        assert_eq!(LockRequest::default().note, None);
    }
}
