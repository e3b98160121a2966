//! Gateway rules: istiod's `ValidateGateway`, `validateServer` and `validateTLSOptions`, plus the servers
//! pilotfish does not serve yet (HTTPS, TLS, TCP). Those are warnings, so the HTTP servers of the same Gateway keep
//! working.

use std::collections::BTreeMap;

use super::{
    Report, check_port, check_wildcard_domain, is_dns1123_label, is_ip, is_istio_protocol, is_partial_wildcard,
};
use crate::diagnostics::Diagnostic;
use crate::input::istio::{Gateway, Server, ServerTls};
use crate::input::{Kind, Object};

const UNIX_PREFIX: &str = "unix://";

/// How pilotfish treats a server protocol.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ServerProtocol {
    /// HTTP, HTTP2, GRPC, GRPC-WEB: served.
    Http,
    /// HTTPS, TLS: terminated or passed through by istiod; not served by pilotfish yet.
    Tls,
    /// TCP and the TCP-proxied MONGO, MYSQL, REDIS: not served yet.
    Tcp,
    /// Known to Istio, meaningless or unsupported on a pilotfish gateway (UDP, HTTP_PROXY).
    Other,
}

impl ServerProtocol {
    fn parse(protocol: &str) -> Option<ServerProtocol> {
        Some(match protocol.to_ascii_uppercase().as_str() {
            "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" => ServerProtocol::Http,
            "HTTPS" | "TLS" => ServerProtocol::Tls,
            "TCP" | "MONGO" | "MYSQL" | "REDIS" => ServerProtocol::Tcp,
            other if is_istio_protocol(other) => ServerProtocol::Other,
            _ => return None,
        })
    }
}

/// Validates one Gateway.
pub fn validate_gateway(gateway: &Object<Gateway>) -> Vec<Diagnostic> {
    let mut report = Report::new(gateway, Kind::Gateway);
    let name = &gateway.meta.name;
    if !is_dns1123_label(name) {
        report.error(
            "metadata.name",
            format!(
                "Gateway name {name:?} must be a DNS-1123 label (letters, digits and '-', no dots): VirtualServices \
                 refer to it as <namespace>/<name>"
            ),
        );
    }
    if gateway.spec.servers.is_empty() {
        report.error("spec.servers", "a Gateway needs at least one server");
    }
    let mut port_names: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, server) in gateway.spec.servers.iter().enumerate() {
        let field = format!("spec.servers[{index}]");
        check_server(&mut report, &field, server);
        let Some(port) = server.port.as_ref().filter(|p| !p.name.is_empty()) else { continue };
        if let Some(first) = port_names.get(port.name.as_str()) {
            report.error(
                format!("{field}.port.name"),
                format!("port name {:?} is already used by servers[{first}]; port names must be unique", port.name),
            );
        } else {
            port_names.insert(&port.name, index);
        }
    }
    report.finish()
}

fn check_server(report: &mut Report, field: &str, server: &Server) {
    if server.hosts.is_empty() {
        report.error(format!("{field}.hosts"), "a server needs at least one host, e.g. \"*\" or \"example.com\"");
    }
    for (index, host) in server.hosts.iter().enumerate() {
        check_server_host(report, &format!("{field}.hosts[{index}]"), host);
    }
    let unix = server.bind.starts_with(UNIX_PREFIX);
    if unix {
        report.warning(format!("{field}.bind"), "unix domain socket binds are not supported by pilotfish");
    } else if !server.bind.is_empty() && !is_ip(&server.bind) {
        report.error(format!("{field}.bind"), format!("bind must be an IP address, got {:?}", server.bind));
    }
    if let Some(tls) = &server.tls {
        check_server_tls(report, &format!("{field}.tls"), tls);
    }
    let Some(port) = &server.port else {
        report.error(format!("{field}.port"), "port is required: number, name and protocol");
        return;
    };
    if unix {
        if port.number != 0 {
            report.error(format!("{field}.port.number"), "port number must be 0 when bind is a unix domain socket");
        }
    } else {
        check_port(report, format!("{field}.port.number"), "port number", port.number);
    }
    if port.target_port.is_some_and(|t| t != 0) {
        report.error(
            format!("{field}.port.targetPort"),
            "targetPort has no effect on Gateways (istiod rejects it): the listener uses port.number",
        );
    }
    if port.name.is_empty() {
        report.error(format!("{field}.port.name"), "port name is required");
    }
    let protocol_field = format!("{field}.port.protocol");
    let protocol = if port.protocol.is_empty() {
        report.error(protocol_field, "protocol is required: one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS");
        return;
    } else if let Some(protocol) = ServerProtocol::parse(&port.protocol) {
        protocol
    } else {
        report.error(
            protocol_field,
            format!(
                "protocol {:?} is unknown: expected one of HTTP, HTTPS, GRPC, HTTP2, MONGO, TCP, TLS",
                port.protocol
            ),
        );
        return;
    };
    let upper = port.protocol.to_ascii_uppercase();
    match (protocol, &server.tls) {
        (ServerProtocol::Tls, None) => {
            report
                .error(format!("{field}.tls"), format!("{upper} servers need tls settings (mode and credentialName)"));
        }
        (ServerProtocol::Http, Some(tls)) => {
            let passthrough = matches!(tls.mode.as_deref(), None | Some("PASSTHROUGH" | "AUTO_PASSTHROUGH"));
            let certificates =
                !tls.ca_certificates.is_empty() || !tls.private_key.is_empty() || !tls.server_certificate.is_empty();
            if !passthrough || certificates {
                report.error(
                    format!("{field}.tls"),
                    format!(
                        "{upper} servers are plaintext: tls may only set httpsRedirect (use protocol HTTPS to \
                         terminate TLS)"
                    ),
                );
            }
        }
        (ServerProtocol::Tcp | ServerProtocol::Other, Some(_)) => {
            report.error(format!("{field}.tls"), format!("tls settings need protocol HTTPS or TLS, not {upper}"));
        }
        _ => {}
    }
    if protocol != ServerProtocol::Http && server.tls.as_ref().is_some_and(|t| t.https_redirect) {
        report.warning(format!("{field}.tls.httpsRedirect"), "httpsRedirect only applies to HTTP servers");
    }
    match protocol {
        ServerProtocol::Http => {}
        ServerProtocol::Tls => report.warning(
            protocol_field,
            format!(
                "HTTPS/TLS servers are not served yet: pilotfish skips this {upper} server (the plaintext servers of \
                 this Gateway keep working)"
            ),
        ),
        ServerProtocol::Tcp => report
            .warning(protocol_field, format!("TCP servers are not served yet: pilotfish skips this {upper} server")),
        ServerProtocol::Other => report.warning(
            protocol_field,
            format!("protocol {upper} is not supported on gateways by pilotfish: this server is skipped"),
        ),
    }
}

/// `[namespace/]dnsName`: the namespace `.`, `*` or a name; the host `*`, a domain name with at least one dot
/// (possibly `*.`-prefixed) or an IP address.
fn check_server_host(report: &mut Report, field: &str, host: &str) {
    let name = match host.split_once('/') {
        Some((namespace, name)) => {
            if namespace.is_empty() || name.is_empty() {
                report.error(field, format!("host {host:?}: both namespace and name of namespace/name must be set"));
                return;
            }
            if namespace != "." && namespace != "*" && !is_dns1123_label(namespace) {
                report.error(
                    field,
                    format!("host {host:?}: namespace {namespace:?} must be \".\", \"*\" or a namespace name"),
                );
            }
            name
        }
        None => host,
    };
    if name == "*" {
        return;
    }
    if is_ip(name) {
        return;
    }
    if is_partial_wildcard(name) {
        report.error(field, format!("host {host:?}: a wildcard must be a whole label, as in *.example.com"));
        return;
    }
    if !name.contains('.') {
        report.error(
            field,
            format!(
                "host {host:?}: short names are not allowed on gateways; write a domain name such as {name}.example.com"
            ),
        );
        return;
    }
    if let Err(err) = check_wildcard_domain(name) {
        report.error(field, format!("host {err}"));
    }
}

/// istiod's `validateTLSOptions` for the modes and credentials of a server.
fn check_server_tls(report: &mut Report, field: &str, tls: &ServerTls) {
    let mode = tls.mode.as_deref().unwrap_or("PASSTHROUGH");
    let has_files =
        !tls.server_certificate.is_empty() || !tls.private_key.is_empty() || !tls.ca_certificates.is_empty();
    match mode {
        "PASSTHROUGH" | "AUTO_PASSTHROUGH" => {
            if has_files || !tls.credential_name.is_empty() {
                report.warning(field, format!("{mode} mode uses no certificates: the ones set here are ignored"));
            }
        }
        "ISTIO_MUTUAL" => {
            if has_files || !tls.credential_name.is_empty() {
                report.error(
                    field,
                    "ISTIO_MUTUAL uses the mesh certificates: serverCertificate, privateKey, caCertificates and \
                     credentialName must not be set",
                );
            }
        }
        "SIMPLE" | "MUTUAL" | "OPTIONAL_MUTUAL" => {
            if tls.credential_name.is_empty() {
                let mut missing = Vec::new();
                if tls.server_certificate.is_empty() {
                    missing.push("serverCertificate");
                }
                if tls.private_key.is_empty() {
                    missing.push("privateKey");
                }
                if mode != "SIMPLE" && tls.ca_certificates.is_empty() {
                    missing.push("caCertificates");
                }
                if !missing.is_empty() {
                    report.error(
                        field,
                        format!(
                            "{mode} tls needs credentialName, or {} (missing {})",
                            files_for(mode),
                            missing.join(", ")
                        ),
                    );
                }
            }
        }
        other => report.error(
            format!("{field}.mode"),
            format!(
                "tls mode must be one of PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL, \
                 got {other:?}"
            ),
        ),
    }
}

fn files_for(mode: &str) -> &'static str {
    if mode == "SIMPLE" {
        "serverCertificate and privateKey"
    } else {
        "serverCertificate, privateKey and caCertificates"
    }
}
