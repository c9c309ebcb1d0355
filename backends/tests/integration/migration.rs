//! Core's migration on the file engine (`migrate::prepare` and `migrate::apply`): the
//! original bytes are backed up and the migrated state written only if the file still
//! holds exactly what was migrated.

use checklist_backends::{Codec, FileStoreOptions, YamlCodec, YamlFileStore};
use checklist_core::prelude::*;
use checklist_core::{Error, migrate};

const OLD: &[u8] = b"schemaVersion: \"0.9.0\"\ncompletedSteps:\n  - {stepId: a, completedAt: \"2025-01-01T00:00:00\", executionTime: 1, result: success}\n";

#[tokio::test]
async fn a_file_changed_after_it_was_read_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let store = YamlFileStore::open(dir.path(), YamlCodec, FileStoreOptions::default()).unwrap();
    std::fs::write(store.state_path(), OLD).unwrap();
    let pending = migrate::prepare(&store).await.unwrap().unwrap();
    assert_eq!(pending.found.bytes, OLD);
    assert_eq!(pending.found.revision, 0);

    let edited = [OLD, b"# edited meanwhile\n"].concat();
    std::fs::write(store.state_path(), &edited).unwrap();
    let err = migrate::apply(&store, pending.clone()).await.unwrap_err();
    assert!(matches!(err, Error::PreconditionFailed { .. }), "{err}");
    assert_eq!(std::fs::read(store.state_path()).unwrap(), edited);
    assert!(store.list_backups().await.unwrap().is_empty());

    std::fs::write(store.state_path(), OLD).unwrap();
    let commit = migrate::apply(&store, pending).await.unwrap();
    assert_eq!(commit.committed.revision, 1);
    assert_eq!(commit.backup.revision, 0);
    assert_eq!(commit.backup.reason, "migration");
    let kept = dir.path().join(".backup").join(&commit.backup.location);
    assert_eq!(std::fs::read(kept).unwrap(), OLD);
    let read = store.read().await.unwrap().unwrap();
    assert_eq!(read.revision, 1);
    assert_eq!(read.completed_steps[0].execution_time, 1000);
}

/// The TypeScript checklist writes `checksum: ''` (and its migrations a placeholder):
/// the migration backup records the checksum of what it holds, not that field.
#[tokio::test]
async fn a_migration_backup_records_the_checksum_of_its_content() {
    const TYPESCRIPT: &[u8] =
        b"version: 1.0.0\nschemaVersion: 1.0.0\nchecksum: ''\ncompletedSteps: []\nrecovery:\n  dataLoss: false\nconflicts: {}\n";
    let dir = tempfile::tempdir().unwrap();
    let store = YamlFileStore::open(dir.path(), YamlCodec, FileStoreOptions::default()).unwrap();
    std::fs::write(store.state_path(), TYPESCRIPT).unwrap();
    let pending = migrate::prepare(&store).await.unwrap().unwrap();
    let document = YamlCodec.decode(TYPESCRIPT).unwrap();
    let content = checklist_core::canonical::document_checksum(&document);
    assert_eq!(pending.found.checksum, content);
    let commit = migrate::apply(&store, pending).await.unwrap();
    assert_eq!(commit.backup.checksum, content);
    assert_eq!(store.list_backups().await.unwrap()[0].checksum, content);
}

/// A state file another program wrote world-readable (the TypeScript checklist writes
/// 0644) is kept as the migration backup with the mode of every backup, 0600: a copy,
/// not a link that would keep the original's mode.
#[cfg(unix)]
#[tokio::test]
async fn a_migration_backup_of_a_world_readable_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    const TYPESCRIPT: &[u8] = b"version: 1.0.0\nschemaVersion: 1.0.0\nchecksum: ''\ncompletedSteps: []\n";
    let dir = tempfile::tempdir().unwrap();
    let store = YamlFileStore::open(dir.path(), YamlCodec, FileStoreOptions::default()).unwrap();
    std::fs::write(store.state_path(), TYPESCRIPT).unwrap();
    std::fs::set_permissions(store.state_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let pending = migrate::prepare(&store).await.unwrap().unwrap();
    let commit = migrate::apply(&store, pending).await.unwrap();
    let backup = dir.path().join(".backup").join(&commit.backup.location);
    assert_eq!(std::fs::read(&backup).unwrap(), TYPESCRIPT);
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the backup is {mode:o}");
}
