//! Walks one HTTP request through the resources a proxy class is served, the way Envoy would, and says at each
//! step what was chosen, why, and which Istio object it came from:
//!
//! ```text
//!   request ─► listener (by port) ─► filter chain ─► HTTP connection manager ─► route table (RDS)
//!           ─► virtual host (by Host) ─► route (first match, in order) ─► action
//!           ─► cluster(s) (weights) ─► endpoints
//! ```
//!
//! For a captured sidecar (a listener with `use_original_dst`), the walk starts at that virtual outbound listener:
//! a port no listener takes is passed through as TCP by its catch-all filter chain.
//!
//! It reads only the snapshot (what Envoy would get), so what it says is what Envoy does with that config.

use std::fmt::Write as _;

use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use api_protos::pb::envoy::config::core::v3::{Metadata, address, data_source, socket_address};
use api_protos::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use api_protos::pb::envoy::config::listener::v3::{Listener, filter};
use api_protos::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, Route, RouteAction, RouteConfiguration, VirtualHost, header_matcher,
    query_parameter_matcher, route, route_action, route_match,
};
use api_protos::pb::envoy::extensions::filters::common::fault::v3::fault_delay;
use api_protos::pb::envoy::extensions::filters::http::fault::v3::{HttpFault, fault_abort};
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use api_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use api_protos::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use api_protos::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use api_protos::pb::google::protobuf::value::Kind as ValueKind;
use api_protos::{ResourceType, any};

use crate::snapshot::Snapshot;

/// The request to explain.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub host: String,
    pub port: u16,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// Parses `GET http://host[:port]/path?query` (the method may be left out: GET).
    pub fn parse(line: &str, headers: &[String]) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let (method, url) = match (words.next(), words.next()) {
            (Some(method), Some(url)) => (method.to_ascii_uppercase(), url),
            (Some(url), None) => ("GET".to_owned(), url),
            _ => return Err("expected a request like 'GET http://bookinfo.local/productpage'".to_owned()),
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| format!("{url:?}: expected http://host/path"))?;
        let default_port = match scheme {
            "http" => 80,
            "https" => 443,
            other => return Err(format!("unsupported scheme {other:?}: expected http")),
        };
        let (authority, path_and_query) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| format!("bad port in {authority:?}"))?),
            None => (authority, default_port),
        };
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let query = query
            .split('&')
            .filter(|q| !q.is_empty())
            .map(|q| q.split_once('=').map_or((q.to_owned(), String::new()), |(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let mut parsed_headers = Vec::new();
        for header in headers {
            let (name, value) =
                header.split_once(':').ok_or_else(|| format!("header {header:?}: expected 'name: value'"))?;
            parsed_headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok(Request { method, host: host.to_owned(), port, path: path.to_owned(), query, headers: parsed_headers })
    }

    /// The value Envoy sees for a header, pseudo-headers included.
    fn header(&self, name: &str) -> Option<String> {
        match name {
            ":method" => Some(self.method.clone()),
            ":authority" | "host" => {
                Some(if self.port == 80 { self.host.clone() } else { format!("{}:{}", self.host, self.port) })
            }
            ":path" => Some(self.path.clone()),
            ":scheme" => Some("http".to_owned()),
            _ => self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
        }
    }
}

/// Where the request ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to one of these clusters (with weights).
    Clusters(Vec<(String, u32)>),
    /// Answered by Envoy itself with this status.
    Status(u32),
    /// Nothing listens on the port.
    NoListener,
}

impl Outcome {
    /// Whether the client gets no answer from an upstream: no listener, or Envoy answers 4xx or 5xx itself.
    pub fn fails(&self) -> bool {
        match self {
            Outcome::Clusters(_) => false,
            Outcome::Status(status) => *status >= 400,
            Outcome::NoListener => true,
        }
    }
}

/// The walk: each step as a line, and where the request ends.
#[derive(Clone, Debug)]
pub struct Explanation {
    pub steps: Vec<String>,
    pub outcome: Outcome,
}

impl Explanation {
    pub fn text(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let _ = writeln!(out, "{step}");
        }
        out
    }
}

/// Walks `request` through `snapshot`. `port_map` translates a Service port to the listener's port (a gateway's
/// Service maps 80 → 8080), when the caller knows one.
pub fn explain(snapshot: &Snapshot, request: &Request, port_map: &[(u16, u16, String)]) -> Explanation {
    let mut walk = Walk { snapshot, request, steps: Vec::new() };
    let outcome = walk.run(port_map).unwrap_or_else(|stop| stop);
    Explanation { steps: walk.steps, outcome }
}

/// One request's way through a snapshot: each stage adds its steps, and one that ends the walk returns where the
/// request ends as its error.
struct Walk<'a> {
    snapshot: &'a Snapshot,
    request: &'a Request,
    steps: Vec<String>,
}

impl Walk<'_> {
    fn run(&mut self, port_map: &[(u16, u16, String)]) -> Result<Outcome, Outcome> {
        let (listener, port) = self.listener(port_map)?;
        let routes = self.route_table(&listener)?;
        let route = self.route(&routes)?;
        self.faults(&route)?;
        let action = self.action(&route)?;
        Ok(self.forward(&action, port))
    }

    /// The listener the connection reaches (through capture, or a Service's port mapping), and its port.
    fn listener(&mut self, port_map: &[(u16, u16, String)]) -> Result<(Listener, u16), Outcome> {
        let mut port = self.request.port;
        let listeners = decoded::<Listener>(self.snapshot, ResourceType::Listener);
        // The virtual outbound listener of a captured sidecar is where connections arrive, not where they end.
        let capture = listeners.iter().find(|l| l.use_original_dst.as_ref().is_some_and(|b| b.value));
        let on_port = |port: u16| {
            listeners
                .iter()
                .filter(move |l| {
                    listener_port(l) == Some(u32::from(port)) && !l.use_original_dst.as_ref().is_some_and(|b| b.value)
                })
                .collect::<Vec<_>>()
        };
        let mut candidates = on_port(port);
        if candidates.is_empty()
            && let Some((from, to, service)) = port_map.iter().find(|(from, _, _)| *from == self.request.port)
        {
            self.steps.push(format!("port {from} is port {to} of the proxy's workload (Service {service} maps it)"));
            port = *to;
            candidates = on_port(port);
        }
        if let Some(capture) = capture {
            self.steps.push(format!(
                "captured: iptables redirects the connection to listener {:?}, which hands it to the listener for \
                 its original destination (use_original_dst)",
                capture.name
            ));
            if candidates.is_empty() {
                let passed = passed_through(self.snapshot, capture, std::mem::take(&mut self.steps), port);
                self.steps = passed.steps;
                return Err(passed.outcome);
            }
        }
        let Some(listener) = candidates.first() else {
            let ports: Vec<String> = listeners.iter().filter_map(listener_port).map(|p| p.to_string()).collect();
            self.steps.push(format!(
                "✗ no listener on port {port}: the connection is refused (listeners on: {})",
                if ports.is_empty() { "none".to_owned() } else { ports.join(", ") }
            ));
            return Err(Outcome::NoListener);
        };
        let binds = if listener.bind_to_port.as_ref().is_some_and(|b| !b.value) { " (does not bind)" } else { "" };
        self.steps.push(format!("listener {:?} on port {port}{binds}", listener.name));
        Ok(((*listener).clone(), port))
    }

    /// The route table the listener's HTTP connection manager uses.
    fn route_table(&mut self, listener: &Listener) -> Result<RouteConfiguration, Outcome> {
        let Some((chain_index, manager)) = http_manager(listener) else {
            self.steps.push("✗ the listener has no HTTP connection manager: not an HTTP listener".to_owned());
            return Err(Outcome::NoListener);
        };
        self.steps.push(format!(
            "  filter chain {chain_index}: HTTP connection manager (stat prefix {:?})",
            manager.stat_prefix
        ));
        let routes = match &manager.route_specifier {
            Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
                self.steps.push(format!("  routes from RDS {:?}", rds.route_config_name));
                decoded::<RouteConfiguration>(self.snapshot, ResourceType::Route)
                    .into_iter()
                    .find(|r| r.name == rds.route_config_name)
            }
            Some(http_connection_manager::RouteSpecifier::RouteConfig(inline)) => {
                self.steps.push("  routes inline in the listener".to_owned());
                Some(inline.clone())
            }
            _ => None,
        };
        routes.ok_or_else(|| {
            self.steps.push(
                "✗ the route table does not exist: Envoy keeps the listener warming and does not serve".to_owned(),
            );
            Outcome::NoListener
        })
    }

    /// The virtual host for the request's host, and its first route that matches.
    fn route(&mut self, routes: &RouteConfiguration) -> Result<Route, Outcome> {
        let request = self.request;
        let host = if routes.ignore_port_in_host_matching {
            request.host.clone()
        } else {
            request.header(":authority").unwrap_or_default()
        };
        let Some(virtual_host) = select_virtual_host(&routes.virtual_hosts, &host) else {
            self.steps.push(format!("✗ no virtual host matches host {host:?}: Envoy answers 404"));
            return Err(Outcome::Status(404));
        };
        self.steps.push(format!(
            "virtual host {:?} (domains {:?}) matches host {host:?}",
            virtual_host.name, virtual_host.domains
        ));
        if virtual_host.routes.is_empty() {
            self.steps.push("✗ the virtual host has no routes: Envoy answers 404".to_owned());
            return Err(Outcome::Status(404));
        }
        for (index, route) in virtual_host.routes.iter().enumerate() {
            let label = route_label(index, route);
            match route_mismatch(route, request) {
                Some(reason) => self.steps.push(format!("  {label}: skipped, {reason}")),
                None => {
                    self.steps.push(format!("  {label}: matches{}", origin(route.metadata.as_ref())));
                    return Ok(route.clone());
                }
            }
        }
        self.steps.push("✗ no route matches: Envoy answers 404".to_owned());
        Err(Outcome::Status(404))
    }

    /// The route's fault injection: a delay is noted, an abort of every request ends the walk.
    fn faults(&mut self, route: &Route) -> Result<(), Outcome> {
        let Some(fault) = route
            .typed_per_filter_config
            .get("envoy.filters.http.fault")
            .and_then(|a| any::unpack::<HttpFault>(a).ok())
        else {
            return Ok(());
        };
        if let Some(delay) = &fault.delay {
            let length = match &delay.fault_delay_secifier {
                Some(fault_delay::FaultDelaySecifier::FixedDelay(d)) => format!(" by {}", seconds_text(d)),
                _ => String::new(),
            };
            self.steps.push(format!("  fault: delay {} of requests{length}", percent(delay.percentage.as_ref())));
        }
        if let Some(abort) = &fault.abort {
            let status = match abort.error_type {
                Some(fault_abort::ErrorType::HttpStatus(status)) => status.to_string(),
                _ => "?".to_owned(),
            };
            self.steps.push(format!(
                "  fault: abort {} of requests with status {status}",
                percent(abort.percentage.as_ref())
            ));
            if abort.percentage.as_ref().is_some_and(|p| p.numerator > 0 && is_whole(p)) {
                return Err(Outcome::Status(status.parse().unwrap_or(500)));
            }
        }
        Ok(())
    }

    /// The route's action: a redirect or direct response ends the walk; forwarding goes on.
    fn action(&mut self, route: &Route) -> Result<RouteAction, Outcome> {
        match &route.action {
            Some(route::Action::Redirect(redirect)) => {
                let code = [301, 302, 303, 307, 308]
                    .get(usize::try_from(redirect.response_code).unwrap_or(0))
                    .copied()
                    .unwrap_or(301);
                self.steps.push(format!(
                    "→ redirect {code} (host {:?}, path {:?})",
                    redirect.host_redirect, redirect.path_rewrite_specifier
                ));
                Err(Outcome::Status(code))
            }
            Some(route::Action::DirectResponse(response)) => {
                let body = response.body.as_ref().and_then(|b| match &b.specifier {
                    Some(data_source::Specifier::InlineString(s)) => Some(s.clone()),
                    _ => None,
                });
                self.steps.push(format!(
                    "→ direct response {} {}",
                    response.status,
                    body.map(|b| format!("{b:?}")).unwrap_or_default()
                ));
                Err(Outcome::Status(response.status))
            }
            Some(route::Action::Route(action)) => Ok(action.clone()),
            _ => {
                self.steps.push("✗ the route has no action".to_owned());
                Err(Outcome::Status(404))
            }
        }
    }

    /// Timeouts, retries, and the clusters the request goes to with their endpoints.
    fn forward(&mut self, action: &RouteAction, port: u16) -> Outcome {
        let clusters: Vec<(String, u32)> = match &action.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(name)) => vec![(name.clone(), 100)],
            Some(route_action::ClusterSpecifier::WeightedClusters(weighted)) => {
                weighted.clusters.iter().map(|c| (c.name.clone(), c.weight.as_ref().map_or(0, |w| w.value))).collect()
            }
            _ => Vec::new(),
        };
        if let Some(timeout) = &action.timeout {
            let text = if timeout.seconds == 0 && timeout.nanos == 0 {
                "none".to_owned()
            } else {
                format!("{}.{:03}s", timeout.seconds, timeout.nanos / 1_000_000)
            };
            self.steps.push(format!("  timeout: {text}"));
        }
        if let Some(retry) = &action.retry_policy {
            let per_try =
                retry.per_try_timeout.as_ref().map(|t| format!(", {} per try", seconds_text(t))).unwrap_or_default();
            let codes = if retry.retriable_status_codes.is_empty() {
                String::new()
            } else {
                format!(" (status codes {:?})", retry.retriable_status_codes)
            };
            self.steps.push(format!(
                "  retries: {} on {}{codes}{per_try}",
                retry.num_retries.as_ref().map_or(1, |n| n.value),
                retry.retry_on
            ));
        }
        let total: u32 = clusters.iter().map(|(_, w)| *w).sum();
        let mut reachable = false;
        let cluster_set = decoded::<Cluster>(self.snapshot, ResourceType::Cluster);
        let assignments = decoded::<ClusterLoadAssignment>(self.snapshot, ResourceType::Endpoint);
        for (name, weight) in &clusters {
            let share = if total == 0 { 0.0 } else { f64::from(*weight) * 100.0 / f64::from(total) };
            let Some(cluster) = cluster_set.iter().find(|c| &c.name == name) else {
                self.steps.push(format!("→ cluster {name:?} ({share:.0}%): does not exist, Envoy answers 503"));
                continue;
            };
            self.steps.push(format!("→ cluster {name:?} ({share:.0}%)"));
            if is_original_destination(cluster) {
                self.steps.push(format!("    original destination: the address the client dialled, port {port}"));
                reachable |= *weight > 0;
                continue;
            }
            let addresses = endpoint_addresses(cluster, name, &assignments);
            if addresses.is_empty() {
                self.steps.push("    no endpoints: Envoy answers 503 (no healthy upstream)".to_owned());
            } else {
                self.steps.push(format!("    endpoints: {}", addresses.join(", ")));
                reachable |= *weight > 0;
            }
        }
        if reachable { Outcome::Clusters(clusters) } else { Outcome::Status(503) }
    }
}

/// The addresses of `cluster`'s endpoints: inline, or from its ClusterLoadAssignment.
fn endpoint_addresses(cluster: &Cluster, name: &str, assignments: &[ClusterLoadAssignment]) -> Vec<String> {
    let endpoints = cluster.load_assignment.clone().or_else(|| {
        let service_name = cluster
            .eds_cluster_config
            .as_ref()
            .map(|e| e.service_name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(name);
        assignments.iter().find(|a| a.cluster_name == service_name).cloned()
    });
    endpoints
        .iter()
        .flat_map(|a| a.endpoints.iter())
        .flat_map(|l| l.lb_endpoints.iter())
        .filter_map(|e| match &e.host_identifier {
            Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) => endpoint.address.as_ref().and_then(address_text),
            _ => None,
        })
        .collect()
}

/// No listener takes the port: the virtual outbound listener's catch-all filter chain (the one without a match)
/// proxies the connection as TCP.
fn passed_through(snapshot: &Snapshot, capture: &Listener, mut steps: Vec<String>, port: u16) -> Explanation {
    let catch_all = capture.filter_chains.iter().find(|c| c.filter_chain_match.is_none());
    let tcp = catch_all.into_iter().flat_map(|c| c.filters.iter()).find_map(|f| match &f.config_type {
        Some(filter::ConfigType::TypedConfig(config)) => any::unpack::<TcpProxy>(config).ok(),
        _ => None,
    });
    let cluster = tcp.and_then(|t| match t.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(name)) => Some(name),
        _ => None,
    });
    let Some(cluster) = cluster else {
        steps.push(format!("✗ no listener on port {port} and no catch-all TCP proxy: the connection is closed"));
        return Explanation { steps, outcome: Outcome::NoListener };
    };
    let chain = catch_all.map(|c| c.name.as_str()).unwrap_or_default();
    steps.push(format!("  no listener on port {port}: filter chain {chain:?} proxies the connection as TCP"));
    let original = decoded::<Cluster>(snapshot, ResourceType::Cluster)
        .iter()
        .any(|c| c.name == cluster && is_original_destination(c));
    if original {
        steps.push(format!(
            "→ cluster {cluster:?}: the original destination, the address the client dialled (port {port})"
        ));
    } else {
        steps.push(format!("→ cluster {cluster:?}"));
    }
    Explanation { steps, outcome: Outcome::Clusters(vec![(cluster, 100)]) }
}

fn is_original_destination(cluster: &Cluster) -> bool {
    cluster.cluster_discovery_type == Some(ClusterDiscoveryType::Type(DiscoveryType::OriginalDst as i32))
}

fn decoded<M: prost::Message + prost::Name + Default>(snapshot: &Snapshot, kind: ResourceType) -> Vec<M> {
    snapshot.resources(kind).iter().filter_map(|(_, r)| any::unpack::<M>(&r.body).ok()).collect()
}

fn listener_port(listener: &Listener) -> Option<u32> {
    match listener.address.as_ref()?.address.as_ref()? {
        address::Address::SocketAddress(socket) => match socket.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(port)) => Some(port),
            _ => None,
        },
        _ => None,
    }
}

fn address_text(address: &api_protos::pb::envoy::config::core::v3::Address) -> Option<String> {
    match address.address.as_ref()? {
        address::Address::SocketAddress(socket) => match socket.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(port)) => Some(format!("{}:{port}", socket.address)),
            _ => Some(socket.address.clone()),
        },
        _ => None,
    }
}

fn http_manager(listener: &Listener) -> Option<(usize, HttpConnectionManager)> {
    listener.filter_chains.iter().enumerate().find_map(|(index, chain)| {
        chain.filters.iter().find_map(|f| match &f.config_type {
            Some(filter::ConfigType::TypedConfig(config)) => {
                any::unpack::<HttpConnectionManager>(config).ok().map(|m| (index, m))
            }
            _ => None,
        })
    })
}

/// Envoy's virtual host selection: exact domain, then the longest suffix wildcard (`*.example.com`), then the
/// longest prefix wildcard (`example.*`), then `*`.
fn select_virtual_host<'a>(hosts: &'a [VirtualHost], host: &str) -> Option<&'a VirtualHost> {
    let host = host.to_ascii_lowercase();
    let domains = || hosts.iter().flat_map(|v| v.domains.iter().map(move |d| (v, d.to_ascii_lowercase())));
    if let Some((v, _)) = domains().find(|(_, d)| *d == host) {
        return Some(v);
    }
    let suffix = domains()
        .filter(|(_, d)| d.len() > 1 && d.starts_with('*') && host.ends_with(&d[1..]) && host.len() > d.len() - 1)
        .max_by_key(|(_, d)| d.len());
    if let Some((v, _)) = suffix {
        return Some(v);
    }
    let prefix = domains()
        .filter(|(_, d)| {
            d.len() > 1 && d.ends_with('*') && host.starts_with(&d[..d.len() - 1]) && host.len() > d.len() - 1
        })
        .max_by_key(|(_, d)| d.len());
    if let Some((v, _)) = prefix {
        return Some(v);
    }
    domains().find(|(_, d)| d == "*").map(|(v, _)| v)
}

fn route_label(index: usize, route: &Route) -> String {
    if route.name.is_empty() { format!("route {index}") } else { format!("route {index} {:?}", route.name) }
}

/// The Istio object behind a resource, from istiod-style metadata.
fn origin(metadata: Option<&Metadata>) -> String {
    let config = metadata.and_then(|m| m.filter_metadata.get("istio")).and_then(|s| s.fields.get("config")).and_then(
        |v| match &v.kind {
            Some(ValueKind::StringValue(s)) => Some(s.clone()),
            _ => None,
        },
    );
    let Some(config) = config else { return String::new() };
    // /apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME
    let parts: Vec<&str> = config.split('/').collect();
    match parts.as_slice() {
        [.., "namespaces", namespace, "virtual-service", name] => format!(" (from VirtualService {namespace}/{name})"),
        _ => format!(" (from {config})"),
    }
}

/// Why `route` does not match `request`, or None if it does.
fn route_mismatch(route: &Route, request: &Request) -> Option<String> {
    let Some(route_match) = &route.r#match else { return Some("it has no match".to_owned()) };
    let case_sensitive = route_match.case_sensitive.as_ref().is_none_or(|b| b.value);
    let (path, fold) =
        if case_sensitive { (request.path.clone(), false) } else { (request.path.to_ascii_lowercase(), true) };
    let norm = |s: &str| if fold { s.to_ascii_lowercase() } else { s.to_owned() };
    match &route_match.path_specifier {
        Some(route_match::PathSpecifier::Prefix(prefix)) if !path.starts_with(&norm(prefix)) => {
            return Some(format!("path {:?} does not start with {prefix:?}", request.path));
        }
        Some(route_match::PathSpecifier::Path(exact)) if path != norm(exact) => {
            return Some(format!("path {:?} is not {exact:?}", request.path));
        }
        Some(route_match::PathSpecifier::SafeRegex(regex)) if !full_match(&regex.regex, &request.path) => {
            return Some(format!("path {:?} does not match regex {:?}", request.path, regex.regex));
        }
        Some(route_match::PathSpecifier::PathSeparatedPrefix(prefix))
            if !(path == norm(prefix) || path.starts_with(&format!("{}/", norm(prefix)))) =>
        {
            return Some(format!("path {:?} is not under {prefix:?}", request.path));
        }
        _ => {}
    }
    for header in &route_match.headers {
        if let Some(reason) = header_mismatch(header, request) {
            return Some(reason);
        }
    }
    for parameter in &route_match.query_parameters {
        if let Some(reason) = query_mismatch(parameter, request) {
            return Some(reason);
        }
    }
    None
}

// Raw Envoy resources may still use the deprecated exact/prefix header matchers; Envoy honours them, so do we.
#[allow(deprecated)]
fn header_mismatch(matcher: &HeaderMatcher, request: &Request) -> Option<String> {
    let value = request.header(&matcher.name);
    let matched = match (&matcher.header_match_specifier, &value) {
        (Some(header_matcher::HeaderMatchSpecifier::PresentMatch(present)), value) => value.is_some() == *present,
        (Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)), Some(value)) => string_match(m, value),
        (Some(header_matcher::HeaderMatchSpecifier::ExactMatch(e)), Some(value)) => e == value,
        (Some(header_matcher::HeaderMatchSpecifier::PrefixMatch(p)), Some(value)) => value.starts_with(p.as_str()),
        (_, None) => false,
        (None, Some(_)) => true,
        _ => false,
    };
    if matched != matcher.invert_match {
        return None;
    }
    let wanted = describe_header(matcher);
    let got = value.map_or_else(|| "none".to_owned(), |v| format!("{v:?}"));
    Some(format!(
        "header {:?} must {}{wanted}, got {got}",
        matcher.name,
        if matcher.invert_match { "not " } else { "" }
    ))
}

fn describe_header(matcher: &HeaderMatcher) -> String {
    match &matcher.header_match_specifier {
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(_)) => "be present".to_owned(),
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)) => describe_string(m),
        _ => "match".to_owned(),
    }
}

fn query_mismatch(matcher: &QueryParameterMatcher, request: &Request) -> Option<String> {
    let value = request.query.iter().find(|(k, _)| *k == matcher.name).map(|(_, v)| v.clone());
    let matched = match (&matcher.query_parameter_match_specifier, &value) {
        (Some(query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(present)), value) => {
            value.is_some() == *present
        }
        (Some(query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(m)), Some(value)) => {
            string_match(m, value)
        }
        _ => false,
    };
    (!matched).then(|| format!("query parameter {:?} does not match, got {value:?}", matcher.name))
}

fn string_match(matcher: &StringMatcher, value: &str) -> bool {
    let (value, fold) =
        if matcher.ignore_case { (value.to_ascii_lowercase(), true) } else { (value.to_owned(), false) };
    let norm = |s: &str| if fold { s.to_ascii_lowercase() } else { s.to_owned() };
    match &matcher.match_pattern {
        Some(string_matcher::MatchPattern::Exact(e)) => value == norm(e),
        Some(string_matcher::MatchPattern::Prefix(p)) => value.starts_with(&norm(p)),
        Some(string_matcher::MatchPattern::Suffix(s)) => value.ends_with(&norm(s)),
        Some(string_matcher::MatchPattern::Contains(c)) => value.contains(&norm(c)),
        Some(string_matcher::MatchPattern::SafeRegex(r)) => full_match(&r.regex, &value),
        _ => false,
    }
}

fn describe_string(matcher: &StringMatcher) -> String {
    match &matcher.match_pattern {
        Some(string_matcher::MatchPattern::Exact(e)) => format!("be {e:?}"),
        Some(string_matcher::MatchPattern::Prefix(p)) => format!("start with {p:?}"),
        Some(string_matcher::MatchPattern::Suffix(s)) => format!("end with {s:?}"),
        Some(string_matcher::MatchPattern::Contains(c)) => format!("contain {c:?}"),
        Some(string_matcher::MatchPattern::SafeRegex(r)) => format!("match regex {:?}", r.regex),
        _ => "match".to_owned(),
    }
}

/// RE2-style full match (Envoy's safe_regex matches the whole value).
fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(value))
}

fn seconds_text(duration: &api_protos::pb::google::protobuf::Duration) -> String {
    format!("{}.{:03}s", duration.seconds, duration.nanos / 1_000_000)
}

fn percent(fraction: Option<&api_protos::pb::envoy::r#type::v3::FractionalPercent>) -> String {
    let Some(fraction) = fraction else { return "100%".to_owned() };
    let denominator = match DenominatorType::try_from(fraction.denominator) {
        Ok(DenominatorType::TenThousand) => 10_000.0,
        Ok(DenominatorType::Million) => 1_000_000.0,
        _ => 100.0,
    };
    format!("{}%", f64::from(fraction.numerator) * 100.0 / denominator)
}

fn is_whole(fraction: &api_protos::pb::envoy::r#type::v3::FractionalPercent) -> bool {
    percent(Some(fraction)) == "100%"
}

#[cfg(test)]
mod tests;
