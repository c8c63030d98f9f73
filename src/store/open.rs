//! Opening a store: one function from the engine chosen to the store, so
//! that nothing above the store names an engine. Tests that need another
//! engine (one whose syncs fail, say) build a backend and pass it to
//! [`Store::with_backend`].

use std::path::PathBuf;
use std::sync::Arc;

use super::{etcd, memory, sled, Store};

/// Which engine keeps the records.
#[derive(Debug, Clone)]
pub enum Engine {
    /// In memory only (`serve --ephemeral`): nothing outlives the process.
    Memory,
    /// A sled database in `dir` (created if missing), caching up to
    /// `cache_bytes` in memory.
    Sled { dir: PathBuf, cache_bytes: u64 },
    /// An etcd cluster, shared by every instance that opens it.
    Etcd(etcd::EtcdConfig),
}

impl Engine {
    /// sled in `dir`, with the default cache.
    pub fn sled(dir: impl Into<PathBuf>) -> Engine {
        Engine::Sled {
            dir: dir.into(),
            cache_bytes: sled::DEFAULT_CACHE_BYTES,
        }
    }
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "data directory {0} is in use by another aliasd process (its lock is held); stop that \
         process or choose another --data-dir"
    )]
    InUse(PathBuf),
    #[error("cannot open data directory {path}: {message}")]
    Directory { path: PathBuf, message: String },
    #[error("cannot sync data directory {path} to disk: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot prepare the store: {0}")]
    Prepare(String),
}

impl Store {
    /// Opens the store `engine` keeps (a sled directory is created if
    /// missing, and fails with [`OpenError::InUse`] while another process
    /// holds it; etcd fails when it cannot be reached).
    pub fn open(engine: &Engine) -> Result<Arc<Store>, OpenError> {
        let backend: Arc<dyn super::backend::Backend> = match engine {
            Engine::Memory => Arc::new(memory::MemoryBackend::new()),
            Engine::Sled { dir, cache_bytes } => Arc::new(sled::SledBackend::open_with_cache(
                dir,
                sled::sync::file_syncer(),
                *cache_bytes,
            )?),
            Engine::Etcd(config) => Arc::new(
                etcd::EtcdBackend::connect(config).map_err(|e| OpenError::Prepare(e.message))?,
            ),
        };
        Self::with_backend(backend).map_err(|e| OpenError::Prepare(e.message))
    }
}
