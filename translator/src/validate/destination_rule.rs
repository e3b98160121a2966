//! DestinationRule rules: istiod's `ValidateDestinationRule` and `validateTrafficPolicy`, plus what pilotfish
//! does not translate (TLS origination to the mesh, SDS credentials, PASSTHROUGH balancing).

use std::collections::BTreeMap;

use super::{
    Minimum, Report, check_duration, check_export_to, check_labels, check_non_negative, check_port,
    check_whole_percent, check_wildcard_domain, is_dns1123_label,
};
use crate::diagnostics::Diagnostic;
use crate::duration::parse_duration;
use crate::input::istio::{
    ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRule, LoadBalancerSettings,
    OutlierDetection, TrafficPolicy,
};
use crate::input::{Kind, Object};

/// Maglev table sizes must be primes below this (Envoy's limit).
const MAGLEV_TABLE_LIMIT: i64 = 5_000_011;

/// Validates one DestinationRule.
pub fn validate_destination_rule(dr: &Object<DestinationRule>) -> Vec<Diagnostic> {
    let mut report = Report::new(dr, Kind::DestinationRule);
    let spec = &dr.spec;
    if spec.host.is_empty() {
        report.error("spec.host", "host is required, e.g. reviews or reviews.default.svc.cluster.local");
    } else if let Err(err) = check_wildcard_domain(&spec.host) {
        report.error("spec.host", format!("host {err}"));
    }
    if let Some(policy) = &spec.traffic_policy {
        check_traffic_policy(&mut report, "spec.trafficPolicy", policy);
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, subset) in spec.subsets.iter().enumerate() {
        let field = format!("spec.subsets[{index}]");
        if subset.name.is_empty() {
            report.error(format!("{field}.name"), "subset name is required");
        } else if !is_dns1123_label(&subset.name) {
            report.error(
                format!("{field}.name"),
                format!("subset name {:?} is not a DNS-1123 label (1 to 63 letters, digits and '-')", subset.name),
            );
        } else if let Some(first) = names.get(subset.name.as_str()) {
            report.error(
                format!("{field}.name"),
                format!(
                    "subset name {:?} is already used by subsets[{first}]; subset names must be unique",
                    subset.name
                ),
            );
        } else {
            names.insert(&subset.name, index);
        }
        check_labels(&mut report, &format!("{field}.labels"), &subset.labels);
        if let Some(policy) = &subset.traffic_policy {
            check_traffic_policy(&mut report, &format!("{field}.trafficPolicy"), policy);
        }
    }
    check_export_to(&mut report, &dr.meta.namespace, &spec.export_to, false);
    report.finish()
}

fn check_traffic_policy(report: &mut Report, field: &str, policy: &TrafficPolicy) {
    check_policy_parts(
        report,
        field,
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        policy.tls.as_ref(),
    );
    let mut ports: BTreeMap<i64, usize> = BTreeMap::new();
    for (index, settings) in policy.port_level_settings.iter().enumerate() {
        let at = format!("{field}.portLevelSettings[{index}]");
        match &settings.port {
            None => report.error(format!("{at}.port"), "port is required, e.g. port: {number: 9080}"),
            Some(port) => {
                check_port(report, format!("{at}.port.number"), "port", port.number);
                if let Some(first) = ports.get(&port.number) {
                    report.error(
                        format!("{at}.port.number"),
                        format!("port {} already has settings in portLevelSettings[{first}]", port.number),
                    );
                } else {
                    ports.insert(port.number, index);
                }
            }
        }
        if settings.load_balancer.is_none()
            && settings.connection_pool.is_none()
            && settings.outlier_detection.is_none()
            && settings.tls.is_none()
        {
            report.error(
                at.clone(),
                "port level settings need at least one of loadBalancer, connectionPool, outlierDetection, tls",
            );
        }
        check_policy_parts(
            report,
            &at,
            settings.load_balancer.as_ref(),
            settings.connection_pool.as_ref(),
            settings.outlier_detection.as_ref(),
            settings.tls.as_ref(),
        );
    }
}

fn check_policy_parts(
    report: &mut Report,
    field: &str,
    load_balancer: Option<&LoadBalancerSettings>,
    connection_pool: Option<&ConnectionPoolSettings>,
    outlier_detection: Option<&OutlierDetection>,
    tls: Option<&ClientTlsSettings>,
) {
    if let Some(lb) = load_balancer {
        check_load_balancer(report, &format!("{field}.loadBalancer"), lb);
    }
    if let Some(pool) = connection_pool {
        check_connection_pool(report, &format!("{field}.connectionPool"), pool);
    }
    if let Some(outlier) = outlier_detection {
        check_outlier_detection(report, &format!("{field}.outlierDetection"), outlier);
    }
    if let Some(tls) = tls {
        check_tls(report, &format!("{field}.tls"), tls);
    }
}

fn check_load_balancer(report: &mut Report, field: &str, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        report.error(field, "loadBalancer may set simple or consistentHash, not both");
    }
    if let Some(simple) = &lb.simple {
        let at = format!("{field}.simple");
        match simple.as_str() {
            // PASSTHROUGH: translation makes the cluster ORIGINAL_DST, as istiod does.
            "UNSPECIFIED" | "ROUND_ROBIN" | "LEAST_REQUEST" | "RANDOM" | "PASSTHROUGH" => {}
            "LEAST_CONN" => report.deprecated(at, "LEAST_CONN is deprecated: it means LEAST_REQUEST; write that"),
            other => report.error(
                at,
                format!(
                    "simple must be one of ROUND_ROBIN, LEAST_REQUEST, RANDOM, PASSTHROUGH, UNSPECIFIED, got {other:?}"
                ),
            ),
        }
    }
    if let Some(hash) = &lb.consistent_hash {
        check_consistent_hash(report, &format!("{field}.consistentHash"), hash);
    }
}

fn check_consistent_hash(report: &mut Report, field: &str, hash: &ConsistentHashLb) {
    let keys: Vec<&str> = [
        ("httpHeaderName", hash.http_header_name.is_some()),
        ("httpCookie", hash.http_cookie.is_some()),
        ("useSourceIp", hash.use_source_ip.is_some()),
        ("httpQueryParameterName", hash.http_query_parameter_name.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match keys.as_slice() {
        [] => report.warning(
            field,
            "consistentHash sets no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName): \
             requests spread as if at random",
        ),
        [_] => {}
        several => report.error(
            field,
            format!(
                "consistentHash needs exactly one of httpHeaderName, httpCookie, useSourceIp, \
                 httpQueryParameterName; it has {}",
                several.join(" and ")
            ),
        ),
    }
    if let Some(name) = &hash.http_header_name
        && name.is_empty()
    {
        report.error(format!("{field}.httpHeaderName"), "httpHeaderName must not be empty");
    }
    if let Some(name) = &hash.http_query_parameter_name
        && name.is_empty()
    {
        report.error(format!("{field}.httpQueryParameterName"), "httpQueryParameterName must not be empty");
    }
    if let Some(cookie) = &hash.http_cookie {
        if cookie.name.is_empty() {
            report.error(format!("{field}.httpCookie.name"), "httpCookie needs a name");
        }
        if let Some(ttl) = &cookie.ttl
            && let Err(err) = parse_duration(ttl)
        {
            report.error(format!("{field}.httpCookie.ttl"), format!("ttl is not a valid duration: {err}"));
        }
    }
    if hash.ring_hash.is_some() && hash.maglev.is_some() {
        report.error(field, "consistentHash may set ringHash or maglev, not both");
    }
    if let Some(size) = hash.minimum_ring_size {
        report.deprecated(
            format!("{field}.minimumRingSize"),
            "minimumRingSize is deprecated: use ringHash.minimumRingSize",
        );
        check_non_negative(report, format!("{field}.minimumRingSize"), "minimumRingSize", size);
        if hash.ring_hash.is_some() || hash.maglev.is_some() {
            report.error(
                format!("{field}.minimumRingSize"),
                "minimumRingSize cannot be combined with ringHash or maglev: use ringHash.minimumRingSize",
            );
        }
    }
    if let Some(size) = hash.ring_hash.as_ref().and_then(|r| r.minimum_ring_size) {
        check_non_negative(report, format!("{field}.ringHash.minimumRingSize"), "minimumRingSize", size);
    }
    if let Some(maglev) = &hash.maglev {
        let at = format!("{field}.maglev.tableSize");
        match maglev.table_size {
            None | Some(0) => report.error(at, "maglev needs tableSize, a prime number such as 65537"),
            Some(size) if !(1..MAGLEV_TABLE_LIMIT).contains(&size) => {
                report.error(at, format!("tableSize must be a prime below {MAGLEV_TABLE_LIMIT}, got {size}"));
            }
            Some(size) if !is_prime(size) => {
                report.error(at, format!("tableSize must be a prime number (such as 65537), got {size}"));
            }
            Some(_) => {}
        }
    }
}

/// Trial division, as Envoy checks Maglev table sizes.
fn is_prime(n: i64) -> bool {
    if n < 2 {
        return false;
    }
    if n < 4 {
        return true;
    }
    if n % 2 == 0 {
        return false;
    }
    let mut factor = 3;
    while factor * factor <= n {
        if n % factor == 0 {
            return false;
        }
        factor += 2;
    }
    true
}

fn check_connection_pool(report: &mut Report, field: &str, pool: &ConnectionPoolSettings) {
    if pool.tcp.is_none() && pool.http.is_none() {
        report.error(field, "connectionPool needs tcp, http, or both");
    }
    // 0 means "Envoy's default", as in istiod; only negative numbers are wrong.
    if let Some(tcp) = &pool.tcp {
        let at = format!("{field}.tcp");
        if let Some(value) = tcp.max_connections {
            check_non_negative(report, format!("{at}.maxConnections"), "maxConnections", value);
        }
        if let Some(timeout) = &tcp.connect_timeout {
            check_duration(report, format!("{at}.connectTimeout"), "connectTimeout", timeout, Minimum::Millisecond);
        }
    }
    if let Some(http) = &pool.http {
        let at = format!("{field}.http");
        for (name, value) in [
            ("http1MaxPendingRequests", http.http1_max_pending_requests),
            ("http2MaxRequests", http.http2_max_requests),
            ("maxRequestsPerConnection", http.max_requests_per_connection),
            ("maxRetries", http.max_retries),
        ] {
            if let Some(value) = value {
                check_non_negative(report, format!("{at}.{name}"), name, value);
            }
        }
        if let Some(timeout) = &http.idle_timeout {
            check_duration(report, format!("{at}.idleTimeout"), "idleTimeout", timeout, Minimum::Millisecond);
        }
    }
}

fn check_outlier_detection(report: &mut Report, field: &str, outlier: &OutlierDetection) {
    if let Some(value) = outlier.consecutive_errors {
        report.deprecated(
            format!("{field}.consecutiveErrors"),
            "consecutiveErrors is deprecated: use consecutive5xxErrors or consecutiveGatewayErrors",
        );
        check_non_negative(report, format!("{field}.consecutiveErrors"), "consecutiveErrors", value);
    }
    for (name, value) in [
        ("consecutive5xxErrors", outlier.consecutive_5xx_errors),
        ("consecutiveGatewayErrors", outlier.consecutive_gateway_errors),
    ] {
        if let Some(value) = value {
            check_non_negative(report, format!("{field}.{name}"), name, value);
        }
    }
    for (name, value) in [("interval", &outlier.interval), ("baseEjectionTime", &outlier.base_ejection_time)] {
        if let Some(text) = value {
            check_duration(report, format!("{field}.{name}"), name, text, Minimum::Millisecond);
        }
    }
    for (name, value) in
        [("maxEjectionPercent", outlier.max_ejection_percent), ("minHealthPercent", outlier.min_health_percent)]
    {
        if let Some(value) = value {
            check_whole_percent(report, format!("{field}.{name}"), name, value);
        }
    }
}

fn check_tls(report: &mut Report, field: &str, tls: &ClientTlsSettings) {
    let mode = tls.mode.as_deref().unwrap_or("DISABLE");
    let at = format!("{field}.mode");
    match mode {
        "DISABLE" => {}
        "SIMPLE" => {
            if !tls.credential_name.is_empty() {
                report.warning(
                    format!("{field}.credentialName"),
                    "credentialName is not supported by pilotfish (it serves no SDS secrets): the credential is not \
                     used",
                );
            }
        }
        "MUTUAL" | "ISTIO_MUTUAL" => {
            report.warning(at, format!("tls mode {mode} is not supported yet: traffic to this host stays plaintext"))
        }
        other => {
            report.error(at, format!("tls mode must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, got {other:?}"));
            return;
        }
    }
    // istiod's ValidateTLS.
    let with_credential = matches!(mode, "SIMPLE" | "MUTUAL") && !tls.credential_name.is_empty();
    if with_credential
        && (!tls.client_certificate.is_empty() || !tls.private_key.is_empty() || !tls.ca_certificates.is_empty())
    {
        report.error(
            format!("{field}.credentialName"),
            "credentialName cannot be combined with clientCertificate, privateKey or caCertificates",
        );
    }
    if mode == "MUTUAL" && !with_credential {
        if tls.client_certificate.is_empty() {
            report
                .error(format!("{field}.clientCertificate"), "MUTUAL tls needs clientCertificate (or credentialName)");
        }
        if tls.private_key.is_empty() {
            report.error(format!("{field}.privateKey"), "MUTUAL tls needs privateKey (or credentialName)");
        }
    }
    if tls.insecure_skip_verify == Some(true) {
        let conflicting = match mode {
            "SIMPLE" => {
                !tls.ca_certificates.is_empty() || !tls.credential_name.is_empty() || !tls.subject_alt_names.is_empty()
            }
            "MUTUAL" => !tls.ca_certificates.is_empty() || !tls.subject_alt_names.is_empty(),
            _ => false,
        };
        if conflicting {
            report.error(
                format!("{field}.insecureSkipVerify"),
                "insecureSkipVerify cannot be combined with caCertificates, subjectAltNames (or, for SIMPLE, \
                 credentialName)",
            );
        }
    }
}
