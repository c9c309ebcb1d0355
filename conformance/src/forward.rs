//! The base of a store decorator: forwarding impls of the planes it does not change.
//!
//! A decorator (a slow store for a test, a timed one for a benchmark, a broken one for
//! a mutant) writes the plane it changes by hand and forwards the others with
//! [`forward_planes!`](crate::forward_planes). Each forwarding impl is under
//! `#[deny(clippy::missing_trait_methods)]`, so a method added to a plane fails the
//! decorator's build until it is forwarded, instead of silently doing something else.

/// Forwards the listed planes of `Type` to the store in its field `field` (any
/// `StateStore`, e.g. `Arc<dyn StateStore>`).
///
/// ```
/// use std::sync::Arc;
/// use async_trait::async_trait;
/// use checklist_core::codec::Codec;
/// use checklist_core::{DocumentStore, Result, StateStore, StoreInfo, WriteReceipt, WriteRequest};
///
/// /// Counts the writes that reach the store.
/// #[derive(Debug)]
/// struct Counting {
///     inner: Arc<dyn StateStore>,
///     writes: std::sync::atomic::AtomicUsize,
/// }
///
/// #[async_trait]
/// impl DocumentStore for Counting {
///     fn info(&self) -> &StoreInfo {
///         self.inner.info()
///     }
///     fn codec(&self) -> &dyn Codec {
///         self.inner.codec()
///     }
///     async fn read_raw(&self) -> Result<Option<Vec<u8>>> {
///         self.inner.read_raw().await
///     }
///     async fn write(&self, request: WriteRequest) -> Result<WriteReceipt> {
///         self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.write(request).await
///     }
/// }
///
/// checklist_conformance::forward_planes!(Counting => inner; AuditTrail, BackupStore, ArchiveStore, QuarantineStore, ChangeFeed);
///
/// fn is_a_store(_: &dyn StateStore) {}
/// # fn check(c: &Counting) { is_a_store(c) }
/// ```
#[macro_export]
macro_rules! forward_planes {
    ($ty:ty => $field:tt; $($plane:ident),+ $(,)?) => {
        $( $crate::__forward_plane!($plane, $ty, $field); )+
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __forward_plane {
    (DocumentStore, $ty:ty, $field:tt) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::__private::async_trait]
        impl $crate::__private::core::DocumentStore for $ty {
            fn info(&self) -> &$crate::__private::core::StoreInfo {
                self.$field.info()
            }
            fn codec(&self) -> &dyn $crate::__private::core::codec::Codec {
                self.$field.codec()
            }
            async fn read_raw(&self) -> $crate::__private::core::Result<Option<Vec<u8>>> {
                self.$field.read_raw().await
            }
            async fn write(
                &self,
                request: $crate::__private::core::WriteRequest,
            ) -> $crate::__private::core::Result<$crate::__private::core::WriteReceipt> {
                self.$field.write(request).await
            }
        }
    };
    (AuditTrail, $ty:ty, $field:tt) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::__private::async_trait]
        impl $crate::__private::core::AuditTrail for $ty {
            async fn append_audit(
                &self,
                record: &$crate::__private::core::AuditRecord,
            ) -> $crate::__private::core::Result<()> {
                self.$field.append_audit(record).await
            }
            async fn read_audit(&self) -> $crate::__private::core::Result<$crate::__private::core::AuditLog> {
                self.$field.read_audit().await
            }
            async fn rotate_audit(&self) -> $crate::__private::core::Result<bool> {
                self.$field.rotate_audit().await
            }
        }
    };
    (BackupStore, $ty:ty, $field:tt) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::__private::async_trait]
        impl $crate::__private::core::BackupStore for $ty {
            async fn create_backup(
                &self,
                reason: &str,
            ) -> $crate::__private::core::Result<Option<$crate::__private::core::BackupRecord>> {
                self.$field.create_backup(reason).await
            }
            async fn list_backups(
                &self,
            ) -> $crate::__private::core::Result<Vec<$crate::__private::core::BackupRecord>> {
                self.$field.list_backups().await
            }
            async fn read_backup(&self, id: &str) -> $crate::__private::core::Result<Vec<u8>> {
                self.$field.read_backup(id).await
            }
            async fn delete_backup(&self, id: &str) -> $crate::__private::core::Result<()> {
                self.$field.delete_backup(id).await
            }
            async fn rebuild_backup_index(
                &self,
            ) -> $crate::__private::core::Result<$crate::__private::core::backup::BackupIndexRebuild> {
                self.$field.rebuild_backup_index().await
            }
            async fn import_backup(
                &self,
                record: &$crate::__private::core::BackupRecord,
                document: &[u8],
            ) -> $crate::__private::core::Result<$crate::__private::core::BackupRecord> {
                self.$field.import_backup(record, document).await
            }
        }
    };
    (ArchiveStore, $ty:ty, $field:tt) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::__private::async_trait]
        impl $crate::__private::core::ArchiveStore for $ty {
            async fn archive(
                &self,
                archived: &$crate::__private::core::archive::ArchivedInstance,
            ) -> $crate::__private::core::Result<$crate::__private::core::archive::HistoryEntry> {
                self.$field.archive(archived).await
            }
            async fn history(
                &self,
            ) -> $crate::__private::core::Result<Vec<$crate::__private::core::archive::HistoryEntry>> {
                self.$field.history().await
            }
            async fn read_archived(
                &self,
                instance_id: &str,
            ) -> $crate::__private::core::Result<$crate::__private::core::archive::ArchivedInstance> {
                self.$field.read_archived(instance_id).await
            }
        }
    };
    (QuarantineStore, $ty:ty, $field:tt) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::__private::async_trait]
        impl $crate::__private::core::QuarantineStore for $ty {
            async fn quarantine(
                &self,
                found: &[u8],
                note: &$crate::__private::core::QuarantineNote,
            ) -> $crate::__private::core::Result<$crate::__private::core::QuarantineRecord> {
                self.$field.quarantine(found, note).await
            }
            async fn list_quarantine(
                &self,
            ) -> $crate::__private::core::Result<Vec<$crate::__private::core::QuarantineRecord>> {
                self.$field.list_quarantine().await
            }
            async fn read_quarantined(&self, id: &str) -> $crate::__private::core::Result<Vec<u8>> {
                self.$field.read_quarantined(id).await
            }
            async fn import_quarantined(
                &self,
                record: &$crate::__private::core::QuarantineRecord,
                found: &[u8],
            ) -> $crate::__private::core::Result<$crate::__private::core::QuarantineRecord> {
                self.$field.import_quarantined(record, found).await
            }
        }
    };
    (ChangeFeed, $ty:ty, $field:tt) => {
        #[deny(clippy::missing_trait_methods)]
        #[$crate::__private::async_trait]
        impl $crate::__private::core::ChangeFeed for $ty {
            async fn watch(
                &self,
            ) -> $crate::__private::core::Result<Box<dyn $crate::__private::core::ChangeWatch>> {
                self.$field.watch().await
            }
        }
    };
}
