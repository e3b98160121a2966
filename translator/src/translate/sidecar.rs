//! Sidecar proxies: an outbound listener per service port, a route table per port (named by the port), a virtual
//! host per service on that port, routed by the mesh VirtualService for its host or by a default route.
//!
//! With `OUTBOUND_BIND` in the node metadata (no traffic capture) the listeners bind that address; without it
//! they are Istio's capture-shaped listeners `0.0.0.0_<port>` that do not bind.

use std::collections::BTreeMap;

use api_protos::pb::envoy::config::listener::v3::Listener;
use api_protos::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action, route_match,
};

use super::cluster::hash_policies;
use super::envoy::seconds;
use super::listener::{HttpListener, http_listener};
use super::mesh::MeshHosts;
use super::route::{RouteContext, virtual_service_routes};
use crate::diagnostics::Diagnostic;
use crate::model::{Model, Service, cluster_name};
use crate::proxy::ProxyClass;

const WILDCARD_BIND: &str = "0.0.0.0";

pub fn translate(
    model: &Model,
    class: &ProxyClass,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let mut by_port: BTreeMap<u32, Vec<&Service>> = BTreeMap::new();
    for service in model.services.values() {
        for port in service.ports.iter().filter(|p| p.protocol.is_http()) {
            by_port.entry(port.number).or_default().push(service);
        }
    }
    let mesh_hosts = MeshHosts::new(model);
    let bind = class.outbound_bind.as_deref().unwrap_or(WILDCARD_BIND);
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for (port, services) in by_port {
        let route_name = port.to_string();
        let context = RouteContext { model, class, port, gateway: None };
        let virtual_hosts = services
            .into_iter()
            .map(|service| {
                let routes = match mesh_hosts.get(&service.hostname) {
                    Some(vs) => virtual_service_routes(vs, &context, diagnostics),
                    None => vec![default_route(model, class, service, port)],
                };
                VirtualHost {
                    name: format!("{}:{port}", service.hostname),
                    domains: domains(service, class),
                    routes,
                    ..Default::default()
                }
            })
            .collect();
        routes.push(RouteConfiguration {
            name: route_name.clone(),
            virtual_hosts,
            ignore_port_in_host_matching: true,
            ..Default::default()
        });
        listeners.push(http_listener(&HttpListener {
            bind,
            port,
            route_config: &route_name,
            gateway: false,
            bind_to_port: class.outbound_bind.is_some(),
        }));
    }
    (listeners, routes)
}

/// The names a client of `class` may use for `service`: the FQDN, short forms (the bare name only from the same
/// namespace, as DNS search paths allow), and its addresses.
fn domains(service: &Service, class: &ProxyClass) -> Vec<String> {
    let mut domains = vec![service.hostname.clone()];
    for (index, name) in service.short_names.iter().enumerate() {
        if index > 0 || class.namespace == service.namespace {
            domains.push(name.clone());
        }
    }
    domains.extend(service.addresses.iter().cloned());
    domains
}

/// The route of a service no VirtualService routes: everything to the service port's cluster, with the hash policy
/// of a consistent-hash DestinationRule (istiod's `buildSidecarVirtualHostForService`), and the default retries
/// (which keep the previous-hosts predicate even then, as istiod's do).
fn default_route(model: &Model, class: &ProxyClass, service: &Service, port: u32) -> Route {
    let rule = model.destination_rule(&service.hostname, &class.namespace);
    Route {
        name: "default".to_owned(),
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(cluster_name(port, "", &service.hostname))),
            timeout: Some(seconds(0)),
            retry_policy: super::route::default_retry_policy(),
            hash_policy: hash_policies(rule.map(AsRef::as_ref), port, ""),
            ..Default::default()
        })),
        ..Default::default()
    }
}
