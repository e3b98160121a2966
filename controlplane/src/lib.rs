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
pub mod cli;
pub mod config_dir;
pub mod embed;
pub mod explain;
pub mod metrics;
pub mod pipeline;
pub mod registry;
pub mod server;
pub mod snapshot;

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
}
