use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod as K8sPod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use serde_json::{Value, json};
use translator::{Input, Kind};

use super::discovery::preferred;
use super::store::{Key, KindStore, Slot, Store};
use super::watch::{Failure, RetryBackoff, classify};
use super::*;
use crate::crds::{GROUP, VERSIONS};
use crate::pipeline::SourceDetail;

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

fn pod(ready: bool, labels: &[(&str, &str)]) -> Slot {
    pod_named("reviews-1", ready, labels)
}

fn pod_named(name: &str, ready: bool, labels: &[(&str, &str)]) -> Slot {
    convert::pod(K8sPod {
        metadata: ObjectMeta {
            labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..object_meta("default", name)
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
    })
}

fn key_of(name: &str) -> Key {
    ("default".to_owned(), name.to_owned())
}

/// The names of the units set (`+name`) and removed (`-name`).
fn names(units: &store::Units) -> Vec<String> {
    units
        .iter()
        .map(|(key, read)| {
            let name = format!("{key:?}").rsplit('/').next().unwrap_or_default().trim_end_matches("\")").to_owned();
            format!("{}{name}", if read.is_some() { "+" } else { "-" })
        })
        .collect()
}

#[test]
fn istio_objects_read_at_any_served_version_without_a_file_source() {
    for version in VERSIONS {
        let resource = virtual_service_resource(version);
        let mut object = DynamicObject::new("reviews", &resource).within("bookinfo");
        object.data = json!({ "spec": { "hosts": ["reviews"], "http": [{ "route": [{ "destination": { "host": "reviews" } }] }] } });
        let slot = convert::istio(Kind::VirtualService, object);
        let Some(Input::VirtualService(vs)) = slot.input else { panic!("not a VirtualService: {slot:?}") };
        assert_eq!(vs.meta.namespace, "bookinfo");
        assert_eq!(vs.meta.source, None);
        assert_eq!(vs.spec.hosts, ["reviews"]);
    }
}

#[test]
fn an_istio_object_that_does_not_read_says_why_and_names_itself() {
    let slot = convert::istio(Kind::VirtualService, virtual_service("reviews", json!({ "hosts": "not-a-list" })));
    assert_eq!(slot.input, None);
    assert_eq!(slot.reference.name, "reviews");
    let problem = slot.diagnostics[0].to_string();
    assert!(problem.contains("VirtualService default/reviews spec.hosts"), "{problem}");
    assert!(!problem.contains("(at "), "objects from the cluster have no file: {problem}");
    let typo = convert::istio(Kind::VirtualService, virtual_service("reviews", json!({ "host": ["reviews"] })));
    assert!(typo.diagnostics[0].message.contains("did you mean hosts?"), "{:?}", typo.diagnostics);
}

#[test]
fn a_pod_keeps_only_what_translation_reads() {
    let Some(Input::Pod(pod)) = pod(true, &[("app", "reviews"), ("version", "v1")]).input else { unreachable!() };
    assert_eq!(pod.meta.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(pod.spec.ip.as_deref(), Some("10.0.0.7"));
    assert!(pod.spec.ready);
}

#[test]
fn a_relist_replaces_the_kind_as_a_whole_and_hands_over_only_what_changed() {
    let mut store = KindStore::default();
    store.begin_list();
    assert!(store.apply(key_of("a"), pod_named("a", true, &[])).is_empty(), "a list in progress is not handed over");
    store.apply(key_of("b"), pod_named("b", true, &[]));
    assert!(store.objects.is_empty());
    assert_eq!(names(&store.end_list()), ["+a", "+b"]);
    assert_eq!(store.lists, 1);

    // The watch expired; meanwhile `a` was deleted, `b` is as it was and `c` was created.
    store.begin_list();
    store.apply(key_of("b"), pod_named("b", true, &[]));
    store.apply(key_of("c"), pod_named("c", true, &[]));
    assert_eq!(store.objects.len(), 2, "the old list is kept until the new one is complete");
    assert_eq!(names(&store.end_list()), ["+c", "-a"]);
    let listed: Vec<&str> = store.objects.keys().map(|(_, name)| name.as_str()).collect();
    assert_eq!(listed, ["b", "c"]);
    assert_eq!(store.lists, 2);
}

#[test]
fn only_changes_translation_reads_are_handed_over() {
    let mut store = KindStore::default();
    store.begin_list();
    store.end_list();
    assert_eq!(store.apply(key_of("a"), pod(true, &[("version", "v1")])).len(), 1);
    assert!(store.apply(key_of("a"), pod(true, &[("version", "v1")])).is_empty(), "same slim pod: no change");
    assert_eq!(store.apply(key_of("a"), pod(false, &[("version", "v1")])).len(), 1, "readiness changed");
    assert_eq!(store.apply(key_of("a"), pod(false, &[("version", "v2")])).len(), 1, "labels changed");
    assert_eq!(names(&store.delete(&key_of("a"))), ["-reviews-1"]);
    assert!(store.delete(&key_of("a")).is_empty());
}

#[test]
fn an_object_that_does_not_read_is_handed_over_by_name_for_its_last_valid_version_to_stand_in() {
    let mut store = KindStore::default();
    store.apply(key_of("vs"), convert::istio(Kind::VirtualService, virtual_service("vs", json!({ "hosts": ["a"] }))));
    let units =
        store.apply(key_of("vs"), convert::istio(Kind::VirtualService, virtual_service("vs", json!({ "hosts": 1 }))));
    let read = units[0].1.as_ref().expect("set");
    assert!(read.inputs.is_empty());
    assert_eq!(read.unreadable[0].name, "vs");
    assert_eq!(read.diagnostics.len(), 1);
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
    assert!(problems[0].message.contains("serviceentries.networking.istio.io is not installed"), "{problems:?}");
    let status = store.status(None);
    let SourceDetail::Kubernetes { kinds, .. } = status.detail else { panic!("{:?}", status.detail) };
    assert!(!kinds["ServiceEntry"].installed);
    assert_eq!(kinds["DestinationRule"].api_version.as_deref(), Some("networking.istio.io/v1"));
    assert_eq!(kinds["Pod"].api_version.as_deref(), Some("v1"));
}

#[test]
fn a_forgotten_kind_drops_its_objects_and_waits_for_its_crd() {
    let mut store = Store::default();
    let gateways = store.kind(Kind::Gateway);
    gateways.set_installed(Some("networking.istio.io/v1".to_owned()));
    gateways.begin_list();
    gateways.apply(key_of("gw"), pod(true, &[]));
    gateways.end_list();
    assert_eq!(names(&gateways.forget()), ["-reviews-1"]);
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
fn an_unchanged_object_stays_the_same_shared_object_through_a_relist() {
    let mut store = KindStore::default();
    store.apply(key_of("a"), pod(true, &[("app", "web")]));
    let stored = |store: &KindStore| store.objects[&key_of("a")].input.clone().expect("stored");
    let first = stored(&store);
    // A relist, or an update of something translation does not read: an equal object arrives.
    store.begin_list();
    store.apply(key_of("a"), pod(true, &[("app", "web")]));
    assert!(store.end_list().is_empty());
    assert!(stored(&store).same(&first), "kept the object translation already knows");
    assert_eq!(store.apply(key_of("a"), pod(false, &[("app", "web")])).len(), 1);
    assert!(!stored(&store).same(&first));
}
