//! Cross-object checks that hold for every proxy class, with `istioctl analyze` codes:
//! IST0101 (a VirtualService names a Gateway that does not exist), IST0109 (two mesh VirtualServices for one
//! host), IST0132 (a VirtualService host no server of its Gateway accepts), IST0174 (a DestinationRule whose host
//! matches no service).
//!
//! Checks that depend on the proxy (destination hosts, subsets, ports) are made while translating.

use std::collections::{BTreeMap, BTreeSet};

use crate::diagnostics::Diagnostic;
use crate::input::Kind;
use crate::model::{Model, host_matches, resolve_host};
use crate::proxy::{ProxyClass, Role};
use crate::translate::gateway_name;

pub fn analyze(model: &Model) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let gateways: BTreeMap<String, _> =
        model.gateways.iter().map(|g| (format!("{}/{}", g.meta.namespace, g.meta.name), g)).collect();
    let mut mesh_hosts: BTreeMap<String, String> = BTreeMap::new();
    let mut by_age: Vec<_> = model.virtual_services.iter().collect();
    by_age.sort_by(|a, b| {
        (&a.meta.creation_timestamp, &a.meta.namespace, &a.meta.name).cmp(&(
            &b.meta.creation_timestamp,
            &b.meta.namespace,
            &b.meta.name,
        ))
    });
    for vs in by_age {
        let reference = vs.reference(Kind::VirtualService);
        let report = |diagnostic: Diagnostic| diagnostic.object(reference.clone(), vs.meta.source.clone());
        for (index, name) in vs.spec.gateways.iter().enumerate() {
            if name == "mesh" {
                continue;
            }
            let full = gateway_name(name, &vs.meta.namespace);
            let Some(gateway) = gateways.get(&full) else {
                diagnostics.push(
                    report(Diagnostic::error(format!("referenced gateway not found: {full:?}")))
                        .code("IST0101")
                        .field(format!("spec.gateways[{index}]")),
                );
                continue;
            };
            let server_hosts: Vec<&str> = gateway
                .spec
                .servers
                .iter()
                .flat_map(|s| s.hosts.iter())
                .map(|h| h.split_once('/').map_or(h.as_str(), |(_, host)| host))
                .collect();
            for host in &vs.spec.hosts {
                // Short names are resolved first, as translation does (`web` is `web.<ns>.svc.cluster.local`).
                let resolved = resolve_host(host, &vs.meta.namespace);
                if !server_hosts.iter().any(|s| host_matches(s, &resolved) || host_matches(&resolved, s)) {
                    diagnostics.push(
                        report(Diagnostic::warning(format!(
                            "host {host:?} is not among the hosts of gateway {full} ({}); it gets no route there",
                            server_hosts.join(", ")
                        )))
                        .code("IST0132")
                        .field("spec.hosts"),
                    );
                }
            }
        }
        let for_mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
        if for_mesh {
            for host in &vs.spec.hosts {
                let host = resolve_host(host, &vs.meta.namespace);
                let name = format!("{}/{}", vs.meta.namespace, vs.meta.name);
                match mesh_hosts.get(&host) {
                    Some(first) => diagnostics.push(
                        report(Diagnostic::warning(format!(
                            "host {host} is also routed for the mesh by VirtualService {first}, which is older and wins"
                        )))
                        .code("IST0109")
                        .field("spec.hosts"),
                    ),
                    None => {
                        mesh_hosts.insert(host, name);
                    }
                }
            }
        }
    }
    for rule in &model.destination_rules {
        let host = resolve_host(&rule.spec.host, &rule.meta.namespace);
        if model.services_matching(&host).next().is_none() {
            diagnostics.push(
                Diagnostic::warning(format!("host {host:?} matches no service; the rule has no effect"))
                    .code("IST0174")
                    .object(rule.reference(Kind::DestinationRule), rule.meta.source.clone())
                    .field("spec.host"),
            );
        }
    }
    diagnostics
}

/// One proxy class per Gateway selector and a sidecar per namespace: enough to see every class-specific diagnostic
/// the input can produce (`pilotfish analyze` translates each).
pub fn representative_classes(model: &Model) -> Vec<ProxyClass> {
    let mut classes = BTreeSet::new();
    for gateway in &model.gateways {
        let mut class = ProxyClass::new(Role::Gateway);
        class.labels = gateway.spec.selector.clone();
        class.namespace = gateway.meta.namespace.clone();
        classes.insert(class);
    }
    let namespaces: BTreeSet<&String> = model
        .virtual_services
        .iter()
        .map(|v| &v.meta.namespace)
        .chain(model.services.values().map(|s| &s.namespace))
        .collect();
    for namespace in namespaces {
        let mut class = ProxyClass::new(Role::Sidecar);
        class.namespace = namespace.clone();
        classes.insert(class);
    }
    if classes.is_empty() {
        classes.insert(ProxyClass::new(Role::Sidecar));
    }
    classes.into_iter().collect()
}
