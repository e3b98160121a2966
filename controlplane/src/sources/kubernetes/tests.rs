use k8s_openapi::api::core::v1::{Pod as K8sPod, PodCondition, PodStatus};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};

use super::*;

fn object_meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta { name: Some(name.to_owned()), namespace: Some(namespace.to_owned()), ..ObjectMeta::default() }
}

fn virtual_service_resource(version: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, version, "VirtualService"), "virtualservices")
}

fn virtual_service(name: &str, spec: Value) -> DynamicObject {
    let mut object = DynamicObject::new(name, &virtual_service_resource("v1")).within("default");
    object.data = json!({ "spec": spec });
    object
}

fn pod(ready: bool, labels: &[(&str, &str)]) -> Input {
    let k8s = K8sPod {
        metadata: ObjectMeta {
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..object_meta("default", "reviews-1")
        },
        status: Some(PodStatus {
            pod_ip: Some("10.0.0.7".to_owned()),
            phase: Some("Running".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
        ..K8sPod::default()
    };
    Input::Pod(Arc::new(Object { meta: meta(&k8s.metadata), spec: Pod::from_k8s(k8s) }))
}

fn key_of(name: &str) -> Key {
    ("default".to_owned(), name.to_owned())
}

#[test]
fn istio_objects_read_at_any_served_version_without_a_file_source() {
    for version in VERSIONS {
        let resource = virtual_service_resource(version);
        let mut object = DynamicObject::new("reviews", &resource).within("bookinfo");
        object.data = json!({ "spec": { "hosts": ["reviews"], "http": [{ "route": [{ "destination": { "host": "reviews" } }] }] } });
        let input = istio_input(&resource, object).expect("reads");
        let Input::VirtualService(vs) = input else { panic!("not a VirtualService: {input:?}") };
        assert_eq!(vs.meta.namespace, "bookinfo");
        assert_eq!(vs.meta.source, None);
        assert_eq!(vs.spec.hosts, ["reviews"]);
    }
}

#[test]
fn an_istio_object_that_does_not_read_says_why() {
    let resource = virtual_service_resource("v1");
    let problem = istio_input(&resource, virtual_service("reviews", json!({ "hosts": "not-a-list" })))
        .expect_err("hosts must be a list");
    assert!(problem.contains("VirtualService default/reviews"), "{problem}");
    assert!(!problem.contains("(at "), "objects from the cluster have no file: {problem}");
}

#[test]
fn a_pod_keeps_only_what_translation_reads() {
    let Input::Pod(pod) = pod(true, &[("app", "reviews"), ("version", "v1")]) else { unreachable!() };
    assert_eq!(pod.meta.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(pod.spec.ip.as_deref(), Some("10.0.0.7"));
    assert!(pod.spec.ready);
}

#[test]
fn a_relist_replaces_the_kind_as_a_whole_and_drops_what_is_gone() {
    let mut store = KindStore::default();
    store.begin_list();
    store.apply(key_of("a"), Ok(pod(true, &[])));
    store.apply(key_of("b"), Ok(pod(true, &[])));
    assert!(store.objects.is_empty(), "a list in progress is not served");
    store.end_list();
    assert_eq!(store.objects.len(), 2);
    assert_eq!(store.lists, 1);

    // The watch expired; meanwhile `a` was deleted and `c` created.
    store.begin_list();
    store.apply(key_of("b"), Ok(pod(true, &[])));
    store.apply(key_of("c"), Ok(pod(true, &[])));
    assert_eq!(store.objects.len(), 2, "the old list is served until the new one is complete");
    store.end_list();
    let names: Vec<&str> = store.objects.keys().map(|(_, name)| name.as_str()).collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(store.lists, 2);
}

#[test]
fn only_changes_translation_reads_count_as_changes() {
    let mut store = KindStore::default();
    store.begin_list();
    store.end_list();
    assert!(store.apply(key_of("a"), Ok(pod(true, &[("version", "v1")]))));
    assert!(!store.apply(key_of("a"), Ok(pod(true, &[("version", "v1")]))), "same slim pod: no change");
    assert!(store.apply(key_of("a"), Ok(pod(false, &[("version", "v1")]))), "readiness changed");
    assert!(store.apply(key_of("a"), Ok(pod(false, &[("version", "v2")]))), "labels changed");
    assert!(store.delete(&key_of("a")));
    assert!(!store.delete(&key_of("a")));
}

#[test]
fn a_version_that_does_not_read_keeps_the_last_good_one() {
    let mut store = KindStore::default();
    store.begin_list();
    store.end_list();
    store.apply(key_of("a"), Ok(pod(true, &[])));
    assert!(store.apply(key_of("a"), Err("spec.hosts: invalid type".to_owned())));
    let slot = &store.objects[&key_of("a")];
    assert_eq!(slot.input, Some(pod(true, &[])));
    assert!(slot.problem.as_deref().is_some_and(|p| p.contains("last good version")), "{slot:?}");
    // Fixed: the problem goes.
    assert!(store.apply(key_of("a"), Ok(pod(false, &[]))));
    assert_eq!(store.objects[&key_of("a")].problem, None);
    // A new object that never read is a problem, not an input.
    store.apply(key_of("b"), Err("broken".to_owned()));
    assert_eq!(store.objects[&key_of("b")].input, None);
}

#[test]
fn ready_once_every_kind_is_listed_or_known_missing() {
    let mut store = Store::default();
    for kind in [Kind::Service, Kind::EndpointSlice, Kind::Pod, Kind::Gateway, Kind::VirtualService] {
        store.kind(kind).begin_list();
        store.kind(kind).end_list();
    }
    store.kind(Kind::DestinationRule).set_installed(Some("networking.istio.io/v1".to_owned()));
    assert!(!store.ready(), "DestinationRule and ServiceEntry are not listed yet");
    store.kind(Kind::ServiceEntry).set_installed(None);
    assert!(!store.ready());
    let destination_rules = store.kind(Kind::DestinationRule);
    destination_rules.begin_list();
    destination_rules.end_list();
    assert!(store.ready());
    let problems = store.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("serviceentries.networking.istio.io is not installed"), "{problems:?}");
    let view = store.view();
    assert_eq!(view["ServiceEntry"]["installed"], false);
    assert_eq!(view["DestinationRule"]["apiVersion"], "networking.istio.io/v1");
    assert_eq!(view["Pod"]["apiVersion"], "v1");
}

#[test]
fn a_forgotten_kind_drops_its_objects_and_waits_for_its_crd() {
    let mut store = Store::default();
    let gateways = store.kind(Kind::Gateway);
    gateways.set_installed(Some("networking.istio.io/v1".to_owned()));
    gateways.begin_list();
    gateways.apply(key_of("gw"), Ok(pod(true, &[])));
    gateways.end_list();
    gateways.forget();
    assert!(gateways.objects.is_empty());
    assert_eq!(gateways.installed, Some(None));
}

#[test]
fn the_most_preferred_served_version_is_watched() {
    let serving = |versions: &'static [&'static str]| {
        move |version: &str| {
            if versions.contains(&version) { vec![virtual_service_resource(version)] } else { Vec::new() }
        }
    };
    let pick = |versions| preferred(serving(versions), "VirtualService").map(|r| r.version);
    assert_eq!(pick(&["v1alpha3", "v1beta1", "v1"]).as_deref(), Some("v1"));
    assert_eq!(pick(&["v1alpha3", "v1beta1"]).as_deref(), Some("v1beta1"));
    assert_eq!(pick(&["v1alpha3"]).as_deref(), Some("v1alpha3"));
    assert_eq!(pick(&["v2"]), None);
    assert_eq!(preferred(serving(&["v1"]), "Gateway"), None);
}

#[test]
fn retries_back_off_to_the_maximum_and_reset() {
    let mut backoff = RetryBackoff::new(Duration::from_millis(500));
    let delays: Vec<u128> = backoff.by_ref().take(5).map(|d| d.as_millis()).collect();
    assert_eq!(delays, [100, 200, 400, 500, 500]);
    backoff.reset();
    assert_eq!(backoff.next(), Some(Duration::from_millis(100)));
}

#[test]
fn expiry_is_told_apart_from_other_failures() {
    let status = |code| kube::core::Status { code, ..kube::core::Status::default() };
    assert!(matches!(classify(&watcher::Error::WatchError(Box::new(status(410)))), Failure::Expired));
    assert!(matches!(
        classify(&watcher::Error::WatchStartFailed(kube::Error::Api(Box::new(status(410))))),
        Failure::Expired
    ));
    assert!(matches!(
        classify(&watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status(404))))),
        Failure::NotServed
    ));
    assert!(matches!(
        classify(&watcher::Error::InitialListFailed(kube::Error::Api(Box::new(status(500))))),
        Failure::Other
    ));
}

#[test]
fn an_unchanged_object_stays_the_same_shared_object() {
    let mut store = KindStore::default();
    store.apply(key_of("a"), Ok(pod(true, &[("app", "web")])));
    let stored = |store: &KindStore| store.objects[&key_of("a")].input.clone().expect("stored");
    let first = stored(&store);
    // A relist, or an update of something translation does not read: an equal object arrives.
    assert!(!store.apply(key_of("a"), Ok(pod(true, &[("app", "web")]))));
    assert!(stored(&store).same(&first), "kept the object translation already knows");
    assert!(store.apply(key_of("a"), Ok(pod(false, &[("app", "web")]))));
    assert!(!stored(&store).same(&first));
}
