//! The tables `proxy-config` and `translate -o text` print: istioctl proxy-config's columns, from typed resources.
//!
//! | table | columns (as `istioctl proxy-config`) |
//! |---|---|
//! | clusters | SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE |
//! | listeners | ADDRESSES, PORT, MATCH, DESTINATION |
//! | routes | NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE |
//! | endpoints | ENDPOINT, STATUS, CLUSTER |
//!
//! Where pilotfish knows less or more than istioctl: endpoints come from what was sent (the
//! `ClusterLoadAssignment`s), not from Envoy's `/clusters`, so there is no OUTLIER CHECK column (that is Envoy's
//! runtime state), and STATUS is what Envoy makes of the status sent (no status is HEALTHY); the route MATCH column
//! also shows header and query matches, which istioctl leaves out, since two routes of one path that differ only
//! by a header otherwise read the same.

use std::cmp::Ordering;

use api_protos::any;
use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use api_protos::pb::envoy::config::core::v3::{Address, HealthStatus, Metadata, address, socket_address};
use api_protos::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint, lb_endpoint};
use api_protos::pb::envoy::config::listener::v3::{Filter, FilterChain, FilterChainMatch, Listener, filter};
use api_protos::pb::envoy::config::route::v3::{
    HeaderMatcher, RouteConfiguration, RouteMatch, VirtualHost, header_matcher, route, route_action, route_match,
};
use api_protos::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use api_protos::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use api_protos::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use api_protos::pb::google::protobuf::value::Kind as ValueKind;

const HTTP_CONNECTION_MANAGER: &str = "envoy.filters.network.http_connection_manager";
const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
const BLACK_HOLE: &str = "BlackHoleCluster";
const PASSTHROUGH: &str = "PassthroughCluster";

/// Rows under a header, aligned as Go's tabwriter aligns istioctl's: each column as wide as its widest cell plus
/// `padding` spaces, the last one not padded.
struct Table {
    header: &'static [&'static str],
    rows: Vec<Vec<String>>,
    padding: usize,
}

impl Table {
    fn new(header: &'static [&'static str], padding: usize) -> Table {
        Table { header, rows: Vec::new(), padding }
    }

    fn render(&self) -> String {
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let all: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let columns = self.header.len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| all.iter().map(|row| row.get(c).map_or(0, |cell| cell.chars().count())).max().unwrap_or(0))
            .collect();
        let mut out = String::new();
        for row in all {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < columns {
                    let pad = widths[c] + self.padding - cell.chars().count();
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

// === clusters ===

/// `istioctl proxy-config cluster`'s filters, each a substring of the cluster name (`--port` as `|PORT|`).
#[derive(Clone, Debug, Default)]
pub struct ClusterFilter {
    pub fqdn: Option<String>,
    pub port: Option<u16>,
    pub subset: Option<String>,
    pub direction: Option<String>,
}

impl ClusterFilter {
    pub fn matches(&self, cluster: &Cluster) -> bool {
        let name = &cluster.name;
        self.fqdn.as_ref().is_none_or(|f| name.contains(f.as_str()))
            && self.direction.as_ref().is_none_or(|d| name.contains(d.as_str()))
            && self.subset.as_ref().is_none_or(|s| name.contains(s.as_str()))
            && self.port.is_none_or(|p| name.contains(&format!("|{p}|")))
    }
}

/// An Istio cluster name, `direction|port|subset|fqdn`, as istioctl splits it; other names are their own FQDN.
struct SubsetKey<'a> {
    direction: &'a str,
    port: u32,
    subset: &'a str,
    fqdn: &'a str,
}

fn subset_key(name: &str) -> SubsetKey<'_> {
    let parts: Vec<&str> = name.split('|').collect();
    match parts.as_slice() {
        [direction, port, subset, fqdn, ..] => SubsetKey { direction, port: port.parse().unwrap_or(0), subset, fqdn },
        _ => SubsetKey { direction: "", port: 0, subset: "", fqdn: name },
    }
}

/// Sorted as istioctl sorts: by FQDN, subset, port, direction.
fn cluster_order(a: &str, b: &str) -> Ordering {
    let (a, b) = (subset_key(a), subset_key(b));
    (a.fqdn, a.subset, a.port, a.direction).cmp(&(b.fqdn, b.subset, b.port, b.direction))
}

pub fn clusters<'a>(clusters: impl IntoIterator<Item = &'a Cluster>, filter: &ClusterFilter) -> String {
    let mut chosen: Vec<&Cluster> = clusters.into_iter().filter(|c| filter.matches(c)).collect();
    chosen.sort_by(|a, b| cluster_order(&a.name, &b.name));
    let mut table = Table::new(&["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", "DESTINATION RULE"], 5);
    for cluster in chosen {
        let key = subset_key(&cluster.name);
        let istio_name = cluster.name.split('|').count() > 3;
        let (port, subset, direction) = if istio_name {
            let subset = if key.subset.is_empty() { "-" } else { key.subset };
            (key.port.to_string(), subset.to_owned(), key.direction.to_owned())
        } else {
            ("-".to_owned(), "-".to_owned(), "-".to_owned())
        };
        table.rows.push(vec![
            key.fqdn.to_owned(),
            port,
            subset,
            direction,
            cluster_type(cluster),
            managed_by(cluster.metadata.as_ref()),
        ]);
    }
    table.render()
}

fn cluster_type(cluster: &Cluster) -> String {
    match &cluster.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => {
            DiscoveryType::try_from(*t).map_or_else(|_| t.to_string(), |t| t.as_str_name().to_owned())
        }
        Some(ClusterDiscoveryType::ClusterType(custom)) => custom.name.clone(),
        None => DiscoveryType::Static.as_str_name().to_owned(),
    }
}

/// The Istio object a resource was made from, `name.namespace`, from the `filter_metadata.istio.config` path
/// istiod and pilotfish write (`/apis/networking.istio.io/v1/namespaces/NS/virtual-service/NAME`).
fn managed_by(metadata: Option<&Metadata>) -> String {
    let config = metadata.and_then(|m| m.filter_metadata.get("istio")).and_then(|s| s.fields.get("config")).and_then(
        |v| match &v.kind {
            Some(ValueKind::StringValue(path)) => Some(path.as_str()),
            _ => None,
        },
    );
    match config {
        None => String::new(),
        Some(path) if path.starts_with("/apis/networking.istio.io/") => {
            let pieces: Vec<&str> = path.split('/').collect();
            if pieces.len() == 8 { format!("{}.{}", pieces[7], pieces[5]) } else { String::new() }
        }
        Some(_) => "<unknown>".to_owned(),
    }
}

// === listeners ===

/// `istioctl proxy-config listener`'s filters.
#[derive(Clone, Debug, Default)]
pub struct ListenerFilter {
    pub address: Option<String>,
    pub port: Option<u32>,
    /// HTTP, TCP or HTTP+TCP.
    pub kind: Option<String>,
}

impl ListenerFilter {
    pub fn matches(&self, listener: &Listener) -> bool {
        self.address
            .as_ref()
            .is_none_or(|wanted| listener_addresses(listener).iter().any(|a| a.eq_ignore_ascii_case(wanted)))
            && self.port.is_none_or(|p| listener_port(listener) == p)
            && self.kind.as_ref().is_none_or(|k| listener_kind(listener).eq_ignore_ascii_case(k))
    }
}

pub fn listeners<'a>(listeners: impl IntoIterator<Item = &'a Listener>, filter: &ListenerFilter) -> String {
    let mut chosen: Vec<&Listener> = listeners.into_iter().filter(|l| filter.matches(l)).collect();
    // By port, address, type, as istioctl.
    chosen.sort_by(|a, b| {
        (listener_port(a), listener_addresses(a).first().cloned(), listener_kind(a)).cmp(&(
            listener_port(b),
            listener_addresses(b).first().cloned(),
            listener_kind(b),
        ))
    });
    let mut table = Table::new(&["ADDRESSES", "PORT", "MATCH", "DESTINATION"], 1);
    for listener in chosen {
        let addresses = listener_addresses(listener).join(",");
        let port = listener_port(listener).to_string();
        let mut chains: Vec<(String, String)> = filter_chains(listener)
            .map(|chain| (chain_match(chain.filter_chain_match.as_ref()), destination(&chain.filters)))
            .collect();
        // istioctl lists a listener's chains by destination, last first.
        chains.sort_by(|a, b| b.1.cmp(&a.1));
        for (matched, destination) in chains {
            table.rows.push(vec![addresses.clone(), port.clone(), matched, destination]);
        }
    }
    table.render()
}

fn filter_chains(listener: &Listener) -> impl Iterator<Item = &FilterChain> {
    listener.filter_chains.iter().chain(listener.default_filter_chain.as_ref())
}

fn address_host(address: Option<&Address>) -> Option<String> {
    match address?.address.as_ref()? {
        address::Address::SocketAddress(socket) => Some(socket.address.clone()),
        address::Address::Pipe(pipe) => Some(pipe.path.clone()),
        address::Address::EnvoyInternalAddress(_) => None,
    }
}

fn address_port(address: Option<&Address>) -> u32 {
    match address.and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(socket)) => match socket.port_specifier {
            Some(socket_address::PortSpecifier::PortValue(port)) => port,
            _ => 0,
        },
        _ => 0,
    }
}

fn listener_addresses(listener: &Listener) -> Vec<String> {
    let mut addresses: Vec<String> = address_host(listener.address.as_ref()).into_iter().collect();
    addresses.extend(listener.additional_addresses.iter().filter_map(|a| address_host(a.address.as_ref())));
    addresses
}

fn listener_port(listener: &Listener) -> u32 {
    address_port(listener.address.as_ref())
}

fn typed_config(filter: &Filter) -> Option<&api_protos::Any> {
    match filter.config_type.as_ref()? {
        filter::ConfigType::TypedConfig(config) => Some(config),
        _ => None,
    }
}

fn is_filter<M: prost::Name>(filter: &Filter, name: &str) -> bool {
    filter.name == name || typed_config(filter).is_some_and(|c| c.type_url == M::type_url())
}

fn tcp_cluster(filter: &Filter) -> Option<String> {
    let proxy: TcpProxy = any::unpack(typed_config(filter)?).ok()?;
    Some(match proxy.cluster_specifier? {
        tcp_proxy::ClusterSpecifier::Cluster(cluster) => cluster,
        tcp_proxy::ClusterSpecifier::WeightedClusters(weighted) => {
            weighted.clusters.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(",")
        }
    })
}

/// HTTP, TCP, HTTP+TCP or UNKNOWN, by the filters of its chains (TCP proxies to the black hole do not count).
fn listener_kind(listener: &Listener) -> String {
    let (mut http, mut tcp) = (0, 0);
    for filter in filter_chains(listener).flat_map(|c| &c.filters) {
        if is_filter::<HttpConnectionManager>(filter, HTTP_CONNECTION_MANAGER) {
            http += 1;
        } else if is_filter::<TcpProxy>(filter, TCP_PROXY) && tcp_cluster(filter).is_none_or(|c| c != BLACK_HOLE) {
            tcp += 1;
        }
    }
    match (http > 0, tcp > 0) {
        (true, false) => "HTTP",
        (true, true) => "HTTP+TCP",
        (false, true) => "TCP",
        (false, false) => "UNKNOWN",
    }
    .to_owned()
}

fn chain_match(chain_match: Option<&FilterChainMatch>) -> String {
    let default = FilterChainMatch::default();
    let m = chain_match.unwrap_or(&default);
    let mut parts = Vec::new();
    if !m.server_names.is_empty() {
        parts.push(format!("SNI: {}", m.server_names.join(",")));
    }
    if !m.transport_protocol.is_empty() {
        parts.push(format!("Trans: {}", m.transport_protocol));
    }
    if !m.application_protocols.is_empty() {
        parts.push(format!("App: {}", m.application_protocols.join(",")));
    }
    let port = m.destination_port.map(|p| format!(":{}", p.value)).unwrap_or_default();
    if !m.prefix_ranges.is_empty() {
        let ranges: Vec<String> = m
            .prefix_ranges
            .iter()
            .map(|r| format!("{}/{}", r.address_prefix, r.prefix_len.map_or(0, |l| l.value)))
            .collect();
        parts.push(format!("Addr: {}{port}", ranges.join(",")));
    } else if !port.is_empty() {
        parts.push(format!("Addr: *{port}"));
    }
    if parts.is_empty() { "ALL".to_owned() } else { parts.join("; ") }
}

/// Where a chain's traffic goes: its route table, or its TCP proxy's cluster.
fn destination(filters: &[Filter]) -> String {
    for filter in filters {
        if is_filter::<HttpConnectionManager>(filter, HTTP_CONNECTION_MANAGER) {
            let Some(manager) = typed_config(filter).and_then(|c| any::unpack::<HttpConnectionManager>(c).ok()) else {
                return "HTTP".to_owned();
            };
            return match manager.route_specifier {
                Some(http_connection_manager::RouteSpecifier::RouteConfig(routes)) => inline_routes(&routes),
                Some(http_connection_manager::RouteSpecifier::Rds(rds)) if !rds.route_config_name.is_empty() => {
                    format!("Route: {}", rds.route_config_name)
                }
                _ => "HTTP".to_owned(),
            };
        }
        if is_filter::<TcpProxy>(filter, TCP_PROXY)
            && let Some(cluster) = tcp_cluster(filter)
            && cluster != BLACK_HOLE
        {
            return if cluster.contains("Cluster") { cluster } else { format!("Cluster: {cluster}") };
        }
    }
    "Non-HTTP/Non-TCP".to_owned()
}

fn inline_routes(routes: &RouteConfiguration) -> String {
    if let [host] = routes.virtual_hosts.as_slice()
        && host.domains == ["*"]
        && let [only] = host.routes.as_slice()
        && matches!(only.r#match.as_ref().and_then(|m| m.path_specifier.as_ref()), Some(route_match::PathSpecifier::Prefix(p)) if p == "/")
        && let Some(cluster) = route_cluster(only)
    {
        return if cluster.contains("Cluster") { cluster } else { format!("Cluster: {cluster}") };
    }
    let hosts: Vec<String> = routes
        .virtual_hosts
        .iter()
        .map(|host| {
            let matches: Vec<String> = host.routes.iter().map(|r| describe_path(r.r#match.as_ref())).collect();
            let domains = if host.domains == ["*"] { String::new() } else { format!("{} ", host.domains.join("/")) };
            format!("{domains}{}", matches.join(", "))
        })
        .collect();
    format!("Inline Route: {}", hosts.join("; "))
}

fn route_cluster(route: &api_protos::pb::envoy::config::route::v3::Route) -> Option<String> {
    match route.action.as_ref()? {
        route::Action::Route(action) => match action.cluster_specifier.as_ref()? {
            route_action::ClusterSpecifier::Cluster(cluster) => Some(cluster.clone()),
            _ => None,
        },
        _ => None,
    }
}

// === routes ===

/// `istioctl proxy-config route`'s filter: the route configuration's name.
#[derive(Clone, Debug, Default)]
pub struct RouteFilter {
    pub name: Option<String>,
}

impl RouteFilter {
    pub fn matches(&self, routes: &RouteConfiguration) -> bool {
        self.name.as_ref().is_none_or(|n| *n == routes.name)
    }
}

/// Numeric names (`8080`, as istiod names its route tables) in number order, then the others by name.
fn route_name_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

pub fn routes<'a>(configs: impl IntoIterator<Item = &'a RouteConfiguration>, filter: &RouteFilter) -> String {
    let mut chosen: Vec<&RouteConfiguration> = configs.into_iter().filter(|r| filter.matches(r)).collect();
    chosen.sort_by(|a, b| route_name_order(&a.name, &b.name));
    let mut table = Table::new(&["NAME", "VHOST NAME", "DOMAINS", "MATCH", "VIRTUAL SERVICE"], 5);
    for config in chosen {
        for host in &config.virtual_hosts {
            for route in &host.routes {
                if route_cluster(route).as_deref() == Some(PASSTHROUGH) {
                    continue;
                }
                table.rows.push(vec![
                    config.name.clone(),
                    host.name.clone(),
                    domains(host),
                    describe_match(route.r#match.as_ref()),
                    managed_by(route.metadata.as_ref()),
                ]);
            }
            if host.routes.is_empty() {
                table.rows.push(vec![config.name.clone(), host.name.clone(), domains(host), "/*".into(), "404".into()]);
            }
        }
    }
    table.render()
}

/// A virtual host's domains as istioctl shows them: one as it is; of several, the shortest spellings (without a
/// port, without `.svc.cluster.local` when the short name is there too), at most two and a count.
fn domains(host: &VirtualHost) -> String {
    match host.domains.as_slice() {
        [] => String::new(),
        [only] => only.clone(),
        all => {
            let without_port: Vec<&String> =
                all.iter().filter(|d| !d.contains(':') || (d.matches(':').count() > 2 && d.ends_with(']'))).collect();
            let shortest: Vec<&String> = without_port
                .iter()
                .copied()
                .filter(|d| {
                    let full = d.strip_suffix(".svc.cluster.local").filter(|s| without_port.iter().any(|o| o == s));
                    let partial = d.strip_suffix(".svc").filter(|s| without_port.iter().any(|o| o == s));
                    full.is_none() && partial.is_none()
                })
                .collect();
            let names: Vec<&str> = shortest.iter().map(|d| d.as_str()).collect();
            if names.len() > 2 {
                format!("{} + {} more...", names[..2].join(", "), names.len() - 2)
            } else {
                names.join(", ")
            }
        }
    }
}

fn describe_path(matched: Option<&RouteMatch>) -> String {
    match matched.and_then(|m| m.path_specifier.as_ref()) {
        Some(route_match::PathSpecifier::Prefix(prefix)) => format!("{prefix}*"),
        Some(route_match::PathSpecifier::PathSeparatedPrefix(prefix)) => format!("PathPrefix:{prefix}"),
        Some(route_match::PathSpecifier::Path(path)) => path.clone(),
        Some(route_match::PathSpecifier::SafeRegex(regex)) => format!("regex {}", regex.regex),
        _ => String::new(),
    }
}

/// The path as istioctl shows it, then the header and query matches.
fn describe_match(matched: Option<&RouteMatch>) -> String {
    let mut parts = vec![describe_path(matched)];
    if let Some(matched) = matched {
        parts.extend(matched.headers.iter().map(describe_header));
        parts.extend(matched.query_parameters.iter().map(|q| {
            let value = q.query_parameter_match_specifier.as_ref().map_or_else(String::new, |s| match s {
                api_protos::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(m) => describe_string(m),
                api_protos::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier::PresentMatch(_) => " present".to_owned(),
            });
            format!("?{}{value}", q.name)
        }));
    }
    parts.retain(|p| !p.is_empty());
    parts.join(" ")
}

fn describe_header(header: &HeaderMatcher) -> String {
    let condition = match &header.header_match_specifier {
        Some(header_matcher::HeaderMatchSpecifier::StringMatch(m)) => describe_string(m),
        Some(header_matcher::HeaderMatchSpecifier::PresentMatch(_)) | None => " present".to_owned(),
        Some(header_matcher::HeaderMatchSpecifier::RangeMatch(r)) => format!(" in [{}, {})", r.start, r.end),
        #[allow(deprecated)]
        Some(header_matcher::HeaderMatchSpecifier::ExactMatch(v)) => format!("={v}"),
        #[allow(deprecated)]
        Some(header_matcher::HeaderMatchSpecifier::PrefixMatch(v)) => format!("={v}*"),
        #[allow(deprecated)]
        Some(header_matcher::HeaderMatchSpecifier::SuffixMatch(v)) => format!("=*{v}"),
        #[allow(deprecated)]
        Some(header_matcher::HeaderMatchSpecifier::ContainsMatch(v)) => format!("=*{v}*"),
        #[allow(deprecated)]
        Some(header_matcher::HeaderMatchSpecifier::SafeRegexMatch(r)) => format!("~{}", r.regex),
    };
    let not = if header.invert_match { "!" } else { "" };
    format!("{not}{}{condition}", header.name)
}

fn describe_string(matcher: &StringMatcher) -> String {
    match &matcher.match_pattern {
        Some(string_matcher::MatchPattern::Exact(v)) => format!("={v}"),
        Some(string_matcher::MatchPattern::Prefix(v)) => format!("={v}*"),
        Some(string_matcher::MatchPattern::Suffix(v)) => format!("=*{v}"),
        Some(string_matcher::MatchPattern::Contains(v)) => format!("=*{v}*"),
        Some(string_matcher::MatchPattern::SafeRegex(r)) => format!("~{}", r.regex),
        _ => String::new(),
    }
}

// === endpoints ===

/// `istioctl proxy-config endpoint`'s filters.
#[derive(Clone, Debug, Default)]
pub struct EndpointFilter {
    /// An address, with or without `:port`.
    pub address: Option<String>,
    pub port: Option<u32>,
    pub cluster: Option<String>,
    /// HEALTHY, UNHEALTHY, DRAINING, …
    pub status: Option<String>,
}

impl EndpointFilter {
    pub fn matches(&self, endpoint: &LbEndpoint, cluster: &str) -> bool {
        let address = endpoint_address(endpoint);
        self.address.as_ref().is_none_or(|wanted| {
            address.eq_ignore_ascii_case(wanted) || address.rsplit_once(':').is_some_and(|(host, _)| host == wanted)
        }) && self.port.is_none_or(|p| endpoint_port(endpoint) == p)
            && self.cluster.as_ref().is_none_or(|c| c.eq_ignore_ascii_case(cluster))
            && self.status.as_ref().is_none_or(|s| endpoint_status(endpoint).eq_ignore_ascii_case(s))
    }

    /// `assignment` with only the endpoints that match; `None` when none does.
    pub fn apply(&self, assignment: &ClusterLoadAssignment) -> Option<ClusterLoadAssignment> {
        let mut kept = assignment.clone();
        for locality in &mut kept.endpoints {
            locality.lb_endpoints.retain(|e| self.matches(e, &assignment.cluster_name));
        }
        kept.endpoints.retain(|l| !l.lb_endpoints.is_empty());
        (!kept.endpoints.is_empty()).then_some(kept)
    }
}

fn endpoint_of(endpoint: &LbEndpoint) -> Option<&api_protos::pb::envoy::config::endpoint::v3::Endpoint> {
    match endpoint.host_identifier.as_ref()? {
        lb_endpoint::HostIdentifier::Endpoint(e) => Some(e),
        lb_endpoint::HostIdentifier::EndpointName(_) => None,
    }
}

fn endpoint_address(endpoint: &LbEndpoint) -> String {
    let address = endpoint_of(endpoint).and_then(|e| e.address.as_ref());
    match address.and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(socket)) => format!("{}:{}", socket.address, address_port(address)),
        Some(address::Address::Pipe(pipe)) => pipe.path.clone(),
        Some(address::Address::EnvoyInternalAddress(internal)) => format!("envoy://{}", internal.endpoint_id),
        None => match endpoint.host_identifier.as_ref() {
            Some(lb_endpoint::HostIdentifier::EndpointName(name)) => name.clone(),
            _ => "unknown".to_owned(),
        },
    }
}

fn endpoint_port(endpoint: &LbEndpoint) -> u32 {
    address_port(endpoint_of(endpoint).and_then(|e| e.address.as_ref()))
}

/// The status as Envoy reports it: an endpoint sent without one (UNKNOWN) is healthy to Envoy.
fn endpoint_status(endpoint: &LbEndpoint) -> &'static str {
    match HealthStatus::try_from(endpoint.health_status).unwrap_or(HealthStatus::Unknown) {
        HealthStatus::Unknown => HealthStatus::Healthy.as_str_name(),
        other => other.as_str_name(),
    }
}

pub fn endpoints<'a>(
    assignments: impl IntoIterator<Item = &'a ClusterLoadAssignment>,
    filter: &EndpointFilter,
) -> String {
    let mut rows: Vec<(&str, String, &'static str)> = Vec::new();
    for assignment in assignments {
        for endpoint in assignment.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
            if filter.matches(endpoint, &assignment.cluster_name) {
                rows.push((&assignment.cluster_name, endpoint_address(endpoint), endpoint_status(endpoint)));
            }
        }
    }
    rows.sort_by(|a, b| cluster_order(a.0, b.0).then_with(|| a.1.cmp(&b.1)));
    let mut table = Table::new(&["ENDPOINT", "STATUS", "CLUSTER"], 5);
    table.rows = rows
        .into_iter()
        .map(|(cluster, address, status)| vec![address, status.to_owned(), cluster.to_owned()])
        .collect();
    table.render()
}

#[cfg(test)]
mod tests;
