//! Envoy bootstrap generation: the file `pilotfish bootstrap` prints, which tells an Envoy who it is and where its
//! control plane is.
//!
//! ```text
//!   BootstrapOptions ──validate──► node { id, cluster, metadata: ROLE, LABELS, NAMESPACE, OUTBOUND_BIND }
//!   (the CLI flags)                dynamic_resources: CDS and LDS over ADS (SotW or Delta) ──► cluster "pilotfish-xds"
//!                                  static_resources: cluster "pilotfish-xds" (HTTP/2 to --xds-address)
//!                                    with --readiness-port / --prometheus-port: listeners on 0.0.0.0 that serve
//!                                    GET /healthz/ready and /stats/prometheus from the admin interface
//!                                  admin
//! ```
//!
//! The node metadata is half of a contract: the ADS server reads it back with [`translator::ProxyClass::from_node`]
//! to decide which snapshot the proxy gets, so what is written here must read back as the class the options name
//! (the unit tests hold both halves together). Everything else the proxy needs (listeners, routes, clusters,
//! endpoints) comes over ADS; the bootstrap holds only what Envoy needs to reach pilotfish.
//!
//! This module does no I/O: it neither writes files, resolves names nor contacts the control plane.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Map, Value, json};
use translator::proxy::{DEFAULT_NAMESPACE, LABELS_KEY, NAMESPACE_KEY, OUTBOUND_BIND_KEY, ROLE_KEY};

/// Re-exported so that callers can fill in [`BootstrapOptions::role`] without depending on `translator`.
pub use translator::Role;

/// Name of the static cluster through which Envoy reaches the ADS server.
pub const XDS_CLUSTER: &str = "pilotfish-xds";
/// Where `pilotfish serve` listens for xDS unless told otherwise.
pub const DEFAULT_XDS_ADDRESS: &str = "127.0.0.1:15010";
/// Envoy's admin interface is unauthenticated and can stop the proxy, so by default only local processes reach it.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1";
/// Istio's Envoy admin port, so that habits and tools carry over.
pub const DEFAULT_ADMIN_PORT: u16 = 15000;
/// Where istio-proxy answers `GET /healthz/ready` (its readiness and startup probes); a captured sidecar's
/// translation leaves this port to the proxy.
pub const ISTIO_READINESS_PORT: u16 = translator::proxy::READINESS_PORT;
/// Where istio-proxy serves Envoy's Prometheus stats (`GET /stats/prometheus`, what Istio's scrape configs read).
pub const ISTIO_PROMETHEUS_PORT: u16 = translator::proxy::PROMETHEUS_PORT;
/// The readiness path, Istio's.
pub const READINESS_PATH: &str = "/healthz/ready";
/// The Prometheus stats path, Envoy's admin path and Istio's.
pub const PROMETHEUS_PATH: &str = "/stats/prometheus";
/// The static cluster through which the readiness and stats listeners reach Envoy's own admin interface.
const ADMIN_CLUSTER: &str = "pilotfish-admin";

/// How long Envoy waits for a TCP connection to the ADS server before it retries.
const XDS_CONNECT_TIMEOUT: &str = "1s";
/// HTTP/2 PING interval and timeout on the ADS connection. A control plane that vanished without closing the
/// connection (a killed VM, a dropped NAT entry) is then noticed within seconds and Envoy reconnects, instead of
/// waiting minutes for TCP to give up while holding stale configuration. The values are Istio's.
const XDS_KEEPALIVE_INTERVAL: &str = "30s";
const XDS_KEEPALIVE_TIMEOUT: &str = "10s";

const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Failures to build a bootstrap from options.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// An option cannot go into a bootstrap. `flag` names the command-line flag that sets it (`--node-id`,
    /// `--xds-address`, …), or describes the option in words where the CLI has no flag for it.
    #[error("invalid {flag} {value:?}: {reason}")]
    Invalid { flag: &'static str, value: String, reason: String },
}

fn invalid(flag: &'static str, value: &str, reason: impl Into<String>) -> BootstrapError {
    BootstrapError::Invalid { flag, value: value.to_owned(), reason: reason.into() }
}

/// What a bootstrap says: who the proxy is (its node and proxy class) and where it finds its control plane.
///
/// One field per flag of `pilotfish bootstrap`; [`BootstrapOptions::new`] fills in the flags' defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// `node.id`: names this proxy in pilotfish's status and debug output. Must not be empty.
    pub node_id: String,
    /// `node.cluster` (Envoy's "service cluster", used in its stats and tracing); `None` means
    /// `pilotfish-<role>`, e.g. `pilotfish-gateway`.
    pub node_cluster: Option<String>,
    /// Gateway or sidecar: decides which kind of configuration the proxy gets.
    pub role: Role,
    /// The workload's labels; a gateway is selected by `Gateway.spec.selector` against them.
    pub labels: BTreeMap<String, String>,
    /// The workload's namespace; the Istio resources that apply to it are looked up from there.
    pub namespace: String,
    /// For sidecars without traffic capture: the IP address their outbound listeners bind.
    pub outbound_bind: Option<String>,
    /// The ADS server, as `HOST:PORT`: an IPv4 address, a bracketed IPv6 address (`[::1]:15010`) or a DNS name.
    pub xds_address: String,
    /// The IP address Envoy's admin interface listens on.
    pub admin_address: String,
    /// The admin interface's port; 0 lets the kernel pick one (Envoy reports it with `--admin-address-path`).
    pub admin_port: u16,
    /// Use the incremental (Delta) xDS protocol instead of State of the World.
    pub delta: bool,
    /// A port on 0.0.0.0 that answers `GET /healthz/ready` with Envoy's admin `/ready`: 200 once Envoy has its
    /// first clusters and listeners, 503 before (Istio's 15021, for Kubernetes probes, which cannot reach the
    /// admin interface on loopback). Envoy then waits for that first configuration without a time limit, as
    /// istio-proxy does, so that ready means configured.
    pub readiness_port: Option<u16>,
    /// A port on 0.0.0.0 that serves `GET /stats/prometheus` from the admin interface (Istio's 15090).
    pub prometheus_port: Option<u16>,
}

impl Default for BootstrapOptions {
    /// The command line's defaults (see [`BootstrapOptions::new`]) for a sidecar, which is what the server takes a
    /// node for when it does not say. The node id is left empty and [`render`] refuses that: every proxy needs one.
    fn default() -> BootstrapOptions {
        BootstrapOptions::new(String::new(), Role::Sidecar)
    }
}

impl BootstrapOptions {
    /// Options for the proxy `node_id` with the given role, everything else at the CLI's defaults: no labels, the
    /// `default` namespace, pilotfish on [`DEFAULT_XDS_ADDRESS`], admin on [`DEFAULT_ADMIN_ADDRESS`]`:`
    /// [`DEFAULT_ADMIN_PORT`], State of the World.
    pub fn new(node_id: impl Into<String>, role: Role) -> BootstrapOptions {
        BootstrapOptions {
            node_id: node_id.into(),
            node_cluster: None,
            role,
            labels: BTreeMap::new(),
            namespace: DEFAULT_NAMESPACE.to_owned(),
            outbound_bind: None,
            xds_address: DEFAULT_XDS_ADDRESS.to_owned(),
            admin_address: DEFAULT_ADMIN_ADDRESS.to_owned(),
            admin_port: DEFAULT_ADMIN_PORT,
            delta: false,
            readiness_port: None,
            prometheus_port: None,
        }
    }

    /// `node.cluster` as it will be written.
    pub fn node_cluster(&self) -> String {
        self.node_cluster.clone().unwrap_or_else(|| format!("pilotfish-{}", self.role))
    }
}

/// Renders the Envoy v3 `Bootstrap` for `options` in Envoy's JSON shape (proto field names in snake_case, enums
/// by name), without an `@type`.
///
/// Checks every option first, so a mistake is reported against its flag here rather than by Envoy at start-up,
/// or never: a label Envoy cannot see would silently put the proxy in another class.
pub fn render(options: &BootstrapOptions) -> Result<Value, BootstrapError> {
    let node = render_node(options)?;
    let xds = XdsAddress::parse(&options.xds_address)?;
    let admin_address = parse_admin_address(&options.admin_address)?;

    let api_type = if options.delta { "DELTA_GRPC" } else { "GRPC" };
    let mut clusters = vec![xds.cluster()];
    let mut listeners = Vec::new();
    if options.readiness_port.is_some() || options.prometheus_port.is_some() {
        let port = options.admin_port;
        if port == 0 {
            return Err(invalid(
                "--admin-port",
                "0",
                "the readiness and Prometheus ports are served from the admin interface, which needs a fixed port",
            ));
        }
        // An admin interface on every address is still reached on loopback.
        let admin_ip = if admin_address.is_unspecified() { "127.0.0.1".to_owned() } else { admin_address.to_string() };
        clusters.push(admin_cluster(&admin_ip, port));
    }
    if let Some(port) = options.readiness_port {
        listeners.push(admin_path_listener("pilotfish-readiness", "--readiness-port", port, READINESS_PATH, "/ready")?);
    }
    if let Some(port) = options.prometheus_port {
        listeners.push(admin_path_listener(
            "pilotfish-prometheus",
            "--prometheus-port",
            port,
            PROMETHEUS_PATH,
            PROMETHEUS_PATH,
        )?);
    }
    if let (Some(readiness), Some(prometheus)) = (options.readiness_port, options.prometheus_port)
        && readiness == prometheus
    {
        return Err(invalid("--prometheus-port", &prometheus.to_string(), "is also the readiness port"));
    }
    // Ready must mean configured: without a first CDS and LDS answer Envoy would go live anyway after its
    // default 15 s initial fetch timeout.
    let mut cds_config = json!({ "ads": {}, "resource_api_version": "V3" });
    if options.readiness_port.is_some() {
        cds_config["initial_fetch_timeout"] = "0s".into();
    }
    let lds_config = cds_config.clone();
    let mut static_resources = json!({ "clusters": clusters });
    if !listeners.is_empty() {
        static_resources["listeners"] = listeners.into();
    }
    Ok(json!({
        "node": node,
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }],
                // The server reads the proxy class from the first request of a stream; repeating the node
                // (metadata included) on every request would only cost bytes.
                "set_node_on_first_message_only": true,
            },
            // Only CDS and LDS are named here: the clusters and listeners pilotfish sends point their EDS and RDS
            // at ADS themselves.
            "cds_config": cds_config,
            "lds_config": lds_config,
        },
        "static_resources": static_resources,
        "admin": {
            "address": {
                "socket_address": { "address": admin_address.to_string(), "port_value": options.admin_port },
            },
        },
    }))
}

/// The static cluster to Envoy's own admin interface, for the readiness and stats listeners.
fn admin_cluster(ip: &str, port: u16) -> Value {
    json!({
        "name": ADMIN_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": ADMIN_CLUSTER,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": { "address": { "socket_address": { "address": ip, "port_value": port } } },
                }],
            }],
        },
    })
}

/// A listener on `0.0.0.0:port` that answers `GET path` with the admin interface's `admin_path`, and 404
/// otherwise: only that one admin page is exposed, never the admin interface itself (which can stop Envoy).
fn admin_path_listener(
    name: &str,
    flag: &'static str,
    port: u16,
    path: &str,
    admin_path: &str,
) -> Result<Value, BootstrapError> {
    if port == 0 {
        return Err(invalid(flag, "0", "a probe or a scraper needs a fixed port"));
    }
    const HCM: &str = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
    const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";
    Ok(json!({
        "name": name,
        "address": { "socket_address": { "address": "0.0.0.0", "port_value": port } },
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": format!("type.googleapis.com/{HCM}"),
                    "stat_prefix": name,
                    "route_config": {
                        "name": name,
                        "virtual_hosts": [{
                            "name": name,
                            "domains": ["*"],
                            "routes": [{
                                "match": { "path": path },
                                "route": { "cluster": ADMIN_CLUSTER, "prefix_rewrite": admin_path },
                            }],
                        }],
                    },
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": { "@type": format!("type.googleapis.com/{ROUTER}") },
                    }],
                },
            }],
        }],
    }))
}

/// [`render`] as YAML, for printing and for Envoy's `-c`.
///
/// Every string that a YAML reader could take for something else is double-quoted. That is more than YAML 1.2
/// asks, and the reason this is not `serde_yaml::to_string`: Envoy's YAML reader (yaml-cpp) takes an unquoted
/// `yes`, `on`, `y` or `off` for a boolean and `012` for the octal number 10. In the node metadata that would
/// silently turn `--labels enabled=yes` into a label the server cannot read (a different proxy class); serde_yaml
/// leaves those unquoted.
pub fn render_yaml(options: &BootstrapOptions) -> Result<String, BootstrapError> {
    render(options).map(|bootstrap| to_yaml(&bootstrap))
}

/// Parses the `--labels` flag, `k=v,k2=v2`, into labels.
///
/// Spaces around keys and values are trimmed and empty items (as a trailing comma leaves) are skipped, so `""`
/// means no labels. A value may be empty and may contain `=` (the first `=` separates key from value); an item
/// without `=`, an empty key, or a key given twice is an error.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, BootstrapError> {
    let mut labels = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return Err(invalid("--labels", text, format!("expected KEY=VALUE, found {item:?}")));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(invalid("--labels", text, format!("a label needs a key, found {item:?}")));
        }
        if labels.insert(key.to_owned(), value.trim().to_owned()).is_some() {
            return Err(invalid("--labels", text, format!("the label {key:?} is given twice")));
        }
    }
    Ok(labels)
}

/// The node: its identity and, in its metadata, its proxy class under the keys [`translator::ProxyClass`] reads.
fn render_node(options: &BootstrapOptions) -> Result<Value, BootstrapError> {
    if options.node_id.trim().is_empty() {
        return Err(invalid("--node-id", &options.node_id, "a proxy needs a node id"));
    }
    if let Some(cluster) = &options.node_cluster
        && cluster.trim().is_empty()
    {
        return Err(invalid("--node-cluster", cluster, "must not be empty; leave it unset for the default"));
    }
    if options.namespace.trim().is_empty() {
        return Err(invalid("--namespace", &options.namespace, "must not be empty"));
    }
    if let Some(key) = options.labels.keys().find(|key| key.trim().is_empty()) {
        return Err(invalid("--labels", key, "a label needs a key"));
    }

    let mut metadata = Map::new();
    metadata.insert(ROLE_KEY.to_owned(), options.role.as_str().into());
    let labels: Map<String, Value> = options.labels.iter().map(|(k, v)| (k.clone(), v.as_str().into())).collect();
    metadata.insert(LABELS_KEY.to_owned(), labels.into());
    metadata.insert(NAMESPACE_KEY.to_owned(), options.namespace.as_str().into());
    if let Some(bind) = &options.outbound_bind {
        // Outbound listeners bind this address, and only sidecars have them: a gateway would ignore it, which is
        // better said now than discovered later.
        if options.role != Role::Sidecar {
            return Err(invalid(
                "--outbound-bind",
                bind,
                format!("only sidecars bind outbound listeners, not a {}", options.role),
            ));
        }
        // An empty value would read back as "no outbound bind" (a different class), and a listener can only bind
        // an IP address.
        if bind.parse::<IpAddr>().is_err() {
            return Err(invalid("--outbound-bind", bind, "expected an IP address to bind, e.g. 127.0.0.2"));
        }
        metadata.insert(OUTBOUND_BIND_KEY.to_owned(), bind.as_str().into());
    }

    Ok(json!({ "id": options.node_id, "cluster": options.node_cluster(), "metadata": metadata }))
}

/// The admin interface's address: an IP address (Envoy cannot listen on a name), brackets around IPv6 tolerated.
fn parse_admin_address(text: &str) -> Result<IpAddr, BootstrapError> {
    let bare = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(text);
    bare.parse().map_err(|_| invalid("admin address", text, "expected an IP address, e.g. 127.0.0.1"))
}

/// A validated `--xds-address`.
#[derive(Debug, PartialEq, Eq)]
struct XdsAddress {
    host: Host,
    port: u16,
}

/// The host part of an address: Envoy connects to an IP address as given, but must resolve a name itself.
#[derive(Debug, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

impl XdsAddress {
    /// Parses `HOST:PORT`, where HOST is an IPv4 address, a bracketed IPv6 address or a DNS name.
    fn parse(text: &str) -> Result<XdsAddress, BootstrapError> {
        let error = |reason: &str| invalid("--xds-address", text, reason);
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, port) =
                    rest.split_once("]:").ok_or_else(|| error("expected [IPV6]:PORT, e.g. [::1]:15010"))?;
                let ip = host.parse().map_err(|_| error("the address in brackets is not an IPv6 address"))?;
                (Host::Ip(IpAddr::V6(ip)), port)
            }
            None => {
                let (host, port) =
                    text.rsplit_once(':').ok_or_else(|| error("expected HOST:PORT, e.g. 127.0.0.1:15010"))?;
                if host.contains(':') {
                    return Err(error("an IPv6 address goes in brackets, e.g. [::1]:15010"));
                }
                let host = match host.parse::<IpAddr>() {
                    Ok(ip) => Host::Ip(ip),
                    Err(_) if is_dns_name(host) => Host::Name(host.to_owned()),
                    Err(_) => return Err(error("the host is neither an IP address nor a DNS name")),
                };
                (host, port)
            }
        };
        // u16 parsing alone would accept a sign (`+80`); a port is digits.
        let port = Some(port)
            .filter(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|&port| port != 0)
            .ok_or_else(|| error("the port must be a number from 1 to 65535"))?;
        Ok(XdsAddress { host, port })
    }

    /// The static cluster Envoy reaches the ADS server through.
    fn cluster(&self) -> Value {
        let (discovery_type, address) = match &self.host {
            Host::Ip(ip) => ("STATIC", ip.to_string()),
            Host::Name(name) => ("STRICT_DNS", name.clone()),
        };
        let mut cluster = json!({
            "name": XDS_CLUSTER,
            "type": discovery_type,
            "connect_timeout": XDS_CONNECT_TIMEOUT,
            // xDS is gRPC, and gRPC needs HTTP/2; Envoy speaks HTTP/1.1 upstream unless told otherwise.
            "typed_extension_protocol_options": {
                HTTP_PROTOCOL_OPTIONS: {
                    "@type": format!("type.googleapis.com/{HTTP_PROTOCOL_OPTIONS}"),
                    "explicit_http_config": {
                        "http2_protocol_options": {
                            "connection_keepalive": {
                                "interval": XDS_KEEPALIVE_INTERVAL,
                                "timeout": XDS_KEEPALIVE_TIMEOUT,
                            },
                        },
                    },
                },
            },
            "load_assignment": {
                "cluster_name": XDS_CLUSTER,
                "endpoints": [{
                    "lb_endpoints": [{
                        "endpoint": {
                            "address": { "socket_address": { "address": address, "port_value": self.port } },
                        },
                    }],
                }],
            },
        });
        if matches!(self.host, Host::Name(_)) {
            // `localhost` and dual-stack names resolve to IPv6 first on many hosts, while a control plane is more
            // often listening on IPv4 only; fall back to IPv6 when there is no IPv4 address.
            cluster["dns_lookup_family"] = "V4_PREFERRED".into();
        }
        cluster
    }
}

/// Whether `host` is a syntactically valid DNS name (letters, digits, `-` and `_` in dot-separated labels, the last
/// one not all digits so that a mistyped IPv4 address such as `10.0.0.256` is not taken for a name).
fn is_dns_name(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && !host.rsplit('.').next().is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

// === YAML output ===

/// Writes a JSON value as block-style YAML that Envoy reads back as the same value (see [`render_yaml`] for why
/// this is not serde_yaml).
fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, map, 0, false),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => write_scalar(&mut out, scalar),
    }
    out.push('\n');
    out
}

/// Keys written first in a mapping, so that a resource starts with what it is; the rest keep the map's order.
const LEADING_KEYS: &[&str] = &["@type", "name"];

/// Writes the entries of `map` at `indent`; with `inline_first`, the first one goes on the current line (after a
/// sequence's `- `).
fn write_mapping(out: &mut String, map: &Map<String, Value>, indent: usize, inline_first: bool) {
    let leading = LEADING_KEYS.iter().filter_map(|key| map.get_key_value(*key));
    let rest = map.iter().filter(|(key, _)| !LEADING_KEYS.contains(&key.as_str()));
    for (i, (key, value)) in leading.chain(rest).enumerate() {
        if i > 0 || !inline_first {
            start_line(out, indent);
        }
        write_string(out, key);
        out.push(':');
        match value {
            Value::Object(child) if !child.is_empty() => write_mapping(out, child, indent + 2, false),
            // A sequence may sit at its key's indentation; that is how Envoy's own examples are written.
            Value::Array(items) if !items.is_empty() => write_sequence(out, items, indent),
            scalar => {
                out.push(' ');
                write_scalar(out, scalar);
            }
        }
    }
}

fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        start_line(out, indent);
        out.push('-');
        match item {
            Value::Object(child) if !child.is_empty() => {
                out.push(' ');
                write_mapping(out, child, indent + 2, true);
            }
            Value::Array(child) if !child.is_empty() => write_sequence(out, child, indent + 2),
            scalar => {
                out.push(' ');
                write_scalar(out, scalar);
            }
        }
    }
}

fn start_line(out: &mut String, indent: usize) {
    if !out.is_empty() {
        out.push('\n');
    }
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar, or an empty collection in flow style.
fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::String(s) => write_string(out, s),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        // null, booleans and numbers are written the same in JSON and YAML.
        other => out.push_str(&other.to_string()),
    }
}

/// Words yaml-cpp, and so Envoy, reads as something other than a string when unquoted (compared ignoring case).
/// `inf` and `nan` are here because C++ streams may read them as floats.
const NOT_STRINGS_WHEN_PLAIN: &[&str] =
    &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "infinity", "nan"];

/// Writes a string plain when it is unmistakably a string (a letter, then letters, digits, `.`, `_`, `-`, `/`, and
/// not a word of [`NOT_STRINGS_WHEN_PLAIN`]), double-quoted otherwise. The test is stricter than YAML needs; a
/// quoted string that could have been plain costs two characters, a plain one that should not have been changes
/// the configuration.
fn write_string(out: &mut String, s: &str) {
    let plain = s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        && !NOT_STRINGS_WHEN_PLAIN.iter().any(|word| word.eq_ignore_ascii_case(s));
    if plain {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            // Control characters may not appear raw in YAML, and readers disagree about the Unicode line
            // separators and the byte order mark: escape them all. All are below U+FFFF, so four digits suffice.
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
