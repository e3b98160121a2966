//! The pilotfish control plane: everything that does I/O.
//!
//! ```text
//!   sources ──► snapshot cache (ProxyClass → Arc<Snapshot>) ──► ADS server (one task per stream) ──► Envoy
//!                                                        └──► proxy registry (sync state per proxy and type)
//! ```

#![forbid(unsafe_code)]

pub mod admin;
pub mod bootstrap;
pub mod builders;
pub mod cache;
pub mod capture;
pub mod cli;
pub mod config_dir;
pub mod crds;
pub mod embed;
pub mod explain;
pub mod inject;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod server;
pub mod snapshot;
pub mod sources;
pub mod webhook;

use std::sync::Arc;

pub use embed::{ControlPlane, EmbedError};

/// What the ADS server, the admin server and the sources share.
#[derive(Clone, Debug, Default)]
pub struct State {
    pub cache: Arc<cache::SnapshotCache>,
    pub registry: Arc<registry::ProxyRegistry>,
    pub metrics: Arc<metrics::Metrics>,
    /// What the sources last read (`/debug/inputs`); set once the first full configuration is built.
    pub inputs: Arc<std::sync::RwLock<Option<Arc<serde_json::Value>>>>,
    /// Lets readers of sync state make the source catch up first (see [`Refresh`]).
    pub refresh: Refresh,
}

/// A source's "catch up now": before `/debug/syncz` answers, a directory source checks for changes it has not
/// read yet, so `pilotfish wait` right after an edit waits for that edit rather than reporting the previous
/// configuration as synced.
#[derive(Clone, Default)]
pub struct Refresh(Arc<std::sync::RwLock<Option<RefreshFn>>>);

/// What a source runs to catch up.
pub type RefreshFn = Arc<dyn Fn() + Send + Sync>;

impl Refresh {
    pub fn set(&self, refresh: RefreshFn) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(refresh);
        }
    }

    pub fn run(&self) {
        let refresh = self.0.read().ok().and_then(|slot| slot.clone());
        if let Some(refresh) = refresh {
            refresh();
        }
    }
}

impl std::fmt::Debug for Refresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refresh")
    }
}
