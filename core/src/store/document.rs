//! The document plane: the state document's bytes, read as stored and replaced by one
//! conditional write.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::audit::AuditRecord;
use crate::backup::{BackupPolicy, BackupRecord};
use crate::canonical::document_checksum;
use crate::codec::Codec;
use crate::error::{Error, Result};

use super::{Expectation, StoreInfo};

/// Bytes of a document as the store held them, with what they say of themselves: the
/// precondition of a write that replaces a document no read verifies (an older schema
/// version, a corrupt one), and the backup record of those bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBytes {
    /// The bytes, exactly.
    pub bytes: Vec<u8>,
    /// Their document's `revision`, or 0 where it has none or they do not parse.
    pub revision: u64,
    /// The checksum of their content ([`document_checksum`]), whatever their own
    /// `checksum` field says; of the bytes themselves where they do not parse.
    pub checksum: String,
}

impl StoredBytes {
    /// `bytes` and what their decoded `document` says (`None`: they do not parse).
    pub fn new(bytes: Vec<u8>, document: Option<&Value>) -> Self {
        let (revision, checksum) = match document {
            Some(document) => (
                document.get("revision").and_then(Value::as_u64).unwrap_or(0),
                document_checksum(document),
            ),
            None => (0, crate::quarantine::bytes_sha256(&bytes)),
        };
        Self {
            bytes,
            revision,
            checksum,
        }
    }
}

/// What a write requires of the document it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// No document at all: not a verified one, not a corrupt one.
    Absent,
    /// A document that verifies, at exactly this revision (a compare-and-swap).
    Revision(u64),
    /// Exactly these bytes, whether or not they verify: how a migration replaces an
    /// older schema version and recovery a corrupt document.
    Bytes(StoredBytes),
}

impl From<Expectation> for Precondition {
    fn from(expect: Expectation) -> Self {
        match expect {
            Expectation::Absent => Self::Absent,
            Expectation::Revision(r) => Self::Revision(r),
        }
    }
}

impl Precondition {
    /// Whether a store holding `stored` (`None`: no document) meets this precondition,
    /// and the revision and checksum of the document a write under it replaces (`None`
    /// when there is none): the check every store makes before a write, the same
    /// everywhere. `codec` decodes the stored bytes; `location` names the store.
    ///
    /// # Errors
    /// [`Error::PreconditionFailed`] when [`Bytes`](Self::Bytes) are not what is
    /// stored, [`Error::Conflict`] naming the revision found when an
    /// [`Absent`](Self::Absent) or [`Revision`](Self::Revision) precondition is not met,
    /// [`Error::Corrupted`] when the stored bytes do not verify, [`Error::StoreMoved`]
    /// under those two when the stored state was moved to another store: only a write
    /// naming its exact [`Bytes`](Self::Bytes) replaces a moved state.
    pub fn check(
        &self,
        stored: Option<&[u8]>,
        codec: &dyn Codec,
        location: &std::path::Path,
    ) -> Result<Option<(u64, String)>> {
        match self {
            Self::Bytes(expected) => match stored {
                Some(bytes) if bytes == expected.bytes => {
                    Ok(Some((expected.revision, expected.checksum.clone())))
                }
                other => Err(Error::PreconditionFailed {
                    path: location.to_owned(),
                    expected: self.to_string(),
                    found: other
                        .map_or_else(|| "no state".to_owned(), |b| format!("{} other bytes", b.len())),
                }),
            },
            Self::Absent | Self::Revision(_) => {
                let expect = match self {
                    Self::Revision(r) => Expectation::Revision(*r),
                    _ => Expectation::Absent,
                };
                let head = stored
                    .map(|bytes| super::verified::verify_head(codec, bytes, location))
                    .transpose()?;
                if let Some((_, _, Some(moved_to))) = head {
                    return Err(Error::StoreMoved {
                        path: location.to_owned(),
                        moved_to: Box::new(moved_to),
                    });
                }
                let contents = head.map(|(revision, checksum, _)| (revision, checksum.unwrap_or_default()));
                let revision = contents.as_ref().map(|(revision, _)| *revision);
                if !expect.is_met_by(revision) {
                    return Err(Error::Conflict {
                        path: location.to_owned(),
                        expected: expect,
                        found: revision,
                    });
                }
                Ok(contents)
            }
        }
    }
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Absent => f.write_str("no state"),
            Self::Revision(r) => write!(f, "revision {r}"),
            Self::Bytes(found) => write!(f, "the {} bytes read before", found.bytes.len()),
        }
    }
}

/// A sealed document encoded in the store's format: what a write stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedDocument {
    /// The bytes to store, exactly.
    pub bytes: Vec<u8>,
    /// The revision they carry.
    pub revision: u64,
    /// The checksum they carry.
    pub checksum: String,
}

impl EncodedDocument {
    /// Refuses a document larger than `limit`, the store's size limit, naming
    /// `location`: it could never be read back.
    ///
    /// # Errors
    /// [`Error::TooLarge`].
    pub fn refuse_over(&self, limit: u64, location: &std::path::Path) -> Result<()> {
        let size = self.bytes.len() as u64;
        if size > limit {
            return Err(Error::TooLarge {
                path: location.to_owned(),
                size,
                limit,
            });
        }
        Ok(())
    }
}

/// What a write keeps of the document it replaces.
#[derive(Debug, Clone)]
pub struct KeepBackup {
    /// Why the backup is taken, as listed (`commit`, `migration` …).
    pub reason: String,
    /// Which backups stay once the new one is added; `None` prunes nothing.
    pub policy: Option<Arc<dyn BackupPolicy>>,
}

/// One conditional write: the only way a document is replaced. Built by the
/// conveniences of [`DocumentStoreExt`](super::DocumentStoreExt), which seal and encode
/// the document first.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// The document to store.
    pub document: EncodedDocument,
    /// What the store must hold for the write to happen.
    pub precondition: Precondition,
    /// A backup to keep of the replaced document, if any.
    pub keep: Option<KeepBackup>,
    /// The audit record of this commit, appended with it.
    pub audit: Option<AuditRecord>,
}

/// What a successful write committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Committed {
    /// The new revision.
    pub revision: u64,
    /// The checksum of the document as stored.
    pub checksum: String,
}

/// What a successful write did.
#[derive(Debug)]
pub struct WriteReceipt {
    /// The committed document.
    pub committed: Committed,
    /// The backup of the replaced document (`None` when none was asked for or there
    /// was nothing to replace).
    pub backup: Option<BackupRecord>,
    /// The ids of the backups the policy pruned.
    pub pruned: Vec<String>,
    /// Why the request's audit record is not in the trail although the commit stands
    /// (only where the store cannot append it in the commit's own transaction).
    pub unaudited: Option<Error>,
}

/// The document plane: where the state document's bytes live.
///
/// A store only keeps and returns bytes; core seals, encodes, decodes and verifies
/// them ([`DocumentStoreExt`](super::DocumentStoreExt)), so every backend verifies the
/// same way. Implementations are cheap to share and safe to call from many tasks at
/// once; file backends do their blocking I/O on tokio's blocking pool, so the futures
/// must be polled inside a tokio runtime.
///
/// # Contract
/// Each bullet has a case of the same name in `checklist-conformance`.
/// - `read_of_empty_store_is_absent`: before the first write, the store holds no
///   document.
/// - `first_write_creates_revision_1`: a write with [`Precondition::Absent`] on an
///   empty store commits revision 1.
/// - `write_then_read_round_trips`: a read returns exactly what the last write
///   stored, through any handle and decoded afresh from the stored bytes (as another
///   process reads them); unknown fields survive.
/// - `every_json_value_round_trips`: every value a document can hold reads back
///   exactly, through any handle and decoded afresh from the stored bytes: non-ASCII
///   text in every string and key, integers to the ends of the 64-bit range (never
///   through a float), floats, nulls, empty containers, nesting as deep as
///   [`MAX_DOCUMENT_DEPTH`](crate::schema::MAX_DOCUMENT_DEPTH).
/// - `a_second_handle_sees_every_commit`: a handle opened on the same store reads
///   every commit made through another.
/// - `revision_increases_by_one_per_write`: every committed write adds exactly 1.
/// - `an_unchanged_document_commits_a_new_revision`: a write whose document equals the
///   stored one still commits the next revision, with its audit record; it is never
///   skipped as a no-op the caller cannot see.
/// - `absent_expectation_conflicts_when_state_exists`, `stale_revision_conflicts`,
///   `future_revision_conflicts`, `revision_expectation_on_an_empty_store_conflicts`: a write whose precondition does not match fails with
///   [`Error::Conflict`] (carrying the revision found) and changes nothing.
/// - `absent_expectation_over_a_corrupt_state_changes_nothing`: a corrupt document is
///   not an absent one; a write expecting none fails and leaves its bytes.
/// - `concurrent_writers_with_the_same_expectation_exactly_one_wins`: of many writers
///   racing with the same precondition, exactly one commits; the others get
///   [`Error::Conflict`].
/// - `readers_never_see_a_torn_write`: while writes commit, a read through another
///   handle returns the previous revision or the new one, complete and verified.
/// - `caller_revision_and_checksum_are_ignored`: core sets `revision` and `checksum`
///   when it seals; whatever the caller put there has no effect.
/// - `invalid_document_is_refused_and_nothing_changes`: a document that breaks the
///   schema fails with [`Error::SchemaInvalid`] before anything is written.
/// - `checksum_is_verified_on_read`, `unparseable_bytes_are_a_parse_error`: a read
///   never returns a document whose checksum does not match or that does not parse; it
///   fails with [`Error::Corrupted`].
/// - `failed_write_leaves_the_previous_state`: a write that fails for any reason
///   leaves the previous document readable and unchanged.
/// - `write_keeping_backup_keeps_the_replaced_revision`, `write_keeping_backup_prunes_by_the_policy`:
///   see [`write`](Self::write).
/// - `a_moved_state_refuses_every_write_but_one_naming_its_bytes`: over a state whose
///   `movedTo` says it was moved to another store
///   ([`relocation`](crate::relocation)), a [`Precondition::Absent`] or
///   [`Precondition::Revision`] write fails with [`Error::StoreMoved`] and changes
///   nothing (the store's write makes [`Precondition::check`]); a
///   [`Precondition::Bytes`] write naming its bytes replaces it.
/// - `read_raw_returns_the_stored_bytes`, `write_over_needs_the_exact_bytes`:
///   see [`read_raw`](Self::read_raw) and [`Precondition::Bytes`].
#[async_trait]
pub trait DocumentStore: Send + Sync + fmt::Debug {
    /// The store's name, location and capabilities.
    ///
    /// # Contract
    /// The same value for the life of the store.
    fn info(&self) -> &StoreInfo;

    /// The format the store keeps its documents in.
    ///
    /// # Contract
    /// The codec [`read_raw`](Self::read_raw)'s bytes decode with, and the one core
    /// encodes a [`WriteRequest`]'s document with.
    fn codec(&self) -> &dyn Codec;

    /// The stored document's bytes exactly as they are, without verifying them;
    /// `Ok(None)` when the store holds no document.
    ///
    /// # Contract
    /// `read_raw_returns_the_stored_bytes`: returns the bytes the last write stored,
    /// unchanged, or whatever else now holds their place, whether or not it verifies;
    /// never a torn mixture of two writes.
    async fn read_raw(&self) -> Result<Option<Vec<u8>>>;

    /// Stores `request.document` if the store meets `request.precondition`, keeping a
    /// backup of the replaced document and appending the audit record when asked.
    ///
    /// # Contract
    /// - The precondition is checked and the document replaced atomically, across
    ///   every handle and process: [`Precondition::Absent`] only where no document is
    ///   stored, [`Precondition::Revision`] only over a document that verifies at that
    ///   revision ([`Error::Conflict`] otherwise, naming the revision found;
    ///   [`Error::Corrupted`] over one that does not verify),
    ///   [`Precondition::Bytes`] only while exactly those bytes are stored
    ///   ([`Error::PreconditionFailed`] otherwise). On any error nothing observable
    ///   changed.
    /// - `write_keeping_backup_keeps_the_replaced_revision`: with `keep`, a backup of
    ///   exactly the replaced document is listed with its revision and checksum; a
    ///   failed write keeps none and prunes none.
    /// - `write_keeping_backup_prunes_by_the_policy`: after it, the listed backups are
    ///   what `keep.policy` leaves, counted after the new backup is added.
    /// - With `audit`, the record is in the trail once the write returns `Ok`, unless
    ///   [`WriteReceipt::unaudited`] says why not.
    /// - A document over the store's size limit fails with [`Error::TooLarge`].
    async fn write(&self, request: WriteRequest) -> Result<WriteReceipt>;
}

/// Decodes `bytes` with `codec`; an empty (or all-blank) document is a parse error
/// rather than whatever the codec makes of nothing. `location` names it in errors.
///
/// # Errors
/// [`Error::Corrupted`] (`parse_error`).
pub fn decode(codec: &dyn Codec, bytes: &[u8], location: &std::path::Path) -> Result<Value> {
    let parse_error = |detail: String| Error::Corrupted {
        kind: crate::error::CorruptionKind::ParseError,
        path: location.to_owned(),
        detail,
    };
    if bytes.trim_ascii().is_empty() {
        return Err(parse_error(format!(
            "the document is empty ({} bytes)",
            bytes.len()
        )));
    }
    codec.decode(bytes).map_err(|e| parse_error(e.to_string()))
}
