//! Registering and opening backends: `backend.type` in config.yaml names a factory.
//!
//! This lives in core so that a backend crate depends on `checklist-core` alone (and on
//! `checklist-conformance` for its tests): it implements the store planes and a
//! [`LockProvider`], wraps them in a [`BackendFactory`], and whoever assembles the
//! application registers it by name. The built-in backends' factories are in
//! `checklist-backends`, which fills a registry with them.
//!
//! ```
//! use checklist_core::{Backend, BackendRegistry, Config, Error, OpenContext, Result};
//!
//! let mut registry = BackendRegistry::empty();
//! // A real factory builds its store and lock provider from `ctx` (the store
//! // directory, config.yaml's `backend.options`); this one refuses, to show the shape.
//! registry.register("mine", |ctx: &OpenContext<'_>| -> Result<Backend> {
//!     Err(Error::Unsupported {
//!         operation: "opening a store".into(),
//!         backend: "mine".into(),
//!         location: ctx.dir.display().to_string(),
//!     })
//! });
//! assert_eq!(registry.names(), ["mine"]);
//!
//! let mut config = Config::default();
//! config.backend.kind = "mine".into();
//! let opened = tokio::runtime::Builder::new_current_thread()
//!     .build()?
//!     .block_on(registry.open(".checklist".as_ref(), &config));
//! assert!(matches!(opened, Err(Error::Unsupported { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Config;
use crate::error::{BackendOrigin, Error, Result};
use crate::lock::LockProvider;
use crate::store::StateStore;

/// What a factory gets to open a backend.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct OpenContext<'a> {
    /// The project's store directory (`.checklist/`), where config.yaml lives. A file
    /// backend keeps its files here; a database backend may keep nothing here.
    pub dir: &'a Path,
    /// The loaded configuration (`backend.options` carries the backend's own options).
    pub config: &'a Config,
}

impl<'a> OpenContext<'a> {
    /// The context of the store directory `dir` configured by `config`.
    pub fn new(dir: &'a Path, config: &'a Config) -> Self {
        Self { dir, config }
    }
}

/// An opened backend: its store and the lock provider guarding it.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The state store.
    pub store: Arc<dyn StateStore>,
    /// The lock provider guarding it.
    pub locks: Arc<dyn LockProvider>,
}

/// Opens a backend; registered under a name in a [`BackendRegistry`]. Any
/// `Fn(&OpenContext) -> Result<Backend>` is one; a backend that must connect to a
/// server before it can say whether it opened implements [`open`](Self::open) itself.
#[async_trait]
pub trait BackendFactory: Send + Sync + 'static {
    /// Opens the backend for the store in `ctx`.
    ///
    /// # Errors
    /// Whatever prevents opening it, naming the store: its options are wrong
    /// ([`Error::InvalidConfig`]), its storage cannot be reached ([`Error::Backend`],
    /// [`Error::Io`]).
    async fn open(&self, ctx: &OpenContext<'_>) -> Result<Backend>;
}

#[async_trait]
impl<F> BackendFactory for F
where
    F: Fn(&OpenContext<'_>) -> Result<Backend> + Send + Sync + 'static,
{
    async fn open(&self, ctx: &OpenContext<'_>) -> Result<Backend> {
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
    pub async fn open(&self, dir: &Path, config: &Config) -> Result<Backend> {
        let name = &config.backend.kind;
        let factory = self.factories.get(name).ok_or_else(|| Error::UnknownBackend {
            name: name.clone(),
            origin: BackendOrigin::ConfigFile(dir.join("config.yaml")),
            registered: self.names(),
        })?;
        factory.open(&OpenContext::new(dir, config)).await
    }
}
