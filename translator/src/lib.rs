//! Pure translation from Istio's traffic API and the service registry to Envoy resources.
//!
//! ```text
//!   YAML text ──read_yaml──► Inputs ──World::new──► World ──┐
//!                                                          ├──► translate ──► Envoy resources + diagnostics
//!   Envoy node (id, metadata) ─────────────► ProxyClass ───┘
//! ```
//!
//! This crate never does I/O: no tokio, no tonic, no Kubernetes client. It can be read, tested and fuzzed alone.

#![forbid(unsafe_code)]

pub mod analyze;
pub mod diagnostics;
pub mod duration;
pub mod input;
pub mod model;
pub mod proxy;
pub mod translate;
pub mod validate;

pub use diagnostics::{Diagnostic, ObjectRef, Severity};
pub use input::{Input, Kind, World, read_yaml};
pub use proxy::{ProxyClass, ProxySelector, Role};
pub use translate::{Translation, Translator, translate};
