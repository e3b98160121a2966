//! The Kubernetes source: watches the apiserver and publishes the translation of what the cluster holds.
//!
//! ```text
//!   apiserver ──one kube-runtime watcher per kind──► Store: slim inputs per kind ──changed──┐
//!     (list, then watch; a lost connection resumes from the last resourceVersion seen,      │
//!      with backoff; 410 Gone → list again, the new list replacing the kind as a whole)      ▼
//!   discovery of networking.istio.io, polled while an Istio CRD is missing ──► starts that kind's watcher
//!                                         debounce (quiet period, max delay) ──► World ──► cache, /debug/inputs
//! ```
//!
//! Objects become the translator's input types as they arrive: a Pod is kept as its labels, IP, readiness and named
//! ports, never as the full object. Gateway, VirtualService, DestinationRule and ServiceEntry are read as dynamic
//! objects at whichever of `v1`, `v1beta1`, `v1alpha3` the cluster serves. A kind whose CRD is not installed is a
//! diagnostic (log and `/debug/inputs`), not an error: the rest is served, and the kind is picked up once its CRD
//! appears. `/readyz` turns ready once every kind has been listed in full (a kind without CRD counts, empty).
//!
//! This source only reads: it writes nothing to the cluster (no status, no events).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::discovery::ApiGroup;
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use translator::input::registry::{EndpointSlice, Pod, Service};
use translator::input::{Meta, Object};
use translator::{Input, Kind, World};

use super::directory::{Debounce, LastValid};
use crate::State;
use crate::crds::{GROUP, ISTIO_KINDS, IstioKind, VERSIONS};
use crate::pipeline::{self, log_diagnostic};

/// Failures of the Kubernetes source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to configure a Kubernetes client (in-cluster service account or kubeconfig): {0}")]
    Config(#[source] kube::Error),
}

/// How the source watches and publishes.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Read only this namespace; every namespace if `None`.
    pub namespace: Option<String>,
    pub debounce: Debounce,
    /// How often API discovery is polled while an Istio CRD is missing.
    pub discovery_interval: Duration,
    /// The longest wait between retries of a failed list or watch (retries start at 100 ms and double).
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            debounce: Debounce::default(),
            discovery_interval: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// How often an unreachable apiserver is probed while a watch waits to retry.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

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
    state: State,
    store: Mutex<Store>,
    last_valid: LastValid,
    /// Translator diagnostics of the last publication, to log only the new ones.
    last_diagnostics: Mutex<BTreeSet<String>>,
    /// What was published last, for the endpoint fast path.
    published: Mutex<Option<pipeline::Published>>,
    changes: mpsc::UnboundedSender<()>,
    changes_rx: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
}

impl KubernetesSource {
    /// A source reading through `client`; nothing happens until [`KubernetesSource::run`].
    pub fn new(client: Client, settings: Settings, state: State) -> Arc<KubernetesSource> {
        let (changes, changes_rx) = mpsc::unbounded_channel();
        Arc::new(KubernetesSource {
            client,
            settings,
            state,
            store: Mutex::new(Store::default()),
            last_valid: LastValid::default(),
            last_diagnostics: Mutex::default(),
            published: Mutex::default(),
            changes,
            changes_rx: Mutex::new(Some(changes_rx)),
        })
    }

    /// Watches the cluster and publishes what it holds until the returned future is dropped (its tasks end with
    /// it). Runs once: a second call returns at once.
    pub async fn run(self: Arc<Self>) {
        let Some(changes) = lock(&self.changes_rx).take() else {
            warn!("the Kubernetes source is already running");
            return;
        };
        info!(namespace = self.settings.namespace.as_deref().unwrap_or("<all>"), "watching Kubernetes");
        let mut tasks = JoinSet::new();
        tasks.spawn(Arc::clone(&self).watch(Kind::Service, self.api::<core::Service>(), |s: core::Service| {
            let meta = meta(&s.metadata);
            Ok(Input::Service(Arc::new(Object { meta, spec: Service::from(s.spec.unwrap_or_default()) })))
        }));
        tasks.spawn(Arc::clone(&self).watch(
            Kind::EndpointSlice,
            self.api::<discovery::EndpointSlice>(),
            |s: discovery::EndpointSlice| {
                let meta = meta(&s.metadata);
                Ok(Input::EndpointSlice(Arc::new(Object { meta, spec: EndpointSlice::from_k8s(s) })))
            },
        ));
        tasks.spawn(Arc::clone(&self).watch(Kind::Pod, self.api::<core::Pod>(), |p: core::Pod| {
            let meta = meta(&p.metadata);
            Ok(Input::Pod(Arc::new(Object { meta, spec: Pod::from_k8s(p) })))
        }));
        tasks.spawn(Arc::clone(&self).istio_kinds());
        self.publish_on_change(changes).await;
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.settings.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }

    /// Whether every kind has been listed (or is known not to be installed): what `/readyz` waits for.
    pub fn is_ready(&self) -> bool {
        self.store().ready()
    }

    /// What the source cannot read now: failed lists and watches (e.g. `403 Forbidden` for a kind its RBAC does not
    /// grant), CRDs not installed, objects that do not read. Shown in `/debug/inputs` once the source is ready; this
    /// says it before, too.
    pub fn problems(&self) -> Vec<String> {
        self.store().problems()
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn changed(&self) {
        let _ = self.changes.send(());
    }

    /// Runs one kind's watcher: list, watch, and list again whenever the watch cannot resume. Returns when the
    /// apiserver answers 404 for an Istio kind (its CRD removed, or the version watched no longer served), for
    /// discovery to decide what to watch next.
    async fn watch<K, F>(self: Arc<Self>, kind: Kind, api: Api<K>, convert: F)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        F: Fn(K) -> Result<Input, String> + Send + 'static,
    {
        'restart: loop {
            let config = watcher::Config::default();
            let mut events = std::pin::pin!(
                watcher::watcher(api.clone(), config).backoff(RetryBackoff::new(self.settings.max_backoff))
            );
            let mut failing = false;
            // While the apiserver cannot be reached, a cheap list tells when it can again: a watch that resumes
            // from where it was says nothing until the kind changes.
            let mut probe = tokio::time::interval(PROBE_INTERVAL);
            probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    _ = probe.tick(), if failing => {
                        if api.list_metadata(&ListParams::default().limit(1)).await.is_ok() {
                            info!(%kind, "the apiserver answers again");
                            failing = false;
                            if self.store().kind(kind).set_error(None) {
                                self.changed();
                            }
                        }
                        continue;
                    }
                };
                let Some(event) = event else { break };
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        match classify(&err) {
                            Failure::Expired => {
                                // The history the watch would resume from is gone. A new watcher lists at once
                                // (this one would first wait out its backoff); the list replaces the kind whole.
                                warn!(%kind, error = %describe(&err), "watch expired (410 Gone); relisting");
                                continue 'restart;
                            }
                            Failure::NotServed if is_istio(kind) => {
                                // A CRD removed (its objects were deleted first, and those deletions seen), or a
                                // version no longer served: discovery decides what to watch next.
                                warn!(%kind, error = %describe(&err), "the apiserver does not serve this kind now");
                                return;
                            }
                            Failure::NotServed | Failure::Other | Failure::Unreachable => {
                                let error = describe(&err);
                                let logged = self.store().kind(kind).error.is_some();
                                if logged {
                                    debug!(%kind, %error, "still failing to watch");
                                } else {
                                    warn!(%kind, %error, "failed to watch; retrying with backoff");
                                }
                                failing = matches!(classify(&err), Failure::Unreachable);
                                if self.store().kind(kind).set_error(Some(error)) {
                                    self.changed();
                                }
                            }
                        }
                        continue;
                    }
                };
                if failing || self.store().kind(kind).error.is_some() {
                    info!(%kind, "watching again");
                    failing = false;
                }
                let changed = {
                    let mut store = self.store();
                    let entry = store.kind(kind);
                    let mut changed = entry.set_error(None);
                    changed |= match event {
                        Event::Init => {
                            debug!(%kind, "listing");
                            entry.begin_list();
                            false
                        }
                        Event::InitApply(object) => {
                            let key = key(&object);
                            entry.apply(key, convert(object));
                            false
                        }
                        Event::InitDone => {
                            entry.end_list();
                            info!(%kind, objects = entry.objects.len(), lists = entry.lists, "listed");
                            true
                        }
                        Event::Apply(object) => {
                            let key = key(&object);
                            entry.apply(key, convert(object))
                        }
                        Event::Delete(object) => entry.delete(&key(&object)),
                    };
                    changed
                };
                if changed {
                    self.changed();
                }
            }
            // The watcher's stream does not end on its own; if it did, start over.
            warn!(%kind, "the watch ended; starting over");
        }
    }

    /// Finds which version of each Istio kind the cluster serves and runs its watcher; polls discovery while a
    /// kind's CRD is missing, and again when a watcher ends because the apiserver stopped serving its kind.
    async fn istio_kinds(self: Arc<Self>) {
        let mut watchers: JoinSet<Kind> = JoinSet::new();
        let mut active = BTreeSet::new();
        // Kinds that were served and that discovery has missed once: an apiserver that just (re)started serves
        // CRDs only once it has read them, so their objects are dropped only when discovery misses them twice.
        let mut missed_once = BTreeSet::new();
        let mut discovery_failing = false;
        loop {
            let missing: Vec<&IstioKind> =
                ISTIO_KINDS.iter().filter(|k| !active.contains(&istio_kind(k.kind))).collect();
            if !missing.is_empty() {
                match served_versions(&self.client).await {
                    Ok(group) => {
                        if discovery_failing {
                            info!("API discovery works again");
                            discovery_failing = false;
                        }
                        for istio in missing {
                            let kind = istio_kind(istio.kind);
                            match group.as_ref().and_then(|group| pick_version(group, istio.kind)) {
                                Some(resource) => {
                                    missed_once.remove(&kind);
                                    if self.store().kind(kind).set_installed(Some(resource.api_version.clone())) {
                                        self.changed();
                                    }
                                    info!(%kind, api_version = %resource.api_version, "watching");
                                    active.insert(kind);
                                    watchers.spawn(Arc::clone(&self).watch_istio(kind, resource));
                                }
                                None => {
                                    let was_served = matches!(self.store().kind(kind).installed, Some(Some(_)));
                                    if was_served && missed_once.insert(kind) {
                                        continue;
                                    }
                                    missed_once.remove(&kind);
                                    let changed = {
                                        let mut store = self.store();
                                        let entry = store.kind(kind);
                                        if was_served {
                                            entry.forget();
                                            true
                                        } else {
                                            entry.set_installed(None)
                                        }
                                    };
                                    if changed {
                                        warn!(%kind, "{}", not_installed(istio));
                                        self.changed();
                                    }
                                }
                            }
                        }
                    }
                    Err(err) => {
                        if discovery_failing {
                            debug!(error = %describe_client(&err), "API discovery still failing");
                        } else {
                            warn!(error = %describe_client(&err), "API discovery failed; retrying");
                            discovery_failing = true;
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.discovery_interval) => {}
                Some(Ok(kind)) = watchers.join_next() => {
                    active.remove(&kind);
                    // Not at once: the apiserver may be between two states (a CRD being removed or read).
                    tokio::time::sleep(self.settings.discovery_interval.min(Duration::from_secs(1))).await;
                }
            }
        }
    }

    /// Watches one Istio kind at the version discovery found; returns the kind when the apiserver stops serving it.
    async fn watch_istio(self: Arc<Self>, kind: Kind, resource: ApiResource) -> Kind {
        let api: Api<DynamicObject> = match &self.settings.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        self.watch(kind, api, move |object: DynamicObject| istio_input(&resource, object)).await;
        kind
    }

    /// Publishes after every burst of changes, once every kind has been listed.
    async fn publish_on_change(self: Arc<Self>, mut changes: mpsc::UnboundedReceiver<()>) {
        while changes.recv().await.is_some() {
            let burst = self.settings.debounce.settle(&mut changes).await;
            self.state.metrics.debounce.observe(burst.as_secs_f64());
            if !self.store().ready() {
                continue;
            }
            let source = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || source.publish()).await;
        }
    }

    /// Translates what the store holds now and publishes it to the cache and `/debug/inputs`.
    pub fn publish(&self) {
        let started = Instant::now();
        self.state.metrics.config_reloads.inc();
        let (inputs, kinds, mut diagnostics) = {
            let store = self.store();
            (store.inputs(), store.view(), store.problems())
        };
        let objects: Vec<Value> = inputs
            .iter()
            .map(|input| {
                let reference = input.reference();
                json!({
                    "kind": reference.kind.to_string(),
                    "namespace": reference.namespace,
                    "name": reference.name,
                    "source": "kubernetes",
                })
            })
            .collect();
        let (inputs, kept) = self.last_valid.keep(inputs);
        diagnostics.extend(kept);
        let (world, duplicates) = World::new(inputs);
        let mut published = lock(&self.published);
        let translator = Arc::new(pipeline::translator(&world, published.as_ref()));
        let mut seen = BTreeSet::new();
        {
            let mut last = lock(&self.last_diagnostics);
            for diagnostic in duplicates.iter().chain(translator.diagnostics()) {
                let text = diagnostic.to_string();
                if !last.contains(&text) {
                    log_diagnostic(diagnostic, None);
                }
                diagnostics.push(text.clone());
                seen.insert(text);
            }
            *last = seen;
        }
        let rebuild = {
            let (rebuild, now) = pipeline::publish(&self.state, translator, Arc::new(Vec::new()), published.as_ref());
            *published = Some(now);
            drop(published);
            rebuild
        };
        for (class, err) in &rebuild.failed {
            warn!(class = %class, error = %err, "not publishing for this class: serving its last good config");
        }
        let read_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        crate::admin::publish_inputs(
            &self.state,
            json!({
                "source": "kubernetes",
                "namespace": self.settings.namespace,
                "read_at_unix": read_at,
                "kinds": kinds,
                "objects": objects,
                "raw_resources": [],
                "diagnostics": diagnostics,
            }),
        );
        info!(
            objects = world.len(),
            changed_classes = rebuild.changed.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "cluster state translated"
        );
    }
}

// === impl Store ===

/// Namespace and name.
type Key = (String, String);

/// What the watchers have seen, per kind.
#[derive(Debug, Default)]
struct Store {
    kinds: BTreeMap<Kind, KindStore>,
}

#[derive(Debug, Default)]
struct KindStore {
    objects: BTreeMap<Key, Slot>,
    /// The objects of a list in progress: they replace `objects` as a whole once it completes, so a relist never
    /// shows a half-listed kind, and what the list no longer has is gone.
    listing: Option<BTreeMap<Key, Slot>>,
    /// Completed lists: 1 after the first, more after relists.
    lists: u64,
    /// For Istio kinds: the apiVersion watched (`Some(Some(..))`), or the CRD is not installed (`Some(None)`);
    /// `None` until discovery has answered.
    installed: Option<Option<String>>,
    /// The last list or watch failure, while it lasts.
    error: Option<String>,
}

/// One object: what translation reads, and the problem with its latest version, if it had one.
#[derive(Clone, Debug, Default, PartialEq)]
struct Slot {
    input: Option<Input>,
    problem: Option<String>,
}

impl Store {
    fn kind(&mut self, kind: Kind) -> &mut KindStore {
        self.kinds.entry(kind).or_default()
    }

    /// Every kind is listed, or known not to be installed.
    fn ready(&self) -> bool {
        KINDS.iter().all(|kind| self.kinds.get(kind).is_some_and(|k| k.lists > 0 || matches!(k.installed, Some(None))))
    }

    fn inputs(&self) -> Vec<Input> {
        self.kinds.values().flat_map(|k| k.objects.values().filter_map(|slot| slot.input.clone())).collect()
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (kind, store) in &self.kinds {
            if let Some(istio) = ISTIO_KINDS.iter().find(|k| istio_kind(k.kind) == *kind)
                && matches!(store.installed, Some(None))
            {
                problems.push(not_installed(istio));
            }
            if let Some(error) = &store.error {
                problems.push(format!("failed to watch {kind}: {error} (retrying)"));
            }
            problems.extend(store.objects.values().filter_map(|slot| slot.problem.clone()));
        }
        problems
    }

    fn view(&self) -> Value {
        let mut view = serde_json::Map::new();
        for kind in KINDS {
            let Some(store) = self.kinds.get(&kind) else { continue };
            let api_version = match (&store.installed, is_istio(kind)) {
                (Some(Some(version)), _) => Some(version.clone()),
                (_, false) => Some(registry_api_version(kind).to_owned()),
                _ => None,
            };
            view.insert(
                kind.to_string(),
                json!({
                    "apiVersion": api_version,
                    "installed": store.installed.as_ref().map(Option::is_some).unwrap_or(!is_istio(kind)),
                    "lists": store.lists,
                    "objects": store.objects.values().filter(|s| s.input.is_some()).count(),
                    "error": store.error,
                }),
            );
        }
        Value::Object(view)
    }
}

impl KindStore {
    fn begin_list(&mut self) {
        self.listing = Some(BTreeMap::new());
    }

    fn end_list(&mut self) {
        if let Some(listed) = self.listing.take() {
            self.objects = listed;
        }
        self.lists += 1;
    }

    /// Records an added or modified object. An object whose latest version does not read keeps its last good
    /// version. Returns whether what is served changed.
    fn apply(&mut self, key: Key, converted: Result<Input, String>) -> bool {
        let previous = self.objects.get(&key).cloned().unwrap_or_default();
        let slot = match converted {
            Ok(input) => Slot { input: Some(input), problem: None },
            Err(problem) => {
                let problem = match &previous.input {
                    Some(_) => format!(
                        "{}/{}: its latest version does not read, so its last good version is served: {problem}",
                        key.0, key.1
                    ),
                    None => problem,
                };
                if previous.problem.as_ref() != Some(&problem) {
                    warn!("{problem}");
                }
                Slot { input: previous.input.clone(), problem: Some(problem) }
            }
        };
        let changed = slot != previous;
        // An unchanged object (a relist, a resync, a status-only update) stays the same shared object: translation
        // tells unchanged objects by identity.
        let slot = if changed { slot } else { previous };
        match &mut self.listing {
            Some(listing) => {
                listing.insert(key, slot);
            }
            None => {
                self.objects.insert(key, slot);
            }
        }
        changed
    }

    fn delete(&mut self, key: &Key) -> bool {
        if let Some(listing) = &mut self.listing {
            listing.remove(key);
        }
        self.objects.remove(key).is_some()
    }

    /// Sets the watch error; returns whether it changed.
    fn set_error(&mut self, error: Option<String>) -> bool {
        if self.error == error {
            return false;
        }
        self.error = error;
        true
    }

    /// Records what discovery found; returns whether it changed.
    fn set_installed(&mut self, api_version: Option<String>) -> bool {
        let installed = Some(api_version);
        if self.installed == installed {
            return false;
        }
        self.installed = installed;
        true
    }

    /// The kind is no longer served: its objects are gone and it waits for discovery again.
    fn forget(&mut self) {
        *self = KindStore { installed: Some(None), ..KindStore::default() };
    }
}

// === conversions ===

/// The metadata translation reads. Objects from the cluster have no file: their source is `None`.
fn meta(metadata: &ObjectMeta) -> Meta {
    Meta {
        name: metadata.name.clone().unwrap_or_default(),
        namespace: metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| "default".to_owned()),
        labels: metadata.labels.clone().unwrap_or_default().into_iter().collect(),
        creation_timestamp: metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|t| t.as_str().map(str::to_owned)),
        source: None,
    }
}

/// An Istio object, read as the directory source reads a document (same types, same diagnostics).
fn istio_input(resource: &ApiResource, object: DynamicObject) -> Result<Input, String> {
    let metadata = &object.metadata;
    let document = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {
            "name": metadata.name,
            "namespace": metadata.namespace,
            "labels": metadata.labels,
            "creationTimestamp": meta(metadata).creation_timestamp,
        },
        "spec": object.data.get("spec").cloned().unwrap_or_else(|| json!({})),
    });
    let (mut inputs, diagnostics) = translator::read_yaml(&document.to_string(), "kubernetes");
    if let Some(diagnostic) = diagnostics.into_iter().next() {
        let diagnostic = translator::Diagnostic { source: None, ..diagnostic };
        return Err(diagnostic.to_string());
    }
    let mut input = inputs.pop().ok_or_else(|| format!("{} {}: not read", resource.kind, object.name_any()))?;
    strip_source(&mut input);
    Ok(input)
}

pub(crate) fn strip_source(input: &mut Input) {
    match input {
        Input::Gateway(o) => Arc::make_mut(o).meta.source = None,
        Input::VirtualService(o) => Arc::make_mut(o).meta.source = None,
        Input::DestinationRule(o) => Arc::make_mut(o).meta.source = None,
        Input::ServiceEntry(o) => Arc::make_mut(o).meta.source = None,
        Input::Service(o) => Arc::make_mut(o).meta.source = None,
        Input::EndpointSlice(o) => Arc::make_mut(o).meta.source = None,
        Input::Pod(o) => Arc::make_mut(o).meta.source = None,
    }
}

fn key<K: Resource>(object: &K) -> Key {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    (namespace, object.meta().name.clone().unwrap_or_default())
}

// === discovery ===

/// The networking.istio.io group as the cluster serves it; `None` when it serves no version of it.
pub(crate) async fn served_versions(client: &Client) -> Result<Option<ApiGroup>, kube::Error> {
    match kube::discovery::group(client, GROUP).await {
        Ok(group) => Ok(Some(group)),
        Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(_))) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The most preferred of v1, v1beta1, v1alpha3 the group serves `kind` at.
pub(crate) fn pick_version(group: &ApiGroup, kind: &str) -> Option<ApiResource> {
    preferred(|version| group.versioned_resources(version).into_iter().map(|(resource, _)| resource).collect(), kind)
}

fn preferred(served: impl Fn(&str) -> Vec<ApiResource>, kind: &str) -> Option<ApiResource> {
    VERSIONS.iter().find_map(|version| served(version).into_iter().find(|r| r.kind == kind))
}

fn istio_kind(kind: &str) -> Kind {
    match kind {
        "Gateway" => Kind::Gateway,
        "VirtualService" => Kind::VirtualService,
        "DestinationRule" => Kind::DestinationRule,
        _ => Kind::ServiceEntry,
    }
}

fn is_istio(kind: Kind) -> bool {
    matches!(kind, Kind::Gateway | Kind::VirtualService | Kind::DestinationRule | Kind::ServiceEntry)
}

fn registry_api_version(kind: Kind) -> &'static str {
    match kind {
        Kind::EndpointSlice => "discovery.k8s.io/v1",
        _ => "v1",
    }
}

pub(crate) fn not_installed(kind: &IstioKind) -> String {
    format!(
        "the CustomResourceDefinition {}.{GROUP} is not installed: {} objects are not read until it is \
         (`pilotfish crds | kubectl apply -f -` installs it)",
        kind.plural, kind.kind
    )
}

// === errors and retries ===

enum Failure {
    /// 410 Gone: the resourceVersion to resume from is older than the history the apiserver keeps.
    Expired,
    /// 404: the apiserver does not serve the resource (a CRD removed).
    NotServed,
    /// No answer from the apiserver (connection refused or cut, timeouts).
    Unreachable,
    Other,
}

fn classify(err: &watcher::Error) -> Failure {
    let status = |err: &kube::Error| match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    match err {
        watcher::Error::WatchError(status) if status.code == 410 => Failure::Expired,
        watcher::Error::WatchStartFailed(err) | watcher::Error::InitialListFailed(err) if status(err) == Some(410) => {
            Failure::Expired
        }
        watcher::Error::InitialListFailed(err) | watcher::Error::WatchStartFailed(err) if status(err) == Some(404) => {
            Failure::NotServed
        }
        watcher::Error::WatchError(status) if status.code == 404 => Failure::NotServed,
        watcher::Error::InitialListFailed(err)
        | watcher::Error::WatchStartFailed(err)
        | watcher::Error::WatchFailed(err)
            if status(err).is_none() =>
        {
            Failure::Unreachable
        }
        _ => Failure::Other,
    }
}

/// One line for a watcher error: kube's `Display` of API errors repeats the whole status.
fn describe(err: &watcher::Error) -> String {
    match err {
        watcher::Error::WatchError(status) => format!("{} {}: {}", status.code, status.reason, status.message),
        watcher::Error::InitialListFailed(err) => format!("failed to list: {}", describe_client(err)),
        watcher::Error::WatchStartFailed(err) => format!("failed to start watching: {}", describe_client(err)),
        watcher::Error::WatchFailed(err) => format!("watch stream failed: {}", describe_client(err)),
        other => other.to_string(),
    }
}

pub(crate) fn describe_client(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} {}: {}", status.code, status.reason, status.message),
        other => {
            // The innermost cause says what happened (connection refused, certificate, ...).
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text = format!("{text}: {cause_text}");
                }
                source = cause.source();
            }
            text
        }
    }
}

/// Retry delays for a failed list or watch: from 100 ms, doubling, up to a maximum; reset by any success.
struct RetryBackoff {
    next: Duration,
    max: Duration,
}

impl RetryBackoff {
    const FIRST: Duration = Duration::from_millis(100);

    fn new(max: Duration) -> RetryBackoff {
        RetryBackoff { next: RetryBackoff::FIRST.min(max), max }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(delay)
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = RetryBackoff::FIRST.min(self.max);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is complete or not started when a panic could strike.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
