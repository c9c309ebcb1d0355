//! Moving a store to another backend: its state at the same revision, its audit trail,
//! backups, archive and quarantine, under both stores' locks (`checklist backend
//! migrate`; docs/backends.md, "Moving a store to another backend";
//! docs/decisions/0030-moving-a-store.md).
//!
//! A move copies what the new store lacks, plane by plane, writes the state last, and
//! then marks the old store's state as moved ([`MovedTo`]): from then on every write
//! to the old store fails with [`Error::StoreMoved`], in every process, because the
//! check is the one every write's precondition makes. Each step is safe to interrupt:
//! until the new store holds the state, the old one is the live one and a new run
//! copies only what is still missing; once it holds it, a new run verifies it and goes
//! on. A plane two stores share (the `audit.log` of the file and SQLite backends of
//! one directory, [`PlaneLocations`](crate::PlaneLocations)) is not copied onto itself.
//!
//! `checklist_backends::move_project_store` moves a project's store and switches its
//! config.yaml; its tests move stores between every built-in backend.

use serde::Serialize;

pub(crate) mod moved;
pub use moved::MovedTo;

use crate::audit::{AuditEvent, AuditRecord};
use crate::backend::Backend;
use crate::backup::BackupRecord;
use crate::error::{Error, Result};
use crate::lock::{LockGuard, LockRequest};
use crate::model::{ChecklistState, now};
use crate::quarantine::{QuarantineRecord, bytes_sha256};
use crate::store::{DocumentStoreExt, Precondition, StateStoreExt, StoredBytes};

/// One step of a move, reported as it is done ([`Relocation::run`]'s `progress`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RelocationStep {
    /// The move is planned and this many steps follow (fewer where a backup turns out
    /// not to verify and stays behind).
    Planned(usize),
    /// An archived instance was copied.
    Archived(String),
    /// A quarantined document was copied.
    Quarantined(String),
    /// A backup was copied.
    BackedUp(String),
    /// This many audit records were appended to the new store's trail.
    Audited(usize),
    /// The new store holds the state.
    StateWritten,
    /// The old store's state is marked as moved.
    Marked,
}

/// What a move carries of one plane.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlaneMove {
    /// The two stores share the plane: there is nothing to copy.
    pub shared: bool,
    /// The ids (audit: the number) still to copy.
    pub to_copy: Vec<String>,
    /// How many the new store already holds (an earlier, interrupted move's).
    pub already_there: usize,
    /// What cannot be carried, with why: a damaged backup stays in the old store only.
    pub left_behind: Vec<String>,
}

impl PlaneMove {
    /// A plane both stores share: nothing to copy.
    fn shared() -> Self {
        Self {
            shared: true,
            ..Self::default()
        }
    }

    /// Leaves the backup `id` behind when `error` says it does not verify; any other
    /// error (it could not be read) stops the move.
    fn leave_behind(&mut self, id: String, error: Error) -> Result<()> {
        match error {
            Error::Corrupted { .. } => {
                self.left_behind.push(format!("backup {id}: {error}"));
                Ok(())
            }
            other => Err(other),
        }
    }
}

/// When the backups to copy are verified: while planning (a dry run, which reports
/// those left behind), or as each is copied (a move, which reads each once).
#[derive(Clone, Copy, PartialEq, Eq)]
enum BackupCheck {
    Now,
    WhenCopied,
}

/// What the new store's document needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DocumentMove {
    /// The new store holds no state: it is written.
    Write,
    /// The new store holds the state already (an interrupted move wrote it).
    AlreadyThere,
    /// The new store holds an old copy: the state moved out of it to the old store
    /// before, or an interrupted move's copy of an older revision. It is replaced.
    ReplaceOldCopy,
    /// The old store's state is marked as moved to the new one already: only the
    /// configuration that names the store is left to switch.
    Moved,
}

/// What a move does, worked out before doing it ([`Relocation::plan`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelocationPlan {
    /// The old store's backend and location.
    pub from: (String, String),
    /// The new store's backend and location.
    pub to: (String, String),
    /// The revision carried.
    pub revision: u64,
    /// Its checksum.
    pub checksum: String,
    /// The state.
    pub document: DocumentMove,
    /// The audit trail.
    pub audit: PlaneMove,
    /// The backups.
    pub backups: PlaneMove,
    /// The archive.
    pub archive: PlaneMove,
    /// The quarantine.
    pub quarantine: PlaneMove,
}

impl RelocationPlan {
    /// How many steps [`Relocation::run`] reports after [`RelocationStep::Planned`]:
    /// one per item to copy, one for the audit records, the state and the mark.
    pub fn steps(&self) -> usize {
        if self.document == DocumentMove::Moved {
            return 0;
        }
        self.archive.to_copy.len()
            + self.quarantine.to_copy.len()
            + self.backups.to_copy.len()
            + usize::from(!self.audit.to_copy.is_empty())
            + 2
    }
}

/// What the old store listed when the move was planned: the copy works from the very
/// lists the plan was made from, rather than reading them again.
#[derive(Default)]
struct Listed {
    quarantine: Vec<QuarantineRecord>,
    backups: Vec<BackupRecord>,
    audit: Vec<AuditRecord>,
}

/// A move between two opened backends.
#[derive(Debug)]
pub struct Relocation<'a> {
    from: &'a Backend,
    to: &'a Backend,
    request: LockRequest,
}

/// A finished move, still holding both stores' locks so that the caller can switch
/// whatever names the store (config.yaml) before anyone else writes.
#[derive(Debug)]
#[must_use = "the locks are held until release"]
pub struct Relocated {
    /// What was done.
    pub plan: RelocationPlan,
    guards: Vec<LockGuard>,
}

impl Relocated {
    /// Releases both stores' locks.
    ///
    /// # Errors
    /// The lock providers' release errors.
    pub async fn release(self) -> Result<()> {
        for guard in self.guards.into_iter().rev() {
            guard.release().await?;
        }
        Ok(())
    }
}

/// The old store's state as read for a move: its bytes and what they verify to.
struct Source {
    bytes: Vec<u8>,
    state: ChecklistState,
}

impl<'a> Relocation<'a> {
    /// A move of `from`'s store into `to`'s, taking each store's lock with `request`.
    pub fn new(from: &'a Backend, to: &'a Backend, request: LockRequest) -> Self {
        Self { from, to, request }
    }

    /// What [`run`](Self::run) would do, without taking a lock or writing anything.
    ///
    /// # Errors
    /// As [`run`](Self::run), for what can be known before it.
    pub async fn plan(&self) -> Result<RelocationPlan> {
        let source = self.source().await?;
        Ok(self.plan_for(&source, BackupCheck::Now).await?.0)
    }

    /// Moves the store: under both locks, copies what the new store lacks, writes the
    /// state, verifies it, and marks the old store's state as moved. `progress` hears
    /// of each step as it is done.
    ///
    /// # Errors
    /// [`Error::Unsupported`] into a store that does not outlive the process;
    /// [`Error::InvalidOperation`] from a store without a state;
    /// [`Error::StoreMoved`] from one moved elsewhere; [`Error::PreconditionFailed`]
    /// into a store that holds something else; the stores' and locks' own errors. On
    /// any error the old store is the live one, or the new one is complete.
    pub async fn run(&self, progress: &(dyn Fn(&RelocationStep) + Send + Sync)) -> Result<Relocated> {
        let mut guards = vec![self.from.locks.acquire(&self.request).await?];
        if self.to.locks.resource() != self.from.locks.resource() {
            guards.push(self.to.locks.acquire(&self.request).await?);
        }
        let source = self.source().await?;
        let (mut plan, listed) = self.plan_for(&source, BackupCheck::WhenCopied).await?;
        progress(&RelocationStep::Planned(plan.steps()));
        if plan.document != DocumentMove::Moved {
            let record = self.record(&plan);
            self.copy_planes(&mut plan, &listed, progress).await?;
            self.write_state(&plan, &source, &record).await?;
            progress(&RelocationStep::StateWritten);
            self.verify(&plan).await?;
            self.mark_moved(&plan, &source, &record).await?;
            progress(&RelocationStep::Marked);
        }
        Ok(Relocated { plan, guards })
    }

    async fn source(&self) -> Result<Source> {
        let (from, to) = (self.from.store.info(), self.to.store.info());
        if !to.capabilities.persistent {
            return Err(Error::Unsupported {
                operation: "taking a moved store: its state would be gone when the process exits".to_owned(),
                backend: to.backend.clone(),
                location: to.location.clone(),
            });
        }
        if from.location == to.location {
            return Err(Error::invalid(format!(
                "{} is both the store to move and the store to move it to",
                from.location
            )));
        }
        let Some(bytes) = self.from.store.read_raw().await? else {
            return Err(Error::invalid(format!(
                "{} holds no state; there is nothing to move",
                from.location
            )));
        };
        let state = crate::store::verify(self.from.store.codec(), &bytes, from.location_path())?;
        Ok(Source { bytes, state })
    }

    async fn plan_for(&self, source: &Source, check: BackupCheck) -> Result<(RelocationPlan, Listed)> {
        let (from, to) = (self.from.store.info(), self.to.store.info());
        let state = &source.state;
        let mut plan = RelocationPlan {
            from: (from.backend.clone(), from.location.clone()),
            to: (to.backend.clone(), to.location.clone()),
            revision: state.revision,
            checksum: state.checksum.clone().unwrap_or_default(),
            document: DocumentMove::Write,
            audit: PlaneMove::default(),
            backups: PlaneMove::default(),
            archive: PlaneMove::default(),
            quarantine: PlaneMove::default(),
        };
        if let Some(moved_to) = &state.moved_to {
            if moved_to.backend == to.backend && moved_to.location == to.location {
                plan.document = DocumentMove::Moved;
                return Ok((plan, Listed::default()));
            }
            return Err(Error::StoreMoved {
                path: from.location_path().to_owned(),
                moved_to: Box::new(moved_to.clone()),
            });
        }
        plan.document = self.document_move(&plan).await?;
        let mut listed = Listed::default();
        plan.archive = self
            .archive_move(from.planes.archive == to.planes.archive)
            .await?;
        if from.planes.quarantine == to.planes.quarantine {
            plan.quarantine = PlaneMove::shared();
        } else {
            listed.quarantine = self.from.store.list_quarantine().await?;
            plan.quarantine = self.quarantine_move(&listed.quarantine).await?;
        }
        if from.planes.backups == to.planes.backups {
            plan.backups = PlaneMove::shared();
        } else {
            listed.backups = self.from.store.list_backups().await?;
            plan.backups = self.backup_move(&listed.backups, check).await?;
        }
        if from.planes.audit == to.planes.audit {
            plan.audit = PlaneMove::shared();
        } else {
            listed.audit = self.from.store.read_audit().await?.records;
            plan.audit = self.audit_move(&listed.audit).await?;
        }
        Ok((plan, listed))
    }

    async fn document_move(&self, plan: &RelocationPlan) -> Result<DocumentMove> {
        let to = self.to.store.info();
        let Some(bytes) = self.to.store.read_raw().await? else {
            return Ok(DocumentMove::Write);
        };
        let held = crate::store::verify(self.to.store.codec(), &bytes, to.location_path())?;
        if held.revision == plan.revision && held.checksum.as_deref() == Some(&plan.checksum) {
            return Ok(DocumentMove::AlreadyThere);
        }
        let moved_here_before = held
            .moved_to
            .as_ref()
            .is_some_and(|m| m.location == plan.from.1 && held.revision <= plan.revision);
        let copied_before = held.revision < plan.revision
            && self.to.store.read_audit().await?.records.iter().any(|r| {
                r.event == AuditEvent::BackendMigrated
                    && r.revision_after == Some(held.revision)
                    && r.checksum == held.checksum
            });
        if moved_here_before || copied_before {
            return Ok(DocumentMove::ReplaceOldCopy);
        }
        Err(Error::PreconditionFailed {
            path: to.location_path().to_owned(),
            expected: "no state: a move never replaces a store's own state".to_owned(),
            found: format!("a state of its own at revision {}", held.revision),
        })
    }

    async fn archive_move(&self, shared: bool) -> Result<PlaneMove> {
        if shared {
            return Ok(PlaneMove::shared());
        }
        let pairs = |entries: Vec<crate::archive::HistoryEntry>| {
            entries
                .into_iter()
                .map(|e| (e.instance_id, e.checksum))
                .collect::<Vec<_>>()
        };
        let held = pairs(self.to.store.history().await?);
        // Archiving an instance again replaces it: another one under its id is copied over.
        self.sort_by_held(
            "archived instance",
            pairs(self.from.store.history().await?),
            &held,
            true,
        )
    }

    async fn quarantine_move(&self, listed: &[QuarantineRecord]) -> Result<PlaneMove> {
        let pairs = |records: &[QuarantineRecord]| {
            records
                .iter()
                .map(|r| (r.id.clone(), r.sha256.clone()))
                .collect::<Vec<_>>()
        };
        let held = pairs(&self.to.store.list_quarantine().await?);
        self.sort_by_held("quarantined document", pairs(listed), &held, false)
    }

    async fn backup_move(&self, listed: &[BackupRecord], check: BackupCheck) -> Result<PlaneMove> {
        let pairs = |records: &[BackupRecord]| {
            records
                .iter()
                .map(|r| (r.id.clone(), r.checksum.clone()))
                .collect::<Vec<_>>()
        };
        let held = pairs(&self.to.store.list_backups().await?);
        let mut plane = self.sort_by_held("backup", pairs(listed), &held, false)?;
        if check == BackupCheck::Now {
            // A backup that no longer verifies stays behind, named in the plan.
            for id in std::mem::take(&mut plane.to_copy) {
                match self.from.store.read_verified_backup(&id).await {
                    Ok(_) => plane.to_copy.push(id),
                    Err(error) => plane.leave_behind(id, error)?,
                }
            }
        }
        Ok(plane)
    }

    /// Sorts the old store's `(id, digest)` pairs by what the new store holds: there
    /// already (the same id and digest: an interrupted run's copy), or to copy — where
    /// the new store holds another item under the id, only if it is `replaceable`,
    /// else the move is refused.
    fn sort_by_held(
        &self,
        what: &str,
        source: Vec<(String, String)>,
        held: &[(String, String)],
        replaceable: bool,
    ) -> Result<PlaneMove> {
        let mut plane = PlaneMove::default();
        for (id, digest) in source {
            match held.iter().find(|(held_id, _)| *held_id == id) {
                Some((_, held_digest)) if *held_digest == digest => plane.already_there += 1,
                Some(_) if !replaceable => {
                    return Err(Error::PreconditionFailed {
                        path: self.to.store.info().location_path().to_owned(),
                        expected: format!("no {what} {id:?}, or the same one"),
                        found: format!("another {what} under that id"),
                    });
                }
                _ => plane.to_copy.push(id),
            }
        }
        Ok(plane)
    }

    async fn audit_move(&self, source: &[AuditRecord]) -> Result<PlaneMove> {
        let mut plane = PlaneMove::default();
        let held = self.to.store.read_audit().await?.records;
        let Some(copied) = copied_prefix(source, &held) else {
            return Err(Error::PreconditionFailed {
                path: self.to.store.info().location_path().to_owned(),
                expected: "an audit trail that is empty or a copy of the beginning of the moved store's"
                    .to_owned(),
                found: format!("{} records of another history", held.len()),
            });
        };
        plane.already_there = copied;
        plane.to_copy = (copied..source.len()).map(|i| i.to_string()).collect();
        Ok(plane)
    }

    /// Copies what `plan` lists, from the lists it was made from; a backup that turns
    /// out not to verify moves from the plan's `to_copy` to its `left_behind`.
    async fn copy_planes(
        &self,
        plan: &mut RelocationPlan,
        listed: &Listed,
        progress: &(dyn Fn(&RelocationStep) + Send + Sync),
    ) -> Result<()> {
        let (from, to) = (&self.from.store, &self.to.store);
        for id in &plan.archive.to_copy {
            to.archive(&from.read_archived(id).await?).await?;
            progress(&RelocationStep::Archived(id.clone()));
        }
        for id in &plan.quarantine.to_copy {
            let record = listed_as(&listed.quarantine, id, |r: &QuarantineRecord| &r.id)?;
            let found = from.read_quarantined(id).await?;
            if bytes_sha256(&found) != record.sha256 {
                return Err(Error::Corrupted {
                    kind: crate::CorruptionKind::ChecksumMismatch,
                    path: std::path::PathBuf::from(&record.location),
                    detail: "the quarantined bytes no longer match their recorded sha256".to_owned(),
                });
            }
            to.import_quarantined(record, &found).await?;
            progress(&RelocationStep::Quarantined(id.clone()));
        }
        for id in std::mem::take(&mut plan.backups.to_copy) {
            let record = listed_as(&listed.backups, &id, |b: &BackupRecord| &b.id)?;
            let state = match from.read_verified_backup(&id).await {
                Ok(state) => state,
                Err(error) => {
                    plan.backups.leave_behind(id, error)?;
                    continue;
                }
            };
            let (encoded, _) = to.encode(&state, state.revision)?;
            if encoded.checksum != record.checksum {
                return Err(Error::invalid(format!(
                    "backup {id} of {} re-encoded for {} has checksum {}, not {}; nothing of it was copied",
                    plan.from.1, plan.to.1, encoded.checksum, record.checksum
                )));
            }
            to.import_backup(record, &encoded.bytes).await?;
            progress(&RelocationStep::BackedUp(id.clone()));
            plan.backups.to_copy.push(id);
        }
        if !plan.audit.to_copy.is_empty() {
            for record in &listed.audit[plan.audit.already_there..] {
                to.append_audit(record).await?;
            }
            progress(&RelocationStep::Audited(plan.audit.to_copy.len()));
        }
        Ok(())
    }

    fn record(&self, plan: &RelocationPlan) -> AuditRecord {
        AuditRecord::new(AuditEvent::BackendMigrated)
            .in_transaction(&uuid::Uuid::new_v4().to_string())
            .revisions(Some(plan.revision), Some(plan.revision))
            .checksum(plan.checksum.clone())
            .operations(vec![format!(
                "moved from the {} backend ({}) to the {} backend ({})",
                plan.from.0, plan.from.1, plan.to.0, plan.to.1
            )])
            .lock_note(self.request.note.as_ref())
    }

    async fn write_state(&self, plan: &RelocationPlan, source: &Source, record: &AuditRecord) -> Result<()> {
        let precondition = match plan.document {
            DocumentMove::Write => Precondition::Absent,
            DocumentMove::ReplaceOldCopy => {
                let bytes = self.to.store.read_raw().await?.unwrap_or_default();
                let to = self.to.store.info();
                let document = crate::store::decode(self.to.store.codec(), &bytes, to.location_path()).ok();
                Precondition::Bytes(StoredBytes::new(bytes, document.as_ref()))
            }
            // An interrupted run wrote the state; its record may not have followed.
            DocumentMove::AlreadyThere => {
                if self.written_record(plan).await?.is_none() {
                    self.to.store.append_audit(record).await?;
                }
                return Ok(());
            }
            DocumentMove::Moved => return Ok(()),
        };
        let receipt = self
            .to
            .store
            .write_state(
                &source.state,
                plan.revision,
                precondition,
                None,
                Some(record.clone()),
            )
            .await?;
        match receipt.unaudited {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn verify(&self, plan: &RelocationPlan) -> Result<()> {
        let to = self.to.store.info();
        let held = self.to.store.read().await?;
        let (revision, checksum) = held.map_or((0, None), |s| (s.revision, s.checksum));
        if revision != plan.revision || checksum.as_deref() != Some(&plan.checksum) {
            return Err(Error::PreconditionFailed {
                path: to.location_path().to_owned(),
                expected: format!("revision {} with checksum {}", plan.revision, plan.checksum),
                found: format!(
                    "revision {revision} with checksum {}",
                    checksum.unwrap_or_default()
                ),
            });
        }
        let backups = self.to.store.list_backups().await?;
        let history = self.to.store.history().await?;
        let quarantined = self.to.store.list_quarantine().await?;
        let missing = plan
            .backups
            .to_copy
            .iter()
            .filter(|id| !backups.iter().any(|b| &&b.id == id))
            .chain(
                plan.archive
                    .to_copy
                    .iter()
                    .filter(|id| !history.iter().any(|h| &&h.instance_id == id)),
            )
            .chain(
                plan.quarantine
                    .to_copy
                    .iter()
                    .filter(|id| !quarantined.iter().any(|q| &&q.id == id)),
            )
            .cloned()
            .collect::<Vec<_>>();
        if !missing.is_empty() {
            return Err(Error::PreconditionFailed {
                path: to.location_path().to_owned(),
                expected: "every backup, archived instance and quarantined document copied".to_owned(),
                found: format!("{} missing after the copy", missing.join(", ")),
            });
        }
        Ok(())
    }

    /// The record of this move in the new store's trail, if it is there.
    async fn written_record(&self, plan: &RelocationPlan) -> Result<Option<AuditRecord>> {
        Ok(self
            .to
            .store
            .read_audit()
            .await?
            .records
            .into_iter()
            .rev()
            .find(|r| {
                r.event == AuditEvent::BackendMigrated
                    && r.revision_after == Some(plan.revision)
                    && r.checksum.as_deref() == Some(plan.checksum.as_str())
            }))
    }

    async fn mark_moved(&self, plan: &RelocationPlan, source: &Source, record: &AuditRecord) -> Result<()> {
        let mut marked = source.state.clone();
        marked.moved_to = Some(MovedTo {
            backend: plan.to.0.clone(),
            location: plan.to.1.clone(),
            revision: plan.revision,
            at: now(),
        });
        self.from
            .store
            .replace(Some(&source.bytes), &marked, plan.revision)
            .await?;
        if !plan.audit.shared {
            // The record the new store's trail has for this move, so that the old
            // trail stays the beginning of the new one (a later move back copies
            // only what follows).
            let record = self.written_record(plan).await?.unwrap_or_else(|| record.clone());
            self.from.store.append_audit(&record).await?;
        }
        Ok(())
    }
}

/// How many of `source`'s records `held` holds as a copy of its beginning, in order;
/// `None` when `held` has records of another history. Between them `held` may have
/// records an interrupted run of the move left there: the `backend_migrated` record of
/// a state it wrote, and `lock_broken` records (a move killed while it held the new
/// store's lock leaves that lock to be broken, and recorded, by the next run).
fn copied_prefix(source: &[AuditRecord], held: &[AuditRecord]) -> Option<usize> {
    let mut copied = 0;
    for record in held {
        if source.get(copied) == Some(record) {
            copied += 1;
        } else if !matches!(record.event, AuditEvent::LockBroken | AuditEvent::BackendMigrated) {
            return None;
        }
    }
    Some(copied)
}

fn listed_as<'r, T>(records: &'r [T], id: &str, id_of: impl Fn(&T) -> &String) -> Result<&'r T> {
    records
        .iter()
        .find(|r| id_of(r) == id)
        .ok_or_else(|| Error::invalid(format!("{id} was no longer listed while it was being copied")))
}
