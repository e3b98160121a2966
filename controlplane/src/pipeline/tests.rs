use super::*;
use crate::State;
use translator::{Role, World, read_yaml};

fn translator(yaml: &str) -> Arc<Translator> {
    let (inputs, diagnostics) = read_yaml(yaml, "t.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    Arc::new(Translator::new(&World::new(inputs).0))
}

fn world(v2_port: u16, v2_label: &str, weight_v1: u32) -> String {
    format!(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: reviews}}
spec:
  hosts: [reviews.local]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 10.0.0.1, labels: {{version: v1}}}}
  - {{address: 10.0.0.2, ports: {{http: {v2_port}}}, labels: {{version: {v2_label}}}}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: ratings}}
spec:
  hosts: [ratings.local]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.0.1.1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews}}
spec:
  host: reviews.local
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 8080, name: http, protocol: HTTP}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route:
    - {{destination: {{host: reviews.local, subset: v1}}, weight: {weight_v1}}}
    - {{destination: {{host: reviews.local, subset: v2}}, weight: {weight_v2}}}
"#,
        weight_v2 = 100 - weight_v1
    )
}

fn gateway() -> ProxyClass {
    let mut class = ProxyClass::new(Role::Gateway);
    class.labels.insert("istio".into(), "ingressgateway".into());
    class
}

/// What a full translation of `yaml` serves the gateway class.
fn full(yaml: &str) -> crate::snapshot::Snapshot {
    let state = State::default();
    let _watch = state.cache.watch(&gateway());
    publish(&state, translator(yaml), Arc::new(Vec::new()), None);
    state.cache.get(&gateway()).as_ref().clone()
}

#[test]
fn an_endpoint_only_change_replaces_just_the_endpoints_and_equals_a_full_translation() {
    let state = State::default();
    let watch = state.cache.watch(&gateway());
    let raw = Arc::new(Vec::new());
    let (_, first) = publish(&state, translator(&world(9080, "v2", 50)), Arc::clone(&raw), None);
    let before = Arc::clone(&watch.borrow());

    // A pod moved port and another changed labels: only endpoints change.
    for (step, next) in [world(9090, "v2", 50), world(9090, "v1", 50)].iter().enumerate() {
        let (rebuild, _) = publish(&state, translator(next), Arc::clone(&raw), Some(&first));
        assert_eq!(state.metrics.endpoint_fast_path.get(), step as u64 + 1, "took the fast path");
        assert_eq!(rebuild.changed.len(), 1);
        let patched = state.cache.get(&gateway());
        assert!(patched.same_content(&full(next)), "the fast path gives what a full translation gives");
        for kind in [ResourceType::Cluster, ResourceType::Listener, ResourceType::Route] {
            assert!(Arc::ptr_eq(patched.resources(kind), before.resources(kind)), "{kind} untouched, shared");
        }
    }
}

#[test]
fn anything_else_takes_the_full_translation() {
    let state = State::default();
    let _watch = state.cache.watch(&gateway());
    let raw = Arc::new(Vec::new());
    let (_, first) = publish(&state, translator(&world(9080, "v2", 50)), Arc::clone(&raw), None);
    publish(&state, translator(&world(9080, "v2", 80)), Arc::clone(&raw), Some(&first));
    assert_eq!(state.metrics.endpoint_fast_path.get(), 0, "a route change is not endpoint-only");
    assert!(state.cache.get(&gateway()).same_content(&full(&world(9080, "v2", 80))));
}

#[test]
fn classes_connecting_after_a_fast_path_change_get_a_full_current_snapshot() {
    let state = State::default();
    let _watch = state.cache.watch(&gateway());
    let raw = Arc::new(Vec::new());
    let (_, first) = publish(&state, translator(&world(9080, "v2", 50)), Arc::clone(&raw), None);
    publish(&state, translator(&world(9090, "v2", 50)), Arc::clone(&raw), Some(&first));
    let sidecar = ProxyClass::new(Role::Sidecar);
    let late = state.cache.watch(&sidecar);
    let fresh = State::default();
    let _fresh_watch = fresh.cache.watch(&sidecar);
    publish(&fresh, translator(&world(9090, "v2", 50)), Arc::clone(&raw), None);
    assert!(late.borrow().same_content(&fresh.cache.get(&sidecar)));
}

/// The World of `yaml`, sharing with `previous` the objects it has unchanged, as a source that keeps its objects
/// hands them over.
fn world_sharing(yaml: &str, previous: &[translator::Input]) -> (World, Vec<translator::Input>) {
    let (inputs, diagnostics) = read_yaml(yaml, "t.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let inputs: Vec<_> =
        inputs.into_iter().map(|input| previous.iter().find(|p| **p == input).cloned().unwrap_or(input)).collect();
    (World::new(inputs.clone()).0, inputs)
}

#[test]
fn a_translator_built_from_the_published_one_serves_what_a_full_translation_serves() {
    let state = State::default();
    let _watch = state.cache.watch(&gateway());
    let raw = Arc::new(Vec::new());
    let (first, mut inputs) = world_sharing(&world(9080, "v2", 50), &[]);
    let (_, mut published) = publish(&state, Arc::new(super::translator(&first, None)), Arc::clone(&raw), None);
    // Endpoint-only changes, then a route change, then back: each built from the one published before.
    let steps = [world(9090, "v2", 50), world(9090, "v1", 50), world(9090, "v1", 80), world(9080, "v2", 50)];
    for (step, yaml) in steps.iter().enumerate() {
        let (shared, next_inputs) = world_sharing(yaml, &inputs);
        let translator = super::translator(&shared, Some(&published));
        assert_eq!(translator.diagnostics(), Translator::new(&shared).diagnostics(), "step {step}");
        (_, published) = publish(&state, Arc::new(translator), Arc::clone(&raw), Some(&published));
        assert!(state.cache.get(&gateway()).same_content(&full(yaml)), "step {step}");
        inputs = next_inputs;
    }
    assert_eq!(state.metrics.endpoint_fast_path.get(), 2, "the two endpoint-only changes took the fast path");
}
