//! Clusters and endpoints for services, shaped by DestinationRules, as istiod builds them
//! (`pilot/pkg/networking/core/cluster_builder.go`, `cluster_traffic_policy.go`, `cluster_tls.go`).
//!
//! ```text
//!   Service ports ──┬──► outbound|<port>||<host>           ┐  each shaped by the effective TrafficPolicy for
//!                   └──► outbound|<port>|<subset>|<host>   ┘  (port, subset): DR ◄ portLevelSettings ◄ subset
//!   Static service  ──► EDS cluster + ClusterLoadAssignment (endpoints filtered by subset labels)
//!   DNS service     ──► STRICT_DNS cluster, endpoints inline
//!   Passthrough     ──► ORIGINAL_DST cluster
//! ```
//!
//! This module does not pick the DestinationRule (see [`crate::model::Model::destination_rule`]), does not report
//! invalid field values (validation does; a value that does not parse is skipped here), and does not build the
//! fixed clusters of captured sidecars (`BlackHoleCluster`, `PassthroughCluster`: [`super::sidecar`] does).

use api_protos::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as EnvoyOutlierDetection,
    circuit_breakers::Thresholds,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbConfig, LbPolicy,
        MaglevLbConfig, RingHashLbConfig,
    },
};
use api_protos::pb::envoy::config::core::v3::{
    DataSource, Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpProtocolOptions,
    TransportSocket, UpstreamHttpProtocolOptions, data_source, transport_socket,
};
use api_protos::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint as EnvoyEndpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use api_protos::pb::envoy::config::route::v3::route_action::{HashPolicy, hash_policy};
use api_protos::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsParameters, UpstreamTlsContext,
    certificate_validation_context::SystemRootCerts, common_tls_context::ValidationContextType,
    subject_alt_name_matcher::SanType, tls_parameters::TlsProtocol,
};
use api_protos::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions,
    http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions, explicit_http_config::ProtocolConfig},
};
use api_protos::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use api_protos::pb::envoy::r#type::v3::Percent;
use api_protos::pb::google::protobuf::{UInt32Value, UInt64Value};

use super::envoy::{ads, duration, seconds, socket_address, typed};
use crate::duration::parse_duration;
use crate::input::istio::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRule, LoadBalancerSettings,
    OutlierDetection, Subset, TrafficPolicy,
};
use crate::input::{Labels, Object};
use crate::model::{Endpoint, Port, Resolution, Service, cluster_name};

/// Key of the upstream HTTP options in `typed_extension_protocol_options`.
pub(super) const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
const TLS_TRANSPORT_SOCKET: &str = "envoy.transport_sockets.tls";
/// istiod's mesh default `connectTimeout`.
pub(super) const DEFAULT_CONNECT_TIMEOUT_SECONDS: i64 = 10;
/// The system CA bundle on Debian, Ubuntu (Envoy's images) and Alpine, the first place istio-agent looks for it.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Envoy's (and istiod's) ring size when a consistent hash names no ring at all.
const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;

/// The clusters of one service (one per port, plus one per port and DestinationRule subset) and the endpoints of
/// those delivered over EDS.
pub fn service_clusters(
    service: &Service,
    rule: Option<&Object<DestinationRule>>,
) -> (Vec<Cluster>, Vec<ClusterLoadAssignment>) {
    let mut clusters = Vec::new();
    let mut assignments = Vec::new();
    let subsets = rule.map(|r| r.spec.subsets.as_slice()).unwrap_or_default();
    // An unnamed subset would take the port's own cluster name; validation reports it.
    let named_subsets = subsets.iter().enumerate().filter(|(_, s)| !s.name.is_empty());
    for port in &service.ports {
        for subset in std::iter::once(None).chain(named_subsets.clone().map(Some)) {
            let (cluster, assignment) = ClusterSpec::new(service, port, rule, subset).build();
            clusters.push(cluster);
            assignments.extend(assignment);
        }
    }
    (clusters, assignments)
}

/// Route hash policies for consistent-hash load balancing of `port`/`subset` of the rule's host.
pub fn hash_policies(rule: Option<&Object<DestinationRule>>, port: u32, subset: &str) -> Vec<HashPolicy> {
    let Some(rule) = rule else { return Vec::new() };
    let subset = rule.spec.subsets.iter().enumerate().find(|(_, s)| !subset.is_empty() && s.name == subset);
    let policy = effective_policy(Some(&rule.spec), port, subset);
    let Some(hash) = policy.load_balancer.and_then(|lb| lb.consistent_hash.as_ref()) else { return Vec::new() };
    hash_policy(hash).into_iter().collect()
}

/// istiod's `consistentHashToHashPolicy`: the one hash key a consistent hash names.
fn hash_policy(hash: &ConsistentHashLb) -> Option<HashPolicy> {
    use hash_policy::PolicySpecifier;
    let specifier = if let Some(header) = &hash.http_header_name {
        PolicySpecifier::Header(hash_policy::Header { header_name: header.clone(), ..Default::default() })
    } else if let Some(cookie) = &hash.http_cookie {
        PolicySpecifier::Cookie(hash_policy::Cookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl.as_deref().and_then(|t| parse_duration(t).ok()).map(duration),
            ..Default::default()
        })
    } else if hash.use_source_ip == Some(true) {
        PolicySpecifier::ConnectionProperties(hash_policy::ConnectionProperties { source_ip: true })
    } else if let Some(name) = &hash.http_query_parameter_name {
        PolicySpecifier::QueryParameter(hash_policy::QueryParameter { name: name.clone() })
    } else {
        return None;
    };
    Some(HashPolicy { policy_specifier: Some(specifier), ..Default::default() })
}

// === Effective traffic policy ===

/// The parts of a TrafficPolicy that shape one cluster, after merging; `tls_field` says where `tls` came from.
#[derive(Clone, Debug, Default)]
struct Policy<'a> {
    load_balancer: Option<&'a LoadBalancerSettings>,
    connection_pool: Option<&'a ConnectionPoolSettings>,
    outlier_detection: Option<&'a OutlierDetection>,
    tls: Option<&'a ClientTlsSettings>,
    tls_field: String,
}

/// The policy for `port` of one level (DR or subset) and whether a `portLevelSettings` entry supplied it.
///
/// As in istiod's `GetPortLevelTrafficPolicy`, a matching port-level entry replaces the level's policy as a whole:
/// a field it leaves unset falls back to the default, it is not inherited from the level's top-level policy (the
/// API docs say so too).
fn level_policy<'a>(policy: &'a TrafficPolicy, path: &str, port: u32) -> (Policy<'a>, bool) {
    let port_level = policy
        .port_level_settings
        .iter()
        .enumerate()
        .find(|(_, p)| p.port.as_ref().is_some_and(|selector| selector.number == i64::from(port)));
    match port_level {
        Some((index, p)) => (
            Policy {
                load_balancer: p.load_balancer.as_ref(),
                connection_pool: p.connection_pool.as_ref(),
                outlier_detection: p.outlier_detection.as_ref(),
                tls: p.tls.as_ref(),
                tls_field: format!("{path}.portLevelSettings[{index}].tls"),
            },
            true,
        ),
        None => (
            Policy {
                load_balancer: policy.load_balancer.as_ref(),
                connection_pool: policy.connection_pool.as_ref(),
                outlier_detection: policy.outlier_detection.as_ref(),
                tls: policy.tls.as_ref(),
                tls_field: format!("{path}.tls"),
            },
            false,
        ),
    }
}

/// istiod's `MergeSubsetTrafficPolicy`: the DR's policy for the port; then, if the subset has a policy, its
/// port-level entry replaces all four parts, or else each part the subset sets replaces the DR's.
fn effective_policy<'a>(
    rule: Option<&'a DestinationRule>,
    port: u32,
    subset: Option<(usize, &'a Subset)>,
) -> Policy<'a> {
    let base = rule
        .and_then(|r| r.traffic_policy.as_ref())
        .map(|p| level_policy(p, "spec.trafficPolicy", port).0)
        .unwrap_or_default();
    let Some((index, Some(subset_policy))) = subset.map(|(i, s)| (i, s.traffic_policy.as_ref())) else { return base };
    let (over, port_level) = level_policy(subset_policy, &format!("spec.subsets[{index}].trafficPolicy"), port);
    if port_level {
        return over;
    }
    let (tls, tls_field) = match over.tls {
        Some(tls) => (Some(tls), over.tls_field),
        None => (base.tls, base.tls_field),
    };
    Policy {
        load_balancer: over.load_balancer.or(base.load_balancer),
        connection_pool: over.connection_pool.or(base.connection_pool),
        outlier_detection: over.outlier_detection.or(base.outlier_detection),
        tls,
        tls_field,
    }
}

// === Cluster building ===

/// One cluster to build: a service port, optionally narrowed to a subset, with its effective policy.
struct ClusterSpec<'a> {
    service: &'a Service,
    port: &'a Port,
    subset: &'a str,
    selector: &'a Labels,
    policy: Policy<'a>,
}

impl<'a> ClusterSpec<'a> {
    fn new(
        service: &'a Service,
        port: &'a Port,
        rule: Option<&'a Object<DestinationRule>>,
        subset: Option<(usize, &'a Subset)>,
    ) -> ClusterSpec<'a> {
        static NO_LABELS: Labels = Labels::new();
        let (name, selector) = subset.map_or(("", &NO_LABELS), |(_, s)| (s.name.as_str(), &s.labels));
        let policy = effective_policy(rule.map(|r| &r.spec), port.number, subset);
        ClusterSpec { service, port, subset: name, selector, policy }
    }

    fn build(&self) -> (Cluster, Option<ClusterLoadAssignment>) {
        let name = cluster_name(self.port.number, self.subset, &self.service.hostname);
        let mut cluster = Cluster {
            name: name.clone(),
            connect_timeout: Some(seconds(DEFAULT_CONNECT_TIMEOUT_SECONDS)),
            lb_policy: LbPolicy::LeastRequest as i32,
            circuit_breakers: Some(CircuitBreakers { thresholds: vec![default_thresholds()], ..Default::default() }),
            common_lb_config: Some(CommonLbConfig::default()),
            ..Default::default()
        };
        let mut assignment = None;
        match self.service.resolution {
            Resolution::Static => {
                set_type(&mut cluster, DiscoveryType::Eds);
                cluster.eds_cluster_config =
                    Some(EdsClusterConfig { eds_config: Some(ads()), service_name: name.clone() });
                assignment = Some(self.load_assignment(&name));
            }
            Resolution::Dns => {
                set_type(&mut cluster, DiscoveryType::StrictDns);
                // pilotfish differs: istiod picks V4_ONLY/ALL from the proxy's IP families and also sets
                // `dns_refresh_rate` and `respect_dns_ttl`, both deprecated in Envoy 1.40 (Envoy's defaults apply).
                cluster.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
                cluster.load_assignment = Some(self.load_assignment(&name));
            }
            Resolution::Passthrough => {
                set_type(&mut cluster, DiscoveryType::OriginalDst);
                cluster.lb_policy = LbPolicy::ClusterProvided as i32;
            }
        }
        // HTTP/2 and gRPC ports speak HTTP/2 upstream (istiod's `setH2Options`).
        let mut http = self.port.protocol.is_http2().then(|| HttpProtocolOptions {
            upstream_protocol_options: Some(explicit(ProtocolConfig::Http2ProtocolOptions(
                Http2ProtocolOptions::default(),
            ))),
            ..Default::default()
        });
        if let Some(pool) = self.policy.connection_pool {
            apply_connection_pool(&mut cluster, &mut http, pool);
        }
        if let Some(outlier) = self.policy.outlier_detection {
            apply_outlier_detection(&mut cluster, outlier);
        }
        apply_load_balancer(&mut cluster, self.policy.load_balancer);
        if is_type(&cluster, DiscoveryType::OriginalDst) {
            // PASSTHROUGH turns any cluster into ORIGINAL_DST: no endpoints to send (istiod drops them too, and
            // only EDS clusters get an `eds_cluster_config`).
            cluster.load_assignment = None;
            cluster.eds_cluster_config = None;
            assignment = None;
        }
        if let Some(tls) = self.policy.tls {
            self.apply_tls(&mut cluster, &mut http, tls);
        }
        if let Some(mut options) = http {
            if options.upstream_protocol_options.is_none() {
                // Envoy requires a protocol choice once the options are present: HTTP/1.1, as without them.
                options.upstream_protocol_options =
                    Some(explicit(ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())));
            }
            cluster.typed_extension_protocol_options.insert(HTTP_PROTOCOL_OPTIONS.to_owned(), typed(&options));
        }
        (cluster, assignment)
    }

    /// The service's endpoints for the port whose labels include the subset's, in one locality.
    fn load_assignment(&self, name: &str) -> ClusterLoadAssignment {
        let lb_endpoints: Vec<LbEndpoint> =
            self.service.endpoints_for(self.port.number, self.selector).map(|(e, port)| lb_endpoint(e, port)).collect();
        let endpoints = if lb_endpoints.is_empty() {
            Vec::new()
        } else {
            vec![LocalityLbEndpoints { lb_endpoints, ..Default::default() }]
        };
        ClusterLoadAssignment { cluster_name: name.to_owned(), endpoints, ..Default::default() }
    }

    /// `tls` → an upstream TLS transport socket (SIMPLE only so far).
    fn apply_tls(&self, cluster: &mut Cluster, http: &mut Option<HttpProtocolOptions>, tls: &ClientTlsSettings) {
        let mode = tls.mode.as_deref().unwrap_or("DISABLE").to_ascii_uppercase();
        match mode.as_str() {
            "SIMPLE" => {}
            // Not supported yet: plaintext. Validation says so once per rule (not once per cluster).
            "MUTUAL" | "ISTIO_MUTUAL" => return,
            // DISABLE, and modes validation reports.
            _ => return,
        }
        // `credentialName` is ignored (no SDS yet); validation reports it once per rule.
        let hostname = &self.service.hostname;
        let sni = match (tls.sni.as_str(), hostname.starts_with('*')) {
            ("", false) => hostname.clone(),
            ("", true) => {
                // No name to send for a wildcard host: take it from the request's Host, as istiod does for every
                // SIMPLE cluster without `sni` (pilotfish sends the service host name instead, which also works
                // for TCP).
                if self.port.protocol.is_http() {
                    let options = http.get_or_insert_with(HttpProtocolOptions::default);
                    let upstream = options.upstream_http_protocol_options.get_or_insert_with(Default::default);
                    *upstream = UpstreamHttpProtocolOptions {
                        auto_sni: true,
                        auto_san_validation: tls.subject_alt_names.is_empty() && tls.insecure_skip_verify != Some(true),
                        ..upstream.clone()
                    };
                }
                String::new()
            }
            (sni, _) => sni.to_owned(),
        };
        // pilotfish differs: istiod serves `caCertificates` (or the system CAs) over SDS from files so they can
        // rotate; here Envoy reads the file itself.
        let validation = (tls.insecure_skip_verify != Some(true)).then(|| {
            let file = |path: &str| {
                Some(DataSource {
                    specifier: Some(data_source::Specifier::Filename(path.to_owned())),
                    ..Default::default()
                })
            };
            let (trusted_ca, system_root_certs) = if !tls.ca_certificates.is_empty() {
                (file(&tls.ca_certificates), None)
            } else if !tls.subject_alt_names.is_empty() {
                // Envoy refuses SAN matching without a `trusted_ca` ("SAN-based verification of peer certificates
                // without trusted CA is insecure and not allowed"); `system_root_certs` does not count. istiod
                // hands Envoy the system bundle (over SDS, as `file-root:system`); pilotfish names the file.
                (file(SYSTEM_CA_BUNDLE), None)
            } else {
                (None, Some(SystemRootCerts {}))
            };
            ValidationContextType::ValidationContext(CertificateValidationContext {
                trusted_ca,
                system_root_certs,
                match_typed_subject_alt_names: tls.subject_alt_names.iter().map(|n| san_matcher(n)).collect(),
                ..Default::default()
            })
        });
        let context = UpstreamTlsContext {
            sni,
            common_tls_context: Some(CommonTlsContext {
                // As istiod's `defaultUpstreamCommonTLSContext`.
                tls_params: Some(TlsParameters {
                    tls_minimum_protocol_version: TlsProtocol::TlSv12 as i32,
                    tls_maximum_protocol_version: TlsProtocol::TlSv13 as i32,
                    ..Default::default()
                }),
                alpn_protocols: if self.port.protocol.is_http2() { vec!["h2".to_owned()] } else { Vec::new() },
                validation_context_type: validation,
                ..Default::default()
            }),
            ..Default::default()
        };
        cluster.transport_socket = Some(TransportSocket {
            name: TLS_TRANSPORT_SOCKET.to_owned(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(typed(&context))),
        });
    }
}

fn set_type(cluster: &mut Cluster, kind: DiscoveryType) {
    cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(kind as i32));
}

fn is_type(cluster: &Cluster, kind: DiscoveryType) -> bool {
    cluster.cluster_discovery_type == Some(ClusterDiscoveryType::Type(kind as i32))
}

fn explicit(config: ProtocolConfig) -> UpstreamProtocolOptions {
    UpstreamProtocolOptions::ExplicitHttpConfig(ExplicitHttpConfig { protocol_config: Some(config) })
}

fn lb_endpoint(endpoint: &Endpoint, port: u32) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(EnvoyEndpoint {
            address: Some(socket_address(&endpoint.address, port)),
            ..Default::default()
        })),
        // Envoy requires a weight of at least 1; istiod writes 1 for a zero weight.
        load_balancing_weight: endpoint.weight.filter(|w| *w > 0).map(|value| UInt32Value { value }),
        ..Default::default()
    }
}

fn u32_value(value: u32) -> Option<UInt32Value> {
    Some(UInt32Value { value })
}

/// A positive Istio count as an Envoy `UInt32Value`; zero, negative or too large values mean "unset", as in
/// istiod (which cannot tell an explicit zero from unset).
fn positive(value: Option<i64>) -> Option<UInt32Value> {
    value.filter(|v| *v > 0).and_then(|v| u32::try_from(v).ok()).map(|value| UInt32Value { value })
}

/// istiod's `getDefaultCircuitBreakerThresholds`: effectively unlimited, so Envoy's small defaults (3 retries,
/// 1024 connections, …) never reject traffic during endpoint churn.
pub(super) fn default_thresholds() -> Thresholds {
    Thresholds {
        max_connections: u32_value(u32::MAX),
        max_pending_requests: u32_value(u32::MAX),
        max_requests: u32_value(u32::MAX),
        max_retries: u32_value(u32::MAX),
        // Istio now defaults to not tracking remaining capacity (DISABLE_TRACK_REMAINING_CB_METRICS).
        track_remaining: false,
        ..Default::default()
    }
}

/// istiod's `applyConnectionPool`: limits into the circuit-breaker thresholds (only values > 0 replace the
/// defaults), `connectTimeout`, and per-connection HTTP options.
fn apply_connection_pool(cluster: &mut Cluster, http: &mut Option<HttpProtocolOptions>, pool: &ConnectionPoolSettings) {
    let mut thresholds = default_thresholds();
    let mut common = CommonHttpProtocolOptions::default();
    if let Some(settings) = &pool.http {
        if let Some(v) = positive(settings.http2_max_requests) {
            thresholds.max_requests = Some(v);
        }
        if let Some(v) = positive(settings.http1_max_pending_requests) {
            thresholds.max_pending_requests = Some(v);
        }
        if let Some(v) = positive(settings.max_retries) {
            thresholds.max_retries = Some(v);
        }
        common.idle_timeout = settings.idle_timeout.as_deref().and_then(|t| parse_duration(t).ok()).map(duration);
        common.max_requests_per_connection = positive(settings.max_requests_per_connection);
    }
    if let Some(settings) = &pool.tcp {
        if let Some(timeout) = settings.connect_timeout.as_deref().and_then(|t| parse_duration(t).ok()) {
            cluster.connect_timeout = Some(duration(timeout));
        }
        if let Some(v) = positive(settings.max_connections) {
            thresholds.max_connections = Some(v);
        }
    }
    cluster.circuit_breakers = Some(CircuitBreakers { thresholds: vec![thresholds], ..Default::default() });
    if common != CommonHttpProtocolOptions::default() {
        http.get_or_insert_with(HttpProtocolOptions::default).common_http_protocol_options = Some(common);
    }
}

/// istiod's `applyOutlierDetection`: each consecutive-error count enforced at 100% (0% when the count is 0),
/// success-rate ejection off, and the panic threshold set to `minHealthPercent` (0 when unset: panic mode off).
fn apply_outlier_detection(cluster: &mut Cluster, outlier: &OutlierDetection) {
    let count = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let enforcing = |v: u32| u32_value(if v > 0 { 100 } else { 0 });
    let mut out = EnvoyOutlierDetection { enforcing_success_rate: u32_value(0), ..Default::default() };
    // The deprecated `consecutiveErrors` counts 502/503/504 only (istio/api#617): istiod 1.1 and later turned it
    // into gateway failures with 5xx ejection off; the newest istiod ignores it. pilotfish keeps honouring it,
    // below the fields that replace it.
    if let Some(v) = count(outlier.consecutive_errors).filter(|v| *v > 0) {
        out.consecutive_gateway_failure = u32_value(v);
        out.enforcing_consecutive_gateway_failure = u32_value(100);
        out.enforcing_consecutive_5xx = u32_value(0);
    }
    if let Some(v) = count(outlier.consecutive_5xx_errors) {
        out.consecutive_5xx = u32_value(v);
        out.enforcing_consecutive_5xx = enforcing(v);
    }
    if let Some(v) = count(outlier.consecutive_gateway_errors) {
        out.consecutive_gateway_failure = u32_value(v);
        out.enforcing_consecutive_gateway_failure = enforcing(v);
    }
    out.interval = outlier.interval.as_deref().and_then(|t| parse_duration(t).ok()).map(duration);
    out.base_ejection_time = outlier.base_ejection_time.as_deref().and_then(|t| parse_duration(t).ok()).map(duration);
    out.max_ejection_percent = positive(outlier.max_ejection_percent);
    cluster.outlier_detection = Some(out);
    let min_health = outlier.min_health_percent.unwrap_or(0).clamp(0, 100);
    cluster.common_lb_config.get_or_insert_with(CommonLbConfig::default).healthy_panic_threshold =
        Some(Percent { value: min_health as f64 });
}

/// istiod's `applyLoadBalancer` and `ApplyRingHashLoadBalancer`.
fn apply_load_balancer(cluster: &mut Cluster, lb: Option<&LoadBalancerSettings>) {
    if is_type(cluster, DiscoveryType::OriginalDst) {
        cluster.lb_policy = LbPolicy::ClusterProvided as i32;
        return;
    }
    let simple = lb.and_then(|lb| lb.simple.as_deref()).unwrap_or_default().to_ascii_uppercase();
    cluster.lb_policy = match simple.as_str() {
        "ROUND_ROBIN" => LbPolicy::RoundRobin,
        "RANDOM" => LbPolicy::Random,
        "PASSTHROUGH" => {
            set_type(cluster, DiscoveryType::OriginalDst);
            LbPolicy::ClusterProvided
        }
        // LEAST_REQUEST, LEAST_CONN (its deprecated name), UNSPECIFIED and unset: Istio's default.
        _ => LbPolicy::LeastRequest,
    } as i32;
    let Some(hash) = lb.and_then(|lb| lb.consistent_hash.as_ref()) else { return };
    // Sizes of 0 (or that do not fit) leave Envoy's defaults, as in istiod.
    let size = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok()).filter(|v| *v > 0);
    if let Some(maglev) = &hash.maglev {
        cluster.lb_policy = LbPolicy::Maglev as i32;
        if let Some(table_size) = size(maglev.table_size) {
            cluster.lb_config =
                Some(LbConfig::MaglevLbConfig(MaglevLbConfig { table_size: Some(UInt64Value { value: table_size }) }));
        }
        return;
    }
    cluster.lb_policy = LbPolicy::RingHash as i32;
    let minimum = match &hash.ring_hash {
        Some(ring) => size(ring.minimum_ring_size),
        None => Some(size(hash.minimum_ring_size).unwrap_or(DEFAULT_MINIMUM_RING_SIZE)),
    };
    if let Some(value) = minimum {
        cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
            minimum_ring_size: Some(UInt64Value { value }),
            ..Default::default()
        }));
    }
}

/// A subject alt name to verify: a URI (`spiffe://…`), an IP address, or else a DNS name.
fn san_matcher(name: &str) -> SubjectAltNameMatcher {
    let san_type = if name.contains("://") {
        SanType::Uri
    } else if name.parse::<std::net::IpAddr>().is_ok() {
        SanType::IpAddress
    } else {
        SanType::Dns
    };
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(name.to_owned())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
