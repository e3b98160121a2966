//! Pure translation from Istio's traffic API and the service registry to Envoy resources.
//!
//! ```text
//!   Envoy node (id, metadata) ──► ProxyClass ──┐
//!                                               ├──► translate ──► Envoy resources + diagnostics
//!   World of inputs (Istio + registry) ─────────┘
//! ```
//!
//! This crate never does I/O: no tokio, no tonic, no Kubernetes client. It can be read, tested and fuzzed alone.

#![forbid(unsafe_code)]

pub mod proxy;

pub use proxy::{ProxyClass, Role};
