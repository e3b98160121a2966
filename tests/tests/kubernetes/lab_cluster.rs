//! `examples/lab-cluster` against the real apiserver: every manifest is applied server-side (and every workload
//! `pilotfish inject` writes is dry-run applied), then pilotfish's Kubernetes source runs with a token of the
//! manifests' ServiceAccount, so with exactly the RBAC they grant, not as admin. With any one rule of its
//! ClusterRole removed it must not become ready and must name the forbidden kind; with the ClusterRole as committed
//! it lists and watches every kind, and the ingress gateway gets Istio's listener for a Gateway on port 80.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use api_protos::ResourceType;
use controlplane::State;
use controlplane::inject::{InjectOptions, inject};
use controlplane::shutdown::{self, Trigger};
use controlplane::sources::kubernetes::{KubernetesSource, Settings};
use e2e::{eventually, workspace_root};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use translator::{ProxyClass, Role};

use super::{Cluster, QUICK, TIMEOUT, has};

const NAMESPACE: &str = "pilotfish-system";
const SERVICE_ACCOUNT: &str = "pilotfish";
const CLUSTER_ROLE: &str = "pilotfish-read";
const FIELD_MANAGER: &str = "pilotfish-lab-cluster-test";

fn lab_cluster() -> PathBuf {
    workspace_root().join("examples/lab-cluster")
}

/// The documents of a YAML file, with where they came from.
fn documents(path: &Path) -> Result<Vec<(String, DynamicObject)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    documents_of(&text, &path.display().to_string())
}

fn documents_of(text: &str, origin: &str) -> Result<Vec<(String, DynamicObject)>> {
    let mut objects = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if value.is_null() {
            continue;
        }
        let object: DynamicObject =
            serde_json::from_value(value).with_context(|| format!("{origin}: document {} is no object", index + 1))?;
        objects.push((format!("{origin}, document {}", index + 1), object));
    }
    Ok(objects)
}

/// Server-side applies `object` (only validates it, with `dry_run`), as `kubectl apply --server-side` does.
async fn apply(client: &Client, origin: &str, object: &DynamicObject, dry_run: bool) -> Result<()> {
    let types = object.types.as_ref().with_context(|| format!("{origin}: no apiVersion or kind"))?;
    let gvk = GroupVersionKind::try_from(types)?;
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("{origin}: the apiserver does not serve {}", types.kind))?;
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => {
            let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
            Api::namespaced_with(client.clone(), namespace, &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let name = object.metadata.name.as_deref().with_context(|| format!("{origin}: no name"))?;
    let params = PatchParams { dry_run, ..PatchParams::apply(FIELD_MANAGER).force() };
    api.patch(name, &params, &Patch::Apply(object))
        .await
        .with_context(|| format!("{origin}: the apiserver refuses {} {name}", types.kind))?;
    Ok(())
}

async fn crds_established(client: &Client) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    eventually(TIMEOUT, "the Istio CRDs are established", || async {
        for kind in controlplane::crds::ISTIO_KINDS {
            let crd = api.get(&format!("{}.{}", kind.plural, controlplane::crds::GROUP)).await?;
            let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
            ensure!(conditions.iter().any(|c| c.type_ == "Established" && c.status == "True"), "{} not yet", kind.kind);
        }
        Ok(())
    })
    .await
}

/// A token of the manifests' ServiceAccount, as the kubelet would mount it (TokenRequest API).
async fn service_account_token(admin: &Client) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NAMESPACE);
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(3600), ..TokenRequestSpec::default() },
        ..TokenRequest::default()
    };
    let response = accounts.create_token_request(SERVICE_ACCOUNT, &PostParams::default(), &request).await?;
    Ok(response.status.context("the TokenRequest has no status")?.token)
}

/// pilotfish's Kubernetes source as the Deployment runs it: every namespace, with the client given.
struct Source {
    source: Arc<KubernetesSource>,
    state: State,
    task: JoinHandle<()>,
    _stop: Trigger,
    _gateway: tokio::sync::watch::Receiver<Arc<controlplane::snapshot::Snapshot>>,
    gateway: ProxyClass,
}

impl Source {
    fn start(client: Client) -> Source {
        let state = State::default();
        let settings = Settings {
            namespace: None,
            discovery_interval: Duration::from_millis(300),
            max_backoff: Duration::from_millis(500),
        };
        let (stop, stopped) = shutdown::channel();
        tokio::spawn(Arc::clone(&state.pipeline).run(QUICK, stopped.clone()));
        let source = KubernetesSource::new(client, settings, &state.pipeline);
        let task = tokio::spawn(Arc::clone(&source).run(stopped));
        // The ingress gateway of ingress-gateway.yaml, as its bootstrap names it.
        let mut gateway = ProxyClass::new(Role::Gateway);
        gateway.namespace = NAMESPACE.to_owned();
        gateway.labels.insert("app".to_owned(), "istio-ingressgateway".to_owned());
        gateway.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
        let watch = state.cache.watch(&gateway);
        Source { source, state, task, _stop: stop, _gateway: watch, gateway }
    }

    fn inputs(&self) -> Value {
        // What `/debug/inputs` serves: nothing until the source has listed every kind.
        let view = self.state.pipeline.view();
        if view.ready { serde_json::to_value(view.as_ref()).unwrap_or(Value::Null) } else { Value::Null }
    }

    /// Whether `/debug/inputs` lists the object.
    fn lists(&self, kind: &str, namespace: &str, name: &str) -> bool {
        self.inputs()["objects"].as_array().is_some_and(|objects| {
            objects.iter().any(|o| o["kind"] == kind && o["namespace"] == namespace && o["name"] == name)
        })
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lab_cluster_manifests_are_accepted_and_pilotfish_reads_everything_with_exactly_their_rbac() -> Result<()> {
    let cluster = cluster!();
    let admin = cluster.client().await?;

    // Every manifest, in the kustomization's order, then Istio's Bookinfo and its networking files (in the
    // namespace bookinfo, as `kubectl apply -n bookinfo` puts them): applied for real.
    let kustomization: Value =
        serde_yaml::from_str(&std::fs::read_to_string(lab_cluster().join("kustomization.yaml"))?)?;
    let mut files: Vec<PathBuf> = kustomization["resources"]
        .as_array()
        .context("kustomization resources")?
        .iter()
        .filter_map(|r| r.as_str().map(|r| lab_cluster().join(r)))
        .collect();
    let first_bookinfo_file = files.len();
    files.push(lab_cluster().join("bookinfo/bookinfo.yaml"));
    files.push(lab_cluster().join("curl/curl.yaml"));
    let mut networking: Vec<PathBuf> = std::fs::read_dir(lab_cluster().join("bookinfo/networking"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    networking.sort();
    ensure!(networking.len() >= 7, "the networking files: {networking:?}");
    files.extend(networking);
    let mut applied = 0;
    for (index, file) in files.iter().enumerate() {
        if index == first_bookinfo_file {
            let namespace = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "bookinfo" } });
            apply(&admin, "kubectl create namespace bookinfo", &serde_json::from_value(namespace)?, false).await?;
        }
        let mut crds = false;
        for (origin, mut object) in documents(file)? {
            if index >= first_bookinfo_file && object.metadata.namespace.is_none() {
                object.metadata.namespace = Some("bookinfo".to_owned());
            }
            apply(&admin, &origin, &object, false).await?;
            applied += 1;
            crds |= object.types.as_ref().is_some_and(|t| t.kind == "CustomResourceDefinition");
        }
        if crds {
            crds_established(&admin).await?;
        }
    }
    ensure!(applied >= 40, "only {applied} objects applied");

    // What `pilotfish inject` writes for Bookinfo's workloads (and for its own output again): dry-run applied.
    let workloads = std::fs::read_to_string(lab_cluster().join("bookinfo/bookinfo.yaml"))?;
    let options = InjectOptions { namespace: Some("bookinfo".to_owned()), ..InjectOptions::default() };
    let injected = inject(&workloads, &options)?.yaml;
    let again = inject(&injected, &options)?;
    ensure!(again.yaml == injected && again.notes.len() == 6, "injecting twice: {:?}", again.notes);
    let mut sidecars = 0;
    for (origin, mut object) in documents_of(&injected, "pilotfish inject -f bookinfo/bookinfo.yaml")? {
        sidecars += usize::from(serde_json::to_string(&object.data)?.contains("pilotfish-proxy"));
        object.metadata.namespace.get_or_insert_with(|| "bookinfo".to_owned());
        apply(&admin, &origin, &object, true).await?;
    }
    ensure!(sidecars == 6, "{sidecars} workloads injected, expected 6");

    // The ServiceAccount's RBAC, one rule short at a time: never ready, and the forbidden kind is named. Restoring
    // the rule lets the same source become ready (it keeps retrying), so the missing rule was the only obstacle.
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    let role = roles.get(CLUSTER_ROLE).await?;
    let rules = role.rules.clone().unwrap_or_default();
    ensure!(rules.len() == 3, "the ClusterRole has {} rules", rules.len());
    let token = service_account_token(&admin).await?;
    let put_rules = |rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>| {
        let roles = roles.clone();
        async move {
            let patch = json!({ "rules": rules });
            roles.patch(CLUSTER_ROLE, &PatchParams::default(), &Patch::Merge(patch)).await?;
            anyhow::Ok(())
        }
    };
    for (index, missing) in rules.iter().enumerate() {
        let mut fewer = rules.clone();
        fewer.remove(index);
        put_rules(fewer).await?;
        let forbidden = missing.resources.clone().unwrap_or_default();
        let source = Source::start(cluster.client_with_token(&token).await?);
        eventually(TIMEOUT, &format!("a 403 for {forbidden:?}"), || {
            let problems = source.source.problems();
            let named = forbidden
                .iter()
                .all(|resource| problems.iter().any(|p| p.contains("403") && p.contains(&format!("\"{resource}\""))));
            let ready = source.source.is_ready();
            let forbidden = forbidden.clone();
            async move {
                ensure!(!ready, "ready without {forbidden:?}: {problems:?}");
                ensure!(named, "no 403 naming each of {forbidden:?} yet: {problems:?}");
                Ok(())
            }
        })
        .await?;
        ensure!(source.inputs().is_null(), "configuration published without {forbidden:?}");
        put_rules(rules.clone()).await?;
        eventually(TIMEOUT, &format!("ready once {forbidden:?} is granted"), || {
            let (ready, problems) = (source.source.is_ready(), source.source.problems());
            async move {
                ensure!(ready, "not ready: {problems:?}");
                Ok(())
            }
        })
        .await?;
    }

    // As committed: every kind listed, the objects applied above read, changes watched.
    let source = Source::start(cluster.client_with_token(&token).await?);
    eventually(TIMEOUT, "ready with the committed RBAC", || {
        let (ready, problems) = (source.source.is_ready(), source.source.problems());
        async move {
            ensure!(ready && problems.is_empty(), "ready: {ready}, problems: {problems:?}");
            Ok(())
        }
    })
    .await?;
    eventually(TIMEOUT, "the applied objects are read", || {
        let read = [
            ("Gateway", "bookinfo", "bookinfo-gateway"),
            ("VirtualService", "bookinfo", "bookinfo"),
            ("VirtualService", "bookinfo", "reviews"),
            ("DestinationRule", "bookinfo", "reviews"),
            ("Service", "bookinfo", "reviews"),
            ("Service", NAMESPACE, "istio-ingressgateway"),
        ]
        .iter()
        .filter(|(kind, namespace, name)| !source.lists(kind, namespace, name))
        .map(|object| format!("{object:?}"))
        .collect::<Vec<_>>();
        async move {
            ensure!(read.is_empty(), "not in /debug/inputs: {read:?}");
            Ok(())
        }
    })
    .await?;
    // A Gateway server on port 80 → the gateway Service's target port: listener 0.0.0.0_8080, as Istio does.
    eventually(TIMEOUT, "the ingress gateway's listener", || {
        let snapshot = source.state.cache.get(&source.gateway);
        // bookinfo-gateway.yaml's VirtualService sends Bookinfo's paths to productpage.
        let result = has(&snapshot, ResourceType::Listener, "0.0.0.0_8080")
            .and_then(|()| has(&snapshot, ResourceType::Route, "http.8080"))
            .and_then(|()| {
                has(&snapshot, ResourceType::Cluster, "outbound|9080||productpage.bookinfo.svc.cluster.local")
            });
        async move { result }
    })
    .await?;

    // Watched, not only listed: objects of each API group created now show up.
    let objects = super::Objects { client: admin.clone(), namespace: "bookinfo".to_owned() };
    objects.pod("mirror-v1-0", "10.244.0.9", json!({ "app": "mirror", "version": "v1" }), true).await?;
    objects.create(super::service("mirror", 9080, 9080)).await?;
    objects
        .create(super::endpoint_slice("mirror-abc", "mirror", 9080, &[("10.244.0.9", Some("mirror-v1-0"), true)]))
        .await?;
    objects
        .create(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
            "metadata": { "name": "httpbin" },
            "spec": { "hosts": ["httpbin.org"], "ports": [{ "number": 80, "name": "http", "protocol": "HTTP" }],
                      "resolution": "DNS", "location": "MESH_EXTERNAL" },
        }))
        .await?;
    eventually(TIMEOUT, "objects created after the list are watched", || {
        let missing = [
            ("Pod", "mirror-v1-0"),
            ("Service", "mirror"),
            ("EndpointSlice", "mirror-abc"),
            ("ServiceEntry", "httpbin"),
        ]
        .iter()
        .filter(|(kind, name)| !source.lists(kind, "bookinfo", name))
        .map(|object| format!("{object:?}"))
        .collect::<Vec<_>>();
        async move {
            ensure!(missing.is_empty(), "not in /debug/inputs: {missing:?}");
            Ok(())
        }
    })
    .await?;
    Ok(())
}
