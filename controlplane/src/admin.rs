//! The admin HTTP server: health, readiness, Prometheus metrics and the debug views.
//!
//! | path | what |
//! |---|---|
//! | `/healthz` | 200 while the process serves |
//! | `/readyz` | 200 once the first full configuration is built, 503 before |
//! | `/metrics` | Prometheus text |
//! | `/debug/syncz` | every connected proxy, per type: SYNCED / STALE / NOT SENT / NACKED, versions, last NACK |
//! | `/debug/config_dump?proxy=ID` | what pilotfish believes the proxy runs (what it ACKed), in Envoy's JSON shape |
//! | `/debug/inputs` | what was read, with diagnostics |

use std::future::Future;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use api_protos::{ResourceType, reflect};
use axum::extract::{Query, State as AxumState};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing::info;

use crate::State;
use crate::registry::ProxyStatus;
use crate::sync::{Nack, TypeSync};

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
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .route("/debug/config_dump", get(config_dump))
        .route("/debug/inputs", get(inputs))
        .with_state(state)
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
/// can be synced with a configuration that left out something written (`config.errors`).
pub fn syncz_json(state: &State) -> Value {
    let proxies: Vec<Value> = state.registry.list().iter().map(|proxy| proxy_json(state, proxy)).collect();
    let inputs = state.pipeline.view();
    let errors: Vec<String> = inputs.errors().map(ToString::to_string).collect();
    json!({
        "proxies": proxies,
        "config": {
            "ready": inputs.ready,
            "generation": inputs.generation,
            "errors": errors,
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
}

async fn config_dump(AxumState(state): AxumState<State>, Query(query): Query<DumpQuery>) -> Response {
    let Some(node_id) = query.proxy else {
        return (StatusCode::BAD_REQUEST, "missing ?proxy=NODE_ID\n").into_response();
    };
    let Some((status, acked)) = state.registry.acked(&node_id) else {
        return (StatusCode::NOT_FOUND, format!("no connected proxy with node id {node_id:?}\n")).into_response();
    };
    let current = state.cache.get(&status.class);
    let mut dump = serde_json::Map::new();
    dump.insert("node_id".into(), json!(node_id));
    dump.insert("class".into(), json!(status.class.to_string()));
    for (kind, set) in ResourceType::ALL.iter().zip(acked) {
        let resources: Vec<Value> = set
            .iter()
            .map(|(name, resource)| {
                // Delta proxies report what they had by version only; render those from the snapshot when it has them.
                let body = if resource.body.type_url.is_empty() {
                    current.resources(*kind).get(name).filter(|r| r.version == resource.version).map(|r| r.body.clone())
                } else {
                    Some(resource.body.clone())
                };
                let rendered = body
                    .as_ref()
                    .map(reflect::to_json)
                    .transpose()
                    .unwrap_or_else(|e| Some(json!({ "error": e.to_string() })));
                json!({ "name": name, "version": resource.version, "resource": rendered })
            })
            .collect();
        let key = match kind {
            ResourceType::Cluster => "clusters",
            ResourceType::Endpoint => "endpoints",
            ResourceType::Listener => "listeners",
            ResourceType::Route => "routes",
        };
        dump.insert(key.into(), Value::Array(resources));
    }
    Json(Value::Object(dump)).into_response()
}

async fn inputs(AxumState(state): AxumState<State>) -> Response {
    let view = state.pipeline.view();
    if view.ready {
        Json(view.as_ref()).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no configuration read yet\n").into_response()
    }
}
