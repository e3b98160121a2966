//! Pure translation from Istio's traffic API and the service registry to Envoy resources.
//!
//! ```text
//!   YAML text ──read──► Inputs (+ raw Envoy resources) ──Translator::prepare──► Translator ──┐
//!   (or a watched object ──istio_input──► Input)         (World, last valid versions)       ├──► translate ──►
//!                                                                                           │   Envoy resources
//!   Envoy node (id, metadata) ─────────────────────────────────────────► ProxyClass ─────────┘   + diagnostics
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
pub use input::{Input, Kind, Read, Source, World, istio_input, read, read_yaml};
pub use proxy::{ProxyClass, ProxySelector, Role};
pub use translate::{LastValid, Translation, Translator, translate};
