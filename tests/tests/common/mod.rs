//! An in-process pilotfish for end-to-end tests, and the config they serve.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use api_protos::pb::envoy::config::route::v3::Route;
use controlplane::State;
use controlplane::bootstrap::{BootstrapOptions, render_yaml};
use controlplane::builders::{eds_cluster, http_listener, load_assignment, route_config};
use controlplane::pipeline::{ChangeSet, Commit, SourceHandle, UnitKey};
use controlplane::registry::ProxyStatus;
use controlplane::snapshot::{Snapshot, SnapshotBuilder};
use e2e::{Envoy, eventually};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use translator::Role;

pub const SYNC_TIMEOUT: Duration = Duration::from_secs(20);
pub const LISTENER: &str = "listener";
pub const ROUTES: &str = "routes";

/// pilotfish's ADS server, serving on loopback until stopped or dropped.
pub struct ControlPlane {
    pub addr: SocketAddr,
    pub state: State,
    /// The tests' configuration, one unit (`test.yaml`) of the pipeline.
    source: SourceHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ControlPlane {
    pub async fn start() -> Result<ControlPlane> {
        ControlPlane::start_on("127.0.0.1:0".parse()?, Snapshot::empty()).await
    }

    /// Starts on `addr` with `snapshot` already published (as a restarted server would have it).
    pub async fn start_on(addr: SocketAddr, snapshot: Snapshot) -> Result<ControlPlane> {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr()?;
        let state = State::default();
        state.cache.set_default(snapshot)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                let shutdown = async {
                    let _ = stopped.await;
                };
                if let Err(err) = controlplane::server::serve(listener, state, shutdown).await {
                    eprintln!("control plane failed: {err}");
                }
            }
        });
        let source = state.pipeline.register("test");
        Ok(ControlPlane { addr, state, source, stop: Some(stop), task: Some(task) })
    }

    pub fn publish(&self, snapshot: Snapshot) -> Result<()> {
        self.state.cache.set_default(snapshot)?;
        Ok(())
    }

    /// Stops serving and waits until every stream is closed.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task).await.context("control plane did not stop")??;
        }
        Ok(())
    }

    pub fn proxy(&self, node_id: &str) -> Option<ProxyStatus> {
        self.state.registry.list().into_iter().find(|p| p.node_id == node_id)
    }

    /// Waits until `node_id` is connected and has ACKed the current config of every type it asked for.
    pub async fn wait_synced(&self, node_id: &str) -> Result<ProxyStatus> {
        eventually(SYNC_TIMEOUT, &format!("{node_id} synced"), || async {
            let Some(proxy) = self.proxy(node_id) else { bail!("{node_id} is not connected") };
            let current = self.state.cache.get(&proxy.class).version();
            if proxy.snapshot_version != current {
                bail!("the stream has not seen the latest snapshot {current} yet");
            }
            let requested = proxy.sync.iter().filter(|s| s.requested).count();
            if requested < 4 || !proxy.is_synced() {
                bail!("not synced: {:?}", proxy.sync);
            }
            Ok(proxy)
        })
        .await
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// An Envoy gateway bootstrapped (by pilotfish's own bootstrap code) to fetch everything from `control_plane`.
pub async fn start_envoy(node_id: &str, control_plane: SocketAddr, delta: bool) -> Result<Envoy> {
    let options = BootstrapOptions { delta, ..BootstrapOptions::new(node_id, Role::Gateway) };
    start_envoy_with(options, control_plane).await
}

/// An Envoy bootstrapped with `options`, pointed at `control_plane`, admin on any free port.
pub async fn start_envoy_with(options: BootstrapOptions, control_plane: SocketAddr) -> Result<Envoy> {
    let options = BootstrapOptions { xds_address: control_plane.to_string(), admin_port: 0, ..options };
    let envoy = Envoy::start(&options.node_id, &render_yaml(&options)?).await?;
    envoy.wait_live(SYNC_TIMEOUT).await?;
    Ok(envoy)
}

/// Serves the translation of `yaml` (Istio and Kubernetes objects) through `control_plane`'s pipeline; input that
/// does not read or has errors fails the test.
pub fn publish_istio(control_plane: &ControlPlane, yaml: &str) -> Result<()> {
    let read = translator::read(yaml, "test.yaml");
    ensure!(read.diagnostics.is_empty(), "test input does not read: {:?}", read.diagnostics);
    let changes =
        ChangeSet { units: vec![(UnitKey::named("test.yaml"), Some(read))], synced: true, ..ChangeSet::default() };
    let publication = match control_plane.source.apply(changes, Commit::IfValid) {
        Ok(publication) => publication,
        Err(refused) => bail!("test input has errors: {:?}", refused.diagnostics),
    };
    ensure!(publication.failed.is_empty(), "translation refused: {:?}", publication.failed);
    Ok(())
}

/// A listener on `listen` with `routes`, and EDS clusters with their endpoints.
pub fn config(listen: SocketAddr, routes: Vec<Route>, clusters: &[(&str, &[SocketAddr])]) -> Snapshot {
    let mut builder = SnapshotBuilder::default();
    let add = |builder: &mut SnapshotBuilder| -> Result<()> {
        builder.add_message(&http_listener(LISTENER, listen, ROUTES))?;
        builder.add_message(&route_config(ROUTES, routes))?;
        for (name, endpoints) in clusters {
            builder.add_message(&eds_cluster(name))?;
            builder.add_message(&load_assignment(name, endpoints))?;
        }
        Ok(())
    };
    add(&mut builder).expect("test config is valid");
    builder.build()
}
