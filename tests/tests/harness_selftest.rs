//! Checks the harness itself against a real Envoy, without a control plane:
//! if these fail, the end-to-end tests' failures say nothing about pilotfish.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::{Backend, Behaviour, Envoy, count_backends, eventually, free_port, http_get};

/// A bootstrap with one listener routing everything to one STATIC cluster.
fn static_bootstrap(listener_port: u16, cluster: &str, backend: &Backend) -> String {
    let backend_port = backend.port();
    format!(
        r#"
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: selftest_listener
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listener_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: selftest
          route_config:
            name: selftest_routes
            virtual_hosts:
            - name: everything
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                route: {{cluster: {cluster}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: {cluster}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {cluster}
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {backend_port}}}}}}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_through_a_static_envoy() -> Result<()> {
    let backend = Backend::start("alpha").await?;
    let port = free_port();
    let envoy = Envoy::start("static", &static_bootstrap(port, "alpha_cluster", &backend)).await?;
    envoy.wait_live(Duration::from_secs(10)).await?;
    let listener = ([127, 0, 0, 1], port).into();

    // LIVE can come a moment before the worker accepts on the listener.
    let reply = eventually(Duration::from_secs(10), "a 200 through envoy", || async {
        let reply = http_get(listener, "selftest.local", "/hello?x=1", &[("x-test", "yes")]).await?;
        ensure!(reply.status == 200, "status {}: {}", reply.status, reply.body);
        Ok(reply)
    })
    .await?;
    assert_eq!(reply.body, "alpha");
    assert_eq!(reply.header("x-backend"), Some("alpha"));

    let seen = backend.requests();
    let request = seen.last().context("the backend saw no request")?;
    assert_eq!(request.method, "GET");
    assert_eq!(request.path, "/hello?x=1");
    assert_eq!(request.header("x-test"), Some("yes"));
    assert_eq!(request.header("host"), Some("selftest.local"));
    // Proof that it came through Envoy rather than straight to us.
    assert!(request.header("x-request-id").is_some(), "{request:?}");

    let dump = envoy.config_dump().await?.to_string();
    assert!(dump.contains("selftest_listener"), "listener missing from config_dump");

    let total = envoy.stat("cluster.alpha_cluster.upstream_rq_total").await?;
    assert!(total >= Some(1), "upstream_rq_total = {total:?}");
    assert_eq!(envoy.stat("cluster.alpha_cluster.no_such_stat").await?, None);

    // The log file is flushed on a timer, so it lags a little.
    eventually(Duration::from_secs(5), "envoy's log to show start-up", || async {
        let tail = envoy.log_tail(200);
        ensure!(tail.contains("starting main dispatch loop"), "log so far:\n{tail}");
        Ok(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_replies_by_backend_and_status() -> Result<()> {
    let backend = Backend::start("beta").await?;
    let port = free_port();
    let envoy = Envoy::start("counting", &static_bootstrap(port, "beta_cluster", &backend)).await?;
    envoy.wait_live(Duration::from_secs(10)).await?;
    let listener = ([127, 0, 0, 1], port).into();
    eventually(Duration::from_secs(10), "the listener to accept", || async { http_get(listener, "x", "/", &[]).await })
        .await?;

    let counts = count_backends(listener, "x", "/", &[], 5).await;
    assert_eq!(counts.get("beta"), Some(&5), "{counts:?}");

    backend.set_behaviour(Behaviour::status(503))?;
    let counts = count_backends(listener, "x", "/", &[], 3).await;
    assert_eq!(counts.get("status:503"), Some(&3), "{counts:?}");

    // Nothing listens on the backend any more: Envoy answers 503 itself.
    drop(backend);
    let counts = count_backends(listener, "x", "/", &[], 2).await;
    assert_eq!(counts.get("status:503"), Some(&2), "{counts:?}");

    envoy.stop();
    assert!(!envoy.is_running());
    let counts = count_backends(listener, "x", "/", &[], 1).await;
    assert_eq!(counts.get("error"), Some(&1), "{counts:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_bootstrap_fails_fast_with_envoys_reason() -> Result<()> {
    let bootstrap = r#"
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  clusters:
  - name: broken
    no_such_field: 1
"#;
    let started = std::time::Instant::now();
    let error = match Envoy::start("broken", bootstrap).await {
        Ok(_) => panic!("envoy accepted a bootstrap with an unknown field"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("no_such_field"), "{error}");
    assert!(error.contains("exited"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventually_reports_what_it_waited_for() {
    let error = eventually::<(), _, _>(Duration::from_millis(100), "the impossible", || async {
        anyhow::bail!("still impossible")
    })
    .await
    .expect_err("cannot succeed");
    let message = format!("{error:#}");
    assert!(message.contains("the impossible"), "{message}");
    assert!(message.contains("still impossible"), "{message}");
}
