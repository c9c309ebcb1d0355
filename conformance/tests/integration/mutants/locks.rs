//! Broken lock providers and backup policies, each a correct one wrapped so that
//! exactly one decision is wrong.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use checklist_backends::{FileLockProvider, InProcessLockProvider};
use checklist_core::backup::CommitContext;
use checklist_core::lock::HeldLock;
use checklist_core::{
    BackupPolicy, BackupRecord, Error, LockGuard, LockInfo, LockProvider, LockRequest, LockStatus, Result,
    RollingBackups,
};
use chrono::{DateTime, Utc};

static JUDGEMENTS: AtomicU64 = AtomicU64::new(0);

/// The one thing a [`BrokenLocks`] gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockBug {
    /// Nothing: the wrapper alone.
    None,
    /// `acquire` always succeeds at once: every call takes a lock nobody else knows.
    NeverExcludes,
    /// A stale-lock breaker that judges every held lock stale: when the lock is
    /// busy, it deletes the holder's lock file and takes the lock.
    BreaksFreshLocks,
    /// A stale-lock breaker that does not re-verify: it judges the lock stale (its
    /// holder's pid is gone), and some milliseconds later deletes whatever lock file is
    /// there — by then, maybe another waiter's fresh lock.
    BreaksWithoutReverifying,
    /// `acquire` gives up only after four times its timeout.
    GivesUpLate,
    /// A held lock notices only a release through its own provider: `ensure_held`
    /// never looks at the lock itself.
    MissesOutsideReleases,
    /// A liveness check that only recognises this process: a lock held by any other
    /// process is judged stale and broken.
    JudgesOtherProcessesGone,
    /// A holder whose process is alive keeps the lock whatever its expiry: waiters
    /// wait out a hung holder.
    WaitsOutLiveHolders,
    /// It declares holder notes but stores none: the request's note is dropped.
    DropsNotes,
}

/// A correct [`FileLockProvider`] with one [`LockBug`].
#[derive(Debug)]
pub(crate) struct BrokenLocks {
    inner: FileLockProvider,
    bug: LockBug,
    dir: PathBuf,
    /// The ids this provider force-released ([`LockBug::MissesOutsideReleases`]).
    released_here: Arc<Mutex<Vec<String>>>,
}

impl BrokenLocks {
    pub(crate) fn new(dir: &Path, bug: LockBug) -> Self {
        Self {
            inner: FileLockProvider::new(dir),
            bug,
            dir: dir.to_owned(),
            released_here: Arc::default(),
        }
    }

    /// The holder of the lock now, if it is alive by `/proc` and still holds it.
    async fn live_holder(&self) -> Result<Option<u32>> {
        let status = self.inner.inspect().await?;
        Ok(status
            .holder
            .map(|holder| holder.pid)
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists()))
    }
}

/// A held lock that believes it holds the lock until its own provider releases it.
#[derive(Debug)]
struct Credulous {
    inner: Option<LockGuard>,
    info: LockInfo,
    released_here: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl HeldLock for Credulous {
    fn info(&self) -> &LockInfo {
        &self.info
    }

    async fn ensure_held(&self) -> Result<()> {
        if self.released_here.lock().unwrap().contains(&self.info.lock_id) {
            return Err(Error::LockLost {
                resource: "the broken provider".to_owned(),
                lock_id: self.info.lock_id.clone(),
            });
        }
        Ok(())
    }

    async fn release(mut self: Box<Self>) -> Result<()> {
        match self.inner.take() {
            Some(guard) => guard.release().await,
            None => Ok(()),
        }
    }

    fn release_in_background(mut self: Box<Self>) {
        drop(self.inner.take());
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl LockProvider for BrokenLocks {
    fn resource(&self) -> &str {
        self.inner.resource()
    }

    fn capabilities(&self) -> checklist_core::LockCapabilities {
        self.inner.capabilities()
    }

    async fn acquire(&self, request: &LockRequest) -> Result<LockGuard> {
        match self.bug {
            LockBug::None => self.inner.acquire(request).await,
            LockBug::NeverExcludes => {
                InProcessLockProvider::new(self.inner.resource())
                    .acquire(request)
                    .await
            }
            LockBug::BreaksFreshLocks => {
                let quick = request.clone().with_timeout(Duration::ZERO);
                match self.inner.acquire(&quick).await {
                    Err(Error::LockTimeout { .. }) => {
                        // "Stale": delete it without checking its holder is gone.
                        let _ = std::fs::remove_file(self.dir.join(".lock"));
                        self.inner.acquire(request).await
                    }
                    other => other,
                }
            }
            LockBug::DropsNotes => {
                let unnoted = LockRequest {
                    note: None,
                    ..request.clone()
                };
                self.inner.acquire(&unnoted).await
            }
            LockBug::GivesUpLate => {
                let late = request.clone().with_timeout(request.timeout * 4);
                self.inner.acquire(&late).await
            }
            LockBug::MissesOutsideReleases => {
                let guard = self.inner.acquire(request).await?;
                let info = guard.info().clone();
                Ok(LockGuard::new(Box::new(Credulous {
                    inner: Some(guard),
                    info,
                    released_here: Arc::clone(&self.released_here),
                })))
            }
            LockBug::JudgesOtherProcessesGone => {
                let status = self.inner.inspect().await?;
                if status
                    .holder
                    .is_some_and(|holder| holder.pid != std::process::id())
                {
                    let _ = std::fs::remove_file(self.dir.join(".lock"));
                }
                self.inner.acquire(request).await
            }
            LockBug::WaitsOutLiveHolders => {
                let started = tokio::time::Instant::now();
                while self.live_holder().await?.is_some() {
                    if started.elapsed() >= request.timeout {
                        return Err(Error::LockTimeout {
                            resource: self.inner.resource().to_owned(),
                            waited: started.elapsed(),
                            holder: self.inner.inspect().await?.holder.map(Box::new),
                        });
                    }
                    tokio::time::sleep(request.retry_interval).await;
                }
                self.inner.acquire(request).await
            }
            LockBug::BreaksWithoutReverifying => {
                let status = self.inner.inspect().await?;
                if let Some(holder) = status.holder
                    && !Path::new(&format!("/proc/{}", holder.pid)).exists()
                {
                    // The time between judging and breaking varies from waiter to
                    // waiter (scheduling, a slow disk).
                    let n = JUDGEMENTS.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(5 + 7 * (n % 4))).await;
                    let _ = std::fs::remove_file(self.dir.join(".lock"));
                }
                self.inner.acquire(request).await
            }
        }
    }

    async fn inspect(&self) -> Result<LockStatus> {
        self.inner.inspect().await
    }

    async fn force_release(&self, lock_id: &str) -> Result<bool> {
        let released = self.inner.force_release(lock_id).await?;
        if released {
            self.released_here.lock().unwrap().push(lock_id.to_owned());
        }
        Ok(released)
    }
}

/// The one thing a [`BrokenPolicy`] gets wrong; otherwise it is
/// [`RollingBackups::keep`]`(3)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyBug {
    /// Asked to keep 3, it keeps 1.
    KeepsTooFew,
    /// It prunes the newest backup too.
    PrunesTheNewest,
    /// It counts two backups of the same revision and checksum as two.
    CountsDuplicates,
    /// It never asks for a backup, so commits keep none.
    NeverBacksUp,
}

/// A keep-3 rolling policy with one [`PolicyBug`].
#[derive(Debug)]
pub(crate) struct BrokenPolicy {
    asked: RollingBackups,
    bug: PolicyBug,
}

impl BrokenPolicy {
    pub(crate) fn new(bug: PolicyBug) -> Self {
        Self {
            asked: RollingBackups::keep(3),
            bug,
        }
    }
}

impl BackupPolicy for BrokenPolicy {
    fn should_back_up(&self, commit: &CommitContext) -> bool {
        self.bug != PolicyBug::NeverBacksUp && self.asked.should_back_up(commit)
    }

    fn to_prune(&self, backups: &[BackupRecord], now: DateTime<Utc>) -> Vec<String> {
        match self.bug {
            PolicyBug::KeepsTooFew => RollingBackups::keep(1).to_prune(backups, now),
            PolicyBug::NeverBacksUp => self.asked.to_prune(backups, now),
            PolicyBug::PrunesTheNewest => {
                let mut pruned = self.asked.to_prune(backups, now);
                if let Some(newest) = self.asked.recovery_order(backups).into_iter().next()
                    && !pruned.contains(&newest)
                {
                    pruned.push(newest);
                }
                pruned
            }
            PolicyBug::CountsDuplicates => {
                // Every backup looks like a state of its own to the real policy.
                let distinct: Vec<BackupRecord> = backups
                    .iter()
                    .map(|b| BackupRecord {
                        checksum: format!("{}-{}", b.checksum, b.id),
                        ..b.clone()
                    })
                    .collect();
                self.asked.to_prune(&distinct, now)
            }
        }
    }

    fn recovery_order(&self, backups: &[BackupRecord]) -> Vec<String> {
        self.asked.recovery_order(backups)
    }
}
