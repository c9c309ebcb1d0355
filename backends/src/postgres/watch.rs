//! The change feed of the `postgres` backend (docs/backends.md, "Following changes").
//!
//! A watch has a session of its own that `LISTEN`s on the schema's change channel: a
//! commit or an audit record of any checkout `NOTIFY`s it in its own transaction, so the
//! watch wakes when that commits. Its floor asks the server for the store's revision,
//! checksum and last audit record every few seconds, for what a notification cannot
//! bring: a connection dropped and made again (notifications sent in between are
//! lost), or a transaction-pooling PgBouncer, through which `LISTEN` hears nothing.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use checklist_core::{ChangeWatch, Error, Result};
use tokio_postgres::types::Type;

use super::session::Session;
use super::store::Inner;

/// How often a watch asks the server itself.
const FLOOR: Duration = Duration::from_secs(2);

/// A watch of one `postgres` store.
pub(crate) struct PostgresWatch {
    store: Arc<Inner>,
    session: Option<Session>,
    notified: tokio::sync::watch::Receiver<u64>,
    notify: Arc<tokio::sync::watch::Sender<u64>>,
    last: Vec<u64>,
}

impl fmt::Debug for PostgresWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresWatch")
            .field("location", &self.store.info.location)
            .field("connected", &self.session.as_ref().is_some_and(|s| !s.is_ended()))
            .finish_non_exhaustive()
    }
}

impl PostgresWatch {
    /// Connects, listens and takes the first mark: every commit after this returns
    /// wakes the watch.
    pub(crate) async fn start(store: Arc<Inner>) -> Result<Self> {
        let (notify, notified) = tokio::sync::watch::channel(0);
        let mut watch = Self {
            store,
            session: None,
            notified,
            notify: Arc::new(notify),
            last: Vec::new(),
        };
        watch.connect().await?;
        watch.last = watch.mark().await?;
        Ok(watch)
    }

    /// A new session listening on the change channel (listening first, so nothing
    /// committed after the caller's next mark is missed).
    async fn connect(&mut self) -> Result<()> {
        self.session = None;
        let notify = Arc::clone(&self.notify);
        let session = Session::connect(
            &self.store.server,
            &self.store.info.location,
            Duration::from_secs(1),
            Some(Arc::new(move || notify.send_modify(|count| *count += 1))),
        )
        .await?;
        let channel = self.store.tables.change_channel();
        self.timed(
            "listen for changes of",
            session.client.batch_execute(&format!("LISTEN \"{channel}\"")),
        )
        .await?;
        self.session = Some(session);
        Ok(())
    }

    /// The store's revision, checksum and last audit record, as the server has them.
    async fn mark(&mut self) -> Result<Vec<u64>> {
        let Some(session) = &self.session else {
            return Ok(Vec::new());
        };
        let tables = &self.store.tables;
        let sql = format!(
            "SELECT (SELECT revision FROM {states} WHERE store = $1), \
                    (SELECT checksum FROM {states} WHERE store = $1), \
                    (SELECT max(seq) FROM {audit} WHERE store = $1)",
            states = tables.states,
            audit = tables.audit,
        );
        let row = self
            .timed(
                "ask for changes of",
                session
                    .client
                    .query_typed_one(&sql, &[(&self.store.key, Type::TEXT)]),
            )
            .await?;
        let revision = row.get::<_, Option<i64>>(0).unwrap_or(0) as u64;
        let mut checksum = std::collections::hash_map::DefaultHasher::new();
        row.get::<_, Option<String>>(1).hash(&mut checksum);
        let audit = row.get::<_, Option<i64>>(2).unwrap_or(0) as u64;
        Ok(vec![revision, checksum.finish(), audit])
    }

    async fn timed<T>(
        &self,
        operation: &str,
        work: impl Future<Output = std::result::Result<T, tokio_postgres::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.store.settings.operation_timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.store.db_error(operation, error)),
            Err(_) => Err(Error::Backend {
                backend: super::BACKEND_NAME.to_owned(),
                operation: operation.to_owned(),
                location: self.store.info.location.clone(),
                source: format!(
                    "no answer within {} ms",
                    self.store.settings.operation_timeout.as_millis()
                )
                .into(),
            }),
        }
    }
}

#[async_trait]
impl ChangeWatch for PostgresWatch {
    async fn changed(&mut self) -> Result<()> {
        loop {
            if self.session.as_ref().is_none_or(Session::is_ended) {
                // Notifications sent while the connection was down are lost: after
                // connecting again, the caller must look.
                self.connect().await?;
                self.last = self.mark().await?;
                return Ok(());
            }
            tokio::select! {
                notified = self.notified.changed() => {
                    // The sender lives in this watch; it cannot be gone.
                    let () = notified.unwrap_or(());
                    return Ok(());
                }
                () = tokio::time::sleep(FLOOR) => {
                    let mark = match self.mark().await {
                        Ok(mark) => mark,
                        // A broken session is made again on the next turn.
                        Err(_) if self.session.as_ref().is_none_or(Session::is_ended) => continue,
                        Err(e) => return Err(e),
                    };
                    if mark != self.last {
                        self.last = mark;
                        return Ok(());
                    }
                }
            }
        }
    }
}
