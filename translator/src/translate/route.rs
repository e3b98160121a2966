//! VirtualService HTTP routes → Envoy routes, for one listener port of one proxy class.
//!
//! Each `http[]` entry becomes one Envoy route per match block (blocks OR, conditions within a block AND). Match
//! conditions that Envoy cannot see (`gateways`, `port`, `sourceLabels`, `sourceNamespace`) decide here whether
//! the block applies to this proxy at all. Nothing after a catch-all entry is emitted, as in istiod.

use api_protos::pb::envoy::config::core::v3::{DataSource, RuntimeFractionalPercent, data_source};
use api_protos::pb::envoy::config::route::v3::{
    DirectResponseAction, HeaderMatcher, QueryParameterMatcher, RedirectAction, RetryPolicy, Route, RouteAction,
    RouteMatch, WeightedCluster,
    header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier,
    redirect_action, retry_policy, route, route_action, route_match,
    weighted_cluster::{self, ClusterWeight},
};
use api_protos::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use api_protos::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use api_protos::pb::envoy::extensions::filters::http::fault::v3::{FaultAbort, HttpFault, fault_abort};
use api_protos::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use api_protos::pb::envoy::r#type::matcher::v3::{
    RegexMatchAndSubstitute, RegexMatcher, StringMatcher, string_matcher,
};
use api_protos::pb::google::protobuf::{BoolValue, UInt32Value};
use base64::Engine;

use super::cluster::hash_policies;
use super::envoy::{
    CORS_FILTER, FAULT_FILTER, authority_rewrite, duration, header_options, headers_to_remove, istio_metadata,
    percent_of_hundred, percent_of_million, seconds, typed,
};
use crate::diagnostics::Diagnostic;
use crate::duration::parse_duration;
use crate::input::istio::{
    CorsPolicy, Destination, Headers, HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry, HttpRoute,
    StringMatch, VirtualService,
};
use crate::input::{Kind, Object};
use crate::model::{Model, cluster_name, resolve_host};
use crate::proxy::ProxyClass;

/// Istio's retry defaults for routes without `retries`.
const DEFAULT_RETRY_ON: &str = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const DEFAULT_RETRIES: u32 = 2;
const RETRY_HOST_SELECTION_ATTEMPTS: i64 = 5;
const PREVIOUS_HOSTS_PREDICATE: &str = "envoy.retry_host_predicates.previous_hosts";

/// Where routes are being built: the proxy, the listener port, and which gateway (or the mesh).
pub struct RouteContext<'a> {
    pub model: &'a Model,
    pub class: &'a ProxyClass,
    pub port: u32,
    /// `namespace/name` of the Gateway whose server is being built; `None` for sidecars (the mesh).
    pub gateway: Option<&'a str>,
}

/// Translates the HTTP routes of `vs` for `context`, up to and including the first catch-all route.
pub fn virtual_service_routes(
    vs: &Object<VirtualService>,
    context: &RouteContext<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Route> {
    let mut routes = Vec::new();
    for (index, http) in vs.spec.http.iter().enumerate() {
        if http.delegate.is_some() {
            continue; // reported by validation
        }
        let field = format!("spec.http[{index}]");
        let Some(action) = route_action(vs, http, &field, context, diagnostics) else { continue };
        let blocks: Vec<&HttpMatchRequest> = if http.matches.is_empty() {
            Vec::new()
        } else {
            let applicable: Vec<_> = http.matches.iter().filter(|m| applies(m, vs, context)).collect();
            if applicable.is_empty() {
                continue; // every block is for other proxies or ports
            }
            applicable
        };
        let name_of = |block: Option<&HttpMatchRequest>| match block.map(|b| b.name.as_str()).filter(|n| !n.is_empty())
        {
            Some(match_name) if !http.name.is_empty() => format!("{}.{match_name}", http.name),
            Some(match_name) => match_name.to_owned(),
            None => http.name.clone(),
        };
        if blocks.is_empty() {
            routes.push(envoy_route(name_of(None), catch_all_match(), http, &action, vs));
            return routes;
        }
        for block in blocks {
            let route_match = match_request(block);
            let catch_all = is_catch_all(&route_match);
            routes.push(envoy_route(name_of(Some(block)), route_match, http, &action, vs));
            if catch_all {
                // Nothing after it can match: neither the entry's other blocks nor later entries (as istiod).
                return routes;
            }
        }
    }
    routes
}

fn envoy_route(
    name: String,
    route_match: RouteMatch,
    http: &HttpRoute,
    action: &route::Action,
    vs: &Object<VirtualService>,
) -> Route {
    let mut route = Route {
        name,
        r#match: Some(route_match),
        action: Some(action.clone()),
        metadata: Some(istio_metadata("virtual-service", &vs.meta.namespace, &vs.meta.name)),
        ..Default::default()
    };
    if let Some(headers) = &http.headers {
        add_headers(&mut route, headers);
    }
    if let [only] = http.route.as_slice()
        && let (Some(headers), Some(route::Action::Route(_))) = (&only.headers, &route.action)
    {
        add_headers(&mut route, headers);
    }
    if let Some(fault) = http.fault.as_ref().and_then(fault_filter) {
        route.typed_per_filter_config.insert(FAULT_FILTER.to_owned(), typed(&fault));
    }
    if let Some(cors) = &http.cors_policy {
        route.typed_per_filter_config.insert(CORS_FILTER.to_owned(), typed(&cors_policy(cors)));
    }
    route
}

/// Whether a match block applies to this proxy and port (conditions Envoy never sees).
fn applies(block: &HttpMatchRequest, vs: &Object<VirtualService>, context: &RouteContext<'_>) -> bool {
    if !block.gateways.is_empty() {
        let here = context.gateway.map_or_else(|| "mesh".to_owned(), str::to_owned);
        if !block.gateways.iter().any(|g| gateway_name(g, &vs.meta.namespace) == here) {
            return false;
        }
    }
    if let Some(port) = block.port
        && i64::from(context.port) != port
    {
        return false;
    }
    if !block.source_namespace.is_empty() && block.source_namespace != context.class.namespace {
        return false;
    }
    block.source_labels.iter().all(|(k, v)| context.class.labels.get(k) == Some(v))
}

/// A gateway reference as `namespace/name` (`mesh` stays `mesh`); short names are in the VirtualService's namespace.
pub fn gateway_name(reference: &str, namespace: &str) -> String {
    if reference == "mesh" || reference.contains('/') {
        reference.to_owned()
    } else if let Some((name, ns)) = reference.split_once('.') {
        // `name.namespace` (and FQDN forms) as Istio accepts.
        format!("{ns}/{name}", ns = ns.split('.').next().unwrap_or(ns))
    } else {
        format!("{namespace}/{reference}")
    }
}

fn catch_all_match() -> RouteMatch {
    RouteMatch { path_specifier: Some(route_match::PathSpecifier::Prefix("/".to_owned())), ..Default::default() }
}

/// istiod's `IsCatchAllRoute`: prefix `/` (or regex `.*`) with no header or query parameter condition, whatever the
/// case sensitivity.
pub fn is_catch_all(route_match: &RouteMatch) -> bool {
    let any_path = match &route_match.path_specifier {
        Some(route_match::PathSpecifier::Prefix(prefix)) => prefix == "/",
        Some(route_match::PathSpecifier::SafeRegex(regex)) => regex.regex == ".*",
        _ => false,
    };
    any_path && route_match.headers.is_empty() && route_match.query_parameters.is_empty()
}

fn string_matcher(m: &StringMatch, ignore_case: bool) -> StringMatcher {
    use string_matcher::MatchPattern;
    let pattern = if let Some(exact) = &m.exact {
        MatchPattern::Exact(exact.clone())
    } else if let Some(prefix) = &m.prefix {
        MatchPattern::Prefix(prefix.clone())
    } else {
        MatchPattern::SafeRegex(regex(m.regex.clone().unwrap_or_default()))
    };
    StringMatcher { match_pattern: Some(pattern), ignore_case }
}

fn regex(pattern: String) -> RegexMatcher {
    RegexMatcher { regex: pattern, ..Default::default() }
}

/// An empty StringMatch only asks for the header or parameter to be present.
fn is_present_match(m: &StringMatch) -> bool {
    m.exact.is_none() && m.prefix.is_none() && m.regex.is_none()
}

fn header_matcher(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let present = is_present_match(m);
    let specifier = if present {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(m, false))
    };
    HeaderMatcher {
        name: name.to_owned(),
        invert_match: invert,
        // `withoutHeaders: {x: {exact: v}}` must also match requests without `x`: Envoy fails a value match on a
        // missing header before inverting it, unless the header is read as empty (istiod sets this too).
        treat_missing_header_as_empty: invert && !present,
        header_match_specifier: Some(specifier),
    }
}

fn match_request(block: &HttpMatchRequest) -> RouteMatch {
    use route_match::PathSpecifier;
    let path = match &block.uri {
        Some(StringMatch { exact: Some(exact), .. }) => PathSpecifier::Path(exact.clone()),
        Some(StringMatch { prefix: Some(prefix), .. }) => PathSpecifier::Prefix(prefix.clone()),
        Some(StringMatch { regex: Some(pattern), .. }) => PathSpecifier::SafeRegex(regex(pattern.clone())),
        _ => PathSpecifier::Prefix("/".to_owned()),
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (name, value) in [(":authority", &block.authority), (":method", &block.method), (":scheme", &block.scheme)] {
        if let Some(value) = value {
            headers.push(header_matcher(name, value, false));
        }
    }
    headers.extend(block.headers.iter().map(|(name, m)| header_matcher(name, m, false)));
    headers.extend(block.without_headers.iter().map(|(name, m)| header_matcher(name, m, true)));
    let query_parameters = block
        .query_params
        .iter()
        .map(|(name, m)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(if is_present_match(m) {
                QueryParameterMatchSpecifier::PresentMatch(true)
            } else {
                QueryParameterMatchSpecifier::StringMatch(string_matcher(m, false))
            }),
        })
        .collect();
    RouteMatch {
        path_specifier: Some(path),
        case_sensitive: block.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

/// The action of an HTTP route: redirect, then direct response, then forwarding (istiod's precedence).
fn route_action(
    vs: &Object<VirtualService>,
    http: &HttpRoute,
    field: &str,
    context: &RouteContext<'_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<route::Action> {
    if let Some(redirect) = &http.redirect {
        return Some(route::Action::Redirect(redirect_action(redirect, context.port)));
    }
    if let Some(response) = &http.direct_response {
        let body = response.body.as_ref().and_then(|body| {
            let specifier = match (&body.string, &body.bytes) {
                (Some(text), _) => data_source::Specifier::InlineString(text.clone()),
                (None, Some(bytes)) => {
                    data_source::Specifier::InlineBytes(base64::engine::general_purpose::STANDARD.decode(bytes).ok()?)
                }
                (None, None) => return None,
            };
            Some(DataSource { specifier: Some(specifier), ..Default::default() })
        });
        return Some(route::Action::DirectResponse(DirectResponseAction {
            status: u32::try_from(response.status).unwrap_or(500),
            body,
            ..Default::default()
        }));
    }
    let mut weighted = Vec::new();
    for destination in &http.route {
        let Some(cluster) = destination_cluster(&destination.destination, vs, context) else { continue };
        let weight = if http.route.len() == 1 { 100 } else { destination.weight.unwrap_or(0) };
        if weight == 0 {
            continue; // weight-0 destinations are dropped, as istiod does
        }
        weighted.push((cluster, u32::try_from(weight).unwrap_or(0), destination.headers.as_ref()));
    }
    let mut action = RouteAction {
        timeout: Some(
            http.timeout.as_deref().and_then(|t| parse_duration(t).ok()).map_or_else(|| seconds(0), duration),
        ),
        ..Default::default()
    };
    match weighted.as_slice() {
        [] => {
            diagnostics.push(
                Diagnostic::warning("no destination of this route can be used; requests matching it get 503")
                    .object(vs.reference(Kind::VirtualService), vs.meta.source.clone())
                    .field(format!("{field}.route")),
            );
            action.cluster_specifier = Some(route_action::ClusterSpecifier::ClusterHeader(
                // A header no request carries: Envoy answers 503, as for any route to nothing.
                "x-pilotfish-no-destination".to_owned(),
            ));
        }
        [(cluster, _, _)] if http.route.len() == 1 => {
            // A single destination's headers go on the route (see `envoy_route`).
            action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(cluster.name.clone()));
            action.hash_policy = hash_policies(cluster.rule.as_deref(), cluster.port, &cluster.subset);
        }
        _ => {
            let clusters = weighted
                .iter()
                .map(|(cluster, weight, headers)| {
                    let mut entry = ClusterWeight {
                        name: cluster.name.clone(),
                        weight: Some(UInt32Value { value: *weight }),
                        ..Default::default()
                    };
                    if let Some(headers) = headers {
                        if let Some(request) = &headers.request {
                            entry.request_headers_to_add = header_options(request);
                            entry.request_headers_to_remove = headers_to_remove(request);
                            entry.host_rewrite_specifier = authority_rewrite(request)
                                .map(weighted_cluster::cluster_weight::HostRewriteSpecifier::HostRewriteLiteral);
                        }
                        if let Some(response) = &headers.response {
                            entry.response_headers_to_add = header_options(response);
                            entry.response_headers_to_remove = headers_to_remove(response);
                        }
                    }
                    entry
                })
                .collect();
            // As istiod's `processWeightedDestination`: each destination adds the hash policy of its own rule.
            action.hash_policy = weighted
                .iter()
                .flat_map(|(cluster, _, _)| hash_policies(cluster.rule.as_deref(), cluster.port, &cluster.subset))
                .collect();
            action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters,
                ..Default::default()
            }));
        }
    }
    if let Some(rewrite) = &http.rewrite {
        if !rewrite.uri.is_empty() {
            action.prefix_rewrite = rewrite.uri.clone();
        } else if let Some(regex_rewrite) = &rewrite.uri_regex_rewrite {
            action.regex_rewrite = Some(RegexMatchAndSubstitute {
                pattern: Some(regex(regex_rewrite.pattern.clone())),
                substitution: regex_rewrite.rewrite.clone(),
            });
        }
    }
    // The authority: `rewrite.authority`, else one the route's request headers set (`:authority`/`host`), else one
    // a single destination's headers set (istiod's `applyHTTPRouteDestination` and `processDestination`).
    let request_headers =
        |headers: Option<&Headers>| headers.and_then(|h| h.request.as_ref()).and_then(authority_rewrite);
    let authority = http
        .rewrite
        .as_ref()
        .map(|rewrite| rewrite.authority.clone())
        .filter(|authority| !authority.is_empty())
        .or_else(|| request_headers(http.headers.as_ref()))
        .or_else(|| match http.route.as_slice() {
            [only] => request_headers(only.headers.as_ref()),
            _ => None,
        });
    action.host_rewrite_specifier = authority.map(route_action::HostRewriteSpecifier::HostRewriteLiteral);
    // Retries stay on the hashed host only for a single destination, as in istiod: with weighted destinations it
    // keeps the previous-hosts predicate even when they hash.
    let consistent_hash = http.route.len() == 1 && !action.hash_policy.is_empty();
    action.retry_policy = retry_policy(http.retries.as_ref(), consistent_hash);
    action.request_mirror_policies = mirror_policies(vs, http, context);
    Some(route::Action::Route(action))
}

/// A destination resolved to its cluster.
struct DestinationCluster {
    name: String,
    port: u32,
    subset: String,
    rule: Option<std::sync::Arc<Object<crate::input::istio::DestinationRule>>>,
}

/// Resolves a destination (host, port, subset) to a cluster name. A host that does not exist still gets its cluster
/// name, so requests fail as in istiod (503); a destination without a port to a service with several is skipped.
/// What cannot be found is reported by [`crate::analyze`] (IST0101, IST0112), once for every proxy class.
fn destination_cluster(
    destination: &Destination,
    vs: &Object<VirtualService>,
    context: &RouteContext<'_>,
) -> Option<DestinationCluster> {
    let host = resolve_host(&destination.host, &vs.meta.namespace);
    let service = context.model.services.get(host.as_str());
    let explicit = destination.port.as_ref().and_then(|p| u32::try_from(p.number).ok());
    let port = match (explicit, service) {
        (Some(port), _) => port,
        (None, Some(service)) if service.ports.len() == 1 => service.ports[0].number,
        (None, Some(service)) if service.port(context.port).is_some() => context.port,
        (None, Some(_)) => return None,
        (None, None) => context.port,
    };
    let rule = context.model.destination_rule(&host, &context.class.namespace).cloned();
    Some(DestinationCluster {
        name: cluster_name(port, &destination.subset, &host),
        port,
        subset: destination.subset.clone(),
        rule,
    })
}

fn mirror_policies(
    vs: &Object<VirtualService>,
    http: &HttpRoute,
    context: &RouteContext<'_>,
) -> Vec<route_action::RequestMirrorPolicy> {
    let mut policies = Vec::new();
    let mut add = |destination: &Destination,
                   fraction: Option<api_protos::pb::envoy::r#type::v3::FractionalPercent>| {
        if let Some(cluster) = destination_cluster(destination, vs, context) {
            policies.push(route_action::RequestMirrorPolicy {
                cluster: cluster.name,
                runtime_fraction: fraction.map(|default_value| RuntimeFractionalPercent {
                    default_value: Some(default_value),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    };
    if let Some(mirror) = &http.mirror {
        let fraction = match (&http.mirror_percentage, http.mirror_percent) {
            (Some(p), _) => Some(percent_of_million(p.value)),
            (None, Some(p)) => Some(percent_of_hundred(p)),
            (None, None) => None,
        };
        add(mirror, fraction);
    }
    for mirror in &http.mirrors {
        let fraction = mirror.percentage.as_ref().map(|p| percent_of_million(p.value));
        add(&mirror.destination, fraction);
    }
    policies
}

/// istiod's `ApplyRedirect`. `derivePort: FROM_REQUEST_PORT` is the port the routes are built for (Envoy cannot
/// derive it); a port that is the scheme's default (80 for http, 443 for https) is left out of the location.
fn redirect_action(redirect: &HttpRedirect, listener_port: u32) -> RedirectAction {
    use redirect_action::{PathRewriteSpecifier, RedirectResponseCode, SchemeRewriteSpecifier};
    let response_code = match redirect.redirect_code {
        Some(302) => RedirectResponseCode::Found,
        Some(303) => RedirectResponseCode::SeeOther,
        Some(307) => RedirectResponseCode::TemporaryRedirect,
        Some(308) => RedirectResponseCode::PermanentRedirect,
        _ => RedirectResponseCode::MovedPermanently,
    };
    let port = match (redirect.port, redirect.derive_port.as_deref()) {
        (Some(port), _) => u32::try_from(port).unwrap_or(0),
        (None, Some(derive)) if derive.eq_ignore_ascii_case("FROM_REQUEST_PORT") => listener_port,
        _ => 0,
    };
    // pilotfish serves plain-text HTTP only, so an unset scheme is http (istiod uses https on TLS servers).
    let scheme = if redirect.scheme.is_empty() { "http" } else { redirect.scheme.as_str() };
    let port = match (port, scheme) {
        (80, "http") | (443, "https") => 0,
        (port, _) => port,
    };
    RedirectAction {
        host_redirect: redirect.authority.clone(),
        port_redirect: port,
        response_code: response_code as i32,
        scheme_rewrite_specifier: (!redirect.scheme.is_empty())
            .then(|| SchemeRewriteSpecifier::SchemeRedirect(redirect.scheme.clone())),
        path_rewrite_specifier: (!redirect.uri.is_empty())
            .then(|| PathRewriteSpecifier::PathRedirect(redirect.uri.clone())),
        ..Default::default()
    }
}

/// Istio's retry policy for routes that do not set one.
pub fn default_retry_policy() -> Option<RetryPolicy> {
    retry_policy(None, false)
}

/// Istio's retry policy (as istiod's `retry.ConvertPolicy`): its defaults when `retries` is unset, none for
/// `attempts: 0`; numbers in `retryOn` are status codes. With consistent hashing a retry stays on the same host, so
/// the previous-hosts predicate is left out.
fn retry_policy(retries: Option<&HttpRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
    let previous_hosts = retry_policy::RetryHostPredicate {
        name: PREVIOUS_HOSTS_PREDICATE.to_owned(),
        config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(typed(
            &PreviousHostsPredicate::default(),
        ))),
    };
    let mut policy = RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_owned(),
        num_retries: Some(UInt32Value { value: DEFAULT_RETRIES }),
        retry_host_predicate: if consistent_hash { Vec::new() } else { vec![previous_hosts] },
        host_selection_retry_max_attempts: RETRY_HOST_SELECTION_ATTEMPTS,
        ..Default::default()
    };
    let Some(retries) = retries else { return Some(policy) };
    let attempts = retries.attempts.unwrap_or(0);
    if attempts <= 0 {
        return None;
    }
    policy.num_retries = Some(UInt32Value { value: u32::try_from(attempts).unwrap_or(u32::MAX) });
    if let Some(retry_on) = retries.retry_on.as_deref().filter(|r| !r.trim().is_empty()) {
        let mut policies = Vec::new();
        for item in retry_on.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            match item.parse::<u32>() {
                Ok(code) => policy.retriable_status_codes.push(code),
                Err(_) => policies.push(item.to_owned()),
            }
        }
        if !policy.retriable_status_codes.is_empty() && !policies.iter().any(|p| p == "retriable-status-codes") {
            policies.push("retriable-status-codes".to_owned());
        }
        policy.retry_on = policies.join(",");
    }
    policy.per_try_timeout = retries.per_try_timeout.as_deref().and_then(|t| parse_duration(t).ok()).map(duration);
    Some(policy)
}

fn fault_filter(fault: &HttpFaultInjection) -> Option<HttpFault> {
    let delay = fault.delay.as_ref().and_then(|delay| {
        let fixed = delay.fixed_delay.as_deref().and_then(|d| parse_duration(d).ok())?;
        Some(FaultDelay {
            fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(duration(fixed))),
            percentage: Some(match (&delay.percentage, delay.percent) {
                (Some(p), _) => percent_of_million(p.value),
                (None, percent) => percent_of_hundred(percent.unwrap_or(0)),
            }),
        })
    });
    let abort = fault.abort.as_ref().and_then(|abort| {
        let status = u32::try_from(abort.http_status?).ok()?;
        Some(FaultAbort {
            error_type: Some(fault_abort::ErrorType::HttpStatus(status)),
            percentage: Some(match (&abort.percentage, abort.percent) {
                (Some(p), _) => percent_of_million(p.value),
                (None, percent) => percent_of_hundred(percent.unwrap_or(0)),
            }),
            ..Default::default()
        })
    });
    (delay.is_some() || abort.is_some()).then(|| HttpFault { delay, abort, ..Default::default() })
}

fn cors_policy(cors: &CorsPolicy) -> EnvoyCors {
    // As istiod's `TranslateCORSPolicy`: the deprecated exact `allowOrigin` only when `allowOrigins` is not set.
    let origins: Vec<StringMatcher> = if cors.allow_origins.is_empty() {
        cors.allow_origin
            .iter()
            .map(|exact| StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(exact.clone())),
                ignore_case: false,
            })
            .collect()
    } else {
        cors.allow_origins.iter().map(|m| string_matcher(m, false)).collect()
    };
    EnvoyCors {
        allow_origin_string_match: origins,
        allow_methods: cors.allow_methods.join(","),
        allow_headers: cors.allow_headers.join(","),
        expose_headers: cors.expose_headers.join(","),
        max_age: cors
            .max_age
            .as_deref()
            .and_then(|age| parse_duration(age).ok())
            .map(|age| age.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: cors.allow_credentials.map(|value| BoolValue { value }),
        ..Default::default()
    }
}

fn add_headers(route: &mut Route, headers: &Headers) {
    if let Some(request) = &headers.request {
        route.request_headers_to_add.extend(header_options(request));
        route.request_headers_to_remove.extend(headers_to_remove(request));
    }
    if let Some(response) = &headers.response {
        route.response_headers_to_add.extend(header_options(response));
        route.response_headers_to_remove.extend(headers_to_remove(response));
    }
}
