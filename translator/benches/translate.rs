//! Translation cost as the world grows (issue 6, item 3).
//!
//! Worlds of 10 / 100 / 1,000 / 10,000 services, each a STATIC ServiceEntry with 3 endpoints, a DestinationRule
//! with 2 subsets and a VirtualService (header match + weighted split) bound to one Gateway and to the mesh.
//! Per size (group `services=N`):
//!
//! - `new`: `Translator::new` (validation, model, analysis);
//! - `translate_gateway`, `translate_sidecar`: a full translation for one class;
//! - `endpoint_change/update`: one ServiceEntry's endpoints changed: `Translator::update` from the previous one;
//! - `endpoint_change/since`, `endpoint_change/endpoints`: the same change through the fast path:
//!   `endpoint_changes_since`, then `endpoints` of the one changed host for both classes;
//! - `endpoint_change/total`: what the product does for that change: `Translator::update` to the new world, then
//!   the above, the ClusterLoadAssignments packed as `Any`;
//! - `vs_change/update`: one VirtualService changed: `Translator::update`;
//! - `vs_change/total`: what the product does for that change: `Translator::update`, `endpoint_changes_since`
//!   (None), then a full translation for both classes, every resource packed.
//!
//! ```sh
//! cargo bench -p translator --bench translate                                  # every size
//! TRANSLATE_BENCH_SIZES=10000 cargo bench -p translator --bench translate      # one size
//! cargo bench -p translator --bench translate -- 'services=1000/'              # criterion's own filter
//! ```
//!
//! Without `--bench` (`cargo test --benches`) each benchmark runs once, at 10 services only. A full translation
//! (`translate_*`, `vs_change/total`) that takes over 2 s (10,000 services today) is timed once and printed
//! instead of sampled; `TRANSLATE_BENCH_SLOW=1` samples it anyway (10 samples: tens of minutes).
//!
//! For instruction counts, which stay put on a busy machine where times do not: `TRANSLATE_BENCH_ONCE=1` builds
//! the worlds and makes each change once (`endpoint_change_once`: the whole endpoint change; `vs_change_once`:
//! the `Translator::update` of the VirtualService change; `translate_once`: a full translation for both classes):
//!
//! ```sh
//! TRANSLATE_BENCH_ONCE=1 TRANSLATE_BENCH_SIZES=10000 valgrind --tool=callgrind \
//!   --toggle-collect='*endpoint_change_once*' target/release/deps/translate-<hash>
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_protos::any::pack;
use criterion::{Criterion, SamplingMode};
use translator::input::Object;
use translator::{Input, ProxyClass, Role, Translator, World, read_yaml};

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
/// A full translation slower than this is timed once rather than sampled.
const SLOW: Duration = Duration::from_secs(2);

/// Which service the changes touch: one in the middle of the sorted world.
fn changed(n: usize) -> usize {
    n / 2
}

fn host(i: usize) -> String {
    format!("svc-{i:05}.bench.local")
}

fn service_entry(i: usize, third_endpoint: u8) -> String {
    let (a, b) = (i / 250, i % 250);
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i:05}, namespace: default}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 10.{a}.{b}.1, ports: {{http: 8080}}, labels: {{version: v1}}}}
  - {{address: 10.{a}.{b}.2, ports: {{http: 8080}}, labels: {{version: v1}}}}
  - {{address: 10.{a}.{b}.{third_endpoint}, ports: {{http: 8080}}, labels: {{version: v2}}}}
",
        host = host(i)
    )
}

fn destination_rule(i: usize) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i:05}, namespace: default}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
",
        host = host(i)
    )
}

fn virtual_service(i: usize, v1_weight: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i:05}, namespace: default}}
spec:
  hosts: [{host}]
  gateways: [istio-system/gw, mesh]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {host}, subset: v2}}}}]
  - route:
    - {{destination: {{host: {host}, subset: v1}}, weight: {v1_weight}}}
    - {{destination: {{host: {host}, subset: v2}}, weight: {v2_weight}}}
",
        host = host(i),
        v2_weight = 100 - v1_weight
    )
}

const GATEWAY: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ['*']
";

fn read(yaml: &str) -> Vec<Input> {
    let (inputs, diagnostics) = read_yaml(yaml, "bench.yaml");
    assert!(diagnostics.is_empty(), "generated YAML has diagnostics: {diagnostics:?}");
    inputs
}

fn world(n: usize) -> World {
    let mut yaml = String::from(GATEWAY);
    for i in 0..n {
        for document in [service_entry(i, 3), destination_rule(i), virtual_service(i, 90)] {
            let _ = write!(yaml, "---\n{document}");
        }
    }
    let (world, diagnostics) = World::new(read(&yaml));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    world
}

/// `world` with the objects `yaml` defines in place of those of the same kind, namespace and name.
fn with_replaced(world: &World, yaml: &str) -> World {
    /// Keeps where the object was read: the product sees an edit of the same document of the same file.
    fn replace<T: Clone>(objects: &mut [Arc<Object<T>>], object: Arc<Object<T>>) {
        let mut object = Arc::unwrap_or_clone(object);
        let slot = objects
            .iter_mut()
            .find(|o| o.meta.namespace == object.meta.namespace && o.meta.name == object.meta.name)
            .expect("the object to replace is in the world");
        object.meta.source = slot.meta.source.clone();
        *slot = Arc::new(object);
    }
    let mut world = world.clone();
    for input in read(yaml) {
        match input {
            Input::ServiceEntry(o) => replace(&mut world.service_entries, o),
            Input::VirtualService(o) => replace(&mut world.virtual_services, o),
            other => panic!("not a kind these benchmarks change: {:?}", other.kind()),
        }
    }
    world
}

fn classes() -> [ProxyClass; 2] {
    let mut gateway = ProxyClass::new(Role::Gateway);
    gateway.namespace = "istio-system".to_owned();
    gateway.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
    [gateway, ProxyClass::new(Role::Sidecar)]
}

/// What the product does when the world changed: a Translator for the new world, made from the previous one,
/// then the endpoint fast path when it applies, else a full translation for every class; the resources packed as
/// `Any` (the product encodes them next). Returns how many resources it made.
fn apply_change(world: &World, previous: &Translator, classes: &[ProxyClass]) -> usize {
    let translator = Translator::update(previous, world);
    match translator.endpoint_changes_since(previous) {
        Some(hosts) => classes.iter().map(|class| translator.endpoints(class, &hosts).iter().map(pack).count()).sum(),
        None => classes.iter().map(|class| translator.translate(class).resources().len()).sum(),
    }
}

/// Checks once per size that the worlds are what the benchmarks claim: no diagnostics, every service translated,
/// the endpoint change takes the fast path and matches a full translation, the VirtualService change does not.
/// Above 1,000 services (where a full translation takes seconds) only the cheap checks run.
fn check(n: usize, before: &Translator, endpoint_change: &World, vs_change: &World, classes: &[ProxyClass]) {
    assert!(before.diagnostics().is_empty(), "{:?}", before.diagnostics());
    let after = Translator::update(before, endpoint_change);
    let hosts = after.endpoint_changes_since(before).expect("an endpoint-only change takes the fast path");
    assert_eq!(hosts, BTreeSet::from([host(changed(n))]));
    assert_eq!(after.diagnostics(), Translator::new(endpoint_change).diagnostics());
    assert!(Translator::update(before, vs_change).endpoint_changes_since(before).is_none());
    if n > 1_000 {
        return;
    }
    for class in classes {
        let translation = before.translate(class);
        assert!(translation.diagnostics.is_empty(), "{class}: {:?}", translation.diagnostics);
        assert_eq!(translation.clusters.len(), 3 * n, "{class}: default, v1 and v2 clusters per service");
        assert_eq!(translation.endpoints.len(), 3 * n, "{class}");
        assert!(!translation.listeners.is_empty() && !translation.routes.is_empty(), "{class}");
    }
    for class in classes {
        let full: Vec<_> = after
            .translate(class)
            .endpoints
            .into_iter()
            .filter(|e| e.cluster_name.ends_with(&hosts_suffix(n)))
            .collect();
        assert_eq!(after.endpoints(class, &hosts), full, "{class}: the fast path equals a full translation");
        assert_ne!(before.endpoints(class, &hosts), full, "{class}: the change changes endpoints");
    }
}

/// The endpoint change, made once where a profiler can find it.
#[inline(never)]
fn endpoint_change_once(world: &World, previous: &Translator, classes: &[ProxyClass]) -> usize {
    apply_change(world, previous, classes)
}

/// The Translator of the VirtualService change, made once where a profiler can find it.
#[inline(never)]
fn vs_change_once(world: &World, previous: &Translator) -> Translator {
    Translator::update(previous, world)
}

/// A full translation for every class, made once where a profiler can find it.
#[inline(never)]
fn translate_once(translator: &Translator, classes: &[ProxyClass]) -> usize {
    classes.iter().map(|class| translator.translate(class).resources().len()).sum()
}

fn hosts_suffix(n: usize) -> String {
    format!("|{}", host(changed(n)))
}

fn bench_size(c: &mut Criterion, n: usize) {
    let world = world(n);
    let classes = classes();
    let i = changed(n);
    let endpoint_change = with_replaced(&world, &service_entry(i, 4));
    let vs_change = with_replaced(&world, &virtual_service(i, 80));
    let before = Translator::new(&world);
    check(n, &before, &endpoint_change, &vs_change, &classes);
    let after = Translator::update(&before, &endpoint_change);
    let hosts = BTreeSet::from([host(i)]);
    if std::env::var_os("TRANSLATE_BENCH_ONCE").is_some() {
        black_box(endpoint_change_once(&endpoint_change, &before, &classes));
        black_box(vs_change_once(&vs_change, &before));
        black_box(translate_once(&before, &classes));
        return;
    }

    let mut group = c.benchmark_group(format!("services={n}"));
    match n {
        0..=100 => group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3)),
        101..=1_000 => group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5))
            .sample_size(20)
            .sampling_mode(SamplingMode::Flat),
        _ => group
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(10))
            .sample_size(10)
            .sampling_mode(SamplingMode::Flat),
    };
    group.bench_function("new", |b| b.iter(|| Translator::new(black_box(&world))));
    // Criterion takes at least 10 samples (11 runs): a full translation that takes seconds is timed once instead.
    let started = Instant::now();
    black_box(before.translate(&classes[0]));
    let sample_full = started.elapsed() < SLOW || std::env::var_os("TRANSLATE_BENCH_SLOW").is_some();
    let mut full = |name: &str, run: &dyn Fn() -> usize| {
        if sample_full {
            group.bench_function(name, |b| b.iter(run));
        } else {
            let started = Instant::now();
            black_box(run());
            println!(
                "services={n}/{name}: {:.3?} (one run, not sampled: TRANSLATE_BENCH_SLOW=1 samples it)",
                started.elapsed()
            );
        }
    };
    full("translate_gateway", &|| before.translate(black_box(&classes[0])).clusters.len());
    full("translate_sidecar", &|| before.translate(black_box(&classes[1])).clusters.len());
    full("vs_change/total", &|| apply_change(black_box(&vs_change), &before, &classes));
    group.bench_function("endpoint_change/update", |b| {
        b.iter(|| Translator::update(&before, black_box(&endpoint_change)))
    });
    group.bench_function("vs_change/update", |b| b.iter(|| Translator::update(&before, black_box(&vs_change))));
    group.bench_function("endpoint_change/since", |b| b.iter(|| after.endpoint_changes_since(black_box(&before))));
    group.bench_function("endpoint_change/endpoints", |b| {
        b.iter(|| classes.iter().map(|class| after.endpoints(black_box(class), &hosts).len()).sum::<usize>())
    });
    group.bench_function("endpoint_change/total", |b| {
        b.iter(|| apply_change(black_box(&endpoint_change), &before, &classes))
    });
    group.finish();
}

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let sizes: Vec<usize> = match std::env::var("TRANSLATE_BENCH_SIZES") {
        Ok(list) => list
            .split(',')
            .map(|s| s.trim().replace('_', "").parse().expect("TRANSLATE_BENCH_SIZES: numbers"))
            .collect(),
        Err(_) if benchmarking => SIZES.to_vec(),
        Err(_) => vec![10],
    };
    let mut criterion = Criterion::default().configure_from_args();
    for n in sizes {
        bench_size(&mut criterion, n);
    }
    criterion.final_summary();
}
