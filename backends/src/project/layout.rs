//! Where everything lives inside `.checklist/` (docs/file-formats.md, "Layout").

use std::path::{Path, PathBuf};

/// The name of the store directory inside a project.
pub const STORE_DIR_NAME: &str = ".checklist";

/// The first line of a yaml store's state.yaml: it names the state's JSON Schema, which
/// `init` writes into `schemas/`, so an editor with the YAML language server checks a
/// hand edit as it is typed (docs/file-formats.md). The path is relative to the file.
/// A comment: it is not part of the document and never changes the checksum.
pub const STATE_SCHEMA_LINE: &str = "# yaml-language-server: $schema=./schemas/state.schema.json\n";

/// The first line of config.yaml, naming its JSON Schema as [`STATE_SCHEMA_LINE`] does.
pub const CONFIG_SCHEMA_LINE: &str = "# yaml-language-server: $schema=./schemas/config.schema.json\n";

/// The schemas `init` writes into [`Layout::schemas_dir`] for editors: file name and
/// text, the very schemas the store validates with.
pub const EDITOR_SCHEMAS: [(&str, &str); 2] = [
    ("state.schema.json", checklist_core::schema::STATE_SCHEMA),
    ("config.schema.json", checklist_core::schema::CONFIG_SCHEMA),
];

/// The paths of a store's files and directories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    /// The layout of the store of the project at `root` (`<root>/.checklist`).
    pub fn for_project(root: &Path) -> Self {
        Self::at(root.join(STORE_DIR_NAME))
    }

    /// The layout of a store directory at `dir`.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `.checklist/` itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file of a backend whose files end in `extension`.
    pub fn state(&self, extension: &str) -> PathBuf {
        self.dir.join(format!("state.{extension}"))
    }

    /// `config.yaml`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.yaml")
    }

    /// `history.yaml`: the index of archived instances.
    pub fn history(&self) -> PathBuf {
        self.dir.join("history.yaml")
    }

    /// `metrics.yaml`: operation counters.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.yaml")
    }

    /// `audit.log`.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join("audit.log")
    }

    /// `.lock`: the state lock.
    pub fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    /// `.locks/`: waiter registrations and other lock files.
    pub fn locks_dir(&self) -> PathBuf {
        self.dir.join(".locks")
    }

    /// `.cache/`: derived data, always safe to delete.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.join(".cache")
    }

    /// `.backup/`.
    pub fn backup_dir(&self) -> PathBuf {
        self.dir.join(".backup")
    }

    /// `.backup/manifest.yaml`.
    pub fn backup_manifest(&self) -> PathBuf {
        self.backup_dir().join("manifest.yaml")
    }

    /// `archive/`: completed instances.
    pub fn archive_dir(&self) -> PathBuf {
        self.dir.join("archive")
    }

    /// `quarantine/`: corrupt files moved aside by recovery.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// `schemas/`: the JSON Schemas the first lines of state.yaml and config.yaml name.
    pub fn schemas_dir(&self) -> PathBuf {
        self.dir.join("schemas")
    }

    /// Every subdirectory `init` creates, in creation order.
    pub fn subdirectories(&self) -> [PathBuf; 5] {
        [
            self.locks_dir(),
            self.cache_dir(),
            self.backup_dir(),
            self.archive_dir(),
            self.quarantine_dir(),
        ]
    }
}
