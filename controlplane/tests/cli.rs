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
    let bootstrap = pilotfish(&[
        "bootstrap",
        "--node-id",
        "ingress",
        "--role",
        "gateway",
        "--labels",
        "istio=ingressgateway",
        "--namespace",
        "istio-system",
        "--xds-address",
        &serve.xds.to_string(),
        "--admin-port",
        "0",
    ]);
    ensure!(bootstrap.status.success(), "bootstrap: {}", text(&bootstrap));
    let envoy = Envoy::start("ingress", &String::from_utf8(bootstrap.stdout)?).await?;
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
    // The debug views: what the proxy runs, in Envoy's shape, and what was read.
    let dump: serde_json::Value =
        serde_json::from_str(&http_get(serve.admin, "x", "/debug/config_dump?proxy=ingress", &[]).await?.body)?;
    assert_eq!(dump["routes"][0]["resource"]["@type"], "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
    assert_eq!(dump["routes"][0]["name"], format!("http.{port}.127.0.0.1"));
    assert_eq!(dump["listeners"][0]["resource"]["name"], format!("127.0.0.1_{port}"));
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
    for verb in ["serve", "bootstrap", "translate", "analyze", "status", "explain", "wait", "crds", "inject"] {
        let help = pilotfish(&[verb, "--help"]);
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
