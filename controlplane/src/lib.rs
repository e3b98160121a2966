//! The pilotfish control plane: everything that does I/O.
//!
//! ```text
//!   sources ──► snapshot cache (ProxyClass → Arc<Snapshot>) ──► ADS server (one task per stream) ──► Envoy
//!                                                        └──► proxy registry (sync state per proxy and type)
//! ```

#![forbid(unsafe_code)]

pub mod bootstrap;
pub mod builders;
pub mod cache;
pub mod cli;
pub mod config_dir;
pub mod pipeline;
pub mod registry;
pub mod server;
pub mod snapshot;
