use std::collections::BTreeMap;

use api_protos::any::unpack;
use api_protos::pb::envoy::config::core::v3::{address, socket_address};

use super::*;
use crate::diagnostics::ObjectRef;
use crate::input::{Kind, World, read_yaml};
use crate::model::Protocol;

const HOST: &str = "reviews.default.svc.cluster.local";

// === Fixtures ===

fn service(resolution: Resolution, ports: &[(u32, &str)], endpoints: Vec<Endpoint>) -> Service {
    Service {
        hostname: HOST.to_owned(),
        namespace: "default".to_owned(),
        ports: ports
            .iter()
            .map(|(number, name)| Port { number: *number, name: (*name).to_owned(), protocol: Protocol::parse(name) })
            .collect(),
        resolution,
        addresses: vec!["10.96.0.10".to_owned()],
        endpoints,
        origin: ObjectRef { kind: Kind::Service, namespace: "default".to_owned(), name: "reviews".to_owned() },
        source: None,
        short_names: Vec::new(),
    }
}

/// An endpoint serving service port 9080 on `port`, with `version: <version>`.
fn endpoint(address: &str, port: u32, version: &str) -> Endpoint {
    Endpoint {
        address: address.to_owned(),
        ports: BTreeMap::from([(9080, port)]),
        labels: [("app".to_owned(), "reviews".to_owned()), ("version".to_owned(), version.to_owned())].into(),
        weight: None,
    }
}

/// The bookinfo shape: reviews on port 9080, pods v1, v2 and v2 again.
fn reviews() -> Service {
    service(
        Resolution::Static,
        &[(9080, "http")],
        vec![endpoint("10.0.0.1", 9080, "v1"), endpoint("10.0.0.2", 9080, "v2"), endpoint("10.0.0.3", 9080, "v2")],
    )
}

/// A DestinationRule `default/reviews` with `spec` (YAML, as under `spec:`), read the way input is.
fn rule(spec: &str) -> Object<DestinationRule> {
    // Specs may be written as indented blocks: their common indentation goes before nesting under `spec:`.
    let margin =
        spec.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let indented: String =
        spec.lines().filter(|l| !l.trim().is_empty()).map(|line| format!("  {}\n", &line[margin..])).collect();
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: default}}\n\
         spec:\n{indented}"
    );
    let (inputs, diagnostics) = read_yaml(&text, "rule.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let (world, diagnostics) = World::new(inputs);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let rule = world.destination_rules.first().expect("one DestinationRule");
    Object::clone(rule)
}

fn build(service: &Service, rule: Option<&Object<DestinationRule>>) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    service_clusters(service, rule)
}

#[test]
fn subset_selecting_nothing_gets_an_empty_assignment() {
    let dr = rule("host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v3, labels: {version: v3}}");
    let (_, assignments) = build(&reviews(), Some(&dr));
    let v3 = assignments.iter().find(|a| a.cluster_name == "outbound|9080|v3|reviews.default.svc.cluster.local");
    assert!(v3.expect("assignment even when empty").endpoints.is_empty());
}

fn named<'a>(clusters: &'a [Cluster], name: &str) -> &'a Cluster {
    clusters.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no cluster {name}"))
}

fn addresses(assignment: &ClusterLoadAssignment) -> Vec<(String, u32)> {
    assignment
        .endpoints
        .iter()
        .flat_map(|locality| &locality.lb_endpoints)
        .map(|e| {
            let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &e.host_identifier else { panic!("endpoint") };
            let Some(address::Address::SocketAddress(socket)) =
                endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                panic!("socket address")
            };
            let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier else { panic!("port") };
            (socket.address.clone(), port)
        })
        .collect()
}

fn thresholds(cluster: &Cluster) -> (u32, u32, u32, u32) {
    let t = cluster.circuit_breakers.as_ref().and_then(|c| c.thresholds.first()).expect("thresholds");
    let v = |value: Option<UInt32Value>| value.expect("set").value;
    (v(t.max_connections), v(t.max_pending_requests), v(t.max_requests), v(t.max_retries))
}

fn http_options(cluster: &Cluster) -> Option<HttpProtocolOptions> {
    cluster.typed_extension_protocol_options.get(HTTP_PROTOCOL_OPTIONS).map(|any| unpack(any).expect("unpacks"))
}

fn protocol(options: &HttpProtocolOptions) -> &ProtocolConfig {
    let Some(UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) = &options.upstream_protocol_options else {
        panic!("explicit protocol config")
    };
    explicit.protocol_config.as_ref().expect("protocol config")
}

fn tls_context(cluster: &Cluster) -> UpstreamTlsContext {
    let socket = cluster.transport_socket.as_ref().expect("transport socket");
    assert_eq!(socket.name, TLS_TRANSPORT_SOCKET);
    let Some(transport_socket::ConfigType::TypedConfig(any)) = &socket.config_type else { panic!("typed config") };
    unpack(any).expect("unpacks")
}

fn ring_size(cluster: &Cluster) -> Option<u64> {
    match &cluster.lb_config {
        Some(LbConfig::RingHashLbConfig(ring)) => ring.minimum_ring_size.map(|v| v.value),
        _ => None,
    }
}

fn lb(cluster: &Cluster) -> LbPolicy {
    LbPolicy::try_from(cluster.lb_policy).expect("known policy")
}

// === Names, types and endpoints ===

#[test]
fn names_one_cluster_per_port_plus_one_per_subset_and_port() {
    let mut svc = reviews();
    svc.ports.push(Port { number: 9443, name: "tcp-admin".to_owned(), protocol: Protocol::Tcp });
    let dr = rule("host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v2, labels: {version: v2}}");
    let (clusters, assignments) = build(&svc, Some(&dr));
    let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "outbound|9080||reviews.default.svc.cluster.local",
            "outbound|9080|v1|reviews.default.svc.cluster.local",
            "outbound|9080|v2|reviews.default.svc.cluster.local",
            "outbound|9443||reviews.default.svc.cluster.local",
            "outbound|9443|v1|reviews.default.svc.cluster.local",
            "outbound|9443|v2|reviews.default.svc.cluster.local",
        ]
    );
    let assignment_names: Vec<&str> = assignments.iter().map(|a| a.cluster_name.as_str()).collect();
    assert_eq!(assignment_names, names, "every EDS cluster has a load assignment");
}

#[test]
fn static_service_gets_eds_cluster_served_over_ads() {
    let (clusters, assignments) = build(&reviews(), None);
    let cluster = &clusters[0];
    assert!(is_type(cluster, DiscoveryType::Eds));
    let eds = cluster.eds_cluster_config.as_ref().expect("eds config");
    assert_eq!(eds.service_name, cluster.name);
    assert_eq!(eds.eds_config, Some(ads()));
    assert!(cluster.load_assignment.is_none());
    assert_eq!(assignments[0].cluster_name, cluster.name);
    assert_eq!(assignments[0].endpoints.len(), 1, "one locality");
    assert_eq!(
        addresses(&assignments[0]),
        [("10.0.0.1".to_owned(), 9080), ("10.0.0.2".to_owned(), 9080), ("10.0.0.3".to_owned(), 9080)]
    );
}

#[test]
fn subset_load_assignment_keeps_endpoints_with_the_subset_labels() {
    let dr = rule("host: reviews\nsubsets:\n- {name: v2, labels: {version: v2, app: reviews}}");
    let (_, assignments) = build(&reviews(), Some(&dr));
    let v2 = assignments.iter().find(|a| a.cluster_name.contains("|v2|")).expect("v2 assignment");
    assert_eq!(addresses(v2), [("10.0.0.2".to_owned(), 9080), ("10.0.0.3".to_owned(), 9080)]);
}

#[test]
fn endpoints_use_the_endpoint_port_and_weight() {
    let mut svc = service(Resolution::Static, &[(80, "http")], Vec::new());
    svc.endpoints = vec![
        Endpoint {
            address: "10.0.0.9".to_owned(),
            ports: BTreeMap::from([(80, 8080)]),
            labels: Labels::new(),
            weight: Some(3),
        },
        Endpoint {
            address: "10.0.0.8".to_owned(),
            ports: BTreeMap::from([(80, 8080)]),
            labels: Labels::new(),
            weight: Some(0),
        },
    ];
    let (_, assignments) = build(&svc, None);
    assert_eq!(addresses(&assignments[0]), [("10.0.0.9".to_owned(), 8080), ("10.0.0.8".to_owned(), 8080)]);
    let weights: Vec<Option<u32>> =
        assignments[0].endpoints[0].lb_endpoints.iter().map(|e| e.load_balancing_weight.map(|w| w.value)).collect();
    assert_eq!(weights, [Some(3), None], "a zero weight is left to Envoy's default of 1");
}

#[test]
fn no_ist0173_when_the_service_has_no_endpoints_for_the_port() {
    let svc = service(Resolution::Static, &[(9080, "http")], Vec::new());
    let dr = rule("host: reviews\nsubsets:\n- {name: v3, labels: {version: v3}}");
    let (_, assignments) = build(&svc, Some(&dr));
    assert_eq!(assignments.len(), 2);
}

#[test]
fn dns_service_gets_strict_dns_with_inline_endpoints() {
    let mut svc = service(Resolution::Dns, &[(443, "tls")], Vec::new());
    svc.hostname = "api.example.com".to_owned();
    svc.endpoints = vec![Endpoint {
        address: "api.example.com".to_owned(),
        ports: BTreeMap::from([(443, 443)]),
        labels: Labels::new(),
        weight: None,
    }];
    let (clusters, assignments) = build(&svc, None);
    assert!(assignments.is_empty(), "no EDS for DNS clusters");
    let cluster = &clusters[0];
    assert!(is_type(cluster, DiscoveryType::StrictDns));
    assert_eq!(cluster.dns_lookup_family, DnsLookupFamily::V4Preferred as i32);
    assert!(cluster.eds_cluster_config.is_none());
    let inline = cluster.load_assignment.as_ref().expect("inline endpoints");
    assert_eq!(inline.cluster_name, "outbound|443||api.example.com");
    assert_eq!(addresses(inline), [("api.example.com".to_owned(), 443)]);
}

#[test]
fn passthrough_service_gets_original_dst_with_cluster_provided_lb() {
    let svc = service(Resolution::Passthrough, &[(80, "http")], Vec::new());
    let dr = rule("host: reviews\ntrafficPolicy:\n  loadBalancer: {consistentHash: {httpHeaderName: x-user}}");
    let (clusters, assignments) = build(&svc, Some(&dr));
    assert!(assignments.is_empty());
    assert!(is_type(&clusters[0], DiscoveryType::OriginalDst));
    assert_eq!(lb(&clusters[0]), LbPolicy::ClusterProvided, "consistent hash does not apply to ORIGINAL_DST");
    assert!(clusters[0].load_assignment.is_none() && clusters[0].eds_cluster_config.is_none());
}

// === Defaults and load balancing ===

#[test]
fn defaults_match_istiod_without_a_rule() {
    let (clusters, _) = build(&reviews(), None);
    let cluster = &clusters[0];
    assert_eq!(cluster.connect_timeout, Some(seconds(10)));
    assert_eq!(lb(cluster), LbPolicy::LeastRequest);
    assert_eq!(thresholds(cluster), (u32::MAX, u32::MAX, u32::MAX, u32::MAX));
    assert!(!cluster.circuit_breakers.as_ref().expect("set").thresholds[0].track_remaining);
    assert_eq!(cluster.common_lb_config, Some(CommonLbConfig::default()));
    assert!(cluster.outlier_detection.is_none() && cluster.transport_socket.is_none() && cluster.lb_config.is_none());
    assert!(cluster.typed_extension_protocol_options.is_empty(), "HTTP/1.1 needs no protocol options");
}

#[test]
fn http2_and_grpc_ports_speak_http2_upstream() {
    for name in ["http2", "grpc-web"] {
        let svc = service(Resolution::Static, &[(9090, name)], Vec::new());
        let (clusters, _) = build(&svc, None);
        let options = http_options(&clusters[0]).expect("protocol options");
        assert!(matches!(protocol(&options), ProtocolConfig::Http2ProtocolOptions(_)), "{name}");
        assert!(options.common_http_protocol_options.is_none());
    }
}

#[test]
fn simple_load_balancers_map_to_envoy_policies() {
    for (simple, expected) in [
        ("ROUND_ROBIN", LbPolicy::RoundRobin),
        ("LEAST_REQUEST", LbPolicy::LeastRequest),
        ("LEAST_CONN", LbPolicy::LeastRequest),
        ("RANDOM", LbPolicy::Random),
        ("UNSPECIFIED", LbPolicy::LeastRequest),
    ] {
        let dr = rule(&format!("host: reviews\ntrafficPolicy: {{loadBalancer: {{simple: {simple}}}}}"));
        let (clusters, _) = build(&reviews(), Some(&dr));
        assert_eq!(lb(&clusters[0]), expected, "{simple}");
        assert!(is_type(&clusters[0], DiscoveryType::Eds));
    }
}

#[test]
fn passthrough_load_balancer_turns_the_cluster_into_original_dst_without_endpoints() {
    let dr = rule(
        "
        host: reviews
        subsets:
        - name: direct
          labels: {version: v1}
          trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
        ",
    );
    let (clusters, assignments) = build(&reviews(), Some(&dr));
    let direct = named(&clusters, "outbound|9080|direct|reviews.default.svc.cluster.local");
    assert!(is_type(direct, DiscoveryType::OriginalDst));
    assert_eq!(lb(direct), LbPolicy::ClusterProvided);
    assert!(direct.eds_cluster_config.is_none() && direct.load_assignment.is_none());
    let names: Vec<&str> = assignments.iter().map(|a| a.cluster_name.as_str()).collect();
    assert_eq!(names, ["outbound|9080||reviews.default.svc.cluster.local"]);
}

#[test]
fn consistent_hash_picks_ring_hash_or_maglev_with_their_sizes() {
    for (hash, policy, size) in [
        ("{httpHeaderName: x-user}", LbPolicy::RingHash, Some(1024)),
        ("{httpHeaderName: x-user, minimumRingSize: 2048}", LbPolicy::RingHash, Some(2048)),
        ("{httpHeaderName: x-user, ringHash: {minimumRingSize: 4096}}", LbPolicy::RingHash, Some(4096)),
        // As istiod: an empty ringHash leaves Envoy's default (1024) unwritten.
        ("{httpHeaderName: x-user, ringHash: {}}", LbPolicy::RingHash, None),
    ] {
        let dr = rule(&format!("host: reviews\ntrafficPolicy: {{loadBalancer: {{consistentHash: {hash}}}}}"));
        let (clusters, _) = build(&reviews(), Some(&dr));
        assert_eq!((lb(&clusters[0]), ring_size(&clusters[0])), (policy, size), "{hash}");
    }
    let dr = rule(
        "
        host: reviews
        trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 65537}}}}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    assert_eq!(lb(&clusters[0]), LbPolicy::Maglev);
    assert_eq!(
        clusters[0].lb_config,
        Some(LbConfig::MaglevLbConfig(MaglevLbConfig { table_size: Some(UInt64Value { value: 65537 }) }))
    );
}

// === Connection pool and outlier detection ===

#[test]
fn connection_pool_limits_replace_only_the_defaults_they_set() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: 100, connectTimeout: 250ms}
            http: {http1MaxPendingRequests: 10, maxRetries: 0}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    let cluster = &clusters[0];
    assert_eq!(thresholds(cluster), (100, 10, u32::MAX, u32::MAX), "maxRetries 0 reads as unset, as in istiod");
    assert_eq!(cluster.connect_timeout, Some(duration(std::time::Duration::from_millis(250))));
    assert!(cluster.typed_extension_protocol_options.is_empty());
}

#[test]
fn per_connection_http_options_come_with_an_upstream_protocol() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy: {connectionPool: {http: {http2MaxRequests: 7, maxRequestsPerConnection: 1, idleTimeout: 30s}}}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    assert_eq!(thresholds(&clusters[0]).2, 7);
    let options = http_options(&clusters[0]).expect("protocol options");
    let common = options.common_http_protocol_options.expect("common options");
    assert_eq!(common.max_requests_per_connection, Some(UInt32Value { value: 1 }));
    assert_eq!(common.idle_timeout, Some(seconds(30)));
    assert!(matches!(protocol(&options), ProtocolConfig::HttpProtocolOptions(_)), "HTTP/1.1 stays explicit");

    let svc = service(Resolution::Static, &[(9080, "grpc")], Vec::new());
    let (clusters, _) = build(&svc, Some(&dr));
    let options = http_options(&clusters[0]).expect("protocol options");
    assert!(options.common_http_protocol_options.is_some());
    assert!(matches!(protocol(&options), ProtocolConfig::Http2ProtocolOptions(_)), "gRPC keeps HTTP/2");
}

#[test]
fn outlier_detection_is_enforced_as_istiod_writes_it() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          outlierDetection:
            consecutive5xxErrors: 7
            consecutiveGatewayErrors: 0
            interval: 5m
            baseEjectionTime: 15m
            maxEjectionPercent: 50
            minHealthPercent: 20
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    let out = clusters[0].outlier_detection.clone().expect("outlier detection");
    let v = |value: Option<UInt32Value>| value.map(|v| v.value);
    assert_eq!((v(out.consecutive_5xx), v(out.enforcing_consecutive_5xx)), (Some(7), Some(100)));
    assert_eq!((v(out.consecutive_gateway_failure), v(out.enforcing_consecutive_gateway_failure)), (Some(0), Some(0)));
    assert_eq!(v(out.enforcing_success_rate), Some(0));
    assert_eq!((out.interval, out.base_ejection_time), (Some(seconds(300)), Some(seconds(900))));
    assert_eq!(v(out.max_ejection_percent), Some(50));
    let common = clusters[0].common_lb_config.clone().expect("common lb config");
    assert_eq!(common.healthy_panic_threshold, Some(Percent { value: 20.0 }));

    let dr = rule("host: reviews\ntrafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}");
    let (clusters, _) = build(&reviews(), Some(&dr));
    let common = clusters[0].common_lb_config.clone().expect("common lb config");
    assert_eq!(common.healthy_panic_threshold, Some(Percent { value: 0.0 }), "panic mode off by default");
    let out = clusters[0].outlier_detection.clone().expect("outlier detection");
    assert!(out.consecutive_gateway_failure.is_none() && out.interval.is_none() && out.max_ejection_percent.is_none());
}

#[test]
fn deprecated_consecutive_errors_count_gateway_failures() {
    let dr = rule("host: reviews\ntrafficPolicy: {outlierDetection: {consecutiveErrors: 4}}");
    let (clusters, _) = build(&reviews(), Some(&dr));
    let out = clusters[0].outlier_detection.clone().expect("outlier detection");
    let v = |value: Option<UInt32Value>| value.map(|v| v.value);
    assert_eq!(
        (v(out.consecutive_gateway_failure), v(out.enforcing_consecutive_gateway_failure)),
        (Some(4), Some(100))
    );
    assert_eq!((v(out.consecutive_5xx), v(out.enforcing_consecutive_5xx)), (None, Some(0)));
    let dr = rule("host: reviews\ntrafficPolicy: {outlierDetection: {consecutiveErrors: 4, consecutive5xxErrors: 6}}");
    let (clusters, _) = build(&reviews(), Some(&dr));
    let out = clusters[0].outlier_detection.clone().expect("outlier detection");
    assert_eq!((v(out.consecutive_5xx), v(out.enforcing_consecutive_5xx)), (Some(6), Some(100)));
}

#[test]
fn durations_that_do_not_parse_are_skipped() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          connectionPool: {tcp: {connectTimeout: soon}, http: {idleTimeout: '10'}}
          outlierDetection: {interval: often, baseEjectionTime: 30s}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    assert_eq!(clusters[0].connect_timeout, Some(seconds(10)));
    assert!(clusters[0].typed_extension_protocol_options.is_empty());
    let out = clusters[0].outlier_detection.clone().expect("outlier detection");
    assert_eq!((out.interval, out.base_ejection_time), (None, Some(seconds(30))));
}

// === Merging ===

#[test]
fn subset_policy_overrides_the_rule_field_by_field() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          loadBalancer: {simple: RANDOM}
          connectionPool: {tcp: {maxConnections: 5}}
        subsets:
        - name: v2
          labels: {version: v2}
          trafficPolicy:
            loadBalancer: {simple: ROUND_ROBIN}
            outlierDetection: {consecutive5xxErrors: 2}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    let default = named(&clusters, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!((lb(default), thresholds(default).0), (LbPolicy::Random, 5));
    assert!(default.outlier_detection.is_none());
    let v2 = named(&clusters, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_eq!(lb(v2), LbPolicy::RoundRobin, "the subset's loadBalancer replaces the rule's");
    assert_eq!(thresholds(v2).0, 5, "the rule's connectionPool stays");
    assert!(v2.outlier_detection.is_some(), "the subset adds outlierDetection");
}

#[test]
fn port_level_settings_replace_the_whole_policy_for_their_port() {
    let mut svc = reviews();
    svc.ports.push(Port { number: 9090, name: "http-metrics".to_owned(), protocol: Protocol::Http });
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          loadBalancer: {simple: RANDOM}
          connectionPool: {tcp: {maxConnections: 5}}
          portLevelSettings:
          - port: {number: 9090}
            loadBalancer: {simple: ROUND_ROBIN}
        ",
    );
    let (clusters, _) = build(&svc, Some(&dr));
    let main = named(&clusters, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!((lb(main), thresholds(main).0), (LbPolicy::Random, 5));
    let metrics = named(&clusters, "outbound|9090||reviews.default.svc.cluster.local");
    assert_eq!(lb(metrics), LbPolicy::RoundRobin);
    assert_eq!(thresholds(metrics).0, u32::MAX, "as in istiod, a port-level entry does not inherit connectionPool");
}

#[test]
fn subset_port_level_settings_replace_everything_for_that_port() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          connectionPool: {tcp: {maxConnections: 5}}
          portLevelSettings:
          - port: {number: 9080}
            connectionPool: {tcp: {maxConnections: 6}}
            outlierDetection: {consecutive5xxErrors: 1}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy:
            connectionPool: {tcp: {maxConnections: 8}}
            portLevelSettings:
            - port: {number: 9080}
              loadBalancer: {simple: RANDOM}
        - name: v2
          labels: {version: v2}
          trafficPolicy:
            loadBalancer: {simple: ROUND_ROBIN}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    let default = named(&clusters, "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(thresholds(default).0, 6, "the rule's port-level entry");
    assert!(default.outlier_detection.is_some());
    let v1 = named(&clusters, "outbound|9080|v1|reviews.default.svc.cluster.local");
    assert_eq!((lb(v1), thresholds(v1).0), (LbPolicy::Random, u32::MAX));
    assert!(v1.outlier_detection.is_none(), "the subset's port-level entry replaces all four parts");
    let v2 = named(&clusters, "outbound|9080|v2|reviews.default.svc.cluster.local");
    assert_eq!((lb(v2), thresholds(v2).0), (LbPolicy::RoundRobin, 6), "merged over the rule's port-level entry");
    assert!(v2.outlier_detection.is_some());
}

// === TLS ===

#[test]
fn simple_tls_originates_tls_with_sni_ca_file_and_sans() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          tls:
            mode: SIMPLE
            caCertificates: /etc/certs/ca.pem
            subjectAltNames: [reviews.example.com, 'spiffe://cluster.local/ns/default/sa/reviews', 10.1.2.3]
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    let context = tls_context(&clusters[0]);
    assert_eq!(context.sni, HOST);
    let common = context.common_tls_context.expect("common context");
    let params = common.tls_params.expect("tls params");
    assert_eq!(params.tls_minimum_protocol_version, TlsProtocol::TlSv12 as i32);
    assert!(common.alpn_protocols.is_empty());
    let Some(ValidationContextType::ValidationContext(validation)) = common.validation_context_type else {
        panic!("validation context")
    };
    let file = validation.trusted_ca.and_then(|ca| ca.specifier);
    assert_eq!(file, Some(data_source::Specifier::Filename("/etc/certs/ca.pem".to_owned())));
    assert!(validation.system_root_certs.is_none());
    let sans: Vec<(i32, Option<string_matcher::MatchPattern>)> = validation
        .match_typed_subject_alt_names
        .into_iter()
        .map(|m| (m.san_type, m.matcher.and_then(|s| s.match_pattern)))
        .collect();
    let exact = |s: &str| Some(string_matcher::MatchPattern::Exact(s.to_owned()));
    assert_eq!(
        sans,
        [
            (SanType::Dns as i32, exact("reviews.example.com")),
            (SanType::Uri as i32, exact("spiffe://cluster.local/ns/default/sa/reviews")),
            (SanType::IpAddress as i32, exact("10.1.2.3")),
        ]
    );
}

#[test]
fn simple_tls_uses_given_sni_system_cas_or_no_verification() {
    let svc = service(Resolution::Static, &[(443, "grpc")], Vec::new());
    let dr = rule("host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, sni: api.internal}}");
    let (clusters, _) = build(&svc, Some(&dr));
    let context = tls_context(&clusters[0]);
    assert_eq!(context.sni, "api.internal");
    let common = context.common_tls_context.expect("common context");
    assert_eq!(common.alpn_protocols, ["h2"], "HTTP/2 clusters advertise h2");
    let Some(ValidationContextType::ValidationContext(validation)) = common.validation_context_type else {
        panic!("validation context")
    };
    assert_eq!((validation.trusted_ca, validation.system_root_certs), (None, Some(SystemRootCerts {})));

    let dr = rule("host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true}}");
    let (clusters, _) = build(&svc, Some(&dr));
    let common = tls_context(&clusters[0]).common_tls_context.expect("common context");
    assert!(common.validation_context_type.is_none());
}

#[test]
fn simple_tls_with_subject_alt_names_trusts_the_system_bundle_file() {
    // Envoy refuses SAN matchers with `system_root_certs` alone: they need a trusted CA.
    let svc = service(Resolution::Static, &[(443, "https")], Vec::new());
    let dr = rule("host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, subjectAltNames: [reviews.example.com]}}");
    let (clusters, _) = build(&svc, Some(&dr));
    let common = tls_context(&clusters[0]).common_tls_context.expect("common context");
    let Some(ValidationContextType::ValidationContext(validation)) = common.validation_context_type else {
        panic!("validation context")
    };
    let file = validation.trusted_ca.and_then(|ca| ca.specifier);
    assert_eq!(file, Some(data_source::Specifier::Filename(SYSTEM_CA_BUNDLE.to_owned())));
    assert!(validation.system_root_certs.is_none());
    assert_eq!(validation.match_typed_subject_alt_names.len(), 1);
}

#[test]
fn simple_tls_to_a_wildcard_host_takes_sni_from_the_request() {
    let mut svc = service(Resolution::Passthrough, &[(443, "https")], Vec::new());
    svc.ports[0].protocol = Protocol::Http;
    svc.hostname = "*.example.com".to_owned();
    let dr = rule("host: '*.example.com'\ntrafficPolicy: {tls: {mode: SIMPLE}}");
    let (clusters, _) = build(&svc, Some(&dr));
    assert_eq!(tls_context(&clusters[0]).sni, "", "a wildcard is no server name");
    let options = http_options(&clusters[0]).expect("protocol options");
    let upstream = options.upstream_http_protocol_options.clone().expect("upstream options");
    assert!(upstream.auto_sni && upstream.auto_san_validation);
    assert!(matches!(protocol(&options), ProtocolConfig::HttpProtocolOptions(_)));
}

#[test]
fn mutual_tls_stays_plaintext_and_leaves_reporting_to_validation() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy: {tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}}
        - {name: v2, labels: {version: v2}, trafficPolicy: {tls: {mode: DISABLE}}}
        ",
    );
    let (clusters, _) = build(&reviews(), Some(&dr));
    assert!(clusters.iter().all(|c| c.transport_socket.is_none()));
}

#[test]
fn credential_name_is_ignored_and_tls_still_originated() {
    let dr = rule("host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, credentialName: reviews-ca}}");
    let (clusters, _) = build(&reviews(), Some(&dr));
    assert!(clusters[0].transport_socket.is_some(), "TLS is still originated");
}

// === Hash policies ===

#[test]
fn hash_policies_follow_the_consistent_hash_key() {
    let policy = |hash: &str| {
        let dr = rule(&format!("host: reviews\ntrafficPolicy: {{loadBalancer: {{consistentHash: {hash}}}}}"));
        hash_policies(Some(&dr), 9080, "")
            .into_iter()
            .map(|p| p.policy_specifier.expect("specifier"))
            .collect::<Vec<_>>()
    };
    use hash_policy::PolicySpecifier;
    assert_eq!(
        policy("{httpHeaderName: x-user}"),
        [PolicySpecifier::Header(hash_policy::Header { header_name: "x-user".to_owned(), regex_rewrite: None })]
    );
    assert_eq!(
        policy("{httpCookie: {name: session, path: /, ttl: 60s}}"),
        [PolicySpecifier::Cookie(hash_policy::Cookie {
            name: "session".to_owned(),
            path: "/".to_owned(),
            ttl: Some(seconds(60)),
            ..Default::default()
        })]
    );
    assert_eq!(
        policy("{useSourceIp: true}"),
        [PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties { source_ip: true })]
    );
    assert_eq!(
        policy("{httpQueryParameterName: user}"),
        [PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name: "user".to_owned() })]
    );
}

#[test]
fn hash_policies_use_the_effective_policy_of_port_and_subset() {
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          loadBalancer: {consistentHash: {httpHeaderName: x-user}}
          portLevelSettings:
          - port: {number: 9090}
            loadBalancer: {simple: RANDOM}
        subsets:
        - {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}}
        - {name: v2, labels: {version: v2}}
        ",
    );
    let key = |port, subset| {
        hash_policies(Some(&dr), port, subset)
            .into_iter()
            .map(|p| p.policy_specifier.expect("specifier"))
            .collect::<Vec<_>>()
    };
    assert!(matches!(key(9080, "")[..], [hash_policy::PolicySpecifier::Header(_)]));
    assert!(matches!(key(9080, "v2")[..], [hash_policy::PolicySpecifier::Header(_)]), "inherits the rule's");
    assert!(matches!(key(9080, "v1")[..], [hash_policy::PolicySpecifier::ConnectionProperties(_)]));
    assert!(key(9090, "").is_empty(), "the port-level entry has no consistent hash");
    assert!(hash_policies(None, 9080, "").is_empty());
    let plain = rule("host: reviews\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}");
    assert!(hash_policies(Some(&plain), 9080, "").is_empty());
}

// === Rendering ===

/// Envoy's JSON shape (proto field names), through reflection over the Envoy descriptors.
#[test]
fn a_fully_shaped_cluster_renders_as_envoy_json() {
    let svc = service(Resolution::Static, &[(9080, "http2")], vec![endpoint("10.0.0.1", 9080, "v1")]);
    let dr = rule(
        "
        host: reviews
        trafficPolicy:
          loadBalancer: {consistentHash: {httpCookie: {name: s, ttl: 10s}}}
          connectionPool: {tcp: {maxConnections: 10}, http: {idleTimeout: 1m, maxRequestsPerConnection: 3}}
          outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 20}
          tls: {mode: SIMPLE, subjectAltNames: [reviews]}
        ",
    );
    let (clusters, assignments) = build(&svc, Some(&dr));
    let json = api_protos::reflect::message_to_json(&clusters[0]).expect("renders");
    assert_eq!(json["@type"], "type.googleapis.com/envoy.config.cluster.v3.Cluster");
    assert_eq!(json["name"], "outbound|9080||reviews.default.svc.cluster.local");
    assert_eq!(json["type"], "EDS");
    assert_eq!(json["lb_policy"], "RING_HASH");
    assert_eq!(json["ring_hash_lb_config"]["minimum_ring_size"], "1024");
    assert_eq!(json["connect_timeout"], "10s");
    assert_eq!(json["circuit_breakers"]["thresholds"][0]["max_connections"], 10);
    assert_eq!(json["outlier_detection"]["consecutive_5xx"], 3);
    let options = &json["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
    assert_eq!(options["@type"], format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"));
    assert_eq!(options["common_http_protocol_options"]["idle_timeout"], "60s");
    assert!(options["explicit_http_config"]["http2_protocol_options"].is_object());
    let tls = &json["transport_socket"]["typed_config"];
    assert_eq!(tls["sni"], HOST);
    assert_eq!(tls["common_tls_context"]["alpn_protocols"][0], "h2");
    let json = api_protos::reflect::message_to_json(&assignments[0]).expect("renders");
    assert_eq!(json["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]["port_value"], 9080);
}
