//! Generated configuration through everything pilotfish does with it.
//!
//! Worlds from `tests/generate` (valid, nearly valid, wrong), drawn from seeds, go through the document reader, the
//! pipeline (validation, last valid versions, translation for every proxy class the world can have), the snapshot
//! check (`consistent`), and `explain` of a few requests. Nothing may panic; every error names its object or
//! where it was read, and every object that did not read is named by a diagnostic. A sample of the valid worlds is
//! then loaded by a real Envoy (`envoy --mode validate`, as the golden outputs are). Inputs that once failed live
//! in `tests/tests/generated/` and run first, every time.
//!
//! `GENERATED_CASES` sets how many seeds per flavor (default 150); `GENERATED_SEED` where they start. The long runs
//! are `scripts/fuzz` (libFuzzer, through the same generator and over raw bytes).

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use api_protos::{ResourceType, reflect};
use arbitrary::Unstructured;
use controlplane::State;
use controlplane::explain::{Request, explain};
use controlplane::pipeline::{ChangeSet, Commit, UnitKey};
use e2e::validate::{Job, static_bootstrap, validate_all};
use generate::{Flavor, Seeded, World};
use serde_json::Value;
use translator::{ProxyClass, Role, Severity};

/// Valid worlds whose translations a real Envoy loads (each class's distinct resources once).
const ENVOY_SAMPLE: usize = 20;

fn cases() -> u64 {
    std::env::var("GENERATED_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(150)
}

fn first_seed() -> u64 {
    std::env::var("GENERATED_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(1)
}

fn regressions() -> PathBuf {
    e2e::workspace_root().join("tests/tests/generated")
}

/// The classes a world can have: a gateway per generated selector and namespace, a sidecar per namespace (bound
/// and captured).
fn classes(world: &World) -> Vec<ProxyClass> {
    let mut classes = Vec::new();
    for namespace in &world.namespaces {
        for (key, value) in &world.gateway_labels {
            let mut class = ProxyClass::new(Role::Gateway);
            class.labels.insert(key.clone(), value.clone());
            class.namespace = namespace.clone();
            classes.push(class);
        }
        let mut sidecar = ProxyClass::new(Role::Sidecar);
        sidecar.namespace = namespace.clone();
        classes.push(sidecar.clone());
        sidecar.outbound_bind = Some("127.0.0.1".to_owned());
        classes.push(sidecar);
    }
    classes
}

/// What one world came to: the classes' resources in Envoy's JSON shape, for Envoy to validate.
struct Outcome {
    classes: Vec<(String, Value)>,
    /// Some route names a destination that does not exist (reported as IST0101): Envoy's static check of route
    /// clusters does not apply.
    missing_destinations: bool,
    errors: usize,
}

/// Runs `world` through pilotfish and checks what may not happen.
fn check(name: &str, yaml: &str, world: &World) -> Result<Outcome> {
    let read = translator::read(yaml, name);
    for diagnostic in read.diagnostics.iter().filter(|d| d.severity == Severity::Error) {
        ensure!(
            diagnostic.object.is_some() || diagnostic.source.is_some(),
            "an error names neither an object nor a place: {diagnostic}"
        );
    }
    for object in &read.unreadable {
        ensure!(
            read.diagnostics.iter().any(|d| d.object.as_ref() == Some(object)),
            "{object} did not read and no diagnostic names it"
        );
    }
    let state = State::default();
    let source = state.pipeline.register("generated");
    let changes = ChangeSet { units: vec![(UnitKey::named(name), Some(read))], synced: true, ..ChangeSet::default() };
    let publication = source.apply(changes, Commit::Always).map_err(|p| anyhow::anyhow!("refused: {:?}", p.failed))?;
    ensure!(publication.failed.is_empty(), "a class's snapshot was refused: {:?}", publication.failed);
    let missing_destinations =
        publication.diagnostics.iter().any(|d| d.code == Some("IST0101") && d.field.contains("destination"));
    // Analysis errors (advisory: served as written, as `istioctl analyze` reports them) are no rejection.
    let errors = publication.diagnostics.iter().filter(|d| d.rejects()).count();
    if world.flavor == Flavor::Valid && errors > 0 {
        let listing: Vec<String> = publication.diagnostics.iter().map(ToString::to_string).collect();
        bail!("a valid world has errors:\n{}\n---\n{yaml}", listing.join("\n"));
    }
    let mut out = Vec::new();
    for class in classes(world) {
        let (snapshot, _) = state.pipeline.snapshot(&class).with_context(|| format!("building {class}"))?;
        snapshot.consistent().with_context(|| format!("{class}: inconsistent snapshot"))?;
        for request in &world.requests {
            let line = format!("GET http://{}:{}{}", request.host, request.port, request.path);
            let headers: Vec<String> = request.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let request = Request::parse(&line, &headers).map_err(anyhow::Error::msg)?;
            let _ = explain(&snapshot, &request, &[]);
        }
        let mut resources = serde_json::Map::new();
        for (kind, key) in [
            (ResourceType::Listener, "listeners"),
            (ResourceType::Route, "routes"),
            (ResourceType::Cluster, "clusters"),
            (ResourceType::Endpoint, "endpoints"),
        ] {
            let rendered: Result<Vec<Value>, _> =
                snapshot.resources(kind).iter().map(|(_, resource)| reflect::to_json(&resource.body)).collect();
            resources.insert(key.to_owned(), Value::Array(rendered?));
        }
        out.push((class.to_string(), Value::Object(resources)));
    }
    Ok(Outcome { classes: out, missing_destinations, errors })
}

/// Checks `yaml`, turning a panic into an error.
fn guarded(name: &str, yaml: &str, world: &World) -> Result<Outcome> {
    match std::panic::catch_unwind(AssertUnwindSafe(|| check(name, yaml, world))) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            bail!("panicked: {message}")
        }
    }
}

fn generated(seed: u64, flavor: Flavor) -> Result<World> {
    let bytes = Seeded::new(seed).bytes(4096);
    generate::world(&mut Unstructured::new(&bytes), flavor).map_err(|e| anyhow::anyhow!("generating: {e}"))
}

#[test]
fn every_input_that_once_failed_still_reads() -> Result<()> {
    let world = generated(0, Flavor::Wrong)?;
    let mut checked = 0;
    for entry in std::fs::read_dir(regressions()).context("reading the regression inputs")? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let yaml = std::fs::read_to_string(&path)?;
        guarded(&path.display().to_string(), &yaml, &world).with_context(|| format!("{}", path.display()))?;
        checked += 1;
    }
    ensure!(checked > 0, "no regression inputs in {}", regressions().display());
    Ok(())
}

#[test]
fn generated_worlds_never_panic_and_every_problem_is_named() -> Result<()> {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut totals = [(0usize, 0usize); 3];
    let mut envoy_jobs = Vec::new();
    let mut envoy_worlds = BTreeSet::new();
    let mut distinct = BTreeSet::new();
    for (index, flavor) in [Flavor::Valid, Flavor::Nearly, Flavor::Wrong].into_iter().enumerate() {
        for seed in first_seed()..first_seed() + cases() {
            let world = generated(seed, flavor)?;
            match guarded(&format!("seed-{seed}.yaml"), &world.yaml, &world) {
                Ok(outcome) => {
                    totals[index].0 += 1;
                    totals[index].1 += usize::from(outcome.errors > 0);
                    if flavor == Flavor::Valid && envoy_worlds.len() < ENVOY_SAMPLE {
                        envoy_worlds.insert(seed);
                        for (class, proxy) in outcome.classes {
                            if !distinct.insert(proxy.to_string()) {
                                continue;
                            }
                            let bootstrap =
                                static_bootstrap(&format!("generated-{seed}"), &proxy, !outcome.missing_destinations)
                                    .with_context(|| format!("seed {seed} [{class}]: building the bootstrap"))?;
                            envoy_jobs.push(Job { case: format!("seed {seed}"), class, bootstrap });
                        }
                    }
                }
                Err(err) => {
                    let kept = std::env::temp_dir().join(format!("pilotfish-generated-{flavor:?}-{seed}.yaml"));
                    let _ = std::fs::write(&kept, &world.yaml);
                    failures.push(format!("{flavor:?} seed {seed} (input kept at {}): {err:#}", kept.display()));
                }
            }
        }
    }
    eprintln!(
        "generated: {} worlds checked in {:.1?} (valid {}, {} with errors; nearly {}, {}; wrong {}, {})",
        totals.iter().map(|t| t.0).sum::<usize>(),
        started.elapsed(),
        totals[0].0,
        totals[0].1,
        totals[1].0,
        totals[1].1,
        totals[2].0,
        totals[2].1
    );
    assert!(failures.is_empty(), "{} generated worlds failed:\n{}", failures.len(), failures.join("\n"));
    // Valid worlds have no errors (checked in `check`); nearly valid and wrong ones must mostly be caught, or the
    // generator tests nothing.
    assert!(totals[1].1 * 3 > totals[1].0, "too few nearly valid worlds had errors: {totals:?}");
    let envoy = e2e::envoy_binary()?;
    let refused = validate_all(&envoy, &envoy_jobs);
    eprintln!(
        "generated: Envoy validated {} distinct classes of {} valid worlds",
        envoy_jobs.len(),
        envoy_worlds.len()
    );
    assert!(refused.is_empty(), "Envoy refused translations of valid worlds:\n{}", refused.join("\n\n"));
    Ok(())
}
