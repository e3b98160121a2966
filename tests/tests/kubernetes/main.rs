//! The Kubernetes source against a real kube-apiserver and etcd (see `harness.rs`): objects created, changed and
//! deleted through the API reach the snapshot a gateway is served, and through Envoy, real traffic. Recovery is
//! tested the real way: the apiserver is killed and started again, a client is cut off while etcd is compacted (a
//! real 410 Gone), and CRDs are installed while pilotfish runs.
//!
//! Each test runs its own cluster (a few seconds to start); waits poll the cache with a deadline, never sleep.

mod harness;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use api_protos::ResourceType;
use controlplane::State;
use controlplane::bootstrap::{BootstrapOptions, render_yaml};
use controlplane::crds::ISTIO_KINDS;
use controlplane::pipeline::Debounce;
use controlplane::shutdown::{self, Trigger};
use controlplane::snapshot::Snapshot;
use controlplane::sources::kubernetes::{KubernetesSource, Settings};
use e2e::{Backend, Envoy, count_backends, eventually, free_port, http_get};
use harness::{Cluster, Proxy, install_crds};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use translator::{ProxyClass, Role};

const TIMEOUT: Duration = Duration::from_secs(30);
/// A short debounce: the tests wait for each change.
const QUICK: Debounce = Debounce { quiet: Duration::from_millis(20), max_delay: Duration::from_millis(200) };

/// Starts a cluster, or ends the test (skipped, loudly) when its binaries cannot be had outside CI.
macro_rules! cluster {
    ($($arg:expr),*) => {
        match Cluster::start_with(&[$($arg),*]).await? {
            Some(cluster) => cluster,
            None => return Ok(()),
        }
    };
}

mod lab_cluster;

// === pilotfish, in process ===

/// pilotfish's Kubernetes source (and, on request, its ADS server) in this process, and the gateway class whose
/// snapshot tests look at.
struct Pilotfish {
    state: State,
    class: ProxyClass,
    _class_watch: watch::Receiver<Arc<Snapshot>>,
    source: JoinHandle<()>,
    /// Dropped with the fixture: the source and the pipeline stop.
    _stop: Trigger,
    xds: Option<(SocketAddr, oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Pilotfish {
    fn start(client: Client, namespace: &str) -> Pilotfish {
        let state = State::default();
        let settings = Settings {
            namespace: Some(namespace.to_owned()),
            discovery_interval: Duration::from_millis(300),
            max_backoff: Duration::from_millis(500),
        };
        let (stop, stopped) = shutdown::channel();
        tokio::spawn(Arc::clone(&state.pipeline).run(QUICK, stopped.clone()));
        let source = tokio::spawn(KubernetesSource::new(client, settings, &state.pipeline).run(stopped));
        let mut class = ProxyClass::new(Role::Gateway);
        class.namespace = namespace.to_owned();
        class.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
        let class_watch = state.cache.watch(&class);
        Pilotfish { state, class, _class_watch: class_watch, source, _stop: stop, xds: None }
    }

    /// Also serves ADS on a loopback port, for Envoy.
    async fn serve_xds(&mut self) -> Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let _ = controlplane::server::serve(listener, state, async {
                let _ = stopped.await;
            })
            .await;
        });
        self.xds = Some((addr, stop, task));
        Ok(addr)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.state.cache.get(&self.class)
    }

    fn inputs(&self) -> Value {
        // What `/debug/inputs` serves: nothing until the source has listed every kind.
        let view = self.state.pipeline.view();
        if view.ready { serde_json::to_value(view.as_ref()).unwrap_or(Value::Null) } else { Value::Null }
    }

    /// Waits until the gateway's snapshot passes `check`.
    async fn until(&self, what: &str, check: impl Fn(&Snapshot) -> Result<()>) -> Result<()> {
        eventually(TIMEOUT, what, || {
            let result = check(&self.snapshot());
            async move { result }
        })
        .await
    }

    /// Waits until `/debug/inputs` passes `check`.
    async fn until_inputs(&self, what: &str, check: impl Fn(&Value) -> Result<()>) -> Result<()> {
        eventually(TIMEOUT, what, || {
            let result = check(&self.inputs());
            async move { result }
        })
        .await
    }
}

impl Drop for Pilotfish {
    fn drop(&mut self) {
        self.source.abort();
        if let Some((_, stop, task)) = self.xds.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}

fn names(snapshot: &Snapshot, kind: ResourceType) -> Vec<String> {
    snapshot.resources(kind).names().cloned().collect()
}

fn has(snapshot: &Snapshot, kind: ResourceType, name: &str) -> Result<()> {
    let names = names(snapshot, kind);
    ensure!(names.iter().any(|n| n == name), "no {kind:?} {name} in {names:?}");
    Ok(())
}

fn lacks(snapshot: &Snapshot, kind: ResourceType, name: &str) -> Result<()> {
    let names = names(snapshot, kind);
    ensure!(!names.iter().any(|n| n == name), "{kind:?} {name} still served: {names:?}");
    Ok(())
}

/// `address:port` of every endpoint of `cluster`, sorted.
fn endpoints(snapshot: &Snapshot, cluster: &str) -> Result<Vec<String>> {
    let resource = snapshot.resources(ResourceType::Endpoint).get(cluster).cloned();
    let resource = resource.with_context(|| format!("no endpoints for {cluster}"))?;
    let json = api_protos::reflect::to_json(&resource.body)?;
    let mut found = Vec::new();
    socket_addresses(&json, &mut found);
    found.sort();
    Ok(found)
}

fn socket_addresses(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(socket) = map.get("socket_address").or_else(|| map.get("socketAddress")) {
                let port = socket.get("port_value").or_else(|| socket.get("portValue")).cloned().unwrap_or_default();
                found.push(format!("{}:{}", socket["address"].as_str().unwrap_or_default(), port));
            }
            map.values().for_each(|v| socket_addresses(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| socket_addresses(v, found)),
        _ => {}
    }
}

fn endpoints_are(snapshot: &Snapshot, cluster: &str, expected: &[&str]) -> Result<()> {
    let found = endpoints(snapshot, cluster)?;
    ensure!(found == expected, "{cluster}: endpoints {found:?}, expected {expected:?}");
    Ok(())
}

// === the cluster side ===

/// Objects of one namespace, through the API.
struct Objects {
    client: Client,
    namespace: String,
}

impl Objects {
    async fn new(client: Client, namespace: &str) -> Result<Objects> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let object = serde_json::from_value(json!({ "metadata": { "name": namespace } }))?;
        namespaces.create(&PostParams::default(), &object).await.context("creating the namespace")?;
        Ok(Objects { client, namespace: namespace.to_owned() })
    }

    fn api(&self, api_version: &str, kind: &str) -> Api<DynamicObject> {
        let resource = match kind {
            "Service" => ApiResource::erase::<Service>(&()),
            "Pod" => ApiResource::erase::<Pod>(&()),
            "EndpointSlice" => ApiResource::erase::<EndpointSlice>(&()),
            _ => {
                let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
                let plural = ISTIO_KINDS.iter().find(|k| k.kind == kind).map_or("", |k| k.plural);
                ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
            }
        };
        Api::namespaced_with(self.client.clone(), &self.namespace, &resource)
    }

    async fn create(&self, object: Value) -> Result<()> {
        let (api_version, kind) = (object["apiVersion"].as_str(), object["kind"].as_str());
        let (Some(api_version), Some(kind)) = (api_version, kind) else { bail!("no apiVersion or kind: {object}") };
        let api = self.api(api_version, kind);
        let object: DynamicObject = serde_json::from_value(object.clone())?;
        api.create(&PostParams::default(), &object).await.with_context(|| format!("creating {kind}"))?;
        Ok(())
    }

    async fn patch(&self, api_version: &str, kind: &str, name: &str, patch: Value) -> Result<()> {
        self.api(api_version, kind)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("patching {kind} {name}"))?;
        Ok(())
    }

    async fn delete(&self, api_version: &str, kind: &str, name: &str) -> Result<()> {
        self.api(api_version, kind)
            .delete(name, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting {kind} {name}"))?;
        Ok(())
    }

    /// A pod with `labels` and IP `ip`, running and ready or not (there is no kubelet: the test writes status).
    async fn pod(&self, name: &str, ip: &str, labels: Value, ready: bool) -> Result<()> {
        self.create(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "labels": labels },
            "spec": { "containers": [{ "name": "app", "image": "example.invalid/app" }] },
        }))
        .await?;
        self.pod_ready(name, ip, ready).await
    }

    async fn pod_ready(&self, name: &str, ip: &str, ready: bool) -> Result<()> {
        let status = json!({ "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{ "ip": ip }],
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
        }});
        self.api("v1", "Pod")
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .with_context(|| format!("writing the status of pod {name}"))?;
        Ok(())
    }
}

fn service(name: &str, port: u16, target: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": name },
        "spec": {
            "selector": { "app": name },
            "ports": [{ "name": "http", "port": port, "targetPort": target, "protocol": "TCP" }],
        },
    })
}

/// An EndpointSlice of service `service`: `(address, pod, ready)` per endpoint, all on `port`.
fn endpoint_slice(name: &str, service: &str, port: u16, endpoints: &[(&str, Option<&str>, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(address, pod, ready)| {
            let mut endpoint = json!({ "addresses": [address], "conditions": { "ready": ready } });
            if let Some(pod) = pod {
                endpoint["targetRef"] = json!({ "kind": "Pod", "name": pod });
            }
            endpoint
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": { "name": name, "labels": { "kubernetes.io/service-name": service } },
        "addressType": "IPv4",
        "ports": [{ "name": "http", "port": port, "protocol": "TCP" }],
        "endpoints": endpoints,
    })
}

fn gateway(api_version: &str, port: u16) -> Value {
    json!({
        "apiVersion": api_version, "kind": "Gateway",
        "metadata": { "name": "gw" },
        "spec": {
            "selector": { "istio": "ingressgateway" },
            "servers": [{ "port": { "number": port, "name": "http", "protocol": "HTTP" }, "bind": "127.0.0.1", "hosts": ["*"] }],
        },
    })
}

fn virtual_service(api_version: &str, name: &str, host: &str, route: Value) -> Value {
    json!({
        "apiVersion": api_version, "kind": "VirtualService",
        "metadata": { "name": name },
        "spec": { "hosts": [host], "gateways": ["gw"], "http": [{ "route": route }] },
    })
}

fn cluster_name(port: u16, subset: &str, service: &str, namespace: &str) -> String {
    format!("outbound|{port}|{subset}|{service}.{namespace}.svc.cluster.local")
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crds_are_served_at_every_version() -> Result<()> {
    let cluster = cluster!();
    let client = cluster.client().await?;
    install_crds(&client, &[]).await?;
    let objects = Objects::new(client, "versions").await?;
    // Written at one version, read at another: the apiserver converts (all versions share one schema).
    objects.create(virtual_service("networking.istio.io/v1alpha3", "a", "a.example", json!([]))).await?;
    objects.create(gateway("networking.istio.io/v1beta1", 8080)).await?;
    let read = objects.api("networking.istio.io/v1", "VirtualService").get("a").await?;
    assert_eq!(read.data["spec"]["hosts"], json!(["a.example"]));
    let read = objects.api("networking.istio.io/v1alpha3", "Gateway").get("gw").await?;
    assert_eq!(read.data["spec"]["servers"][0]["port"]["number"], 8080);
    // Unknown fields are kept, not pruned: pilotfish validates specs itself.
    objects.patch("networking.istio.io/v1", "VirtualService", "a", json!({ "spec": { "futureField": 1 } })).await?;
    let read = objects.api("networking.istio.io/v1beta1", "VirtualService").get("a").await?;
    assert_eq!(read.data["spec"]["futureField"], 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_is_followed_through_create_update_and_delete() -> Result<()> {
    let cluster = cluster!();
    let client = cluster.client().await?;
    install_crds(&client, &[]).await?;
    let ns = "follow";
    let objects = Objects::new(client.clone(), ns).await?;
    let pilotfish = Pilotfish::start(client, ns);
    pilotfish
        .until_inputs("ready with an empty namespace", |inputs| {
            ensure!(inputs["objects"].as_array().is_some_and(Vec::is_empty), "inputs: {inputs}");
            Ok(())
        })
        .await?;
    let reviews_v1 = cluster_name(9080, "v1", "reviews", ns);
    let reviews = cluster_name(9080, "", "reviews", ns);

    // Service, EndpointSlice and Pods: the service's cluster and its endpoints.
    objects.create(service("reviews", 9080, 9080)).await?;
    objects.pod("reviews-1", "10.1.0.1", json!({ "app": "reviews", "version": "v1" }), true).await?;
    objects.pod("reviews-2", "10.1.0.2", json!({ "app": "reviews", "version": "v2" }), true).await?;
    objects
        .create(endpoint_slice(
            "reviews-a",
            "reviews",
            9080,
            &[("10.1.0.1", Some("reviews-1"), true), ("10.1.0.2", Some("reviews-2"), true)],
        ))
        .await?;
    // Gateway and VirtualService (written at v1beta1 and v1alpha3): listener, routes.
    objects.create(gateway("networking.istio.io/v1beta1", 8080)).await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1alpha3",
            "reviews",
            "reviews.example",
            json!([{ "destination": { "host": "reviews" } }]),
        ))
        .await?;
    pilotfish
        .until("listener, routes, cluster and endpoints", |s| {
            has(s, ResourceType::Listener, "127.0.0.1_8080")?;
            has(s, ResourceType::Route, "http.8080.127.0.0.1")?;
            has(s, ResourceType::Cluster, &reviews)?;
            endpoints_are(s, &reviews, &["10.1.0.1:9080", "10.1.0.2:9080"])
        })
        .await?;

    // DestinationRule: subset clusters, endpoints by pod labels.
    objects
        .create(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": { "name": "reviews" },
            "spec": { "host": "reviews", "subsets": [{ "name": "v1", "labels": { "version": "v1" } }] },
        }))
        .await?;
    objects
        .patch(
            "networking.istio.io/v1",
            "VirtualService",
            "reviews",
            json!({ "spec": { "http": [{ "route": [{ "destination": { "host": "reviews", "subset": "v1" } }] }] } }),
        )
        .await?;
    pilotfish.until("the v1 subset", |s| endpoints_are(s, &reviews_v1, &["10.1.0.1:9080"])).await?;
    objects
        .patch(
            "networking.istio.io/v1",
            "DestinationRule",
            "reviews",
            json!({ "spec": { "subsets": [{ "name": "v1", "labels": { "version": "v2" } }] } }),
        )
        .await?;
    pilotfish.until("the v1 subset, relabelled", |s| endpoints_are(s, &reviews_v1, &["10.1.0.2:9080"])).await?;

    // ServiceEntry: a cluster of its own.
    let external = "outbound|443||api.external.example";
    objects
        .create(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": { "name": "external" },
            "spec": {
                "hosts": ["api.external.example"], "resolution": "STATIC",
                "ports": [{ "number": 443, "name": "https", "protocol": "TLS" }],
                "endpoints": [{ "address": "10.9.0.1" }],
            },
        }))
        .await?;
    pilotfish.until("the ServiceEntry's endpoints", |s| endpoints_are(s, external, &["10.9.0.1:443"])).await?;
    objects
        .patch(
            "networking.istio.io/v1",
            "ServiceEntry",
            "external",
            json!({ "spec": { "endpoints": [{ "address": "10.9.0.2" }] } }),
        )
        .await?;
    pilotfish.until("the ServiceEntry, updated", |s| endpoints_are(s, external, &["10.9.0.2:443"])).await?;

    // Updates of the registry: a Service port, an EndpointSlice address.
    objects
        .patch(
            "v1",
            "Service",
            "reviews",
            json!({ "spec": { "ports": [{ "name": "http", "port": 9090, "targetPort": 9080, "protocol": "TCP" }] } }),
        )
        .await?;
    pilotfish
        .until("the new service port", |s| {
            lacks(s, ResourceType::Cluster, &reviews)?;
            has(s, ResourceType::Cluster, &cluster_name(9090, "", "reviews", ns))
        })
        .await?;
    objects
        .patch(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "reviews-a",
            json!({ "endpoints": [{ "addresses": ["10.1.0.3"], "conditions": { "ready": true } }] }),
        )
        .await?;
    pilotfish
        .until("the new endpoint address", |s| {
            endpoints_are(s, &cluster_name(9090, "", "reviews", ns), &["10.1.0.3:9080"])
        })
        .await?;

    // Gateway update: the listener moves.
    objects
        .patch("networking.istio.io/v1", "Gateway", "gw", json!({ "spec": { "servers": [{ "port": { "number": 8081, "name": "http", "protocol": "HTTP" }, "bind": "127.0.0.1", "hosts": ["*"] }] } }))
        .await?;
    pilotfish
        .until("the listener on 8081", |s| {
            lacks(s, ResourceType::Listener, "127.0.0.1_8080")?;
            has(s, ResourceType::Listener, "127.0.0.1_8081")
        })
        .await?;

    // Deletes, one kind at a time.
    objects.delete("networking.istio.io/v1", "ServiceEntry", "external").await?;
    pilotfish.until("the ServiceEntry gone", |s| lacks(s, ResourceType::Cluster, external)).await?;
    objects.delete("networking.istio.io/v1", "DestinationRule", "reviews").await?;
    pilotfish
        .until("the subset gone", |s| lacks(s, ResourceType::Cluster, &cluster_name(9090, "v1", "reviews", ns)))
        .await?;
    objects.delete("discovery.k8s.io/v1", "EndpointSlice", "reviews-a").await?;
    objects.delete("v1", "Pod", "reviews-1").await?;
    objects.delete("v1", "Pod", "reviews-2").await?;
    pilotfish.until("no endpoints left", |s| endpoints_are(s, &cluster_name(9090, "", "reviews", ns), &[])).await?;
    objects.delete("networking.istio.io/v1", "VirtualService", "reviews").await?;
    objects.delete("v1", "Service", "reviews").await?;
    objects.delete("networking.istio.io/v1", "Gateway", "gw").await?;
    pilotfish
        .until("nothing left", |s| {
            ensure!(names(s, ResourceType::Listener).is_empty(), "listeners: {:?}", names(s, ResourceType::Listener));
            lacks(s, ResourceType::Cluster, &cluster_name(9090, "", "reviews", ns))
        })
        .await?;
    pilotfish
        .until_inputs("no objects in /debug/inputs", |inputs| {
            ensure!(inputs["objects"].as_array().is_some_and(Vec::is_empty), "objects: {}", inputs["objects"]);
            Ok(())
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subsets_and_endpoints_follow_pod_labels_and_readiness() -> Result<()> {
    let cluster = cluster!();
    let client = cluster.client().await?;
    install_crds(&client, &[]).await?;
    let ns = "pods";
    let objects = Objects::new(client.clone(), ns).await?;
    // `ratings` has EndpointSlices (readiness from the slice); `details` has none (pods picked by the selector).
    objects.create(service("ratings", 9080, 9080)).await?;
    objects.create(service("details", 9080, 9080)).await?;
    objects.pod("ratings-1", "10.2.0.1", json!({ "app": "ratings", "version": "v1" }), true).await?;
    objects.pod("ratings-2", "10.2.0.2", json!({ "app": "ratings", "version": "v1" }), true).await?;
    objects.pod("details-1", "10.3.0.1", json!({ "app": "details" }), true).await?;
    objects.pod("details-2", "10.3.0.2", json!({ "app": "details" }), false).await?;
    objects
        .create(endpoint_slice(
            "ratings-a",
            "ratings",
            9080,
            &[("10.2.0.1", Some("ratings-1"), true), ("10.2.0.2", Some("ratings-2"), true)],
        ))
        .await?;
    objects
        .create(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": { "name": "ratings" },
            "spec": { "host": "ratings", "subsets": [
                { "name": "v1", "labels": { "version": "v1" } },
                { "name": "v2", "labels": { "version": "v2" } },
            ] },
        }))
        .await?;
    objects.create(gateway("networking.istio.io/v1", 8080)).await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "ratings",
            "ratings.example",
            json!([
                { "destination": { "host": "ratings", "subset": "v1" }, "weight": 50 },
                { "destination": { "host": "ratings", "subset": "v2" }, "weight": 50 },
            ]),
        ))
        .await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "details",
            "details.example",
            json!([{ "destination": { "host": "details" } }]),
        ))
        .await?;
    let pilotfish = Pilotfish::start(client, ns);
    let (v1, v2) = (cluster_name(9080, "v1", "ratings", ns), cluster_name(9080, "v2", "ratings", ns));
    let details = cluster_name(9080, "", "details", ns);
    pilotfish
        .until("subsets by pod labels", |s| {
            endpoints_are(s, &v1, &["10.2.0.1:9080", "10.2.0.2:9080"])?;
            endpoints_are(s, &v2, &[])?;
            endpoints_are(s, &details, &["10.3.0.1:9080"])
        })
        .await?;

    // A pod relabelled moves from one subset to the other.
    objects.patch("v1", "Pod", "ratings-2", json!({ "metadata": { "labels": { "version": "v2" } } })).await?;
    pilotfish
        .until("ratings-2 in v2", |s| {
            endpoints_are(s, &v1, &["10.2.0.1:9080"])?;
            endpoints_are(s, &v2, &["10.2.0.2:9080"])
        })
        .await?;

    // EndpointSlice readiness: an endpoint not ready is not served, and comes back when ready.
    let slice = |ready: bool| {
        json!({ "endpoints": [
            { "addresses": ["10.2.0.1"], "conditions": { "ready": true }, "targetRef": { "kind": "Pod", "name": "ratings-1" } },
            { "addresses": ["10.2.0.2"], "conditions": { "ready": ready }, "targetRef": { "kind": "Pod", "name": "ratings-2" } },
        ] })
    };
    objects.patch("discovery.k8s.io/v1", "EndpointSlice", "ratings-a", slice(false)).await?;
    pilotfish.until("ratings-2 not ready", |s| endpoints_are(s, &v2, &[])).await?;
    objects.patch("discovery.k8s.io/v1", "EndpointSlice", "ratings-a", slice(true)).await?;
    pilotfish.until("ratings-2 ready again", |s| endpoints_are(s, &v2, &["10.2.0.2:9080"])).await?;

    // Without slices, pod readiness decides.
    objects.pod_ready("details-2", "10.3.0.2", true).await?;
    pilotfish.until("details-2 ready", |s| endpoints_are(s, &details, &["10.3.0.1:9080", "10.3.0.2:9080"])).await?;
    objects.pod_ready("details-1", "10.3.0.1", false).await?;
    pilotfish.until("details-1 not ready", |s| endpoints_are(s, &details, &["10.3.0.2:9080"])).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_an_apiserver_restart() -> Result<()> {
    let mut cluster = cluster!();
    let client = cluster.client().await?;
    install_crds(&client, &[]).await?;
    let ns = "restart";
    let objects = Objects::new(client, ns).await?;
    objects.create(service("web", 80, 8080)).await?;
    objects.create(endpoint_slice("web-a", "web", 8080, &[("10.4.0.1", None, true)])).await?;
    objects.create(gateway("networking.istio.io/v1", 8080)).await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "web",
            "web.example",
            json!([{ "destination": { "host": "web" } }]),
        ))
        .await?;
    let pilotfish = Pilotfish::start(cluster.client().await?, ns);
    let web = cluster_name(80, "", "web", ns);
    pilotfish.until("web served", |s| endpoints_are(s, &web, &["10.4.0.1:8080"])).await?;

    cluster.stop_apiserver();
    pilotfish
        .until_inputs("the lost watches reported", |inputs| {
            let failing =
                inputs["kinds"].as_object().map_or(0, |kinds| kinds.values().filter(|k| !k["error"].is_null()).count());
            ensure!(failing > 0, "no kind reports a watch error: {}", inputs["kinds"]);
            Ok(())
        })
        .await?;
    endpoints_are(&pilotfish.snapshot(), &web, &["10.4.0.1:8080"])
        .context("the last good config is served meanwhile")?;

    cluster.start_apiserver().await?;
    let objects = Objects { client: cluster.client().await?, namespace: ns.to_owned() };
    objects
        .patch(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "web-a",
            json!({ "endpoints": [{ "addresses": ["10.4.0.2"], "conditions": { "ready": true } }] }),
        )
        .await?;
    objects.delete("networking.istio.io/v1", "VirtualService", "web").await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "web2",
            "web2.example",
            json!([{ "destination": { "host": "web" } }]),
        ))
        .await?;
    pilotfish
        .until("the changes made after the restart", |s| {
            endpoints_are(s, &web, &["10.4.0.2:8080"])?;
            let routes =
                s.resources(ResourceType::Route).get("http.8080.127.0.0.1").context("no http.8080.127.0.0.1")?;
            let json = api_protos::reflect::to_json(&routes.body)?.to_string();
            ensure!(json.contains("web2.example") && !json.contains("\"web.example"), "routes: {json}");
            Ok(())
        })
        .await?;
    pilotfish
        .until_inputs("no watch errors left", |inputs| {
            let failing: Vec<&String> = inputs["kinds"]
                .as_object()
                .map(|kinds| kinds.iter().filter(|(_, k)| !k["error"].is_null()).map(|(n, _)| n).collect())
                .unwrap_or_default();
            ensure!(failing.is_empty(), "still failing: {failing:?}");
            Ok(())
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relists_after_watch_expiry_without_losing_or_keeping_objects() -> Result<()> {
    // Without the watch cache, watches are served by etcd: once etcd is compacted past a watch's resourceVersion,
    // resuming it is answered 410 Gone.
    let cluster = cluster!("--watch-cache=false");
    let client = cluster.client().await?;
    install_crds(&client, &[]).await?;
    let ns = "expiry";
    let objects = Objects::new(client, ns).await?;
    objects.create(service("web", 80, 8080)).await?;
    objects.create(endpoint_slice("web-a", "web", 8080, &[("10.5.0.1", None, true)])).await?;
    objects.create(endpoint_slice("web-b", "web", 8080, &[("10.5.0.2", None, true)])).await?;
    objects.create(gateway("networking.istio.io/v1", 8080)).await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "web",
            "web.example",
            json!([{ "destination": { "host": "web" } }]),
        ))
        .await?;
    // pilotfish reaches the apiserver through a proxy the test can cut.
    let proxy = Proxy::start(cluster.apiserver_addr()).await?;
    let pilotfish = Pilotfish::start(cluster.client_via(proxy.addr).await?, ns);
    let web = cluster_name(80, "", "web", ns);
    pilotfish.until("web served", |s| endpoints_are(s, &web, &["10.5.0.1:8080", "10.5.0.2:8080"])).await?;
    let lists = |inputs: &Value, kind: &str| inputs["kinds"][kind]["lists"].as_u64().unwrap_or_default();
    let before = pilotfish.inputs();
    ensure!(lists(&before, "EndpointSlice") == 1, "kinds: {}", before["kinds"]);

    // While pilotfish is cut off: a slice deleted, one changed, one created, and a Service added; then etcd
    // forgets the history its watches would resume from.
    proxy.cut();
    pilotfish
        .until_inputs("the cut noticed", |inputs| {
            ensure!(!inputs["kinds"]["EndpointSlice"]["error"].is_null(), "kinds: {}", inputs["kinds"]);
            Ok(())
        })
        .await?;
    objects.delete("discovery.k8s.io/v1", "EndpointSlice", "web-a").await?;
    objects
        .patch(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "web-b",
            json!({ "endpoints": [{ "addresses": ["10.5.0.3"], "conditions": { "ready": true } }] }),
        )
        .await?;
    objects.create(endpoint_slice("web-c", "web", 8080, &[("10.5.0.4", None, true)])).await?;
    objects.create(service("api", 80, 8080)).await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "api",
            "api.example",
            json!([{ "destination": { "host": "api" } }]),
        ))
        .await?;
    let revision = cluster.compact_etcd().await?;
    proxy.restore();

    pilotfish
        .until("the world after the relist", |s| {
            endpoints_are(s, &web, &["10.5.0.3:8080", "10.5.0.4:8080"])?;
            has(s, ResourceType::Cluster, &cluster_name(80, "", "api", ns))
        })
        .await?;
    pilotfish
        .until_inputs("relists counted", |inputs| {
            for kind in ["EndpointSlice", "Service", "VirtualService"] {
                ensure!(
                    lists(inputs, kind) >= 2,
                    "{kind} not relisted after compaction to {revision}: {}",
                    inputs["kinds"]
                );
            }
            Ok(())
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_is_reported_then_picked_up_once_installed() -> Result<()> {
    let cluster = cluster!();
    let client = cluster.client().await?;
    // Only the VirtualService CRD to begin with.
    install_crds(&client, &["VirtualService"]).await?;
    let ns = "late";
    let objects = Objects::new(client.clone(), ns).await?;
    objects.create(service("web", 80, 8080)).await?;
    objects.create(endpoint_slice("web-a", "web", 8080, &[("10.6.0.1", None, true)])).await?;
    objects
        .create(virtual_service(
            "networking.istio.io/v1",
            "web",
            "web.example",
            json!([{ "destination": { "host": "web" } }]),
        ))
        .await?;
    let pilotfish = Pilotfish::start(client.clone(), ns);
    pilotfish
        .until_inputs("ready, with the missing CRDs reported", |inputs| {
            let diagnostics = inputs["diagnostics"].to_string();
            for crd in ["gateways", "destinationrules", "serviceentries"] {
                ensure!(
                    diagnostics.contains(&format!("{crd}.networking.istio.io is not installed")),
                    "diagnostics: {diagnostics}"
                );
            }
            ensure!(!diagnostics.contains("virtualservices.networking.istio.io is not installed"), "{diagnostics}");
            ensure!(inputs["kinds"]["Gateway"]["installed"] == false, "kinds: {}", inputs["kinds"]);
            ensure!(inputs["kinds"]["VirtualService"]["lists"] == 1, "kinds: {}", inputs["kinds"]);
            Ok(())
        })
        .await?;
    let objects_listed = pilotfish.inputs()["objects"].as_array().map_or(0, Vec::len);
    ensure!(objects_listed == 3, "the rest is read: {}", pilotfish.inputs()["objects"]);

    install_crds(&client, &["Gateway", "DestinationRule", "ServiceEntry"]).await?;
    objects.create(gateway("networking.istio.io/v1", 8080)).await?;
    pilotfish
        .until("the gateway, once its CRD exists", |s| {
            has(s, ResourceType::Listener, "127.0.0.1_8080")?;
            endpoints_are(s, &cluster_name(80, "", "web", ns), &["10.6.0.1:8080"])
        })
        .await?;
    pilotfish
        .until_inputs("no CRD reported missing", |inputs| {
            let diagnostics = inputs["diagnostics"].to_string();
            ensure!(!diagnostics.contains("is not installed"), "diagnostics: {diagnostics}");
            Ok(())
        })
        .await?;

    // The Gateway CRD removed: its objects go with it, the rest stays, and the diagnostic is back.
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    crds.delete("gateways.networking.istio.io", &DeleteParams::default()).await?;
    pilotfish
        .until("the gateway gone with its CRD", |s| {
            lacks(s, ResourceType::Listener, "127.0.0.1_8080")?;
            Ok(())
        })
        .await?;
    pilotfish
        .until_inputs("the missing Gateway CRD reported again", |inputs| {
            let diagnostics = inputs["diagnostics"].to_string();
            ensure!(diagnostics.contains("gateways.networking.istio.io is not installed"), "{diagnostics}");
            let objects = inputs["objects"].as_array().map_or(0, Vec::len);
            ensure!(objects == 3, "Service, EndpointSlice and VirtualService stay: {}", inputs["objects"]);
            Ok(())
        })
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_objects_route_real_traffic_through_envoy() -> Result<()> {
    let cluster = cluster!();
    let client = cluster.client().await?;
    install_crds(&client, &[]).await?;
    let ns = "traffic";
    let objects = Objects::new(client.clone(), ns).await?;
    let (v1, v2) = (Backend::start("v1").await?, Backend::start("v2").await?);
    let port = free_port();
    // The apiserver refuses loopback addresses in EndpointSlices, not as pod IPs: the backends are "pods" on
    // 127.0.0.1, each with its own port behind the Service's named target port, picked by the Service's selector.
    objects
        .create(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "web" },
            "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 80, "targetPort": "http" }] },
        }))
        .await?;
    for (name, backend) in [("web-v1", &v1), ("web-v2", &v2)] {
        objects
            .create(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name, "labels": { "app": "web", "version": &name[4..] } },
                "spec": { "containers": [{
                    "name": "app", "image": "example.invalid/app",
                    "ports": [{ "name": "http", "containerPort": backend.addr().port() }],
                }] },
            }))
            .await?;
        objects.pod_ready(name, "127.0.0.1", true).await?;
    }
    objects
        .create(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": { "name": "web" },
            "spec": { "host": "web", "subsets": [
                { "name": "v1", "labels": { "version": "v1" } },
                { "name": "v2", "labels": { "version": "v2" } },
            ] },
        }))
        .await?;
    objects.create(gateway("networking.istio.io/v1", port)).await?;
    let route = |v1_weight: u32| {
        json!([
            { "destination": { "host": "web", "subset": "v1" }, "weight": v1_weight },
            { "destination": { "host": "web", "subset": "v2" }, "weight": 100 - v1_weight },
        ])
    };
    objects.create(virtual_service("networking.istio.io/v1", "web", "web.example", route(100))).await?;

    let mut pilotfish = Pilotfish::start(client, ns);
    let xds = pilotfish.serve_xds().await?;
    let mut options = BootstrapOptions::new("ingress", Role::Gateway);
    options.namespace = ns.to_owned();
    options.labels = BTreeMap::from([("istio".to_owned(), "ingressgateway".to_owned())]);
    options.xds_address = xds.to_string();
    options.admin_port = 0;
    let envoy = Envoy::start("ingress", &render_yaml(&options)?).await?;
    envoy.wait_live(TIMEOUT).await?;
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let all_to = |expected: BTreeMap<&'static str, usize>| {
        let expected: BTreeMap<String, usize> = expected.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        move || {
            let expected = expected.clone();
            async move {
                let counts = count_backends(listen, "web.example", "/", &[], 10).await;
                ensure!(counts == expected, "{counts:?}, expected {expected:?}");
                Ok(())
            }
        }
    };
    eventually(TIMEOUT, "all traffic to v1", all_to(BTreeMap::from([("v1", 10)]))).await?;

    // The VirtualService shifts the traffic.
    objects
        .patch(
            "networking.istio.io/v1",
            "VirtualService",
            "web",
            json!({ "spec": { "http": [{ "route": route(0) }] } }),
        )
        .await?;
    eventually(TIMEOUT, "all traffic to v2", all_to(BTreeMap::from([("v2", 10)]))).await?;

    // A pod relabelled joins the other subset: v1's subset now has both pods (round robin: 5 and 5).
    objects
        .patch(
            "networking.istio.io/v1",
            "VirtualService",
            "web",
            json!({ "spec": { "http": [{ "route": route(100) }] } }),
        )
        .await?;
    objects.patch("v1", "Pod", "web-v2", json!({ "metadata": { "labels": { "version": "v1" } } })).await?;
    objects
        .patch(
            "networking.istio.io/v1",
            "DestinationRule",
            "web",
            json!({ "spec": { "trafficPolicy": { "loadBalancer": { "simple": "ROUND_ROBIN" } } } }),
        )
        .await?;
    eventually(TIMEOUT, "v1's subset on both pods", all_to(BTreeMap::from([("v1", 5), ("v2", 5)]))).await?;

    // A pod that is not ready any more gets no traffic.
    objects.pod_ready("web-v1", "127.0.0.1", false).await?;
    eventually(TIMEOUT, "only the ready pod", all_to(BTreeMap::from([("v2", 10)]))).await?;

    // The VirtualService deleted: no route for the host any more (404 from Envoy).
    objects.delete("networking.istio.io/v1", "VirtualService", "web").await?;
    eventually(TIMEOUT, "404 once the route is gone", || async {
        let reply = http_get(listen, "web.example", "/", &[]).await?;
        ensure!(reply.status == 404, "{} {}", reply.status, reply.body);
        Ok(())
    })
    .await?;
    Ok(())
}
