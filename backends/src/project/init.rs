//! `checklist init`: create the `.checklist/` layout of docs/file-formats.md.
//!
//! A fresh init either creates everything or, if any step fails, removes what it
//! created and reports the path that failed. An existing store is kept as it is.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use checklist_core::config::{BackendSelection, Durability};
use checklist_core::lock::Operation;
use checklist_core::recovery::{RecoverRequest, RecoveryReport};
use checklist_core::store::Capabilities;
use checklist_core::{
    Backend, BackendOrigin, BackendRegistry, ChecklistState, Config, DocumentStoreExt, Error, Expectation,
    LockNote, LockRequest, Recovery, Result, RollingBackups, StateStoreExt,
};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::fs::atomic::{DIR_MODE, SHARED_FILE_MODE, io_error, parent_dir, replace_file};
use crate::project::config::{load_config, write_config};
use crate::project::layout::{EDITOR_SCHEMAS, Layout};

use crate::fs::vfs::{ConfinedFs, RealFs, Vfs};
use crate::project::registry::refuse_a_changed_backend;
use crate::project::state_home::{self, Located};

const HISTORY: &str = "# Archived instances (checklist archive --list).\nversion: 1\ninstances: []\n";
const METRICS: &str = "# Operation counters.\nversion: 1\ncounters: {}\n";
const MANIFEST: &str = "# Backups of the state (checklist backup list).\nversion: 1\nbackups: []\n";

/// What `init` should do.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// The backend of a new store (default `yaml`, which needs the crate's `yaml` feature:
    /// without it, name a backend the registry has); ignored for an existing one.
    pub backend: Option<String>,
    /// Where `backend` was given, in the caller's words, for an error about the name
    /// (the CLI: `the --backend option`); default `InitOptions::backend`.
    pub backend_given_in: Option<String>,
    /// The durability written into a new config.yaml.
    pub durability: Option<Durability>,
    /// On an existing store, create whatever part of the layout is missing (never
    /// overwriting anything). A state file that is missing although the store holds
    /// backups or an audit trail is recovered, never started again below a committed
    /// revision: the newest backup that verifies is restored, or, if none does, an
    /// empty state is written above every committed revision (recorded as a reset
    /// with data loss).
    pub repair: bool,
    /// The state a new store starts with (an imported export), committed as its
    /// revision 1; default an empty one. Refused when the store already holds a state.
    pub initial_state: Option<ChecklistState>,
    /// The per-user state directory: where the project's store is found, or created
    /// when the project directory is not writable ([`state_home`](crate::project::state_home));
    /// `None` keeps the store in the project or fails.
    pub state_home: Option<PathBuf>,
    /// The new store's backend options, written into config.yaml beside its
    /// `backend.type` (a server's URL without its password, a store key).
    pub backend_options: Map<String, Value>,
    /// Options this run opens the backend with on top of `backend_options`, and never
    /// writes anywhere (a URL with its password).
    pub connection_options: Map<String, Value>,
    /// The note of the locks this run takes
    /// ([`LockSettings::note`](checklist_core::config::LockSettings::note)).
    pub lock_note: Option<LockNote>,
}

/// What `init` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InitOutcome {
    /// A new store was created.
    Created,
    /// A store was already there; it was kept as it is.
    AlreadyInitialized,
    /// A store was there; its missing parts were created.
    Repaired,
}

/// The report of an `init`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitReport {
    /// What happened.
    pub outcome: InitOutcome,
    /// The store directory.
    pub dir: PathBuf,
    /// Whether the store is the per-user fallback of a project whose directory is not
    /// writable, not `<root>/.checklist/`.
    pub fallback: bool,
    /// The backend the store uses.
    pub backend: String,
    /// What that backend's store can do (whether it outlives the process, …).
    pub capabilities: Capabilities,
    /// The files and directories created, in creation order.
    pub created: Vec<PathBuf>,
    /// The state's revision afterwards, if it could be read.
    pub revision: Option<u64>,
    /// How a repair brought back a state file that was missing from a store with
    /// backups or an audit trail.
    pub recovery: Option<RecoveryReport>,
    /// Whether this `init` created the project's store directory around a state the
    /// backend already held (a second checkout of a store on a server).
    pub joined: bool,
}

/// Creates the store of the project at `root`; see the module docs.
///
/// # Errors
/// The error of the step that failed, naming its path, after removing whatever this
/// call created. [`Error::UnknownBackend`] for a backend not in `registry`.
pub async fn init_project(
    root: &Path,
    options: &InitOptions,
    registry: &BackendRegistry,
) -> Result<InitReport> {
    init_project_with_vfs(root, options, registry, Arc::new(RealFs)).await
}

/// Like [`init_project`], doing all I/O through `vfs`.
///
/// # Errors
/// As [`init_project`].
pub async fn init_project_with_vfs(
    root: &Path,
    options: &InitOptions,
    registry: &BackendRegistry,
    vfs: Arc<dyn Vfs>,
) -> Result<InitReport> {
    check_project_root(vfs.as_ref(), root)?;
    let Located { layout, fallback } = state_home::locate(vfs.as_ref(), root, options.state_home.as_deref())?;
    let existing = match vfs.metadata(layout.dir()) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(Error::SymlinkRefused {
                path: layout.dir().to_owned(),
            });
        }
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_error("inspect", layout.dir(), e)),
    };
    let confined = ConfinedFs::wrap(layout.dir(), Arc::clone(&vfs));
    let has_config = existing && exists(confined.as_ref(), &layout.config())?;
    // The backend's name travels with where it came from, so an unknown one is blamed
    // on what the user can change: the existing config.yaml, or the caller's request.
    let (mut config, origin) = if has_config {
        let config = load_config(confined.as_ref(), &layout)?;
        (config, BackendOrigin::ConfigFile(layout.config()))
    } else {
        let mut config = Config::default();
        if let Some(name) = &options.backend {
            config.backend = BackendSelection::named(name);
            config.backend.options = options.backend_options.clone();
        }
        if let Some(durability) = options.durability {
            config.durability = durability;
        }
        let given_in = options
            .backend_given_in
            .clone()
            .unwrap_or_else(|| "InitOptions::backend".to_owned());
        (config, BackendOrigin::Requested(given_in))
    };
    config.lock.note = options.lock_note.clone();
    let open_config = connecting(&config, &options.connection_options);
    if !registry.contains(&config.backend.kind) {
        return Err(Error::UnknownBackend {
            name: config.backend.kind.clone(),
            origin,
            registered: registry.names(),
        });
    }

    let mut run = InitRun {
        vfs: ConfinedFs::wrap(layout.dir(), Arc::clone(&vfs)),
        unconfined: Arc::clone(&vfs),
        layout: layout.clone(),
        fallback,
        created: Vec::new(),
    };
    let existing_backend = if existing {
        Some(registry.open(layout.dir(), &open_config).await?)
    } else {
        None
    };
    if let Some(backend) = existing_backend.as_ref().filter(|_| has_config) {
        // Repairing never starts a new state beside another backend's.
        refuse_a_changed_backend(&layout, registry, &config, backend, vfs.as_ref()).await?;
    }
    if let Some(backend) = existing_backend.filter(|_| !options.repair) {
        // A store is there if it has a config or a state.
        if has_config || exists(vfs.as_ref(), backend.store.info().location_path())? {
            match backend.store.read_existing().await {
                Ok(state) => {
                    refuse_import_over(
                        options.initial_state.is_some(),
                        backend.store.info().location_path(),
                        Some(state.revision),
                    )?;
                    let capabilities = backend.store.info().capabilities;
                    return Ok(run.report(
                        InitOutcome::AlreadyInitialized,
                        &config,
                        Some(state.revision),
                        capabilities,
                    ));
                }
                // A store that never held a state (its first write failed, or it was
                // deleted before any commit): creating it is what init is for.
                Err(Error::NotInitialized { .. }) => {}
                // A lost, corrupt or unreadable state: say so and what to run, rather
                // than "already initialized" — or starting it again.
                Err(error) => return Err(error),
            }
        }
    }
    match run
        .create_missing(
            &config,
            &open_config,
            registry,
            options.initial_state.as_ref(),
            root,
            options.state_home.as_deref(),
        )
        .await
    {
        Ok((revision, recovery, capabilities, joined)) => {
            let outcome = if existing {
                InitOutcome::Repaired
            } else {
                InitOutcome::Created
            };
            let mut report = run.report(outcome, &config, revision, capabilities);
            report.recovery = recovery;
            report.joined = joined && !existing;
            Ok(report)
        }
        Err(error) => {
            run.undo();
            Err(error)
        }
    }
}

/// Brings back the lost state of a store being repaired: the newest backup that
/// verifies, or, when none does, an empty state above every committed revision.
async fn recover_lost_state(backend: &Backend, config: &Config) -> Result<RecoveryReport> {
    let recovery = Recovery::new(
        Arc::clone(&backend.store),
        Arc::clone(&backend.locks),
        RollingBackups::from_settings(&config.backup),
    )
    .with_settings(&config.lock, &config.recovery);
    let recovered = match recovery.recover(&RecoverRequest::default()).await {
        Err(Error::Unrecovered { .. }) => {
            recovery
                .recover(&RecoverRequest {
                    from: None,
                    reset: true,
                })
                .await?
        }
        other => other?,
    };
    recovered.ok_or_else(|| {
        Error::invalid(format!(
            "{} reappeared while init was repairing the store; run `checklist status` to see it",
            backend.store.info().location
        ))
    })
}

/// An import only creates a store; it never replaces a state that is there.
fn refuse_import_over(importing: bool, state: &Path, revision: Option<u64>) -> Result<()> {
    if !importing {
        return Ok(());
    }
    let holding = revision.map_or_else(|| "a state".to_owned(), |r| format!("revision {r}"));
    Err(Error::invalid(format!(
        "{} already holds {holding}; an import only creates a new store: move .checklist/ aside \
         (or import in another directory) first",
        state.display()
    )))
}

fn check_project_root(vfs: &dyn Vfs, root: &Path) -> Result<()> {
    match vfs.metadata(root) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::metadata(root) {
            // The project directory itself may be reached through a link; only the
            // inside of .checklist/ must not be.
            Ok(target) if target.is_dir() => Ok(()),
            _ => Err(not_a_directory(root)),
        },
        Ok(_) => Err(not_a_directory(root)),
        Err(e) => Err(io_error("open the project directory", root, e)),
    }
}

fn not_a_directory(root: &Path) -> Error {
    Error::io(
        "open the project directory",
        root,
        io::Error::new(io::ErrorKind::NotADirectory, "it is not a directory"),
    )
}

/// Whether something is at `path`; a symbolic link is refused, so neither a check of
/// an existing store nor a repair accepts one in place of a file.
fn exists(vfs: &dyn Vfs, path: &Path) -> Result<bool> {
    match vfs.metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Err(Error::SymlinkRefused {
            path: path.to_owned(),
        }),
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("inspect", path, e)),
    }
}

struct InitRun {
    /// The file system confined to the store directory.
    vfs: Arc<dyn Vfs>,
    unconfined: Arc<dyn Vfs>,
    layout: Layout,
    fallback: bool,
    created: Vec<PathBuf>,
}

impl InitRun {
    fn report(
        self,
        outcome: InitOutcome,
        config: &Config,
        revision: Option<u64>,
        capabilities: Capabilities,
    ) -> InitReport {
        InitReport {
            outcome,
            dir: self.layout.dir().to_owned(),
            fallback: self.fallback,
            backend: config.backend.kind.clone(),
            capabilities,
            created: self.created,
            revision,
            recovery: None,
            joined: false,
        }
    }

    fn make_dir(&mut self, path: PathBuf) -> Result<()> {
        match self.vfs.create_dir(&path, DIR_MODE) {
            Ok(()) => {
                self.created.push(path);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match self.vfs.metadata(&path) {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(meta) if meta.file_type().is_symlink() => Err(Error::SymlinkRefused { path }),
                _ => Err(io_error(
                    "create the directory",
                    &path,
                    io::Error::new(io::ErrorKind::AlreadyExists, "a file of that name is in the way"),
                )),
            },
            Err(e) => Err(io_error("create the directory", &path, e)),
        }
    }

    /// Creates the store directory; when it is `<root>/.checklist/` and the project
    /// directory is not writable, creates the fallback store in `state_home` instead.
    fn make_store_dir(&mut self, root: &Path, state_home: Option<&Path>) -> Result<()> {
        let dir = self.layout.dir().to_owned();
        match (self.vfs.create_dir(&dir, DIR_MODE), state_home) {
            (Err(e), Some(state_home)) if !self.fallback && state_home::is_unwritable(&e) => {
                let fallback =
                    state_home::create_fallback_store_dir(self.unconfined.as_ref(), state_home, root)?;
                tracing::debug!(project = %dir.display(), fallback = %fallback.display(), error = %e, "the project directory is not writable; using the fallback store");
                self.vfs = ConfinedFs::wrap(&fallback, Arc::clone(&self.unconfined));
                self.layout = Layout::at(&fallback);
                self.fallback = true;
                self.created.push(fallback);
                Ok(())
            }
            (Err(e), _) if e.kind() == io::ErrorKind::AlreadyExists => self.make_dir(dir),
            (Err(e), _) => Err(io_error("create the directory", &dir, e)),
            (Ok(()), _) => {
                self.created.push(dir);
                Ok(())
            }
        }
    }

    fn make_file(&mut self, path: PathBuf, write: impl FnOnce(&dyn Vfs, &Path) -> Result<()>) -> Result<()> {
        if exists(self.vfs.as_ref(), &path)? {
            return Ok(());
        }
        write(self.vfs.as_ref(), &path)?;
        self.created.push(path);
        Ok(())
    }

    async fn create_missing(
        &mut self,
        config: &Config,
        open_config: &Config,
        registry: &BackendRegistry,
        initial_state: Option<&ChecklistState>,
        root: &Path,
        state_home: Option<&Path>,
    ) -> Result<(Option<u64>, Option<RecoveryReport>, Capabilities, bool)> {
        let durability = config.durability;
        self.make_store_dir(root, state_home)?;
        if durability == Durability::Full {
            // The store directory's name is an entry of its parent: without this fsync a
            // power cut after init reported success can leave no store at all (the first
            // commit fsyncs only the store directory itself).
            let parent = parent_dir(self.layout.dir());
            self.unconfined
                .sync_dir(parent)
                .map_err(|e| io_error("fsync the directory", parent, e))?;
        }
        let layout = self.layout.clone();
        self.make_file(layout.config(), |vfs, _| {
            write_config(vfs, &layout, config, durability)
        })?;
        // Where the first lines of config.yaml and state.yaml point editors.
        self.make_dir(layout.schemas_dir())?;
        for (name, schema) in EDITOR_SCHEMAS {
            self.make_file(layout.schemas_dir().join(name), |vfs, path| {
                replace_file(vfs, path, schema.as_bytes(), durability, SHARED_FILE_MODE)
            })?;
        }
        let backend = registry.open(self.layout.dir(), open_config).await?;
        let capabilities = backend.store.info().capabilities;
        // The files beside a document (backups and their index, the archive and its
        // history, the quarantine, the locks) are a store's that keeps its document in
        // this directory; a store kept elsewhere (a server, memory) keeps them there too,
        // and empty files here would only mislead whoever reads the directory.
        if backend
            .store
            .info()
            .location_path()
            .starts_with(self.layout.dir())
        {
            for dir in self.layout.subdirectories() {
                self.make_dir(dir)?;
            }
            for (path, text) in [
                (layout.history(), HISTORY),
                (layout.metrics(), METRICS),
                (layout.backup_manifest(), MANIFEST),
            ] {
                self.make_file(path, |vfs, path| {
                    replace_file(vfs, path, text.as_bytes(), durability, SHARED_FILE_MODE)
                })?;
            }
        }
        // The first write happens under the store's lock, like every later one; taking
        // it here also finds a file system that cannot hold the lock (FAT: no hard
        // links) before anything is written, so such a store is refused at init
        // instead of failing every command after it.
        let guard = backend
            .locks
            .acquire(&LockRequest::from_settings(Operation::Write, &config.lock))
            .await?;
        let first_write = first_write(&backend, initial_state).await;
        guard.release_logging_failure().await;
        let committed = match first_write? {
            FirstWrite::Existing(revision) => return Ok((Some(revision), None, capabilities, true)),
            FirstWrite::StateMissing => {
                let report = recover_lost_state(&backend, config).await?;
                return Ok((Some(report.revision), Some(report), capabilities, false));
            }
            FirstWrite::Committed(revision) => revision,
        };
        // A file backend's state lives inside the store directory; a memory
        // backend's location is a pseudo-path outside it.
        if backend
            .store
            .info()
            .location_path()
            .starts_with(self.layout.dir())
        {
            self.created.push(backend.store.info().location_path().to_owned());
        }
        Ok((Some(committed), None, capabilities, false))
    }

    /// Removes what this run created, newest first.
    fn undo(&mut self) {
        while let Some(path) = self.created.pop() {
            let removed = if self.vfs.metadata(&path).is_ok_and(|m| m.is_dir()) {
                self.remove_dir_contents_we_own(&path);
                self.vfs.remove_dir(&path)
            } else {
                self.vfs.remove_file(&path)
            };
            if let Err(error) = removed
                && error.kind() != io::ErrorKind::NotFound
            {
                tracing::error!(path = %path.display(), %error, "init failed and could not remove what it created; delete it by hand");
            }
        }
    }

    /// Inside a directory this run created, everything is this run's (for example a
    /// lock file the first write made, and the lock queue's directory); remove it before
    /// the directory, depth first.
    fn remove_dir_contents_we_own(&self, dir: &Path) {
        if let Ok(names) = self.vfs.list_dir(dir) {
            for name in names {
                let path = dir.join(name);
                match self.vfs.metadata(&path) {
                    Ok(meta) if meta.is_dir() => {
                        self.remove_dir_contents_we_own(&path);
                        let _ = self.vfs.remove_dir(&path);
                    }
                    Ok(meta) if meta.is_file() => {
                        let _ = self.vfs.remove_file(&path);
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `config` with `extra` laid over its backend options: what this run opens the
/// backend with.
fn connecting(config: &Config, extra: &Map<String, Value>) -> Config {
    let mut open = config.clone();
    for (key, value) in extra {
        open.backend.options.insert(key.clone(), value.clone());
    }
    open
}

/// What the first write under init's lock found or did.
enum FirstWrite {
    /// A state was already there, at this revision.
    Existing(u64),
    /// The state is missing from a store with a history: recovery restores it (it takes
    /// the lock itself).
    StateMissing,
    /// The first state was committed at this revision.
    Committed(u64),
}

/// Init's first write, under the lock: joins a state that is there, stops at a lost
/// one, or commits the first (or imported) state.
async fn first_write(backend: &Backend, initial_state: Option<&ChecklistState>) -> Result<FirstWrite> {
    if let Some(state) = backend.store.read().await? {
        refuse_import_over(
            initial_state.is_some(),
            backend.store.info().location_path(),
            Some(state.revision),
        )?;
        return Ok(FirstWrite::Existing(state.revision));
    }
    if let lost @ Error::StateMissing { .. } = backend.store.missing_state().await? {
        return if initial_state.is_some() {
            Err(lost)
        } else {
            Ok(FirstWrite::StateMissing)
        };
    }
    let first = initial_state.cloned().unwrap_or_default();
    let committed = backend.store.commit(&first, Expectation::Absent).await?;
    Ok(FirstWrite::Committed(committed.revision))
}
