//! Istio configuration, translated by pilotfish, served to a real Envoy: routing, traffic shifting, faults,
//! timeouts, redirects and direct responses behave as Istio documents them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, ensure};
use common::{ControlPlane, SYNC_TIMEOUT, publish_istio, start_envoy_with};
use controlplane::bootstrap::{BootstrapOptions, Role};
use e2e::{Backend, Behaviour, Envoy, count_backends, eventually, free_port, http_get, istio};

/// Services `reviews.local` (v1, v2 backends) and `slow.local`, a gateway on `port`, and `routes` (the `http:` of
/// the gateway's VirtualService).
fn config(port: u16, v1: SocketAddr, v2: SocketAddr, slow: SocketAddr, routes: &str) -> String {
    istio::documents(&[
        istio::versioned_service("reviews", "default", "reviews.local", 9080, &[("v1", v1), ("v2", v2)]),
        istio::versioned_service("slow", "default", "slow.local", 9080, &[("v1", slow)]),
        istio::ingress_gateway(port, "127.0.0.1"),
        istio::virtual_service("reviews", "default", &["bookinfo.local"], &["istio-system/gw"], routes),
    ])
}

const ROUTES: &str = r#"
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews.local, subset: v2}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: reviews.local, subset: v1}}]
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: reviews.local, subset: v1}, weight: 50}
    - {destination: {host: reviews.local, subset: v2}, weight: 50}
  - match: [{uri: {prefix: /slow}}]
    timeout: 0.3s
    retries: {attempts: 0}
    route: [{destination: {host: slow.local}}]
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, redirectCode: 308}
  - match: [{uri: {exact: /health}}]
    directResponse: {status: 200, body: {string: "ok from pilotfish"}}
  - route: [{destination: {host: reviews.local, subset: v1}}]
    headers: {response: {set: {x-served-by: pilotfish}}}
"#;

struct Setup {
    control_plane: ControlPlane,
    _envoy: Envoy,
    listen: SocketAddr,
    v1: Backend,
    v2: Backend,
    slow: Backend,
    port: u16,
}

async fn setup(delta: bool) -> Result<Setup> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let slow = Backend::start_with("slow", Behaviour { delay: Duration::from_secs(2), ..Behaviour::default() }).await?;
    let port = free_port();
    let control_plane = ControlPlane::start().await?;
    publish_istio(&control_plane, &config(port, v1.addr(), v2.addr(), slow.addr(), ROUTES))?;
    let mut options = BootstrapOptions::new("ingress", Role::Gateway);
    options.namespace = "istio-system".to_owned();
    options.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
    options.delta = delta;
    let envoy = start_envoy_with(options, control_plane.addr).await?;
    control_plane.wait_synced("ingress").await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    Ok(Setup { control_plane, _envoy: envoy, listen, v1, v2, slow, port })
}

async fn get(setup: &Setup, path: &str, headers: &[(&str, &str)]) -> Result<e2e::HttpReply> {
    http_get(setup.listen, "bookinfo.local", path, headers).await
}

async fn routes_headers_faults_timeouts_redirects(delta: bool) -> Result<()> {
    let s = setup(delta).await?;
    let reply = eventually(SYNC_TIMEOUT, "the default route", || async {
        let reply = get(&s, "/productpage", &[]).await?;
        ensure!(reply.status == 200, "status {}", reply.status);
        Ok(reply)
    })
    .await?;
    assert_eq!(reply.body, "v1");
    assert_eq!(reply.header("x-served-by"), Some("pilotfish"), "response headers set by the route");

    // Header match: jason goes to v2.
    assert_eq!(get(&s, "/productpage", &[("end-user", "jason")]).await?.body, "v2");
    assert_eq!(get(&s, "/productpage", &[("end-user", "someone")]).await?.body, "v1");

    // Fault injection: abort with 418 for everything under /abort; the backend never sees it.
    let before = s.v1.request_count();
    assert_eq!(get(&s, "/abort/x", &[]).await?.status, 418);
    assert_eq!(s.v1.request_count(), before);

    // Weighted split, close to even.
    let split = count_backends(s.listen, "bookinfo.local", "/split", &[], 200).await;
    let (v1, v2) = (split.get("v1").copied().unwrap_or(0), split.get("v2").copied().unwrap_or(0));
    assert_eq!(v1 + v2, 200, "{split:?}");
    assert!(v1 > 60 && v2 > 60, "{split:?}");

    // Timeout: the slow backend takes 2 s, the route allows 0.3 s.
    assert_eq!(get(&s, "/slow", &[]).await?.status, 504);
    assert_eq!(s.slow.request_count(), 1, "no retry: attempts 0");

    // Redirect and direct response.
    let redirect = get(&s, "/old", &[]).await?;
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("http://bookinfo.local/new"));
    let health = get(&s, "/health", &[]).await?;
    assert_eq!((health.status, health.body.as_str()), (200, "ok from pilotfish"));

    // A host the gateway's VirtualService does not cover: 404 from the blackhole virtual host.
    assert_eq!(http_get(s.listen, "other.local", "/", &[]).await?.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn sotw_istio_routes_headers_faults_timeouts_redirects() -> Result<()> {
    routes_headers_faults_timeouts_redirects(false).await
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_istio_routes_headers_faults_timeouts_redirects() -> Result<()> {
    routes_headers_faults_timeouts_redirects(true).await
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_shifts_as_the_virtual_service_changes() -> Result<()> {
    let s = setup(false).await?;
    for (v1, v2) in [(100, 0), (50, 50), (0, 100)] {
        let routes = istio::weighted_route("reviews.local", &[("v1", v1), ("v2", v2)]);
        publish_istio(&s.control_plane, &config(s.port, s.v1.addr(), s.v2.addr(), s.slow.addr(), &routes))?;
        s.control_plane.wait_synced("ingress").await?;
        let counts = count_backends(s.listen, "bookinfo.local", "/", &[], 100).await;
        let got = (counts.get("v1").copied().unwrap_or(0), counts.get("v2").copied().unwrap_or(0));
        assert_eq!(got.0 + got.1, 100, "every request answered: {counts:?}");
        match (v1, v2) {
            (100, 0) => assert_eq!(got, (100, 0)),
            (0, 100) => assert_eq!(got, (0, 100)),
            _ => assert!(got.0 > 25 && got.1 > 25, "{counts:?}"),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sidecar_routes_by_the_mesh_virtual_service() -> Result<()> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let service_port = free_port();
    let routes = "  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews.local, subset: v2}}]
  - route: [{destination: {host: reviews.local, subset: v1}}]
";
    let yaml = istio::documents(&[
        istio::versioned_service(
            "reviews",
            "default",
            "reviews.local",
            service_port,
            &[("v1", v1.addr()), ("v2", v2.addr())],
        ),
        istio::virtual_service("reviews", "default", &["reviews.local"], &[], routes),
    ]);
    let control_plane = ControlPlane::start().await?;
    publish_istio(&control_plane, &yaml)?;
    let mut options = BootstrapOptions::new("app", Role::Sidecar);
    options.outbound_bind = Some("127.0.0.1".to_owned());
    let _envoy = start_envoy_with(options, control_plane.addr).await?;
    control_plane.wait_synced("app").await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], service_port));
    let plain =
        eventually(SYNC_TIMEOUT, "the sidecar listener", || http_get(listen, "reviews.local", "/", &[])).await?;
    assert_eq!(plain.body, "v1");
    assert_eq!(http_get(listen, "reviews.local", "/", &[("end-user", "jason")]).await?.body, "v2");
    Ok(())
}
