//! The Kubernetes source: watches the apiserver and hands what the cluster holds to the pipeline.
//!
//! ```text
//!   apiserver ──one kube-runtime watcher per kind (watch)──► Store: slim inputs per kind (store, convert)
//!     discovery of networking.istio.io, polled while an Istio CRD is missing ──► that kind's watcher (discovery)
//!   every change translation reads ──► ChangeSet (a unit per object; the kinds' status) ──► pipeline
//! ```
//!
//! Objects become the translator's input types as they arrive: a Pod is kept as its labels, IP, readiness and named
//! ports, never as the full object. Gateway, VirtualService, DestinationRule and ServiceEntry are read as dynamic
//! objects at whichever of `v1`, `v1beta1`, `v1alpha3` the cluster serves. A kind whose CRD is not installed is a
//! diagnostic, not an error: the rest is served, and the kind is picked up once its CRD appears. The pipeline
//! publishes nothing until every kind has been listed in full (a kind without CRD counts, empty).
//!
//! This source only reads: it writes nothing to the cluster (no status, no events).

pub(crate) mod convert;
mod discovery;
mod store;
mod watch;

pub(crate) use discovery::{istio_kind, not_installed, pick_version, served_versions};
pub(crate) use store::Slot;
pub(crate) use watch::{describe_client, error_chain};

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery_v1;
use kube::Client;
use kube::api::Api;
use tokio::task::JoinSet;
use tracing::info;
use translator::Kind;

use self::store::{Store, Units};
use crate::pipeline::{ChangeSet, Pipeline, SourceHandle};
use crate::shutdown::Shutdown;

/// Failures of the Kubernetes source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to configure a Kubernetes client (in-cluster service account or kubeconfig): {0}")]
    Config(#[source] kube::Error),
}

/// How the source watches.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Read only this namespace; every namespace if `None`.
    pub namespace: Option<String>,
    /// How often API discovery is polled while an Istio CRD is missing.
    pub discovery_interval: Duration,
    /// The longest wait between retries of a failed list or watch (retries start at 100 ms and double).
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { namespace: None, discovery_interval: Duration::from_secs(5), max_backoff: Duration::from_secs(5) }
    }
}

/// The kinds this source watches, in the order `/debug/inputs` shows them.
const KINDS: [Kind; 7] = [
    Kind::Gateway,
    Kind::VirtualService,
    Kind::DestinationRule,
    Kind::ServiceEntry,
    Kind::Service,
    Kind::EndpointSlice,
    Kind::Pod,
];

/// A client of the cluster `kube` finds as its users expect: in-cluster service account, else `$KUBECONFIG` or
/// `~/.kube/config`.
pub async fn default_client() -> Result<Client, Error> {
    Client::try_default().await.map_err(Error::Config)
}

pub struct KubernetesSource {
    client: Client,
    settings: Settings,
    handle: SourceHandle,
    store: Mutex<Store>,
}

impl KubernetesSource {
    /// A source reading through `client` for `pipeline`; nothing happens until [`KubernetesSource::run`].
    pub fn new(client: Client, settings: Settings, pipeline: &Arc<Pipeline>) -> Arc<KubernetesSource> {
        let handle = pipeline.register("kubernetes");
        Arc::new(KubernetesSource { client, settings, handle, store: Mutex::new(Store::default()) })
    }

    /// Watches the cluster until `shutdown`; the watchers end with it.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        info!(namespace = self.settings.namespace.as_deref().unwrap_or("<all>"), "watching Kubernetes");
        let mut tasks = JoinSet::new();
        tasks.spawn(Arc::clone(&self).watch(Kind::Service, self.api::<core::Service>(), convert::service));
        tasks.spawn(Arc::clone(&self).watch(
            Kind::EndpointSlice,
            self.api::<discovery_v1::EndpointSlice>(),
            convert::endpoint_slice,
        ));
        tasks.spawn(Arc::clone(&self).watch(Kind::Pod, self.api::<core::Pod>(), convert::pod));
        tasks.spawn(Arc::clone(&self).istio_kinds());
        shutdown.wait().await;
        info!("the Kubernetes source stops");
        tasks.shutdown().await;
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.settings.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }

    /// Whether every kind has been listed (or is known not to be installed): until then nothing is published.
    pub fn is_ready(&self) -> bool {
        self.store().ready()
    }

    /// What the source cannot read now: failed lists and watches (e.g. `403 Forbidden` for a kind its RBAC does not
    /// grant), CRDs not installed. `/debug/inputs` shows them once the source is ready; this says it before, too.
    pub fn problems(&self) -> Vec<String> {
        self.store().problems().iter().map(ToString::to_string).collect()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // Every update under this lock is complete or not started when a panic could strike.
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the store; when units changed or `status_changed`, hands them over with the source's status.
    /// Returns whether anything was handed over.
    fn update(&self, change: impl FnOnce(&mut Store) -> (Units, bool)) -> bool {
        let changes = {
            let mut store = self.store();
            let (units, status_changed) = change(&mut store);
            if units.is_empty() && !status_changed {
                return false;
            }
            let status = store.status(self.settings.namespace.clone());
            ChangeSet { units, status: Some(status), synced: store.ready() }
        };
        if !changes.synced {
            tracing::debug!("not every kind is listed yet: the pipeline holds the changes");
        }
        self.handle.submit(changes);
        true
    }
}

#[cfg(test)]
mod tests;
