//! The SQLite backend against hostile and damaged databases, on the real file system:
//! one test per kind of `state.db` a stranger, a crash or a disk can leave. Each checks
//! the error variant, that the message names `state.db`, and that nothing was lost —
//! the damaged bytes stay where they were until recovery keeps them in quarantine, and
//! recovery brings back the newest backup (from `.backup/`, outside the database).
//!
//! Built with the `sqlite` feature (`cargo test -p checklist-backends --features sqlite
//! --test sqlite`; `cargo test --workspace` turns it on through the CLI).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use checklist_backends::{FileLockProvider, FileStoreOptions, SqliteStore};
use checklist_core::prelude::*;
use checklist_core::recovery::RecoverRequest;
use checklist_core::{
    AuditEvent, AuditRecord, ChecklistState, CorruptionKind, Error, Expectation, KeepBackup, Recovery,
    RollingBackups,
};
use serde_json::json;

/// A store with three commits, each keeping a backup of the revision it replaced.
struct Fixture {
    dir: tempfile::TempDir,
    store: SqliteStore,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), FileStoreOptions::default()).unwrap();
        let mut expect = Expectation::Absent;
        for i in 0..4 {
            let committed = store
                .commit_keeping_backup(&document(i), expect, keep())
                .await
                .unwrap();
            let revision = committed.committed.revision;
            // The audit record the coordinator writes after each commit: what tells
            // recovery the last committed revision.
            store
                .append_audit(
                    &AuditRecord::new(AuditEvent::Commit).revisions(revision.checked_sub(1), Some(revision)),
                )
                .await
                .unwrap();
            expect = Expectation::Revision(revision);
        }
        assert_eq!(store.list_backups().await.unwrap().len(), 3);
        Self { dir, store }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// A new handle, as the next process would open it (the old one's connection is
    /// closed first, which checkpoints the write-ahead log into the file).
    fn reopen(&mut self) {
        self.store = SqliteStore::open(self.dir.path(), FileStoreOptions::default()).unwrap();
    }

    /// A plain connection, as a person (or a program) with `sqlite3` opens the file.
    fn plain(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    fn recovery(&self) -> Recovery<SqliteStore, FileLockProvider, RollingBackups> {
        Recovery::new(
            self.store.clone(),
            FileLockProvider::new(self.dir.path()),
            RollingBackups::keep(3),
        )
    }

    /// Recovers and checks what recovery promises: the newest backup (revision 3) is
    /// back above every committed revision, and `damaged` is in quarantine unchanged.
    async fn recover_keeping(&mut self, damaged: &[u8]) {
        let report = self
            .recovery()
            .recover(&RecoverRequest::default())
            .await
            .unwrap()
            .expect("a damaged store is recovered");
        assert_eq!(report.backup.as_ref().map(|b| b.revision), Some(3), "{report:?}");
        let kept = report.quarantined.expect("the damaged bytes are kept");
        assert_eq!(self.store.read_quarantined(&kept.id).await.unwrap(), damaged);
        self.reopen();
        let state = self.store.read().await.unwrap().expect("a state after recovery");
        assert_eq!(state.extra.get("x-note"), document(2).extra.get("x-note"));
        assert!(
            state.revision > 4,
            "above every committed revision: {}",
            state.revision
        );
        assert_eq!(
            self.store.list_backups().await.unwrap().len(),
            3,
            "the index lists the backups again"
        );
        self.store.check_integrity().await.unwrap();
        let next = self
            .store
            .commit(&document(9), Expectation::Revision(state.revision))
            .await
            .unwrap();
        assert_eq!(next.revision, state.revision + 1);
    }
}

/// A document of a few pages (the note is large), so the state row spans overflow
/// pages a damage can hit.
fn document(i: usize) -> ChecklistState {
    let mut state = ChecklistState::new();
    let note: String = (0..2000).map(|n| format!("revision {i} note {n:04}; ")).collect();
    state.extra.insert("x-note".into(), json!(note));
    state
}

fn keep() -> KeepBackup {
    KeepBackup {
        reason: "commit".into(),
        policy: Some(Arc::new(RollingBackups::keep(3))),
    }
}

fn names_db(error: &Error) -> bool {
    error.to_string().contains("state.db")
}

fn assert_damaged(error: &Error) {
    assert!(
        matches!(error, Error::Corrupted { kind: CorruptionKind::ParseError, path, .. } if path.ends_with("state.db")),
        "{error:?}"
    );
    assert!(names_db(error), "{error}");
}

/// Files holding state content are 0600 (docs/decisions/0004-file-modes.md).
fn assert_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_that_is_not_sqlite_is_damage_and_is_recovered() {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    let garbage = b"this is a text file someone saved as state.db, not a database\n".repeat(100);
    std::fs::write(fixture.db(), &garbage).unwrap();
    let error = fixture.store.read().await.unwrap_err();
    assert_damaged(&error);
    let write = fixture.store.commit(&document(7), Expectation::Revision(4)).await;
    assert!(
        write.is_err(),
        "a write over a file that is not SQLite: {write:?}"
    );
    assert_eq!(bytes(&fixture.db()), garbage, "nothing was written over it");
    assert_eq!(
        fixture.store.read_raw().await.unwrap().as_deref(),
        Some(garbage.as_slice())
    );
    fixture.recover_keeping(&garbage).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_layout_is_refused_and_left_alone() {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    fixture.plain().pragma_update(None, "user_version", 2).unwrap();
    let before = bytes(&fixture.db());
    let error = fixture.store.read().await.unwrap_err();
    assert!(matches!(error, Error::UnsupportedVersion { .. }), "{error:?}");
    assert!(
        names_db(&error) && error.to_string().contains("newer checklist"),
        "{error}"
    );
    // Recovery must not take a newer checklist's database for damage.
    let recovered = fixture.recovery().recover(&RecoverRequest::default()).await;
    assert!(
        matches!(recovered, Err(Error::UnsupportedVersion { .. })),
        "{recovered:?}"
    );
    assert!(
        fixture
            .store
            .commit(&document(7), Expectation::Revision(4))
            .await
            .is_err()
    );
    assert_eq!(bytes(&fixture.db()), before, "nothing was changed");
    assert!(fixture.store.list_quarantine().await.unwrap().is_empty());
}

/// Plants `sql` with a plain connection, then checks that the store refuses the
/// database, that nothing planted ran (the backup index a planted trigger would wipe is
/// intact), and that recovery keeps the whole file.
async fn planted(sql: &str, what: &str) {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    let conn = fixture.plain();
    conn.execute_batch(sql).unwrap();
    drop(conn);
    let before = bytes(&fixture.db());
    let error = fixture.store.read().await.unwrap_err();
    assert_damaged(&error);
    assert!(error.to_string().contains(what), "{error}");
    let write = fixture.store.commit(&document(7), Expectation::Revision(4)).await;
    assert!(write.is_err(), "{write:?}");
    assert!(fixture.store.create_backup("manual").await.is_err());
    let conn = fixture.plain();
    let backups: i64 = conn
        .query_row("SELECT count(*) FROM backups", [], |row| row.get(0))
        .unwrap();
    drop(conn);
    assert_eq!(backups, 3, "nothing planted ran");
    assert_eq!(bytes(&fixture.db()), before, "nothing was written");
    fixture.recover_keeping(&before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_trigger_never_runs() {
    planted(
        "CREATE TRIGGER wipe AFTER UPDATE ON state BEGIN DELETE FROM backups; END",
        "trigger `wipe`",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_view_never_runs() {
    planted("CREATE VIEW peek AS SELECT doc FROM state", "view `peek`").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_table_is_refused() {
    planted("CREATE TABLE extra (x)", "table `extra`").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_database_is_damage_and_is_recovered() {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    let whole = bytes(&fixture.db());
    let truncated = &whole[..whole.len() / 2];
    std::fs::write(fixture.db(), truncated).unwrap();
    let error = fixture.store.read().await.unwrap_err();
    assert_damaged(&error);
    assert_eq!(bytes(&fixture.db()), truncated, "nothing was written over it");
    fixture.recover_keeping(truncated).await;
}

/// Bytes flipped inside the document's own pages: SQLite reads the row, the checksum
/// pipeline refuses it, and recovery keeps and replaces just the document.
#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_document_page_is_damage_and_is_recovered() {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    let mut whole = bytes(&fixture.db());
    let marker = b"revision 3 note 1000";
    let at = whole
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the current document is in the file");
    for byte in &mut whole[at..at + 8] {
        *byte ^= 0x55;
    }
    std::fs::write(fixture.db(), &whole).unwrap();
    let error = fixture.store.read().await.unwrap_err();
    assert!(
        matches!(error, Error::Corrupted { .. }) && names_db(&error),
        "{error:?}"
    );
    let raw = fixture
        .store
        .read_raw()
        .await
        .unwrap()
        .expect("the document's bytes");
    assert!(raw.len() < whole.len(), "the document, not the whole file");
    assert_eq!(bytes(&fixture.db()), whole, "nothing was written over it");
    fixture.recover_keeping(&raw).await;
}

/// The header of the page holding the state table's b-tree flipped: SQLite itself
/// reports the database as malformed, and recovery keeps and replaces the whole file.
#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_btree_page_is_damage_and_is_recovered() {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    let conn = fixture.plain();
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
    let root: i64 = conn
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'state'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    drop(conn);
    let mut whole = bytes(&fixture.db());
    let page = usize::try_from((root - 1) * page_size).unwrap();
    for byte in &mut whole[page..page + 12] {
        *byte ^= 0xff;
    }
    std::fs::write(fixture.db(), &whole).unwrap();
    let error = fixture.store.read().await.unwrap_err();
    assert_damaged(&error);
    assert_eq!(
        fixture.store.read_raw().await.unwrap().as_deref(),
        Some(whole.as_slice())
    );
    let check = fixture.store.check_integrity().await.unwrap_err();
    assert_damaged(&check);
    assert_eq!(bytes(&fixture.db()), whole, "nothing was written over it");
    fixture.recover_keeping(&whole).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backups_outlive_a_deleted_database() {
    let mut fixture = Fixture::new().await;
    fixture.reopen();
    std::fs::remove_file(fixture.db()).unwrap();
    // audit.log and .backup/ are beside the database, so they say a committed state
    // was lost (decision 0019) and hold what to restore.
    let missing = checklist_core::StateStoreExt::read_existing(&fixture.store)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, Error::StateMissing { .. }) && names_db(&missing),
        "{missing:?}"
    );
    let report = fixture
        .recovery()
        .recover(&RecoverRequest::default())
        .await
        .unwrap()
        .expect("recovered");
    assert_eq!(report.backup.map(|b| b.revision), Some(3));
    assert!(report.revision > 4);
    assert_eq!(fixture.store.list_backups().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_document_is_refused_like_an_oversized_state_file() {
    let fixture = Fixture::new().await;
    let small = FileStoreOptions {
        max_state_bytes: 1024,
        ..FileStoreOptions::default()
    };
    let store = SqliteStore::open(fixture.dir.path(), small).unwrap();
    let read = store.read().await.unwrap_err();
    assert!(
        matches!(read, Error::TooLarge { limit: 1024, .. }) && names_db(&read),
        "{read:?}"
    );
    let write = store
        .commit(&document(5), Expectation::Revision(4))
        .await
        .unwrap_err();
    assert!(matches!(write, Error::TooLarge { .. }), "{write:?}");
    assert_eq!(
        fixture.store.read().await.unwrap().unwrap().revision,
        4,
        "the last good state is kept"
    );
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_database_is_refused() {
    let fixture = Fixture::new().await;
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("other.db");
    drop(fixture.store);
    std::fs::rename(fixture.dir.path().join("state.db"), &target).unwrap();
    std::os::unix::fs::symlink(&target, fixture.dir.path().join("state.db")).unwrap();
    let store = SqliteStore::open(fixture.dir.path(), FileStoreOptions::default()).unwrap();
    let error = store.read().await.unwrap_err();
    assert!(
        matches!(error, Error::SymlinkRefused { .. }) && names_db(&error),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_are_private_files_listed_in_the_commits_transaction() {
    let fixture = Fixture::new().await;
    let listed = fixture.store.list_backups().await.unwrap();
    assert_private(&fixture.db());
    for suffix in ["-wal", "-shm"] {
        let sibling = fixture.dir.path().join(format!("state.db{suffix}"));
        if sibling.exists() {
            assert_private(&sibling);
        }
    }
    for backup in &listed {
        let path = fixture.dir.path().join(".backup").join(&backup.location);
        let state =
            checklist_core::store::verify_afresh(&checklist_backends::JsonCodec, &bytes(&path), &path)
                .unwrap();
        assert_eq!(state.revision, backup.revision);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }
    // A conflicting write keeps no backup: no new file, no new row.
    let files = std::fs::read_dir(fixture.dir.path().join(".backup"))
        .unwrap()
        .count();
    let conflict = fixture
        .store
        .commit_keeping_backup(&document(8), Expectation::Revision(1), keep())
        .await
        .unwrap_err();
    assert!(
        matches!(conflict, Error::Conflict { found: Some(4), .. }),
        "{conflict:?}"
    );
    assert_eq!(fixture.store.list_backups().await.unwrap(), listed);
    assert_eq!(
        std::fs::read_dir(fixture.dir.path().join(".backup"))
            .unwrap()
            .count(),
        files
    );
}
