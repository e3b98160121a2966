use serde_json::json;

use super::*;

fn read<M: prost::Message + prost::Name + Default>(value: serde_json::Value) -> M {
    let packed = api_protos::reflect::from_json(&value).unwrap_or_else(|e| panic!("{e}: {value}"));
    any::unpack(&packed).unwrap_or_else(|e| panic!("{e}"))
}

fn cluster(name: &str, kind: &str) -> Cluster {
    read(json!({"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": name, "type": kind}))
}

fn lines(table: &str) -> Vec<&str> {
    table.lines().collect()
}

#[test]
fn clusters_are_split_into_istio_s_columns_and_sorted_by_service_subset_port() {
    let reviews_v2: Cluster = read(json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "outbound|9080|v2|reviews.default.svc.cluster.local",
        "type": "EDS",
        "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/destination-rule/reviews"}}},
    }));
    let all = [
        reviews_v2,
        cluster("outbound|9080||reviews.default.svc.cluster.local", "EDS"),
        cluster("outbound|9080|v1|reviews.default.svc.cluster.local", "EDS"),
        cluster("BlackHoleCluster", "STATIC"),
        cluster("outbound|80||details.local", "STRICT_DNS"),
    ];
    let table = clusters(&all, &ClusterFilter::default());
    assert_eq!(
        lines(&table),
        [
            "SERVICE FQDN                          PORT     SUBSET     DIRECTION     TYPE           DESTINATION RULE",
            "BlackHoleCluster                      -        -          -             STATIC",
            "details.local                         80       -          outbound      STRICT_DNS",
            "reviews.default.svc.cluster.local     9080     -          outbound      EDS",
            "reviews.default.svc.cluster.local     9080     v1         outbound      EDS",
            "reviews.default.svc.cluster.local     9080     v2         outbound      EDS            reviews.default",
        ],
        "{table}"
    );
    let only_v1 = ClusterFilter { fqdn: Some("reviews".into()), subset: Some("v1".into()), ..Default::default() };
    assert_eq!(lines(&clusters(&all, &only_v1)).len(), 2);
    let port_80 = ClusterFilter { port: Some(80), ..Default::default() };
    assert_eq!(lines(&clusters(&all, &port_80))[1].split_whitespace().next(), Some("details.local"));
    let inbound = ClusterFilter { direction: Some("inbound".into()), ..Default::default() };
    assert_eq!(lines(&clusters(&all, &inbound)).len(), 1, "only the header");
}

fn http_listener(name: &str, address: &str, port: u32, route: &str) -> Listener {
    read(json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": name,
                "rds": {"route_config_name": route, "config_source": {"ads": {}}},
            },
        }]}],
    }))
}

fn tcp_listener(name: &str, port: u32, cluster: &str) -> Listener {
    read(json!({
        "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
        "name": name,
        "address": {"socket_address": {"address": "0.0.0.0", "port_value": port}},
        "filter_chains": [
            {"filter_chain_match": {"destination_port": 3306, "prefix_ranges": [{"address_prefix": "10.0.0.1", "prefix_len": 32}]},
             "filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tcp", "cluster": cluster}}]},
            {"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                "stat_prefix": "tcp", "cluster": "PassthroughCluster"}}]},
        ],
    }))
}

#[test]
fn listeners_show_each_filter_chain_with_its_match_and_destination() {
    let all = [
        tcp_listener("virtual", 15001, "outbound|3306||mysql.local"),
        http_listener("127.0.0.1_8080", "127.0.0.1", 8080, "http.8080.127.0.0.1"),
    ];
    let table = listeners(&all, &ListenerFilter::default());
    assert_eq!(
        lines(&table),
        [
            "ADDRESSES PORT  MATCH                  DESTINATION",
            "127.0.0.1 8080  ALL                    Route: http.8080.127.0.0.1",
            "0.0.0.0   15001 ALL                    PassthroughCluster",
            "0.0.0.0   15001 Addr: 10.0.0.1/32:3306 Cluster: outbound|3306||mysql.local",
        ],
        "{table}"
    );
    let http = ListenerFilter { kind: Some("http".into()), ..Default::default() };
    assert_eq!(lines(&listeners(&all, &http)).len(), 2);
    let by_port = ListenerFilter { port: Some(15001), address: Some("0.0.0.0".into()), ..Default::default() };
    assert_eq!(lines(&listeners(&all, &by_port)).len(), 3);
}

#[test]
fn routes_show_every_route_with_its_match_and_virtual_service() {
    let config: RouteConfiguration = read(json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": "http.8080",
        "virtual_hosts": [
            {"name": "bookinfo.local:8080", "domains": ["bookinfo.local", "bookinfo.local:8080"], "routes": [
                {"match": {"prefix": "/reviews", "headers": [{"name": "end-user", "string_match": {"exact": "jason"}}]},
                 "route": {"cluster": "outbound|9080|v2|reviews.local"},
                 "metadata": {"filter_metadata": {"istio": {"config": "/apis/networking.istio.io/v1/namespaces/default/virtual-service/bookinfo"}}}},
                {"match": {"safe_regex": {"regex": "/v[0-9]+/.*"}, "query_parameters": [{"name": "debug", "present_match": true}]},
                 "route": {"cluster": "outbound|9080|v1|reviews.local"}},
                {"match": {"prefix": "/"}, "route": {"cluster": "PassthroughCluster"}},
            ]},
            {"name": "empty", "domains": ["*"]},
        ],
    }));
    let other: RouteConfiguration = read(json!({
        "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        "name": "9080",
        "virtual_hosts": [{"name": "reviews:9080", "domains": ["reviews.default.svc.cluster.local", "reviews", "reviews.default", "reviews.default.svc", "10.0.0.1", "reviews:9080"],
            "routes": [{"match": {"path": "/exact"}, "route": {"cluster": "outbound|9080||reviews.default.svc.cluster.local"}}]}],
    }));
    let table = routes([&config, &other], &RouteFilter::default());
    assert_eq!(
        lines(&table),
        [
            "NAME          VHOST NAME              DOMAINS                                  MATCH                                VIRTUAL SERVICE",
            // The short names; the `.svc` and `.svc.cluster.local` spellings of one that is there are left out.
            "9080          reviews:9080            reviews, reviews.default + 1 more...     /exact",
            "http.8080     bookinfo.local:8080     bookinfo.local                           /reviews* end-user=jason             bookinfo.default",
            "http.8080     bookinfo.local:8080     bookinfo.local                           regex /v[0-9]+/.* ?debug present",
            "http.8080     empty                   *                                        /*                                   404",
        ],
        "{table}"
    );
    let named = RouteFilter { name: Some("9080".into()) };
    assert_eq!(lines(&routes([&config, &other], &named)).len(), 2);
}

#[test]
fn endpoints_show_address_status_and_cluster_and_filter_by_each() {
    let assignment: ClusterLoadAssignment = read(json!({
        "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        "cluster_name": "outbound|9080|v1|reviews.local",
        "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 9080}}}},
            {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 9080}}}, "health_status": "DRAINING"},
        ]}],
    }));
    let table = endpoints([&assignment], &EndpointFilter::default());
    assert_eq!(
        lines(&table),
        [
            "ENDPOINT          STATUS       CLUSTER",
            "10.0.0.1:9080     DRAINING     outbound|9080|v1|reviews.local",
            "10.0.0.2:9080     HEALTHY      outbound|9080|v1|reviews.local",
        ],
        "{table}"
    );
    let healthy = EndpointFilter { status: Some("healthy".into()), ..Default::default() };
    assert_eq!(lines(&endpoints([&assignment], &healthy)).len(), 2);
    let by_address = EndpointFilter { address: Some("10.0.0.1".into()), ..Default::default() };
    let kept = by_address.apply(&assignment).map(|a| a.endpoints[0].lb_endpoints.len());
    assert_eq!(kept, Some(1));
    let elsewhere = EndpointFilter { cluster: Some("outbound|9080|v2|reviews.local".into()), ..Default::default() };
    assert!(elsewhere.apply(&assignment).is_none());
}
