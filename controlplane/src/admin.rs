//! The admin HTTP server: health, readiness, Prometheus metrics and the debug views, listed at `/` (HTML for a
//! browser, plain text for curl). Every view only reads: the proxy registry, the snapshot cache and the pipeline's
//! inputs view.
//!
//! | path | what |
//! |---|---|
//! | `/` | every path below, one line each |
//! | `/healthz` | 200 while the process serves |
//! | `/readyz` | 200 once the first full configuration is built, 503 before |
//! | `/metrics` | Prometheus text |
//! | `/debug/syncz` | every connected proxy, per type: SYNCED / STALE / NOT SENT / NACKED, versions, last NACK |
//! | `/debug/config_dump?proxy=ID` | what the proxy runs (what it ACKed), as Envoy's admin `ConfigDump` |
//! | `/debug/config_dump?proxy=ID&config=latest` | what the latest configuration holds for the proxy |
//! | `/debug/inputs` | what was read, with diagnostics |
//! | `/debug/explain?proxy=ID&request=…&header=…` | a request walked through what the proxy runs |

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use api_protos::{Any, ResourceType, reflect};
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::info;
use translator::Severity;

use crate::State;
use crate::explain::{Request, explain, service_port_map};
use crate::registry::ProxyStatus;
use crate::snapshot::SnapshotBuilder;
use crate::sync::{Nack, TypeSync};

/// Every path the admin server answers, with what it shows: the index at `/` lists them.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("/", "this list"),
    ("/healthz", "200 while pilotfish serves"),
    ("/readyz", "200 once every source has handed over its initial state and the first configuration is built"),
    ("/metrics", "Prometheus metrics: pushes, bytes, NACKs, connected proxies, translation and convergence times"),
    ("/debug/syncz", "every connected proxy, per type: SYNCED/STALE/NOT SENT/NACKED; the configuration's errors"),
    ("/debug/config_dump?proxy=ID", "what the proxy runs (what it ACKed), as Envoy's admin ConfigDump"),
    ("/debug/config_dump?proxy=ID&config=latest", "what the latest configuration holds for the proxy"),
    ("/debug/inputs", "what was read: objects, raw resources, every diagnostic with its file:line:column"),
    (
        "/debug/explain?proxy=ID&request=GET+http://HOST/PATH&header=NAME:VALUE",
        "a request walked through what the proxy runs",
    ),
];

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: State,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    info!(address = ?listener.local_addr().ok(), "serving admin HTTP");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump))
        .route("/debug/inputs", get(inputs))
        .route("/debug/explain", get(explain_request))
        .with_state(state)
}

/// The list of paths: HTML when the client asks for it (a browser), plain text otherwise (curl).
async fn index(AxumState(state): AxumState<State>, headers: HeaderMap) -> Response {
    let wants_html =
        headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
    let proxies: Vec<String> = state.registry.list().into_iter().map(|p| p.node_id).collect();
    if wants_html {
        Html(index_html(&proxies)).into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], index_text(&proxies)).into_response()
    }
}

fn index_text(proxies: &[String]) -> String {
    let width = ENDPOINTS.iter().map(|(path, _)| path.len()).max().unwrap_or(0);
    let mut out = String::from("pilotfish admin\n\n");
    for (path, what) in ENDPOINTS {
        let _ = writeln!(out, "{path:<width$}  {what}");
    }
    let _ = writeln!(
        out,
        "\nconnected proxies: {}",
        if proxies.is_empty() { "none".to_owned() } else { proxies.join(", ") }
    );
    out
}

fn index_html(proxies: &[String]) -> String {
    let escape =
        |text: &str| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>pilotfish admin</title></head><body>\n\
         <h1>pilotfish admin</h1>\n<table>\n",
    );
    for (path, what) in ENDPOINTS {
        // Paths that need a value to fill in are shown, not linked.
        let cell = if path.contains("ID") {
            format!("<code>{}</code>", escape(path))
        } else {
            format!("<a href=\"{0}\"><code>{0}</code></a>", escape(path))
        };
        let _ = writeln!(out, "<tr><td>{cell}</td><td>{}</td></tr>", escape(what));
    }
    out.push_str("</table>\n<h2>Connected proxies</h2>\n<ul>\n");
    if proxies.is_empty() {
        out.push_str("<li>none</li>\n");
    }
    for proxy in proxies {
        let query = url_encode(proxy);
        let _ = writeln!(
            out,
            "<li>{0}: <a href=\"/debug/config_dump?proxy={1}\">what it runs</a>, \
             <a href=\"/debug/config_dump?proxy={1}&amp;config=latest\">what it is served</a></li>",
            escape(proxy),
            query
        );
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

/// Percent-encodes a query value (node ids may hold `~`, `.`, `|` and more).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn readyz(AxumState(state): AxumState<State>) -> Response {
    if state.pipeline.view().ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready: the first configuration is not built yet\n").into_response()
    }
}

async fn metrics(AxumState(state): AxumState<State>) -> Response {
    let text = state.metrics.encode(&state.registry);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// The sync state of every connected proxy, and the state of the configuration they are sent, as JSON: a proxy
/// can be synced with a configuration that left out something written (`config.errors`), or that is served as
/// written and will not work as meant (`config.advisory`: analysis errors, as `istioctl analyze` reports them).
pub fn syncz_json(state: &State) -> Value {
    let proxies: Vec<Value> = state.registry.list().iter().map(|proxy| proxy_json(state, proxy)).collect();
    let inputs = state.pipeline.view();
    let errors: Vec<String> = inputs.errors().map(ToString::to_string).collect();
    let advisory: Vec<String> = inputs.advisory_errors().map(ToString::to_string).collect();
    json!({
        "proxies": proxies,
        "config": {
            "ready": inputs.ready,
            "generation": inputs.generation,
            "errors": errors,
            "advisory": advisory,
            "warnings": inputs.warnings,
        },
    })
}

fn proxy_json(state: &State, proxy: &ProxyStatus) -> Value {
    let latest = state.cache.get(&proxy.class).version();
    let up_to_date = proxy.snapshot_version == latest;
    let connected = proxy.connected_at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    json!({
        "node_id": proxy.node_id,
        "class": proxy.class.to_string(),
        "protocol": format!("{:?}", proxy.protocol).to_uppercase(),
        "stream": proxy.stream,
        "connected_at_unix": connected,
        "snapshot_version": proxy.snapshot_version,
        "latest_snapshot_version": latest,
        // The proxy has ACKed everything the latest configuration holds for it.
        "synced": up_to_date && proxy.is_synced(),
        "types": proxy.sync.iter().map(type_json).collect::<Vec<_>>(),
    })
}

fn type_json(sync: &TypeSync) -> Value {
    let nack = |n: &Nack| json!({ "nonce": n.nonce, "rejected_version": n.rejected_version, "message": n.message });
    json!({
        "type": sync.kind.short_name(),
        "status": sync.status(),
        "requested": sync.requested,
        "sent_version": sync.sent_version,
        "acked_version": sync.acked_version,
        "latest_version": sync.latest_version,
        "pending_nonce": sync.pending_nonce,
        "resources": sync.resource_count,
        "responses_sent": sync.responses_sent,
        "nack": sync.nack.as_ref().map(nack),
        "last_nack": sync.last_nack.as_ref().map(nack),
    })
}

async fn syncz(AxumState(state): AxumState<State>) -> Json<Value> {
    // The sources catch up first, so that `pilotfish wait` right after an edit waits for that edit. Reading and
    // translating may take a moment: off the async workers.
    let pipeline = Arc::clone(&state.pipeline);
    let _ = tokio::task::spawn_blocking(move || pipeline.catch_up()).await;
    Json(syncz_json(&state))
}

#[derive(Deserialize)]
struct DumpQuery {
    proxy: Option<String>,
    /// `acked` (the default): what the proxy runs; `latest`: what the latest configuration holds for it.
    config: Option<String>,
}

/// Which configuration of a proxy a dump shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DumpedConfig {
    /// What the proxy ACKed: what it runs.
    Acked,
    /// What the latest snapshot of its class holds: what pilotfish serves it now.
    Latest,
}

async fn config_dump(AxumState(state): AxumState<State>, Query(query): Query<DumpQuery>) -> Response {
    let Some(node_id) = query.proxy else {
        return (StatusCode::BAD_REQUEST, "missing ?proxy=NODE_ID\n").into_response();
    };
    let config = match query.config.as_deref() {
        None | Some("acked") => DumpedConfig::Acked,
        Some("latest") => DumpedConfig::Latest,
        Some(other) => {
            return (StatusCode::BAD_REQUEST, format!("config={other}: expected acked or latest\n")).into_response();
        }
    };
    match proxy_config(&state, &node_id, config) {
        // Rendering every resource to JSON takes a while for a large proxy: off the async workers.
        Some(parts) => match tokio::task::spawn_blocking(move || envoy_config_dump(&parts)).await {
            Ok(dump) => Json(dump).into_response(),
            Err(err) => {
                (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to render the dump: {err}\n")).into_response()
            }
        },
        None => unknown_proxy(&state, &node_id),
    }
}

fn unknown_proxy(state: &State, node_id: &str) -> Response {
    let connected: Vec<String> = state.registry.list().into_iter().map(|p| p.node_id).collect();
    let connected = if connected.is_empty() { "none".to_owned() } else { connected.join(", ") };
    (StatusCode::NOT_FOUND, format!("no connected proxy with node id {node_id:?} (connected: {connected})\n"))
        .into_response()
}

/// One resource type of a proxy's configuration, for a config dump.
#[derive(Clone, Debug)]
pub struct DumpPart {
    pub kind: ResourceType,
    /// The type's `version_info`: the version of the last response the proxy ACKed (or of the latest set).
    pub version_info: String,
    pub resources: Vec<DumpedResource>,
}

/// One resource of a [`DumpPart`].
#[derive(Clone, Debug)]
pub struct DumpedResource {
    pub name: String,
    /// Its content version (what Delta xDS sends as the resource's version).
    pub version: String,
    /// `None` when only the version is known: a Delta proxy that reconnected said which versions it had, and the
    /// configuration has moved on from them.
    pub body: Option<Any>,
}

/// A proxy's resources by type, in push order: what it ACKed, or what the latest snapshot of its class holds.
fn proxy_config(state: &State, node_id: &str, config: DumpedConfig) -> Option<Vec<DumpPart>> {
    let (status, acked) = state.registry.acked(node_id)?;
    let current = state.cache.get(&status.class);
    let parts = ResourceType::ALL
        .iter()
        .zip(acked)
        .map(|(kind, acked)| {
            let set = match config {
                DumpedConfig::Acked => acked,
                DumpedConfig::Latest => Arc::clone(current.resources(*kind)),
            };
            let resources = set
                .iter()
                .map(|(name, resource)| {
                    // Delta proxies report what they had by version only; those take the body of the snapshot's
                    // resource of that version, when it has it.
                    let body = if resource.body.type_url.is_empty() {
                        current
                            .resources(*kind)
                            .get(name)
                            .filter(|r| r.version == resource.version)
                            .map(|r| r.body.clone())
                    } else {
                        Some(resource.body.clone())
                    };
                    DumpedResource { name: name.clone(), version: resource.version.clone(), body }
                })
                .collect();
            // A type the proxy never ACKed has no version yet.
            let ever_acked = status.sync.iter().any(|s| s.kind == *kind && s.acked_version.is_some());
            let version_info = match config {
                DumpedConfig::Acked if !ever_acked => String::new(),
                _ => set.version(),
            };
            DumpPart { kind: *kind, version_info, resources }
        })
        .collect();
    Some(parts)
}

/// Envoy's admin `ConfigDump` (`envoy.admin.v3.ConfigDump`, as Envoy's `/config_dump?include_eds` prints it) of
/// dynamic resources: `{"configs": [ClustersConfigDump, EndpointsConfigDump, ListenersConfigDump,
/// RoutesConfigDump]}`, so that tools reading Envoy's dumps read this one.
///
/// The resources are the ones the proxy was sent, byte for byte. Where a real Envoy's dump of the same proxy
/// differs: `last_updated` is left out (pilotfish does not record when each resource was applied); with SotW each
/// resource's `version_info` is its own content version, where Envoy writes the `version_info` of the response
/// that last changed it (with Delta, both are the resource's version); and Envoy shows endpoints as it holds them
/// (with its defaults filled in), not as they were sent. Each type's own `version_info` is the last ACKed
/// response's, as in Envoy's dump.
pub fn envoy_config_dump(parts: &[DumpPart]) -> Value {
    let part = |kind: ResourceType| parts.iter().find(|p| p.kind == kind);
    let render = |resource: &DumpedResource| -> Option<Value> {
        let body = resource.body.as_ref()?;
        Some(reflect::to_json(body).unwrap_or_else(|e| json!({ "@type": body.type_url, "error": e.to_string() })))
    };
    // Each dynamic entry: the version, and the resource under the field Envoy uses for it.
    let entries = |kind: ResourceType, field: &str| -> Vec<Value> {
        part(kind)
            .map(|p| {
                p.resources
                    .iter()
                    .map(|r| {
                        let mut entry = serde_json::Map::new();
                        entry.insert("version_info".into(), json!(r.version));
                        if let Some(body) = render(r) {
                            entry.insert(field.into(), body);
                        }
                        Value::Object(entry)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let version = |kind: ResourceType| part(kind).map(|p| p.version_info.clone()).unwrap_or_default();
    let listeners: Vec<Value> = part(ResourceType::Listener)
        .map(|p| {
            p.resources
                .iter()
                .map(|r| {
                    let mut active = serde_json::Map::new();
                    active.insert("version_info".into(), json!(r.version));
                    if let Some(body) = render(r) {
                        active.insert("listener".into(), body);
                    }
                    json!({ "name": r.name, "active_state": active })
                })
                .collect()
        })
        .unwrap_or_default();
    // In the order of Envoy's own dump.
    let mut configs = vec![
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
            "version_info": version(ResourceType::Cluster),
            "dynamic_active_clusters": entries(ResourceType::Cluster, "cluster"),
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
            "dynamic_endpoint_configs": entries(ResourceType::Endpoint, "endpoint_config"),
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
            "version_info": version(ResourceType::Listener),
            "dynamic_listeners": listeners,
        }),
        json!({
            "@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
            "dynamic_route_configs": entries(ResourceType::Route, "route_config"),
        }),
    ];
    // proto3 JSON leaves out what is empty, as Envoy's dump does.
    for config in &mut configs {
        if let Value::Object(fields) = config {
            fields.retain(|_, value| !matches!(value, Value::String(s) if s.is_empty()) && value != &json!([]));
        }
    }
    json!({ "configs": configs })
}

/// `/debug/explain?proxy=ID&request=GET+http://host/path&header=name:value`: `pilotfish explain --proxy` on the
/// server, where the proxy's ACKed resources are. The request is walked through what the proxy runs, with the
/// Service port mapping of its class and the diagnostics of the configuration it is served.
async fn explain_request(AxumState(state): AxumState<State>, Query(params): Query<Vec<(String, String)>>) -> Response {
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let (Some(node_id), Some(line)) = (param("proxy"), param("request")) else {
        return (StatusCode::BAD_REQUEST, "expected ?proxy=NODE_ID&request=GET+http://HOST/PATH[&header=NAME:VALUE]\n")
            .into_response();
    };
    let headers: Vec<String> = params.iter().filter(|(k, _)| k == "header").map(|(_, v)| v.clone()).collect();
    let request = match Request::parse(&line, &headers) {
        Ok(request) => request,
        Err(err) => return (StatusCode::BAD_REQUEST, format!("{err}\n")).into_response(),
    };
    let Some(parts) = proxy_config(&state, &node_id, DumpedConfig::Acked) else {
        return unknown_proxy(&state, &node_id);
    };
    let Some((status, _)) = state.registry.acked(&node_id) else {
        return unknown_proxy(&state, &node_id);
    };
    // Translating the class again (for its diagnostics) takes a while: off the async workers.
    let explained = tokio::task::spawn_blocking(move || {
        let mut builder = SnapshotBuilder::default();
        let mut unknown = 0;
        for resource in parts.iter().flat_map(|p| &p.resources) {
            match &resource.body {
                Some(body) => {
                    builder.add_any(body).map_err(|e| e.to_string())?;
                }
                None => unknown += 1,
            }
        }
        let runs = builder.build();
        let port_map = state.pipeline.translator().map(|t| service_port_map(&t, &status.class)).unwrap_or_default();
        let explanation = explain(&runs, &request, &port_map);
        let view = state.pipeline.view();
        let class_diagnostics = state.pipeline.snapshot(&status.class).map(|(_, d)| d).unwrap_or_default();
        let diagnostics = translator::diagnostics::sorted(
            view.diagnostics
                .iter()
                .chain(&class_diagnostics)
                .filter(|d| d.severity != Severity::Info)
                .cloned()
                .collect(),
        );
        let synced = status.snapshot_version == state.cache.get(&status.class).version() && status.is_synced();
        let behind: Vec<String> = status
            .sync
            .iter()
            .filter(|s| s.requested && s.status() != crate::sync::SyncState::Synced)
            .map(|s| format!("{} {}", s.kind.short_name(), s.status()))
            .collect();
        // Types asked for and never ACKed on this connection: what the proxy runs there is not known here (after
        // a reconnect, Envoy keeps what the earlier connection gave it).
        let unacked: Vec<&str> = status
            .sync
            .iter()
            .filter(|s| s.requested && s.acked_version.is_none())
            .map(|s| s.kind.short_name())
            .collect();
        let mut out = explanation.to_json();
        if let Value::Object(fields) = &mut out {
            fields.insert("proxy".into(), json!(node_id));
            fields.insert("class".into(), json!(status.class.to_string()));
            fields.insert("synced".into(), json!(synced));
            fields.insert("behind".into(), json!(behind));
            fields.insert("unknown_resources".into(), json!(unknown));
            fields.insert("unacked".into(), json!(unacked));
            fields.insert("messages".into(), json!(diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>()));
            fields.insert("diagnostics".into(), json!(diagnostics));
        }
        Ok::<Value, String>(out)
    })
    .await;
    match explained {
        Ok(Ok(out)) => Json(out).into_response(),
        Ok(Err(err)) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to read what the proxy runs: {err}\n")).into_response()
        }
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to explain: {err}\n")).into_response(),
    }
}

async fn inputs(AxumState(state): AxumState<State>) -> Response {
    let view = state.pipeline.view();
    if view.ready {
        Json(view.as_ref()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no configuration read yet\n").into_response()
    }
}
