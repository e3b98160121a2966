//! Immutable snapshots: the complete set of resources one proxy class is served.
//!
//! Every resource is stored once, canonically encoded, with a version that is a hash of its content: the same
//! config has the same version in every process, so a proxy that reconnects to a restarted (or another) server is
//! not pushed anything it already has. A snapshot also records what each resource refers to (a listener's route
//! names and clusters, a route's clusters, a cluster's endpoint name); the ADS server orders pushes by those
//! references, and [`Snapshot::consistent`] checks them before a snapshot is published.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, OnceLock};

use api_protos::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType, cluster::DiscoveryType};
use api_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use api_protos::pb::envoy::config::listener::v3::{Filter, Listener, filter::ConfigType};
use api_protos::pb::envoy::config::route::v3::{RouteConfiguration, route::Action, route_action::ClusterSpecifier};
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use api_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpClusterSpecifier,
};
use api_protos::{Any, ResourceType, any, reflect};
use bytes::Bytes;
use prost::Message;
use xxhash_rust::xxh3::Xxh3;

/// One resource as served: canonical bytes, content version, and what it refers to.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub body: Any,
    pub references: References,
    /// The resource as it goes on the wire, encoded once and shared by every stream that sends it.
    pub encoded: EncodedEntries,
}

/// A resource's encoded response entries, filled in the first time a stream sends it.
///
/// Every proxy of a class gets the same resources: encoding them once per resource instead of once per response
/// keeps the streams from each holding a copy of their largest response.
#[derive(Clone, Debug, Default)]
pub struct EncodedEntries {
    /// The `resources` entry of a SotW `DiscoveryResponse` (the `Any`, tag included).
    pub sotw: OnceLock<Bytes>,
    /// The `resources` entry of a `DeltaDiscoveryResponse` (a `Resource` message, tag included).
    pub delta: OnceLock<Bytes>,
}

/// A cache of what the resource already holds: it never makes two resources differ.
impl PartialEq for EncodedEntries {
    fn eq(&self, _: &EncodedEntries) -> bool {
        true
    }
}

/// Names a resource depends on, by type.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    /// Clusters traffic may be sent to (routes, TCP proxies, mirrors).
    pub clusters: BTreeSet<String>,
    /// Route configurations a listener loads over RDS.
    pub routes: BTreeSet<String>,
    /// The endpoint (EDS) name of an EDS cluster.
    pub endpoints: Option<String>,
}

/// Failures to build or publish a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("failed to read resource: {0}")]
    Resource(#[from] api_protos::Error),
    #[error("failed to add resource of type {0}: pilotfish serves clusters, endpoints, listeners and routes")]
    UnsupportedType(String),
    #[error("failed to add a {kind} resource: a resource needs a name")]
    Unnamed { kind: ResourceType },
    #[error("failed to add {kind} {name:?}: the name is already taken")]
    Duplicate { kind: ResourceType, name: String },
    #[error("inconsistent snapshot: {}", .0.join("; "))]
    Inconsistent(Vec<String>),
}

impl Resource {
    /// Reads a packed resource: decodes it to learn its name and references, and versions its canonical bytes.
    pub fn from_any(body: &Any) -> Result<(ResourceType, Resource), SnapshotError> {
        let kind = ResourceType::from_type_url(&body.type_url)
            .ok_or_else(|| SnapshotError::UnsupportedType(body.type_url.clone()))?;
        let body = reflect::canonical_any(body)?;
        let (name, references) = match kind {
            ResourceType::Cluster => {
                let cluster: Cluster = any::unpack(&body)?;
                let references = References { endpoints: eds_name(&cluster), ..Default::default() };
                (cluster.name, references)
            }
            ResourceType::Endpoint => {
                let assignment: ClusterLoadAssignment = any::unpack(&body)?;
                (assignment.cluster_name, References::default())
            }
            ResourceType::Listener => {
                let listener: Listener = any::unpack(&body)?;
                let references = listener_references(&listener);
                (listener.name, references)
            }
            ResourceType::Route => {
                let config: RouteConfiguration = any::unpack(&body)?;
                let mut references = References::default();
                route_config_clusters(&config, &mut references.clusters);
                (config.name, references)
            }
        };
        if name.is_empty() {
            return Err(SnapshotError::Unnamed { kind });
        }
        let version = content_version(&body.value);
        Ok((kind, Resource { name, version, body, references, encoded: EncodedEntries::default() }))
    }

    /// A typed resource as translation made it: encoded once, named and referenced from the typed value itself.
    /// The generated types keep map fields sorted, so the encoding is canonical without the re-encoding
    /// [`Resource::from_any`] gives a resource read from elsewhere.
    pub fn from_message<M: Translated>(message: &M) -> Result<(ResourceType, Resource), SnapshotError> {
        let kind = M::KIND;
        let name = message.resource_name().to_owned();
        if name.is_empty() {
            return Err(SnapshotError::Unnamed { kind });
        }
        let body = any::pack(message);
        let version = content_version(&body.value);
        let references = message.references();
        Ok((kind, Resource { name, version, body, references, encoded: EncodedEntries::default() }))
    }
}

/// A resource type translation makes: its xDS type, its name, and what it refers to.
pub trait Translated: Message + prost::Name {
    const KIND: ResourceType;
    fn resource_name(&self) -> &str;
    fn references(&self) -> References;
}

impl Translated for Cluster {
    const KIND: ResourceType = ResourceType::Cluster;
    fn resource_name(&self) -> &str {
        &self.name
    }
    fn references(&self) -> References {
        References { endpoints: eds_name(self), ..References::default() }
    }
}

impl Translated for ClusterLoadAssignment {
    const KIND: ResourceType = ResourceType::Endpoint;
    fn resource_name(&self) -> &str {
        &self.cluster_name
    }
    fn references(&self) -> References {
        References::default()
    }
}

impl Translated for Listener {
    const KIND: ResourceType = ResourceType::Listener;
    fn resource_name(&self) -> &str {
        &self.name
    }
    /// The filters' own configurations are packed inside the listener: only those are decoded.
    fn references(&self) -> References {
        listener_references(self)
    }
}

impl Translated for RouteConfiguration {
    const KIND: ResourceType = ResourceType::Route;
    fn resource_name(&self) -> &str {
        &self.name
    }
    fn references(&self) -> References {
        let mut references = References::default();
        route_config_clusters(self, &mut references.clusters);
        references
    }
}

/// Short, stable version of some bytes: 16 hex digits of xxh3.
fn content_version(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}

fn eds_name(cluster: &Cluster) -> Option<String> {
    let is_eds =
        matches!(cluster.cluster_discovery_type, Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32);
    if !is_eds {
        return None;
    }
    let service_name = cluster.eds_cluster_config.as_ref().map(|c| c.service_name.as_str()).unwrap_or_default();
    Some(if service_name.is_empty() { cluster.name.clone() } else { service_name.to_owned() })
}

fn listener_references(listener: &Listener) -> References {
    let mut references = References::default();
    let chains = listener.filter_chains.iter().chain(listener.default_filter_chain.as_ref());
    for filter in chains.flat_map(|chain| chain.filters.iter()) {
        filter_references(filter, &mut references);
    }
    references
}

fn filter_references(filter: &Filter, references: &mut References) {
    let Some(ConfigType::TypedConfig(config)) = &filter.config_type else { return };
    if let Ok(hcm) = any::unpack::<HttpConnectionManager>(config) {
        match hcm.route_specifier {
            Some(RouteSpecifier::Rds(rds)) => {
                references.routes.insert(rds.route_config_name);
            }
            Some(RouteSpecifier::RouteConfig(inline)) => route_config_clusters(&inline, &mut references.clusters),
            _ => {}
        }
    } else if let Ok(tcp) = any::unpack::<TcpProxy>(config) {
        match tcp.cluster_specifier {
            Some(TcpClusterSpecifier::Cluster(name)) => {
                references.clusters.insert(name);
            }
            Some(TcpClusterSpecifier::WeightedClusters(weighted)) => {
                references.clusters.extend(weighted.clusters.into_iter().map(|c| c.name));
            }
            None => {}
        }
    }
}

fn route_config_clusters(config: &RouteConfiguration, clusters: &mut BTreeSet<String>) {
    let mirrors = config.request_mirror_policies.iter();
    clusters.extend(mirrors.map(|m| m.cluster.clone()));
    for host in &config.virtual_hosts {
        clusters.extend(host.request_mirror_policies.iter().map(|m| m.cluster.clone()));
        for route in &host.routes {
            let Some(Action::Route(action)) = &route.action else { continue };
            match &action.cluster_specifier {
                Some(ClusterSpecifier::Cluster(name)) => {
                    clusters.insert(name.clone());
                }
                Some(ClusterSpecifier::WeightedClusters(weighted)) => {
                    clusters.extend(weighted.clusters.iter().map(|c| c.name.clone()));
                }
                _ => {}
            }
            clusters.extend(action.request_mirror_policies.iter().map(|m| m.cluster.clone()));
        }
    }
    clusters.retain(|c| !c.is_empty());
}

/// The resources of one type, by name, with a fingerprint of their names and versions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceSet {
    resources: BTreeMap<String, Arc<Resource>>,
    fingerprint: u64,
}

impl ResourceSet {
    pub fn new(resources: BTreeMap<String, Arc<Resource>>) -> ResourceSet {
        let mut hasher = Xxh3::new();
        for (name, resource) in &resources {
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
            hasher.update(resource.version.as_bytes());
            hasher.update(&[0]);
        }
        ResourceSet { resources, fingerprint: hasher.digest() }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Resource>> {
        self.resources.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.resources.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &Arc<Resource>)> {
        self.resources.iter()
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.resources.keys()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// A content hash of the whole set: equal sets have equal fingerprints in every process.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The fingerprint as an xDS `version_info`.
    pub fn version(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }

    pub fn into_map(self) -> BTreeMap<String, Arc<Resource>> {
        self.resources
    }
}

/// Everything one proxy class is served. Immutable once built; shared by `Arc` among all proxies of the class.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    sets: [Arc<ResourceSet>; 4],
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot::default()
    }

    /// Builds a snapshot from packed resources of the four types, in any order.
    pub fn from_resources<'a>(resources: impl IntoIterator<Item = &'a Any>) -> Result<Snapshot, SnapshotError> {
        let mut builder = SnapshotBuilder::default();
        for body in resources {
            builder.add_any(body)?;
        }
        Ok(builder.build())
    }

    pub fn resources(&self, kind: ResourceType) -> &Arc<ResourceSet> {
        &self.sets[kind.index()]
    }

    /// This snapshot with `replacements` (resources of type `kind`) put in place of those of the same names.
    pub fn with_replaced(&self, kind: ResourceType, replacements: Vec<Resource>) -> Snapshot {
        if replacements.is_empty() {
            return self.clone();
        }
        let mut resources = self.resources(kind).as_ref().clone().into_map();
        for resource in replacements {
            resources.insert(resource.name.clone(), Arc::new(resource));
        }
        let mut sets = self.sets.clone();
        sets[kind.index()] = Arc::new(ResourceSet::new(resources));
        Snapshot { sets }
    }

    /// A content hash of the whole snapshot.
    pub fn version(&self) -> String {
        let mut hasher = Xxh3::new();
        for set in &self.sets {
            hasher.update(&set.fingerprint().to_le_bytes());
        }
        format!("{:016x}", hasher.digest())
    }

    /// Whether both hold the same resources at the same versions (compares fingerprints, not bytes).
    pub fn same_content(&self, other: &Snapshot) -> bool {
        self.sets.iter().zip(&other.sets).all(|(a, b)| a.fingerprint() == b.fingerprint())
    }

    /// Checks the references between types: every EDS cluster has its endpoints and every endpoint resource a
    /// cluster; every RDS name a listener loads exists and every route configuration is loaded by a listener.
    pub fn consistent(&self) -> Result<(), SnapshotError> {
        let clusters = self.resources(ResourceType::Cluster);
        let endpoints = self.resources(ResourceType::Endpoint);
        let listeners = self.resources(ResourceType::Listener);
        let routes = self.resources(ResourceType::Route);
        let mut problems = Vec::new();

        let eds_names: BTreeSet<&String> =
            clusters.iter().filter_map(|(_, c)| c.references.endpoints.as_ref()).collect();
        for (name, cluster) in clusters.iter() {
            if let Some(eds) = &cluster.references.endpoints
                && !endpoints.contains(eds)
            {
                problems.push(format!("cluster {name:?} has no endpoints resource {eds:?}"));
            }
        }
        for name in endpoints.names() {
            if !eds_names.contains(name) {
                problems.push(format!("endpoints {name:?} belong to no EDS cluster"));
            }
        }
        let loaded: BTreeSet<&String> = listeners.iter().flat_map(|(_, l)| l.references.routes.iter()).collect();
        for (name, listener) in listeners.iter() {
            for route in &listener.references.routes {
                if !routes.contains(route) {
                    problems
                        .push(format!("listener {name:?} loads route configuration {route:?}, which does not exist"));
                }
            }
        }
        for name in routes.names() {
            if !loaded.contains(name) {
                problems.push(format!("route configuration {name:?} is loaded by no listener"));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(SnapshotError::Inconsistent(problems)) }
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = ResourceType::ALL
            .iter()
            .map(|t| format!("{t} {}@{}", self.resources(*t).len(), self.resources(*t).version()))
            .collect();
        f.write_str(&parts.join(" "))
    }
}

/// Collects resources, refusing duplicate names within a type.
#[derive(Debug, Default)]
pub struct SnapshotBuilder {
    maps: [BTreeMap<String, Arc<Resource>>; 4],
}

impl SnapshotBuilder {
    pub fn add_any(&mut self, body: &Any) -> Result<&mut SnapshotBuilder, SnapshotError> {
        let (kind, resource) = Resource::from_any(body)?;
        self.add(kind, resource)
    }

    pub fn add_message<M: Translated>(&mut self, message: &M) -> Result<&mut SnapshotBuilder, SnapshotError> {
        let (kind, resource) = Resource::from_message(message)?;
        self.add(kind, resource)
    }

    /// Every resource of a translation, as translated.
    pub fn add_translation(&mut self, translation: &translator::Translation) -> Result<(), SnapshotError> {
        for cluster in &translation.clusters {
            self.add_message(cluster)?;
        }
        for assignment in &translation.endpoints {
            self.add_message(assignment)?;
        }
        for listener in &translation.listeners {
            self.add_message(listener)?;
        }
        for route in &translation.routes {
            self.add_message(route)?;
        }
        Ok(())
    }

    pub fn add(&mut self, kind: ResourceType, resource: Resource) -> Result<&mut SnapshotBuilder, SnapshotError> {
        let map = &mut self.maps[kind.index()];
        if map.contains_key(&resource.name) {
            return Err(SnapshotError::Duplicate { kind, name: resource.name });
        }
        map.insert(resource.name.clone(), Arc::new(resource));
        Ok(self)
    }

    pub fn build(self) -> Snapshot {
        Snapshot { sets: self.maps.map(|m| Arc::new(ResourceSet::new(m))) }
    }
}

#[cfg(test)]
mod tests;
