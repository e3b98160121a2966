//! Protocol rules, checked on every response a fake proxy receives.

use std::net::SocketAddr;

use super::*;
use crate::builders::*;
use crate::snapshot::SnapshotBuilder;

use ResourceType::{Cluster, Endpoint, Listener, Route};

const LISTENER: &str = "0.0.0.0_8080";
const ROUTES: &str = "http.8080";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A listener routing everything over `clusters` by weight; each cluster with one endpoint on `port_base + i`.
fn world(clusters: &[(&str, u32)], port_base: u16) -> Arc<Snapshot> {
    let mut builder = SnapshotBuilder::default();
    builder.add_message(&http_listener(LISTENER, addr(8080), ROUTES)).expect("listener");
    builder.add_message(&route_config(ROUTES, vec![weighted_route("/", clusters)])).expect("routes");
    for (i, (name, _)) in clusters.iter().enumerate() {
        builder.add_message(&eds_cluster(name)).expect("cluster");
        let port = port_base + u16::try_from(i).expect("few clusters");
        builder.add_message(&load_assignment(name, &[addr(port)])).expect("endpoints");
    }
    let snapshot = builder.build();
    snapshot.consistent().expect("consistent");
    Arc::new(snapshot)
}

/// Drives a [`StreamState`] the way Envoy does, checking protocol rules on every response.
struct FakeProxy {
    state: StreamState,
    last_nonce: u64,
    /// Every response received, in order.
    log: Vec<Response>,
    /// Nonces the proxy has answered (ACK or NACK).
    answered: BTreeSet<String>,
}

impl FakeProxy {
    fn new(protocol: Protocol, snapshot: Arc<Snapshot>) -> FakeProxy {
        FakeProxy {
            state: StreamState::new(protocol, snapshot),
            last_nonce: 0,
            log: Vec::new(),
            answered: BTreeSet::new(),
        }
    }

    fn check(&mut self, responses: Vec<Response>) -> Vec<Response> {
        let mut previous_kind = None;
        for response in &responses {
            let nonce: u64 = response.nonce.parse().expect("numeric nonce");
            assert!(nonce > self.last_nonce, "nonce {nonce} does not rise above {}", self.last_nonce);
            self.last_nonce = nonce;
            for resource in &response.resources {
                assert_eq!(resource.body.type_url, response.kind.type_url(), "resource type matches response type");
            }
            assert!(previous_kind <= Some(response.kind), "responses leave in push order: {responses:?}");
            previous_kind = Some(response.kind);
            // One response in flight per type.
            let in_flight = self.log.iter().rfind(|r| r.kind == response.kind);
            if let Some(previous) = in_flight {
                assert!(
                    self.answered.contains(&previous.nonce),
                    "{} sent nonce {} while nonce {} was unanswered",
                    response.kind,
                    response.nonce,
                    previous.nonce
                );
            }
        }
        self.log.extend(responses.iter().cloned());
        responses
    }

    fn request(&mut self, kind: ResourceType, request: Request) -> Vec<Response> {
        if !request.response_nonce.is_empty() {
            self.answered.insert(request.response_nonce.clone());
        }
        let (_, responses) = self.state.on_request(kind, request);
        self.check(responses)
    }

    fn subscribe(&mut self, kind: ResourceType, names: &[&str]) -> Vec<Response> {
        self.request(kind, Request { subscribe: names.iter().map(|n| (*n).to_owned()).collect(), ..Default::default() })
    }

    fn ack(&mut self, response: &Response, names: &[&str]) -> Vec<Response> {
        self.request(
            response.kind,
            Request {
                response_nonce: response.nonce.clone(),
                version_info: response.version.clone(),
                subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
                ..Default::default()
            },
        )
    }

    fn nack(&mut self, response: &Response, accepted_version: &str, names: &[&str]) -> Vec<Response> {
        self.request(
            response.kind,
            Request {
                response_nonce: response.nonce.clone(),
                version_info: accepted_version.to_owned(),
                error: Some("rejected by the fake proxy".to_owned()),
                subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
                ..Default::default()
            },
        )
    }

    fn snapshot(&mut self, snapshot: Arc<Snapshot>) -> Vec<Response> {
        let responses = self.state.on_snapshot(snapshot);
        self.check(responses)
    }

    fn status(&self, kind: ResourceType) -> &'static str {
        self.state.sync()[kind.index()].status().as_str()
    }
}

fn kinds(responses: &[Response]) -> Vec<ResourceType> {
    responses.iter().map(|r| r.kind).collect()
}

fn names(response: &Response) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

fn one(responses: Vec<Response>, kind: ResourceType) -> Response {
    let [response] = <[Response; 1]>::try_from(responses).unwrap_or_else(|r| panic!("expected one {kind}, got {r:?}"));
    assert_eq!(response.kind, kind);
    response
}

fn none(responses: Vec<Response>) {
    assert!(responses.is_empty(), "expected no response, got {responses:?}");
}

/// Brings a SotW proxy to a fully ACKed state, in the order Envoy asks: clusters, their endpoints, listeners, routes.
#[test]
fn a_sotw_proxy_whose_route_table_went_away_with_its_listener_is_synced() {
    // The only Gateway is deleted: no listener, no route table. SotW has no way to remove the route table, and
    // Envoy keeps its RDS subscription; it runs everything the latest configuration has.
    let mut proxy = synced_sotw(world(&[("a", 100)], 9000), &["a"]);
    let mut builder = SnapshotBuilder::default();
    builder.add_message(&eds_cluster("a")).expect("cluster");
    builder.add_message(&load_assignment("a", &[addr(9000)])).expect("endpoints");
    let lds = one(proxy.snapshot(Arc::new(builder.build())), Listener);
    assert!(lds.resources.is_empty());
    none(proxy.ack(&lds, &[]));
    for kind in ResourceType::ALL {
        assert_eq!(proxy.status(kind), "SYNCED", "{kind}");
    }
}

fn synced_sotw(snapshot: Arc<Snapshot>, clusters: &[&str]) -> FakeProxy {
    let mut proxy = FakeProxy::new(Protocol::Sotw, snapshot);
    let cds = one(proxy.subscribe(Cluster, &[]), Cluster);
    none(proxy.ack(&cds, &[]));
    let eds = one(proxy.subscribe(Endpoint, clusters), Endpoint);
    none(proxy.ack(&eds, clusters));
    let lds = one(proxy.subscribe(Listener, &[]), Listener);
    none(proxy.ack(&lds, &[]));
    let rds = one(proxy.subscribe(Route, &[ROUTES]), Route);
    none(proxy.ack(&rds, &[ROUTES]));
    for kind in ResourceType::ALL {
        assert_eq!(proxy.status(kind), "SYNCED", "{kind}");
    }
    proxy
}

#[test]
fn sotw_first_push_warms_clusters_before_listeners() {
    let proxy = synced_sotw(world(&[("v1", 100)], 9000), &["v1"]);
    assert_eq!(kinds(&proxy.log), [Cluster, Endpoint, Listener, Route]);
    assert_eq!(names(&proxy.log[0]), ["v1"]);
    assert_eq!(names(&proxy.log[2]), [LISTENER]);

    // A proxy asking for routes before its clusters are warm gets them once the endpoints are ACKed. (The listener
    // itself sends no traffic to a cluster: it waits in Envoy's warming state for its routes.)
    let mut eager = FakeProxy::new(Protocol::Sotw, world(&[("v1", 100)], 9000));
    let cds = one(eager.subscribe(Cluster, &[]), Cluster);
    let lds = one(eager.subscribe(Listener, &[]), Listener);
    none(eager.ack(&lds, &[]));
    none(eager.subscribe(Route, &[ROUTES]));
    none(eager.ack(&cds, &[]));
    let eds = one(eager.subscribe(Endpoint, &["v1"]), Endpoint);
    let rds = one(eager.ack(&eds, &["v1"]), Route);
    assert_eq!(names(&rds), [ROUTES]);
}

#[test]
fn an_acked_config_is_not_sent_again() {
    let snapshot = world(&[("v1", 100)], 9000);
    let mut proxy = synced_sotw(Arc::clone(&snapshot), &["v1"]);
    none(proxy.snapshot(snapshot));
    none(proxy.snapshot(world(&[("v1", 100)], 9000)));
    none(proxy.subscribe(Endpoint, &["v1"]));
}

#[test]
fn an_endpoint_change_sends_only_endpoints() {
    let mut proxy = synced_sotw(world(&[("v1", 100)], 9000), &["v1"]);
    let eds = one(proxy.snapshot(world(&[("v1", 100)], 9100)), Endpoint);
    assert_eq!(names(&eds), ["v1"]);
    assert_eq!(proxy.status(Endpoint), "STALE");
    none(proxy.ack(&eds, &["v1"]));
    assert_eq!(proxy.status(Endpoint), "SYNCED");
}

#[test]
fn routes_to_a_new_cluster_wait_until_its_endpoints_are_acked() {
    let mut proxy = synced_sotw(world(&[("v1", 100)], 9000), &["v1"]);
    // v2 appears and the route shifts to it: only the cluster goes out first.
    let cds = one(proxy.snapshot(world(&[("v1", 50), ("v2", 50)], 9000)), Cluster);
    assert_eq!(names(&cds), ["v1", "v2"]);
    // The CDS ACK is not enough: the cluster is not warm until its endpoints arrive.
    none(proxy.ack(&cds, &[]));
    let eds = one(proxy.subscribe(Endpoint, &["v1", "v2"]), Endpoint);
    assert_eq!(names(&eds), ["v1", "v2"]);
    assert_eq!(proxy.status(Route), "STALE", "routes are behind while held");
    assert_eq!(
        proxy.state.held(),
        [Held { kind: Route, name: ROUTES.to_owned(), waiting_for: vec!["v2".to_owned()] }],
        "the route waits for v2's endpoints"
    );
    let rds = one(proxy.ack(&eds, &["v1", "v2"]), Route);
    let clusters = &rds.resources[0].references.clusters;
    assert!(clusters.contains("v2"));
    none(proxy.ack(&rds, &[ROUTES]));
    assert_eq!(proxy.status(Route), "SYNCED");
}

#[test]
fn a_removed_cluster_stays_until_routes_stop_using_it() {
    let mut proxy = synced_sotw(world(&[("v1", 50), ("v2", 50)], 9000), &["v1", "v2"]);
    // v2 goes: routes move first, the cluster is removed once the proxy ACKed the routes.
    let rds = one(proxy.snapshot(world(&[("v1", 100)], 9000)), Route);
    assert_eq!(rds.resources[0].references.clusters, BTreeSet::from(["v1".to_owned()]));
    let cds = one(proxy.ack(&rds, &[ROUTES]), Cluster);
    assert_eq!(names(&cds), ["v1"]);
    none(proxy.ack(&cds, &[]));
    // Envoy drops the endpoint subscription with the cluster; nothing is sent for it.
    none(proxy.subscribe(Endpoint, &["v1"]));
    for kind in ResourceType::ALL {
        assert_eq!(proxy.status(kind), "SYNCED", "{kind}");
    }
}

#[test]
fn a_nack_keeps_the_last_ack_and_stops_resending_until_the_input_changes() {
    let mut proxy = synced_sotw(world(&[("v1", 100)], 9000), &["v1"]);
    let good_version = proxy.state.sync()[Endpoint.index()].acked_version.clone().expect("acked");
    let eds = one(proxy.snapshot(world(&[("v1", 100)], 9100)), Endpoint);
    // Envoy rejects it, echoing the version it still runs.
    none(proxy.nack(&eds, &good_version, &["v1"]));
    assert_eq!(proxy.status(Endpoint), "NACKED");
    let sync = &proxy.state.sync()[Endpoint.index()];
    assert_eq!(sync.acked_version.as_deref(), Some(good_version.as_str()));
    assert_eq!(sync.nack.as_ref().map(|n| n.rejected_version.as_str()), Some(eds.version.as_str()));
    // Nothing provokes a resend of the rejected set: the same snapshot, a repeated request, other types' ACKs.
    none(proxy.snapshot(world(&[("v1", 100)], 9100)));
    none(proxy.subscribe(Endpoint, &["v1"]));
    // A changed input is sent.
    let fixed = one(proxy.snapshot(world(&[("v1", 100)], 9200)), Endpoint);
    assert_ne!(fixed.version, eds.version);
    none(proxy.ack(&fixed, &["v1"]));
    assert_eq!(proxy.status(Endpoint), "SYNCED");
    assert!(proxy.state.sync()[Endpoint.index()].last_nack.is_some(), "the NACK stays in history");
}

#[test]
fn a_stale_nonce_is_ignored() {
    let mut proxy = synced_sotw(world(&[("v1", 100)], 9000), &["v1"]);
    let first = one(proxy.snapshot(world(&[("v1", 100)], 9100)), Endpoint);
    // An old nonce must neither ACK the response in flight nor change the subscription.
    let (outcome, responses) = proxy.state.on_request(
        Endpoint,
        Request { response_nonce: "1".into(), subscribe: vec!["v1".into(), "other".into()], ..Default::default() },
    );
    assert_eq!(outcome, RequestOutcome::Stale);
    none(responses);
    assert_eq!(proxy.status(Endpoint), "STALE");
    none(proxy.ack(&first, &["v1"]));
    assert_eq!(proxy.status(Endpoint), "SYNCED");
}

#[test]
fn unsubscribe_then_resubscribe_resends() {
    let mut proxy = synced_sotw(world(&[("v1", 100)], 9000), &["v1"]);
    let last_eds = proxy.log.iter().rfind(|r| r.kind == Endpoint).cloned().expect("eds");
    none(proxy.ack(&last_eds, &[]));
    let again = one(proxy.ack(&last_eds, &["v1"]), Endpoint);
    assert_eq!(names(&again), ["v1"]);
}

#[test]
fn a_reconnecting_sotw_proxy_with_current_versions_gets_nothing() {
    let snapshot = world(&[("v1", 100)], 9000);
    let first = synced_sotw(Arc::clone(&snapshot), &["v1"]);
    let versions: Vec<String> = first.state.sync().iter().map(|s| s.acked_version.clone().expect("acked")).collect();
    // A new stream (say, after a control plane restart) from the same proxy.
    let mut proxy = FakeProxy::new(Protocol::Sotw, snapshot);
    let with_version = |kind: ResourceType, names: &[&str]| Request {
        version_info: versions[kind.index()].clone(),
        subscribe: names.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    };
    none(proxy.request(Cluster, with_version(Cluster, &[])));
    none(proxy.request(Listener, with_version(Listener, &[])));
    none(proxy.request(Endpoint, with_version(Endpoint, &["v1"])));
    none(proxy.request(Route, with_version(Route, &[ROUTES])));
    for kind in ResourceType::ALL {
        assert_eq!(proxy.status(kind), "SYNCED", "{kind}");
    }
}

#[test]
fn a_wildcard_request_is_answered_even_when_empty() {
    for protocol in [Protocol::Sotw, Protocol::Delta] {
        let mut proxy = FakeProxy::new(protocol, Arc::new(Snapshot::empty()));
        let cds = one(proxy.subscribe(Cluster, &[]), Cluster);
        assert!(cds.resources.is_empty());
        let lds = one(proxy.subscribe(Listener, &[]), Listener);
        assert!(lds.resources.is_empty());
        none(proxy.subscribe(Route, &[ROUTES]));
    }
}

#[test]
fn types_never_requested_are_never_pushed() {
    let mut proxy = FakeProxy::new(Protocol::Sotw, world(&[("v1", 100)], 9000));
    let cds = one(proxy.subscribe(Cluster, &[]), Cluster);
    none(proxy.ack(&cds, &[]));
    none(proxy.snapshot(world(&[("v1", 100)], 9100)));
}

fn delta_request(subscribe: &[&str], initial: &[(&str, &str)]) -> Request {
    Request {
        subscribe: subscribe.iter().map(|n| (*n).to_owned()).collect(),
        initial_versions: initial.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect(),
        ..Default::default()
    }
}

fn delta_ack(response: &Response) -> Request {
    Request { response_nonce: response.nonce.clone(), ..Default::default() }
}

fn synced_delta(snapshot: Arc<Snapshot>, clusters: &[&str]) -> FakeProxy {
    let mut proxy = FakeProxy::new(Protocol::Delta, snapshot);
    let cds = one(proxy.request(Cluster, delta_request(&[], &[])), Cluster);
    none(proxy.request(Cluster, delta_ack(&cds)));
    let eds = one(proxy.request(Endpoint, delta_request(clusters, &[])), Endpoint);
    none(proxy.request(Endpoint, delta_ack(&eds)));
    let lds = one(proxy.request(Listener, delta_request(&[], &[])), Listener);
    none(proxy.request(Listener, delta_ack(&lds)));
    let rds = one(proxy.request(Route, delta_request(&[ROUTES], &[])), Route);
    none(proxy.request(Route, delta_ack(&rds)));
    for kind in ResourceType::ALL {
        assert_eq!(proxy.status(kind), "SYNCED", "{kind}");
    }
    proxy
}

#[test]
fn delta_sends_changes_and_removals_only() {
    let mut proxy = FakeProxy::new(Protocol::Delta, world(&[("v1", 100)], 9000));
    let cds = one(proxy.request(Cluster, delta_request(&[], &[])), Cluster);
    assert_eq!(names(&cds), ["v1"]);
    let lds = one(proxy.request(Listener, delta_request(&[], &[])), Listener);
    assert_eq!(names(&lds), [LISTENER]);
    none(proxy.request(Listener, delta_ack(&lds)));
    none(proxy.request(Route, delta_request(&[ROUTES], &[])));
    none(proxy.request(Cluster, delta_ack(&cds)));
    let eds = one(proxy.request(Endpoint, delta_request(&["v1"], &[])), Endpoint);
    let rds = one(proxy.request(Endpoint, delta_ack(&eds)), Route);
    assert_eq!(names(&rds), [ROUTES], "routes wait until the cluster they use is warm");
    none(proxy.request(Route, delta_ack(&rds)));

    // Add v2 beside v1: only v2 is sent, then its endpoints, then the routes.
    let cds = one(proxy.snapshot(world(&[("v1", 50), ("v2", 50)], 9000)), Cluster);
    assert_eq!(names(&cds), ["v2"]);
    assert!(cds.removed.is_empty());
    none(proxy.request(Cluster, delta_ack(&cds)));
    let eds = one(proxy.request(Endpoint, delta_request(&["v2"], &[])), Endpoint);
    assert_eq!(names(&eds), ["v2"]);
    let rds = one(proxy.request(Endpoint, delta_ack(&eds)), Route);
    none(proxy.request(Route, delta_ack(&rds)));

    // Remove v1: routes first; once they are ACKed, the cluster and its endpoints.
    let rds = one(proxy.snapshot(world(&[("v2", 100)], 9001)), Route);
    let removals = proxy.request(Route, delta_ack(&rds));
    assert_eq!(kinds(&removals), [Cluster, Endpoint]);
    assert!(removals.iter().all(|r| r.resources.is_empty() && r.removed == ["v1"]), "{removals:?}");
    none(proxy.request(Cluster, delta_ack(&removals[0])));
    none(proxy.request(Endpoint, delta_ack(&removals[1])));
    for kind in ResourceType::ALL {
        none(proxy.request(kind, Request::default()).into_iter().filter(|r| r.kind == kind).collect());
    }
}

#[test]
fn delta_reconnect_sends_only_what_differs() {
    let old = synced_delta(world(&[("v1", 50), ("v2", 50)], 9000), &["v1", "v2"]);
    let had = |kind: ResourceType| -> Vec<(String, String)> {
        old.state.acked(kind).iter().map(|(n, r)| (n.clone(), r.version.clone())).collect()
    };
    let (clusters, endpoints) = (had(Cluster), had(Endpoint));
    // The server restarted; meanwhile v2's endpoints moved.
    let mut proxy = FakeProxy::new(Protocol::Delta, world(&[("v1", 50), ("v2", 50)], 9000));
    proxy.state.snapshot = world(&[("v1", 50), ("v2", 50)], 9000);
    let initial = |set: &[(String, String)]| -> BTreeMap<String, String> { set.iter().cloned().collect() };
    let cds =
        one(proxy.request(Cluster, Request { initial_versions: initial(&clusters), ..Default::default() }), Cluster);
    assert!(cds.resources.is_empty() && cds.removed.is_empty(), "first wildcard answer, nothing new: {cds:?}");
    none(proxy.request(Cluster, delta_ack(&cds)));
    let mut moved = endpoints.clone();
    moved[1].1 = "0000000000000000".into();
    let eds = one(
        proxy.request(
            Endpoint,
            Request {
                subscribe: vec!["v1".into(), "v2".into()],
                initial_versions: initial(&moved),
                ..Default::default()
            },
        ),
        Endpoint,
    );
    assert_eq!(names(&eds), ["v2"], "only the endpoints whose version differs");
}

#[test]
fn delta_announces_removed_resources() {
    let mut proxy = synced_delta(world(&[("v1", 100)], 9000), &["v1"]);
    let responses = proxy.snapshot(Arc::new(Snapshot::empty()));
    assert_eq!(kinds(&responses), [Listener, Route]);
    assert_eq!(responses[0].removed, [LISTENER]);
    assert_eq!(responses[1].removed, [ROUTES]);
}

#[test]
fn delta_resource_subscribed_before_it_exists_arrives_when_created() {
    let mut proxy = FakeProxy::new(Protocol::Delta, Arc::new(Snapshot::empty()));
    none(proxy.request(Endpoint, delta_request(&["v1"], &[])));
    let eds = one(proxy.snapshot(world(&[("v1", 100)], 9000)), Endpoint);
    assert_eq!(names(&eds), ["v1"]);
}

#[test]
fn delta_unsubscribe_then_subscribe_resends() {
    let mut proxy = synced_delta(world(&[("v1", 100)], 9000), &["v1"]);
    none(proxy.request(Endpoint, Request { unsubscribe: vec!["v1".into()], ..Default::default() }));
    let eds = one(proxy.request(Endpoint, delta_request(&["v1"], &[])), Endpoint);
    assert_eq!(names(&eds), ["v1"]);
}

#[test]
fn delta_nack_is_not_resent() {
    let mut proxy = synced_delta(world(&[("v1", 100)], 9000), &["v1"]);
    let eds = one(proxy.snapshot(world(&[("v1", 100)], 9100)), Endpoint);
    none(proxy.request(Endpoint, Request { error: Some("bad".into()), ..delta_ack(&eds) }));
    assert_eq!(proxy.status(Endpoint), "NACKED");
    none(proxy.snapshot(world(&[("v1", 100)], 9100)));
    none(proxy.request(Endpoint, delta_request(&[], &[])));
    // Back to what the proxy runs: nothing to send. Something new: sent.
    none(proxy.snapshot(world(&[("v1", 100)], 9000)));
    one(proxy.snapshot(world(&[("v1", 100)], 9200)), Endpoint);
}
