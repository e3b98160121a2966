//! The pilotfish control plane: everything that does I/O, and the commands.
//!
//! ```text
//!   sources ──ChangeSet──► pipeline ──► snapshot cache (ProxyClass → Arc<Snapshot>) ──► ADS server ──► Envoy
//!   (directory, Kubernetes,  (last valid,                                             (one task per stream)
//!    embedded API)            translation)                                                 │
//!                               │                                                         ▼
//!                               └──► inputs view ◄── admin, metrics, CLI ──► proxy registry (sync state per
//!                                                    (they only read)                      proxy and type)
//! ```
//!
//! What does no I/O lives in [`offline`]: Envoy bootstraps, sidecar injection, capture rules, CRDs and `explain`.

#![forbid(unsafe_code)]

pub mod admin;
#[cfg(any(test, feature = "testing"))]
pub mod builders;
pub mod cache;
pub mod cli;
pub mod embed;
pub mod live;
pub mod metrics;
pub mod offline;
pub mod pipeline;
pub mod registry;
pub mod server;
pub mod shutdown;
pub mod snapshot;
pub mod sources;
pub mod sync;
pub mod webhook;

use std::sync::Arc;

pub use embed::{ControlPlane, EmbedError};
pub use offline::{bootstrap, capture, crds, explain, inject};

/// What the ADS server, the admin server, the pipeline and the sources share.
#[derive(Clone, Debug)]
pub struct State {
    pub cache: Arc<cache::SnapshotCache>,
    pub registry: Arc<registry::ProxyRegistry>,
    pub metrics: Arc<metrics::Metrics>,
    /// Validates, translates and publishes what the sources hand over; its view is `/debug/inputs`.
    pub pipeline: Arc<pipeline::Pipeline>,
}

impl Default for State {
    fn default() -> Self {
        let cache = Arc::<cache::SnapshotCache>::default();
        let metrics = Arc::<metrics::Metrics>::default();
        let pipeline = pipeline::Pipeline::new(Arc::clone(&cache), Arc::clone(&metrics));
        State { cache, registry: Arc::default(), metrics, pipeline }
    }
}
