//! Forwarding impls, so `Arc<S>`, `Box<S>`, `Arc<dyn StateStore>` and
//! `Box<dyn StateStore>` are stores. `missing_trait_methods` keeps each one complete:
//! a method added to a plane fails the build here until it is forwarded.
#![deny(clippy::missing_trait_methods)]

use std::sync::Arc;

use async_trait::async_trait;

use crate::archive::{ArchivedInstance, HistoryEntry};
use crate::audit::{AuditLog, AuditRecord};
use crate::backup::{BackupIndexRebuild, BackupRecord};
use crate::codec::Codec;
use crate::error::Result;
use crate::quarantine::{QuarantineNote, QuarantineRecord};

use super::{
    ArchiveStore, AuditTrail, BackupStore, ChangeFeed, ChangeWatch, DocumentStore, QuarantineStore,
    StoreInfo, WriteReceipt, WriteRequest,
};

macro_rules! forward_planes {
    ($($wrapper:ident),*) => {$(
        #[async_trait]
        impl<T: DocumentStore + ?Sized> DocumentStore for $wrapper<T> {
            fn info(&self) -> &StoreInfo {
                (**self).info()
            }
            fn codec(&self) -> &dyn Codec {
                (**self).codec()
            }
            async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
                (**self).read_raw().await
            }
            async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
                (**self).write(request).await
            }
        }

        #[async_trait]
        impl<T: AuditTrail + ?Sized> AuditTrail for $wrapper<T> {
            async fn append_audit(&self, record: &AuditRecord) -> Result<()> {
                (**self).append_audit(record).await
            }
            async fn read_audit(&self) -> Result<AuditLog> {
                (**self).read_audit().await
            }
            async fn rotate_audit(&self) -> Result<bool> {
                (**self).rotate_audit().await
            }
        }

        #[async_trait]
        impl<T: BackupStore + ?Sized> BackupStore for $wrapper<T> {
            async fn create_backup(&self, reason: &str) -> Result<Option<BackupRecord>> {
                (**self).create_backup(reason).await
            }
            async fn list_backups(&self) -> Result<Vec<BackupRecord>> {
                (**self).list_backups().await
            }
            async fn read_backup(&self, id: &str) -> Result<Vec<u8>> {
                (**self).read_backup(id).await
            }
            async fn delete_backup(&self, id: &str) -> Result<()> {
                (**self).delete_backup(id).await
            }
            async fn rebuild_backup_index(&self) -> Result<BackupIndexRebuild> {
                (**self).rebuild_backup_index().await
            }
            async fn import_backup(&self, record: &BackupRecord, document: &[u8]) -> Result<BackupRecord> {
                (**self).import_backup(record, document).await
            }
        }

        #[async_trait]
        impl<T: ArchiveStore + ?Sized> ArchiveStore for $wrapper<T> {
            async fn archive(&self, archived: &ArchivedInstance) -> Result<HistoryEntry> {
                (**self).archive(archived).await
            }
            async fn history(&self) -> Result<Vec<HistoryEntry>> {
                (**self).history().await
            }
            async fn read_archived(&self, instance_id: &str) -> Result<ArchivedInstance> {
                (**self).read_archived(instance_id).await
            }
        }

        #[async_trait]
        impl<T: QuarantineStore + ?Sized> QuarantineStore for $wrapper<T> {
            async fn quarantine(&self, found: &[u8], note: &QuarantineNote) -> Result<QuarantineRecord> {
                (**self).quarantine(found, note).await
            }
            async fn list_quarantine(&self) -> Result<Vec<QuarantineRecord>> {
                (**self).list_quarantine().await
            }
            async fn read_quarantined(&self, id: &str) -> Result<Vec<u8>> {
                (**self).read_quarantined(id).await
            }
            async fn import_quarantined(&self, record: &QuarantineRecord, found: &[u8]) -> Result<QuarantineRecord> {
                (**self).import_quarantined(record, found).await
            }
        }

        #[async_trait]
        impl<T: ChangeFeed + ?Sized> ChangeFeed for $wrapper<T> {
            async fn watch(&self) -> Result<Box<dyn ChangeWatch>> {
                (**self).watch().await
            }
        }
    )*};
}

forward_planes!(Arc, Box);
