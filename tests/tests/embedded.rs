//! The embeddable control plane (`controlplane::ControlPlane`) driving real Envoys: independent instances in one
//! process, NACKs surfaced as errors, raw Envoy resources served as they are.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use controlplane::bootstrap::{Role, render_yaml};
use controlplane::{ControlPlane, EmbedError};
use e2e::{Backend, Envoy, free_port, http_get};

const WAIT: Duration = Duration::from_secs(20);

/// Raw Envoy resources: a listener on `port` routing everything to one static backend.
fn raw_config(port: u16, backend: SocketAddr, path_regex: Option<&str>) -> String {
    let route_match = match path_regex {
        Some(regex) => format!("{{ safe_regex: {{ regex: '{regex}' }} }}"),
        None => "{ prefix: / }".to_owned(),
    };
    format!(
        r#"
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: raw_{port}
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: raw
      rds: {{ route_config_name: raw, config_source: {{ ads: {{}}, resource_api_version: V3 }} }}
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
---
"@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
name: raw
virtual_hosts:
- name: all
  domains: ["*"]
  routes: [{{ match: {route_match}, route: {{ cluster: backend }} }}]
---
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: backend
connect_timeout: 1s
type: STATIC
load_assignment:
  cluster_name: backend
  endpoints:
  - lb_endpoints:
    - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {backend_port} }} }} }}
"#,
        backend_port = backend.port()
    )
}

async fn envoy_for(control_plane: &ControlPlane, node_id: &str) -> Result<Envoy> {
    let envoy = Envoy::start(node_id, &render_yaml(&control_plane.bootstrap(node_id, Role::Gateway))?).await?;
    envoy.wait_live(WAIT).await?;
    Ok(envoy)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_control_planes_in_one_process_do_not_interfere() -> Result<()> {
    let (a, b) = (Backend::start("a").await?, Backend::start("b").await?);
    let (port_a, port_b) = (free_port(), free_port());
    let first = ControlPlane::start().await?;
    let second = ControlPlane::start().await?;
    first.apply("config", &raw_config(port_a, a.addr(), None))?;
    second.apply("config", &raw_config(port_b, b.addr(), None))?;
    let _envoy_a = envoy_for(&first, "envoy-a").await?;
    let _envoy_b = envoy_for(&second, "envoy-b").await?;
    first.wait_synced(Some("envoy-a"), WAIT).await?;
    second.wait_synced(Some("envoy-b"), WAIT).await?;
    assert_eq!(first.proxies().len(), 1, "each control plane sees only its own proxy");
    assert_eq!(second.proxies().len(), 1);
    let listen = |port| SocketAddr::from(([127, 0, 0, 1], port));
    // Synced means ACKed: the very first request goes where the config says.
    assert_eq!(http_get(listen(port_a), "x", "/", &[]).await?.body, "a");
    assert_eq!(http_get(listen(port_b), "x", "/", &[]).await?.body, "b");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nack_comes_back_as_an_error_and_envoy_keeps_serving() -> Result<()> {
    let a = Backend::start("a").await?;
    let port = free_port();
    let control_plane = ControlPlane::start().await?;
    control_plane.apply("config", &raw_config(port, a.addr(), None))?;
    let _envoy = envoy_for(&control_plane, "gw").await?;
    control_plane.wait_synced(Some("gw"), WAIT).await?;
    // A regex RE2 refuses: valid protobuf, rejected by Envoy.
    control_plane.apply("config", &raw_config(port, a.addr(), Some("(unclosed")))?;
    match control_plane.wait_synced(Some("gw"), WAIT).await {
        Err(EmbedError::Rejected { node, xds_type, message }) => {
            assert_eq!((node.as_str(), xds_type), ("gw", "RDS"));
            assert!(message.contains("missing )"), "Envoy's message: {message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    let reply = http_get(SocketAddr::from(([127, 0, 0, 1], port)), "x", "/", &[]).await?;
    assert_eq!(reply.body, "a", "the last accepted config still serves");
    // Fixing the input clears it.
    control_plane.apply("config", &raw_config(port, a.addr(), Some("/.*")))?;
    control_plane.wait_synced(Some("gw"), WAIT).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_input_is_refused_before_anything_is_served() -> Result<()> {
    let control_plane = ControlPlane::start().await?;
    let err = control_plane
        .apply(
            "bad",
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec:\n  hosts: [x]\n  http:\n  - route:\n    - {destination: {host: x}, weight: -1}\n    - {destination: {host: y}, weight: 1}\n",
        )
        .expect_err("a negative weight is an error");
    let text = err.to_string();
    assert!(text.contains("VirtualService default/x") && text.contains("weight"), "{text}");
    let err = control_plane
        .apply("raw", "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: c\nnot_a_field: 1\n")
        .expect_err("an unknown field is an error");
    assert!(err.to_string().contains("not_a_field"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_resources_go_only_to_the_proxies_they_name() -> Result<()> {
    let a = Backend::start("a").await?;
    let port = free_port();
    let targeted = |role: &str| {
        let documents: Vec<String> = raw_config(port, a.addr(), None)
            .split("\n---\n")
            .map(|document| format!("- {}", document.trim().replace('\n', "\n  ")))
            .collect();
        format!("proxies: {{ role: {role} }}\nresources:\n{}\n", documents.join("\n"))
    };
    let control_plane = ControlPlane::start().await?;
    control_plane.apply("config", &targeted("sidecar"))?;
    let _envoy = envoy_for(&control_plane, "gw").await?;
    control_plane.wait_synced(Some("gw"), WAIT).await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    assert!(http_get(listen, "x", "/", &[]).await.is_err(), "a gateway gets no sidecar-only listener");
    control_plane.apply("config", &targeted("gateway"))?;
    control_plane.wait_synced(Some("gw"), WAIT).await?;
    assert_eq!(http_get(listen, "x", "/", &[]).await?.body, "a");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_times_each_response_until_envoy_acks_it() -> Result<()> {
    use api_protos::ResourceType;
    let a = Backend::start("a").await?;
    let port = free_port();
    let control_plane = ControlPlane::start().await?;
    control_plane.apply("config", &raw_config(port, a.addr(), None))?;
    let _envoy = envoy_for(&control_plane, "gw").await?;
    control_plane.wait_synced(Some("gw"), WAIT).await?;
    let proxy = control_plane.proxy("gw").expect("the proxy is connected");
    for kind in [ResourceType::Cluster, ResourceType::Listener, ResourceType::Route] {
        let timing = proxy.timing.iter().find(|t| t.kind == kind).expect("every type has a timing");
        let ack = timing.last_ack.unwrap_or_else(|| panic!("{kind} was ACKed: {timing:?}"));
        assert!(ack.acked >= ack.sent && timing.last_sent >= Some(ack.sent), "{timing:?}");
    }
    // A route change: only RDS goes out again, and its ACK is timed from the new response.
    let changed = std::time::Instant::now();
    control_plane.apply("config", &raw_config(port, a.addr(), Some("/.*")))?;
    control_plane.wait_synced(Some("gw"), WAIT).await?;
    let proxy = control_plane.proxy("gw").expect("the proxy is connected");
    let sent_after = |kind| {
        proxy.timing.iter().find(|t| t.kind == kind).and_then(|t| t.last_ack).is_some_and(|ack| ack.sent >= changed)
    };
    assert!(sent_after(ResourceType::Route), "{:?}", proxy.timing);
    assert!(!sent_after(ResourceType::Cluster) && !sent_after(ResourceType::Listener), "{:?}", proxy.timing);
    Ok(())
}
