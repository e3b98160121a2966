//! `Translator::update` against `Translator::new`: for every golden input, edits of every object, one after the
//! other, each followed by an update of the previous Translator; after each, everything a Translator tells (its
//! diagnostics, its model's services, the translation for each proxy class, the endpoint fast path's answer)
//! equals a from-scratch translation of the same World.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use translator::input::Object;
use translator::{ProxyClass, Role, Translator, World, read_yaml};

fn testdata() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The World of a golden input, with its `# include:` files.
fn golden_world(path: &Path) -> World {
    let text = std::fs::read_to_string(path).expect("reads");
    let mut inputs = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#') || l.trim().is_empty()) {
        let Some(include) = line.strip_prefix("# include:").map(str::trim) else { continue };
        let included = std::fs::read_to_string(testdata().join(include)).expect("include reads");
        inputs.extend(read_yaml(&included, include).0);
    }
    inputs.extend(read_yaml(&text, "case.yaml").0);
    World::new(inputs).0
}

fn classes() -> Vec<ProxyClass> {
    let mut gateway = ProxyClass::new(Role::Gateway);
    gateway.namespace = "istio-system".to_owned();
    gateway.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
    let mut sidecar = ProxyClass::new(Role::Sidecar);
    sidecar.namespace = "default".to_owned();
    [gateway, sidecar, ProxyClass::new(Role::Sidecar)].into()
}

/// One edit of a World: a description and the edited World.
type Edit = (String, World);

/// `objects` with the one at `index` replaced by `edit` of a copy of it (a new `Arc`, as a source makes for an
/// object that changed).
fn edited<T: Clone>(objects: &[Arc<Object<T>>], index: usize, edit: impl Fn(&mut Object<T>)) -> Vec<Arc<Object<T>>> {
    let mut objects = objects.to_vec();
    let mut object = (*objects[index]).clone();
    edit(&mut object);
    objects[index] = Arc::new(object);
    objects
}

fn removed<T>(objects: &[Arc<Object<T>>], index: usize) -> Vec<Arc<Object<T>>> {
    let mut objects = objects.to_vec();
    objects.remove(index);
    objects
}

/// Edits of every object of `world`: endpoint changes (which may take the fast path) and others (which must not).
fn edits(world: &World) -> Vec<Edit> {
    let mut edits: Vec<Edit> = Vec::new();
    let mut edit = |what: String, change: &dyn Fn(&mut World)| {
        let mut edited = world.clone();
        change(&mut edited);
        edits.push((what, edited));
    };
    for (i, entry) in world.service_entries.iter().enumerate() {
        let name = &entry.meta.name;
        edit(format!("ServiceEntry {name}: same content, new object"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |_| {});
        });
        edit(format!("ServiceEntry {name}: an endpoint moves"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |o| match o.spec.endpoints.first_mut() {
                Some(endpoint) => endpoint.address = "10.99.0.1".to_owned(),
                None => o.spec.endpoints.push(Default::default()),
            });
        });
        edit(format!("ServiceEntry {name}: an endpoint goes"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |o| {
                o.spec.endpoints.pop();
            });
        });
        edit(format!("ServiceEntry {name}: an endpoint's labels change"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |o| {
                for endpoint in &mut o.spec.endpoints {
                    endpoint.labels.insert("version".to_owned(), "edited".to_owned());
                }
            });
        });
        edit(format!("ServiceEntry {name}: another host"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |o| o.spec.hosts.push("added.example.com".to_owned()));
        });
        edit(format!("ServiceEntry {name}: invalid"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |o| o.spec.hosts.clear());
        });
        edit(format!("ServiceEntry {name}: resolution changes"), &|w| {
            w.service_entries = edited(&w.service_entries, i, |o| o.spec.resolution = Some("DNS".to_owned()));
        });
        edit(format!("ServiceEntry {name}: gone"), &|w| w.service_entries = removed(&w.service_entries, i));
    }
    for (i, pod) in world.pods.iter().enumerate() {
        let name = &pod.meta.name;
        edit(format!("Pod {name}: readiness flips"), &|w| {
            w.pods = edited(&w.pods, i, |o| o.spec.ready = !o.spec.ready);
        });
        edit(format!("Pod {name}: labels change"), &|w| {
            w.pods = edited(&w.pods, i, |o| {
                o.meta.labels.insert("version".to_owned(), "edited".to_owned());
            });
        });
        edit(format!("Pod {name}: gone"), &|w| w.pods = removed(&w.pods, i));
    }
    if let Some(pod) = world.pods.first() {
        edit(format!("a Pod like {} comes", pod.meta.name), &|w| {
            let mut added = (**pod).clone();
            added.meta.name.push_str("-added");
            added.spec.ip = Some("10.99.0.2".to_owned());
            w.pods.push(Arc::new(added));
            w.pods.sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
        });
    }
    for (i, slice) in world.endpoint_slices.iter().enumerate() {
        let name = &slice.meta.name;
        edit(format!("EndpointSlice {name}: an endpoint is no longer ready"), &|w| {
            w.endpoint_slices = edited(&w.endpoint_slices, i, |o| {
                if let Some(endpoint) = o.spec.endpoints.first_mut() {
                    endpoint.ready = false;
                }
            });
        });
        edit(format!("EndpointSlice {name}: gone"), &|w| w.endpoint_slices = removed(&w.endpoint_slices, i));
    }
    for (i, service) in world.services.iter().enumerate() {
        let name = &service.meta.name;
        edit(format!("Service {name}: selector changes"), &|w| {
            w.services = edited(&w.services, i, |o| {
                o.spec.selector.insert("version".to_owned(), "v1".to_owned());
            });
        });
        edit(format!("Service {name}: gone"), &|w| w.services = removed(&w.services, i));
    }
    for (i, vs) in world.virtual_services.iter().enumerate() {
        let name = &vs.meta.name;
        edit(format!("VirtualService {name}: another host"), &|w| {
            w.virtual_services = edited(&w.virtual_services, i, |o| o.spec.hosts.push("added.example.com".to_owned()));
        });
        edit(format!("VirtualService {name}: gone"), &|w| w.virtual_services = removed(&w.virtual_services, i));
    }
    if !world.pods.is_empty() && !world.virtual_services.is_empty() {
        edit("the first Pod's readiness flips and the first VirtualService goes".to_owned(), &|w| {
            w.pods = edited(&w.pods, 0, |o| o.spec.ready = !o.spec.ready);
            w.virtual_services = removed(&w.virtual_services, 0);
        });
    }
    if !world.service_entries.is_empty() && !world.virtual_services.is_empty() {
        edit("the first ServiceEntry's endpoints and the first VirtualService change".to_owned(), &|w| {
            w.service_entries = edited(&w.service_entries, 0, |o| {
                o.spec.endpoints.pop();
            });
            w.virtual_services = removed(&w.virtual_services, 0);
        });
    }
    for (i, rule) in world.destination_rules.iter().enumerate() {
        let name = &rule.meta.name;
        edit(format!("DestinationRule {name}: gone"), &|w| w.destination_rules = removed(&w.destination_rules, i));
    }
    for (i, gateway) in world.gateways.iter().enumerate() {
        let name = &gateway.meta.name;
        edit(format!("Gateway {name}: gone"), &|w| w.gateways = removed(&w.gateways, i));
    }
    edits
}

/// Asserts that `updated` tells what `full` tells (both of one World), and that the endpoint fast path answers
/// alike against their predecessors.
fn assert_same(what: &str, updated: &Translator, full: &Translator, previous: (&Translator, &Translator)) {
    assert_eq!(updated.diagnostics(), full.diagnostics(), "{what}: diagnostics");
    assert_eq!(updated.checks(), full.checks(), "{what}: validation");
    assert_eq!(updated.model().services, full.model().services, "{what}: services");
    assert_eq!(
        updated.endpoint_changes_since(previous.0),
        full.endpoint_changes_since(previous.1),
        "{what}: endpoint changes"
    );
    for class in classes() {
        assert_eq!(updated.translate(&class), full.translate(&class), "{what}: translation for {class}");
    }
}

#[test]
fn an_updated_translator_equals_a_new_one_after_every_edit_of_every_golden_world() {
    let mut cases = 0;
    for entry in std::fs::read_dir(testdata()).expect("testdata exists") {
        let path = entry.expect("entry").path();
        if !path.to_string_lossy().ends_with(".in.yaml") {
            continue;
        }
        cases += 1;
        let case = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let world = golden_world(&path);
        let original_new = Translator::new(&world);
        let original_updated = Translator::update(&Translator::new(&World::default()), &world);
        assert_same(&format!("{case}: from empty"), &original_updated, &original_new, (&original_new, &original_new));
        // Each edit applied to the original World, then undone: both steps are updates of the step before.
        for (what, edited) in edits(&world) {
            let what = format!("{case}: {what}");
            let updated = Translator::update(&original_updated, &edited);
            let full = Translator::new(&edited);
            assert_same(&what, &updated, &full, (&original_updated, &original_new));
            let undone = Translator::update(&updated, &world);
            assert_same(&format!("{what}, undone"), &undone, &original_new, (&updated, &full));
        }
    }
    assert!(cases > 50, "the golden inputs are found ({cases})");
}

/// A World of `n` STATIC ServiceEntries with endpoints, one DestinationRule and one VirtualService each.
fn entries_world(n: usize) -> World {
    let mut yaml = String::new();
    for i in 0..n {
        yaml.push_str(&format!(
            "---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: svc-{i}, namespace: default}}
spec:
  hosts: [svc-{i}.example.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: 10.0.{i}.1, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: svc-{i}, namespace: default}}
spec:
  host: svc-{i}.example.com
  subsets: [{{name: v1, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: svc-{i}, namespace: default}}
spec:
  hosts: [svc-{i}.example.com]
  http: [{{route: [{{destination: {{host: svc-{i}.example.com, subset: v1}}}}]}}]
"
        ));
    }
    let (inputs, diagnostics) = read_yaml(&yaml, "world.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    World::new(inputs).0
}

#[test]
fn an_endpoint_change_rebuilds_only_the_service_it_touches() {
    let world = entries_world(20);
    let before = Translator::new(&world);
    let mut changed = world.clone();
    let index = world.service_entries.iter().position(|o| o.meta.name == "svc-7").expect("svc-7");
    changed.service_entries =
        edited(&world.service_entries, index, |o| o.spec.endpoints[0].address = "10.9.9.9".into());
    let after = Translator::update(&before, &changed);
    let rebuilt: BTreeSet<&str> = after
        .model()
        .services
        .iter()
        .filter(|(host, service)| !Arc::ptr_eq(service, &before.model().services[&***host]))
        .map(|(host, _)| &**host)
        .collect();
    assert_eq!(rebuilt, BTreeSet::from(["svc-7.example.com"]));
    assert_eq!(after.endpoint_changes_since(&before), Some(BTreeSet::from(["svc-7.example.com".to_owned()])));
    assert_same("svc-7 moved", &after, &Translator::new(&changed), (&before, &before));
}

#[test]
fn a_virtual_service_made_invalid_is_invalid_after_an_update() {
    let world = entries_world(5);
    let before = Translator::new(&world);
    let mut changed = world.clone();
    // Not a domain name: an error. Were the old check reused, the VirtualService would still count as valid.
    changed.virtual_services = edited(&world.virtual_services, 2, |o| o.spec.hosts = vec!["a_b".to_owned()]);
    let after = Translator::update(&before, &changed);
    assert!(!after.checks().virtual_services[2].valid);
    assert!(after.endpoint_changes_since(&before).is_none());
    assert_same("svc-2's VirtualService broken", &after, &Translator::new(&changed), (&before, &before));
}
