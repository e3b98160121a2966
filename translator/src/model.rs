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
use crate::input::{Kind, Labels, Object, Source, World};

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
#[derive(Debug, Default)]
pub struct Model {
    pub services: BTreeMap<String, Arc<Service>>,
    pub gateways: Vec<Arc<Object<Gateway>>>,
    pub virtual_services: Vec<Arc<Object<VirtualService>>>,
    pub destination_rules: Vec<Arc<Object<DestinationRule>>>,
    /// Kubernetes Services by namespace and name, with their selectors: gateway ports resolve through them.
    pub kubernetes_services: Vec<Arc<Object<registry::Service>>>,
    pub diagnostics: Vec<Diagnostic>,
    /// `destination_rules` by namespace: exact hosts (the last rule wins, as `max_by_key` picks) and wildcards.
    rule_index: BTreeMap<String, RuleIndex>,
}

#[derive(Debug, Default)]
struct RuleIndex {
    exact: BTreeMap<String, Arc<Object<DestinationRule>>>,
    wildcard: Vec<(String, Arc<Object<DestinationRule>>)>,
}

impl Model {
    /// Builds the model from the valid objects of `world` (`invalid` lists the others).
    pub fn new(world: &World, invalid: &BTreeSet<ObjectRef>) -> Model {
        let valid = |kind: Kind, meta: &crate::input::Meta| {
            !invalid.contains(&ObjectRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone() })
        };
        let mut model = Model {
            gateways: world.gateways.iter().filter(|o| valid(Kind::Gateway, &o.meta)).cloned().collect(),
            virtual_services: world
                .virtual_services
                .iter()
                .filter(|o| valid(Kind::VirtualService, &o.meta))
                .cloned()
                .collect(),
            destination_rules: world
                .destination_rules
                .iter()
                .filter(|o| valid(Kind::DestinationRule, &o.meta))
                .cloned()
                .collect(),
            kubernetes_services: world.services.clone(),
            ..Model::default()
        };
        for rule in &model.destination_rules {
            let host = resolve_host(&rule.spec.host, &rule.meta.namespace);
            let index = model.rule_index.entry(rule.meta.namespace.clone()).or_default();
            if host.starts_with('*') {
                index.wildcard.push((host, Arc::clone(rule)));
            } else {
                index.exact.insert(host, Arc::clone(rule));
            }
        }
        let pods: BTreeMap<(&str, &str), &Object<registry::Pod>> =
            world.pods.iter().map(|p| ((p.meta.namespace.as_str(), p.meta.name.as_str()), p.as_ref())).collect();
        for service in &world.services {
            let built = kubernetes_service(service, world, &pods);
            model.services.insert(built.hostname.clone(), Arc::new(built));
        }
        for entry in world.service_entries.iter().filter(|o| valid(Kind::ServiceEntry, &o.meta)) {
            for built in service_entry_services(entry) {
                if let Some(existing) = model.services.get(&built.hostname) {
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
                model.services.insert(built.hostname.clone(), Arc::new(built));
            }
        }
        model
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

fn short_names(name: &str, namespace: &str) -> Vec<String> {
    vec![name.to_owned(), format!("{name}.{namespace}"), format!("{name}.{namespace}.svc")]
}

fn kubernetes_service(
    object: &Object<registry::Service>,
    world: &World,
    pods: &BTreeMap<(&str, &str), &Object<registry::Pod>>,
) -> Service {
    let (name, namespace) = (&object.meta.name, &object.meta.namespace);
    let spec = &object.spec;
    let ports: Vec<Port> = spec
        .ports
        .iter()
        .filter(|p| p.protocol.eq_ignore_ascii_case("TCP"))
        .filter_map(|p| {
            let number = u32::try_from(p.port).ok()?;
            let protocol = Protocol::parse(p.app_protocol.as_deref().unwrap_or(&p.name));
            Some(Port { number, name: p.name.clone(), protocol })
        })
        .collect();
    let slices: Vec<_> = world
        .endpoint_slices
        .iter()
        .filter(|s| &s.meta.namespace == namespace && &s.spec.service_name == name)
        .collect();
    let mut endpoints = Vec::new();
    if !slices.is_empty() {
        for slice in slices {
            for endpoint in slice.spec.endpoints.iter().filter(|e| e.ready && !e.terminating) {
                let Some(address) = endpoint.addresses.first() else { continue };
                let labels = endpoint
                    .pod
                    .as_deref()
                    .and_then(|pod| pods.get(&(namespace.as_str(), pod)))
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
        for pod in world.pods.iter().filter(|p| &p.meta.namespace == namespace) {
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
        hostname: format!("{name}.{namespace}.{CLUSTER_DOMAIN}"),
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
