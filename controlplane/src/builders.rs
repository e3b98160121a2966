//! Small builders for the common Envoy resources: an HTTP listener loading routes over RDS, a route table, an EDS
//! cluster fed over ADS, and its endpoints, for tests (feature `testing`); the translator builds its own, richer
//! resources.

use std::net::SocketAddr;

use api_protos::pb::envoy::config::cluster::v3::{Cluster, cluster};
use api_protos::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, SocketAddress, address, config_source, socket_address,
};
use api_protos::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use api_protos::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use api_protos::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster, route, route_action, route_match,
    weighted_cluster,
};
use api_protos::pb::envoy::extensions::filters::http::router::v3::Router;
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager, http_filter,
};
use api_protos::pb::google::protobuf::{Duration, UInt32Value};
use api_protos::{any::pack, pb::envoy::config::core::v3::Address};

/// Config source for resources delivered over the ADS stream itself.
pub fn ads_config_source() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub fn socket_address(addr: SocketAddr) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(addr.port()))),
            ..Default::default()
        })),
    }
}

/// A listener on `addr` whose HTTP connection manager loads route configuration `route_name` over ADS.
pub fn http_listener(name: &str, addr: SocketAddr, route_name: &str) -> Listener {
    let manager = HttpConnectionManager {
        stat_prefix: name.to_owned(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::Rds(Rds {
            config_source: Some(ads_config_source()),
            route_config_name: route_name.to_owned(),
        })),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_owned(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(&Router::default()))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Listener {
        name: name.to_owned(),
        address: Some(socket_address(addr)),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_owned(),
                config_type: Some(filter::ConfigType::TypedConfig(pack(&manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A route table with one virtual host matching every domain.
pub fn route_config(name: &str, routes: Vec<Route>) -> RouteConfiguration {
    RouteConfiguration {
        name: name.to_owned(),
        virtual_hosts: vec![VirtualHost {
            name: name.to_owned(),
            domains: vec!["*".to_owned()],
            routes,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A route sending requests whose path starts with `prefix` to `cluster`.
pub fn prefix_route(prefix: &str, cluster: &str) -> Route {
    route_to(prefix, route_action::ClusterSpecifier::Cluster(cluster.to_owned()))
}

/// A route splitting requests whose path starts with `prefix` among clusters by weight.
pub fn weighted_route(prefix: &str, clusters: &[(&str, u32)]) -> Route {
    let clusters = clusters
        .iter()
        .map(|(name, weight)| weighted_cluster::ClusterWeight {
            name: (*name).to_owned(),
            weight: Some(UInt32Value { value: *weight }),
            ..Default::default()
        })
        .collect();
    route_to(
        prefix,
        route_action::ClusterSpecifier::WeightedClusters(WeightedCluster { clusters, ..Default::default() }),
    )
}

fn route_to(prefix: &str, specifier: route_action::ClusterSpecifier) -> Route {
    Route {
        r#match: Some(RouteMatch {
            path_specifier: Some(route_match::PathSpecifier::Prefix(prefix.to_owned())),
            ..Default::default()
        }),
        action: Some(route::Action::Route(RouteAction { cluster_specifier: Some(specifier), ..Default::default() })),
        ..Default::default()
    }
}

/// A cluster whose endpoints arrive over ADS (EDS), under the cluster's own name.
pub fn eds_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.to_owned(),
        connect_timeout: Some(Duration { seconds: 1, nanos: 0 }),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(cluster::DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(cluster::EdsClusterConfig {
            eds_config: Some(ads_config_source()),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

/// The endpoints of cluster `name`.
pub fn load_assignment(name: &str, endpoints: &[SocketAddr]) -> ClusterLoadAssignment {
    let lb_endpoints = endpoints
        .iter()
        .map(|addr| LbEndpoint {
            host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                address: Some(socket_address(*addr)),
                ..Default::default()
            })),
            ..Default::default()
        })
        .collect();
    ClusterLoadAssignment {
        cluster_name: name.to_owned(),
        endpoints: vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }],
        ..Default::default()
    }
}
