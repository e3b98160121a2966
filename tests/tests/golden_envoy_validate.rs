//! Every golden translation output, checked by a real Envoy.
//!
//! The golden tests (`translator/tests/golden.rs`) pin what the translator emits; this test asks the pinned Envoy
//! whether it would accept it. For each `translator/testdata/*.out.yaml` and each proxy class in it, the class's
//! resources become one static bootstrap:
//!
//! ```text
//!   listeners  ── HCM `rds: {route_config_name: N}` ──► `route_config:` the class's RouteConfiguration N, inline
//!   clusters   ── EDS (`eds_cluster_config`)        ──► STATIC, `load_assignment:` the class's ClusterLoadAssignment
//!   clusters   ── anything else (STRICT_DNS, ORIGINAL_DST, …) as they are
//!   admin      ── 127.0.0.1:0
//! ```
//!
//! and `envoy --mode validate` loads it the way Envoy loads configuration at start-up (proto constraints, every
//! extension and cluster constructed) without binding or connecting. One Envoy per class, a few at a time. A warning
//! about a deprecated field fails the test too: it validates today and breaks on a later Envoy.
//!
//! Static route tables default to `validate_clusters: true`, so Envoy also checks that every route names a cluster
//! of the class. Cases whose diagnostics report a missing destination (IST0101) are exempt: like istiod, pilotfish
//! then routes to a cluster that does not exist (503 at run time), which RDS (`validate_clusters` false by default)
//! accepts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, ensure};
use e2e::validate::{HCM_TYPE, Job, static_bootstrap, validate, validate_all};
use serde_json::{Value, json};

// === Golden outputs ===

fn testdata() -> PathBuf {
    e2e::workspace_root().join("translator").join("testdata")
}

/// Every `*.out.yaml` of the golden tests, by case name.
fn golden_outputs() -> Result<BTreeMap<String, Value>> {
    let mut outputs = BTreeMap::new();
    let dir = testdata();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(case) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".out.yaml")) else {
            continue;
        };
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        outputs.insert(case.to_owned(), value);
    }
    Ok(outputs)
}

/// Whether a case reports a destination that does not exist, so that its routes may name missing clusters.
fn names_missing_destinations(output: &Value) -> bool {
    output["diagnostics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|d| d.contains("[IST0101]") && d.contains("destination"))
}

fn jobs(outputs: &BTreeMap<String, Value>) -> Result<Vec<Job>> {
    let mut jobs = Vec::new();
    for (case, output) in outputs {
        let validate_clusters = !names_missing_destinations(output);
        let proxies = output["proxies"].as_array().with_context(|| format!("{case}: no `proxies` list"))?;
        for proxy in proxies {
            let class = proxy["class"].as_str().unwrap_or("?").to_owned();
            let bootstrap = static_bootstrap(&format!("golden-{case}"), proxy, validate_clusters)
                .with_context(|| format!("{case} [{class}]: building the bootstrap"))?;
            jobs.push(Job { case: case.clone(), class, bootstrap });
        }
    }
    Ok(jobs)
}

// === Tests ===

#[test]
fn envoy_accepts_every_golden_output() -> Result<()> {
    // Without Envoy this fails (with how to get one); it never skips.
    let envoy = e2e::envoy_binary()?;
    let outputs = golden_outputs()?;
    ensure!(outputs.len() >= 60, "expected the golden cases in {}, found {}", testdata().display(), outputs.len());
    let jobs = jobs(&outputs)?;
    let failures = validate_all(&envoy, &jobs);
    assert!(
        failures.is_empty(),
        "envoy --mode validate refused {} of {} golden proxy classes:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
    Ok(())
}

/// A class in the golden shape: one listener loading routes `80` over RDS, one EDS cluster and its endpoints, one
/// DNS cluster.
fn sample_class() -> Value {
    json!({
        "class": "sidecar/default",
        "listeners": [{
            "@type": "type.googleapis.com/envoy.config.listener.v3.Listener",
            "name": "0.0.0.0_80",
            "address": {"socket_address": {"address": "0.0.0.0", "port_value": 80}},
            "bind_to_port": false,
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": HCM_TYPE,
                    "stat_prefix": "outbound_0.0.0.0_80",
                    "rds": {"config_source": {"ads": {}, "resource_api_version": "V3"}, "route_config_name": "80"},
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                    }],
                },
            }]}],
        }],
        "routes": [{
            "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            "name": "80",
            "virtual_hosts": [{
                "name": "web:80",
                "domains": ["web"],
                "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "outbound|80||web"}}],
            }],
        }],
        "clusters": [
            {
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": "outbound|80||web",
                "type": "EDS",
                "connect_timeout": "10s",
                "eds_cluster_config": {"eds_config": {"ads": {}, "resource_api_version": "V3"},
                                       "service_name": "outbound|80||web"},
            },
            {
                "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": "outbound|80||ext",
                "type": "STRICT_DNS",
                "load_assignment": {"cluster_name": "outbound|80||ext", "endpoints": [{"lb_endpoints": [
                    {"endpoint": {"address": {"socket_address": {"address": "ext.example", "port_value": 80}}}},
                ]}]},
            },
        ],
        "endpoints": [{
            "@type": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
            "cluster_name": "outbound|80||web",
            "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 8080}}}},
            ]}],
        }],
    })
}

#[test]
fn conversion_inlines_routes_and_turns_eds_into_static() -> Result<()> {
    let bootstrap = static_bootstrap("n", &sample_class(), true)?;
    let listener = &bootstrap["static_resources"]["listeners"][0];
    assert!(listener.get("@type").is_none(), "bootstrap listeners are messages, not Any: {listener:#}");
    let manager = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert!(manager.get("rds").is_none(), "{manager:#}");
    assert_eq!(manager["route_config"]["name"], "80");
    assert!(manager["route_config"].get("@type").is_none());
    assert!(manager["route_config"].get("validate_clusters").is_none(), "Envoy's static default (true) is kept");
    let clusters = &bootstrap["static_resources"]["clusters"];
    assert_eq!(clusters[0]["type"], "STATIC");
    assert!(clusters[0].get("eds_cluster_config").is_none());
    assert_eq!(clusters[0]["load_assignment"]["endpoints"], sample_class()["endpoints"][0]["endpoints"]);
    assert!(clusters[0]["load_assignment"].get("@type").is_none());
    assert_eq!(clusters[1]["type"], "STRICT_DNS", "other clusters stay as they are");
    assert_eq!(bootstrap["admin"]["address"]["socket_address"]["port_value"], 0);

    let lenient = static_bootstrap("n", &sample_class(), false)?;
    let route_config =
        &lenient["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"];
    assert_eq!(route_config["validate_clusters"], false);
    Ok(())
}

#[test]
fn conversion_refuses_resources_that_do_not_fit_together() {
    let mut no_routes = sample_class();
    no_routes["routes"] = json!([]);
    let err = static_bootstrap("n", &no_routes, true).expect_err("RDS name without routes");
    assert!(format!("{err:#}").contains("loads routes \"80\""), "{err:#}");

    let mut no_endpoints = sample_class();
    no_endpoints["endpoints"] = json!([]);
    let err = static_bootstrap("n", &no_endpoints, true).expect_err("EDS cluster without endpoints");
    assert!(format!("{err:#}").contains("has no load assignment"), "{err:#}");

    let mut orphan = sample_class();
    orphan["endpoints"][0]["cluster_name"] = json!("outbound|80||gone");
    orphan["endpoints"].as_array_mut().expect("list").push(sample_class()["endpoints"][0].clone());
    let err = static_bootstrap("n", &orphan, true).expect_err("endpoints of no cluster");
    assert!(format!("{err:#}").contains("belongs to no EDS cluster"), "{err:#}");
}

/// The check has teeth: the sample passes, and each deliberately broken variant is refused by Envoy.
#[test]
fn envoy_refuses_broken_bootstraps() -> Result<()> {
    let envoy = e2e::envoy_binary()?;
    let good = static_bootstrap("sample", &sample_class(), true)?;
    let verdict = validate(&envoy, &good)?;
    ensure!(verdict.accepted, "the sample bootstrap must validate:\n{}", verdict.output);

    let routes =
        "/static_resources/listeners/0/filter_chains/0/filters/0/typed_config/route_config/virtual_hosts/0/routes/0";
    let broken = |pointer: &str, value: Value| -> Result<Value> {
        let mut bootstrap = good.clone();
        *bootstrap.pointer_mut(pointer).with_context(|| format!("no {pointer} in the sample"))? = value;
        Ok(bootstrap)
    };
    let mut unknown_field = good.clone();
    unknown_field["static_resources"]["clusters"][0]["no_such_field"] = json!(1);
    let variants = [
        ("an unknown field", unknown_field),
        ("a negative timeout", broken("/static_resources/clusters/0/connect_timeout", json!("-1s"))?),
        ("an invalid regex", broken(&format!("{routes}/match"), json!({"safe_regex": {"regex": "("}}))?),
        ("a route to no cluster", broken(&format!("{routes}/route/cluster"), json!("outbound|80||nowhere"))?),
    ];
    for (what, broken) in variants {
        let verdict = validate(&envoy, &broken)?;
        ensure!(!verdict.accepted, "Envoy accepted a bootstrap with {what}:\n{broken:#}");
    }
    Ok(())
}
