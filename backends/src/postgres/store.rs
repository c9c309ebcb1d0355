//! The store's planes on PostgreSQL: one row per store in each table of the schema,
//! the document as its exact bytes, and every write one SQL transaction — the
//! compare-and-swap on the bytes read, the backup of what it replaces, the pruning and
//! the audit record commit together or not at all.

use std::path::Path;
use std::time::Duration;

use checklist_core::archive::{ArchivedInstance, HistoryEntry, validate_file_stem};
use checklist_core::backup::{BackupIndexRebuild, validate_backup_id};
use checklist_core::config::{AuditSettings, Durability};
use checklist_core::quarantine::{QuarantineNote, QuarantineRecord, bytes_sha256, new_quarantine_id};
use checklist_core::store;
use checklist_core::{
    AuditLog, AuditRecord, BackupRecord, Committed, CorruptionKind, Error, Precondition, Result, StoreInfo,
    WriteReceipt, WriteRequest,
};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use super::schema::{self, Tables};
use super::server::Server;
use super::session::Session;
use crate::codec::json::JsonCodec;

/// How a store's statements are bounded and its commits made durable.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Create the tables when they are missing (`createSchema`).
    pub(crate) create_schema: bool,
    /// `full`: the server's own synchronous commit; `fast`: `synchronous_commit = off`.
    pub(crate) durability: Durability,
    /// The largest document stored.
    pub(crate) max_state_bytes: u64,
    /// When the audit trail starts a new part and how many it keeps.
    pub(crate) audit: AuditSettings,
    /// How long one operation may wait for the server before it is given up on.
    pub(crate) operation_timeout: Duration,
}

/// What a store keeps: its identity, where it lives, and its one session.
pub(crate) struct Inner {
    pub(crate) info: StoreInfo,
    pub(crate) server: Server,
    pub(crate) tables: Tables,
    pub(crate) key: String,
    pub(crate) settings: Settings,
    session: Mutex<Option<Session>>,
    layout_ready: std::sync::atomic::AtomicBool,
}

/// A failure of one operation: the server's error, or no answer in time.
enum Failure {
    Db(tokio_postgres::Error),
    TimedOut,
    Store(Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Store(error)
    }
}

type Attempt<T> = std::result::Result<T, Failure>;

/// How the stored bytes were found by a write: absent, or these bytes (their digest,
/// and the revision and checksum they verify at).
struct Found {
    digest: Vec<u8>,
    revision: u64,
    checksum: String,
    size: u64,
}

impl Inner {
    pub(crate) fn new(
        info: StoreInfo,
        server: Server,
        tables: Tables,
        key: String,
        settings: Settings,
    ) -> Self {
        Self {
            info,
            server,
            tables,
            key,
            settings,
            session: Mutex::new(None),
            layout_ready: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn location(&self) -> &str {
        &self.info.location
    }

    fn location_path(&self) -> &Path {
        self.info.location_path()
    }

    /// The connected session, connecting (and checking the tables) first when there
    /// is none or the last one ended.
    async fn session(&self) -> Result<MutexGuard<'_, Option<Session>>> {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_none_or(Session::is_ended) {
            *guard = None;
            let mut session =
                Session::connect(&self.server, self.location(), Duration::from_secs(1), None).await?;
            if !self.layout_ready.load(std::sync::atomic::Ordering::Acquire) {
                schema::ensure_layout(
                    &mut session.client,
                    &self.tables,
                    self.settings.create_schema,
                    self.location(),
                )
                .await?;
                self.layout_ready
                    .store(true, std::sync::atomic::Ordering::Release);
            }
            *guard = Some(session);
        }
        Ok(guard)
    }

    pub(crate) fn db_error(&self, operation: &str, error: tokio_postgres::Error) -> Error {
        Error::Backend {
            backend: super::BACKEND_NAME.to_owned(),
            operation: operation.to_owned(),
            location: self.location().to_owned(),
            source: super::session::explained(error),
        }
    }

    /// `work`, bounded by the operation timeout.
    async fn timed<T>(&self, work: impl std::future::Future<Output = Attempt<T>>) -> Attempt<T> {
        tokio::time::timeout(self.settings.operation_timeout, work)
            .await
            .unwrap_or(Err(Failure::TimedOut))
    }

    /// Turns what went wrong in `operation` into the store's error; a session whose
    /// connection broke or did not answer is dropped, so the next operation connects
    /// again.
    fn settle<T>(&self, session: &mut Option<Session>, operation: &str, outcome: Attempt<T>) -> Result<T> {
        outcome.map_err(|failure| {
            if matches!(&failure, Failure::TimedOut) || session.as_ref().is_some_and(Session::is_ended) {
                *session = None;
            }
            self.failure(operation, failure)
        })
    }

    fn failure(&self, operation: &str, failure: Failure) -> Error {
        match failure {
            Failure::Db(error) => self.db_error(operation, error),
            Failure::Store(error) => error,
            Failure::TimedOut => Error::Backend {
                backend: super::BACKEND_NAME.to_owned(),
                operation: operation.to_owned(),
                location: self.location().to_owned(),
                source: format!(
                    "no answer within {} s; the server may be down, overloaded or unreachable",
                    self.settings.operation_timeout.as_secs()
                )
                .into(),
            },
        }
    }

    fn not_found(&self, what: &'static str, id: &str) -> Error {
        Error::NotFound {
            what,
            id: id.to_owned(),
            location: self.location().to_owned(),
        }
    }

    // ---- the document ----

    pub(crate) async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT doc FROM {} WHERE store = $1", self.tables.states);
        on_session!(self, "read the state from", |session| async {
            let row = session
                .client
                .query_typed_opt(&sql, &[(&self.key, Type::TEXT)])
                .await?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })
    }

    /// What `stored` is with respect to `precondition`: `None` for no document, else
    /// what the write replaces — or the error the precondition calls for.
    fn check(&self, stored: Option<&[u8]>, precondition: &Precondition) -> Result<Option<Found>> {
        let replaced = precondition.check(stored, &JsonCodec, self.location_path())?;
        Ok(replaced.zip(stored).map(|((revision, checksum), bytes)| Found {
            digest: Sha256::digest(bytes).to_vec(),
            revision,
            checksum,
            size: bytes.len() as u64,
        }))
    }

    pub(crate) async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
        request
            .document
            .refuse_over(self.settings.max_state_bytes, self.location_path())?;
        // A writer that loses a race sees the other's commit on the next read and gets
        // the error that calls for; one whose read raced a commit that then turned out
        // to meet its precondition after all (a recovery writing the same bytes) tries
        // again, a bounded number of times.
        for _ in 0..3 {
            let stored = self.read_raw().await?;
            let replaced = self.check(stored.as_deref(), &request.precondition)?;
            match self.commit(&request, replaced.as_ref()).await? {
                Some(receipt) => return Ok(receipt),
                None => continue,
            }
        }
        let stored = self.read_raw().await?;
        self.check(stored.as_deref(), &request.precondition)?;
        Err(Error::PreconditionFailed {
            path: self.location_path().to_owned(),
            expected: request.precondition.to_string(),
            found: "a document other writers kept changing".to_owned(),
        })
    }

    /// One commit transaction; `Ok(None)` when the stored bytes are no longer those
    /// read (nothing changed).
    async fn commit(&self, request: &WriteRequest, replaced: Option<&Found>) -> Result<Option<WriteReceipt>> {
        let outcome = on_session!(self, "commit to", |session| async {
            self.commit_transaction(&mut session.client, request, replaced)
                .await
        });
        // A connection lost around COMMIT leaves its outcome unknown: find it out by
        // reading what is stored, never by guessing or writing again.
        let connection_lost =
            matches!(outcome, Err(Error::Backend { .. })) && self.session.lock().await.is_none();
        if !connection_lost {
            return outcome;
        }
        match self.stored_digest().await {
            Ok(Some(digest)) if digest == Sha256::digest(&request.document.bytes).as_slice() => {
                tracing::warn!(
                    location = self.location(),
                    "the connection broke while committing; the commit is there"
                );
                Ok(Some(self.receipt_after_unknown_commit(request, replaced).await))
            }
            // Other bytes (or none) are stored: the commit did not happen.
            Ok(_) => outcome,
            // The server cannot be asked: whether the commit happened is not known, and
            // the error must not say that nothing changed.
            Err(_) => outcome.map_err(outcome_unknown),
        }
    }

    async fn stored_digest(&self) -> Result<Option<Vec<u8>>> {
        let sql = format!("SELECT sha256(doc) FROM {} WHERE store = $1", self.tables.states);
        on_session!(self, "read the state from", |session| async {
            let row = session
                .client
                .query_typed_opt(&sql, &[(&self.key, Type::TEXT)])
                .await?;
            Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
        })
    }

    /// The receipt of a commit whose answer was lost: what the transaction wrote is
    /// read back (the backup of the replaced revision, if one was asked for).
    /// (The commit stands whether or not its backup can be listed again.)
    async fn receipt_after_unknown_commit(
        &self,
        request: &WriteRequest,
        replaced: Option<&Found>,
    ) -> WriteReceipt {
        let backup = match (&request.keep, replaced) {
            (Some(_), Some(found)) => self
                .list_backups()
                .await
                .unwrap_or_default()
                .into_iter()
                .rev()
                .find(|b| b.revision == found.revision && b.checksum == found.checksum),
            _ => None,
        };
        WriteReceipt {
            committed: Committed {
                revision: request.document.revision,
                checksum: request.document.checksum.clone(),
            },
            backup,
            pruned: Vec::new(),
            unaudited: None,
        }
    }

    async fn commit_transaction(
        &self,
        client: &mut Client,
        request: &WriteRequest,
        replaced: Option<&Found>,
    ) -> Attempt<Option<WriteReceipt>> {
        let tables = &self.tables;
        let key = &self.key;
        let transaction = client.transaction().await?;
        transaction.batch_execute(&self.transaction_settings()).await?;
        let revision = request.document.revision as i64;
        let mut backup = None;
        match replaced {
            None => {
                let inserted = transaction
                    .execute_typed(
                        &format!(
                            "INSERT INTO {} (store, revision, checksum, doc) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (store) DO NOTHING",
                            tables.states
                        ),
                        &[
                            (key, Type::TEXT),
                            (&revision, Type::INT8),
                            (&request.document.checksum, Type::TEXT),
                            (&request.document.bytes, Type::BYTEA),
                        ],
                    )
                    .await?;
                if inserted == 0 {
                    return Ok(None);
                }
            }
            Some(found) => {
                let locked = transaction
                    .query_typed_opt(
                        &format!(
                            "SELECT 1 FROM {} WHERE store = $1 AND sha256(doc) = $2 FOR UPDATE",
                            tables.states
                        ),
                        &[(key, Type::TEXT), (&found.digest, Type::BYTEA)],
                    )
                    .await?;
                if locked.is_none() {
                    return Ok(None);
                }
                if let Some(keep) = &request.keep {
                    backup = Some(
                        insert_backup(&transaction, tables, key, found, &keep.reason)
                            .await
                            .map_err(Failure::Db)?,
                    );
                }
                transaction
                    .execute_typed(
                        &format!(
                            "UPDATE {} SET revision = $2, checksum = $3, doc = $4, updated_at = now() WHERE store = $1",
                            tables.states
                        ),
                        &[
                            (key, Type::TEXT),
                            (&revision, Type::INT8),
                            (&request.document.checksum, Type::TEXT),
                            (&request.document.bytes, Type::BYTEA),
                        ],
                    )
                    .await?;
            }
        }
        let mut pruned = Vec::new();
        if let (Some(policy), Some(_)) = (request.keep.as_ref().and_then(|k| k.policy.as_deref()), &backup) {
            let listed = list_backups(&transaction, tables, key).await?;
            pruned = policy.to_prune(&listed, checklist_core::model::now());
            if !pruned.is_empty() {
                transaction
                    .execute_typed(
                        &format!("DELETE FROM {} WHERE store = $1 AND id = ANY($2)", tables.backups),
                        &[(key, Type::TEXT), (&pruned, Type::TEXT_ARRAY)],
                    )
                    .await?;
            }
        }
        if let Some(record) = &request.audit {
            append_audit(&transaction, tables, key, record).await?;
        }
        announce_change(&transaction, tables, key).await?;
        transaction.commit().await?;
        Ok(Some(WriteReceipt {
            committed: Committed {
                revision: request.document.revision,
                checksum: request.document.checksum.clone(),
            },
            backup: backup.map(|record| self.backup_record(record)),
            pruned,
            unaudited: None,
        }))
    }

    /// The limits of one transaction, set for it alone (`SET LOCAL`), so they hold
    /// through a transaction-pooling PgBouncer as well.
    fn transaction_settings(&self) -> String {
        let ms = self.settings.operation_timeout.as_millis();
        let mut settings = format!(
            "SET LOCAL statement_timeout = {ms}; SET LOCAL lock_timeout = {ms}; \
             SET LOCAL idle_in_transaction_session_timeout = {ms};"
        );
        if self.settings.durability == Durability::Fast {
            settings.push_str(" SET LOCAL synchronous_commit = off;");
        }
        settings
    }

    fn backup_record(&self, mut record: BackupRecord) -> BackupRecord {
        record.location = format!(
            "{}.backups, key {}, id {}",
            self.tables.schema, self.key, record.id
        );
        record
    }

    // ---- the audit trail ----

    pub(crate) async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
        on_session!(self, "append to the audit trail of", |session| async {
            append_audit(&session.client, &self.tables, &self.key, record)
                .await
                .map_err(Failure::Db)?;
            announce_change(&session.client, &self.tables, &self.key)
                .await
                .map_err(Failure::Db)
        })
    }

    /// The `doc` of this store's row of `table` whose `id_column` is `id`;
    /// [`Error::NotFound`] naming `what` when there is none.
    async fn doc_by_id(
        &self,
        table: &str,
        id_column: &str,
        id: &str,
        operation: &str,
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let sql = format!("SELECT doc FROM {table} WHERE store = $1 AND {id_column} = $2");
        let id_owned = id.to_owned();
        let row = on_session!(self, operation, |session| async {
            Ok(session
                .client
                .query_typed_opt(&sql, &[(&self.key, Type::TEXT), (&id_owned, Type::TEXT)])
                .await?)
        })?;
        row.map(|row| row.get::<_, Vec<u8>>(0))
            .ok_or_else(|| self.not_found(what, id))
    }

    /// The texts in `column` of this store's rows of `table`, in the order they were
    /// added (`seq`): the audit trail, the archive history, the quarantine.
    async fn texts_in_order(&self, column: &str, table: &str, operation: &str) -> Result<Vec<String>> {
        let sql = format!("SELECT {column} FROM {table} WHERE store = $1 ORDER BY seq");
        on_session!(self, operation, |session| async {
            let rows = session
                .client
                .query_typed(&sql, &[(&self.key, Type::TEXT)])
                .await?;
            Ok(rows.iter().map(|row| row.get::<_, String>(0)).collect())
        })
    }

    /// [`texts_in_order`](Self::texts_in_order), each a JSON `T`; one that is not is
    /// damage to `what`.
    async fn records_in_order<T: serde::de::DeserializeOwned>(
        &self,
        column: &str,
        table: &str,
        operation: &str,
        what: &str,
    ) -> Result<Vec<T>> {
        self.texts_in_order(column, table, operation)
            .await?
            .iter()
            .map(|text| {
                serde_json::from_str::<T>(text).map_err(|e| Error::Corrupted {
                    kind: CorruptionKind::ParseError,
                    path: Path::new(&format!("{}, {what}", self.location())).to_owned(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    pub(crate) async fn read_audit(&self) -> Result<AuditLog> {
        let lines = self
            .texts_in_order("record", &self.tables.audit, "read the audit trail of")
            .await?;
        let mut log = AuditLog::default();
        let text = lines.join("\n");
        log.parse_into(
            Path::new(&format!("{}.audit", self.tables.schema)),
            text.as_bytes(),
            false,
        );
        Ok(log)
    }

    pub(crate) async fn rotate_audit(&self) -> Result<bool> {
        let AuditSettings {
            max_bytes,
            keep_files,
        } = self.settings.audit.clone();
        let size_sql = format!(
            "SELECT coalesce(sum(octet_length(record)), 0)::bigint FROM {} WHERE store = $1 AND part = 0",
            self.tables.audit
        );
        let shift_sql = format!(
            "UPDATE {} SET part = part + 1 WHERE store = $1",
            self.tables.audit
        );
        let drop_sql = format!("DELETE FROM {} WHERE store = $1 AND part > $2", self.tables.audit);
        on_session!(self, "rotate the audit trail of", |session| async {
            let size: i64 = session
                .client
                .query_typed_one(&size_sql, &[(&self.key, Type::TEXT)])
                .await?
                .get(0);
            if (size as u64) <= max_bytes {
                return Ok(false);
            }
            let keep = i32::try_from(keep_files).unwrap_or(i32::MAX);
            let transaction = session.client.transaction().await?;
            transaction
                .execute_typed(&shift_sql, &[(&self.key, Type::TEXT)])
                .await?;
            transaction
                .execute_typed(&drop_sql, &[(&self.key, Type::TEXT), (&keep, Type::INT4)])
                .await?;
            transaction.commit().await?;
            Ok(true)
        })
    }

    // ---- backups ----

    pub(crate) async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
        for _ in 0..3 {
            let Some(bytes) = self.read_raw().await? else {
                return Ok(None);
            };
            let state = store::verify(&JsonCodec, &bytes, self.location_path())?;
            let found = Found {
                digest: Sha256::digest(&bytes).to_vec(),
                revision: state.revision,
                checksum: state.checksum.unwrap_or_default(),
                size: bytes.len() as u64,
            };
            let found = &found;
            let created = on_session!(self, "back up the state of", |session| async {
                let transaction = session.client.transaction().await?;
                let still = transaction
                    .query_typed_opt(
                        &format!(
                            "SELECT 1 FROM {} WHERE store = $1 AND sha256(doc) = $2 FOR SHARE",
                            self.tables.states
                        ),
                        &[(&self.key, Type::TEXT), (&found.digest, Type::BYTEA)],
                    )
                    .await?;
                if still.is_none() {
                    return Ok(None);
                }
                let record = insert_backup(&transaction, &self.tables, &self.key, found, reason).await?;
                transaction.commit().await?;
                Ok(Some(record))
            })?;
            if let Some(record) = created {
                return Ok(Some(self.backup_record(record)));
            }
        }
        Err(Error::PreconditionFailed {
            path: self.location_path().to_owned(),
            expected: "the state it read".to_owned(),
            found: "a document other writers kept changing".to_owned(),
        })
    }

    pub(crate) async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
        let listed = on_session!(self, "list the backups of", |session| async {
            list_backups(&session.client, &self.tables, &self.key)
                .await
                .map_err(Failure::Db)
        })?;
        Ok(listed
            .into_iter()
            .map(|record| self.backup_record(record))
            .collect())
    }

    pub(crate) async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
        self.doc_by_id(&self.tables.backups, "id", id, "read a backup of", "backup")
            .await
    }

    pub(crate) async fn delete_backup(&self, id: &str) -> Result<()> {
        let sql = format!("DELETE FROM {} WHERE store = $1 AND id = $2", self.tables.backups);
        let id_owned = id.to_owned();
        let deleted = on_session!(self, "delete a backup of", |session| async {
            Ok(session
                .client
                .execute_typed(&sql, &[(&self.key, Type::TEXT), (&id_owned, Type::TEXT)])
                .await?)
        })?;
        if deleted == 0 {
            return Err(self.not_found("backup", id));
        }
        Ok(())
    }

    pub(crate) fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
        Err(Error::Unsupported {
            operation: "rebuilding the backup index (backups are rows, listed by themselves)".to_owned(),
            backend: super::BACKEND_NAME.to_owned(),
            location: self.location().to_owned(),
        })
    }

    // ---- the archive ----

    pub(crate) async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
        let id = archived.instance.id.clone();
        validate_file_stem("instance id", &id)?;
        let sealed = archived.seal(&self.location_path().join("archive").join(&id))?;
        let entry = archived.history_entry(
            format!("{}.archive, key {}, id {id}", self.tables.schema, self.key),
            sealed.checksum.clone(),
        );
        let doc = serde_json::to_vec_pretty(&sealed.value).map_err(|e| Error::invalid(e.to_string()))?;
        let entry_json = serde_json::to_string(&entry).map_err(|e| Error::invalid(e.to_string()))?;
        let sql = format!(
            "INSERT INTO {archive} (store, instance_id, seq, entry, doc) VALUES ($1, $2, nextval('{order}'), $3, $4)
             ON CONFLICT (store, instance_id) DO UPDATE SET seq = EXCLUDED.seq, entry = EXCLUDED.entry, doc = EXCLUDED.doc",
            archive = self.tables.archive,
            order = self.tables.archive_order.replace('\'', "''"),
        );
        let settings = self.transaction_settings();
        on_session!(self, "archive an instance in", |session| async {
            let transaction = session.client.transaction().await?;
            transaction.batch_execute(&settings).await?;
            transaction
                .execute_typed(
                    &sql,
                    &[
                        (&self.key, Type::TEXT),
                        (&id, Type::TEXT),
                        (&entry_json, Type::TEXT),
                        (&doc, Type::BYTEA),
                    ],
                )
                .await?;
            transaction.commit().await?;
            Ok(())
        })?;
        Ok(entry)
    }

    pub(crate) async fn history(&self) -> Result<Vec<HistoryEntry>> {
        self.records_in_order(
            "entry",
            &self.tables.archive,
            "read the archive history of",
            "archive history",
        )
        .await
    }

    pub(crate) async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
        validate_file_stem("instance id", instance_id)?;
        let bytes = self
            .doc_by_id(
                &self.tables.archive,
                "instance_id",
                instance_id,
                "read an archived instance of",
                "archived instance",
            )
            .await?;
        let path = self.location_path().join("archive").join(instance_id);
        let value = store::decode(&JsonCodec, &bytes, &path)?;
        ArchivedInstance::unseal(value, &path)
    }

    pub(crate) async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
        validate_backup_id(&record.id)?;
        let sql = format!(
            "INSERT INTO {} (store, id, revision, checksum, size, created_at, reason, doc)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (store, id) DO NOTHING",
            self.tables.backups
        );
        let (revision, size) = (record.revision as i64, document.len() as i64);
        let inserted = on_session!(self, "import a backup into", |session| async {
            Ok(session
                .client
                .execute_typed(
                    &sql,
                    &[
                        (&self.key, Type::TEXT),
                        (&record.id, Type::TEXT),
                        (&revision, Type::INT8),
                        (&record.checksum, Type::TEXT),
                        (&size, Type::INT8),
                        (&record.created_at, Type::TIMESTAMPTZ),
                        (&record.reason, Type::TEXT),
                        (&document, Type::BYTEA),
                    ],
                )
                .await?)
        })?;
        if inserted == 0 {
            return Err(Error::already_listed("backup", &record.id, self.location_path()));
        }
        Ok(self.backup_record(BackupRecord {
            size: document.len() as u64,
            ..record.clone()
        }))
    }

    // ---- the quarantine ----

    pub(crate) async fn import_quarantined(
        &self,
        record: &QuarantineRecord,
        found: &[u8],
    ) -> Result<QuarantineRecord> {
        validate_backup_id(&record.id)?;
        let kept = QuarantineRecord {
            location: format!(
                "{}.quarantine, key {}, id {}",
                self.tables.schema, self.key, record.id
            ),
            ..record.clone()
        };
        let record_json = serde_json::to_string(&kept).map_err(|e| Error::invalid(e.to_string()))?;
        let sql = format!(
            "INSERT INTO {} (store, id, record, doc) VALUES ($1, $2, $3, $4) ON CONFLICT (store, id) DO NOTHING",
            self.tables.quarantine
        );
        let inserted = on_session!(self, "import a quarantined document into", |session| async {
            Ok(session
                .client
                .execute_typed(
                    &sql,
                    &[
                        (&self.key, Type::TEXT),
                        (&kept.id, Type::TEXT),
                        (&record_json, Type::TEXT),
                        (&found, Type::BYTEA),
                    ],
                )
                .await?)
        })?;
        if inserted == 0 {
            return Err(Error::already_listed(
                "quarantined document",
                &record.id,
                self.location_path(),
            ));
        }
        Ok(kept)
    }

    pub(crate) async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
        let now = checklist_core::model::now();
        let id = new_quarantine_id(now);
        let record = QuarantineRecord {
            location: format!("{}.quarantine, key {}, id {id}", self.tables.schema, self.key),
            id: id.clone(),
            quarantined_at: now,
            size: found.len() as u64,
            sha256: bytes_sha256(found),
            note: note.clone(),
        };
        let record_json = serde_json::to_string(&record).map_err(|e| Error::invalid(e.to_string()))?;
        let digest = Sha256::digest(found).to_vec();
        let sql = format!(
            "INSERT INTO {} (store, id, record, doc) SELECT store, $2, $3, doc FROM {} WHERE store = $1 AND sha256(doc) = $4",
            self.tables.quarantine, self.tables.states
        );
        let kept = on_session!(self, "quarantine the state of", |session| async {
            Ok(session
                .client
                .execute_typed(
                    &sql,
                    &[
                        (&self.key, Type::TEXT),
                        (&id, Type::TEXT),
                        (&record_json, Type::TEXT),
                        (&digest, Type::BYTEA),
                    ],
                )
                .await?)
        })?;
        if kept == 0 {
            let stored = self.read_raw().await?;
            return Err(Error::PreconditionFailed {
                path: self.location_path().to_owned(),
                expected: format!("the {} bytes read before", found.len()),
                found: stored.map_or_else(|| "no state".to_owned(), |b| format!("{} other bytes", b.len())),
            });
        }
        Ok(record)
    }

    pub(crate) async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
        self.records_in_order(
            "record",
            &self.tables.quarantine,
            "list the quarantine of",
            "quarantine",
        )
        .await
    }

    pub(crate) async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
        self.doc_by_id(
            &self.tables.quarantine,
            "id",
            id,
            "read a quarantined document of",
            "quarantined document",
        )
        .await
    }
}

/// Copies the stored document, which the caller holds locked at `found`, into the
/// backups under a new id, inside the caller's transaction.
async fn insert_backup(
    transaction: &tokio_postgres::Transaction<'_>,
    tables: &Tables,
    key: &str,
    found: &Found,
    reason: &str,
) -> std::result::Result<BackupRecord, tokio_postgres::Error> {
    let now = checklist_core::model::now();
    let stamp = format!("{}-{}", found.revision, now.format("%Y%m%dT%H%M%S%3fZ"));
    let revision = found.revision as i64;
    let size = found.size as i64;
    let sql = format!(
        "INSERT INTO {backups} (store, id, revision, checksum, size, created_at, reason, doc)
         SELECT store, $2, $3, $4, $5, $6, $7, doc FROM {states} WHERE store = $1
         ON CONFLICT (store, id) DO NOTHING",
        backups = tables.backups,
        states = tables.states
    );
    // Two backups of one revision in one millisecond (a manual backup beside a commit)
    // get a suffix rather than one replacing the other.
    let mut id = stamp.clone();
    for n in 2.. {
        debug_assert!(validate_backup_id(&id).is_ok());
        let inserted = transaction
            .execute_typed(
                &sql,
                &[
                    (&key, Type::TEXT),
                    (&id, Type::TEXT),
                    (&revision, Type::INT8),
                    (&found.checksum, Type::TEXT),
                    (&size, Type::INT8),
                    (&now, Type::TIMESTAMPTZ),
                    (&reason, Type::TEXT),
                ],
            )
            .await?;
        if inserted == 1 {
            break;
        }
        id = format!("{stamp}-{n}");
    }
    Ok(BackupRecord {
        id,
        location: String::new(),
        revision: found.revision,
        checksum: found.checksum.clone(),
        size: found.size,
        created_at: now,
        reason: reason.to_owned(),
    })
}

async fn list_backups(
    client: &impl tokio_postgres::GenericClient,
    tables: &Tables,
    key: &str,
) -> std::result::Result<Vec<BackupRecord>, tokio_postgres::Error> {
    let rows = client
        .query_typed(
            &format!(
                "SELECT id, revision, checksum, size, created_at, reason FROM {} WHERE store = $1
                 ORDER BY revision, created_at, id",
                tables.backups
            ),
            &[(&key as &(dyn ToSql + Sync), Type::TEXT)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| BackupRecord {
            id: row.get(0),
            location: String::new(),
            revision: row.get::<_, i64>(1) as u64,
            checksum: row.get(2),
            size: row.get::<_, i64>(3) as u64,
            created_at: row.get(4),
            reason: row.get(5),
        })
        .collect())
}

/// Tells the followers of the store `key` that it changed: delivered when the
/// transaction of `client` commits, never for one rolled back.
async fn announce_change(
    client: &impl tokio_postgres::GenericClient,
    tables: &Tables,
    key: &str,
) -> std::result::Result<(), tokio_postgres::Error> {
    client
        .execute_typed(
            "SELECT pg_notify($1, $2)",
            &[
                (&tables.change_channel() as &(dyn ToSql + Sync), Type::TEXT),
                (&key, Type::TEXT),
            ],
        )
        .await?;
    Ok(())
}

async fn append_audit(
    client: &impl tokio_postgres::GenericClient,
    tables: &Tables,
    key: &str,
    record: &AuditRecord,
) -> std::result::Result<(), tokio_postgres::Error> {
    let line = String::from_utf8_lossy(&record.to_line()).trim_end().to_owned();
    client
        .execute_typed(
            &format!("INSERT INTO {} (store, record) VALUES ($1, $2)", tables.audit),
            &[(&key as &(dyn ToSql + Sync), Type::TEXT), (&line, Type::TEXT)],
        )
        .await?;
    Ok(())
}

/// The error of a commit whose connection broke when the server could not be asked
/// afterwards whether it happened: it says so, instead of implying nothing changed.
fn outcome_unknown(error: Error) -> Error {
    match error {
        Error::Backend {
            backend,
            operation,
            location,
            source,
        } => Error::Backend {
            backend,
            operation,
            location,
            source: format!(
                "the connection broke while committing and the server could not be asked afterwards ({source}), \
                 so the commit may have happened or not: read the state before running the command again"
            )
            .into(),
        },
        other => other,
    }
}
