//! A test suite for a service behind Envoy, configured the Istio way, run against a real Envoy.
//!
//! The pattern: start your backends, start pilotfish in-process, `apply` the configuration under test, start
//! Envoy from pilotfish's bootstrap, `wait_synced` (no sleeps: Envoy has ACKed the config when it returns), send
//! requests, check what arrived. Each test gets its own control plane, Envoy and ports, so tests run in parallel.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use controlplane::ControlPlane;
use controlplane::bootstrap::{Role, render_yaml};
use e2e::{Backend, Envoy, count_backends, free_port, http_get};

const WAIT: Duration = Duration::from_secs(20);

/// The system under test: a `checkout` service with a stable and a canary version, behind a gateway on `port`.
fn checkout(port: u16, stable: SocketAddr, canary: SocketAddr, http_routes: &str) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: checkout}}
spec:
  hosts: [checkout.local]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {stable}}}, labels: {{track: stable}}}}
  - {{address: 127.0.0.1, ports: {{http: {canary}}}, labels: {{track: canary}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: checkout}}
spec:
  host: checkout.local
  subsets: [{{name: stable, labels: {{track: stable}}}}, {{name: canary, labels: {{track: canary}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: edge}}
spec:
  selector: {{app: edge}}
  servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, bind: 127.0.0.1, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: checkout}}
spec:
  hosts: [shop.example]
  gateways: [edge]
  http:
{http_routes}
"#,
        stable = stable.port(),
        canary = canary.port()
    )
}

/// pilotfish, an Envoy connected to it, and the config applied and ACKed.
async fn envoy_with(control_plane: &ControlPlane, config: &str) -> Result<Envoy> {
    control_plane.apply("checkout", config)?;
    let mut bootstrap = control_plane.bootstrap("edge-1", Role::Gateway);
    bootstrap.labels.insert("app".into(), "edge".into());
    let envoy = Envoy::start("edge-1", &render_yaml(&bootstrap)?).await?;
    envoy.wait_live(WAIT).await?;
    control_plane.wait_synced(Some("edge-1"), WAIT).await?;
    Ok(envoy)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_gets_its_share_and_then_all_traffic() -> Result<()> {
    let (stable, canary) = (Backend::start("stable").await?, Backend::start("canary").await?);
    let port = free_port();
    let split = |stable_weight: u32, canary_weight: u32| {
        format!(
            "  - route:\n    - {{destination: {{host: checkout.local, subset: stable}}, weight: {stable_weight}}}\n    - {{destination: {{host: checkout.local, subset: canary}}, weight: {canary_weight}}}\n"
        )
    };
    let control_plane = ControlPlane::start().await?;
    let _envoy = envoy_with(&control_plane, &checkout(port, stable.addr(), canary.addr(), &split(90, 10))).await?;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));

    let counts = count_backends(gateway, "shop.example", "/cart", &[], 400).await;
    let to_canary = counts.get("canary").copied().unwrap_or(0);
    assert_eq!(counts.values().sum::<usize>(), 400, "every request answered: {counts:?}");
    assert!((15..=70).contains(&to_canary), "about 10% to the canary: {counts:?}");

    // Promote the canary: once `wait_synced` returns, Envoy runs the new weights.
    control_plane.apply("checkout", &checkout(port, stable.addr(), canary.addr(), &split(0, 100)))?;
    control_plane.wait_synced(Some("edge-1"), WAIT).await?;
    let counts = count_backends(gateway, "shop.example", "/cart", &[], 50).await;
    assert_eq!(counts.get("canary"), Some(&50), "{counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_injected_fault_fails_requests_without_reaching_the_service() -> Result<()> {
    let (stable, canary) = (Backend::start("stable").await?, Backend::start("canary").await?);
    let port = free_port();
    let routes = r#"
  - match: [{headers: {x-chaos: {exact: "on"}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: checkout.local, subset: stable}}]
  - route: [{destination: {host: checkout.local, subset: stable}}]
"#;
    let control_plane = ControlPlane::start().await?;
    let _envoy = envoy_with(&control_plane, &checkout(port, stable.addr(), canary.addr(), routes)).await?;
    let gateway = SocketAddr::from(([127, 0, 0, 1], port));

    assert_eq!(http_get(gateway, "shop.example", "/cart", &[]).await?.status, 200);
    let served = stable.request_count();
    let chaos = http_get(gateway, "shop.example", "/cart", &[("x-chaos", "on")]).await?;
    assert_eq!(chaos.status, 503);
    assert_eq!(stable.request_count(), served, "the fault answered; the service never saw the request");
    Ok(())
}
