//! The backend registry: `backend.type` in config.yaml names a factory.
//!
//! ```
//! use std::sync::Arc;
//! use checklist_backends::{Backend, BackendRegistry, InProcessLockProvider, MemoryStore};
//!
//! let mut registry = BackendRegistry::with_builtins();
//! registry.register("scratch", |_ctx: &checklist_backends::OpenContext<'_>| {
//!     Ok(Backend {
//!         store: Arc::new(MemoryStore::new()),
//!         locks: Arc::new(InProcessLockProvider::new("memory:scratch")),
//!     })
//! });
//! assert!(registry.contains("scratch") && registry.contains("yaml"));
//! // `sqlite` too, with the crate's `sqlite` feature.
//! assert_eq!(registry.contains("sqlite"), cfg!(feature = "sqlite"));
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use checklist_core::config::Durability;
use checklist_core::{Config, Error, LockProvider, Result, StateStore};

use crate::audit_log::AuditFiles;
use crate::config_file::load_config;
use crate::file_engine::{FileStore, FileStoreOptions, check_store_dir};
use crate::file_lock::{FileLockProvider, log_event};
use crate::in_process_lock::InProcessLockProvider;
use crate::json_file::JsonCodec;
use crate::layout::Layout;
use crate::memory::MemoryStore;
use crate::state_home::{self, Located};
use crate::vfs::{ConfinedFs, RealFs, Vfs};
use crate::yaml_file::YamlCodec;
use checklist_core::codec::Codec;

/// What a factory gets to open a backend.
#[derive(Debug)]
pub struct OpenContext<'a> {
    /// The store directory (`.checklist/`).
    pub dir: &'a Path,
    /// The loaded configuration (`backend.options` carries backend-specific options).
    pub config: &'a Config,
    /// The file system to use.
    pub vfs: Arc<dyn Vfs>,
}

impl OpenContext<'_> {
    /// [`FileStoreOptions`] as the configuration sets them.
    pub fn file_store_options(&self) -> FileStoreOptions {
        FileStoreOptions {
            durability: self.config.durability,
            audit: self.config.audit.clone(),
            max_state_bytes: self.config.limits.max_state_bytes,
            ..FileStoreOptions::default()
        }
    }
}

/// An opened backend: its store and its lock provider.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The state store.
    pub store: Arc<dyn StateStore>,
    /// The lock provider guarding it.
    pub locks: Arc<dyn LockProvider>,
}

/// Opens a backend; registered under a name in a [`BackendRegistry`].
pub trait BackendFactory: Send + Sync + 'static {
    /// Opens the backend for the store directory in `ctx`.
    ///
    /// # Errors
    /// Whatever prevents opening it, as a [`checklist_core::Error`].
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Backend>;
}

impl<F> BackendFactory for F
where
    F: Fn(&OpenContext<'_>) -> Result<Backend> + Send + Sync + 'static,
{
    fn open(&self, ctx: &OpenContext<'_>) -> Result<Backend> {
        self(ctx)
    }
}

/// Maps backend names to factories.
#[derive(Clone, Default)]
pub struct BackendRegistry {
    factories: BTreeMap<String, Arc<dyn BackendFactory>>,
}

impl fmt::Debug for BackendRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRegistry")
            .field("names", &self.names())
            .finish()
    }
}

impl BackendRegistry {
    /// A registry with no backends.
    pub fn empty() -> Self {
        Self::default()
    }

    /// A registry with the built-in backends `yaml`, `json` and `memory`, and `sqlite`
    /// when the crate is built with the `sqlite` feature.
    ///
    /// Memory stores live as long as the registry: every `open` of the same directory
    /// through this registry returns handles to one shared in-memory store.
    pub fn with_builtins() -> Self {
        let mut registry = Self::empty();
        registry.register("yaml", file_backend_factory(YamlCodec));
        registry.register("json", file_backend_factory(JsonCodec));
        #[cfg(feature = "sqlite")]
        registry.register(
            crate::sqlite::BACKEND_NAME,
            crate::sqlite::sqlite_backend_factory(),
        );
        let memory_stores: Arc<Mutex<HashMap<PathBuf, Backend>>> = Arc::default();
        registry.register("memory", move |ctx: &OpenContext<'_>| {
            let mut stores = memory_stores.lock().unwrap_or_else(|p| p.into_inner());
            Ok(stores
                .entry(ctx.dir.to_owned())
                .or_insert_with(|| {
                    let name = format!("memory:{}", ctx.dir.display());
                    Backend {
                        store: Arc::new(MemoryStore::named(name.clone())),
                        locks: Arc::new(InProcessLockProvider::new(name)),
                    }
                })
                .clone())
        });
        registry
    }

    /// Registers (or replaces) the factory for `name`.
    pub fn register(&mut self, name: &str, factory: impl BackendFactory) -> &mut Self {
        self.factories.insert(name.to_owned(), Arc::new(factory));
        self
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// The registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.factories.keys().cloned().collect()
    }

    /// Opens the backend `config.backend.kind` for the store directory `dir`.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] listing the registered names, or the factory's error.
    pub fn open(&self, dir: &Path, config: &Config, vfs: Arc<dyn Vfs>) -> Result<Backend> {
        let name = &config.backend.kind;
        let factory = self.factories.get(name).ok_or_else(|| Error::UnknownBackend {
            name: name.clone(),
            path: dir.join("config.yaml"),
            registered: self.names(),
        })?;
        factory.open(&OpenContext { dir, config, vfs })
    }
}

/// A factory for a [`FileStore`] with `codec`, guarded by the cross-process
/// [`FileLockProvider`] of its directory (one per directory, so the tasks of this
/// process that wait for it are woken as soon as one of them releases it).
pub fn file_backend_factory<C: Codec + Clone>(codec: C) -> impl BackendFactory {
    let locks = DirectoryLocks::default();
    move |ctx: &OpenContext<'_>| {
        let store = FileStore::open_with_vfs(
            ctx.dir,
            codec.clone(),
            ctx.file_store_options(),
            Arc::clone(&ctx.vfs),
        )?;
        Ok(Backend {
            store: Arc::new(store),
            locks: Arc::new(locks.of(ctx)),
        })
    }
}

/// One [`audited_file_lock`] per store directory, shared by every backend a factory
/// opens there, so the tasks of this process that wait for it are woken as soon as one
/// of them releases it.
#[derive(Debug, Clone, Default)]
pub(crate) struct DirectoryLocks(Arc<Mutex<HashMap<PathBuf, FileLockProvider>>>);

impl DirectoryLocks {
    /// The lock of `ctx.dir`, made on first use.
    pub(crate) fn of(&self, ctx: &OpenContext<'_>) -> FileLockProvider {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ctx.dir.to_owned())
            .or_insert_with(|| audited_file_lock(ctx))
            .clone()
    }
}

/// The file lock of `ctx.dir`, whose broken and force-released locks are logged and
/// written to the store's audit trail.
fn audited_file_lock(ctx: &OpenContext<'_>) -> FileLockProvider {
    let locks = FileLockProvider::with_vfs(ctx.dir, Arc::clone(&ctx.vfs));
    let audit = AuditFiles::new(ctx.dir, ctx.config.audit.clone(), ctx.config.durability);
    let vfs = ConfinedFs::wrap(ctx.dir, Arc::clone(&ctx.vfs));
    locks.set_observer(move |event| {
        log_event(event);
        if let Err(error) = audit.append(vfs.as_ref(), &event.audit_record()) {
            tracing::warn!(%error, "could not audit a broken lock");
        }
    });
    locks
}

/// An opened project store: where it is, how it is configured, and its backend.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    /// Its paths.
    pub layout: Layout,
    /// Its configuration.
    pub config: Config,
    /// Its backend.
    pub backend: Backend,
    /// Whether it is the per-user fallback store of a project whose directory could
    /// not hold one ([`state_home`](crate::state_home)), not `<root>/.checklist/`.
    pub fallback: bool,
}

/// Options for [`open_project`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Overrides config.yaml's `durability`.
    pub durability: Option<Durability>,
    /// Overrides config.yaml's `lock.timeoutMs`.
    pub lock_timeout_ms: Option<u64>,
    /// The per-user state directory in which to look for the project's fallback store
    /// when it has no `.checklist/` ([`state_home::locate`]); `None` looks only in the
    /// project.
    pub state_home: Option<PathBuf>,
}

/// Opens the store of the project at `root`: finds it ([`state_home::locate`]: its
/// `.checklist/`, or its fallback store in `options.state_home`), loads its
/// config.yaml and opens the backend it names.
///
/// # Errors
/// [`Error::NotInitialized`] without a store, the errors of [`state_home::locate`],
/// [`load_config`] and [`BackendRegistry::open`].
pub fn open_project(root: &Path, registry: &BackendRegistry, options: &OpenOptions) -> Result<OpenedStore> {
    open_project_with_vfs(root, registry, options, Arc::new(RealFs))
}

/// Like [`open_project`], doing all I/O through `vfs`.
///
/// # Errors
/// As [`open_project`].
pub fn open_project_with_vfs(
    root: &Path,
    registry: &BackendRegistry,
    options: &OpenOptions,
    vfs: Arc<dyn Vfs>,
) -> Result<OpenedStore> {
    let Located { layout, fallback } = state_home::locate(vfs.as_ref(), root, options.state_home.as_deref())?;
    check_store_dir(vfs.as_ref(), layout.dir())?;
    let mut config = load_config(ConfinedFs::wrap(layout.dir(), Arc::clone(&vfs)).as_ref(), &layout)?;
    if let Some(durability) = options.durability {
        config.durability = durability;
    }
    if let Some(timeout) = options.lock_timeout_ms {
        config.lock.timeout_ms = timeout;
    }
    let backend = registry.open(layout.dir(), &config, vfs)?;
    Ok(OpenedStore {
        layout,
        config,
        backend,
        fallback,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_backend_lists_the_registered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.backend.kind = "postgres".into();
        let err = BackendRegistry::with_builtins()
            .open(dir.path(), &config, Arc::new(RealFs))
            .unwrap_err();
        let text = err.to_string();
        let names = if cfg!(feature = "sqlite") {
            "json, memory, sqlite, yaml"
        } else {
            "json, memory, yaml"
        };
        assert!(text.contains("\"postgres\"") && text.contains(names), "{text}");
        assert!(text.contains("config.yaml"), "{text}");
    }

    #[test]
    fn memory_backends_of_one_directory_share_a_store() {
        let registry = BackendRegistry::with_builtins();
        let mut config = Config::default();
        config.backend.kind = "memory".into();
        let a = registry
            .open(Path::new("/p/.checklist"), &config, Arc::new(RealFs))
            .unwrap();
        let b = registry
            .open(Path::new("/p/.checklist"), &config, Arc::new(RealFs))
            .unwrap();
        let c = registry
            .open(Path::new("/q/.checklist"), &config, Arc::new(RealFs))
            .unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert!(!Arc::ptr_eq(&a.store, &c.store));
    }
}
