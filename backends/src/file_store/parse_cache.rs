//! The verified parse of the state file, kept in `.cache/` for the next process
//! (docs/decisions/0024-verified-parse-cache.md).
//!
//! A command is a new process, and a state of 10,000 steps takes hundreds of
//! milliseconds to decode and verify; the same bytes verify to the same state every
//! time. So the store keeps, in `.cache/verified.<state file>.json`, the state its
//! bytes verified to, keyed by the SHA-256 and the length of those exact bytes:
//!
//! ```text
//! {"format":1,"codec":"yaml","sha256":"sha256:…","length":2097152}   ← line 1, the key
//! {…the verified state as JSON…}                                      ← line 2
//! ```
//!
//! Any change to the state file — a hand edit of the same size and mtime included —
//! changes the hash, and the file is verified in full again. A cache that is missing,
//! empty, torn, of another format version, of another codec, of other bytes, or that
//! cannot be written (a read-only `.cache/`) is ignored: it only ever saves time, and
//! deleting `.cache/` is always safe. It is written without fsync, by atomic replace,
//! private (0600) like the state file whose content it holds.

use std::path::{Path, PathBuf};

use checklist_core::ChecklistState;
use checklist_core::config::Durability;
use checklist_core::quarantine::bytes_sha256;
use serde::{Deserialize, Serialize};

use crate::fs::atomic::{PRIVATE_FILE_MODE, replace_file};
use crate::fs::vfs::Vfs;

/// The cache file's format; a cache of any other is ignored (and replaced).
const FORMAT: u32 = 1;

/// The cache file's first line.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct Key {
    format: u32,
    codec: String,
    sha256: String,
    length: u64,
}

impl Key {
    fn of(codec: &str, bytes: &[u8]) -> Self {
        Self {
            format: FORMAT,
            codec: codec.to_owned(),
            sha256: bytes_sha256(bytes),
            length: bytes.len() as u64,
        }
    }
}

/// The cache of one store's state file.
#[derive(Debug)]
pub(crate) struct ParseCache {
    path: PathBuf,
    codec: &'static str,
}

impl ParseCache {
    /// The cache of `state_file_name` (read with codec `codec`) in the store directory
    /// `dir`.
    pub(crate) fn new(dir: &Path, state_file_name: &str, codec: &'static str) -> Self {
        Self {
            path: dir
                .join(".cache")
                .join(format!("verified.{state_file_name}.json")),
            codec,
        }
    }

    /// The state `bytes` verified to when the cache holds it, or `None`. `limit` caps
    /// how much of a cache file is read.
    pub(crate) fn load(&self, vfs: &dyn Vfs, bytes: &[u8], limit: u64) -> Option<ChecklistState> {
        let cached = vfs.read(&self.path, limit).ok()?;
        let newline = cached.iter().position(|&b| b == b'\n')?;
        let key: Key = serde_json::from_slice(&cached[..newline]).ok()?;
        if key != Key::of(self.codec, bytes) {
            return None;
        }
        match serde_json::from_slice(&cached[newline + 1..]) {
            Ok(state) => Some(state),
            Err(error) => {
                tracing::debug!(cache = %self.path.display(), %error, "ignoring a damaged parse cache");
                None
            }
        }
    }

    /// Keeps `state` as what `bytes` verify to; a failure is only logged.
    pub(crate) fn save(&self, vfs: &dyn Vfs, bytes: &[u8], state: &ChecklistState) {
        let Ok(mut cached) = serde_json::to_vec(&Key::of(self.codec, bytes)) else {
            return;
        };
        cached.push(b'\n');
        if serde_json::to_writer(&mut cached, state).is_err() {
            return;
        }
        cached.push(b'\n');
        if let Err(error) = replace_file(vfs, &self.path, &cached, Durability::Fast, PRIVATE_FILE_MODE) {
            tracing::debug!(cache = %self.path.display(), %error, "could not write the parse cache");
        }
    }

    /// The cache's directory, whose stale temp files the store sweeps.
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::yaml::YamlCodec;
    use crate::fs::vfs::RealFs;
    use crate::{FileStore, FileStoreOptions};
    use checklist_core::store::verify_afresh;
    use checklist_core::{DocumentStoreExt, Expectation};
    use serde_json::json;

    /// A store whose state holds every kind of value (unknown fields of every JSON
    /// type, text that needs quoting), its state file's bytes, and what they verify to.
    async fn stored() -> (tempfile::TempDir, Vec<u8>, ChecklistState) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".cache")).unwrap();
        let store = FileStore::open(dir.path(), YamlCodec, FileStoreOptions::default()).unwrap();
        let mut state = checklist_conformance::testkit::state_with_steps(5);
        state.extra.insert(
            "x-every-value".into(),
            json!({"null": null, "true": true, "int": -7, "big": u64::MAX, "float": 0.1, "exp": 1e300,
                   "text": "line one\nline: two # not a comment\u{1F600}", "empty": "", "list": [1, "2", [3]]}),
        );
        store.commit(&state, Expectation::Absent).await.unwrap();
        let bytes = std::fs::read(dir.path().join("state.yaml")).unwrap();
        let verified = verify_afresh(&YamlCodec, &bytes, &dir.path().join("state.yaml")).unwrap();
        (dir, bytes, verified)
    }

    const LIMIT: u64 = 1 << 26;

    #[tokio::test]
    async fn what_it_keeps_is_exactly_what_the_bytes_verify_to() {
        let (dir, bytes, verified) = stored().await;
        let cache = ParseCache::new(dir.path(), "state.yaml", "yaml");
        // The store's own commit already cached it.
        assert_eq!(cache.load(&RealFs, &bytes, LIMIT), Some(verified.clone()));
        std::fs::remove_file(&cache.path).unwrap();
        assert_eq!(cache.load(&RealFs, &bytes, LIMIT), None);
        cache.save(&RealFs, &bytes, &verified);
        assert_eq!(cache.load(&RealFs, &bytes, LIMIT), Some(verified));
    }

    #[tokio::test]
    async fn other_bytes_of_the_same_size_another_codec_or_format_are_ignored() {
        let (dir, bytes, verified) = stored().await;
        let cache = ParseCache::new(dir.path(), "state.yaml", "yaml");
        cache.save(&RealFs, &bytes, &verified);
        // A hand edit of one byte: same size, any mtime.
        let mut edited = bytes.clone();
        let at = edited.iter().position(|&b| b == b'5').unwrap_or(edited.len() / 2);
        edited[at] = if edited[at] == b'5' { b'6' } else { b'x' };
        assert_eq!(edited.len(), bytes.len());
        assert_eq!(cache.load(&RealFs, &edited, LIMIT), None);
        assert_eq!(
            ParseCache::new(dir.path(), "state.yaml", "json").load(&RealFs, &bytes, LIMIT),
            None
        );
        let text = std::fs::read_to_string(&cache.path).unwrap();
        std::fs::write(&cache.path, text.replacen("\"format\":1", "\"format\":2", 1)).unwrap();
        assert_eq!(
            cache.load(&RealFs, &bytes, LIMIT),
            None,
            "a newer format is not read"
        );
    }

    #[tokio::test]
    async fn a_cache_of_another_state_or_a_damaged_one_is_ignored() {
        let (dir, bytes, verified) = stored().await;
        let cache = ParseCache::new(dir.path(), "state.yaml", "yaml");
        let (other_dir, other_bytes, other) = stored().await;
        ParseCache::new(other_dir.path(), "state.yaml", "yaml").save(&RealFs, &other_bytes, &other);
        std::fs::copy(
            other_dir.path().join(".cache/verified.state.yaml.json"),
            &cache.path,
        )
        .unwrap();
        assert_eq!(cache.load(&RealFs, &bytes, LIMIT), None, "another store's cache");

        cache.save(&RealFs, &bytes, &verified);
        let whole = std::fs::read(&cache.path).unwrap();
        for cut in [0, 1, whole.len() / 3, whole.len() / 2, whole.len() - 2] {
            std::fs::write(&cache.path, &whole[..cut]).unwrap();
            assert_eq!(
                cache.load(&RealFs, &bytes, LIMIT),
                None,
                "cut at {cut} of {}",
                whole.len()
            );
        }
        let mut flipped = whole.clone();
        let last = flipped.len() - 3;
        flipped[last] = b'{';
        std::fs::write(&cache.path, &flipped).unwrap();
        assert_eq!(cache.load(&RealFs, &bytes, LIMIT), None, "garbage in the state");
    }

    #[tokio::test]
    async fn a_cache_that_cannot_be_written_changes_nothing() {
        let (dir, bytes, verified) = stored().await;
        // `.cache` is a file, not a directory: every write into it fails, even as root.
        std::fs::remove_dir_all(dir.path().join(".cache")).unwrap();
        std::fs::write(dir.path().join(".cache"), b"not a directory").unwrap();
        let cache = ParseCache::new(dir.path(), "state.yaml", "yaml");
        cache.save(&RealFs, &bytes, &verified);
        assert_eq!(cache.load(&RealFs, &bytes, LIMIT), None);
        let store = FileStore::open(dir.path(), YamlCodec, FileStoreOptions::default()).unwrap();
        assert_eq!(store.read().await.unwrap(), Some(verified));
    }
}
