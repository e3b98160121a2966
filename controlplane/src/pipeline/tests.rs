use super::*;
use translator::{Role, World, read_yaml};

/// A pipeline with one source, whose configuration is one unit, `t.yaml`.
struct Fixture {
    state: crate::State,
    source: SourceHandle,
}

impl Fixture {
    fn new() -> Fixture {
        let state = crate::State::default();
        let source = state.pipeline.register("test");
        let _ = source.apply(ChangeSet { synced: true, ..ChangeSet::default() }, Commit::Always);
        Fixture { state, source }
    }

    /// Replaces `t.yaml` and publishes.
    fn apply(&self, yaml: &str) -> Publication {
        self.apply_unit("t.yaml", yaml)
    }

    fn apply_unit(&self, file: &str, yaml: &str) -> Publication {
        let changes = ChangeSet {
            units: vec![(UnitKey::file(std::path::Path::new(file)), Some(translator::read(yaml, file)))],
            ..ChangeSet::default()
        };
        self.source.apply(changes, Commit::Always).expect("always commits")
    }

    fn served(&self, class: &ProxyClass) -> Arc<Snapshot> {
        self.state.cache.get(class)
    }

    fn messages(&self) -> Vec<String> {
        self.state.pipeline.view().diagnostics.iter().map(ToString::to_string).collect()
    }
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

/// What a full translation of `yaml` serves `class`.
fn full(yaml: &str, class: &ProxyClass) -> Snapshot {
    let (inputs, diagnostics) = read_yaml(yaml, "t.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let translator = Translator::new(&World::new(inputs).0);
    build(&translator, &[], class).expect("builds").0
}

#[test]
fn an_endpoint_only_change_replaces_just_the_endpoints_and_equals_a_full_translation() {
    let fixture = Fixture::new();
    let watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 50));
    let before = Arc::clone(&watch.borrow());

    // A pod moved port and another changed labels: only endpoints change.
    for (step, next) in [world(9090, "v2", 50), world(9090, "v1", 50)].iter().enumerate() {
        let publication = fixture.apply(next);
        assert_eq!(fixture.state.metrics.endpoint_fast_path.get(), step as u64 + 1, "took the fast path");
        assert_eq!(publication.changed.len(), 1);
        let patched = fixture.served(&gateway());
        assert!(patched.same_content(&full(next, &gateway())), "the fast path gives what a full translation gives");
        for kind in [ResourceType::Cluster, ResourceType::Listener, ResourceType::Route] {
            assert!(Arc::ptr_eq(patched.resources(kind), before.resources(kind)), "{kind} untouched, shared");
        }
    }
}

#[test]
fn anything_else_takes_the_full_translation() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 50));
    fixture.apply(&world(9080, "v2", 80));
    assert_eq!(fixture.state.metrics.endpoint_fast_path.get(), 0, "a route change is not endpoint-only");
    assert!(fixture.served(&gateway()).same_content(&full(&world(9080, "v2", 80), &gateway())));
}

#[test]
fn classes_connecting_after_a_fast_path_change_get_a_full_current_snapshot() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 50));
    fixture.apply(&world(9090, "v2", 50));
    let sidecar = ProxyClass::new(Role::Sidecar);
    let late = fixture.state.cache.watch(&sidecar);
    assert!(late.borrow().same_content(&full(&world(9090, "v2", 50), &sidecar)));
}

#[test]
fn each_translation_built_from_the_published_one_serves_what_a_full_translation_serves() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 50));
    // Endpoint-only changes, then a route change, then back: each built from the one published before.
    let steps = [world(9090, "v2", 50), world(9090, "v1", 50), world(9090, "v1", 80), world(9080, "v2", 50)];
    for (step, yaml) in steps.iter().enumerate() {
        fixture.apply(yaml);
        let (inputs, _) = read_yaml(yaml, "t.yaml");
        let reference = Translator::new(&World::new(inputs).0);
        let served = fixture.state.pipeline.translator().expect("published");
        assert_eq!(served.diagnostics(), reference.diagnostics(), "step {step}");
        assert!(fixture.served(&gateway()).same_content(&full(yaml, &gateway())), "step {step}");
    }
    assert_eq!(fixture.state.metrics.endpoint_fast_path.get(), 2, "the two endpoint-only changes took the fast path");
}

#[test]
fn an_object_an_edit_makes_invalid_keeps_its_last_valid_version_and_says_why() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 80));
    let good = fixture.served(&gateway());
    // A weight total of 0 is invalid: the VirtualService as it was stays served.
    let broken = world(9080, "v2", 80).replace("weight: 80", "weight: 0").replace("weight: 20", "weight: 0");
    let publication = fixture.apply(&broken);
    assert!(fixture.served(&gateway()).same_content(&good), "the last valid version is served");
    let messages = fixture.messages();
    let reason = messages.iter().position(|m| m.starts_with("error") && m.contains("VirtualService default/reviews"));
    let kept = messages.iter().position(|m| m.contains("serving its last valid version"));
    assert!(reason.is_some() && kept.is_some(), "the reason and the note, side by side: {messages:#?}");
    assert!(messages[kept.unwrap_or_default()].contains("(at t.yaml:"), "{messages:#?}");
    assert!(publication.diagnostics.iter().any(|d| d.severity == Severity::Error), "the error counts");
    // Fixed: served as written, and the messages are gone.
    fixture.apply(&world(9080, "v2", 30));
    assert!(fixture.served(&gateway()).same_content(&full(&world(9080, "v2", 30), &gateway())));
    assert!(fixture.messages().is_empty(), "{:?}", fixture.messages());
}

#[test]
fn an_object_that_stops_reading_keeps_its_last_valid_version() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 80));
    let good = fixture.served(&gateway());
    fixture.apply(&world(9080, "v2", 80).replace("  http:\n", "  http:\n  - timout: 1s\n"));
    assert!(fixture.served(&gateway()).same_content(&good));
    let messages = fixture.messages();
    assert!(messages.iter().any(|m| m.contains("unknown field \"timout\" (did you mean timeout?)")), "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("serving its last valid version")), "{messages:#?}");
}

#[test]
fn a_unit_that_stops_parsing_keeps_its_last_complete_read() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 80));
    let good = fixture.served(&gateway());
    fixture.apply(&format!("{}\n  - broken: [\n", world(9080, "v2", 80)));
    assert!(fixture.served(&gateway()).same_content(&good));
    let messages = fixture.messages();
    assert!(messages.iter().any(|m| m.contains("failed to parse YAML at line")), "{messages:#?}");
    assert!(messages.iter().any(|m| m.contains("serving its last complete version")), "{messages:#?}");
}

#[test]
fn nothing_is_published_before_every_source_has_handed_over_its_start() {
    let state = crate::State::default();
    let late = state.pipeline.register("late");
    let early = state.pipeline.register("early");
    let read = translator::read(&world(9080, "v2", 80), "t.yaml");
    let changes = ChangeSet { units: vec![(UnitKey::named("a"), Some(read))], synced: true, ..ChangeSet::default() };
    let _ = early.apply(changes, Commit::Always);
    assert!(!state.pipeline.view().ready);
    assert!(state.pipeline.translator().is_none(), "nothing translated");
    let _ = late.apply(ChangeSet { synced: true, ..ChangeSet::default() }, Commit::Always);
    assert!(state.pipeline.view().ready);
    assert_eq!(state.pipeline.view().objects.len(), 5);
}

#[test]
fn a_change_refused_whole_leaves_the_last_configuration() {
    let fixture = Fixture::new();
    let _watch = fixture.state.cache.watch(&gateway());
    fixture.apply(&world(9080, "v2", 80));
    let good = fixture.served(&gateway());
    let broken = translator::read(&world(9080, "v2", 80).replace("number: 8080", "number: 0"), "t.yaml");
    let changes = ChangeSet {
        units: vec![(UnitKey::file(std::path::Path::new("t.yaml")), Some(broken))],
        ..ChangeSet::default()
    };
    let refused = fixture.source.apply(changes, Commit::IfValid).expect_err("an error refuses the change");
    assert!(refused.diagnostics.iter().any(|d| d.severity == Severity::Error));
    assert!(fixture.served(&gateway()).same_content(&good));
    assert!(fixture.messages().is_empty(), "the view is of what is served: {:?}", fixture.messages());
}

#[test]
fn of_two_definitions_the_first_file_wins_and_both_places_are_named() {
    let fixture = Fixture::new();
    let gateway_yaml = |port: u16| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers: [{{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: [\"*\"]}}]\n"
        )
    };
    fixture.apply_unit("b.yaml", &gateway_yaml(8081));
    fixture.apply_unit("a.yaml", &gateway_yaml(8080));
    let messages = fixture.messages();
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0].contains("Gateway default/gw"), "{messages:#?}");
    assert!(messages[0].contains("b.yaml:1:1") && messages[0].contains("a.yaml:1:1"), "{messages:#?}");
    let listeners = fixture.state.pipeline.snapshot(&gateway()).expect("builds").0;
    let listener = listeners.resources(ResourceType::Listener).iter().next().map(|(name, _)| name.clone());
    assert_eq!(listener.as_deref(), Some("0.0.0.0_8080"), "a.yaml sorts first");
}

#[test]
fn a_unit_emptied_of_everything_it_held_says_so() {
    let fixture = Fixture::new();
    fixture.apply(&world(9080, "v2", 80));
    fixture.apply("# nothing here now\n");
    let messages = fixture.messages();
    assert!(messages.iter().any(|m| m.contains("holds nothing now")), "{messages:#?}");
    assert!(fixture.state.pipeline.view().objects.is_empty());
}

#[test]
fn analysis_errors_are_shown_and_refuse_nothing() {
    // A subset no workload carries is IST0173, an error for istioctl analyze: Istio serves the rule all the same,
    // and so does pilotfish, with the error in the view but not among the errors that fail `wait`.
    let fixture = Fixture::new();
    let changes = ChangeSet {
        units: vec![(
            UnitKey::file(std::path::Path::new("t.yaml")),
            Some(translator::read(&world(9102, "v9", 50), "t.yaml")),
        )],
        ..ChangeSet::default()
    };
    let publication = fixture.source.apply(changes, Commit::IfValid).expect("analysis refuses nothing");
    let subset = publication.diagnostics.iter().find(|d| d.code == Some("IST0173")).expect("IST0173");
    assert!(subset.severity == Severity::Error && subset.advisory && !subset.rejects());
    let view = fixture.state.pipeline.view();
    assert_eq!((view.errors, view.advisory_errors), (0, 1), "{:?}", fixture.messages());
    assert_eq!(view.errors().count(), 0);
}
