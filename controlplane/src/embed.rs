//! pilotfish inside another program, most often a test suite that drives a real Envoy.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use controlplane::ControlPlane;
//!
//! let control_plane = ControlPlane::start().await?;
//! control_plane.apply("reviews", r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: reviews}
//! spec:
//!   hosts: [reviews.local]
//!   ports: [{number: 9080, name: http, protocol: HTTP}]
//!   resolution: STATIC
//!   endpoints: [{address: 127.0.0.1, ports: {http: 9101}}]
//! "#)?;
//! // Start Envoy with `control_plane.bootstrap("app", Role::Sidecar)`, then:
//! control_plane.wait_synced(Some("app"), Duration::from_secs(10)).await?;
//! # Ok(()) }
//! ```
//!
//! Each [`ControlPlane`] owns its listeners (on ephemeral loopback ports), cache and registry: several in one process
//! do not see each other.

use std::net::SocketAddr;
use std::time::Duration;

use api_protos::Any;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use translator::input::{EnvoyResource, Position};
use translator::{Diagnostic, ProxySelector, Read, Role, Source};

use crate::State;
use crate::bootstrap::BootstrapOptions;
use crate::pipeline::{ChangeSet, Commit, Publication, SourceHandle, UnitKey};
use crate::registry::ProxyStatus;
use crate::shutdown::{self, Trigger};

/// Failures of the embedded control plane.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("failed to bind {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("failed to apply configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Diagnostic>),
    #[error("failed to read raw Envoy resource: {0}")]
    Raw(#[from] crate::snapshot::SnapshotError),
    #[error("proxy {node} rejected the {xds_type} configuration: {message}")]
    Rejected { node: String, xds_type: &'static str, message: String },
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { timeout: Duration, what: String },
}

/// A control plane serving xDS and its admin API on loopback, configured through method calls: named pieces of
/// configuration, like files in a directory, each a unit of the pipeline. A piece with an error is refused whole
/// and the last configuration stays.
pub struct ControlPlane {
    state: State,
    xds: SocketAddr,
    admin: SocketAddr,
    source: SourceHandle,
    stop: Trigger,
    tasks: Vec<JoinHandle<()>>,
}

impl ControlPlane {
    /// Starts serving ADS and the admin API on ephemeral ports of 127.0.0.1, with no configuration.
    pub async fn start() -> Result<ControlPlane, EmbedError> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        ControlPlane::start_on(loopback, loopback).await
    }

    /// Starts on the given addresses (port 0: any free port).
    pub async fn start_on(xds: SocketAddr, admin: SocketAddr) -> Result<ControlPlane, EmbedError> {
        let xds_listener = TcpListener::bind(xds).await.map_err(|e| EmbedError::Bind(xds, e))?;
        let admin_listener = TcpListener::bind(admin).await.map_err(|e| EmbedError::Bind(admin, e))?;
        let xds = xds_listener.local_addr().map_err(|e| EmbedError::Bind(xds, e))?;
        let admin = admin_listener.local_addr().map_err(|e| EmbedError::Bind(admin, e))?;
        let state = State::default();
        let (stop, stopped) = shutdown::channel();
        let ads = tokio::spawn({
            let (state, stopped) = (state.clone(), stopped.clone());
            async move {
                if let Err(err) = crate::server::serve(xds_listener, state, async move { stopped.wait().await }).await {
                    tracing::error!(error = %err, "embedded xDS server failed");
                }
            }
        });
        let admin_task = tokio::spawn({
            let state = state.clone();
            async move {
                if let Err(err) = crate::admin::serve(admin_listener, state, async move { stopped.wait().await }).await
                {
                    tracing::error!(error = %err, "embedded admin server failed");
                }
            }
        });
        let source = state.pipeline.register("embedded");
        let control_plane = ControlPlane { state, xds, admin, source, stop, tasks: vec![ads, admin_task] };
        control_plane.change(ChangeSet { synced: true, ..ChangeSet::default() })?;
        Ok(control_plane)
    }

    pub fn xds_address(&self) -> SocketAddr {
        self.xds
    }

    pub fn admin_address(&self) -> SocketAddr {
        self.admin
    }

    /// The shared state (cache, registry, metrics), for callers that want to look deeper.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Bootstrap options for an Envoy that connects to this control plane (admin on any free port).
    pub fn bootstrap(&self, node_id: &str, role: Role) -> BootstrapOptions {
        BootstrapOptions { xds_address: self.xds.to_string(), admin_port: 0, ..BootstrapOptions::new(node_id, role) }
    }

    /// Sets the configuration piece `name` (Istio and Kubernetes objects, and raw Envoy resources with `@type`, as
    /// YAML or JSON), replacing an earlier piece of that name, and publishes the result. Errors in the input are
    /// returned and nothing is published; warnings are returned with the result.
    pub fn apply(&self, name: &str, yaml: &str) -> Result<Vec<Diagnostic>, EmbedError> {
        self.set(name, translator::read(yaml, name))
    }

    /// Sets the raw Envoy resources of piece `name` and publishes the result.
    pub fn apply_resources(&self, name: &str, resources: Vec<Any>) -> Result<Vec<Diagnostic>, EmbedError> {
        let source = Source::at(name, Position { line: 1, column: 1 });
        let envoy = resources
            .into_iter()
            .map(|resource| EnvoyResource { resource, proxies: ProxySelector::all(), source: source.clone() })
            .collect();
        self.set(name, Read { envoy, complete: true, ..Read::default() })
    }

    /// Removes piece `name` (YAML or raw) and publishes the result.
    pub fn remove(&self, name: &str) -> Result<Vec<Diagnostic>, EmbedError> {
        self.change(ChangeSet { units: vec![(UnitKey::named(name), None)], ..ChangeSet::default() })
    }

    fn set(&self, name: &str, read: Read) -> Result<Vec<Diagnostic>, EmbedError> {
        self.change(ChangeSet { units: vec![(UnitKey::named(name), Some(read))], ..ChangeSet::default() })
    }

    /// Applies a change at once; errors refuse the whole change (the last good config stays).
    fn change(&self, changes: ChangeSet) -> Result<Vec<Diagnostic>, EmbedError> {
        match self.source.apply(changes, Commit::IfValid) {
            Ok(publication) => Ok(publication.diagnostics),
            Err(Publication { failed, diagnostics, .. }) => match failed.into_iter().next() {
                Some((_, err)) => Err(EmbedError::Raw(err)),
                None => Err(EmbedError::Invalid(diagnostics.into_iter().filter(Diagnostic::rejects).collect())),
            },
        }
    }

    /// The sync state of a connected proxy.
    pub fn proxy(&self, node_id: &str) -> Option<ProxyStatus> {
        self.state.registry.list().into_iter().find(|p| p.node_id == node_id)
    }

    /// Every connected proxy.
    pub fn proxies(&self) -> Vec<ProxyStatus> {
        self.state.registry.list()
    }

    /// Waits until `node_id` (or, with None, every connected proxy, at least one) has ACKed the current
    /// configuration of every type it asked for. A NACK of the current configuration ends the wait with
    /// [`EmbedError::Rejected`] and Envoy's message.
    pub async fn wait_synced(&self, node_id: Option<&str>, timeout: Duration) -> Result<(), EmbedError> {
        let mut changes = self.state.registry.subscribe();
        let what = node_id.map_or_else(|| "every proxy to sync".to_owned(), |id| format!("proxy {id} to sync"));
        let check = async {
            loop {
                changes.borrow_and_update();
                if self.synced(node_id)? {
                    return Ok(());
                }
                // Wakes on any proxy's progress; a new snapshot always causes some.
                if changes.changed().await.is_err() {
                    return Err(EmbedError::Timeout { timeout, what: what.clone() });
                }
            }
        };
        tokio::time::timeout(timeout, check).await.map_err(|_| EmbedError::Timeout { timeout, what: what.clone() })?
    }

    fn synced(&self, node_id: Option<&str>) -> Result<bool, EmbedError> {
        let proxies: Vec<ProxyStatus> =
            self.proxies().into_iter().filter(|p| node_id.is_none_or(|id| p.node_id == id)).collect();
        if proxies.is_empty() {
            return Ok(false);
        }
        for proxy in &proxies {
            // A NACK counts only once the stream works from the latest snapshot: until then it may be an old one.
            if proxy.snapshot_version != self.state.cache.get(&proxy.class).version() {
                continue;
            }
            for sync in &proxy.sync {
                if let Some(nack) = &sync.nack {
                    return Err(EmbedError::Rejected {
                        node: proxy.node_id.clone(),
                        xds_type: sync.kind.short_name(),
                        message: nack.message.clone(),
                    });
                }
            }
        }
        Ok(proxies.iter().all(|p| {
            let requested = p.sync.iter().filter(|s| s.requested).count();
            requested > 0 && p.is_synced() && p.snapshot_version == self.state.cache.get(&p.class).version()
        }))
    }

    /// Stops serving; open streams are closed.
    pub async fn shutdown(mut self) {
        self.stop.trigger();
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop.trigger();
        for task in &self.tasks {
            task.abort();
        }
    }
}
