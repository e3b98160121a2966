//! Istio's traffic API as serde types: Gateway, VirtualService, DestinationRule, ServiceEntry.
//!
//! `networking.istio.io/v1`, `v1beta1` and `v1alpha3` are field-identical, so one set of types reads all three.
//! A field these types do not declare is reported by the reader: as a warning when it is one of Istio's fields that
//! pilotfish does not translate ([`unsupported_field`]), as an error otherwise. Values that need checking (durations, enums, ranges) are kept as written and
//! checked by validation, so a bad value becomes a diagnostic with its field path instead of an unreadable object.
//! Deprecated fields Istio still honours are here too (`percent`, `mirrorPercent`, `allowOrigin`,
//! `consecutiveErrors`, `minimumRingSize`).

use std::collections::BTreeMap;

use serde::Deserialize;

pub type Labels = BTreeMap<String, String>;

/// Fields of Istio's API (istio/api networking/v1alpha3) that these types leave out because pilotfish does not
/// translate them: `(type, field, what ignoring it means)`. Fields it reads but does not translate in full are
/// declared above and checked by validation.
const UNSUPPORTED_FIELDS: &[(&str, &str, &str)] = &[
    ("HttpMatchRequest", "statPrefix", "per-route stats are not generated"),
    ("HttpRedirect", "prefixRewrite", "the redirect keeps the whole path"),
    ("HttpRetry", "retryIgnorePreviousHosts", "retries may go to the same host again"),
    ("HttpRetry", "backoff", "Envoy's default retry backoff (25 ms base) applies"),
    ("CorsPolicy", "unmatchedPreflights", "unmatched preflight requests are forwarded"),
    ("FaultAbort", "http2Error", "this abort is ignored"),
    ("DestinationRule", "workloadSelector", "the rule applies to every workload"),
    ("TrafficPolicy", "tunnel", "no tunnel is set up"),
    ("TrafficPolicy", "proxyProtocol", "no PROXY protocol header is sent"),
    ("TrafficPolicy", "retryBudget", "no retry budget limits retries"),
    ("LoadBalancerSettings", "localityLbSetting", "locality is not taken into account"),
    ("LoadBalancerSettings", "zoneAwareLbSetting", "zones are not taken into account"),
    ("LoadBalancerSettings", "warmupDurationSecs", "new endpoints get full traffic at once"),
    ("LoadBalancerSettings", "warmup", "new endpoints get full traffic at once"),
    ("HttpCookie", "attributes", "the cookie is set without them"),
    ("TcpSettings", "tcpKeepalive", "Envoy's TCP keepalive defaults apply"),
    ("TcpSettings", "maxConnectionDuration", "connections are not closed after a duration"),
    ("TcpSettings", "idleTimeout", "Envoy's default idle timeout applies"),
    ("HttpSettings", "h2UpgradePolicy", "HTTP/1.1 connections are not upgraded to HTTP/2"),
    ("HttpSettings", "useClientProtocol", "the upstream protocol is not chosen by the client's"),
    ("HttpSettings", "maxConcurrentStreams", "Envoy's default applies"),
    ("HttpSettings", "http2KeepAlive", "no HTTP/2 keepalive pings are sent"),
    ("OutlierDetection", "splitExternalLocalOriginErrors", "local-origin errors are not counted apart"),
    ("OutlierDetection", "consecutiveLocalOriginFailures", "local-origin errors are not counted apart"),
    ("OutlierDetection", "outlierDetectionHttpErrorCodes", "only 5xx responses count as errors"),
    ("ClientTlsSettings", "caCrl", "no certificate revocation list is checked"),
    ("Server", "defaultEndpoint", "traffic goes to the service, not to a default endpoint"),
    ("ServerTls", "caCrl", "no certificate revocation list is checked"),
    ("ServerTls", "credentialNames", "only credentialName is considered"),
    ("ServerTls", "caCertCredentialName", "no separate CA credential is read"),
    ("ServerTls", "tlsCertificates", "only credentialName is considered"),
    ("ServerTls", "verifyCertificateSpki", "client certificates are not pinned"),
    ("ServerTls", "verifyCertificateHash", "client certificates are not pinned"),
    ("ServerTls", "minProtocolVersion", "Envoy's default TLS versions apply"),
    ("ServerTls", "maxProtocolVersion", "Envoy's default TLS versions apply"),
    ("ServerTls", "cipherSuites", "Envoy's default cipher suites apply"),
    ("ServerTls", "insecureSkipVerify", "client certificates are verified as configured"),
    ("WorkloadEntry", "serviceAccount", "pilotfish serves no workload identities yet"),
];

/// What ignoring `field` of the type `container` means, when it is one of Istio's fields pilotfish does not
/// translate.
pub fn unsupported_field(container: &str, field: &str) -> Option<String> {
    UNSUPPORTED_FIELDS
        .iter()
        .find(|(c, f, _)| *c == container && *f == field)
        .map(|(_, _, effect)| format!("not translated by pilotfish; ignored: {effect}"))
}

// === Gateway ===

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Gateway {
    /// Labels of the gateway workload; empty selects every gateway.
    pub selector: Labels,
    pub servers: Vec<Server>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Server {
    pub port: Option<GatewayPort>,
    pub bind: String,
    pub hosts: Vec<String>,
    pub tls: Option<ServerTls>,
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayPort {
    pub number: i64,
    pub name: String,
    pub protocol: String,
    pub target_port: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServerTls {
    pub https_redirect: bool,
    /// No mode means PASSTHROUGH (the enum's zero value).
    pub mode: Option<String>,
    pub credential_name: String,
    pub server_certificate: String,
    pub private_key: String,
    pub ca_certificates: String,
    pub subject_alt_names: Vec<String>,
}

// === VirtualService ===

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualService {
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    pub http: Vec<HttpRoute>,
    /// Not translated yet; kept to tell "has only TLS routes" from "has no routes".
    pub tls: Vec<serde_json::Value>,
    pub tcp: Vec<serde_json::Value>,
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRoute {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: Vec<HttpMatchRequest>,
    pub route: Vec<HttpRouteDestination>,
    pub redirect: Option<HttpRedirect>,
    pub direct_response: Option<HttpDirectResponse>,
    pub delegate: Option<serde_json::Value>,
    pub rewrite: Option<HttpRewrite>,
    pub timeout: Option<String>,
    pub retries: Option<HttpRetry>,
    pub fault: Option<HttpFaultInjection>,
    pub mirror: Option<Destination>,
    pub mirrors: Vec<HttpMirrorPolicy>,
    pub mirror_percentage: Option<Percent>,
    /// Deprecated: whole percent.
    pub mirror_percent: Option<i64>,
    pub cors_policy: Option<CorsPolicy>,
    pub headers: Option<Headers>,
}

/// Exactly one of `exact`, `prefix`, `regex`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StringMatch {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMatchRequest {
    pub name: String,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    pub headers: BTreeMap<String, StringMatch>,
    pub without_headers: BTreeMap<String, StringMatch>,
    pub query_params: BTreeMap<String, StringMatch>,
    pub ignore_uri_case: bool,
    pub port: Option<i64>,
    pub source_labels: Labels,
    pub gateways: Vec<String>,
    pub source_namespace: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRouteDestination {
    pub destination: Destination,
    pub weight: Option<i64>,
    pub headers: Option<Headers>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Destination {
    pub host: String,
    pub subset: String,
    pub port: Option<PortSelector>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortSelector {
    pub number: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRedirect {
    pub uri: String,
    pub authority: String,
    pub port: Option<i64>,
    pub derive_port: Option<String>,
    pub scheme: String,
    pub redirect_code: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpDirectResponse {
    pub status: i64,
    pub body: Option<HttpBody>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpBody {
    pub string: Option<String>,
    /// Base64, as protobuf's JSON mapping writes bytes.
    pub bytes: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRewrite {
    pub uri: String,
    pub authority: String,
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RegexRewrite {
    #[serde(rename = "match")]
    pub pattern: String,
    pub rewrite: String,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpRetry {
    pub attempts: Option<i64>,
    pub per_try_timeout: Option<String>,
    pub retry_on: Option<String>,
    pub retry_remote_localities: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpFaultInjection {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultDelay {
    pub fixed_delay: Option<String>,
    pub exponential_delay: Option<String>,
    pub percentage: Option<Percent>,
    /// Deprecated: whole percent.
    pub percent: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FaultAbort {
    pub http_status: Option<i64>,
    pub grpc_status: Option<String>,
    pub percentage: Option<Percent>,
    /// Deprecated: whole percent.
    pub percent: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Percent {
    pub value: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpMirrorPolicy {
    pub destination: Destination,
    pub percentage: Option<Percent>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CorsPolicy {
    pub allow_origins: Vec<StringMatch>,
    /// Deprecated: exact origins.
    pub allow_origin: Vec<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<String>,
    pub allow_credentials: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Headers {
    pub request: Option<HeaderOperations>,
    pub response: Option<HeaderOperations>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HeaderOperations {
    pub set: BTreeMap<String, String>,
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

// === DestinationRule ===

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DestinationRule {
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    pub subsets: Vec<Subset>,
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subset {
    pub name: String,
    pub labels: Labels,
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LoadBalancerSettings {
    pub simple: Option<String>,
    pub consistent_hash: Option<ConsistentHashLb>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConsistentHashLb {
    pub http_header_name: Option<String>,
    pub http_cookie: Option<HttpCookie>,
    pub use_source_ip: Option<bool>,
    pub http_query_parameter_name: Option<String>,
    pub ring_hash: Option<RingHash>,
    pub maglev: Option<Maglev>,
    /// Deprecated: use `ringHash.minimumRingSize`.
    pub minimum_ring_size: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpCookie {
    pub name: String,
    pub path: String,
    pub ttl: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RingHash {
    pub minimum_ring_size: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Maglev {
    pub table_size: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConnectionPoolSettings {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TcpSettings {
    pub max_connections: Option<i64>,
    pub connect_timeout: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HttpSettings {
    pub http1_max_pending_requests: Option<i64>,
    pub http2_max_requests: Option<i64>,
    pub max_requests_per_connection: Option<i64>,
    pub max_retries: Option<i64>,
    pub idle_timeout: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OutlierDetection {
    /// Deprecated: use `consecutive5xxErrors`.
    pub consecutive_errors: Option<i64>,
    #[serde(rename = "consecutive5xxErrors")]
    pub consecutive_5xx_errors: Option<i64>,
    pub consecutive_gateway_errors: Option<i64>,
    pub interval: Option<String>,
    pub base_ejection_time: Option<String>,
    pub max_ejection_percent: Option<i64>,
    pub min_health_percent: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientTlsSettings {
    pub mode: Option<String>,
    pub client_certificate: String,
    pub private_key: String,
    pub ca_certificates: String,
    pub credential_name: String,
    pub subject_alt_names: Vec<String>,
    pub sni: String,
    pub insecure_skip_verify: Option<bool>,
}

// === ServiceEntry ===

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEntry {
    pub hosts: Vec<String>,
    pub addresses: Vec<String>,
    pub ports: Vec<ServiceEntryPort>,
    pub location: Option<String>,
    pub resolution: Option<String>,
    pub endpoints: Vec<WorkloadEntry>,
    pub workload_selector: Option<serde_json::Value>,
    pub export_to: Vec<String>,
    pub subject_alt_names: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceEntryPort {
    pub number: i64,
    pub protocol: String,
    pub name: String,
    pub target_port: Option<i64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WorkloadEntry {
    pub address: String,
    /// Port name → the endpoint's port for it.
    pub ports: BTreeMap<String, i64>,
    pub labels: Labels,
    pub network: String,
    pub locality: String,
    pub weight: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read<T: for<'de> Deserialize<'de>>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).expect("reads")
    }

    #[test]
    fn reads_deprecated_and_renamed_fields() {
        let route: HttpRoute =
            read("fault: {abort: {percent: 100, httpStatus: 500}}\nmirrorPercent: 30\nmatch: [{uri: {exact: /a}}]\n");
        let abort = route.fault.and_then(|f| f.abort).expect("abort");
        assert_eq!((abort.percent, abort.http_status), (Some(100), Some(500)));
        assert_eq!(route.mirror_percent, Some(30));
        assert_eq!(route.matches[0].uri.as_ref().and_then(|u| u.exact.as_deref()), Some("/a"));
        let outlier: OutlierDetection = read("consecutive5xxErrors: 7\nconsecutiveErrors: 3\n");
        assert_eq!((outlier.consecutive_5xx_errors, outlier.consecutive_errors), (Some(7), Some(3)));
        let pool: HttpSettings = read("http1MaxPendingRequests: 1\nhttp2MaxRequests: 2\n");
        assert_eq!((pool.http1_max_pending_requests, pool.http2_max_requests), (Some(1), Some(2)));
    }

    #[test]
    fn every_unsupported_field_belongs_to_a_type_that_does_not_declare_it() {
        for (container, field, _) in UNSUPPORTED_FIELDS {
            let value = serde_json::json!({ *field: null });
            let unknown = match *container {
                "HttpMatchRequest" => crate::input::fields::read::<HttpMatchRequest>(&value, "").map(|r| r.1),
                "HttpRedirect" => crate::input::fields::read::<HttpRedirect>(&value, "").map(|r| r.1),
                "HttpRetry" => crate::input::fields::read::<HttpRetry>(&value, "").map(|r| r.1),
                "CorsPolicy" => crate::input::fields::read::<CorsPolicy>(&value, "").map(|r| r.1),
                "FaultAbort" => crate::input::fields::read::<FaultAbort>(&value, "").map(|r| r.1),
                "DestinationRule" => crate::input::fields::read::<DestinationRule>(&value, "").map(|r| r.1),
                "TrafficPolicy" => crate::input::fields::read::<TrafficPolicy>(&value, "").map(|r| r.1),
                "LoadBalancerSettings" => crate::input::fields::read::<LoadBalancerSettings>(&value, "").map(|r| r.1),
                "HttpCookie" => crate::input::fields::read::<HttpCookie>(&value, "").map(|r| r.1),
                "TcpSettings" => crate::input::fields::read::<TcpSettings>(&value, "").map(|r| r.1),
                "HttpSettings" => crate::input::fields::read::<HttpSettings>(&value, "").map(|r| r.1),
                "OutlierDetection" => crate::input::fields::read::<OutlierDetection>(&value, "").map(|r| r.1),
                "ClientTlsSettings" => crate::input::fields::read::<ClientTlsSettings>(&value, "").map(|r| r.1),
                "Server" => crate::input::fields::read::<Server>(&value, "").map(|r| r.1),
                "ServerTls" => crate::input::fields::read::<ServerTls>(&value, "").map(|r| r.1),
                "WorkloadEntry" => crate::input::fields::read::<WorkloadEntry>(&value, "").map(|r| r.1),
                other => panic!("no such type {other}"),
            }
            .expect("reads");
            assert_eq!(unknown.len(), 1, "{container}.{field}");
            assert_eq!(unknown[0].container, *container, "the type's serde name");
        }
    }
}
