//! Gateways against the workloads they select: IST0101 (no workload has the selector's labels), IST0162 (a
//! server port the Services in front of those workloads do not expose), IST0145 (Gateways of the same workloads
//! that serve one host on one port).

use std::collections::{BTreeMap, BTreeSet};

use super::{DEFAULT_GATEWAY_NAMESPACE, default_gateway_labels, labels_text, selects};
use crate::diagnostics::Diagnostic;
use crate::input::istio::Gateway;
use crate::input::registry::{Pod, TargetPort};
use crate::input::{Kind, Labels, Object, World};
use crate::model::is_udp_or_sctp;

pub fn check(world: &World) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for gateway in &world.gateways {
        let pods: Vec<&Object<Pod>> =
            world.pods.iter().filter(|p| selects(&gateway.spec.selector, &p.meta.labels)).map(AsRef::as_ref).collect();
        let default_workload = selects(&gateway.spec.selector, &default_gateway_labels());
        if pods.is_empty() && !default_workload {
            diagnostics.push(unselected(gateway));
        }
        diagnostics.extend(unexposed_ports(world, gateway, &pods));
        let namespace = pods.first().map(|p| p.meta.namespace.as_str());
        if let Some(namespace) = namespace.or(default_workload.then_some(DEFAULT_GATEWAY_NAMESPACE)) {
            diagnostics.extend(missing_credentials(world, gateway, namespace));
        }
    }
    diagnostics.extend(conflicts(world));
    diagnostics
}

fn report(gateway: &Object<Gateway>, diagnostic: Diagnostic, field: impl Into<String>) -> Diagnostic {
    diagnostic.object(gateway.reference(Kind::Gateway), gateway.meta.source.clone()).field(field)
}

/// IST0101: no Pod of the input has the selector's labels, and neither does the default ingress gateway.
fn unselected(gateway: &Object<Gateway>) -> Diagnostic {
    let selector = labels_text(&gateway.spec.selector);
    report(
        gateway,
        Diagnostic::error(format!(
            "referenced selector not found: no workload has labels {selector} (no Pod of the input, and not the \
             default ingress gateway {} in {DEFAULT_GATEWAY_NAMESPACE}), so no gateway proxy takes this Gateway's \
             servers; a proxy started with these labels (pilotfish bootstrap --role gateway --labels …) would",
            labels_text(&default_gateway_labels()),
        ))
        .code("IST0101"),
        "spec.selector",
    )
}

/// IST0101: a server's `credentialName` that names no Secret of the namespace of the gateway workload (`ns/name`
/// names its namespace). Checked only when the input holds Secrets at all: pilotfish does not read them from a
/// cluster, and files without any say nothing about what the cluster has.
fn missing_credentials(world: &World, gateway: &Object<Gateway>, namespace: &str) -> Vec<Diagnostic> {
    let secrets: Vec<(&str, &str)> =
        world.ignored.iter().filter(|o| o.is("", "Secret")).map(|o| (o.namespace.as_str(), o.name.as_str())).collect();
    if secrets.is_empty() {
        return Vec::new();
    }
    let mut diagnostics = Vec::new();
    for (index, server) in gateway.spec.servers.iter().enumerate() {
        let Some(credential) = server.tls.as_ref().map(|t| t.credential_name.as_str()).filter(|c| !c.is_empty()) else {
            continue;
        };
        let (secret_namespace, name) = credential.split_once('/').unwrap_or((namespace, credential));
        if secrets.contains(&(secret_namespace, name)) {
            continue;
        }
        diagnostics.push(report(
            gateway,
            Diagnostic::error(format!(
                "referenced credentialName not found: {credential:?} (no Secret {secret_namespace}/{name}, where the \
                 gateway workload runs)"
            ))
            .code("IST0101"),
            format!("spec.servers[{index}].tls.credentialName"),
        ));
    }
    diagnostics
}

/// A workload a Gateway selects: a Pod of the input, or the default ingress gateway.
struct Workload<'w> {
    name: String,
    namespace: &'w str,
    labels: &'w Labels,
    named_ports: &'w [(String, i64)],
}

/// IST0162: server ports that no Service selecting the Gateway's workloads exposes, as a port or a target port
/// (istiod's listener port). The default ingress gateway counts only with a Service of the input in front of it:
/// without one (local mode), the gateway proxy listens on the server ports themselves, and there is nothing to check.
fn unexposed_ports(world: &World, gateway: &Object<Gateway>, pods: &[&Object<Pod>]) -> Vec<Diagnostic> {
    let default_labels = default_gateway_labels();
    let mut workloads: Vec<Workload<'_>> = pods
        .iter()
        .map(|p| Workload {
            name: format!("Pod {}/{}", p.meta.namespace, p.meta.name),
            namespace: &p.meta.namespace,
            labels: &p.meta.labels,
            named_ports: &p.spec.named_ports,
        })
        .collect();
    if selects(&gateway.spec.selector, &default_labels) {
        workloads.push(Workload {
            name: format!("the default ingress gateway in {DEFAULT_GATEWAY_NAMESPACE}"),
            namespace: DEFAULT_GATEWAY_NAMESPACE,
            labels: &default_labels,
            named_ports: &[],
        });
    }
    // Ports the workloads receive traffic on through a Service (target ports), and the Services' own ports.
    let mut target_ports = BTreeSet::new();
    let mut service_ports = BTreeSet::new();
    let mut fronting = BTreeSet::new();
    let mut fronted = Vec::new();
    for workload in &workloads {
        let start = world.services.partition_point(|s| s.meta.namespace.as_str() < workload.namespace);
        let services = world.services[start..]
            .iter()
            .take_while(|s| s.meta.namespace == workload.namespace)
            .filter(|s| !s.spec.selector.is_empty() && selects(&s.spec.selector, workload.labels));
        let mut any = false;
        for service in services {
            any = true;
            fronting.insert(format!("{}/{}", service.meta.namespace, service.meta.name));
            for port in service.spec.ports.iter().filter(|p| !is_udp_or_sctp(&p.protocol)) {
                service_ports.insert(port.port);
                let target = match &port.target_port {
                    Some(TargetPort::Number(n)) => *n,
                    Some(TargetPort::Name(name)) => {
                        workload.named_ports.iter().find(|(n, _)| n == name).map_or(port.port, |(_, p)| *p)
                    }
                    None => port.port,
                };
                target_ports.insert(target);
            }
        }
        if any || !pods.is_empty() {
            fronted.push(workload.name.clone());
        }
    }
    if pods.is_empty() && fronting.is_empty() {
        return Vec::new();
    }
    let mut diagnostics = Vec::new();
    for (index, server) in gateway.spec.servers.iter().enumerate() {
        let Some(port) = &server.port else { continue };
        if target_ports.contains(&port.number) || service_ports.contains(&port.number) {
            continue;
        }
        let why = if fronting.is_empty() {
            format!("no Service selects the gateway's workloads ({})", fronted.join(", "))
        } else {
            format!(
                "Service {} in front of the gateway's workloads ({}) has no port or target port {}",
                fronting.iter().cloned().collect::<Vec<_>>().join(", "),
                fronted.join(", "),
                port.number
            )
        };
        diagnostics.push(report(
            gateway,
            Diagnostic::warning(format!(
                "port {} is not exposed by a Service of the gateway workloads: {why}; the gateway listens on {} itself, \
                 which clients reach only on the workload",
                port.number, port.number
            ))
            .code("IST0162"),
            format!("spec.servers[{index}].port.number"),
        ));
    }
    diagnostics
}

/// A server of a Gateway, as conflicts are told: its port and its `(host, bind)` pairs.
struct Claim<'w> {
    gateway: &'w Object<Gateway>,
    index: usize,
    port: i64,
    hosts: BTreeSet<(&'w str, &'w str)>,
}

/// IST0145: of two Gateways that select the same workloads (the same selector, or one workload both select), servers
/// on one port that name one host with one bind. Each server in such a conflict is reported once, with the Gateways
/// it conflicts with.
fn conflicts(world: &World) -> Vec<Diagnostic> {
    let mut by_port: BTreeMap<i64, Vec<Claim<'_>>> = BTreeMap::new();
    for gateway in &world.gateways {
        for (index, server) in gateway.spec.servers.iter().enumerate() {
            let port = server.port.as_ref().map_or(0, |p| p.number);
            let hosts = server.hosts.iter().map(|h| (h.as_str(), server.bind.as_str())).collect();
            by_port.entry(port).or_default().push(Claim { gateway, index, port, hosts });
        }
    }
    let default_workload = default_gateway_labels();
    let same_workloads = |a: &Labels, b: &Labels| {
        a == b
            || (selects(a, &default_workload) && selects(b, &default_workload))
            || world.pods.iter().any(|p| selects(a, &p.meta.labels) && selects(b, &p.meta.labels))
    };
    let mut diagnostics = Vec::new();
    for claims in by_port.values() {
        for claim in claims {
            let others: BTreeSet<String> = claims
                .iter()
                .filter(|other| !std::ptr::eq(other.gateway, claim.gateway))
                .filter(|other| !claim.hosts.is_disjoint(&other.hosts))
                .filter(|other| same_workloads(&claim.gateway.spec.selector, &other.gateway.spec.selector))
                .map(|other| format!("{}/{}", other.gateway.meta.namespace, other.gateway.meta.name))
                .collect();
            if others.is_empty() {
                continue;
            }
            let hosts: Vec<&str> = claim.gateway.spec.servers[claim.index].hosts.iter().map(String::as_str).collect();
            diagnostics.push(report(
                claim.gateway,
                Diagnostic::error(format!(
                    "conflicts with Gateway {} (workload selector {}, port {}, hosts {}): they serve the same host on \
                     the same port of the same workloads, and only one of them takes effect there",
                    others.into_iter().collect::<Vec<_>>().join(", "),
                    labels_text(&claim.gateway.spec.selector),
                    claim.port,
                    hosts.join(", ")
                ))
                .code("IST0145"),
                format!("spec.servers[{}]", claim.index),
            ));
        }
    }
    diagnostics
}
