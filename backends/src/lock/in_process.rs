//! A [`LockProvider`] for one process: tasks and threads contend through a shared
//! handle. Used by the in-memory backend and by embedders that know only one process
//! touches the store.
//!
//! A holder cannot die without dropping its guard (a panic unwinds through the drop),
//! so this provider never judges a lock stale; a leaked guard (`mem::forget`) is
//! broken with [`LockProvider::force_release`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_trait::async_trait;
use checklist_core::lock::{HeldLock, LockCapabilities, LockRequest, Waiter};
use checklist_core::{Error, LockGuard, LockInfo, LockProvider, LockStatus, Result};
use chrono::Utc;
use tokio::sync::Notify;

use crate::process::ProcessIdentity;

/// An in-process [`LockProvider`]. Cheap to clone; clones share one lock.
#[derive(Debug, Clone)]
pub struct InProcessLockProvider {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    resource: String,
    state: Mutex<LockTable>,
    released: Notify,
    next_waiter: AtomicU64,
}

#[derive(Debug, Default)]
struct LockTable {
    holder: Option<(LockInfo, Arc<AtomicBool>)>,
    waiters: Vec<(u64, Waiter)>,
}

impl InProcessLockProvider {
    /// A new, free lock whose resource name (used in messages) is `resource`.
    pub fn new(resource: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Shared {
                resource: resource.into(),
                state: Mutex::new(LockTable::default()),
                released: Notify::new(),
                next_waiter: AtomicU64::new(1),
            }),
        }
    }
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, LockTable> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes a waiter's registration however its `acquire` ends, including when the
/// future is dropped.
struct WaiterRegistration<'a> {
    shared: &'a Shared,
    id: Option<u64>,
}

impl WaiterRegistration<'_> {
    fn register(&mut self, table: &mut LockTable) {
        if self.id.is_none() {
            let id = self.shared.next_waiter.fetch_add(1, Ordering::Relaxed);
            let me = ProcessIdentity::current();
            table.waiters.push((
                id,
                Waiter {
                    pid: me.pid,
                    hostname: me.hostname.clone(),
                    since: Utc::now(),
                },
            ));
            self.id = Some(id);
        }
    }
}

impl Drop for WaiterRegistration<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.shared.table().waiters.retain(|(w, _)| *w != id);
        }
    }
}

fn new_lock_info(request: &LockRequest) -> LockInfo {
    let me = ProcessIdentity::current();
    let now = Utc::now();
    let expiry = chrono::Duration::from_std(request.expiry).unwrap_or(chrono::Duration::MAX);
    LockInfo {
        lock_id: uuid::Uuid::new_v4().to_string(),
        pid: me.pid,
        ppid: me.ppid,
        hostname: me.hostname.clone(),
        user: me.user.clone(),
        process_started_at: None,
        acquired_at: now,
        expires_at: now.checked_add_signed(expiry).unwrap_or(now),
        renewed_at: now,
        operation: request.operation,
        stack_trace: None,
        note: request.note.clone(),
    }
}

#[async_trait]
impl LockProvider for InProcessLockProvider {
    fn resource(&self) -> &str {
        &self.inner.resource
    }

    fn capabilities(&self) -> LockCapabilities {
        LockCapabilities::IN_PROCESS
    }

    async fn acquire(&self, request: &LockRequest) -> Result<LockGuard> {
        let shared = &*self.inner;
        let started = Instant::now();
        let deadline = tokio::time::Instant::from_std(started + request.timeout);
        let mut registration = WaiterRegistration { shared, id: None };
        loop {
            let released = shared.released.notified();
            tokio::pin!(released);
            // Enabled before the check so a release between the check and the wait
            // still wakes us.
            released.as_mut().enable();
            {
                let mut table = shared.table();
                if table.holder.is_none() {
                    let info = new_lock_info(request);
                    let lost = Arc::new(AtomicBool::new(false));
                    table.holder = Some((info.clone(), Arc::clone(&lost)));
                    return Ok(LockGuard::new(Box::new(InProcessHeld {
                        shared: Arc::clone(&self.inner),
                        info,
                        lost,
                    })));
                }
                registration.register(&mut table);
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(Error::LockTimeout {
                    resource: shared.resource.clone(),
                    waited: started.elapsed(),
                    holder: shared
                        .table()
                        .holder
                        .as_ref()
                        .map(|(info, _)| Box::new(info.clone())),
                });
            }
        }
    }

    async fn inspect(&self) -> Result<LockStatus> {
        let table = self.inner.table();
        Ok(LockStatus {
            holder: table.holder.as_ref().map(|(info, _)| info.clone()),
            waiters: table.waiters.iter().map(|(_, w)| w.clone()).collect(),
            unreadable: None,
        })
    }

    async fn force_release(&self, lock_id: &str) -> Result<bool> {
        let mut table = self.inner.table();
        match &table.holder {
            Some((info, lost)) if info.lock_id == lock_id => {
                lost.store(true, Ordering::Release);
                table.holder = None;
                drop(table);
                self.inner.released.notify_waiters();
                tracing::warn!(lock_id, resource = %self.inner.resource, "lock force-released");
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[derive(Debug)]
struct InProcessHeld {
    shared: Arc<Shared>,
    info: LockInfo,
    lost: Arc<AtomicBool>,
}

impl InProcessHeld {
    /// Frees the lock if this acquisition still holds it; memory only, never blocks.
    fn release_now(&self) {
        let mut table = self.shared.table();
        if table
            .holder
            .as_ref()
            .is_some_and(|(info, _)| info.lock_id == self.info.lock_id)
        {
            table.holder = None;
            drop(table);
            self.shared.released.notify_waiters();
        }
    }
}

#[async_trait]
impl HeldLock for InProcessHeld {
    fn info(&self) -> &LockInfo {
        &self.info
    }

    async fn ensure_held(&self) -> Result<()> {
        if self.lost.load(Ordering::Acquire) {
            return Err(Error::LockLost {
                resource: self.shared.resource.clone(),
                lock_id: self.info.lock_id.clone(),
            });
        }
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<()> {
        self.release_now();
        Ok(())
    }

    fn release_in_background(self: Box<Self>) {
        self.release_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn quick(timeout_ms: u64) -> LockRequest {
        LockRequest::default().with_timeout(Duration::from_millis(timeout_ms))
    }

    #[tokio::test]
    async fn many_tasks_serialize() {
        let locks = InProcessLockProvider::new("memory:test");
        let counter = Arc::new(Mutex::new((0u32, 0u32)));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let locks = locks.clone();
            let counter = Arc::clone(&counter);
            tasks.push(tokio::spawn(async move {
                let guard = locks.acquire(&quick(10_000)).await.unwrap();
                {
                    let mut c = counter.lock().unwrap();
                    c.0 += 1;
                    assert_eq!(c.0, 1, "two holders at once");
                }
                tokio::task::yield_now().await;
                {
                    let mut c = counter.lock().unwrap();
                    c.0 -= 1;
                    c.1 += 1;
                }
                guard.release().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(counter.lock().unwrap().1, 50);
        assert!(locks.inspect().await.unwrap().holder.is_none());
    }

    #[tokio::test]
    async fn timeout_names_the_holder_and_a_dropped_waiter_leaves_no_trace() {
        let locks = InProcessLockProvider::new("memory:test");
        let guard = locks.acquire(&quick(100)).await.unwrap();
        let err = locks.acquire(&quick(30)).await.unwrap_err();
        match &err {
            Error::LockTimeout { holder: Some(h), .. } => assert_eq!(h.lock_id, guard.info().lock_id),
            other => panic!("unexpected {other}"),
        }
        assert!(err.to_string().contains(&guard.info().lock_id));
        assert!(locks.inspect().await.unwrap().waiters.is_empty());

        let waiting = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire(&quick(10_000)).await.map(|_| ()) })
        };
        while locks.inspect().await.unwrap().waiters.is_empty() {
            tokio::task::yield_now().await;
        }
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        assert!(locks.inspect().await.unwrap().waiters.is_empty());
    }

    #[tokio::test]
    async fn force_release_needs_the_id_and_the_old_holder_learns_it_lost_the_lock() {
        let locks = InProcessLockProvider::new("memory:test");
        let guard = locks.acquire(&quick(100)).await.unwrap();
        assert!(!locks.force_release("not-the-id").await.unwrap());
        guard.ensure_held().await.unwrap();
        let id = guard.info().lock_id.clone();
        assert!(locks.force_release(&id).await.unwrap());
        assert!(matches!(guard.ensure_held().await, Err(Error::LockLost { .. })));
        let next = locks.acquire(&quick(100)).await.unwrap();
        assert_ne!(next.info().lock_id, id);
        drop(guard);
        assert_eq!(
            locks.inspect().await.unwrap().holder.map(|h| h.lock_id),
            Some(next.info().lock_id.clone()),
            "dropping the old guard must not release the new holder's lock"
        );
    }
}
