//! Gateway proxies: a listener per resolved server port, a route table per port, a virtual host per host that a
//! bound VirtualService and a server both cover.
//!
//! ```text
//!   Gateway ns/gw (selector ⊆ proxy labels) ── servers[port 80, hosts] ──► listener 0.0.0.0_8080 (via the Service
//!                                                                           that maps 80 → 8080), routes http.8080
//!   VirtualService (gateways ∋ ns/gw, hosts ∩ server hosts) ──► virtual hosts `<host>:<port>` in http.8080
//! ```

use std::collections::BTreeMap;

use api_protos::pb::envoy::config::listener::v3::Listener;
use api_protos::pb::envoy::config::route::v3::{
    Route, RouteConfiguration, VirtualHost, virtual_host::TlsRequirementType,
};

use super::listener::{HttpListener, http_listener};
use super::route::{RouteContext, gateway_name, is_catch_all, virtual_service_routes};
use crate::diagnostics::Diagnostic;
use crate::input::istio::{Gateway, Server};
use crate::input::registry::TargetPort;
use crate::input::{Kind, Object};
use crate::model::{Model, Protocol, host_matches, host_specificity, resolve_host};
use crate::proxy::ProxyClass;

const DEFAULT_BIND: &str = "0.0.0.0";

/// The routes one virtual host gathers from the VirtualServices bound to it, oldest VirtualService first.
struct HostRoutes {
    server_port: u32,
    https_redirect: bool,
    routes: Vec<Route>,
}

/// An HTTP server of a selected Gateway, with the port its listener uses.
struct BoundServer<'a> {
    gateway: &'a Object<Gateway>,
    server: &'a Server,
    index: usize,
    server_port: u32,
}

/// Why a gateway proxy gets no listener: no Gateway's selector picks its labels. Names the proxy's labels and what
/// each Gateway selects, so a typo on either side shows.
fn unselected(model: &Model, class: &ProxyClass) -> Diagnostic {
    let labels = |labels: &crate::input::Labels| {
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{{{}}}", pairs.join(","))
    };
    let gateways: Vec<String> = model
        .gateways
        .iter()
        .map(|g| format!("Gateway {}/{} selects {}", g.meta.namespace, g.meta.name, labels(&g.spec.selector)))
        .collect();
    Diagnostic::warning(format!(
        "no Gateway selects this gateway proxy (labels {}, namespace {}), so it gets no listener: {}",
        labels(&class.labels),
        class.namespace,
        gateways.join("; ")
    ))
}

pub fn translate(
    model: &Model,
    class: &ProxyClass,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    // Servers grouped by the listener (bind address and resolved port) they share.
    let mut listeners: BTreeMap<(String, u32), Vec<BoundServer<'_>>> = BTreeMap::new();
    // No Gateway at all is a mesh without ingress; Gateways that all miss this proxy are usually a typo.
    if !model.gateways.is_empty() && !model.gateways.iter().any(|g| selects(g, class)) {
        diagnostics.push(unselected(model, class));
    }
    for gateway in model.gateways.iter().filter(|g| selects(g, class)) {
        for (index, server) in gateway.spec.servers.iter().enumerate() {
            let Some(port) = &server.port else { continue };
            let Ok(server_port) = u32::try_from(port.number) else { continue };
            if !Protocol::parse(&port.protocol).is_http() || port.protocol.is_empty() {
                continue; // HTTPS/TLS/TCP servers: reported by validation, not served yet
            }
            let listen_port = resolve_port(model, class, server_port);
            let bind = if server.bind.is_empty() { DEFAULT_BIND.to_owned() } else { server.bind.clone() };
            listeners.entry((bind, listen_port)).or_default().push(BoundServer { gateway, server, index, server_port });
        }
    }
    let mut out_listeners = Vec::new();
    let mut out_routes = Vec::new();
    for ((bind, port), servers) in &listeners {
        // istiod's naming: `http.<listener port>`, with `.<bind>` when the server binds an address.
        let route_name = if bind == DEFAULT_BIND { format!("http.{port}") } else { format!("http.{port}.{bind}") };
        let virtual_hosts = virtual_hosts(model, class, *port, servers, diagnostics);
        out_routes.push(RouteConfiguration {
            name: route_name.clone(),
            virtual_hosts,
            ignore_port_in_host_matching: true,
            ..Default::default()
        });
        out_listeners.push(http_listener(&HttpListener {
            bind,
            port: *port,
            route_config: &route_name,
            gateway: true,
            bind_to_port: true,
        }));
    }
    (out_listeners, out_routes)
}

/// A Gateway applies to proxies whose labels include its selector (an empty selector picks every gateway).
fn selects(gateway: &Object<Gateway>, class: &ProxyClass) -> bool {
    gateway.spec.selector.iter().all(|(k, v)| class.labels.get(k) == Some(v))
}

/// The port a server listens on: the target port of the Service that fronts the gateway workload (Istio's ingress
/// chart maps 80 → 8080), else the server port. A port no such Service has is reported by [`crate::analyze`]
/// (IST0162).
fn resolve_port(model: &Model, class: &ProxyClass, server_port: u32) -> u32 {
    let fronting = model
        .kubernetes_services
        .iter()
        .filter(|s| !s.spec.selector.is_empty())
        .filter(|s| s.spec.selector.iter().all(|(k, v)| class.labels.get(k) == Some(v)));
    for service in fronting {
        if let Some(port) = service.spec.ports.iter().find(|p| p.port == i64::from(server_port)) {
            return match &port.target_port {
                Some(TargetPort::Number(n)) => u32::try_from(*n).unwrap_or(server_port),
                _ => server_port,
            };
        }
    }
    server_port
}

/// Splits a server host `ns/host` into the namespace filter (None: any) and the host.
fn server_host<'h>(host: &'h str, gateway_namespace: &'h str) -> (Option<&'h str>, &'h str) {
    match host.split_once('/') {
        Some(("*", h)) => (None, h),
        Some((".", h)) => (Some(gateway_namespace), h),
        Some((ns, h)) => (Some(ns), h),
        None => (None, host),
    }
}

fn virtual_hosts(
    model: &Model,
    class: &ProxyClass,
    port: u32,
    servers: &[BoundServer<'_>],
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<VirtualHost> {
    // Host → its server port, whether it redirects to HTTPS, and the routes of each VirtualService in order.
    let mut hosts: BTreeMap<String, HostRoutes> = BTreeMap::new();
    let mut claimed: BTreeMap<String, String> = BTreeMap::new();
    for bound in servers {
        let gateway_ref = format!("{}/{}", bound.gateway.meta.namespace, bound.gateway.meta.name);
        let https_redirect = bound.server.tls.as_ref().is_some_and(|t| t.https_redirect);
        for server_host_entry in &bound.server.hosts {
            let (namespace, server_host) = server_host(server_host_entry, &bound.gateway.meta.namespace);
            if let Some(owner) = claimed.get(server_host).filter(|owner| **owner != gateway_ref) {
                diagnostics.push(
                    Diagnostic::warning(format!(
                        "host {server_host} on port {} is already served by Gateway {owner}; this server's claim is ignored",
                        bound.server_port
                    ))
                    .object(bound.gateway.reference(Kind::Gateway), bound.gateway.meta.source.clone())
                    .field(format!("spec.servers[{}].hosts", bound.index)),
                );
                continue;
            }
            claimed.insert(server_host.to_owned(), gateway_ref.clone());
            let context = RouteContext { model, class, port: bound.server_port, gateway: Some(&gateway_ref) };
            for vs in ordered(&model.virtual_services) {
                if namespace.is_some_and(|ns| ns != vs.meta.namespace) {
                    continue;
                }
                if !vs.spec.gateways.iter().any(|g| gateway_name(g, &vs.meta.namespace) == gateway_ref) {
                    continue;
                }
                for vs_host in &vs.spec.hosts {
                    // Short names mean `<name>.<vs namespace>.svc.cluster.local` here too (istiod resolves every
                    // VirtualService's hosts before matching them against servers).
                    let vs_host = resolve_host(vs_host, &vs.meta.namespace);
                    let host = if host_matches(server_host, &vs_host) {
                        vs_host.as_str()
                    } else if host_matches(&vs_host, server_host) {
                        server_host
                    } else {
                        continue;
                    };
                    let routes = virtual_service_routes(vs, &context, diagnostics);
                    let entry = hosts.entry(host.to_owned()).or_insert_with(|| HostRoutes {
                        server_port: bound.server_port,
                        https_redirect,
                        routes: Vec::new(),
                    });
                    entry.https_redirect |= https_redirect;
                    entry.routes.extend(routes);
                }
            }
            if https_redirect {
                // A redirecting server answers for its hosts whether or not a VirtualService routes them: the
                // virtual host exists to send every request to https (istiod does the same).
                let entry = hosts.entry(server_host.to_owned()).or_insert_with(|| HostRoutes {
                    server_port: bound.server_port,
                    https_redirect,
                    routes: Vec::new(),
                });
                entry.https_redirect = true;
            }
        }
    }
    let mut virtual_hosts: Vec<VirtualHost> = hosts
        .into_iter()
        .map(|(host, HostRoutes { server_port, https_redirect, routes })| {
            // Several VirtualServices for one host are merged, oldest first; then each catch-all route moves to the
            // end, the others keeping their order (istiod's `SortVHostRoutes`).
            let (catch_alls, others): (Vec<_>, Vec<_>) =
                routes.into_iter().partition(|route| route.r#match.as_ref().is_some_and(is_catch_all));
            let routes = others.into_iter().chain(catch_alls).collect();
            VirtualHost {
                name: format!("{host}:{server_port}"),
                domains: vec![host],
                routes,
                require_tls: if https_redirect {
                    TlsRequirementType::All as i32
                } else {
                    TlsRequirementType::None as i32
                },
                ..Default::default()
            }
        })
        .collect();
    // Most specific hosts first is what Envoy does anyway; sorting keeps output stable.
    virtual_hosts.sort_by(|a, b| {
        let key = |v: &VirtualHost| std::cmp::Reverse(host_specificity(&v.domains[0]));
        (key(a), &a.name).cmp(&(key(b), &b.name))
    });
    if !virtual_hosts.iter().any(|v| v.domains.iter().any(|d| d == "*")) {
        virtual_hosts.push(VirtualHost {
            name: format!("blackhole:{port}"),
            domains: vec!["*".to_owned()],
            ..Default::default()
        });
    }
    virtual_hosts
}

/// VirtualServices oldest first (creation time, then namespace and name), as istiod orders them.
pub fn ordered<T>(objects: &[std::sync::Arc<Object<T>>]) -> Vec<&Object<T>> {
    let mut sorted: Vec<&Object<T>> = objects.iter().map(AsRef::as_ref).collect();
    sorted.sort_by(|a, b| {
        (&a.meta.creation_timestamp, &a.meta.namespace, &a.meta.name).cmp(&(
            &b.meta.creation_timestamp,
            &b.meta.namespace,
            &b.meta.name,
        ))
    });
    sorted
}
