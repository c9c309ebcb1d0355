//! The built-in backends' factories, the registry they fill, and opening a project's
//! store (`backend.type` in its config.yaml names the factory).
//!
//! ```
//! use std::sync::Arc;
//! use checklist_backends::{InProcessLockProvider, MemoryStore, builtin_registry};
//! use checklist_core::{Backend, OpenContext, Result};
//!
//! let mut registry = builtin_registry();
//! registry.register("scratch", |_ctx: &OpenContext<'_>| -> Result<Backend> {
//!     Ok(Backend {
//!         store: Arc::new(MemoryStore::new()),
//!         locks: Arc::new(InProcessLockProvider::new("memory:scratch")),
//!     })
//! });
//! assert!(registry.contains("scratch") && registry.contains("memory"));
//! // Each other built-in backend with the crate feature of its name.
//! assert_eq!(registry.contains("yaml"), cfg!(feature = "yaml"));
//! assert_eq!(registry.contains("sqlite"), cfg!(feature = "sqlite"));
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use checklist_core::config::BackendSelection;
use checklist_core::config::Durability;
use checklist_core::prelude::*;
use checklist_core::{
    Backend, BackendFactory, BackendRegistry, Config, Error, FoundState, LockNote, OpenContext, Result,
};

#[cfg(feature = "json")]
use crate::codec::json::JsonCodec;
#[cfg(feature = "yaml")]
use crate::codec::yaml::YamlCodec;
use crate::file_store::{FileStore, FileStoreOptions, check_store_dir};
use crate::fs::vfs::{ConfinedFs, RealFs, Vfs};
use crate::lock::directory::DirectoryLocks;
use crate::lock::in_process::InProcessLockProvider;
use crate::memory::MemoryStore;
use crate::project::config::load_config;
use crate::project::layout::Layout;
use crate::project::state_home::{self, Located};
use checklist_core::codec::Codec;

/// A registry with the built-in backends: `memory`, and `yaml`, `json`, `sqlite` and
/// `postgres` when the crate is built with the feature of that name (`yaml` and `json`
/// are default features).
///
/// Memory stores live as long as the registry: every `open` of the same directory
/// through this registry returns handles to one shared in-memory store.
pub fn builtin_registry() -> BackendRegistry {
    builtin_registry_with_vfs(Arc::new(RealFs))
}

/// Like [`builtin_registry`], with the file backends doing all their I/O through
/// `vfs` (fault injection, [`vfs`](crate::fs::vfs)).
pub fn builtin_registry_with_vfs(
    #[cfg_attr(
        not(any(feature = "yaml", feature = "json", feature = "sqlite")),
        expect(
            unused_variables,
            reason = "only the file and sqlite backends do I/O through it"
        )
    )]
    vfs: Arc<dyn Vfs>,
) -> BackendRegistry {
    let mut registry = BackendRegistry::empty();
    // A project's state.yaml names its schema for editors (docs/file-formats.md).
    #[cfg(feature = "yaml")]
    registry.register(
        "yaml",
        file_factory(
            YamlCodec,
            Arc::clone(&vfs),
            Some(crate::project::layout::STATE_SCHEMA_LINE),
        ),
    );
    #[cfg(feature = "json")]
    registry.register("json", file_backend_factory_with_vfs(JsonCodec, Arc::clone(&vfs)));
    #[cfg(feature = "sqlite")]
    registry.register(
        crate::sqlite::BACKEND_NAME,
        crate::sqlite::sqlite_backend_factory_with_vfs(Arc::clone(&vfs)),
    );
    #[cfg(feature = "postgres")]
    registry.register(
        crate::postgres::BACKEND_NAME,
        crate::postgres::postgres_backend_factory(),
    );
    let memory_stores: Arc<Mutex<HashMap<PathBuf, Backend>>> = Arc::default();
    registry.register("memory", move |ctx: &OpenContext<'_>| -> Result<Backend> {
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

/// A factory for a [`FileStore`] with `codec`, guarded by the cross-process
/// [`FileLockProvider`](crate::FileLockProvider) of its directory (one per directory, so the tasks of this
/// process that wait for it are woken as soon as one of them releases it).
pub fn file_backend_factory<C: Codec + Clone>(codec: C) -> impl BackendFactory {
    file_backend_factory_with_vfs(codec, Arc::new(RealFs))
}

/// Like [`file_backend_factory`], doing all I/O through `vfs`.
pub fn file_backend_factory_with_vfs<C: Codec + Clone>(codec: C, vfs: Arc<dyn Vfs>) -> impl BackendFactory {
    file_factory(codec, vfs, None)
}

/// A file backend factory whose state file starts with `state_preamble`
/// ([`FileStoreOptions::state_preamble`]).
fn file_factory<C: Codec + Clone>(
    codec: C,
    vfs: Arc<dyn Vfs>,
    state_preamble: Option<&'static str>,
) -> impl BackendFactory {
    let locks = DirectoryLocks::new(Arc::clone(&vfs));
    move |ctx: &OpenContext<'_>| -> Result<Backend> {
        let store = FileStore::open_with_vfs(
            ctx.dir,
            codec.clone(),
            FileStoreOptions {
                state_preamble,
                ..FileStoreOptions::from_config(ctx.config)
            },
            Arc::clone(&vfs),
        )?;
        Ok(Backend {
            store: Arc::new(store),
            locks: Arc::new(locks.of(ctx)),
        })
    }
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
    /// not hold one ([`state_home`](crate::project::state_home)), not `<root>/.checklist/`.
    pub fallback: bool,
}

/// Options for [`open_project`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Overrides config.yaml's `durability`.
    pub durability: Option<Durability>,
    /// Overrides config.yaml's `lock.timeoutMs`.
    pub lock_timeout_ms: Option<u64>,
    /// The note every lock this store's users take carries
    /// ([`LockSettings::note`](checklist_core::config::LockSettings::note)); config.yaml
    /// has none.
    pub lock_note: Option<LockNote>,
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
/// [`Error::NotInitialized`](checklist_core::Error::NotInitialized) without a store, the errors of [`state_home::locate`],
/// [`load_config`] and [`BackendRegistry::open`].
pub async fn open_project(
    root: &Path,
    registry: &BackendRegistry,
    options: &OpenOptions,
) -> Result<OpenedStore> {
    open_project_with_vfs(root, registry, options, Arc::new(RealFs)).await
}

/// Like [`open_project`], finding the store and reading its config.yaml through `vfs`
/// (the registry's factories bring their own: [`builtin_registry_with_vfs`]).
///
/// # Errors
/// As [`open_project`].
pub async fn open_project_with_vfs(
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
    config.lock.note = options.lock_note.clone();
    let backend = registry.open(layout.dir(), &config).await?;
    refuse_a_changed_backend(&layout, registry, &config, &backend, vfs.as_ref()).await?;
    Ok(OpenedStore {
        layout,
        config,
        backend,
        fallback,
    })
}

/// Refuses a store whose config.yaml names a backend that holds no state while another
/// registered backend's state is in the store directory — `backend.type` changed by
/// hand from `yaml` to `json`, say — with [`Error::BackendChanged`] naming both, before
/// anything reads the one as lost or starts a new state beside the other
/// (docs/backends.md, "Changing a store's backend by hand").
///
/// Every other registered backend is opened as config.yaml would open it with no
/// options of its own; one whose store location is a file inside the store directory
/// that exists is a candidate (a server's store never is: its location is not a
/// path here). Opening a store does no I/O of its own, so the common case costs a few
/// file-name checks; only when a candidate exists does it look whether the configured
/// store holds a state: a stat where that store is a file here, else a read of its
/// document (one more round trip to a server while an old state file is left beside
/// its config.yaml).
///
/// # Errors
/// [`Error::BackendChanged`]; reading the configured store's document.
pub async fn refuse_a_changed_backend(
    layout: &Layout,
    registry: &BackendRegistry,
    config: &Config,
    backend: &Backend,
    vfs: &dyn Vfs,
) -> Result<()> {
    let mut candidates = Vec::new();
    for name in registry.names() {
        if name == config.backend.kind {
            continue;
        }
        let mut other = config.clone();
        other.backend = BackendSelection::named(&name);
        // A backend that cannot be opened without options keeps no state here.
        let Ok(sibling) = registry.open(layout.dir(), &other).await else {
            continue;
        };
        let location = sibling.store.info().location_path().to_owned();
        if location != backend.store.info().location_path()
            && location.parent() == Some(layout.dir())
            && vfs.metadata(&location).is_ok()
        {
            candidates.push((name, sibling));
        }
    }
    if candidates.is_empty() {
        return Ok(());
    }
    // A store whose location is a file here holds a state while the file exists (a
    // damaged one is its own error, not a changed backend): a stat, where reading the
    // document would cost what the document costs, on every command after a move.
    let own = backend.store.info().location_path();
    let holds_a_state = if own.parent() == Some(layout.dir()) {
        vfs.metadata(own).is_ok()
    } else {
        backend.store.read_raw().await?.is_some()
    };
    if holds_a_state {
        return Ok(());
    }
    let (found, sibling) = candidates.swap_remove(0);
    let found_revision = sibling
        .store
        .read()
        .await
        .ok()
        .flatten()
        .map(|state| state.revision);
    Err(Error::BackendChanged {
        config: layout.config(),
        configured: config.backend.kind.clone(),
        found: Box::new(FoundState {
            backend: found,
            location: sibling.store.info().location.clone(),
            revision: found_revision,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_backend_lists_the_registered_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.backend.kind = "etcd".into();
        let err = builtin_registry().open(dir.path(), &config).await.unwrap_err();
        let text = err.to_string();
        let names = builtin_registry().names().join(", ");
        assert!(names.contains("memory"), "{names}");
        assert_eq!(names.contains("yaml"), cfg!(feature = "yaml"), "{names}");
        assert_eq!(names.contains("json"), cfg!(feature = "json"), "{names}");
        assert_eq!(names.contains("sqlite"), cfg!(feature = "sqlite"), "{names}");
        assert_eq!(names.contains("postgres"), cfg!(feature = "postgres"), "{names}");
        assert!(text.contains("\"etcd\"") && text.contains(&names), "{text}");
        assert!(text.contains("config.yaml"), "{text}");
    }

    #[tokio::test]
    async fn memory_backends_of_one_directory_share_a_store() {
        let registry = builtin_registry();
        let mut config = Config::default();
        config.backend.kind = "memory".into();
        let a = registry.open(Path::new("/p/.checklist"), &config).await.unwrap();
        let b = registry.open(Path::new("/p/.checklist"), &config).await.unwrap();
        let c = registry.open(Path::new("/q/.checklist"), &config).await.unwrap();
        assert!(Arc::ptr_eq(&a.store, &b.store));
        assert!(!Arc::ptr_eq(&a.store, &c.store));
    }
}
