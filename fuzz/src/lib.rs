//! What the fuzz targets share: the state-document check and a store directory to
//! read index files through.
//!
//! Each target feeds libFuzzer's bytes to the same public function, or the same store
//! method, that the store itself reads with, so a finding here is a finding in the
//! store rather than in a copy of its parser.

use std::path::{Path, PathBuf};

use checklist_backends::{Codec, FileStoreOptions, YamlCodec, YamlFileStore};
use checklist_core::store::verify_afresh;
use checklist_core::canonical::{CHECKSUM_FIELD, document_checksum};
use checklist_core::document;
use serde_json::Value;

/// The path the state targets name in errors.
const STATE_PATH: &str = ".checklist/state";

/// Reads `bytes` as a state file the way a store does on every read; when they verify,
/// also checks what a read-modify-write relies on: the state seals again, the codec
/// encodes it, and those bytes verify to the same state.
pub fn check_state_file<C: Codec>(codec: &C, bytes: &[u8]) {
    let path = Path::new(STATE_PATH);
    let Ok(state) = verify_afresh(codec, bytes, path) else {
        return;
    };
    let sealed = document::seal(&state, state.revision, path)
        .unwrap_or_else(|e| panic!("a state that verified does not seal again: {e}"));
    let written = codec
        .encode(&sealed.value)
        .unwrap_or_else(|e| panic!("a state that verified does not encode: {e}"));
    let read_back = verify_afresh(codec, &written, path)
        .unwrap_or_else(|e| panic!("a state that verified does not verify once written back: {e}"));
    // The checksum is over the document as written, so a file that spells a default
    // out (`activeInstance: null`) gets a different one once rewritten; the rest of
    // the state must not change.
    let mut expected = state;
    expected.checksum = Some(sealed.checksum);
    assert_eq!(read_back, expected, "a state changed in a write-back");
}

/// Like [`check_state_file`], but first gives any mapping the input decodes to its
/// correct checksum: a mutated document almost never carries one, so without this the
/// schema checks and the write-back are reached only by mutations that keep the parsed
/// value.
pub fn check_resealed_state_file<C: Codec>(codec: &C, bytes: &[u8]) {
    let Ok(mut value) = codec.decode(bytes) else {
        return;
    };
    let checksum = document_checksum(&value);
    let Some(map) = value.as_object_mut() else {
        return;
    };
    map.insert(CHECKSUM_FIELD.to_owned(), Value::String(checksum));
    if let Ok(resealed) = codec.encode(&value) {
        check_state_file(codec, &resealed);
    }
}

/// A `.checklist/` directory (on tmpfs where there is one) with a YAML store open on
/// it, so a target can plant an index file and read it through the store's own API.
pub struct StoreDir {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    /// The store open on the directory.
    pub store: YamlFileStore,
    /// Runs the store's async methods.
    pub runtime: tokio::runtime::Runtime,
}

impl StoreDir {
    /// A fresh, empty store directory.
    pub fn new() -> Self {
        let shm = Path::new("/dev/shm");
        let temp = if shm.is_dir() {
            tempfile::tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .expect("a temp dir");
        let dir = temp.path().join(".checklist");
        std::fs::create_dir_all(dir.join(".backup")).expect("the store directory");
        let store = YamlFileStore::open(&dir, YamlCodec, FileStoreOptions::default()).expect("a store");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        Self {
            _temp: temp,
            dir,
            store,
            runtime,
        }
    }

    /// Replaces the file `relative` (to `.checklist/`) with `bytes`.
    pub fn plant(&self, relative: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(relative), bytes).expect("planting a file");
    }
}

impl Default for StoreDir {
    fn default() -> Self {
        Self::new()
    }
}
