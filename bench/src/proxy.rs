//! One simulated Envoy: an ADS client that subscribes and ACKs the way Envoy does, and reports when each response
//! arrived and when it was ACKed.
//!
//! ```text
//!   CDS (wildcard) ──► ACK ──► EDS (the clusters' EDS names) ──► ACK ──► LDS (wildcard) ──► ACK
//!                                                                        └──► RDS (the HCMs' route names) ──► ACK
//! ```
//!
//! Like Envoy, a proxy ACKs a response before it asks for what the response made it need (Envoy pauses EDS while it
//! applies CDS, and RDS while it applies LDS), asks for listeners only once its clusters have endpoints, and keeps
//! its EDS and RDS subscriptions in step with later CDS and LDS responses. SotW ACKs carry the version and nonce of
//! the response and the full subscription; Delta ACKs carry the nonce, and subscriptions change by difference.
//!
//! Unlike Envoy it applies nothing: an ACK is sent as soon as the response is decoded, so what is measured is the
//! control plane (and the loopback). Decoding what a proxy must read to subscribe (clusters, listeners) is shared
//! between proxies that get the same bytes (see [`Shared`]), so one process can play thousands of proxies.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use api_protos::pb::envoy::config::core::v3::Node;
use api_protos::pb::envoy::config::listener::v3::Listener;
use api_protos::pb::envoy::config::listener::v3::filter::ConfigType;
use api_protos::pb::envoy::config::route::v3::RouteConfiguration;
use api_protos::pb::envoy::config::route::v3::route::Action;
use api_protos::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use api_protos::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use api_protos::pb::google::protobuf::{Struct, Value, value::Kind};
use api_protos::{Any, ResourceType};
use controlplane::server::ads::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use translator::proxy::{LABELS_KEY, NAMESPACE_KEY, ROLE_KEY};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// The xDS flavour a proxy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Sotw,
    Delta,
}

impl Protocol {
    pub const fn as_str(self) -> &'static str {
        match self {
            Protocol::Sotw => "sotw",
            Protocol::Delta => "delta",
        }
    }
}

/// Who a proxy is, as its node metadata says: this decides its proxy class on the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Class {
    pub role: &'static str,
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
}

impl Class {
    /// The benchmark's classes: class 0 is the ingress gateway, every other one a sidecar of its own app, spread over
    /// three namespaces.
    pub fn bench(index: usize) -> Class {
        if index == 0 {
            let labels = [("istio".to_owned(), "ingressgateway".to_owned())].into_iter().collect();
            return Class { role: "gateway", labels, namespace: "istio-system".to_owned() };
        }
        let labels = [("app".to_owned(), format!("app-{index}"))].into_iter().collect();
        Class { role: "sidecar", labels, namespace: format!("ns-{}", index % 3) }
    }

    /// The Envoy node of a proxy of this class, with the metadata `pilotfish bootstrap` writes.
    pub fn node(&self, id: &str) -> Node {
        let string = |s: &str| Value { kind: Some(Kind::StringValue(s.to_owned())) };
        let labels = Struct { fields: self.labels.iter().map(|(k, v)| (k.clone(), string(v))).collect() };
        let fields = [
            (ROLE_KEY.to_owned(), string(self.role)),
            (NAMESPACE_KEY.to_owned(), string(&self.namespace)),
            (LABELS_KEY.to_owned(), Value { kind: Some(Kind::StructValue(labels)) }),
        ];
        Node {
            id: id.to_owned(),
            cluster: format!("loadgen-{}", self.role),
            metadata: Some(Struct { fields: fields.into_iter().collect() }),
            ..Default::default()
        }
    }
}

/// What a proxy reports to the driver.
#[derive(Clone, Debug)]
pub enum Event {
    /// A response arrived (decoded) and was ACKed (the ACK handed to the request stream).
    Response { proxy: u32, kind: ResourceType, received: Instant, acked: Instant, resources: u32, bytes: u64 },
    /// The proxy has ACKed clusters, endpoints, listeners and routes at least once: it would be serving.
    Ready { proxy: u32 },
    /// The stream ended (the server closed it or failed).
    Ended { proxy: u32, error: String },
}

/// One proxy to simulate.
pub struct Proxy {
    pub index: u32,
    pub node_id: String,
    pub class: Arc<Class>,
    pub protocol: Protocol,
    /// Keeps the route configurations the proxy has, for the driver to check a change arrived as meant.
    pub routes: Option<Arc<RouteStore>>,
}

/// The request side of the stream; unbounded, so a proxy never waits on its own ACKs.
type Requests<T> = mpsc::UnboundedSender<T>;

impl Proxy {
    /// Runs the proxy's ADS stream on `channel` until it ends; reports to `events`.
    pub async fn run(self, channel: Channel, shared: Arc<Shared>, events: mpsc::UnboundedSender<Event>) {
        let index = self.index;
        let result = match self.protocol {
            Protocol::Sotw => self.run_sotw(channel, &shared, &events).await,
            Protocol::Delta => self.run_delta(channel, &shared, &events).await,
        };
        let error = match result {
            Ok(()) => "the server closed the stream".to_owned(),
            Err(err) => format!("{err:#}"),
        };
        let _ = events.send(Event::Ended { proxy: index, error });
    }

    async fn run_sotw(
        &self,
        channel: Channel,
        shared: &Shared,
        events: &mpsc::UnboundedSender<Event>,
    ) -> anyhow::Result<()> {
        let (requests, outbound) = mpsc::unbounded_channel();
        let mut client = AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        // The first request goes in before the call: some servers answer the call only with their first message.
        send(
            &requests,
            DiscoveryRequest {
                node: Some(self.class.node(&self.node_id)),
                type_url: ResourceType::Cluster.type_url().to_owned(),
                ..Default::default()
            },
        )?;
        let mut inbound =
            client.stream_aggregated_resources(UnboundedReceiverStream::new(outbound)).await?.into_inner();
        let mut stream = SotwStream::default();
        let mut progress = Progress::default();
        while let Some(response) = inbound.message().await? {
            let received = Instant::now();
            let Some(kind) = ResourceType::from_type_url(&response.type_url) else { continue };
            let (resources, bytes) = size(response.resources.iter());
            // What this response makes the proxy need next, and of which type.
            let follow = match kind {
                ResourceType::Cluster => {
                    let set = shared.sotw_set(kind, &response.resources);
                    stream.replace_names(ResourceType::Endpoint, &set.referenced)
                }
                ResourceType::Listener => {
                    let set = shared.sotw_set(kind, &response.resources);
                    stream.replace_names(ResourceType::Route, &set.referenced)
                }
                ResourceType::Route => {
                    if let Some(routes) = &self.routes {
                        routes.replace(&response.resources);
                    }
                    None
                }
                ResourceType::Endpoint => None,
            };
            send(&requests, stream.ack(kind, &response))?;
            let acked = Instant::now();
            if let Some(dependent) = follow {
                send(&requests, stream.request(dependent))?;
            }
            if progress.note(kind, &stream) == Step::StartListeners {
                send(&requests, stream.request(ResourceType::Listener))?;
            }
            let _ = events.send(Event::Response { proxy: self.index, kind, received, acked, resources, bytes });
            if progress.take_ready() {
                let _ = events.send(Event::Ready { proxy: self.index });
            }
        }
        Ok(())
    }

    async fn run_delta(
        &self,
        channel: Channel,
        shared: &Shared,
        events: &mpsc::UnboundedSender<Event>,
    ) -> anyhow::Result<()> {
        let (requests, outbound) = mpsc::unbounded_channel();
        let mut client = AggregatedDiscoveryServiceClient::new(channel).max_decoding_message_size(usize::MAX);
        send(
            &requests,
            DeltaDiscoveryRequest {
                node: Some(self.class.node(&self.node_id)),
                type_url: ResourceType::Cluster.type_url().to_owned(),
                ..Default::default()
            },
        )?;
        let mut inbound = client.delta_aggregated_resources(UnboundedReceiverStream::new(outbound)).await?.into_inner();
        let mut stream = DeltaStream::new(shared);
        let mut progress = Progress::default();
        while let Some(response) = inbound.message().await? {
            let received = Instant::now();
            let Some(kind) = ResourceType::from_type_url(&response.type_url) else { continue };
            let (resources, bytes) = size(response.resources.iter().filter_map(|r| r.resource.as_ref()));
            let follow = stream.apply(shared, kind, &response);
            if kind == ResourceType::Route
                && let Some(routes) = &self.routes
            {
                routes.apply_delta(&response.resources, &response.removed_resources);
            }
            send(
                &requests,
                DeltaDiscoveryRequest {
                    type_url: response.type_url.clone(),
                    response_nonce: response.nonce.clone(),
                    ..Default::default()
                },
            )?;
            let acked = Instant::now();
            if let Some(change) = follow {
                send(&requests, change)?;
            }
            if progress.note(kind, &stream) == Step::StartListeners {
                send(
                    &requests,
                    DeltaDiscoveryRequest {
                        type_url: ResourceType::Listener.type_url().to_owned(),
                        ..Default::default()
                    },
                )?;
            }
            let _ = events.send(Event::Response { proxy: self.index, kind, received, acked, resources, bytes });
            if progress.take_ready() {
                let _ = events.send(Event::Ready { proxy: self.index });
            }
        }
        Ok(())
    }
}

fn send<T>(requests: &Requests<T>, request: T) -> anyhow::Result<()> {
    requests.send(request).map_err(|_| anyhow::anyhow!("the request stream closed"))
}

fn size<'a>(resources: impl Iterator<Item = &'a Any>) -> (u32, u64) {
    resources.fold((0, 0), |(n, bytes), any| (n + 1, bytes + any.value.len() as u64))
}

/// The names a proxy subscribes to, by type (EDS and RDS; CDS and LDS are wildcard).
trait Subscriptions {
    fn names(&self, kind: ResourceType) -> &[String];
}

/// Envoy's start-up order, and when the proxy first has everything.
#[derive(Default)]
struct Progress {
    acked: [bool; 4],
    listeners_requested: bool,
    ready: bool,
    reported: bool,
}

#[derive(PartialEq, Eq)]
enum Step {
    Nothing,
    StartListeners,
}

impl Progress {
    /// Notes an ACK of `kind`. Listeners are asked for once the clusters are warm: every EDS name has its endpoints
    /// (as far as the server had them) or there is none.
    fn note(&mut self, kind: ResourceType, subscriptions: &impl Subscriptions) -> Step {
        self.acked[kind.index()] = true;
        let warm = self.acked[ResourceType::Cluster.index()]
            && (self.acked[ResourceType::Endpoint.index()] || subscriptions.names(ResourceType::Endpoint).is_empty());
        let step = if warm && !self.listeners_requested {
            self.listeners_requested = true;
            Step::StartListeners
        } else {
            Step::Nothing
        };
        self.ready = warm
            && self.acked[ResourceType::Listener.index()]
            && (self.acked[ResourceType::Route.index()] || subscriptions.names(ResourceType::Route).is_empty());
        step
    }

    /// True once, when the proxy first became ready.
    fn take_ready(&mut self) -> bool {
        if self.ready && !self.reported {
            self.reported = true;
            return true;
        }
        false
    }
}

/// SotW: the last version and nonce per type, and the subscribed names.
#[derive(Default)]
struct SotwStream {
    version: [String; 4],
    nonce: [String; 4],
    names: [Arc<[String]>; 4],
}

impl Subscriptions for SotwStream {
    fn names(&self, kind: ResourceType) -> &[String] {
        &self.names[kind.index()]
    }
}

impl SotwStream {
    /// Sets the subscription of `kind`; returns `kind` if it changed (a request is due).
    fn replace_names(&mut self, kind: ResourceType, names: &Arc<[String]>) -> Option<ResourceType> {
        if *self.names[kind.index()] == **names {
            return None;
        }
        self.names[kind.index()] = Arc::clone(names);
        Some(kind)
    }

    fn ack(&mut self, kind: ResourceType, response: &DiscoveryResponse) -> DiscoveryRequest {
        self.version[kind.index()].clone_from(&response.version_info);
        self.nonce[kind.index()].clone_from(&response.nonce);
        self.request(kind)
    }

    /// A request for `kind` that repeats the last ACKed version and nonce with the current subscription.
    fn request(&self, kind: ResourceType) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: self.version[kind.index()].clone(),
            response_nonce: self.nonce[kind.index()].clone(),
            type_url: kind.type_url().to_owned(),
            resource_names: self.names[kind.index()].to_vec(),
            ..Default::default()
        }
    }
}

/// Delta: the resources held of CDS and LDS (to derive subscriptions) and the subscribed EDS and RDS names.
struct DeltaStream {
    held: [Arc<ResourceSet>; 4],
    names: [Arc<[String]>; 4],
}

impl Subscriptions for DeltaStream {
    fn names(&self, kind: ResourceType) -> &[String] {
        &self.names[kind.index()]
    }
}

impl DeltaStream {
    fn new(shared: &Shared) -> DeltaStream {
        let empty = shared.empty_set();
        DeltaStream { held: std::array::from_fn(|_| Arc::clone(&empty)), names: Default::default() }
    }

    /// Applies a response; returns the subscription change it calls for, if any.
    fn apply(
        &mut self,
        shared: &Shared,
        kind: ResourceType,
        response: &DeltaDiscoveryResponse,
    ) -> Option<DeltaDiscoveryRequest> {
        let dependent = match kind {
            ResourceType::Cluster => ResourceType::Endpoint,
            ResourceType::Listener => ResourceType::Route,
            ResourceType::Endpoint | ResourceType::Route => return None,
        };
        let set = shared.delta_set(kind, &self.held[kind.index()], &response.resources, &response.removed_resources);
        let (subscribe, unsubscribe) = difference(&self.names[dependent.index()], &set.referenced);
        self.names[dependent.index()] = Arc::clone(&set.referenced);
        self.held[kind.index()] = set;
        if subscribe.is_empty() && unsubscribe.is_empty() {
            return None;
        }
        Some(DeltaDiscoveryRequest {
            type_url: dependent.type_url().to_owned(),
            resource_names_subscribe: subscribe,
            resource_names_unsubscribe: unsubscribe,
            ..Default::default()
        })
    }
}

/// Names in `new` but not `old`, and in `old` but not `new` (both sorted).
fn difference(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => (i, j) = (i + 1, j + 1),
            (Some(a), Some(b)) if a < b => {
                removed.push(a.clone());
                i += 1;
            }
            (_, Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                removed.push(a.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    (added, removed)
}

/// What a cluster or listener makes a proxy subscribe to.
#[derive(Debug)]
struct Derived {
    name: String,
    /// A cluster's EDS name; a listener's RDS route configuration names.
    refs: Vec<String>,
}

/// The clusters or listeners a proxy holds, with the union of their references.
#[derive(Debug)]
pub struct ResourceSet {
    key: u64,
    by_name: BTreeMap<String, Arc<Derived>>,
    referenced: Arc<[String]>,
}

impl ResourceSet {
    fn new(key: u64, by_name: BTreeMap<String, Arc<Derived>>) -> ResourceSet {
        let mut referenced: Vec<String> = by_name.values().flat_map(|d| d.refs.iter().cloned()).collect();
        referenced.sort_unstable();
        referenced.dedup();
        ResourceSet { key, by_name, referenced: referenced.into() }
    }
}

/// Decoding shared between the proxies of one loadgen process: every distinct cluster or listener is decoded once,
/// and proxies that got the same sets share one copy of them.
#[derive(Default)]
pub struct Shared {
    /// By content hash of the packed resource.
    derived: Mutex<HashMap<u64, Arc<Derived>>>,
    /// By a key of the set's history (see [`Shared::delta_set`]) or content (SotW).
    sets: Mutex<HashMap<u64, Arc<ResourceSet>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn empty_set(&self) -> Arc<ResourceSet> {
        Arc::clone(lock(&self.sets).entry(0).or_insert_with(|| Arc::new(ResourceSet::new(0, BTreeMap::new()))))
    }

    /// The set a SotW response of `kind` holds.
    fn sotw_set(&self, kind: ResourceType, resources: &[Any]) -> Arc<ResourceSet> {
        let mut hasher = Xxh3::new();
        hasher.write_usize(kind.index());
        for any in resources {
            hasher.write_usize(any.value.len());
            hasher.write(&any.value);
        }
        let key = hasher.finish() | 1;
        if let Some(set) = lock(&self.sets).get(&key) {
            return Arc::clone(set);
        }
        let by_name = resources
            .iter()
            .filter_map(|any| self.derive(kind, any))
            .map(|derived| (derived.name.clone(), derived))
            .collect();
        let set = Arc::new(ResourceSet::new(key, by_name));
        Arc::clone(lock(&self.sets).entry(key).or_insert(set))
    }

    /// The set a proxy holds after a Delta response on top of `held`. Keyed by `held` and the response's names and
    /// versions: proxies that went through the same responses share the result.
    fn delta_set(
        &self,
        kind: ResourceType,
        held: &Arc<ResourceSet>,
        resources: &[Resource],
        removed: &[String],
    ) -> Arc<ResourceSet> {
        let mut hasher = Xxh3::new();
        hasher.write_u64(held.key);
        hasher.write_usize(kind.index());
        for resource in resources {
            hasher.write(resource.name.as_bytes());
            hasher.write_u8(0);
            hasher.write(resource.version.as_bytes());
            hasher.write_u8(0);
        }
        hasher.write_u8(1);
        for name in removed {
            hasher.write(name.as_bytes());
            hasher.write_u8(0);
        }
        let key = hasher.finish() | 1;
        if let Some(set) = lock(&self.sets).get(&key) {
            return Arc::clone(set);
        }
        let mut by_name = held.by_name.clone();
        for name in removed {
            by_name.remove(name);
        }
        for resource in resources {
            if let Some(derived) = resource.resource.as_ref().and_then(|any| self.derive(kind, any)) {
                by_name.insert(resource.name.clone(), derived);
            }
        }
        let set = Arc::new(ResourceSet::new(key, by_name));
        Arc::clone(lock(&self.sets).entry(key).or_insert(set))
    }

    fn derive(&self, kind: ResourceType, any: &Any) -> Option<Arc<Derived>> {
        let key = xxh3_64(&any.value) ^ kind.index() as u64;
        if let Some(derived) = lock(&self.derived).get(&key) {
            return Some(Arc::clone(derived));
        }
        let derived = match kind {
            ResourceType::Cluster => {
                let cluster = Cluster::decode(any.value.as_slice()).ok()?;
                let refs = eds_name(&cluster).into_iter().collect();
                Derived { name: cluster.name, refs }
            }
            ResourceType::Listener => {
                let listener = Listener::decode(any.value.as_slice()).ok()?;
                Derived { refs: rds_names(&listener), name: listener.name }
            }
            ResourceType::Endpoint | ResourceType::Route => return None,
        };
        Some(Arc::clone(lock(&self.derived).entry(key).or_insert_with(|| Arc::new(derived))))
    }
}

/// The name an EDS cluster's endpoints are asked for by: `eds_cluster_config.service_name`, else the cluster's name.
fn eds_name(cluster: &Cluster) -> Option<String> {
    let eds =
        matches!(cluster.cluster_discovery_type, Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32);
    if !eds {
        return None;
    }
    let service_name = cluster.eds_cluster_config.as_ref().map(|c| c.service_name.as_str()).unwrap_or_default();
    Some(if service_name.is_empty() { cluster.name.clone() } else { service_name.to_owned() })
}

/// The RDS route configuration names of a listener's HTTP connection managers.
fn rds_names(listener: &Listener) -> Vec<String> {
    let hcm_type = HttpConnectionManager::type_url();
    listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.as_ref())
        .flat_map(|chain| &chain.filters)
        .filter_map(|filter| match &filter.config_type {
            Some(ConfigType::TypedConfig(any)) if any.type_url == hcm_type => {
                HttpConnectionManager::decode(any.value.as_slice()).ok()
            }
            _ => None,
        })
        .filter_map(|hcm| match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
            _ => None,
        })
        .collect()
}

/// The route configurations one proxy holds, packed, by name.
#[derive(Debug, Default)]
pub struct RouteStore(Mutex<BTreeMap<String, Vec<u8>>>);

impl RouteStore {
    fn replace(&self, resources: &[Any]) {
        let routes = resources
            .iter()
            .filter_map(|any| {
                RouteConfiguration::decode(any.value.as_slice()).ok().map(|r| (r.name, any.value.clone()))
            })
            .collect();
        *lock(&self.0) = routes;
    }

    fn apply_delta(&self, resources: &[Resource], removed: &[String]) {
        let mut routes = lock(&self.0);
        for name in removed {
            routes.remove(name);
        }
        for resource in resources {
            if let Some(any) = &resource.resource {
                routes.insert(resource.name.clone(), any.value.clone());
            }
        }
    }

    /// The weight of the route to `host`'s subset v1 in its weighted split, from every route configuration that has
    /// a virtual host for it.
    pub fn v1_weights(&self, host: &str) -> Vec<u32> {
        let routes = lock(&self.0);
        let mut weights = Vec::new();
        for bytes in routes.values() {
            let Ok(config) = RouteConfiguration::decode(bytes.as_slice()) else { continue };
            for virtual_host in config.virtual_hosts.iter().filter(|v| v.domains.iter().any(|d| d == host)) {
                for route in &virtual_host.routes {
                    let Some(Action::Route(action)) = &route.action else { continue };
                    let Some(ClusterSpecifier::WeightedClusters(split)) = &action.cluster_specifier else { continue };
                    weights.extend(
                        split
                            .clusters
                            .iter()
                            .filter(|c| c.name.contains("|v1|"))
                            .map(|c| c.weight.as_ref().map_or(0, |w| w.value)),
                    );
                }
            }
        }
        weights
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn difference_of_sorted_names() {
        let (added, removed) = difference(&names(&["a", "c", "d"]), &names(&["b", "c", "e"]));
        assert_eq!((added, removed), (names(&["b", "e"]), names(&["a", "d"])));
        assert_eq!(difference(&[], &names(&["x"])), (names(&["x"]), Vec::new()));
    }

    #[test]
    fn the_node_reads_back_as_the_class() {
        let class = Class::bench(2);
        let read = translator::ProxyClass::from_node(&class.node("p"));
        assert_eq!(read.role, translator::Role::Sidecar);
        assert_eq!(read.namespace, "ns-2");
        assert_eq!(read.labels, class.labels);
        assert_eq!(translator::ProxyClass::from_node(&Class::bench(0).node("g")).role, translator::Role::Gateway);
    }
}
