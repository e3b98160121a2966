//! pilotfish's ADS server driving a real Envoy, over SotW and Delta: traffic follows config, a NACK is contained,
//! and a control plane restart is invisible to traffic and pushes nothing.

mod common;

use std::net::SocketAddr;

use anyhow::{Result, bail, ensure};
use api_protos::ResourceType;
use api_protos::pb::envoy::config::route::v3::{RouteMatch, route_match};
use api_protos::pb::envoy::r#type::matcher::v3::RegexMatcher;
use common::{ControlPlane, SYNC_TIMEOUT, config, start_envoy};
use controlplane::builders::{prefix_route, weighted_route};
use controlplane::sync::SyncState;
use e2e::{Backend, count_backends, eventually, free_port, http_get};

const HOST: &str = "app.example";

fn listen_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

async fn body_of(listen: SocketAddr, path: &str) -> Result<String> {
    let reply = http_get(listen, HOST, path, &[]).await?;
    ensure!(reply.status == 200, "status {} for {path}: {}", reply.status, reply.body);
    Ok(reply.body)
}

async fn routes_a_request_to_a_backend(delta: bool) -> Result<()> {
    let backend = Backend::start("one").await?;
    let listen = listen_addr();
    let control_plane = ControlPlane::start().await?;
    control_plane.publish(config(listen, vec![prefix_route("/", "one")], &[("one", &[backend.addr()])]))?;
    let envoy = start_envoy("gw", control_plane.addr, delta).await?;
    let proxy = control_plane.wait_synced("gw").await?;
    for sync in &proxy.sync {
        assert_eq!(sync.status(), SyncState::Synced, "{sync:?}");
    }
    let body = eventually(SYNC_TIMEOUT, "a request through Envoy", || body_of(listen, "/hello")).await?;
    assert_eq!(body, "one");
    assert_eq!(backend.requests().last().map(|r| r.path.clone()).as_deref(), Some("/hello"));
    // Envoy holds what pilotfish sent, at pilotfish's versions: the set's version in SotW, the resource's in Delta.
    let routes = control_plane.state.cache.get(&proxy.class);
    let expected = if delta {
        routes.resources(ResourceType::Route).get(common::ROUTES).map(|r| r.version.clone())
    } else {
        proxy.sync[ResourceType::Route.index()].acked_version.clone()
    };
    let versions = envoy_versions(&envoy).await?;
    let route_version = versions.iter().find(|(name, _)| name.ends_with(common::ROUTES)).map(|(_, v)| v.clone());
    assert_eq!(route_version, expected, "{versions:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sotw_routes_a_request_to_a_backend() -> Result<()> {
    routes_a_request_to_a_backend(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_routes_a_request_to_a_backend() -> Result<()> {
    routes_a_request_to_a_backend(true).await
}

async fn traffic_follows_a_new_route_and_a_new_cluster(delta: bool) -> Result<()> {
    let (a, b) = (Backend::start("a").await?, Backend::start("b").await?);
    let listen = listen_addr();
    let control_plane = ControlPlane::start().await?;
    control_plane.publish(config(listen, vec![prefix_route("/", "a")], &[("a", &[a.addr()])]))?;
    let _envoy = start_envoy("gw", control_plane.addr, delta).await?;
    control_plane.wait_synced("gw").await?;
    assert_eq!(eventually(SYNC_TIMEOUT, "route to a", || body_of(listen, "/b/x")).await?, "a");

    // A new route to a new cluster.
    control_plane.publish(config(
        listen,
        vec![prefix_route("/b", "b"), prefix_route("/", "a")],
        &[("a", &[a.addr()]), ("b", &[b.addr()])],
    ))?;
    control_plane.wait_synced("gw").await?;
    // Synced means Envoy ACKed the routes: the very next request must see them.
    assert_eq!(body_of(listen, "/b/x").await?, "b");
    assert_eq!(body_of(listen, "/other").await?, "a");

    // Shift the default route to an even split, then wholly to b.
    control_plane.publish(config(
        listen,
        vec![weighted_route("/", &[("a", 50), ("b", 50)])],
        &[("a", &[a.addr()]), ("b", &[b.addr()])],
    ))?;
    control_plane.wait_synced("gw").await?;
    let split = count_backends(listen, HOST, "/", &[], 200).await;
    let (from_a, from_b) = (split.get("a").copied().unwrap_or(0), split.get("b").copied().unwrap_or(0));
    assert_eq!(from_a + from_b, 200, "{split:?}");
    assert!(from_a > 50 && from_b > 50, "an even split, roughly: {split:?}");
    control_plane.publish(config(listen, vec![prefix_route("/", "b")], &[("b", &[b.addr()])]))?;
    control_plane.wait_synced("gw").await?;
    let moved = count_backends(listen, HOST, "/", &[], 20).await;
    assert_eq!(moved.get("b"), Some(&20), "{moved:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sotw_traffic_follows_a_new_route_and_a_new_cluster() -> Result<()> {
    traffic_follows_a_new_route_and_a_new_cluster(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_traffic_follows_a_new_route_and_a_new_cluster() -> Result<()> {
    traffic_follows_a_new_route_and_a_new_cluster(true).await
}

async fn a_rejected_config_is_recorded_contained_and_not_resent(delta: bool) -> Result<()> {
    let (a, a2) = (Backend::start("a").await?, Backend::start("a2").await?);
    let listen = listen_addr();
    let control_plane = ControlPlane::start().await?;
    control_plane.publish(config(listen, vec![prefix_route("/", "a")], &[("a", &[a.addr()])]))?;
    let _envoy = start_envoy("gw", control_plane.addr, delta).await?;
    control_plane.wait_synced("gw").await?;
    assert_eq!(eventually(SYNC_TIMEOUT, "route to a", || body_of(listen, "/")).await?, "a");

    // A route whose regex RE2 cannot compile: valid protobuf, rejected by Envoy.
    let mut broken = prefix_route("/", "a");
    broken.r#match = Some(RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: "(unclosed".to_owned(),
            ..Default::default()
        })),
        ..Default::default()
    });
    control_plane.publish(config(listen, vec![broken.clone()], &[("a", &[a.addr()])]))?;
    let rds = ResourceType::Route.index();
    let nacked = eventually(SYNC_TIMEOUT, "the routes NACKed", || async {
        let Some(proxy) = control_plane.proxy("gw") else { bail!("not connected") };
        let sync = proxy.sync[rds].clone();
        ensure!(sync.status() == SyncState::Nacked, "{sync:?}");
        Ok(sync)
    })
    .await?;
    let message = nacked.nack.as_ref().map(|n| n.message.clone()).unwrap_or_default();
    assert!(!message.is_empty(), "Envoy's error is recorded");
    // Envoy keeps serving what it last accepted.
    assert_eq!(body_of(listen, "/").await?, "a");

    // Endpoints change (another push on the stream); the rejected routes must not go out again.
    control_plane.publish(config(listen, vec![broken], &[("a", &[a2.addr()])]))?;
    eventually(SYNC_TIMEOUT, "traffic on the new endpoint", || async {
        ensure!(body_of(listen, "/").await? == "a2", "still the old endpoint");
        Ok(())
    })
    .await?;
    // Every ACK re-runs the push logic; once the endpoints' ACK is in, a resend would have happened.
    let eds = ResourceType::Endpoint.index();
    eventually(SYNC_TIMEOUT, "the endpoints ACKed", || async {
        let status = control_plane.proxy("gw").map(|p| p.sync[eds].status());
        ensure!(status == Some(SyncState::Synced), "endpoints {status:?}");
        Ok(())
    })
    .await?;
    let after = control_plane.proxy("gw").map(|p| p.sync[rds].clone());
    assert_eq!(after.as_ref().map(|s| s.responses_sent), Some(nacked.responses_sent), "no resend: {after:?}");
    assert_eq!(after.as_ref().map(|s| s.status()), Some(SyncState::Nacked));

    // Back to what Envoy runs: nothing to send, and the NACK no longer stands.
    control_plane.publish(config(listen, vec![prefix_route("/", "a")], &[("a", &[a2.addr()])]))?;
    let proxy = control_plane.wait_synced("gw").await?;
    assert_eq!(proxy.sync[rds].responses_sent, nacked.responses_sent);
    // A fixed, new input is sent and accepted.
    control_plane.publish(config(
        listen,
        vec![prefix_route("/fixed", "a"), prefix_route("/", "a")],
        &[("a", &[a2.addr()])],
    ))?;
    let proxy = control_plane.wait_synced("gw").await?;
    assert_eq!(proxy.sync[rds].responses_sent, nacked.responses_sent + 1);
    assert_eq!(proxy.sync[rds].status(), SyncState::Synced);
    assert!(proxy.sync[rds].last_nack.is_some(), "the NACK stays in the history");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sotw_a_rejected_config_is_recorded_contained_and_not_resent() -> Result<()> {
    a_rejected_config_is_recorded_contained_and_not_resent(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_a_rejected_config_is_recorded_contained_and_not_resent() -> Result<()> {
    a_rejected_config_is_recorded_contained_and_not_resent(true).await
}

/// Version of every dynamic resource in Envoy's config dump, by name.
async fn envoy_versions(envoy: &e2e::Envoy) -> Result<Vec<(String, String)>> {
    let dump = envoy.config_dump().await?;
    let mut versions = Vec::new();
    let Some(configs) = dump["configs"].as_array() else { bail!("no configs in the dump") };
    for config in configs {
        for list in ["dynamic_active_clusters", "dynamic_listeners", "dynamic_route_configs"] {
            for entry in config[list].as_array().into_iter().flatten() {
                let version = entry["version_info"]
                    .as_str()
                    .or_else(|| entry["active_state"]["version_info"].as_str())
                    .unwrap_or_default();
                let name = entry["cluster"]["name"]
                    .as_str()
                    .or_else(|| entry["name"].as_str())
                    .or_else(|| entry["route_config"]["name"].as_str())
                    .unwrap_or_default();
                versions.push((format!("{list}/{name}"), version.to_owned()));
            }
        }
    }
    versions.sort();
    Ok(versions)
}

async fn a_restart_is_invisible_to_traffic_and_pushes_nothing(delta: bool) -> Result<()> {
    let a = Backend::start("a").await?;
    let listen = listen_addr();
    let snapshot = || config(listen, vec![prefix_route("/", "a")], &[("a", &[a.addr()])]);
    let control_plane = ControlPlane::start().await?;
    control_plane.publish(snapshot())?;
    let envoy = start_envoy("gw", control_plane.addr, delta).await?;
    control_plane.wait_synced("gw").await?;
    assert_eq!(eventually(SYNC_TIMEOUT, "route to a", || body_of(listen, "/")).await?, "a");
    let before = envoy_versions(&envoy).await?;
    assert_eq!(before.len(), 3, "{before:?}");

    let addr = control_plane.addr;
    control_plane.stop().await?;
    // Envoy serves on without its control plane.
    assert_eq!(body_of(listen, "/").await?, "a");

    let restarted = ControlPlane::start_on(addr, snapshot()).await?;
    let proxy = restarted.wait_synced("gw").await?;
    for sync in &proxy.sync {
        assert_eq!(sync.resources_sent, 0, "the proxy had everything already: {sync:?}");
    }
    assert_eq!(envoy_versions(&envoy).await?, before);
    assert_eq!(body_of(listen, "/").await?, "a");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sotw_a_restart_is_invisible_to_traffic_and_pushes_nothing() -> Result<()> {
    a_restart_is_invisible_to_traffic_and_pushes_nothing(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_a_restart_is_invisible_to_traffic_and_pushes_nothing() -> Result<()> {
    a_restart_is_invisible_to_traffic_and_pushes_nothing(true).await
}
