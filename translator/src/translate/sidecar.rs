//! Sidecar proxies: an outbound listener per service port, a route table per port (named by the port), a virtual
//! host per service on that port, routed by the mesh VirtualService for its host or by a default route.
//!
//! With `OUTBOUND_BIND` in the node metadata (no traffic capture) the listeners bind that address and nothing else
//! is added. Without it the proxy is a captured sidecar, shaped as istiod shapes one with the mesh's default
//! `outboundTrafficPolicy: ALLOW_ANY`:
//!
//! ```text
//!   app ─connect(10.96.0.9:9080)─► iptables REDIRECT ─► virtualOutbound 0.0.0.0:15001 (use_original_dst)
//!        ├─ a listener for 10.96.0.9:9080 or 0.0.0.0:9080 (bind_to_port false) ─► HCM ─► route table "9080"
//!        │     └─ no virtual host for the Host header ─► "allow_any" ─► PassthroughCluster
//!        ├─ destination port 15001 itself ─► BlackHoleCluster (a loop otherwise)
//!        └─ anything else ─► TCP proxy ─► PassthroughCluster (ORIGINAL_DST: the address the app dialled)
//! ```
//!
//! A captured sidecar has no per-port listener on the ports the proxy itself listens on in the pod (15021 for
//! readiness, 15090 for Prometheus, see `pilotfish inject`): Envoy refuses a second listener on an address it
//! already has. Connections to a service on such a port (an ingress gateway's status port) pass through by their
//! original destination instead, unrouted, as with istiod.

use std::collections::BTreeMap;

use api_protos::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType, LbPolicy},
};
use api_protos::pb::envoy::config::core::v3::{Http1ProtocolOptions, Http2ProtocolOptions, TrafficDirection};
use api_protos::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch, Listener, filter};
use api_protos::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route, route_action, route_match,
};
use api_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use api_protos::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{UpstreamProtocolOptions, UseDownstreamHttpConfig},
};
use api_protos::pb::google::protobuf::{BoolValue, UInt32Value};

use super::cluster::{DEFAULT_CONNECT_TIMEOUT_SECONDS, HTTP_PROTOCOL_OPTIONS, default_thresholds, hash_policies};
use super::envoy::{seconds, socket_address, typed};
use super::listener::{HttpListener, http_listener};
use super::mesh::MeshHosts;
use super::route::{RouteContext, virtual_service_routes};
use crate::diagnostics::Diagnostic;
use crate::model::{Model, Service, cluster_name};
use crate::proxy::{PROMETHEUS_PORT, ProxyClass, READINESS_PORT, VIRTUAL_OUTBOUND_PORT};

const WILDCARD_BIND: &str = "0.0.0.0";
/// istiod's names for the captured sidecar's fixed pieces.
pub const VIRTUAL_OUTBOUND_LISTENER: &str = "virtualOutbound";
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
pub const ALLOW_ANY_VIRTUAL_HOST: &str = "allow_any";
const TCP_PROXY_FILTER: &str = "envoy.filters.network.tcp_proxy";

pub fn translate(
    model: &Model,
    class: &ProxyClass,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let captured = is_captured(class);
    let own_ports = if captured { [READINESS_PORT, PROMETHEUS_PORT].map(u32::from).to_vec() } else { Vec::new() };
    let mut by_port: BTreeMap<u32, Vec<&Service>> = BTreeMap::new();
    for service in model.services.values() {
        for port in service.ports.iter().filter(|p| p.protocol.is_http() && !own_ports.contains(&p.number)) {
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
            .chain(captured.then(allow_any_virtual_host))
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
            bind_to_port: !captured,
        }));
    }
    if captured {
        listeners.push(virtual_outbound_listener());
    }
    (listeners, routes)
}

/// A sidecar without `OUTBOUND_BIND` has its outbound traffic captured (iptables) rather than binding listeners.
pub fn is_captured(class: &ProxyClass) -> bool {
    class.outbound_bind.is_none()
}

/// Where captured connections arrive. `use_original_dst` hands each to the listener for the address the app
/// dialled (exact address first, then `0.0.0.0` on that port); what no listener takes goes out unchanged
/// (istiod's `buildVirtualOutboundListener` with ALLOW_ANY). Connections dialled to 15001 itself are dropped:
/// passed through, they would come straight back here.
fn virtual_outbound_listener() -> Listener {
    let port = u32::from(VIRTUAL_OUTBOUND_PORT);
    let tcp_proxy_to = |cluster: &str| Filter {
        name: TCP_PROXY_FILTER.to_owned(),
        config_type: Some(filter::ConfigType::TypedConfig(typed(&TcpProxy {
            stat_prefix: cluster.to_owned(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.to_owned())),
            ..Default::default()
        }))),
    };
    Listener {
        name: VIRTUAL_OUTBOUND_LISTENER.to_owned(),
        address: Some(socket_address(WILDCARD_BIND, port)),
        use_original_dst: Some(BoolValue { value: true }),
        filter_chains: vec![
            FilterChain {
                name: format!("{VIRTUAL_OUTBOUND_LISTENER}-blackhole"),
                filter_chain_match: Some(FilterChainMatch {
                    destination_port: Some(UInt32Value { value: port }),
                    ..Default::default()
                }),
                filters: vec![tcp_proxy_to(BLACKHOLE_CLUSTER)],
                ..Default::default()
            },
            FilterChain {
                name: format!("{VIRTUAL_OUTBOUND_LISTENER}-catchall-tcp"),
                filters: vec![tcp_proxy_to(PASSTHROUGH_CLUSTER)],
                ..Default::default()
            },
        ],
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// Requests for a Host no service on the port claims go where the app sent them (istiod's catch-all virtual host
/// for ALLOW_ANY), with no timeout of the mesh's.
fn allow_any_virtual_host() -> VirtualHost {
    VirtualHost {
        name: ALLOW_ANY_VIRTUAL_HOST.to_owned(),
        domains: vec!["*".to_owned()],
        routes: vec![Route {
            name: ALLOW_ANY_VIRTUAL_HOST.to_owned(),
            r#match: Some(RouteMatch {
                path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())),
                ..Default::default()
            }),
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(PASSTHROUGH_CLUSTER.to_owned())),
                timeout: Some(seconds(0)),
                max_stream_duration: Some(route_action::MaxStreamDuration {
                    max_stream_duration: Some(seconds(0)),
                    grpc_timeout_header_max: Some(seconds(0)),
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The clusters a captured sidecar's virtual outbound listener and `allow_any` routes name: the original
/// destination, speaking whatever HTTP version the app spoke (istiod's `buildDefaultPassthroughCluster`), and a
/// cluster without endpoints.
pub fn captured_clusters() -> Vec<Cluster> {
    let http = HttpProtocolOptions {
        upstream_protocol_options: Some(UpstreamProtocolOptions::UseDownstreamProtocolConfig(
            UseDownstreamHttpConfig {
                http_protocol_options: Some(Http1ProtocolOptions::default()),
                http2_protocol_options: Some(Http2ProtocolOptions::default()),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let passthrough = Cluster {
        name: PASSTHROUGH_CLUSTER.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::OriginalDst as i32)),
        lb_policy: LbPolicy::ClusterProvided as i32,
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECONDS)),
        circuit_breakers: Some(CircuitBreakers { thresholds: vec![default_thresholds()], ..Default::default() }),
        typed_extension_protocol_options: [(HTTP_PROTOCOL_OPTIONS.to_owned(), typed(&http))].into_iter().collect(),
        ..Default::default()
    };
    let blackhole = Cluster {
        name: BLACKHOLE_CLUSTER.to_owned(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECONDS)),
        ..Default::default()
    };
    vec![blackhole, passthrough]
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
