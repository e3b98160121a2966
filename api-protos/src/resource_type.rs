//! The xDS resource types pilotfish serves, in the order a change is pushed.

use std::fmt;

/// An xDS resource type. The declaration order is the push order on ADS (make-before-break): clusters before the
/// endpoints that warm them, both before the listeners and routes that send traffic to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

pub const CLUSTER_TYPE_URL: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const ENDPOINT_TYPE_URL: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const LISTENER_TYPE_URL: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ROUTE_TYPE_URL: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

impl ResourceType {
    /// Every type, in push order.
    pub const ALL: [ResourceType; 4] =
        [ResourceType::Cluster, ResourceType::Endpoint, ResourceType::Listener, ResourceType::Route];

    pub const fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => CLUSTER_TYPE_URL,
            ResourceType::Endpoint => ENDPOINT_TYPE_URL,
            ResourceType::Listener => LISTENER_TYPE_URL,
            ResourceType::Route => ROUTE_TYPE_URL,
        }
    }

    pub fn from_type_url(type_url: &str) -> Option<ResourceType> {
        ResourceType::ALL.into_iter().find(|t| t.type_url() == type_url)
    }

    /// The name users know from Envoy's docs and `istioctl proxy-status`: CDS, EDS, LDS, RDS.
    pub const fn short_name(self) -> &'static str {
        match self {
            ResourceType::Cluster => "CDS",
            ResourceType::Endpoint => "EDS",
            ResourceType::Listener => "LDS",
            ResourceType::Route => "RDS",
        }
    }

    /// Wildcard types are subscribed to as a whole (an empty name list means "everything"); the others are
    /// subscribed to by name, as Envoy discovers the names from the wildcard ones.
    pub const fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }

    /// Index in [`ResourceType::ALL`], for per-type arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.short_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Name;

    #[test]
    fn type_urls_match_the_generated_messages() {
        use crate::pb::envoy::config;
        assert_eq!(CLUSTER_TYPE_URL, config::cluster::v3::Cluster::type_url());
        assert_eq!(ENDPOINT_TYPE_URL, config::endpoint::v3::ClusterLoadAssignment::type_url());
        assert_eq!(LISTENER_TYPE_URL, config::listener::v3::Listener::type_url());
        assert_eq!(ROUTE_TYPE_URL, config::route::v3::RouteConfiguration::type_url());
    }

    #[test]
    fn push_order_is_clusters_endpoints_listeners_routes() {
        let names: Vec<_> = ResourceType::ALL.iter().map(|t| t.short_name()).collect();
        assert_eq!(names, ["CDS", "EDS", "LDS", "RDS"]);
        for t in ResourceType::ALL {
            assert_eq!(ResourceType::from_type_url(t.type_url()), Some(t));
            assert_eq!(ResourceType::ALL[t.index()], t);
        }
        assert_eq!(ResourceType::from_type_url("type.googleapis.com/nope"), None);
    }
}
