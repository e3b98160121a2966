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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api_protos::Any;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use translator::{Diagnostic, ProxySelector, Role, Severity, Translator, World};

use crate::State;
use crate::bootstrap::BootstrapOptions;
use crate::registry::ProxyStatus;
use crate::snapshot::Resource;

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

/// A control plane serving xDS and its admin API on loopback, configured through method calls.
pub struct ControlPlane {
    state: State,
    xds: SocketAddr,
    admin: SocketAddr,
    sources: Mutex<Sources>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Named pieces of configuration, like files in a directory.
#[derive(Default)]
struct Sources {
    yaml: BTreeMap<String, String>,
    raw: BTreeMap<String, Vec<Any>>,
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
        let (stop, stopped) = watch::channel(false);
        let wait = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await.is_ok();
        };
        let ads = tokio::spawn({
            let (state, stopped) = (state.clone(), wait(stopped.clone()));
            async move {
                if let Err(err) = crate::server::serve(xds_listener, state, stopped).await {
                    tracing::error!(error = %err, "embedded xDS server failed");
                }
            }
        });
        let admin_task = tokio::spawn({
            let (state, stopped) = (state.clone(), wait(stopped));
            async move {
                if let Err(err) = crate::admin::serve(admin_listener, state, stopped).await {
                    tracing::error!(error = %err, "embedded admin server failed");
                }
            }
        });
        let control_plane =
            ControlPlane { state, xds, admin, sources: Mutex::default(), stop, tasks: vec![ads, admin_task] };
        control_plane.publish()?;
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
        self.change(|sources| {
            sources.yaml.insert(name.to_owned(), yaml.to_owned());
        })
    }

    /// Sets the raw Envoy resources of piece `name` and publishes the result.
    pub fn apply_resources(&self, name: &str, resources: Vec<Any>) -> Result<Vec<Diagnostic>, EmbedError> {
        self.change(|sources| {
            sources.raw.insert(name.to_owned(), resources);
        })
    }

    /// Removes piece `name` (YAML or raw) and publishes the result.
    pub fn remove(&self, name: &str) -> Result<Vec<Diagnostic>, EmbedError> {
        self.change(|sources| {
            sources.yaml.remove(name);
            sources.raw.remove(name);
        })
    }

    fn change(&self, edit: impl FnOnce(&mut Sources)) -> Result<Vec<Diagnostic>, EmbedError> {
        let mut sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut edited = Sources { yaml: sources.yaml.clone(), raw: sources.raw.clone() };
        edit(&mut edited);
        let diagnostics = Self::build(&self.state, &edited)?;
        *sources = edited;
        Ok(diagnostics)
    }

    fn publish(&self) -> Result<Vec<Diagnostic>, EmbedError> {
        let sources = self.sources.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Self::build(&self.state, &sources)
    }

    /// Translates everything and publishes it; errors refuse the whole change (the last good config stays).
    fn build(state: &State, sources: &Sources) -> Result<Vec<Diagnostic>, EmbedError> {
        let mut inputs = Vec::new();
        let mut diagnostics = Vec::new();
        let mut raw = Vec::new();
        for (name, yaml) in &sources.yaml {
            let (read, problems) = translator::read_yaml(yaml, name);
            inputs.extend(read);
            diagnostics.extend(problems);
            let mut loaded = crate::config_dir::Loaded::default();
            crate::config_dir::read_documents(std::path::Path::new(name), yaml, &mut loaded);
            for problem in &loaded.diagnostics {
                diagnostics.push(Diagnostic::error(problem.to_string()));
            }
            raw.extend(loaded.resources.into_iter().map(|(origin, any)| (origin.proxies, any)));
        }
        raw.extend(sources.raw.values().flatten().map(|any| (ProxySelector::all(), any.clone())));
        // Raw resources must read on their own, whatever else is served.
        for (_, resource) in &raw {
            Resource::from_any(resource)?;
        }
        let (world, duplicates) = World::new(inputs);
        diagnostics.extend(duplicates);
        let translator = Arc::new(Translator::new(&world));
        diagnostics.extend(translator.diagnostics().iter().cloned());
        let errors: Vec<Diagnostic> = diagnostics.iter().filter(|d| d.severity == Severity::Error).cloned().collect();
        if !errors.is_empty() {
            return Err(EmbedError::Invalid(errors));
        }
        let builder = crate::pipeline::targeted_builder(translator, Arc::new(raw), Arc::clone(&state.metrics));
        let rebuild = state.cache.set_builder(builder);
        if let Some((_, err)) = rebuild.failed.into_iter().next() {
            return Err(EmbedError::Raw(err));
        }
        crate::admin::publish_inputs(state, serde_json::json!({ "source": "embedded", "objects": world.len() }));
        Ok(diagnostics)
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
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}
