//! The service registry and rule indexes translation works from, built once per [`World`] and shared by every
//! proxy class.
//!
//! ```text
//!   Service ──selector──► Pods ◄──targetRef── EndpointSlice        ServiceEntry (hosts × ports × endpoints)
//!      └──────────────┬──────────────────────────┘                          │
//!                     ▼                                                     ▼
//!            model::Service { hostname, ports, endpoints with pod labels, resolution } ◄── DestinationRule (by host)
//! ```
//!
//! Invalid objects (see [`crate::validate`]) are left out here, so everything downstream may assume valid input.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::diagnostics::{Diagnostic, ObjectRef};
use crate::input::istio::{DestinationRule, Gateway, ServiceEntry, VirtualService};
use crate::input::registry::{self, TargetPort};
use crate::input::{Kind, Labels, Object, Source, World, position_in, same_objects};
use crate::validate::{Check, Checks};

pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";
/// Where mesh-wide DestinationRules live, as in Istio.
pub const ROOT_NAMESPACE: &str = "istio-system";

/// The application protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Https,
    Tls,
    Tcp,
    Udp,
    /// Not declared: treated as HTTP (Istio sniffs it; for HTTP traffic the outcome is the same).
    Unknown,
}

impl Protocol {
    /// Istio's protocol names, case-insensitive; a port name is read up to its first `-` (`http-web`).
    pub fn parse(name: &str) -> Protocol {
        let prefix = name.split('-').next().unwrap_or_default().to_ascii_lowercase();
        match prefix.as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "grpc" => Protocol::Grpc,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" | "mongo" | "mysql" | "redis" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            _ => Protocol::Unknown,
        }
    }

    /// Whether the port carries HTTP that pilotfish routes (HTTP listeners and routes).
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::Unknown)
    }

    /// Whether upstream connections should speak HTTP/2.
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub number: u32,
    pub name: String,
    pub protocol: Protocol,
}

/// How a service's endpoints are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Known addresses, delivered over EDS.
    Static,
    /// Host names Envoy resolves (STRICT_DNS).
    Dns,
    /// Whatever address the client dialled (ORIGINAL_DST).
    Passthrough,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address, or host name for DNS services.
    pub address: String,
    /// Service port number → the endpoint's port for it.
    pub ports: BTreeMap<u32, u32>,
    pub labels: Labels,
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// Fully qualified host name: `reviews.default.svc.cluster.local`, or a ServiceEntry host.
    pub hostname: String,
    pub namespace: String,
    /// Ports by number.
    pub ports: Vec<Port>,
    pub resolution: Resolution,
    /// Cluster IP or ServiceEntry addresses: also names of the service on a sidecar.
    pub addresses: Vec<String>,
    /// Ready endpoints only.
    pub endpoints: Vec<Endpoint>,
    /// The object that defines the service.
    pub origin: ObjectRef,
    pub source: Option<Source>,
    /// Short names a client in the same namespace may use (`reviews`, `reviews.default`, …).
    pub short_names: Vec<String>,
}

impl Service {
    pub fn port(&self, number: u32) -> Option<&Port> {
        self.ports.iter().find(|p| p.number == number)
    }

    /// Endpoints serving `port` whose labels include all of `selector`.
    pub fn endpoints_for<'a>(
        &'a self,
        port: u32,
        selector: &'a Labels,
    ) -> impl Iterator<Item = (&'a Endpoint, u32)> + 'a {
        self.endpoints.iter().filter_map(move |e| {
            let endpoint_port = *e.ports.get(&port)?;
            selector.iter().all(|(k, v)| e.labels.get(k) == Some(v)).then_some((e, endpoint_port))
        })
    }
}

/// The cluster name Istio gives a service port and subset: `outbound|9080|v1|reviews.default.svc.cluster.local`.
pub fn cluster_name(port: u32, subset: &str, hostname: &str) -> String {
    format!("outbound|{port}|{subset}|{hostname}")
}

/// A host as written in a rule, resolved against the rule's namespace: short names become
/// `<name>.<namespace>.svc.cluster.local`; names with a dot, and wildcards, stay as written.
pub fn resolve_host(host: &str, namespace: &str) -> String {
    if host == "*" || host.contains('.') { host.to_owned() } else { format!("{host}.{namespace}.{CLUSTER_DOMAIN}") }
}

/// Whether `pattern` (a host or a wildcard `*.example.com` / `*`) covers `host`.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        // `*.example.com` covers `a.example.com` and `a.b.example.com`, not `example.com`.
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => false,
    }
}

/// How specific a host pattern is: exact names before wildcards, longer wildcards before shorter.
pub fn host_specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

/// Everything translation reads, indexed.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Keyed by host name, shared with the service (cloning the map for an update allocates no strings).
    pub services: BTreeMap<Arc<str>, Arc<Service>>,
    pub gateways: Vec<Arc<Object<Gateway>>>,
    pub virtual_services: Vec<Arc<Object<VirtualService>>>,
    pub destination_rules: Vec<Arc<Object<DestinationRule>>>,
    /// Kubernetes Services by namespace and name, with their selectors: gateway ports resolve through them.
    pub kubernetes_services: Vec<Arc<Object<registry::Service>>>,
    pub diagnostics: Vec<Diagnostic>,
    /// `destination_rules` by namespace: exact hosts (the last rule wins, as `max_by_key` picks) and wildcards.
    /// Shared: a model updated for changed endpoints keeps its rules.
    rule_index: Arc<BTreeMap<String, RuleIndex>>,
}

#[derive(Debug, Default)]
struct RuleIndex {
    exact: BTreeMap<String, Arc<Object<DestinationRule>>>,
    wildcard: Vec<(String, Arc<Object<DestinationRule>>)>,
}

impl Model {
    /// Builds the model from the valid objects of `world` (`invalid` lists the others).
    pub fn new(world: &World, invalid: &BTreeSet<ObjectRef>) -> Model {
        fn checks<T>(objects: &[Arc<Object<T>>], kind: Kind, invalid: &BTreeSet<ObjectRef>) -> Vec<Check> {
            let valid = |o: &Arc<Object<T>>| !invalid.contains(&o.reference(kind));
            objects.iter().map(|o| Check { diagnostics: Vec::new(), valid: valid(o) }).collect()
        }
        let checks = Checks {
            gateways: Arc::new(checks(&world.gateways, Kind::Gateway, invalid)),
            virtual_services: Arc::new(checks(&world.virtual_services, Kind::VirtualService, invalid)),
            destination_rules: Arc::new(checks(&world.destination_rules, Kind::DestinationRule, invalid)),
            service_entries: Arc::new(checks(&world.service_entries, Kind::ServiceEntry, invalid)),
        };
        Model::checked(world, &checks)
    }

    /// Builds the model from the objects of `world` its `checks` find valid.
    pub fn checked(world: &World, checks: &Checks) -> Model {
        Model::build(world, checks, None)
    }

    /// Like [`Model::checked`], taking from `self` (the model of `before`) the services of the objects `world`
    /// still shares with `before` (the same `Arc`s), where the endpoints they read did not change either.
    pub fn rebuilt(&self, before: &World, world: &World, checks: &Checks) -> Model {
        Model::build(world, checks, Some((before, self)))
    }

    fn build(world: &World, checks: &Checks, previous: Option<(&World, &Model)>) -> Model {
        fn valid<T>(objects: &[Arc<Object<T>>], checks: &[Check]) -> Vec<Arc<Object<T>>> {
            objects.iter().zip(checks).filter(|(_, check)| check.valid).map(|(o, _)| Arc::clone(o)).collect()
        }
        let mut model = Model {
            gateways: valid(&world.gateways, &checks.gateways),
            virtual_services: valid(&world.virtual_services, &checks.virtual_services),
            destination_rules: valid(&world.destination_rules, &checks.destination_rules),
            kubernetes_services: world.services.clone(),
            ..Model::default()
        };
        let mut rule_index: BTreeMap<String, RuleIndex> = BTreeMap::new();
        for rule in &model.destination_rules {
            let host = resolve_host(&rule.spec.host, &rule.meta.namespace);
            let index = rule_index.entry(rule.meta.namespace.clone()).or_default();
            if host.starts_with('*') {
                index.wildcard.push((host, Arc::clone(rule)));
            } else {
                index.exact.insert(host, Arc::clone(rule));
            }
        }
        model.rule_index = Arc::new(rule_index);
        let registry = Registry::new(&world.endpoint_slices, &world.pods);
        let registry_changes = previous.map(|(before, _)| changed_registry_namespaces(before, world));
        for (index, service) in world.services.iter().enumerate() {
            let unchanged = previous.zip(registry_changes.as_ref()).and_then(|((before, model), changes)| {
                let shared = position_in(&before.services, service, index).is_some();
                let hostname = kubernetes_hostname(&service.meta.name, &service.meta.namespace);
                model.services.get(hostname.as_str()).filter(|_| shared && !changes.contains(&service.meta.namespace))
            });
            let built = match unchanged {
                Some(built) => Arc::clone(built),
                None => Arc::new(kubernetes_service(service, &registry)),
            };
            model.services.insert(Arc::from(built.hostname.as_str()), built);
        }
        let entries = world.service_entries.iter().zip(checks.service_entries.iter()).enumerate();
        for (index, (entry, _)) in entries.filter(|(_, (_, check))| check.valid) {
            let reused = previous.and_then(|(before, model)| model.entry_services(before, entry, index));
            let built = reused.unwrap_or_else(|| service_entry_services(entry).into_iter().map(Arc::new).collect());
            for built in built {
                if let Some(existing) = model.services.get(built.hostname.as_str()) {
                    model.diagnostics.push(
                        Diagnostic::warning(format!(
                            "host {} is already defined by {}; this definition is ignored",
                            built.hostname, existing.origin
                        ))
                        .object(built.origin.clone(), built.source.clone())
                        .field("spec.hosts"),
                    );
                    continue;
                }
                model.services.insert(Arc::from(built.hostname.as_str()), built);
            }
        }
        model
    }

    /// The services `self` (the model of `before`) holds for `entry`, when `before` has that very object and each
    /// of its hosts was its own: what building them again would give.
    fn entry_services(
        &self,
        before: &World,
        entry: &Arc<Object<ServiceEntry>>,
        hint: usize,
    ) -> Option<Vec<Arc<Service>>> {
        position_in(&before.service_entries, entry, hint)?;
        let reference = entry.reference(Kind::ServiceEntry);
        entry
            .spec
            .hosts
            .iter()
            .map(|host| self.services.get(host.as_str()).filter(|s| s.origin == reference).cloned())
            .collect()
    }

    /// The model of `world`, made from `self` (the model of `before`, `checks_before` its checks) by rebuilding
    /// only the services whose objects changed, when that gives what [`Model::checked`] would: when only
    /// ServiceEntries, EndpointSlices and Pods changed, and no ServiceEntry came, went, changed validity or changed
    /// its hosts, every host of a changed one being its own (not shadowed by another definition). None otherwise.
    /// The services of the registry alone change then: hosts stay, and so do the model's diagnostics.
    pub fn updated(&self, before: &World, checks_before: &Checks, world: &World, checks: &Checks) -> Option<Model> {
        if !same_objects(&before.gateways, &world.gateways)
            || !same_objects(&before.virtual_services, &world.virtual_services)
            || !same_objects(&before.destination_rules, &world.destination_rules)
            || !same_objects(&before.services, &world.services)
            || before.service_entries.len() != world.service_entries.len()
        {
            return None;
        }
        let mut services = Vec::new();
        for (index, (old, new)) in before.service_entries.iter().zip(&world.service_entries).enumerate() {
            if Arc::ptr_eq(old, new) {
                continue;
            }
            let valid = checks.service_entries[index].valid;
            let reference = new.reference(Kind::ServiceEntry);
            let hosts: BTreeSet<&String> = new.spec.hosts.iter().collect();
            let own = |host: &String| self.services.get(host.as_str()).is_some_and(|s| s.origin == reference);
            if old.meta.namespace != new.meta.namespace
                || old.meta.name != new.meta.name
                || valid != checks_before.service_entries[index].valid
                || (valid
                    && (old.spec.hosts != new.spec.hosts
                        || hosts.len() != new.spec.hosts.len()
                        || !new.spec.hosts.iter().all(own)))
            {
                return None;
            }
            if valid {
                services.extend(service_entry_services(new));
            }
        }
        let changed_namespaces = changed_registry_namespaces(before, world);
        if !changed_namespaces.is_empty() {
            let slices = namespaces_of(&world.endpoint_slices, &changed_namespaces);
            let pods = namespaces_of(&world.pods, &changed_namespaces);
            let registry = Registry::new(&slices, &pods);
            for service in namespaces_of(&world.services, &changed_namespaces) {
                services.push(kubernetes_service(&service, &registry));
            }
        }
        let mut model = self.clone();
        for service in services {
            match model.services.get_mut(service.hostname.as_str()) {
                Some(existing) if **existing == service => {}
                Some(existing) => *existing = Arc::new(service),
                None => return None,
            }
        }
        Some(model)
    }

    /// The services a host pattern covers (exact host, or every match of a wildcard).
    pub fn services_matching<'a>(&'a self, pattern: &'a str) -> impl Iterator<Item = &'a Arc<Service>> + 'a {
        let exact = self.services.get(pattern);
        let wildcard = pattern.starts_with('*');
        exact.into_iter().chain(self.services.values().filter(move |s| wildcard && host_matches(pattern, &s.hostname)))
    }

    /// The DestinationRule for `hostname`, seen from a proxy in `proxy_namespace`: a rule in the proxy's namespace,
    /// then in the service's namespace, then in the root namespace; within one, the most specific host wins.
    pub fn destination_rule(&self, hostname: &str, proxy_namespace: &str) -> Option<&Arc<Object<DestinationRule>>> {
        let service_namespace = self.services.get(hostname).map(|s| s.namespace.as_str());
        let namespaces = [Some(proxy_namespace), service_namespace, Some(ROOT_NAMESPACE)];
        for namespace in namespaces.into_iter().flatten() {
            let Some(index) = self.rule_index.get(namespace) else { continue };
            if let Some(rule) = index.exact.get(hostname) {
                return Some(rule);
            }
            let best = index
                .wildcard
                .iter()
                .filter(|(pattern, _)| host_matches(pattern, hostname))
                .max_by_key(|(pattern, _)| host_specificity(pattern))
                .map(|(_, rule)| rule);
            if best.is_some() {
                return best;
            }
        }
        None
    }
}

fn kubernetes_hostname(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.{CLUSTER_DOMAIN}")
}

fn short_names(name: &str, namespace: &str) -> Vec<String> {
    vec![name.to_owned(), format!("{name}.{namespace}"), format!("{name}.{namespace}.svc")]
}

/// The namespaces where an EndpointSlice or a Pod of `world` is not the same object as in `before` (changed, added
/// or removed): the Kubernetes services there may have other endpoints.
fn changed_registry_namespaces(before: &World, world: &World) -> BTreeSet<String> {
    let mut namespaces = BTreeSet::new();
    changed_namespaces(&before.endpoint_slices, &world.endpoint_slices, &mut namespaces);
    changed_namespaces(&before.pods, &world.pods, &mut namespaces);
    namespaces
}

/// Adds the namespaces of the objects that differ between `before` and `now` (both sorted by namespace and name).
fn changed_namespaces<T>(before: &[Arc<Object<T>>], now: &[Arc<Object<T>>], namespaces: &mut BTreeSet<String>) {
    let (mut i, mut j) = (0, 0);
    while i < before.len() || j < now.len() {
        let order = match (before.get(i), now.get(j)) {
            (Some(a), Some(b)) if Arc::ptr_eq(a, b) => {
                (i, j) = (i + 1, j + 1);
                continue;
            }
            (Some(a), Some(b)) => (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, _) => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                namespaces.insert(before[i].meta.namespace.clone());
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                namespaces.insert(now[j].meta.namespace.clone());
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                namespaces.insert(now[j].meta.namespace.clone());
                (i, j) = (i + 1, j + 1);
            }
        }
    }
}

/// The objects of `objects` (sorted by namespace) in `namespaces`.
fn namespaces_of<T>(objects: &[Arc<Object<T>>], namespaces: &BTreeSet<String>) -> Vec<Arc<Object<T>>> {
    let mut found = Vec::new();
    for namespace in namespaces {
        let start = objects.partition_point(|o| o.meta.namespace < *namespace);
        let end = start + objects[start..].partition_point(|o| o.meta.namespace == *namespace);
        found.extend(objects[start..end].iter().cloned());
    }
    found
}

/// EndpointSlices by namespace and service, Pods by namespace and name: what a Kubernetes service's endpoints
/// come from, found without scanning the World once per service.
struct Registry<'a> {
    slices: BTreeMap<(&'a str, &'a str), Vec<&'a Object<registry::EndpointSlice>>>,
    pods: BTreeMap<(&'a str, &'a str), &'a Object<registry::Pod>>,
}

impl<'a> Registry<'a> {
    fn new(slices: &'a [Arc<Object<registry::EndpointSlice>>], pods: &'a [Arc<Object<registry::Pod>>]) -> Self {
        let mut by_service: BTreeMap<(&str, &str), Vec<_>> = BTreeMap::new();
        for slice in slices {
            let key = (slice.meta.namespace.as_str(), slice.spec.service_name.as_str());
            by_service.entry(key).or_default().push(slice.as_ref());
        }
        let pods = pods.iter().map(|p| ((p.meta.namespace.as_str(), p.meta.name.as_str()), p.as_ref())).collect();
        Registry { slices: by_service, pods }
    }

    /// The EndpointSlices of the service `namespace`/`name`, in the World's order.
    fn slices<'s>(&'s self, namespace: &'s str, name: &'s str) -> &'s [&'a Object<registry::EndpointSlice>] {
        let slices: &'s BTreeMap<(&'s str, &'s str), Vec<_>> = &self.slices;
        slices.get(&(namespace, name)).map_or(&[], Vec::as_slice)
    }

    fn pod<'s>(&'s self, namespace: &'s str, name: &'s str) -> Option<&'a Object<registry::Pod>> {
        let pods: &'s BTreeMap<(&'s str, &'s str), _> = &self.pods;
        pods.get(&(namespace, name)).copied()
    }

    /// The pods of `namespace`, by name.
    fn pods_in<'s>(&'s self, namespace: &'s str) -> impl Iterator<Item = &'a Object<registry::Pod>> + 's {
        let pods: &'s BTreeMap<(&'s str, &'s str), _> = &self.pods;
        pods.range((namespace, "")..).take_while(move |((n, _), _)| *n == namespace).map(|(_, pod)| *pod)
    }
}

fn kubernetes_service(object: &Object<registry::Service>, registry: &Registry<'_>) -> Service {
    let (name, namespace) = (&object.meta.name, &object.meta.namespace);
    let spec = &object.spec;
    let ports: Vec<Port> = spec
        .ports
        .iter()
        // As Istio: UDP and SCTP ports are not routed; any other protocol (`TCP`, or the `HTTP` some hand-written
        // files carry) is a TCP port whose application protocol the port name or `appProtocol` gives.
        .filter(|p| !is_udp_or_sctp(&p.protocol))
        .filter_map(|p| {
            let number = u32::try_from(p.port).ok()?;
            let protocol = Protocol::parse(p.app_protocol.as_deref().unwrap_or(&p.name));
            Some(Port { number, name: p.name.clone(), protocol })
        })
        .collect();
    let slices = registry.slices(namespace, name);
    let mut endpoints = Vec::new();
    if !slices.is_empty() {
        for slice in slices {
            for endpoint in slice.spec.endpoints.iter().filter(|e| e.ready && !e.terminating) {
                let Some(address) = endpoint.addresses.first() else { continue };
                let labels = endpoint
                    .pod
                    .as_deref()
                    .and_then(|pod| registry.pod(namespace, pod))
                    .map(|pod| pod.meta.labels.clone())
                    .unwrap_or_default();
                let mut endpoint_ports = BTreeMap::new();
                for port in &spec.ports {
                    let Some(slice_port) = slice.spec.ports.iter().find(|sp| sp.name == port.name) else { continue };
                    if let (Ok(service_port), Ok(endpoint_port)) =
                        (u32::try_from(port.port), u32::try_from(slice_port.port))
                    {
                        endpoint_ports.insert(service_port, endpoint_port);
                    }
                }
                endpoints.push(Endpoint { address: address.clone(), ports: endpoint_ports, labels, weight: None });
            }
        }
    } else if !spec.selector.is_empty() {
        // No EndpointSlices (e.g. YAML written by hand): the ready pods the selector picks.
        for pod in registry.pods_in(namespace) {
            let selected = spec.selector.iter().all(|(k, v)| pod.meta.labels.get(k) == Some(v));
            let Some(ip) = pod.spec.ip.as_ref().filter(|_| selected && pod.spec.ready) else { continue };
            let mut endpoint_ports = BTreeMap::new();
            for port in &spec.ports {
                let target = match &port.target_port {
                    None => Some(port.port),
                    Some(TargetPort::Number(n)) => Some(*n),
                    Some(TargetPort::Name(n)) => {
                        pod.spec.named_ports.iter().find(|(name, _)| name == n).map(|(_, p)| *p)
                    }
                };
                if let (Ok(service_port), Some(Ok(endpoint_port))) =
                    (u32::try_from(port.port), target.map(u32::try_from))
                {
                    endpoint_ports.insert(service_port, endpoint_port);
                }
            }
            endpoints.push(Endpoint {
                address: ip.clone(),
                ports: endpoint_ports,
                labels: pod.meta.labels.clone(),
                weight: None,
            });
        }
    }
    endpoints.sort_by(|a, b| a.address.cmp(&b.address));
    Service {
        hostname: kubernetes_hostname(name, namespace),
        namespace: namespace.clone(),
        ports: sorted_ports(ports),
        resolution: Resolution::Static,
        addresses: spec.cluster_ip.iter().cloned().collect(),
        endpoints,
        origin: object.reference(Kind::Service),
        source: object.meta.source.clone(),
        short_names: short_names(name, namespace),
    }
}

/// Kubernetes transport protocols pilotfish does not route.
pub fn is_udp_or_sctp(protocol: &str) -> bool {
    protocol.eq_ignore_ascii_case("UDP") || protocol.eq_ignore_ascii_case("SCTP")
}

fn sorted_ports(mut ports: Vec<Port>) -> Vec<Port> {
    ports.sort_by_key(|p| p.number);
    ports.dedup_by_key(|p| p.number);
    ports
}

fn service_entry_services(object: &Object<ServiceEntry>) -> Vec<Service> {
    let spec = &object.spec;
    let resolution = match spec.resolution.as_deref().unwrap_or("NONE").to_ascii_uppercase().as_str() {
        "STATIC" => Resolution::Static,
        "DNS" | "DNS_ROUND_ROBIN" => Resolution::Dns,
        _ => Resolution::Passthrough,
    };
    let ports: Vec<(Port, Option<u32>, String)> = spec
        .ports
        .iter()
        .filter_map(|p| {
            let number = u32::try_from(p.number).ok()?;
            let protocol = Protocol::parse(if p.protocol.is_empty() { &p.name } else { &p.protocol });
            let target = p.target_port.and_then(|t| u32::try_from(t).ok());
            Some((Port { number, name: p.name.clone(), protocol }, target, p.name.clone()))
        })
        .collect();
    spec.hosts
        .iter()
        .map(|host| {
            let mut endpoints: Vec<Endpoint> = spec
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    address: e.address.clone(),
                    ports: ports
                        .iter()
                        .map(|(port, target, name)| {
                            let mapped = e.ports.get(name).and_then(|p| u32::try_from(*p).ok());
                            (port.number, mapped.or(*target).unwrap_or(port.number))
                        })
                        .collect(),
                    labels: e.labels.clone(),
                    weight: e.weight.and_then(|w| u32::try_from(w).ok()),
                })
                .collect();
            if endpoints.is_empty() && resolution == Resolution::Dns {
                // A DNS entry without endpoints resolves its own host name.
                endpoints.push(Endpoint {
                    address: host.clone(),
                    ports: ports.iter().map(|(p, t, _)| (p.number, t.unwrap_or(p.number))).collect(),
                    labels: Labels::new(),
                    weight: None,
                });
            }
            Service {
                hostname: host.clone(),
                namespace: object.meta.namespace.clone(),
                ports: sorted_ports(ports.iter().map(|(p, _, _)| p.clone()).collect()),
                resolution,
                addresses: spec.addresses.clone(),
                endpoints,
                origin: object.reference(Kind::ServiceEntry),
                source: object.meta.source.clone(),
                short_names: service_entry_short_names(host, &object.meta.namespace),
            }
        })
        .collect()
}

/// A ServiceEntry host written as a Kubernetes service name of its own namespace (`reviews.default.svc.cluster.local`)
/// answers to the same short names as a Service would: istiod expands any host sharing the proxy's
/// `<ns>.svc.cluster.local` domain (`generateAltVirtualHosts`), whatever registry it came from.
fn service_entry_short_names(host: &str, namespace: &str) -> Vec<String> {
    match host.strip_suffix(&format!(".{namespace}.svc.cluster.local")) {
        Some(name) if !name.is_empty() && !name.contains('.') && !name.contains('*') => short_names(name, namespace),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
