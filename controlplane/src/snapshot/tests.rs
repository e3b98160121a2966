use std::net::SocketAddr;

use super::*;
use crate::builders::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn bookinfo() -> SnapshotBuilder {
    let mut builder = SnapshotBuilder::default();
    builder
        .add_message(&http_listener("0.0.0.0_8080", addr(8080), "http.8080"))
        .and_then(|b| b.add_message(&route_config("http.8080", vec![weighted_route("/", &[("v1", 80), ("v2", 20)])])))
        .and_then(|b| b.add_message(&eds_cluster("v1")))
        .and_then(|b| b.add_message(&eds_cluster("v2")))
        .and_then(|b| b.add_message(&load_assignment("v1", &[addr(9001)])))
        .and_then(|b| b.add_message(&load_assignment("v2", &[addr(9002)])))
        .expect("valid resources");
    builder
}

#[test]
fn records_references_between_types() {
    let snapshot = bookinfo().build();
    let listener = snapshot.resources(ResourceType::Listener).get("0.0.0.0_8080").expect("listener");
    assert_eq!(listener.references.routes, BTreeSet::from(["http.8080".to_owned()]));
    let routes = snapshot.resources(ResourceType::Route).get("http.8080").expect("routes");
    assert_eq!(routes.references.clusters, BTreeSet::from(["v1".to_owned(), "v2".to_owned()]));
    let cluster = snapshot.resources(ResourceType::Cluster).get("v1").expect("cluster");
    assert_eq!(cluster.references.endpoints.as_deref(), Some("v1"));
    assert_eq!(snapshot.consistent().ok(), Some(()));
}

#[test]
fn versions_are_content_hashes() {
    let a = bookinfo().build();
    let b = bookinfo().build();
    assert_eq!(a, b);
    for kind in ResourceType::ALL {
        assert_eq!(a.resources(kind).version(), b.resources(kind).version());
    }
    let mut changed = SnapshotBuilder::default();
    changed.add_message(&load_assignment("v1", &[addr(9003)])).expect("valid");
    let (_, moved) = Resource::from_message(&load_assignment("v1", &[addr(9003)])).expect("valid");
    let before = a.resources(ResourceType::Endpoint).get("v1").expect("v1");
    assert_ne!(before.version, moved.version);
    assert_eq!(before.version.len(), 16);
}

#[test]
fn consistent_finds_missing_and_orphaned_references() {
    let mut builder = SnapshotBuilder::default();
    builder
        .add_message(&http_listener("l", addr(1), "missing-routes"))
        .and_then(|b| b.add_message(&route_config("orphan-routes", vec![])))
        .and_then(|b| b.add_message(&eds_cluster("no-endpoints")))
        .and_then(|b| b.add_message(&load_assignment("no-cluster", &[])))
        .expect("valid resources");
    let err = builder.build().consistent().expect_err("inconsistent").to_string();
    for problem in [
        "cluster \"no-endpoints\" has no endpoints resource",
        "endpoints \"no-cluster\" belong to no EDS cluster",
        "listener \"l\" loads route configuration \"missing-routes\"",
        "route configuration \"orphan-routes\" is loaded by no listener",
    ] {
        assert!(err.contains(problem), "{problem} not in {err}");
    }
}

#[test]
fn refuses_duplicates_unnamed_and_foreign_types() {
    let mut builder = bookinfo();
    let dup = builder.add_message(&eds_cluster("v1")).expect_err("duplicate");
    assert!(dup.to_string().contains("already taken"), "{dup}");
    let unnamed = builder.add_message(&eds_cluster("")).expect_err("unnamed");
    assert!(unnamed.to_string().contains("needs a name"), "{unnamed}");
    let foreign = Any { type_url: "type.googleapis.com/google.protobuf.Struct".into(), value: vec![] };
    let err = builder.add_any(&foreign).expect_err("unsupported");
    assert!(err.to_string().contains("google.protobuf.Struct"), "{err}");
}
