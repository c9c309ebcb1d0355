//! The `postgres` lock provider: a lease row per store that names its holder, for
//! every machine that shares the server (docs/decisions/0022-postgres-backend.md).
//!
//! - **Acquire** is one statement, recording the holder (a [`LockInfo`], JSON): insert
//!   the row, or take it over when it is free, its lease expired (by the server's
//!   clock), or its holder has stopped: no renewal for [`LIVENESS_GRACE`] and the
//!   session that last renewed it is gone (`pg_stat_activity` no longer lists its
//!   backend pid and start time) — so a killed holder's lock is taken within seconds,
//!   anywhere, long before its expiry. The row is never deleted: its `fence` counts
//!   every acquisition.
//! - **The holder** renews the lease every expiry/3, at most every [`HEARTBEAT`],
//!   recording the session it renews through; a renewal that finds the row taken marks
//!   the guard lost, and `ensure_held` re-reads it.
//! - **Waiters** register a row (visible in `lock status` from any machine, filtered by
//!   the liveness of their sessions), `LISTEN` for releases and poll every retry
//!   interval as the floor (a pooler or a reconnect loses notifications).
//! - **Release** and `force_release` free the row by lock id and `NOTIFY` in the same
//!   statement; a force release or a takeover is written to the store's audit trail.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use checklist_core::lock::{HeldLock, LockCapabilities, UnreadableLock, Waiter};
use checklist_core::{
    AuditEvent, AuditRecord, Error, LockGuard, LockInfo, LockProvider, LockRequest, LockStatus, Result,
};
use chrono::{DateTime, Utc};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;

use super::schema::Tables;
use super::server::Server;
use super::session::Session;
use crate::lock::format::LockFile;
use crate::process::ProcessIdentity;

/// What the providers opened on one store share.
pub(crate) struct LockShared {
    server: Server,
    tables: Tables,
    key: String,
    resource: String,
    operation_timeout: Duration,
    /// The session that holds this provider's leases and listens for releases.
    session: Mutex<Option<Session>>,
    /// Woken by every notification on the lock channel.
    released: Arc<Notify>,
    /// Waiters whose `acquire` was dropped; hidden from `inspect` until their rows are
    /// deleted in the background.
    cancelled: StdMutex<HashSet<String>>,
    /// Create the tables when they are missing (`createSchema`).
    create_schema: bool,
    /// Whether the tables were found (or made) once already.
    layout_ready: AtomicBool,
}

impl LockShared {
    pub(crate) fn new(
        server: Server,
        tables: Tables,
        key: String,
        location: &str,
        operation_timeout: Duration,
        create_schema: bool,
    ) -> Self {
        Self {
            create_schema,
            layout_ready: AtomicBool::new(false),
            resource: format!("{location}, lock"),
            server,
            tables,
            key,
            operation_timeout,
            session: Mutex::new(None),
            released: Arc::new(Notify::new()),
            cancelled: StdMutex::new(HashSet::new()),
        }
    }

    fn error(&self, operation: &str, source: Box<dyn std::error::Error + Send + Sync>) -> Error {
        Error::Backend {
            backend: super::BACKEND_NAME.to_owned(),
            operation: operation.to_owned(),
            location: self.resource.clone(),
            source,
        }
    }

    /// The provider's session, connecting and listening for releases first when it
    /// has none or the last one ended.
    async fn session(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Session>>> {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_none_or(Session::is_ended) {
            *guard = None;
            let session = Session::connect(
                &self.server,
                &self.resource,
                Duration::from_secs(1),
                Some({
                    let released = Arc::clone(&self.released);
                    Arc::new(move || released.notify_waiters())
                }),
            )
            .await?;
            let mut session = session;
            if !self.layout_ready.load(Ordering::Acquire) {
                super::schema::ensure_layout(
                    &mut session.client,
                    &self.tables,
                    self.create_schema,
                    &self.resource,
                )
                .await?;
                self.layout_ready.store(true, Ordering::Release);
            }
            session
                .client
                .batch_execute(&format!("LISTEN \"{}\"", self.tables.lock_channel()))
                .await
                .map_err(|e| self.error("listen for releases of", super::session::explained(e)))?;
            *guard = Some(session);
        }
        Ok(guard)
    }

    /// `work`, bounded by the operation timeout (`None`: it timed out).
    async fn timed<T>(
        &self,
        work: impl std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Option<std::result::Result<T, tokio_postgres::Error>> {
        tokio::time::timeout(self.operation_timeout, work).await.ok()
    }

    /// Turns what went wrong in `operation` into an error; a session whose connection
    /// broke or did not answer is dropped, so the next operation connects again.
    fn settle<T>(
        &self,
        session: &mut Option<Session>,
        operation: &str,
        outcome: Option<std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match outcome {
            Some(Ok(value)) => Ok(value),
            Some(Err(error)) => {
                if session.as_ref().is_some_and(Session::is_ended) {
                    *session = None;
                }
                Err(self.error(operation, super::session::explained(error)))
            }
            None => {
                *session = None;
                Err(self.error(
                    operation,
                    format!("no answer within {} s", self.operation_timeout.as_secs()).into(),
                ))
            }
        }
    }

    /// One attempt: the lock, or who holds it.
    async fn try_acquire(&self, lock_id: &str, request: &LockRequest) -> Result<Attempt> {
        let holder = serde_json::to_string(&LockFile::new(lock_id.to_owned(), request, Utc::now()).info())
            .map_err(|e| self.error("describe the holder of", Box::new(e)))?;
        let expiry = request.expiry.as_secs_f64();
        let live = live_session("l.backend_pid", "l.backend_start");
        let grace = LIVENESS_GRACE.as_secs_f64();
        let sql = format!(
            "WITH old AS (
               SELECT lock_id, holder, expires_at < now() AS expired,
                      renewed_at < now() - make_interval(secs => $5) AND NOT {live} AS gone
               FROM {locks} l WHERE store = $1)
             INSERT INTO {locks} AS l (store, lock_id, holder, backend_pid, backend_start, acquired_at, renewed_at,
                                       expires_at, fence)
             VALUES ($1, $2, $3, pg_backend_pid(),
                     (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())),
                     now(), now(), now() + make_interval(secs => $4), 1)
             ON CONFLICT (store) DO UPDATE SET lock_id = EXCLUDED.lock_id, holder = EXCLUDED.holder,
               backend_pid = EXCLUDED.backend_pid, backend_start = EXCLUDED.backend_start,
               acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at,
               expires_at = EXCLUDED.expires_at, fence = l.fence + 1
             WHERE l.lock_id IS NULL OR l.expires_at < now()
                OR (l.renewed_at < now() - make_interval(secs => $5) AND NOT {live})
             RETURNING l.acquired_at, l.renewed_at, l.expires_at,
               (SELECT lock_id FROM old), (SELECT holder FROM old), (SELECT expired FROM old), (SELECT gone FROM old)",
            locks = self.tables.locks,
        );
        let key = self.key.clone();
        let id = lock_id.to_owned();
        let row = on_session!(self, "acquire the lock on", |session| async {
            session
                .client
                .query_typed_opt(
                    &sql,
                    &[
                        (&key, Type::TEXT),
                        (&id, Type::TEXT),
                        (&holder, Type::TEXT),
                        (&expiry, Type::FLOAT8),
                        (&grace, Type::FLOAT8),
                    ],
                )
                .await
        })?;
        let Some(row) = row else {
            return Ok(Attempt::Busy);
        };
        let acquired_at: DateTime<Utc> = row.get(0);
        let renewed_at: DateTime<Utc> = row.get(1);
        let expires_at: DateTime<Utc> = row.get(2);
        // The row as this statement's snapshot shows it (`old`; it cannot be locked
        // there: the row the statement itself updates is invisible to a locking read of
        // it). A holder that released just before the update still shows in it, but as
        // neither expired nor gone: only a lock taken because it was stale is reported.
        let previous: Option<String> = row.get(3);
        let expired: Option<bool> = row.get(5);
        let gone: Option<bool> = row.get(6);
        let reason = if gone == Some(true) {
            Some("its holder stopped renewing it and its database session is gone")
        } else if expired == Some(true) {
            Some("its lease expired without renewal")
        } else {
            None
        };
        if let (Some(_), Some(reason)) = (&previous, reason) {
            let previous_holder: Option<String> = row.get(4);
            let holder = previous_holder
                .as_deref()
                .and_then(|h| serde_json::from_str::<LockInfo>(h).ok());
            self.audit_takeover(holder.as_ref(), reason).await;
        }
        let mut info = LockFile::new(lock_id.to_owned(), request, acquired_at).info();
        info.acquired_at = acquired_at;
        info.renewed_at = renewed_at;
        info.expires_at = expires_at;
        Ok(Attempt::Acquired(info))
    }

    /// Writes a `lock_broken` record to the store's audit trail, and logs it.
    async fn audit_takeover(&self, holder: Option<&LockInfo>, reason: &str) {
        match holder {
            Some(h) => tracing::warn!(
                "broke the stale lock on {} (lock id {}) held by pid {} on {} as {} since {}: {reason}",
                self.resource,
                h.lock_id,
                h.pid,
                h.hostname,
                h.user,
                h.acquired_at.to_rfc3339()
            ),
            None => tracing::warn!("broke the stale lock on {}: {reason}", self.resource),
        }
        let record = lock_record(holder, format!("broke a stale lock: {reason}"));
        self.append_audit(&record).await;
    }

    async fn append_audit(&self, record: &AuditRecord) {
        let line = String::from_utf8_lossy(&record.to_line()).trim_end().to_owned();
        let sql = format!(
            "INSERT INTO {} (store, record) VALUES ($1, $2)",
            self.tables.audit
        );
        let key = self.key.clone();
        let result: Result<u64> = async {
            on_session!(self, "audit a broken lock on", |session| async {
                session
                    .client
                    .execute_typed(&sql, &[(&key, Type::TEXT), (&line, Type::TEXT)])
                    .await
            })
        }
        .await;
        if let Err(error) = result {
            tracing::warn!(%error, "could not audit a broken lock");
        }
    }

    /// The current holder as the row says, `None` when the lock is free.
    async fn holder(&self) -> Result<Holder> {
        let sql = format!(
            "SELECT lock_id, holder, acquired_at, renewed_at, expires_at FROM {} WHERE store = $1",
            self.tables.locks
        );
        let key = self.key.clone();
        let row = on_session!(self, "read the lock on", |session| async {
            session.client.query_typed_opt(&sql, &[(&key, Type::TEXT)]).await
        })?;
        let Some(row) = row else {
            return Ok(Holder::Free);
        };
        let Some(lock_id) = row.get::<_, Option<String>>(0) else {
            return Ok(Holder::Free);
        };
        let renewed_at: Option<DateTime<Utc>> = row.get(3);
        let parsed = row
            .get::<_, Option<String>>(1)
            .and_then(|holder| serde_json::from_str::<LockInfo>(&holder).ok())
            .filter(|info| info.lock_id == lock_id);
        Ok(match parsed {
            Some(mut info) => {
                if let Some(at) = row.get::<_, Option<DateTime<Utc>>>(2) {
                    info.acquired_at = at;
                }
                if let Some(at) = renewed_at {
                    info.renewed_at = at;
                }
                info.expires_at = row.get(4);
                Holder::Known(Box::new(info))
            }
            None => Holder::Unreadable(renewed_at.unwrap_or_else(Utc::now)),
        })
    }

    async fn register_waiter(&self, waiter_id: &str) -> Result<()> {
        let me = ProcessIdentity::current();
        let sql = format!(
            "INSERT INTO {} (store, waiter_id, pid, hostname, backend_pid, backend_start)
             VALUES ($1, $2, $3, $4, pg_backend_pid(), (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())))
             ON CONFLICT (store, waiter_id) DO NOTHING",
            self.tables.lock_waiters
        );
        let (key, id, host) = (self.key.clone(), waiter_id.to_owned(), me.hostname.clone());
        let pid = i32::try_from(me.pid).unwrap_or(i32::MAX);
        on_session!(self, "register a waiter for", |session| async {
            session
                .client
                .execute_typed(
                    &sql,
                    &[
                        (&key, Type::TEXT),
                        (&id, Type::TEXT),
                        (&pid, Type::INT4),
                        (&host, Type::TEXT),
                    ],
                )
                .await
        })
        .map(drop)
    }

    async fn remove_waiter(&self, waiter_id: &str) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE store = $1 AND waiter_id = $2",
            self.tables.lock_waiters
        );
        let (key, id) = (self.key.clone(), waiter_id.to_owned());
        on_session!(self, "remove a waiter for", |session| async {
            session
                .client
                .execute_typed(&sql, &[(&key, Type::TEXT), (&id, Type::TEXT)])
                .await
        })?;
        lock_std(&self.cancelled).remove(waiter_id);
        Ok(())
    }

    /// Frees the lock held under `lock_id`, announcing it; whether it was held so.
    async fn free(&self, lock_id: &str) -> Result<bool> {
        let sql = format!(
            "WITH freed AS (
               UPDATE {} SET lock_id = NULL, holder = NULL, backend_pid = NULL, backend_start = NULL,
                 expires_at = now() WHERE store = $1 AND lock_id = $2 RETURNING 1)
             SELECT pg_notify($3, $1) FROM freed",
            self.tables.locks
        );
        let (key, id, channel) = (self.key.clone(), lock_id.to_owned(), self.tables.lock_channel());
        let freed = on_session!(self, "release the lock on", |session| async {
            session
                .client
                .query_typed(
                    &sql,
                    &[(&key, Type::TEXT), (&id, Type::TEXT), (&channel, Type::TEXT)],
                )
                .await
        })?;
        // This process's own waiters need no round trip through the server.
        self.released.notify_waiters();
        Ok(!freed.is_empty())
    }

    /// Renews the lease of `lock_id`; whether it is still this holder's.
    async fn renew(&self, lock_id: &str, expiry: Duration) -> Result<bool> {
        let sql = format!(
            "UPDATE {} SET renewed_at = now(), expires_at = now() + make_interval(secs => $3),
               backend_pid = pg_backend_pid(),
               backend_start = (SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid()))
             WHERE store = $1 AND lock_id = $2",
            self.tables.locks
        );
        let (key, id, secs) = (self.key.clone(), lock_id.to_owned(), expiry.as_secs_f64());
        let renewed = on_session!(self, "renew the lock on", |session| async {
            session
                .client
                .execute_typed(
                    &sql,
                    &[(&key, Type::TEXT), (&id, Type::TEXT), (&secs, Type::FLOAT8)],
                )
                .await
        })?;
        Ok(renewed == 1)
    }

    async fn current_lock_id(&self) -> Result<Option<String>> {
        let sql = format!("SELECT lock_id FROM {} WHERE store = $1", self.tables.locks);
        let key = self.key.clone();
        let row = on_session!(self, "read the lock on", |session| async {
            session.client.query_typed_opt(&sql, &[(&key, Type::TEXT)]).await
        })?;
        Ok(row.and_then(|row| row.get::<_, Option<String>>(0)))
    }

    async fn waiters(&self) -> Result<Vec<Waiter>> {
        let live = live_session("w.backend_pid", "w.backend_start");
        let sql = format!(
            "SELECT waiter_id, pid, hostname, since FROM {} w WHERE store = $1 AND {live} ORDER BY since, waiter_id",
            self.tables.lock_waiters
        );
        let key = self.key.clone();
        let rows = on_session!(self, "list the waiters for", |session| async {
            session.client.query_typed(&sql, &[(&key, Type::TEXT)]).await
        })?;
        let cancelled = lock_std(&self.cancelled).clone();
        Ok(rows
            .iter()
            .filter(|row| !cancelled.contains(&row.get::<_, String>(0)))
            .map(|row| Waiter {
                pid: u32::try_from(row.get::<_, i32>(1)).unwrap_or_default(),
                hostname: row.get(2),
                since: row.get(3),
            })
            .collect())
    }
}

/// The window over which the waiters a release notified spread their next attempts.
const NOTIFIED_SPREAD: Duration = Duration::from_millis(10);

/// How often a holder renews its lease at most: often enough that [`LIVENESS_GRACE`]
/// without a renewal means it stopped.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long a lease may go unrenewed before the end of the session that last renewed
/// it counts as the holder's end. A holder renews every [`HEARTBEAT`] through whatever
/// session it has: behind a transaction pooler that is a pooled server connection the
/// pooler may close while the holder lives on (the lease then moves to the session of
/// the next renewal), and a holder whose own session was terminated reconnects and
/// renews. A holder that died stops renewing, and its lock is taken this long after
/// its last renewal — long before its expiry.
const LIVENESS_GRACE: Duration = Duration::from_secs(2);

/// The SQL condition "the session `pid`/`start` is still connected". Roles that may
/// not see other sessions' details get `backend_start` as NULL; then the pid alone
/// keeps the lock held (a reused pid at worst delays a takeover to the expiry).
fn live_session(pid: &str, start: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM pg_stat_get_activity({pid}) a
                 WHERE a.backend_start = {start} OR a.backend_start IS NULL)"
    )
}

fn lock_record(holder: Option<&LockInfo>, what: String) -> AuditRecord {
    let mut record = AuditRecord::new(AuditEvent::LockBroken).operations(vec![what]);
    if let Some(h) = holder {
        record.extra.insert(
            "holder".into(),
            serde_json::json!({"lockId": h.lock_id, "pid": h.pid, "host": h.hostname, "user": h.user,
                               "acquiredAt": h.acquired_at, "note": h.note}),
        );
    }
    record
}

fn lock_std<T>(mutex: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

enum Attempt {
    Acquired(LockInfo),
    /// Held by someone else (who, a timeout reads separately: waiting needs no name).
    Busy,
}

enum Holder {
    Free,
    Known(Box<LockInfo>),
    Unreadable(DateTime<Utc>),
}

/// The lock provider of a `postgres` store; see the module docs. Cheap to clone;
/// clones share one session.
#[derive(Clone)]
pub struct PostgresLockProvider {
    pub(crate) shared: Arc<LockShared>,
}

impl fmt::Debug for PostgresLockProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLockProvider")
            .field("resource", &self.shared.resource)
            .finish_non_exhaustive()
    }
}

/// Deletes a waiter's row however its `acquire` ends, including when the future is
/// dropped (then in the background, hidden from `inspect` meanwhile).
struct WaiterRegistration {
    shared: Arc<LockShared>,
    id: String,
    registered: bool,
}

impl WaiterRegistration {
    async fn finish(mut self) {
        if self.registered {
            self.registered = false;
            if let Err(error) = self.shared.remove_waiter(&self.id).await {
                tracing::warn!(%error, "could not remove a lock waiter's row");
            }
        }
    }
}

impl Drop for WaiterRegistration {
    fn drop(&mut self) {
        if !self.registered {
            return;
        }
        lock_std(&self.shared.cancelled).insert(self.id.clone());
        let (shared, id) = (Arc::clone(&self.shared), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = shared.remove_waiter(&id).await {
                    tracing::warn!(%error, "could not remove a cancelled lock waiter's row");
                }
            });
        }
    }
}

#[async_trait]
impl LockProvider for PostgresLockProvider {
    fn resource(&self) -> &str {
        &self.shared.resource
    }

    fn capabilities(&self) -> LockCapabilities {
        LockCapabilities::CROSS_PROCESS
    }

    async fn acquire(&self, request: &LockRequest) -> Result<LockGuard> {
        let shared = &self.shared;
        let started = Instant::now();
        let deadline = started + request.timeout;
        let lock_id = uuid::Uuid::new_v4().to_string();
        let mut registration = WaiterRegistration {
            shared: Arc::clone(shared),
            id: uuid::Uuid::new_v4().to_string(),
            registered: false,
        };
        loop {
            let released = shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if let Attempt::Acquired(info) = shared.try_acquire(&lock_id, request).await? {
                registration.finish().await;
                return Ok(LockGuard::new(Box::new(HeldPostgresLock::start(
                    Arc::clone(shared),
                    info,
                    request.expiry,
                ))));
            }
            if !registration.registered {
                shared.register_waiter(&registration.id).await?;
                registration.registered = true;
            }
            let now = Instant::now();
            if now >= deadline {
                let holder = shared.holder().await;
                registration.finish().await;
                return Err(Error::LockTimeout {
                    resource: shared.resource.clone(),
                    waited: started.elapsed(),
                    holder: match holder? {
                        Holder::Known(info) => Some(info),
                        Holder::Free | Holder::Unreadable(_) => None,
                    },
                });
            }
            let pause = jittered(request.retry_interval).min(deadline - now);
            let woken = tokio::select! {
                () = &mut released => true,
                () = tokio::time::sleep(pause) => false,
            };
            // A release wakes every waiter of every machine at once; spreading their
            // next attempts over a few milliseconds spares the row one pile-up per
            // release (the one that gets in is decided by the row, not the order).
            if woken {
                tokio::time::sleep(
                    jittered(NOTIFIED_SPREAD).min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
            }
        }
    }

    async fn inspect(&self) -> Result<LockStatus> {
        let (holder, unreadable) = match self.shared.holder().await? {
            Holder::Free => (None, None),
            Holder::Known(info) => (Some(*info), None),
            Holder::Unreadable(modified_at) => (None, Some(UnreadableLock { modified_at })),
        };
        Ok(LockStatus {
            holder,
            waiters: self.shared.waiters().await?,
            unreadable,
        })
    }

    async fn force_release(&self, lock_id: &str) -> Result<bool> {
        let holder = match self.shared.holder().await? {
            Holder::Known(info) if info.lock_id == lock_id => Some(info),
            _ => None,
        };
        let freed = self.shared.free(lock_id).await?;
        if freed {
            tracing::warn!(lock_id, resource = %self.shared.resource, "lock force-released");
            let record = lock_record(holder.as_deref(), "force-released the lock".to_owned());
            self.shared.append_audit(&record).await;
        }
        Ok(freed)
    }
}

/// A held lease with its heartbeat.
struct HeldPostgresLock {
    shared: Arc<LockShared>,
    info: LockInfo,
    lost: Arc<AtomicBool>,
    heartbeat: JoinHandle<()>,
}

impl fmt::Debug for HeldPostgresLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldPostgresLock")
            .field("lock_id", &self.info.lock_id)
            .finish_non_exhaustive()
    }
}

impl HeldPostgresLock {
    fn start(shared: Arc<LockShared>, info: LockInfo, expiry: Duration) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn(heartbeat(
            Arc::clone(&shared),
            info.lock_id.clone(),
            expiry,
            Arc::clone(&lost),
        ));
        Self {
            shared,
            info,
            lost,
            heartbeat,
        }
    }

    fn lost_error(&self) -> Error {
        Error::LockLost {
            resource: self.shared.resource.clone(),
            lock_id: self.info.lock_id.clone(),
        }
    }
}

/// Renews the lease every expiry/3; a renewal that finds the row taken marks the lock
/// lost, and so does one that has not succeeded for a whole expiry (the server or the
/// connection gone: others may take the lock by now).
async fn heartbeat(shared: Arc<LockShared>, lock_id: String, expiry: Duration, lost: Arc<AtomicBool>) {
    let interval = (expiry / 3).min(HEARTBEAT).max(Duration::from_millis(10));
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(interval).await;
        match shared.renew(&lock_id, expiry).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => {
                lost.store(true, Ordering::Release);
                tracing::warn!(lock_id, "the lock was taken away; stopping its heartbeat");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew the lock; will retry");
                if last_renewed.elapsed() >= expiry {
                    lost.store(true, Ordering::Release);
                    return;
                }
            }
        }
    }
}

#[async_trait]
impl HeldLock for HeldPostgresLock {
    fn info(&self) -> &LockInfo {
        &self.info
    }

    async fn ensure_held(&self) -> Result<()> {
        if self.lost.load(Ordering::Acquire) {
            return Err(self.lost_error());
        }
        if self.shared.current_lock_id().await?.as_deref() == Some(self.info.lock_id.as_str()) {
            Ok(())
        } else {
            self.lost.store(true, Ordering::Release);
            Err(self.lost_error())
        }
    }

    async fn release(self: Box<Self>) -> Result<()> {
        self.heartbeat.abort();
        self.shared.free(&self.info.lock_id).await.map(drop)
    }

    fn release_in_background(self: Box<Self>) {
        self.heartbeat.abort();
        // Without a runtime the lease is left to its session: when this process exits
        // the session ends and the next waiter takes the lock at once.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = self.shared.free(&self.info.lock_id).await {
                    tracing::warn!(%error, "could not release a lock on drop");
                }
            });
        }
    }
}

/// `retry` ±50 %, so waiters on many machines do not poll in step.
fn jittered(retry: Duration) -> Duration {
    let spread = f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
    retry.mul_f64(0.5 + spread)
}
