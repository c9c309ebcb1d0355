//! Reading and writing `.checklist/config.yaml`.

use std::io;
use std::path::Path;

use checklist_core::config::Durability;
use checklist_core::{Config, Error, Result};

use crate::codec::yaml::YamlCodec;
use crate::fs::atomic::{SHARED_FILE_MODE, io_error, replace_file};
use crate::fs::vfs::Vfs;
use crate::project::layout::{CONFIG_SCHEMA_LINE, Layout};
use checklist_core::codec::Codec;

/// Largest config.yaml the store reads.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

const HEADER: &str = "\
# checklist store configuration (schemas/config.schema.json).
# Every field is optional; a missing field takes its default.
";

/// Loads the store's configuration; a missing file means the defaults.
///
/// # Errors
/// [`Error::InvalidConfig`] naming the field for a file that does not parse or breaks
/// the schema; [`Error::SymlinkRefused`] or [`Error::Io`] when it cannot be read.
pub fn load_config(vfs: &dyn Vfs, layout: &Layout) -> Result<Config> {
    let path = layout.config();
    let bytes = match vfs.read(&path, MAX_CONFIG_BYTES) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(e) if e.kind() == io::ErrorKind::FileTooLarge => {
            return Err(Error::InvalidConfig {
                path,
                field: "/".to_owned(),
                message: format!("the file is larger than {MAX_CONFIG_BYTES} bytes"),
            });
        }
        Err(e) => return Err(io_error("read", &path, e)),
    };
    parse_config(&bytes, &path)
}

/// Parses the bytes of a config.yaml as [`load_config`] does: YAML, validated against
/// `schemas/config.schema.json`; an empty file means the defaults. `path` names the
/// file in errors. It checks a configuration before it is installed.
///
/// ```
/// use checklist_backends::parse_config;
/// use checklist_core::config::Durability;
///
/// let config = parse_config(b"durability: fast\n", "config.yaml".as_ref()).unwrap();
/// assert_eq!(config.durability, Durability::Fast);
/// assert!(parse_config(b"durability: sometimes\n", "config.yaml".as_ref()).is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidConfig`] naming the field for bytes that do not parse or break the
/// schema.
pub fn parse_config(bytes: &[u8], path: &Path) -> Result<Config> {
    let value = if bytes.trim_ascii().is_empty() {
        serde_json::Value::Null
    } else {
        YamlCodec.decode(bytes).map_err(|e| Error::InvalidConfig {
            path: path.to_owned(),
            field: "/".to_owned(),
            message: format!("it is not valid YAML: {e}"),
        })?
    };
    Config::from_value(value, path)
}

/// Writes the configuration atomically, every field spelled out.
///
/// # Errors
/// As [`replace_file`].
pub fn write_config(vfs: &dyn Vfs, layout: &Layout, config: &Config, durability: Durability) -> Result<()> {
    let path = layout.config();
    let body = YamlCodec
        .encode(&config.to_value())
        .map_err(|e| Error::InvalidConfig {
            path: path.clone(),
            field: "/".to_owned(),
            message: e.to_string(),
        })?;
    let mut bytes = [CONFIG_SCHEMA_LINE, HEADER].concat().into_bytes();
    bytes.extend_from_slice(&body);
    replace_file(vfs, &path, &bytes, durability, SHARED_FILE_MODE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::vfs::RealFs;

    #[test]
    fn missing_or_empty_means_defaults_and_written_config_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        assert_eq!(load_config(&RealFs, &layout).unwrap(), Config::default());
        std::fs::write(layout.config(), b"\n").unwrap();
        assert_eq!(load_config(&RealFs, &layout).unwrap(), Config::default());
        let mut config = Config::default();
        config.backend.kind = "json".into();
        config.lock.timeout_ms = 250;
        write_config(&RealFs, &layout, &config, Durability::Fast).unwrap();
        assert_eq!(load_config(&RealFs, &layout).unwrap(), config);
    }

    #[test]
    fn bad_config_names_the_field_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::at(dir.path());
        std::fs::write(layout.config(), b"lock:\n  timeoutMs: soon\n").unwrap();
        let err = load_config(&RealFs, &layout).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/lock/timeoutMs") && text.contains("config.yaml"),
            "{text}"
        );
        std::fs::write(layout.config(), b"lock: [unclosed\n").unwrap();
        let text = load_config(&RealFs, &layout).unwrap_err().to_string();
        assert!(text.contains("not valid YAML"), "{text}");
    }
}
