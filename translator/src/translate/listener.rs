//! HTTP listeners: an HTTP connection manager loading its routes over RDS, with the fault and CORS filters every
//! Istio route may configure per route, before the router.

use api_protos::pb::envoy::config::core::v3::TrafficDirection;
use api_protos::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use api_protos::pb::envoy::extensions::filters::http::cors::v3::Cors;
use api_protos::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use api_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use api_protos::pb::google::protobuf::BoolValue;

use super::envoy::{CORS_FILTER, FAULT_FILTER, HCM_FILTER, ROUTER_FILTER, ads, socket_address, typed};

/// Listener names as istiod writes them: `0.0.0.0_8080`.
pub fn listener_name(bind: &str, port: u32) -> String {
    format!("{bind}_{port}")
}

pub struct HttpListener<'a> {
    pub bind: &'a str,
    pub port: u32,
    pub route_config: &'a str,
    /// Gateways take the client address from the connection (and X-Forwarded-For): they face the outside.
    pub gateway: bool,
    /// False for sidecar listeners reached through traffic capture rather than by binding.
    pub bind_to_port: bool,
}

pub fn http_listener(spec: &HttpListener<'_>) -> Listener {
    let name = listener_name(spec.bind, spec.port);
    let filter = |name: &str, config| HttpFilter {
        name: name.to_owned(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    };
    let manager = HttpConnectionManager {
        stat_prefix: format!("outbound_{name}"),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads()),
            route_config_name: spec.route_config.to_owned(),
        })),
        // Empty filter configs: they act only where a route's typed_per_filter_config asks them to.
        http_filters: vec![
            filter(FAULT_FILTER, typed(&HttpFault::default())),
            filter(CORS_FILTER, typed(&Cors::default())),
            filter(ROUTER_FILTER, typed(&Router::default())),
        ],
        use_remote_address: spec.gateway.then_some(BoolValue { value: true }),
        normalize_path: Some(BoolValue { value: true }),
        ..Default::default()
    };
    Listener {
        name,
        address: Some(socket_address(spec.bind, spec.port)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: HCM_FILTER.to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(typed(&manager))),
            }],
            ..Default::default()
        }],
        traffic_direction: TrafficDirection::Outbound as i32,
        bind_to_port: (!spec.bind_to_port).then_some(BoolValue { value: false }),
        ..Default::default()
    }
}
