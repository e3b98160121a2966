//! VirtualService rules: istiod's `ValidateVirtualService` and `validateHTTPRoute`, plus what pilotfish ignores.

use base64::Engine;

use super::{
    MatchUse, Minimum, Report, check_duration, check_export_to, check_fqdn, check_headers, check_labels,
    check_mirror_percentage, check_percentage, check_port, check_regex, check_string_match, check_whole_percent,
    check_wildcard_domain, hosts_overlap, is_dns1123_label, is_header_name, is_ip, unreachable,
};
use crate::diagnostics::Diagnostic;
use crate::duration::parse_duration;
use crate::input::istio::{
    CorsPolicy, Destination, HttpDirectResponse, HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute, HttpRouteDestination, VirtualService,
};
use crate::input::{Kind, Object};

/// Envoy's `retry_on` policies (`x-envoy-retry-on` and `x-envoy-retry-grpc-on`), as istiod lists them.
const RETRY_POLICIES: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// The redirect codes Envoy's `RedirectResponseCode` has.
const REDIRECT_CODES: [i64; 5] = [301, 302, 303, 307, 308];

/// Methods a CORS policy may allow (Go's `net/http` list, as istiod checks).
const CORS_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE"];

/// Direct response bodies above this are rejected (istiod's limit); above a tenth of it, a warning.
const MAX_BODY: usize = 1024 * 1024;
const LARGE_BODY: usize = 100 * 1024;

/// Validates one VirtualService.
pub fn validate_virtual_service(vs: &Object<VirtualService>) -> Vec<Diagnostic> {
    let mut report = Report::new(vs, Kind::VirtualService);
    let spec = &vs.spec;
    // Empty gateways means `mesh`; a list without `mesh` reaches gateways only.
    let gateways_only = !spec.gateways.is_empty() && !spec.gateways.iter().any(|g| g == "mesh");

    check_hosts(&mut report, spec, gateways_only);
    for (index, gateway) in spec.gateways.iter().enumerate() {
        check_gateway_name(&mut report, &format!("spec.gateways[{index}]"), gateway);
    }
    if spec.http.is_empty() && spec.tcp.is_empty() && spec.tls.is_empty() {
        report.error("spec", "a VirtualService needs at least one of http, tcp, tls routes");
    }
    for (index, http) in spec.http.iter().enumerate() {
        check_http_route(&mut report, &format!("spec.http[{index}]"), http, gateways_only);
    }
    unreachable::check(&mut report, spec);
    if !spec.tls.is_empty() {
        report.warning("spec.tls", "TLS routes are not translated yet: pilotfish serves the http routes only");
    }
    if !spec.tcp.is_empty() {
        report.warning("spec.tcp", "TCP routes are not translated yet: pilotfish serves the http routes only");
    }
    check_export_to(&mut report, &vs.meta.namespace, &spec.export_to, false);
    report.finish()
}

fn check_hosts(report: &mut Report, spec: &VirtualService, gateways_only: bool) {
    if spec.hosts.is_empty() {
        report.warning(
            "spec.hosts",
            "no hosts: istiod treats this as a delegate VirtualService, which pilotfish does not support; it \
             applies to no host",
        );
        if !spec.gateways.is_empty() {
            report.error("spec.gateways", "a delegate VirtualService (no hosts) must not name gateways");
        }
        if !spec.tls.is_empty() || !spec.tcp.is_empty() {
            report.error("spec", "a delegate VirtualService (no hosts) may have http routes only");
        }
        return;
    }
    let mut all_valid = true;
    for (index, host) in spec.hosts.iter().enumerate() {
        let field = format!("spec.hosts[{index}]");
        if let Err(err) = check_wildcard_domain(host) {
            if !is_ip(host) {
                report.error(field, format!("host {err}"));
                all_valid = false;
            }
        } else if host == "*" && !gateways_only {
            report.error(
                field,
                "host \"*\" is not allowed when the VirtualService applies to sidecars (gateways empty or listing \
                 mesh): name the hosts, or bind it to gateways only",
            );
            all_valid = false;
        }
    }
    if !all_valid {
        return;
    }
    for (later, host) in spec.hosts.iter().enumerate() {
        if let Some(earlier) = spec.hosts[..later].iter().position(|h| hosts_overlap(h, host)) {
            report.error(
                format!("spec.hosts[{later}]"),
                format!("host {host:?} duplicates or overlaps hosts[{earlier}] {:?}", spec.hosts[earlier]),
            );
        }
    }
}

/// `mesh`, `<namespace>/<name>`, or a bare name (the VirtualService's namespace).
fn check_gateway_name(report: &mut Report, field: &str, name: &str) {
    if name == "mesh" {
        return;
    }
    match name.split_once('/') {
        Some((namespace, gateway)) => {
            if !is_dns1123_label(namespace) {
                report.error(
                    field,
                    format!(
                        "gateway {name:?}: namespace {namespace:?} is not a DNS-1123 label (expected \
                         <namespace>/<name>)"
                    ),
                );
            }
            if !is_dns1123_label(gateway) {
                report.error(
                    field,
                    format!("gateway {name:?}: name {gateway:?} is not a DNS-1123 label (expected <namespace>/<name>)"),
                );
            }
        }
        None => {
            if let Some((gateway, namespace)) = name.split_once('.') {
                let namespace = namespace.split('.').next().unwrap_or_default();
                report.warning(
                    field,
                    format!(
                        "gateway {name:?} uses the legacy <name>.<namespace> form; prefer {:?}",
                        format!("{namespace}/{gateway}")
                    ),
                );
            }
            if let Err(err) = check_fqdn(name) {
                report.error(field, format!("gateway {err}"));
            }
        }
    }
}

fn check_http_route(report: &mut Report, field: &str, http: &HttpRoute, gateways_only: bool) {
    check_actions(report, field, http);
    for (index, block) in http.matches.iter().enumerate() {
        check_match(report, &format!("{field}.match[{index}]"), block, gateways_only);
    }
    check_route_destinations(report, field, &http.route);
    if let Some(redirect) = &http.redirect {
        check_redirect(report, &format!("{field}.redirect"), redirect);
    }
    if let Some(response) = &http.direct_response {
        check_direct_response(report, &format!("{field}.directResponse"), response);
    }
    if let Some(rewrite) = &http.rewrite {
        check_rewrite(report, &format!("{field}.rewrite"), rewrite);
    }
    if let Some(timeout) = &http.timeout {
        check_duration(report, format!("{field}.timeout"), "timeout", timeout, Minimum::ZeroOrMillisecond);
    }
    if let Some(retries) = &http.retries {
        check_retries(report, &format!("{field}.retries"), retries);
    }
    if let Some(fault) = &http.fault {
        check_fault(report, &format!("{field}.fault"), fault);
    }
    if let Some(mirror) = &http.mirror {
        check_destination(report, &format!("{field}.mirror"), mirror);
    }
    for (index, mirror) in http.mirrors.iter().enumerate() {
        let at = format!("{field}.mirrors[{index}]");
        check_destination(report, &format!("{at}.destination"), &mirror.destination);
        if let Some(percentage) = &mirror.percentage {
            check_mirror_percentage(report, format!("{at}.percentage.value"), "mirror percentage", percentage.value);
        }
    }
    if let Some(percentage) = &http.mirror_percentage {
        check_mirror_percentage(
            report,
            format!("{field}.mirrorPercentage.value"),
            "mirrorPercentage",
            percentage.value,
        );
    }
    if let Some(percent) = http.mirror_percent {
        report.deprecated(format!("{field}.mirrorPercent"), "mirrorPercent is deprecated: use mirrorPercentage.value");
        check_whole_percent(report, format!("{field}.mirrorPercent"), "mirrorPercent", percent);
    }
    if let Some(cors) = &http.cors_policy {
        check_cors(report, &format!("{field}.corsPolicy"), cors);
    }
    if let Some(headers) = &http.headers {
        check_headers(report, &format!("{field}.headers"), headers);
    }
    check_authority_rewrite(report, field, http);
}

/// Exactly one of route, redirect, directResponse; delegation is ignored; redirects and direct responses
/// exclude what only routed requests can have.
fn check_actions(report: &mut Report, field: &str, http: &HttpRoute) {
    if http.delegate.is_some() {
        report.warning(
            format!("{field}.delegate"),
            "delegation to another VirtualService is not supported by pilotfish: this route is ignored",
        );
        if !http.route.is_empty() {
            report.error(format!("{field}.route"), "a route with delegate must not also set route");
        }
        if http.redirect.is_some() {
            report.error(format!("{field}.redirect"), "a route with delegate must not also set redirect");
        }
        return;
    }
    let actions: Vec<&str> = [
        ("route", !http.route.is_empty()),
        ("redirect", http.redirect.is_some()),
        ("directResponse", http.direct_response.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    match actions.as_slice() {
        [] => report.error(field, "an http route needs exactly one of route, redirect, directResponse; it has none"),
        [_] => {}
        several => report.error(
            field,
            format!(
                "an http route needs exactly one of route, redirect, directResponse; it has {}",
                several.join(" and ")
            ),
        ),
    }
    if http.mirror.is_some() && !http.mirrors.is_empty() {
        report.error(format!("{field}.mirrors"), "set mirror or mirrors, not both");
    }
    let answered_by_proxy = match (&http.redirect, &http.direct_response) {
        (Some(_), _) => "redirect",
        (None, Some(_)) => "directResponse",
        (None, None) => return,
    };
    if http.fault.is_some() {
        report.error(format!("{field}.fault"), format!("fault cannot be combined with {answered_by_proxy}"));
    }
    if http.rewrite.is_some() {
        report.error(format!("{field}.rewrite"), format!("rewrite cannot be combined with {answered_by_proxy}"));
    }
    if http.mirror.is_some() || !http.mirrors.is_empty() {
        let mirror_field = if http.mirror.is_some() { "mirror" } else { "mirrors" };
        report.warning(
            format!("{field}.{mirror_field}"),
            format!("{mirror_field} has no effect with {answered_by_proxy}: only forwarded requests are mirrored"),
        );
    }
}

fn check_match(report: &mut Report, field: &str, block: &HttpMatchRequest, gateways_only: bool) {
    if let Some(uri) = &block.uri {
        check_string_match(report, &format!("{field}.uri"), "uri match", uri, MatchUse::Uri);
    }
    for (name, value) in [("scheme", &block.scheme), ("method", &block.method), ("authority", &block.authority)] {
        if let Some(value) = value {
            check_string_match(report, &format!("{field}.{name}"), &format!("{name} match"), value, MatchUse::Value);
        }
    }
    for (name, value) in &block.headers {
        let at = format!("{field}.headers.{name}");
        check_header_match_name(report, &at, name, gateways_only);
        check_string_match(report, &at, "header match", value, MatchUse::Presence);
    }
    for (name, value) in &block.without_headers {
        let at = format!("{field}.withoutHeaders.{name}");
        check_header_match_name(report, &at, name, gateways_only);
        check_string_match(report, &at, "withoutHeaders match", value, MatchUse::Absence);
    }
    for (name, value) in &block.query_params {
        let at = format!("{field}.queryParams.{name}");
        if name.is_empty() {
            report.error(at.clone(), "query parameter name must not be empty");
        }
        check_string_match(report, &at, "query parameter match", value, MatchUse::Presence);
    }
    if let Some(port) = block.port.filter(|p| *p != 0) {
        check_port(report, format!("{field}.port"), "match port", port);
    }
    check_labels(report, &format!("{field}.sourceLabels"), &block.source_labels);
    for (index, gateway) in block.gateways.iter().enumerate() {
        check_gateway_name(report, &format!("{field}.gateways[{index}]"), gateway);
    }
    if !block.source_namespace.is_empty() && !is_dns1123_label(&block.source_namespace) {
        report.error(
            format!("{field}.sourceNamespace"),
            format!("sourceNamespace {:?} is not a namespace name (a DNS-1123 label)", block.source_namespace),
        );
    }
}

fn check_header_match_name(report: &mut Report, field: &str, name: &str, gateways_only: bool) {
    if name.starts_with("@request.auth.claims") {
        if gateways_only {
            report.warning(field, "routing on JWT claims (@request.auth.claims) is not supported by pilotfish");
        } else {
            report.error(field, "routing on JWT claims (@request.auth.claims) is only allowed on gateways");
        }
    } else if !is_header_name(name) {
        report.error(
            field,
            format!(
                "header name {name:?} is invalid: use letters, digits, '-' and '_' (match :authority, :method and \
                 :scheme with the authority, method and scheme fields)"
            ),
        );
    }
}

fn check_route_destinations(report: &mut Report, field: &str, route: &[HttpRouteDestination]) {
    let mut total: i64 = 0;
    for (index, destination) in route.iter().enumerate() {
        let at = format!("{field}.route[{index}]");
        check_destination(report, &format!("{at}.destination"), &destination.destination);
        if let Some(weight) = destination.weight {
            if weight < 0 {
                report.error(format!("{at}.weight"), format!("weight must be 0 or more, got {weight}"));
            } else if weight > i64::from(i32::MAX) {
                report.error(format!("{at}.weight"), format!("weight must be at most {}, got {weight}", i32::MAX));
            }
            total = total.saturating_add(weight);
        }
        if let Some(headers) = &destination.headers {
            check_headers(report, &format!("{at}.headers"), headers);
        }
    }
    if route.len() > 1 && total == 0 {
        report.error(
            format!("{field}.route"),
            "the weights of several destinations must not sum to 0: give at least one a positive weight (weights \
             are relative and need not sum to 100)",
        );
    }
}

fn check_destination(report: &mut Report, field: &str, destination: &Destination) {
    let host = &destination.host;
    if host.is_empty() {
        report.error(
            format!("{field}.host"),
            "destination host is required, e.g. reviews or reviews.default.svc.cluster.local",
        );
    } else if host == "*" {
        report.error(format!("{field}.host"), "destination host \"*\" is invalid: name one service");
    } else if let Err(err) = check_wildcard_domain(host) {
        report.error(format!("{field}.host"), format!("destination host {err}"));
    }
    if !destination.subset.is_empty() && !is_dns1123_label(&destination.subset) {
        report.error(
            format!("{field}.subset"),
            format!("subset {:?} is not a DNS-1123 label (1 to 63 letters, digits and '-')", destination.subset),
        );
    }
    if let Some(port) = &destination.port {
        check_port(report, format!("{field}.port.number"), "destination port", port.number);
    }
}

fn check_redirect(report: &mut Report, field: &str, redirect: &HttpRedirect) {
    if redirect.uri.is_empty()
        && redirect.authority.is_empty()
        && redirect.scheme.is_empty()
        && redirect.port.is_none()
        && redirect.derive_port.is_none()
    {
        report.error(field, "redirect must set at least one of uri, authority, scheme, port, derivePort");
    }
    if let Some(code) = redirect.redirect_code.filter(|c| *c != 0)
        && !REDIRECT_CODES.contains(&code)
    {
        report.error(
            format!("{field}.redirectCode"),
            format!("redirectCode must be one of 301, 302, 303, 307, 308 (what Envoy supports), got {code}"),
        );
    }
    if !redirect.scheme.is_empty() && redirect.scheme != "http" && redirect.scheme != "https" {
        report.error(
            format!("{field}.scheme"),
            format!("redirect scheme must be http or https, got {:?}", redirect.scheme),
        );
    }
    if let Some(port) = redirect.port {
        check_port(report, format!("{field}.port"), "redirect port", port);
        if redirect.derive_port.is_some() {
            report.error(field, "redirect may set port or derivePort, not both");
        }
    }
    if let Some(derive) = &redirect.derive_port
        && derive != "FROM_PROTOCOL_DEFAULT"
        && derive != "FROM_REQUEST_PORT"
    {
        report.error(
            format!("{field}.derivePort"),
            format!("derivePort must be FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT, got {derive:?}"),
        );
    }
}

fn check_direct_response(report: &mut Report, field: &str, response: &HttpDirectResponse) {
    if !(200..=599).contains(&response.status) {
        report.error(format!("{field}.status"), format!("status must be in 200..599, got {}", response.status));
    }
    let Some(body) = &response.body else { return };
    let size = match (&body.string, &body.bytes) {
        (Some(_), Some(_)) => {
            report.error(format!("{field}.body"), "body may set string or bytes, not both");
            return;
        }
        (Some(text), None) => text.len(),
        (None, Some(bytes)) => match base64::engine::general_purpose::STANDARD.decode(bytes) {
            Ok(decoded) => decoded.len(),
            Err(err) => {
                report.error(
                    format!("{field}.body.bytes"),
                    format!("body.bytes must be base64 (standard alphabet, padded): {err}"),
                );
                return;
            }
        },
        (None, None) => return,
    };
    if size > MAX_BODY {
        report.error(format!("{field}.body"), format!("body is {size} bytes; at most 1 MiB is allowed"));
    } else if size > LARGE_BODY {
        report.warning(
            format!("{field}.body"),
            format!("body is {size} bytes; bodies above 100 KiB slow down every push"),
        );
    }
}

fn check_rewrite(report: &mut Report, field: &str, rewrite: &HttpRewrite) {
    if !rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_some() {
        report.error(field, "rewrite may set uri or uriRegexRewrite, not both");
    }
    if rewrite.uri.is_empty() && rewrite.uri_regex_rewrite.is_none() && rewrite.authority.is_empty() {
        report.error(field, "rewrite must set at least one of uri, uriRegexRewrite, authority");
    }
    if let Some(regex) = &rewrite.uri_regex_rewrite {
        if regex.pattern.is_empty() || regex.rewrite.is_empty() {
            report.error(format!("{field}.uriRegexRewrite"), "uriRegexRewrite needs both match and rewrite");
        } else if let Err(err) = check_regex(&regex.pattern) {
            report.error(
                format!("{field}.uriRegexRewrite.match"),
                format!("regex {:?} is invalid: {err}", regex.pattern),
            );
        }
    }
}

/// The authority may be rewritten in one place only: `rewrite.authority` or one request header operation.
fn check_authority_rewrite(report: &mut Report, field: &str, http: &HttpRoute) {
    let mut current = http
        .rewrite
        .as_ref()
        .map(|r| r.authority.as_str())
        .filter(|a| !a.is_empty())
        .map(|_| format!("{field}.rewrite.authority"));
    let Some(request) = http.headers.as_ref().and_then(|h| h.request.as_ref()) else { return };
    for (verb, values) in [("set", &request.set), ("add", &request.add)] {
        for name in values.keys() {
            if !(name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host")) {
                continue;
            }
            let at = format!("{field}.headers.request.{verb}.{name}");
            match &current {
                Some(previous) => report
                    .error(at, format!("the authority is rewritten twice: already by {previous}; keep one of them")),
                None => current = Some(at),
            }
        }
    }
}

fn check_retries(report: &mut Report, field: &str, retries: &HttpRetry) {
    let attempts = retries.attempts.unwrap_or(0);
    if attempts < 0 {
        report.error(format!("{field}.attempts"), format!("attempts must be 0 or more, got {attempts}"));
    }
    let retry_on = retries.retry_on.as_deref().filter(|r| !r.is_empty());
    if attempts == 0
        && (retries.per_try_timeout.is_some() || retry_on.is_some() || retries.retry_remote_localities.is_some())
    {
        report.error(
            field,
            "retries sets perTryTimeout, retryOn or retryRemoteLocalities but attempts is 0, which turns retries \
             off: set attempts to 1 or more",
        );
    }
    if let Some(timeout) = &retries.per_try_timeout {
        check_duration(report, format!("{field}.perTryTimeout"), "perTryTimeout", timeout, Minimum::Millisecond);
    }
    for policy in retry_on.into_iter().flat_map(|r| r.split(',')) {
        let status = policy.parse::<u16>().is_ok_and(|code| (100..=599).contains(&code))
            && policy.bytes().all(|b| b.is_ascii_digit());
        if !status && !RETRY_POLICIES.contains(&policy) {
            report.error(
                format!("{field}.retryOn"),
                format!(
                    "{policy:?} is not a retry condition: expected a comma-separated list (no spaces) of Envoy retry \
                     policies ({}) or HTTP status codes 100..599",
                    RETRY_POLICIES.join(", ")
                ),
            );
        }
    }
}

fn check_fault(report: &mut Report, field: &str, fault: &HttpFaultInjection) {
    if fault.delay.is_none() && fault.abort.is_none() {
        report.error(field, "fault must set delay, abort, or both");
    }
    if let Some(delay) = &fault.delay {
        let at = format!("{field}.delay");
        if delay.exponential_delay.is_some() {
            report.error(
                format!("{at}.exponentialDelay"),
                "exponentialDelay is not supported (istiod rejects it too): use fixedDelay",
            );
        }
        match &delay.fixed_delay {
            Some(fixed) => {
                check_duration(report, format!("{at}.fixedDelay"), "fixedDelay", fixed, Minimum::Millisecond)
            }
            None if delay.exponential_delay.is_none() => {
                report.error(at.clone(), "delay needs fixedDelay, e.g. fixedDelay: 5s")
            }
            None => {}
        }
        check_fault_percentages(report, &at, delay.percentage.as_ref().map(|p| p.value), delay.percent);
    }
    if let Some(abort) = &fault.abort {
        let at = format!("{field}.abort");
        match (abort.http_status, &abort.grpc_status) {
            (Some(_), Some(_)) => report.error(at.clone(), "abort may set httpStatus or grpcStatus, not both"),
            (Some(status), None) if !(200..=599).contains(&status) => {
                report.error(format!("{at}.httpStatus"), format!("httpStatus must be in 200..599, got {status}"));
            }
            (Some(_), None) => {}
            (None, Some(_)) => report.warning(
                format!("{at}.grpcStatus"),
                "grpcStatus aborts are not supported by pilotfish: this abort is ignored (use httpStatus)",
            ),
            (None, None) => report.error(at.clone(), "abort needs httpStatus, e.g. httpStatus: 503"),
        }
        check_fault_percentages(report, &at, abort.percentage.as_ref().map(|p| p.value), abort.percent);
    }
}

fn check_fault_percentages(report: &mut Report, field: &str, percentage: Option<f64>, percent: Option<i64>) {
    if let Some(value) = percentage {
        check_percentage(report, format!("{field}.percentage.value"), "percentage", value);
    }
    if let Some(percent) = percent {
        report.deprecated(format!("{field}.percent"), "percent is deprecated: use percentage.value");
        check_whole_percent(report, format!("{field}.percent"), "percent", percent);
    }
}

fn check_cors(report: &mut Report, field: &str, cors: &CorsPolicy) {
    for (index, origin) in cors.allow_origins.iter().enumerate() {
        check_string_match(
            report,
            &format!("{field}.allowOrigins[{index}]"),
            "allowOrigins entry",
            origin,
            MatchUse::Value,
        );
    }
    if !cors.allow_origin.is_empty() {
        report.deprecated(
            format!("{field}.allowOrigin"),
            "allowOrigin is deprecated: use allowOrigins with exact matches",
        );
    }
    for (index, method) in cors.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&method.as_str()) {
            report.error(
                format!("{field}.allowMethods[{index}]"),
                format!("{method:?} is not an HTTP method: expected one of {}", CORS_METHODS.join(", ")),
            );
        }
    }
    for (list, names) in [("allowHeaders", &cors.allow_headers), ("exposeHeaders", &cors.expose_headers)] {
        for (index, name) in names.iter().enumerate() {
            if name != "*" && !is_header_name(name) {
                report.error(
                    format!("{field}.{list}[{index}]"),
                    format!("{name:?} is not a header name: use letters, digits, '-' and '_', or \"*\""),
                );
            }
        }
    }
    if let Some(max_age) = &cors.max_age {
        let at = format!("{field}.maxAge");
        check_duration(report, at.clone(), "maxAge", max_age, Minimum::Millisecond);
        // Only when the milliseconds check passed: one complaint per value.
        let whole_millis = |d: std::time::Duration| d.subsec_nanos().is_multiple_of(1_000_000);
        if parse_duration(max_age).is_ok_and(|d| d.as_millis() >= 1 && whole_millis(d) && d.subsec_nanos() != 0) {
            report.error(
                at,
                format!("maxAge must be whole seconds (Access-Control-Max-Age counts seconds), got {max_age:?}"),
            );
        }
    }
}
