//! ServiceEntry rules: istiod's `ValidateServiceEntry` and its checks of inline endpoints, plus what pilotfish does
//! not support (`workloadSelector`, unix domain socket endpoints).

use std::collections::BTreeMap;

use super::{
    Report, check_export_to, check_fqdn, check_labels, check_port, check_wildcard_domain, is_dns1123_label, is_ip,
    is_ip_or_cidr, is_istio_protocol, is_partial_wildcard,
};
use crate::diagnostics::Diagnostic;
use crate::input::istio::{ServiceEntry, WorkloadEntry};
use crate::input::{Kind, Object};

const UNIX_PREFIX: &str = "unix://";

/// How a ServiceEntry finds its endpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolution {
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

/// Validates one ServiceEntry.
pub fn validate_service_entry(se: &Object<ServiceEntry>) -> Vec<Diagnostic> {
    let mut report = Report::new(se, Kind::ServiceEntry);
    let spec = &se.spec;

    let resolution = match spec.resolution.as_deref().unwrap_or("NONE") {
        "NONE" => Some(Resolution::None),
        "STATIC" => Some(Resolution::Static),
        "DNS" => Some(Resolution::Dns),
        "DNS_ROUND_ROBIN" => Some(Resolution::DnsRoundRobin),
        other => {
            report.error(
                "spec.resolution",
                format!("resolution must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, got {other:?}"),
            );
            None
        }
    };
    if let Some(location) = spec.location.as_deref()
        && location != "MESH_EXTERNAL"
        && location != "MESH_INTERNAL"
    {
        report.error("spec.location", format!("location must be MESH_EXTERNAL or MESH_INTERNAL, got {location:?}"));
    }

    check_hosts(&mut report, spec, resolution);
    check_addresses(&mut report, spec, resolution);
    let port_names = check_ports(&mut report, spec, resolution);

    if spec.workload_selector.is_some() {
        report.warning(
            "spec.workloadSelector",
            "workloadSelector is not supported by pilotfish: it is ignored, and the selected workloads are not \
             endpoints of this service",
        );
        if !spec.endpoints.is_empty() {
            report.error("spec.workloadSelector", "a ServiceEntry may set workloadSelector or endpoints, not both");
        }
    }
    match resolution {
        Some(Resolution::None) if !spec.endpoints.is_empty() => {
            report.error("spec.endpoints", "resolution NONE takes no endpoints: use STATIC or DNS to list endpoints");
        }
        Some(Resolution::Static) if spec.endpoints.is_empty() && spec.workload_selector.is_none() => {
            report.warning("spec.endpoints", "resolution STATIC without endpoints: this service has no endpoints");
        }
        Some(Resolution::DnsRoundRobin) if spec.endpoints.len() > 1 => {
            report.error("spec.endpoints", "resolution DNS_ROUND_ROBIN takes at most one endpoint");
        }
        _ => {}
    }
    if let Some(resolution @ (Resolution::Static | Resolution::Dns | Resolution::DnsRoundRobin)) = resolution {
        for (index, endpoint) in spec.endpoints.iter().enumerate() {
            check_endpoint(&mut report, &format!("spec.endpoints[{index}]"), endpoint, resolution, &port_names);
        }
    }
    check_export_to(&mut report, &se.meta.namespace, &spec.export_to, true);
    report.finish()
}

fn check_hosts(report: &mut Report, spec: &ServiceEntry, resolution: Option<Resolution>) {
    if spec.hosts.is_empty() {
        report.error("spec.hosts", "a ServiceEntry needs at least one host, e.g. api.example.com");
    }
    let dns = matches!(resolution, Some(Resolution::Dns | Resolution::DnsRoundRobin));
    for (index, host) in spec.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{index}]");
        if host == "*" {
            report.error(field, "host \"*\" is not allowed in a ServiceEntry: name the hosts, e.g. *.example.com");
        } else if let Err(err) = check_wildcard_domain(host) {
            report.error(field, format!("host {err}"));
        } else if dns && spec.endpoints.is_empty() && check_fqdn(host).is_err() {
            report.error(
                field,
                format!(
                    "host {host:?} cannot be resolved by DNS: a wildcard host needs resolution NONE, or endpoints to \
                     resolve instead"
                ),
            );
        } else if is_partial_wildcard(host) {
            report.warning(
                field,
                format!("host {host:?}: partial wildcards are not supported; write *.{}", host.trim_start_matches('*')),
            );
        }
    }
}

fn check_addresses(report: &mut Report, spec: &ServiceEntry, resolution: Option<Resolution>) {
    for (index, address) in spec.addresses.iter().enumerate() {
        let field = format!("spec.addresses[{index}]");
        if !is_ip_or_cidr(address) {
            report.error(field, format!("address {address:?} is not an IP address or CIDR block"));
        } else if address.contains('/') && !matches!(resolution, Some(Resolution::None | Resolution::Static)) {
            report.error(field, format!("CIDR address {address:?} needs resolution NONE or STATIC"));
        }
    }
}

/// Checks the ports and returns their names.
fn check_ports<'a>(
    report: &mut Report,
    spec: &'a ServiceEntry,
    resolution: Option<Resolution>,
) -> BTreeMap<&'a str, usize> {
    if spec.ports.is_empty() {
        report.error(
            "spec.ports",
            "a ServiceEntry needs at least one port, e.g. {number: 443, name: https, protocol: TLS}",
        );
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut numbers: BTreeMap<i64, usize> = BTreeMap::new();
    let mut only_http_or_tls = true;
    for (index, port) in spec.ports.iter().enumerate() {
        let field = format!("spec.ports[{index}]");
        check_port(report, format!("{field}.number"), "port number", port.number);
        if let Some(first) = numbers.get(&port.number) {
            report.error(
                format!("{field}.number"),
                format!("port {} is already declared by ports[{first}]", port.number),
            );
        } else {
            numbers.insert(port.number, index);
        }
        if port.name.is_empty() {
            report.error(format!("{field}.name"), "port name is required");
        } else if !is_dns1123_label(&port.name) {
            report.error(
                format!("{field}.name"),
                format!("port name {:?} is not a DNS-1123 label (1 to 63 letters, digits and '-')", port.name),
            );
        }
        if let Some(first) = names.get(port.name.as_str()) {
            report
                .error(format!("{field}.name"), format!("port name {:?} is already used by ports[{first}]", port.name));
        } else {
            names.insert(&port.name, index);
        }
        if !port.protocol.is_empty() && !is_istio_protocol(&port.protocol) {
            report.error(
                format!("{field}.protocol"),
                format!(
                    "protocol {:?} is unknown: expected one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS, UDP",
                    port.protocol
                ),
            );
        }
        let protocol = port.protocol.to_ascii_uppercase();
        if !matches!(protocol.as_str(), "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTPS" | "TLS") {
            only_http_or_tls = false;
        }
        if let Some(target) = port.target_port.filter(|t| *t != 0) {
            check_port(report, format!("{field}.targetPort"), "targetPort", target);
            if resolution == Some(Resolution::None) {
                report.warning(format!("{field}.targetPort"), "targetPort has no effect with resolution NONE");
            }
        }
    }
    if spec.hosts.len() > 1 && !only_http_or_tls && resolution.is_some_and(|r| r != Resolution::None) {
        report.error(
            "spec.hosts",
            "several hosts need HTTP or TLS ports (told apart by Host header or SNI) unless resolution is NONE; \
             plain TCP cannot tell the hosts apart",
        );
    }
    names
}

fn check_endpoint(
    report: &mut Report,
    field: &str,
    endpoint: &WorkloadEntry,
    resolution: Resolution,
    port_names: &BTreeMap<&str, usize>,
) {
    let address = endpoint.address.as_str();
    let at = format!("{field}.address");
    if address.is_empty() {
        if endpoint.network.is_empty() {
            report.error(at, "endpoint address is required");
        } else {
            report.warning(
                at,
                format!("endpoint has no address, only network {:?}: pilotfish cannot reach it", endpoint.network),
            );
        }
    } else if address.starts_with(UNIX_PREFIX) {
        report.warning(at, "unix domain socket endpoints are not supported by pilotfish");
    } else if resolution == Resolution::Static {
        if !is_ip(address) {
            report.error(
                at,
                format!(
                    "endpoint address {address:?} is not an IP address: resolution STATIC needs IPs (use DNS for \
                     hostnames)"
                ),
            );
        }
    } else if !is_ip(address) && check_fqdn(address).is_err() {
        report.error(at, format!("endpoint address {address:?} is neither a hostname nor an IP address"));
    }
    for (name, number) in &endpoint.ports {
        let at = format!("{field}.ports.{name}");
        if !port_names.contains_key(name.as_str()) {
            report.error(
                at.clone(),
                format!(
                    "endpoint port {name:?} names no port of this ServiceEntry (declared: {})",
                    port_names.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        check_port(report, at, "endpoint port", *number);
    }
    check_labels(report, &format!("{field}.labels"), &endpoint.labels);
    if let Some(weight) = endpoint.weight
        && weight < 0
    {
        report.error(format!("{field}.weight"), format!("weight must be 0 or more, got {weight}"));
    }
}
