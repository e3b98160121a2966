//! The `pilotfish` command line end to end: `serve` from a directory with a real Envoy, then `wait`, `status`,
//! `/metrics`, `translate`, `analyze` and `explain` as a user runs them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use e2e::{Backend, Envoy, eventually, free_port, http_get, istio};

const PILOTFISH: &str = env!("CARGO_BIN_EXE_pilotfish");
const WAIT: Duration = Duration::from_secs(20);

fn pilotfish(args: &[&str]) -> Output {
    Command::new(PILOTFISH).args(args).output().expect("pilotfish runs")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// `pilotfish serve` as a child process, killed on drop.
struct Serve {
    child: Child,
    xds: SocketAddr,
    admin: SocketAddr,
}

impl Serve {
    fn start(dir: &Path) -> Result<Serve> {
        let xds = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let child = Command::new(PILOTFISH)
            .args(["serve", "--config-dir"])
            .arg(dir)
            .args(["--xds-address", &xds.to_string(), "--admin-address", &admin.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting pilotfish serve")?;
        Ok(Serve { child, xds, admin })
    }

    fn admin(&self) -> String {
        self.admin.to_string()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway_config(port: u16, v1: SocketAddr, v2: SocketAddr, weights: (u32, u32), regex: &str) -> String {
    let routes = format!(
        "  - match: [{{uri: {{regex: \"{regex}\"}}}}, {{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: reviews.local, subset: v2}}}}]
{}",
        istio::weighted_route("reviews.local", &[("v1", weights.0), ("v2", weights.1)])
    );
    istio::documents(&[
        istio::versioned_service("reviews", "default", "reviews.local", 9080, &[("v1", v1), ("v2", v2)]),
        istio::ingress_gateway(port, "127.0.0.1"),
        istio::virtual_service("reviews", "default", &["bookinfo.local"], &["istio-system/gw"], &routes),
    ])
}

async fn gateway_envoy(serve: &Serve) -> Result<Envoy> {
    envoy_for(serve, "ingress", "istio=ingressgateway", false).await
}

/// An Envoy gateway with node id `node` and these labels, on SotW or Delta xDS.
async fn envoy_for(serve: &Serve, node: &str, labels: &str, delta: bool) -> Result<Envoy> {
    let xds = serve.xds.to_string();
    let mut args = vec![
        "bootstrap",
        "--node-id",
        node,
        "--role",
        "gateway",
        "--labels",
        labels,
        "--namespace",
        "istio-system",
        "--xds-address",
        &xds,
        "--admin-port",
        "0",
    ];
    if delta {
        args.push("--delta");
    }
    let bootstrap = pilotfish(&args);
    ensure!(bootstrap.status.success(), "bootstrap: {}", text(&bootstrap));
    let envoy = Envoy::start(node, &String::from_utf8(bootstrap.stdout)?).await?;
    envoy.wait_live(WAIT).await?;
    Ok(envoy)
}

fn wait(serve: &Serve, timeout: &str) -> Output {
    pilotfish(&["wait", "--proxy", "ingress", "--timeout", timeout, "--admin-address", &serve.admin()])
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_wait_status_and_metrics_follow_a_live_directory() -> Result<()> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let port = free_port();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("reviews.yaml");
    std::fs::write(&file, gateway_config(port, v1.addr(), v2.addr(), (100, 0), "/never"))?;
    let serve = Serve::start(dir.path())?;
    eventually(WAIT, "pilotfish ready", || async {
        let ready = http_get(serve.admin, "x", "/readyz", &[]).await?;
        ensure!(ready.status == 200, "readyz {}", ready.status);
        Ok(())
    })
    .await?;
    let _envoy = gateway_envoy(&serve).await?;
    let synced = wait(&serve, "20s");
    assert!(synced.status.success(), "wait: {}", text(&synced));
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(http_get(listen, "bookinfo.local", "/", &[]).await?.body, "v1");

    // Shift everything to v2 by editing the file; `wait` returns once Envoy runs it, so the very next request
    // must already see it.
    std::fs::write(&file, gateway_config(port, v1.addr(), v2.addr(), (0, 100), "/never"))?;
    let synced = wait(&serve, "20s");
    assert!(synced.status.success(), "wait: {}", text(&synced));
    assert_eq!(http_get(listen, "bookinfo.local", "/", &[]).await?.body, "v2");

    let status = pilotfish(&["status", "--admin-address", &serve.admin()]);
    let table = text(&status);
    assert!(status.status.success(), "{table}");
    assert!(table.contains("ingress") && table.contains("gateway/istio-system{istio=ingressgateway}"), "{table}");
    assert_eq!(table.lines().nth(1).map(|l| l.matches("SYNCED").count()), Some(4), "{table}");

    // A regex Envoy rejects: `wait` fails with Envoy's message, `status` says NACKED, traffic stays.
    std::fs::write(&file, gateway_config(port, v1.addr(), v2.addr(), (0, 100), "/x[z-a]"))?;
    let rejected = wait(&serve, "20s");
    assert!(!rejected.status.success());
    assert!(
        text(&rejected).contains("rejected the latest RDS config")
            && text(&rejected).contains("invalid character class range"),
        "{}",
        text(&rejected)
    );
    let table = text(&pilotfish(&["status", "--admin-address", &serve.admin()]));
    assert!(table.contains("NACKED") && table.contains("ingress RDS NACKED: invalid character class range"), "{table}");
    assert_eq!(http_get(listen, "bookinfo.local", "/", &[]).await?.body, "v2");

    // Metrics moved.
    let metrics = http_get(serve.admin, "x", "/metrics", &[]).await?.body;
    for family in [
        "pilotfish_xds_pushes_total{xds_type=\"RDS\"}",
        "pilotfish_xds_nacks_total{xds_type=\"RDS\"} 1",
        "pilotfish_xds_connected_proxies{class=\"gateway/istio-system{istio=ingressgateway}\"} 1",
        "pilotfish_convergence_seconds_count",
        "pilotfish_translation_seconds_count",
    ] {
        assert!(metrics.contains(family), "{family} missing from /metrics:\n{metrics}");
    }
    // The debug views: what the proxy runs, as Envoy's admin ConfigDump, and what was read.
    let dump: serde_json::Value =
        serde_json::from_str(&http_get(serve.admin, "x", "/debug/config_dump?proxy=ingress", &[]).await?.body)?;
    let config =
        |dump_type: &str| dump["configs"].as_array().and_then(|c| c.iter().find(|c| c["@type"] == dump_type)).cloned();
    let routes = config("type.googleapis.com/envoy.admin.v3.RoutesConfigDump").unwrap_or_default();
    let route = &routes["dynamic_route_configs"][0]["route_config"];
    assert_eq!(route["@type"], "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
    assert_eq!(route["name"], format!("http.{port}.127.0.0.1"));
    let listeners = config("type.googleapis.com/envoy.admin.v3.ListenersConfigDump").unwrap_or_default();
    assert_eq!(listeners["dynamic_listeners"][0]["active_state"]["listener"]["name"], format!("127.0.0.1_{port}"));
    assert_eq!(http_get(serve.admin, "x", "/debug/config_dump?proxy=nobody", &[]).await?.status, 404);
    let inputs: serde_json::Value =
        serde_json::from_str(&http_get(serve.admin, "x", "/debug/inputs", &[]).await?.body)?;
    assert_eq!(inputs["objects"].as_array().map(Vec::len), Some(4), "{inputs}");
    assert_eq!(http_get(serve.admin, "x", "/healthz", &[]).await?.status, 200);

    // A wait with nothing to wait for times out, non-zero.
    let nobody = pilotfish(&["wait", "--proxy", "nobody", "--timeout", "300ms", "--admin-address", &serve.admin()]);
    assert!(!nobody.status.success() && text(&nobody).contains("timed out"), "{}", text(&nobody));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_agrees_with_where_envoy_sends_requests() -> Result<()> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let port = free_port();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("reviews.yaml"), gateway_config(port, v1.addr(), v2.addr(), (100, 0), "/v2/.*"))?;
    let serve = Serve::start(dir.path())?;
    let _envoy = gateway_envoy(&serve).await?;
    let synced = wait(&serve, "20s");
    assert!(synced.status.success(), "wait: {}", text(&synced));
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let cases: [(&str, &[&str]); 3] = [("/productpage", &[]), ("/v2/x", &[]), ("/productpage", &["end-user: jason"])];
    for (path, headers) in cases {
        let url = format!("GET http://bookinfo.local:{port}{path}");
        let mut args = vec!["explain", "-f", dir.path().to_str().context("utf-8 path")?, &url, "-o", "json"];
        for header in headers {
            args.extend(["-H", header]);
        }
        let explained = pilotfish(&args);
        assert!(explained.status.success(), "{}", text(&explained));
        let json: serde_json::Value = serde_json::from_slice(&explained.stdout)?;
        let cluster = json["outcome"]["clusters"][0][0].as_str().unwrap_or_default().to_owned();
        let pairs: Vec<(String, String)> =
            headers.iter().filter_map(|h| h.split_once(": ")).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let header_refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let actual = http_get(listen, "bookinfo.local", path, &header_refs).await?.body;
        assert_eq!(cluster, format!("outbound|9080|{actual}|reviews.local"), "{path} {headers:?}: {json}");
    }
    Ok(())
}

#[test]
fn translate_and_analyze_work_offline_with_exit_codes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, gateway_config(8080, "127.0.0.1:1".parse()?, "127.0.0.1:2".parse()?, (50, 50), "/x"))?;
    let translated = pilotfish(&["translate", "-f", good.to_str().context("utf-8")?, "-o", "json"]);
    assert!(translated.status.success(), "{}", text(&translated));
    let json: serde_json::Value = serde_json::from_slice(&translated.stdout)?;
    assert_eq!(json["listeners"][0]["name"], "127.0.0.1_8080");
    assert_eq!(json["routes"][0]["name"], "http.8080.127.0.0.1");
    let clean = pilotfish(&["analyze", "-f", good.to_str().context("utf-8")?]);
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));

    let warned = dir.path().join("warned.yaml");
    std::fs::write(
        &warned,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: nothing}\nspec: {host: nowhere.local}\n",
    )?;
    let lenient = pilotfish(&["analyze", "-f", warned.to_str().context("utf-8")?]);
    assert_eq!(lenient.status.code(), Some(0), "{}", text(&lenient));
    assert!(text(&lenient).contains("IST0174"), "{}", text(&lenient));
    let strict = pilotfish(&["analyze", "-f", warned.to_str().context("utf-8")?, "--strict"]);
    assert_eq!(strict.status.code(), Some(1));
    // istioctl's --failure-threshold: Warning is --strict; Error (the default) lets warnings pass.
    let threshold = |level: &str| {
        pilotfish(&["analyze", "-f", warned.to_str().unwrap_or_default(), "--failure-threshold", level]).status.code()
    };
    assert_eq!((threshold("Warning"), threshold("error"), threshold("Info")), (Some(1), Some(0), Some(1)));
    assert_eq!(threshold("fatal"), Some(2), "an unknown level is a usage error");

    // -o text: the proxy-config tables instead of YAML.
    let summary = pilotfish(&["translate", "-f", good.to_str().context("utf-8")?, "-o", "text"]);
    assert!(summary.status.success(), "{}", text(&summary));
    let summary = String::from_utf8(summary.stdout)?;
    for expected in [
        "class: gateway/istio-system{istio=ingressgateway}",
        "ADDRESSES PORT MATCH DESTINATION",
        "127.0.0.1 8080 ALL   Route: http.8080.127.0.0.1",
        "reviews.default",
        "reviews.local     9080     v2         outbound      EDS",
        "127.0.0.1:2     HEALTHY     outbound|9080|v2|reviews.local",
    ] {
        assert!(summary.contains(expected), "{expected:?} missing from:\n{summary}");
    }
    assert!(!summary.contains("@type"), "{summary}");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  gateways: [missing]\n  http: [{route: [{destination: {host: r}}]}]\n",
    )?;
    let failed = pilotfish(&["analyze", "-f", bad.to_str().context("utf-8")?, "-o", "json"]);
    assert_eq!(failed.status.code(), Some(2), "{}", text(&failed));
    let json: serde_json::Value = serde_json::from_slice(&failed.stdout)?;
    assert!(json["diagnostics"].as_array().is_some_and(|d| d.iter().any(|d| d["code"] == "IST0101")), "{json}");
    Ok(())
}

#[test]
fn every_verb_has_help_with_an_example_and_errors_are_one_line() {
    let verbs = [
        "serve",
        "bootstrap",
        "translate",
        "analyze",
        "status",
        "explain",
        "wait",
        "crds",
        "inject",
        "proxy-config",
        "proxy-config cluster",
        "proxy-config listener",
        "proxy-config route",
        "proxy-config endpoint",
        "proxy-config secret",
        "proxy-config all",
        "proxy-status",
    ];
    for verb in verbs {
        let mut args: Vec<&str> = verb.split(' ').collect();
        args.push("--help");
        let help = pilotfish(&args);
        assert!(help.status.success(), "{verb} --help");
        assert!(text(&help).contains("Example"), "{verb} --help has no example:\n{}", text(&help));
    }
    let missing = pilotfish(&["translate", "-f", "/no/such/path"]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/no/such/path"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn traffic_follows_edits_renames_and_deletes_of_the_config_directory() -> Result<()> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let port = free_port();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("reviews.yaml");
    let config = |weights| gateway_config(port, v1.addr(), v2.addr(), weights, "/never");
    std::fs::write(&file, config((100, 0)))?;
    let serve = Serve::start(dir.path())?;
    let _envoy = gateway_envoy(&serve).await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let shares = || async {
        let counts = e2e::count_backends(listen, "bookinfo.local", "/", &[], 100).await;
        (counts.get("v1").copied().unwrap_or(0), counts.get("v2").copied().unwrap_or(0))
    };
    let synced = |serve: &Serve| {
        let output = wait(serve, "20s");
        assert!(output.status.success(), "wait: {}", text(&output));
    };
    synced(&serve);
    assert_eq!(shares().await, (100, 0));

    std::fs::write(&file, config((50, 50)))?;
    synced(&serve);
    let (a, b) = shares().await;
    assert!(a + b == 100 && a > 20 && b > 20, "about even: {a}/{b}");

    // An editor's save: write a temporary file, rename it over the original.
    let temporary = dir.path().join(".reviews.yaml.swp");
    std::fs::write(&temporary, config((0, 100)))?;
    std::fs::rename(&temporary, &file)?;
    synced(&serve);
    assert_eq!(shares().await, (0, 100));

    // Half-written YAML: the last good version stays served; `wait` says the configuration has errors (exit 3),
    // and so does /debug/inputs, with the line.
    std::fs::write(&file, format!("{}\n  - broken: [\n", config((100, 0))))?;
    let with_errors = wait(&serve, "20s");
    assert_eq!(with_errors.status.code(), Some(3), "wait: {}", text(&with_errors));
    assert!(text(&with_errors).contains("failed to parse YAML at line"), "{}", text(&with_errors));
    assert_eq!(shares().await, (0, 100));
    let inputs = http_get(serve.admin, "x", "/debug/inputs", &[]).await?.body;
    assert!(inputs.contains("serving its last complete version"), "{inputs}");

    // Renaming the file changes nothing that is served.
    std::fs::write(&file, config((0, 100)))?;
    std::fs::rename(&file, dir.path().join("renamed.yaml"))?;
    synced(&serve);
    assert_eq!(shares().await, (0, 100));

    // Deleting it removes the gateway's routes: Envoy drops the listener.
    std::fs::remove_file(dir.path().join("renamed.yaml"))?;
    synced(&serve);
    eventually(WAIT, "the listener gone", || async {
        ensure!(http_get(listen, "bookinfo.local", "/", &[]).await.is_err(), "still listening");
        Ok(())
    })
    .await?;
    Ok(())
}

/// The Envoy `ConfigDump` message, read from JSON with Envoy's own descriptors as a tool that reads Envoy dumps
/// would: an unknown field or a wrong shape fails.
fn decode_config_dump(json: &serde_json::Value) -> Result<prost_reflect::DynamicMessage> {
    let descriptor = api_protos::reflect::pool()
        .get_message_by_name("envoy.admin.v3.ConfigDump")
        .context("the descriptors have envoy.admin.v3.ConfigDump")?;
    Ok(prost_reflect::DynamicMessage::deserialize(descriptor, json)?)
}

/// The dynamic clusters, listeners and routes of a config dump: name → (version_info, canonical encoding).
fn dynamic_resources(dump: &serde_json::Value) -> Result<std::collections::BTreeMap<String, (String, Vec<u8>)>> {
    let mut out = std::collections::BTreeMap::new();
    for config in dump["configs"].as_array().into_iter().flatten() {
        for (list, field) in [
            ("dynamic_active_clusters", "cluster"),
            ("dynamic_listeners", "listener"),
            ("dynamic_route_configs", "route_config"),
        ] {
            for entry in config[list].as_array().into_iter().flatten() {
                let (state, resource) = match field {
                    "listener" => (&entry["active_state"], &entry["active_state"]["listener"]),
                    _ => (entry, &entry[field]),
                };
                let any = api_protos::reflect::from_json(resource)?;
                let name = format!("{field}/{}", resource["name"].as_str().unwrap_or_default());
                out.insert(name, (state["version_info"].as_str().unwrap_or_default().to_owned(), any.value));
            }
        }
    }
    Ok(out)
}

/// A type's `version_info` in a config dump.
fn type_version(dump: &serde_json::Value, dump_type: &str) -> Option<String> {
    let config = dump["configs"].as_array()?.iter().find(|c| c["@type"] == dump_type)?;
    config["version_info"].as_str().map(str::to_owned)
}

const DELTA_GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw-delta, namespace: istio-system}
spec:
  selector: {istio: delta}
  servers: [{port: {number: PORT, name: http, protocol: HTTP}, bind: 127.0.0.1, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-delta}
spec:
  hosts: [bookinfo.local]
  gateways: [istio-system/gw-delta]
  http: [{route: [{destination: {host: reviews.local, subset: v2}}]}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn proxy_config_prints_what_envoy_runs_as_envoy_s_own_dump_has_it() -> Result<()> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let (port, delta_port) = (free_port(), free_port());
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("reviews.yaml"), gateway_config(port, v1.addr(), v2.addr(), (100, 0), "/never"))?;
    std::fs::write(dir.path().join("delta.yaml"), DELTA_GATEWAY.replace("PORT", &delta_port.to_string()))?;
    let serve = Serve::start(dir.path())?;
    // Envoy's dumps go elsewhere: pilotfish reads every file of its directory.
    let dumps = tempfile::tempdir()?;
    let sotw = gateway_envoy(&serve).await?;
    let delta = envoy_for(&serve, "ingress-delta", "istio=delta", true).await?;
    let synced = pilotfish(&["wait", "--all", "--timeout", "20s", "--admin-address", &serve.admin()]);
    assert!(synced.status.success(), "wait: {}", text(&synced));
    let admin = serve.admin();
    let pc = |args: &[&str]| {
        let mut all = vec!["proxy-config"];
        all.extend_from_slice(args);
        all.extend(["--admin-address", &admin]);
        let output = pilotfish(&all);
        assert!(output.status.success(), "proxy-config {args:?}: {}", text(&output));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    // The tables, with istioctl's columns and filters.
    let clusters = pc(&["cluster", "ingress"]);
    assert!(clusters.starts_with("SERVICE FQDN      PORT     SUBSET     DIRECTION     TYPE     DESTINATION RULE\n"));
    assert!(clusters.contains("reviews.local     9080     v2         outbound      EDS"), "{clusters}");
    assert_eq!(pc(&["cluster", "ingress", "--subset", "v2"]).lines().count(), 2);
    assert_eq!(pc(&["cluster", "ingress", "--port", "9999"]).lines().count(), 1, "only the header");
    let listeners = pc(&["listener", "ingress"]);
    assert!(listeners.contains(&format!("127.0.0.1 {port} ALL   Route: http.{port}.127.0.0.1")), "{listeners}");
    let routes = pc(&["route", "ingress", "--name", &format!("http.{port}.127.0.0.1")]);
    assert!(routes.contains("reviews.default") && routes.contains("end-user=jason"), "{routes}");
    let endpoints = pc(&["endpoint", "ingress", "--cluster", "outbound|9080|v2|reviews.local"]);
    assert_eq!(
        endpoints.lines().nth(1).map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec![&*v2.addr().to_string(), "HEALTHY", "outbound|9080|v2|reviews.local"]),
        "{endpoints}"
    );
    assert!(pc(&["secret", "ingress"]).contains("no secrets"));
    let nobody = pilotfish(&["proxy-config", "cluster", "nobody", "--admin-address", &admin]);
    assert!(
        !nobody.status.success() && text(&nobody).contains("connected: ingress, ingress-delta"),
        "{}",
        text(&nobody)
    );

    for (envoy, node) in [(&sotw, "ingress"), (&delta, "ingress-delta")] {
        // -o json is Envoy's ConfigDump: Envoy's descriptors read it, field for field.
        let ours: serde_json::Value = serde_json::from_str(&pc(&["all", node, "-o", "json"]))?;
        let decoded = decode_config_dump(&ours).with_context(|| format!("{node}: {ours}"))?;
        assert_eq!(decoded.get_field_by_name("configs").map(|c| c.as_list().map_or(0, <[_]>::len)), Some(4));
        let envoys: serde_json::Value = serde_json::from_str(&envoy.get_admin("/config_dump?include_eds").await?)?;
        decode_config_dump(&envoys).with_context(|| format!("Envoy's own dump of {node}"))?;

        // What pilotfish says the proxy runs is what Envoy says it runs: the same resources, byte for byte;
        // the same version of each type; with Delta, the same version of each resource.
        let (mine, theirs) = (dynamic_resources(&ours)?, dynamic_resources(&envoys)?);
        for kind in ["cluster/", "listener/", "route_config/"] {
            assert!(mine.keys().any(|name| name.starts_with(kind)), "{node}: no {kind} in {ours}");
        }
        assert!(mine.values().all(|(version, _)| !version.is_empty()), "{node}: {ours}");
        let bodies = |set: &std::collections::BTreeMap<String, (String, Vec<u8>)>| {
            set.iter().map(|(name, (_, body))| (name.clone(), body.clone())).collect::<Vec<_>>()
        };
        assert_eq!(bodies(&mine), bodies(&theirs), "{node}: pilotfish's dump and Envoy's differ");
        if node == "ingress-delta" {
            let versions = |set: &std::collections::BTreeMap<String, (String, Vec<u8>)>| {
                set.iter().map(|(name, (version, _))| (name.clone(), version.clone())).collect::<Vec<_>>()
            };
            assert_eq!(versions(&mine), versions(&theirs), "{node}: resource versions");
        }
        for dump_type in ["ClustersConfigDump", "ListenersConfigDump"] {
            let dump_type = format!("type.googleapis.com/envoy.admin.v3.{dump_type}");
            assert_eq!(type_version(&ours, &dump_type), type_version(&envoys, &dump_type), "{node} {dump_type}");
        }

        // Envoy's own dump, read with --file, gives the same tables (its static resources, from the bootstrap,
        // left out: pilotfish did not send them).
        let mut dynamic_only = envoys.clone();
        for config in dynamic_only["configs"].as_array_mut().into_iter().flatten() {
            if let Some(fields) = config.as_object_mut() {
                fields.retain(|key, _| !key.starts_with("static_"));
            }
        }
        let file = dumps.path().join(format!("{node}-envoy.json"));
        std::fs::write(&file, dynamic_only.to_string())?;
        for kind in ["cluster", "listener", "route", "endpoint"] {
            let from_file = pilotfish(&["proxy-config", kind, "--file", file.to_str().context("utf-8")?]);
            assert!(from_file.status.success(), "{}", text(&from_file));
            assert_eq!(String::from_utf8_lossy(&from_file.stdout), pc(&[kind, node]), "{node} {kind}");
        }
    }

    // A filtered -o json keeps only what the filter chose, still a ConfigDump.
    let v2_only: serde_json::Value = serde_json::from_str(&pc(&[
        "endpoint",
        "ingress",
        "--address",
        &v2.addr().ip().to_string(),
        "--port",
        &v2.addr().port().to_string(),
        "-o",
        "json",
    ]))?;
    decode_config_dump(&v2_only)?;
    let assignments = v2_only["configs"][0]["dynamic_endpoint_configs"].as_array().cloned().unwrap_or_default();
    assert!(
        !assignments.is_empty()
            && assignments
                .iter()
                .all(|a| a["endpoint_config"]["endpoints"][0]["lb_endpoints"].as_array().map(Vec::len) == Some(1)),
        "{v2_only}"
    );

    // The admin index lists every path, and every path it lists answers.
    let index = http_get(serve.admin, "x", "/", &[]).await?;
    assert!(index.body.contains("connected proxies: ingress, ingress-delta"), "{}", index.body);
    for (path, _) in controlplane::admin::ENDPOINTS {
        assert!(index.body.contains(path), "{path} missing from the index:\n{}", index.body);
        let concrete = path
            .replace("ID", "ingress")
            .replace("http://HOST/PATH", &format!("http://bookinfo.local:{port}/"))
            .replace("NAME:VALUE", "end-user:jason");
        let reply = http_get(serve.admin, "x", &concrete, &[]).await?;
        assert_eq!(reply.status, 200, "{concrete}: {}", reply.body);
    }
    let html = http_get(serve.admin, "x", "/", &[("accept", "text/html,application/xhtml+xml")]).await?;
    assert!(html.body.contains("<a href=\"/debug/syncz\">") && html.body.contains("config_dump?proxy=ingress-delta"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_status_explain_and_wait_for_follow_a_live_proxy() -> Result<()> {
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let port = free_port();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("reviews.yaml");
    std::fs::write(&file, gateway_config(port, v1.addr(), v2.addr(), (100, 0), "/never"))?;
    let serve = Serve::start(dir.path())?;
    let _envoy = gateway_envoy(&serve).await?;
    let admin = serve.admin();
    let synced = wait(&serve, "20s");
    assert!(synced.status.success(), "wait: {}", text(&synced));
    let listen = SocketAddr::from(([127, 0, 0, 1], port));

    // proxy-status: without a proxy, the status table; with one, every type matches.
    let table = pilotfish(&["proxy-status", "--admin-address", &admin]);
    assert_eq!(text(&table), text(&pilotfish(&["status", "--admin-address", &admin])));
    let matching = pilotfish(&["proxy-status", "ingress", "--admin-address", &admin]);
    assert_eq!(matching.status.code(), Some(0), "{}", text(&matching));
    assert_eq!(
        String::from_utf8_lossy(&matching.stdout),
        "Clusters Match (CDS SYNCED)\nListeners Match (LDS SYNCED)\nRoutes Match (RDS SYNCED)\nEndpoints Match (EDS SYNCED)\n"
    );

    // explain --proxy walks the request through what Envoy runs, and agrees with where Envoy sends it.
    for (path, headers) in [("/productpage", vec![]), ("/productpage", vec!["end-user: jason"])] {
        let url = format!("GET http://bookinfo.local:{port}{path}");
        let mut args = vec!["explain", "--proxy", "ingress", "--admin-address", &admin, &url, "-o", "json"];
        for header in &headers {
            args.extend(["-H", header]);
        }
        let explained = pilotfish(&args);
        assert!(explained.status.success(), "{}", text(&explained));
        let json: serde_json::Value = serde_json::from_slice(&explained.stdout)?;
        assert_eq!(json["synced"], true, "{json}");
        let pairs: Vec<(&str, &str)> = headers.iter().filter_map(|h| h.split_once(": ")).collect();
        let actual = http_get(listen, "bookinfo.local", path, &pairs).await?.body;
        assert_eq!(json["outcome"]["clusters"][0][0], format!("outbound|9080|{actual}|reviews.local"), "{json}");
    }
    let missing =
        pilotfish(&["explain", "--proxy", "ingress", "--admin-address", &admin, &format!("http://x:{}/", free_port())]);
    assert_eq!(missing.status.code(), Some(1), "no listener there: {}", text(&missing));

    // wait --for: an object not served yet is waited for; once written, wait returns when Envoy runs it.
    let extra = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: extra}\nspec: {host: reviews.local, subsets: [{name: v2, labels: {version: v2}}]}\n";
    let absent = pilotfish(&["wait", "--for", "dr/extra.default", "--timeout", "300ms", "--admin-address", &admin]);
    assert!(
        !absent.status.success()
            && text(&absent).contains("DestinationRule default/extra is not in the configuration served"),
        "{}",
        text(&absent)
    );
    std::fs::write(dir.path().join("extra.yaml"), extra)?;
    let present = pilotfish(&["wait", "--for", "destinationrule/extra", "--timeout", "20s", "--admin-address", &admin]);
    assert_eq!(present.status.code(), Some(0), "{}", text(&present));
    let inputs = http_get(serve.admin, "x", "/debug/inputs", &[]).await?.body;
    assert!(inputs.contains("\"name\":\"extra\""), "wait --for returned before the object was read: {inputs}");
    let unknown_kind = pilotfish(&["wait", "--for", "virtualservise/reviews", "--admin-address", &admin]);
    assert_eq!(unknown_kind.status.code(), Some(2), "{}", text(&unknown_kind));

    // A route Envoy rejects: proxy-status shows what it refused as a diff, explain says the proxy is behind.
    std::fs::write(&file, gateway_config(port, v1.addr(), v2.addr(), (100, 0), "/x[z-a]"))?;
    let rejected = wait(&serve, "20s");
    assert_eq!(rejected.status.code(), Some(2), "{}", text(&rejected));
    let differs = pilotfish(&["proxy-status", "ingress", "--admin-address", &admin]);
    let report = String::from_utf8_lossy(&differs.stdout).into_owned();
    assert_eq!(differs.status.code(), Some(1), "{report}");
    assert!(report.contains("Clusters Match (CDS SYNCED)\nListeners Match (LDS SYNCED)\n"), "{report}");
    assert!(report.contains("Routes Don't Match (RDS NACKED: invalid character class range"), "{report}");
    assert!(report.contains("--- pilotfish Routes\n+++ ingress Routes\n"), "{report}");
    assert!(report.lines().any(|l| l.starts_with('-') && l.contains("/x[z-a]")), "{report}");
    assert!(report.lines().any(|l| l.starts_with('+') && l.contains("/never")), "{report}");
    let behind = pilotfish(&[
        "explain",
        "--proxy",
        "ingress",
        "--admin-address",
        &admin,
        &format!("GET http://bookinfo.local:{port}/"),
    ]);
    assert!(behind.status.success(), "{}", text(&behind));
    assert!(
        text(&behind).contains("note: ingress does not run the latest configuration (RDS NACKED)"),
        "{}",
        text(&behind)
    );
    assert_eq!(http_get(listen, "bookinfo.local", "/", &[]).await?.body, "v1", "Envoy kept what it had");
    Ok(())
}
