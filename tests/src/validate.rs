//! Whether a real Envoy accepts a proxy class's resources: each class becomes one static bootstrap that
//! `envoy --mode validate` loads the way Envoy loads configuration at start-up (proto constraints, every extension
//! and cluster constructed) without binding or connecting.
//!
//! ```text
//!   listeners  ── HCM `rds: {route_config_name: N}` ──► `route_config:` the class's RouteConfiguration N, inline
//!   clusters   ── EDS (`eds_cluster_config`)        ──► STATIC, `load_assignment:` the class's ClusterLoadAssignment
//!   clusters   ── anything else (STRICT_DNS, ORIGINAL_DST, …) as they are
//!   admin      ── 127.0.0.1:0
//! ```
//!
//! A class is given in Envoy's JSON shape: `{"listeners": [...], "routes": [...], "clusters": [...],
//! "endpoints": [...]}`, each resource with its `@type`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

pub const HCM_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// Envoy validates a bootstrap in well under a second; the slack is for a loaded 2-core machine.
const VALIDATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Envoys validating at once.
const PARALLEL: usize = 3;

/// One proxy class, as a bootstrap ready to validate; `case` and `class` name it in failures.
pub struct Job {
    pub case: String,
    pub class: String,
    pub bootstrap: Value,
}

/// An xDS resource as a bootstrap field: the same message without the `@type` of its `Any` envelope.
pub fn bare(resource: &Value) -> Result<Value> {
    let mut object = resource.as_object().context("a resource is a JSON object")?.clone();
    object.remove("@type");
    Ok(Value::Object(object))
}

/// Resources of one kind by name (`name`, or `cluster_name` for load assignments).
fn by_name<'a>(proxy: &'a Value, kind: &str, key: &str) -> Result<BTreeMap<&'a str, &'a Value>> {
    let mut named = BTreeMap::new();
    for resource in proxy[kind].as_array().with_context(|| format!("no `{kind}` list"))? {
        let name = resource[key].as_str().with_context(|| format!("a resource of `{kind}` without `{key}`"))?;
        ensure!(named.insert(name, resource).is_none(), "two `{kind}` named {name:?}");
    }
    Ok(named)
}

/// The static bootstrap holding one proxy class's resources (see the module docs). Errors name what does not fit
/// together: an RDS name with no route configuration, an EDS cluster without endpoints, endpoints for no EDS
/// cluster, a route configuration no listener uses.
pub fn static_bootstrap(node_id: &str, proxy: &Value, validate_clusters: bool) -> Result<Value> {
    let routes = by_name(proxy, "routes", "name")?;
    let endpoints = by_name(proxy, "endpoints", "cluster_name")?;
    let mut used_routes = Vec::new();
    let mut listeners = Vec::new();
    for listener in proxy["listeners"].as_array().context("no `listeners` list")? {
        let mut listener = bare(listener)?;
        let name = listener["name"].as_str().unwrap_or("?").to_owned();
        for chain in listener["filter_chains"].as_array_mut().into_iter().flatten() {
            for filter in chain["filters"].as_array_mut().into_iter().flatten() {
                let config = &mut filter["typed_config"];
                if config["@type"] != HCM_TYPE {
                    continue;
                }
                let Some(manager) = config.as_object_mut() else { continue };
                let Some(rds) = manager.remove("rds") else { continue };
                let route_name = rds["route_config_name"].as_str().context("rds without route_config_name")?;
                let route = routes
                    .get(route_name)
                    .with_context(|| format!("listener {name} loads routes {route_name:?}, which the class lacks"))?;
                let mut route = bare(route)?;
                if !validate_clusters {
                    route["validate_clusters"] = json!(false);
                }
                manager.insert("route_config".to_owned(), route);
                used_routes.push(route_name.to_owned());
            }
        }
        listeners.push(listener);
    }
    if let Some(unused) = routes.keys().find(|name| !used_routes.iter().any(|used| used == *name)) {
        bail!("route configuration {unused:?} is used by no listener");
    }
    let mut clusters = Vec::new();
    let mut eds_names = Vec::new();
    for cluster in proxy["clusters"].as_array().context("no `clusters` list")? {
        let mut cluster = bare(cluster)?;
        let name = cluster["name"].as_str().unwrap_or("?").to_owned();
        if let Some(object) = cluster.as_object_mut()
            && object.remove("eds_cluster_config").is_some()
        {
            let assignment =
                endpoints.get(name.as_str()).with_context(|| format!("EDS cluster {name} has no load assignment"))?;
            object.insert("type".to_owned(), json!("STATIC"));
            object.insert("load_assignment".to_owned(), bare(assignment)?);
            eds_names.push(name);
        }
        clusters.push(cluster);
    }
    if let Some(orphan) = endpoints.keys().find(|name| !eds_names.iter().any(|eds| eds == *name)) {
        bail!("load assignment {orphan:?} belongs to no EDS cluster");
    }
    Ok(json!({
        "node": {"id": node_id, "cluster": "golden"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": listeners, "clusters": clusters},
    }))
}

/// What `envoy --mode validate` made of a bootstrap.
pub struct Verdict {
    pub accepted: bool,
    pub output: String,
}

/// Envoys of one machine must not share a base id while hot restart is on; it is off here, the unique id is a
/// precaution only.
fn unique_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    50_000 + (std::process::id() % 1_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

/// Runs `envoy --mode validate` on `bootstrap`, written as JSON (no YAML reader guessing at `on` or `012`).
pub fn validate(envoy: &Path, bootstrap: &Value) -> Result<Verdict> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let config = dir.path().join("bootstrap.json");
    std::fs::write(&config, serde_json::to_vec_pretty(bootstrap)?)
        .with_context(|| format!("writing {}", config.display()))?;
    // Output goes to files: a pipe nobody reads while we wait could fill up and stall Envoy.
    let out_path = dir.path().join("envoy.out");
    let out = std::fs::File::create(&out_path)?;
    let mut child = Command::new(envoy)
        .args(["--mode", "validate", "--disable-hot-restart", "--concurrency", "1", "-l", "warning", "-c"])
        .arg(&config)
        .args(["--base-id", &unique_base_id().to_string()])
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("running {} --mode validate", envoy.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > VALIDATE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("envoy --mode validate did not finish within {VALIDATE_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    Ok(Verdict { accepted: status.success(), output })
}

/// Validates every job, `PARALLEL` at a time; the failures, each with its case, class and Envoy's words.
pub fn validate_all(envoy: &Path, jobs: &[Job]) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                while let Some(job) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let problem = match validate(envoy, &job.bootstrap) {
                        // A deprecated field validates today and breaks on a later Envoy: say so while it is easy.
                        Ok(verdict)
                            if verdict.accepted && verdict.output.to_ascii_lowercase().contains("deprecated") =>
                        {
                            format!(
                                "Envoy accepted it but warned about a deprecated field:\n{}",
                                verdict.output.trim_end()
                            )
                        }
                        Ok(verdict) if verdict.accepted => continue,
                        Ok(verdict) => format!("Envoy refused it:\n{}", verdict.output.trim_end()),
                        Err(err) => format!("{err:#}"),
                    };
                    let failure = format!("{} [{}]: {problem}", job.case, job.class);
                    failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(failure);
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    failures.sort();
    failures
}
