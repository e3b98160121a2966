//! The `pilotfish` binary against a real kube-apiserver and etcd (the harness of `tests/tests/kubernetes`):
//!
//! - the sidecar injection webhook, called by the apiserver for real: `examples/lab-cluster`'s manifests are
//!   applied (its MutatingWebhookConfiguration pointed at `https://127.0.0.1:PORT/inject` instead of the Service),
//!   `pilotfish serve --kubernetes` runs with the ServiceAccount's token (so with exactly the manifests' RBAC), and
//!   the tests create Pods through the API and check what the apiserver stored: Istio's selectors, the same sidecar
//!   as `pilotfish inject`, the caBundle kept, one CA for replicas, pilotfish hung and down, a malformed
//!   AdmissionReview;
//! - `pilotfish analyze` of the live cluster: namespaces, exit codes, the same lines as `analyze -f`.
//!
//! Without kube-apiserver and etcd a local run skips these tests loudly (see `harness.rs`); CI fails instead.

#[path = "../../tests/tests/kubernetes/harness.rs"]
#[allow(dead_code)] // the harness serves other tests too
mod harness;

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use controlplane::inject::{InjectOptions, PROXY_CONTAINER, inject};
use e2e::{eventually, free_port, http_get, workspace_root};
use harness::Cluster;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Container, Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use kube::{Client, Config};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

const PILOTFISH: &str = env!("CARGO_BIN_EXE_pilotfish");
const TIMEOUT: Duration = Duration::from_secs(30);
const SYSTEM: &str = "pilotfish-system";
const CONFIGURATION: &str = "pilotfish-sidecar-injector";
const CA_SECRET: &str = "pilotfish-webhook-ca";

/// Starts a cluster, or ends the test (skipped, loudly) when its binaries cannot be had outside CI.
macro_rules! cluster {
    () => {
        match Cluster::start_with(&[]).await? {
            Some(cluster) => cluster,
            None => return Ok(()),
        }
    };
}

fn lab_cluster() -> PathBuf {
    workspace_root().join("examples/lab-cluster")
}

// === applying the manifests ===

fn documents(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Server-side applies `object`, as `kubectl apply --server-side` does.
async fn apply(client: &Client, object: &Value) -> Result<()> {
    let object: DynamicObject = serde_json::from_value(object.clone())?;
    let types = object.types.as_ref().context("no apiVersion or kind")?;
    let (resource, capabilities) = kube::discovery::pinned_kind(client, &GroupVersionKind::try_from(types)?).await?;
    let api: Api<DynamicObject> = match capabilities.scope {
        Scope::Namespaced => {
            Api::namespaced_with(client.clone(), object.metadata.namespace.as_deref().unwrap_or("default"), &resource)
        }
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    let name = object.metadata.name.as_deref().context("no name")?;
    api.patch(name, &PatchParams::apply("pilotfish-test").force(), &Patch::Apply(&object))
        .await
        .with_context(|| format!("applying {} {name}", types.kind))?;
    Ok(())
}

/// The lab cluster's namespace, RBAC and webhook manifests, the webhook pointed at `webhook` (the apiserver of the
/// harness has no Service network to reach pilotfish through).
async fn apply_lab_cluster(admin: &Client, webhook: SocketAddr) -> Result<()> {
    for file in ["namespace.yaml", "rbac.yaml", "webhook.yaml"] {
        for mut object in documents(&lab_cluster().join(file))? {
            if object["kind"] == "MutatingWebhookConfiguration" {
                for hook in object["webhooks"].as_array_mut().context("webhooks")? {
                    ensure!(hook["clientConfig"]["service"]["path"] == "/inject", "{hook}");
                    hook["clientConfig"] = json!({ "url": format!("https://{webhook}/inject") });
                }
            }
            apply(admin, &object).await?;
        }
    }
    Ok(())
}

/// A token of the manifests' ServiceAccount `namespace/name`, as the kubelet would mount it.
async fn token(admin: &Client, namespace: &str, name: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec { expiration_seconds: Some(3600), ..TokenRequestSpec::default() },
        ..TokenRequest::default()
    };
    let response = accounts.create_token_request(name, &PostParams::default(), &request).await?;
    Ok(response.status.context("no token")?.token)
}

// === pilotfish, the binary ===

/// `pilotfish serve --kubernetes` as the Deployment runs it, with the ServiceAccount's kubeconfig; killed on drop.
struct Pilotfish {
    child: Child,
    log: PathBuf,
    admin: SocketAddr,
}

impl Pilotfish {
    fn start(kubeconfig: &Path, webhook: SocketAddr, dir: &Path) -> Result<Pilotfish> {
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let xds = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.join(format!("pilotfish-{}.log", free_port()));
        let out = File::create(&log)?;
        let child = Command::new(PILOTFISH)
            .args(["serve", "--kubernetes", "--debounce-quiet", "20ms", "--debounce-max", "200ms"])
            .arg(format!("--xds-address={xds}"))
            .arg(format!("--admin-address={admin}"))
            .arg(format!("--webhook-address={webhook}"))
            .env("KUBECONFIG", kubeconfig)
            .env("RUST_LOG", "info")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting pilotfish")?;
        Ok(Pilotfish { child, log, admin })
    }

    async fn ready(&mut self) -> Result<()> {
        let admin = self.admin;
        eventually(TIMEOUT, "pilotfish ready", || async move {
            let reply = http_get(admin, "127.0.0.1", "/readyz", &[]).await?;
            ensure!(reply.status == 200, "/readyz: {}", reply.body);
            Ok(())
        })
        .await
        .with_context(|| self.log_text())
    }

    fn log_text(&self) -> String {
        format!("pilotfish's log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// Sends the process a signal (`STOP`, `CONT`, …).
    fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status()?;
        ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pilotfish {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("{}", self.log_text());
        }
    }
}

// === what the apiserver stores ===

fn container(name: &str, port: u16) -> Value {
    json!({ "name": name, "image": "example.invalid/app", "ports": [{ "containerPort": port }] })
}

/// Creates a namespace with `labels`.
async fn namespace(admin: &Client, name: &str, labels: Value) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let object = serde_json::from_value(json!({ "metadata": { "name": name, "labels": labels } }))?;
    namespaces.create(&PostParams::default(), &object).await.with_context(|| format!("creating namespace {name}"))?;
    Ok(())
}

/// Creates `pod` in `namespace` and returns what the apiserver stored.
async fn create_pod(admin: &Client, namespace: &str, pod: Value) -> Result<Pod> {
    let pods: Api<Pod> = Api::namespaced(admin.clone(), namespace);
    Ok(pods.create(&PostParams::default(), &serde_json::from_value(pod)?).await?)
}

fn pod(name: &str, labels: Value, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": labels, "annotations": annotations },
        "spec": { "containers": [container("app", 9080)] },
    })
}

fn init_names(pod: &Pod) -> Vec<String> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_ref()).into_iter().flatten().map(|c| c.name.clone()).collect()
}

fn injected(pod: &Pod) -> bool {
    init_names(pod).iter().any(|name| name == PROXY_CONTAINER)
}

fn proxy(pod: &Pod) -> Result<&Container> {
    let spec = pod.spec.as_ref().context("no spec")?;
    spec.init_containers.iter().flatten().find(|c| c.name == PROXY_CONTAINER).context("no sidecar")
}

/// The caBundle of every webhook of the configuration.
async fn ca_bundles(admin: &Client) -> Result<Vec<Option<ByteString>>> {
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let configuration = configurations.get(CONFIGURATION).await?;
    Ok(configuration.webhooks.unwrap_or_default().into_iter().map(|w| w.client_config.ca_bundle).collect())
}

/// The CA pilotfish stored in its Secret, once it has.
async fn stored_ca(admin: &Client) -> Result<ByteString> {
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), SYSTEM);
    let data = secrets.get(CA_SECRET).await?.data.unwrap_or_default();
    ensure!(data.contains_key("ca.key"), "no ca.key in the Secret yet");
    data.get("ca.crt").cloned().context("no ca.crt in the Secret yet")
}

/// Waits until every webhook's caBundle is the CA of the Secret; returns it.
async fn ca_bundle_set(admin: &Client) -> Result<ByteString> {
    eventually(TIMEOUT, "the caBundle is the stored CA", || async {
        let ca = stored_ca(admin).await?;
        let bundles = ca_bundles(admin).await?;
        ensure!(bundles.len() == 4, "{} webhooks", bundles.len());
        ensure!(bundles.iter().all(|b| b.as_ref() == Some(&ca)), "not every caBundle is the stored CA yet");
        Ok(ca)
    })
    .await
}

/// A cluster with the lab manifests and pilotfish serving the webhook with the ServiceAccount's RBAC.
struct Lab {
    cluster: Cluster,
    admin: Client,
    webhook: SocketAddr,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Lab {
    async fn start() -> Result<Option<Lab>> {
        let Some(cluster) = Cluster::start_with(&[]).await? else { return Ok(None) };
        let admin = cluster.client().await?;
        let webhook = SocketAddr::from(([127, 0, 0, 1], free_port()));
        apply_lab_cluster(&admin, webhook).await?;
        let token = token(&admin, SYSTEM, "pilotfish").await?;
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, cluster.kubeconfig_with_token(cluster.apiserver_addr(), &token))?;
        Ok(Some(Lab { cluster, admin, webhook, kubeconfig, dir }))
    }

    async fn pilotfish(&self) -> Result<Pilotfish> {
        let mut pilotfish = Pilotfish::start(&self.kubeconfig, self.webhook, self.dir.path())?;
        pilotfish.ready().await?;
        Ok(pilotfish)
    }
}

// === the webhook ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_calls_the_webhook_and_istios_labels_decide_which_pods_get_the_sidecar() -> Result<()> {
    let Some(lab) = Lab::start().await? else { return Ok(()) };
    let admin = &lab.admin;
    let pilotfish = lab.pilotfish().await?;
    ca_bundle_set(admin).await.with_context(|| pilotfish.log_text())?;

    namespace(admin, "injected", json!({ "istio-injection": "enabled" })).await?;
    namespace(admin, "revision", json!({ "istio.io/rev": "default" })).await?;
    namespace(admin, "plain", json!({})).await?;
    namespace(admin, "disabled", json!({ "istio-injection": "disabled" })).await?;
    namespace(admin, "canary", json!({ "istio.io/rev": "canary" })).await?;
    let opt_in = json!({ "sidecar.istio.io/inject": "true" });
    let opt_out = json!({ "sidecar.istio.io/inject": "false" });
    // (namespace, pod, labels, annotations, injected?)
    let cases = [
        ("injected", "app", json!({ "app": "web" }), json!({}), true),
        ("injected", "out-by-label", opt_out.clone(), json!({}), false),
        ("injected", "out-by-annotation", json!({}), opt_out.clone(), false),
        ("revision", "app", json!({ "app": "web" }), json!({}), true),
        ("revision", "out-by-label", opt_out.clone(), json!({}), false),
        ("plain", "app", json!({ "app": "web" }), json!({}), false),
        ("plain", "in-by-label", opt_in.clone(), json!({}), true),
        ("plain", "in-by-annotation", json!({}), opt_in.clone(), false), // only labels select, as in Istio
        ("plain", "rev-default", json!({ "istio.io/rev": "default" }), json!({}), true),
        ("plain", "rev-canary", json!({ "istio.io/rev": "canary" }), json!({}), false),
        ("disabled", "in-by-label", opt_in.clone(), json!({}), false),
        ("canary", "app", json!({}), json!({}), false),
        ("canary", "in-by-label", opt_in.clone(), json!({}), false),
        ("kube-system", "in-by-label", opt_in.clone(), json!({}), false),
        (SYSTEM, "in-by-label", opt_in.clone(), json!({}), false),
    ];
    let mut wrong = Vec::new();
    for (namespace, name, labels, annotations, expected) in cases {
        let stored = create_pod(admin, namespace, pod(name, labels, annotations)).await?;
        if injected(&stored) != expected {
            wrong.push(format!("{namespace}/{name}: injected {}, expected {expected}", injected(&stored)));
        }
    }
    ensure!(wrong.is_empty(), "{wrong:#?}\n{}", pilotfish.log_text());

    // A ReplicaSet's pod: no name until the apiserver generates one, after admission. Its sidecar is the one
    // `pilotfish inject` writes for the same pod: a pod injected by hand beforehand is stored identically.
    let labels = json!({ "app": "reviews", "version": "v2" });
    let mut generated = pod("", labels.clone(), json!({}));
    generated["metadata"] = json!({ "generateName": "reviews-v2-", "labels": labels });
    let generated = create_pod(admin, "injected", generated).await?;
    let name = generated.metadata.name.clone().unwrap_or_default();
    ensure!(name.starts_with("reviews-v2-") && name.len() > "reviews-v2-".len(), "generated name {name}");
    let options = InjectOptions { namespace: Some("injected".to_owned()), ..InjectOptions::default() };
    let by_hand = inject(&serde_json::to_string(&pod("by-hand", labels, json!({})))?, &options)?;
    let by_hand: Value = serde_yaml::from_str(by_hand.yaml.trim_start_matches("---\n"))?;
    let by_hand = create_pod(admin, "injected", by_hand).await?;
    let spec = |pod: &Pod| pod.spec.clone().and_then(|s| s.init_containers).unwrap_or_default();
    ensure!(spec(&generated) == spec(&by_hand), "the webhook's sidecar differs from `pilotfish inject`'s");
    ensure!(init_names(&generated) == ["pilotfish-init", PROXY_CONTAINER], "{:?}", init_names(&generated));
    // Node identity: the downward API gives Envoy the generated name when the kubelet starts it.
    let sidecar = proxy(&generated)?;
    let args = sidecar.args.clone().unwrap_or_default();
    let at = args.iter().position(|a| a == "--service-node").context("--service-node")?;
    ensure!(args[at + 1] == "$(POD_NAME).$(POD_NAMESPACE)", "{args:?}");
    let env = serde_json::to_value(&sidecar.env)?;
    ensure!(env[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", "{env}");
    // Proxy class: the pod's labels and namespace.
    let at = args.iter().position(|a| a == "--config-yaml").context("--config-yaml")?;
    let bootstrap: Value = serde_json::from_str(&args[at + 1])?;
    ensure!(bootstrap["node"]["metadata"]["NAMESPACE"] == "injected", "{bootstrap}");
    ensure!(bootstrap["node"]["metadata"]["LABELS"] == json!({ "app": "reviews", "version": "v2" }), "{bootstrap}");

    // A pod `pilotfish inject` refuses is refused, with its message.
    let mut clash = pod("clash", json!({}), json!({}));
    clash["spec"]["containers"] = json!([container("app", 15001)]);
    let error = create_pod(admin, "injected", clash).await.expect_err("refused").to_string();
    ensure!(error.contains("denied the request") && error.contains("15001"), "{error}");
    let error = create_pod(admin, "injected", pod("bad", json!({ "sidecar.istio.io/inject": "yes" }), json!({})))
        .await
        .expect_err("refused")
        .to_string();
    ensure!(error.contains("sidecar.istio.io/inject") && error.contains("\"yes\""), "{error}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_bundle_is_restored_an_outage_blocks_only_injected_pods_and_bad_reviews_are_answered() -> Result<()> {
    let Some(lab) = Lab::start().await? else { return Ok(()) };
    let admin = &lab.admin;
    let mut pilotfish = lab.pilotfish().await?;
    let ca = ca_bundle_set(admin).await.with_context(|| pilotfish.log_text())?;
    namespace(admin, "injected", json!({ "istio-injection": "enabled" })).await?;
    namespace(admin, "plain", json!({})).await?;

    // Someone clears the caBundle (or `kubectl apply` puts back a copy without it): pilotfish sets it again.
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let cleared = json!({ "webhooks": [
        { "name": "namespace.sidecar-injector.pilotfish-xds.github.io", "clientConfig": { "caBundle": null } },
        { "name": "object.sidecar-injector.pilotfish-xds.github.io", "clientConfig": { "caBundle": "" } },
    ]});
    configurations.patch(CONFIGURATION, &PatchParams::default(), &Patch::Strategic(cleared)).await?;
    let restored = ca_bundle_set(admin).await.with_context(|| pilotfish.log_text())?;
    ensure!(restored == ca, "the caBundle is the same CA again");
    ensure!(injected(&create_pod(admin, "injected", pod("after-restore", json!({}), json!({}))).await?));

    // Not an AdmissionReview: answered with one that denies and says why; pilotfish keeps serving.
    let webhook = webhook_client(lab.webhook, &ca)?;
    for (body, said) in [("{\"apiVersion\": ", "not JSON"), ("{\"kind\": \"AdmissionReview\"}", "apiVersion")] {
        let request = http::Request::post("/inject").header("content-type", "application/json").body(body.into())?;
        let answer: Value = serde_json::from_str(&webhook.request_text(request).await?)?;
        ensure!(answer["kind"] == "AdmissionReview" && answer["response"]["allowed"] == false, "{answer}");
        let message = answer["response"]["status"]["message"].as_str().unwrap_or_default();
        ensure!(message.contains("malformed AdmissionReview") && message.contains(said), "{answer}");
    }
    ensure!(injected(&create_pod(admin, "injected", pod("after-garbage", json!({}), json!({}))).await?));

    // pilotfish hung (stopped, its connections open): a pod that asked for injection is refused once the
    // webhook's timeoutSeconds runs out, not held forever; other pods do not wait for it at all.
    pilotfish.signal("STOP")?;
    let hung = tokio::spawn({
        let admin = admin.clone();
        async move { create_pod(&admin, "injected", pod("while-hung", json!({}), json!({}))).await }
    });
    let plain = create_pod(admin, "plain", pod("while-hung", json!({}), json!({}))).await?;
    ensure!(!injected(&plain));
    ensure!(!hung.is_finished(), "the injected pod's creation waits for the webhook meanwhile");
    let error = hung.await?.expect_err("refused").to_string();
    ensure!(error.contains("failed calling webhook") && error.contains("deadline exceeded"), "{error}");
    pilotfish.signal("CONT")?;

    // pilotfish down: pods that did not ask for injection never reach it; those that did are refused
    // (failurePolicy: Fail) rather than run without their sidecar.
    pilotfish.stop();
    let plain = create_pod(admin, "plain", pod("during-outage", json!({}), json!({}))).await?;
    ensure!(!injected(&plain));
    let system = create_pod(admin, "kube-system", pod("during-outage", json!({}), json!({}))).await?;
    ensure!(!injected(&system));
    for (namespace, labels) in [("injected", json!({})), ("plain", json!({ "sidecar.istio.io/inject": "true" }))] {
        let error = create_pod(admin, namespace, pod("refused", labels, json!({}))).await.expect_err("refused");
        let error = error.to_string();
        ensure!(error.contains("failed calling webhook"), "{namespace}: {error}");
    }

    // Back up: the same CA from the Secret, so the caBundle never changed and injection works at once.
    let _pilotfish = lab.pilotfish().await?;
    eventually(TIMEOUT, "injection after the restart", || async {
        let stored =
            create_pod(admin, "injected", pod(&format!("after-restart-{}", free_port()), json!({}), json!({}))).await?;
        ensure!(injected(&stored), "not injected");
        Ok(())
    })
    .await?;
    ensure!(ca_bundles(admin).await?.iter().all(|b| b.as_ref() == Some(&ca)), "the caBundle changed");
    ensure!(stored_ca(admin).await? == ca, "the stored CA changed");

    // The ServiceAccount reaches its own Secret and configuration, by name, and nothing else of their kinds.
    let token = token(admin, SYSTEM, "pilotfish").await?;
    let as_pilotfish = lab.cluster.client_with_token(&token).await?;
    let mut other = configurations.get(CONFIGURATION).await?;
    other.metadata = kube::api::ObjectMeta { name: Some("someone-elses".to_owned()), ..Default::default() };
    for hook in other.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = None;
        hook.namespace_selector = Some(serde_json::from_value(json!({ "matchLabels": { "nothing": "here" } }))?);
    }
    configurations.create(&PostParams::default(), &other).await?;
    let theirs: Api<MutatingWebhookConfiguration> = Api::all(as_pilotfish.clone());
    let patch = Patch::Strategic(json!({ "metadata": { "labels": { "touched": "yes" } } }));
    let error = theirs.patch("someone-elses", &PatchParams::default(), &patch).await.expect_err("forbidden");
    ensure!(error.to_string().contains("forbidden"), "{error}");
    theirs.patch(CONFIGURATION, &PatchParams::default(), &patch).await.context("its own configuration")?;
    let secrets: Api<Secret> = Api::namespaced(as_pilotfish, SYSTEM);
    let error = secrets.list(&Default::default()).await.expect_err("forbidden");
    ensure!(error.to_string().contains("forbidden"), "{error}");
    secrets.get(CA_SECRET).await.context("its own Secret")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_together_fill_the_secret_once_and_serve_with_one_ca() -> Result<()> {
    let Some(lab) = Lab::start().await? else { return Ok(()) };
    let admin = &lab.admin;
    // Two replicas at once, both finding the Secret empty: one CA wins, the other replica reads it.
    let other = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut first = Pilotfish::start(&lab.kubeconfig, lab.webhook, lab.dir.path())?;
    let mut second = Pilotfish::start(&lab.kubeconfig, other, lab.dir.path())?;
    first.ready().await?;
    second.ready().await?;
    let ca = ca_bundle_set(admin).await.with_context(|| format!("{}\n{}", first.log_text(), second.log_text()))?;
    for (address, pilotfish) in [(lab.webhook, &first), (other, &second)] {
        let client = webhook_client(address, &ca)?;
        eventually(TIMEOUT, "the webhook serves a certificate of the stored CA", || async {
            let request = http::Request::post("/inject").body(b"{}".to_vec())?;
            let answer: Value = serde_json::from_str(&client.request_text(request).await?)?;
            ensure!(answer["kind"] == "AdmissionReview", "{answer}");
            Ok(())
        })
        .await
        .with_context(|| pilotfish.log_text())?;
    }
    let logs = format!("{}{}", first.log_text(), second.log_text());
    ensure!(logs.matches("new webhook CA stored in its Secret").count() == 1, "{logs}");
    ensure!(logs.matches("webhook CA read from its Secret").count() == 1, "{logs}");
    ensure!(!logs.contains("this process's own"), "{logs}");
    // No tug of war over the caBundle: it stays as it is while both run.
    let configurations: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let version = configurations.get(CONFIGURATION).await?.metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(configurations.get(CONFIGURATION).await?.metadata.resource_version == version, "{logs}");
    ensure!(injected(
        &create_pod(admin, "default", pod("opted-in", json!({ "sidecar.istio.io/inject": "true" }), json!({}))).await?
    ));
    Ok(())
}

/// An HTTPS client of the webhook that trusts the webhook CA (kube's client, for any URL).
fn webhook_client(address: SocketAddr, ca: &ByteString) -> Result<Client> {
    let mut config = Config::new(format!("https://{address}").parse()?);
    let der = CertificateDer::from_pem_slice(&ca.0).context("the CA is PEM")?;
    config.root_cert = Some(vec![der.to_vec()]);
    Ok(Client::try_from(config)?)
}

// === analyze, live ===

fn analyze(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(PILOTFISH)
        .arg("analyze")
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .expect("pilotfish runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn all_output(output: &Output) -> String {
    format!("{}{}", stdout(output), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_without_f_reads_the_live_cluster_and_reports_on_one_namespace() -> Result<()> {
    let cluster = cluster!();
    let admin = cluster.client().await?;
    let kubeconfig = cluster.kubeconfig_path();

    // No Istio CRDs yet: said, not an error.
    let bare = analyze(&kubeconfig, &["-A"]);
    ensure!(bare.status.code() == Some(0), "{}", all_output(&bare));
    ensure!(stdout(&bare).contains("virtualservices.networking.istio.io is not installed"), "{}", stdout(&bare));

    harness::install_crds(&admin, &[]).await?;
    namespace(&admin, "shop", json!({})).await?;
    namespace(&admin, "front", json!({})).await?;
    let objects = [
        json!({ "apiVersion": "v1", "kind": "Service", "metadata": { "name": "reviews", "namespace": "shop" },
                "spec": { "ports": [{ "name": "http", "port": 9080 }] } }),
        // Unused: IST0174, a warning, in shop.
        json!({ "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                "metadata": { "name": "ghost", "namespace": "shop" }, "spec": { "host": "ghost" } }),
        // Routes to shop's Service from front: fine, and only the whole cluster can tell.
        json!({ "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": { "name": "reviews", "namespace": "front" },
                "spec": { "hosts": ["reviews.shop.svc.cluster.local"],
                          "http": [{ "route": [{ "destination": { "host": "reviews.shop.svc.cluster.local" } }] }] } }),
        // Bound to a Gateway that does not exist: IST0101, an error, in front.
        json!({ "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": { "name": "broken", "namespace": "front" },
                "spec": { "hosts": ["broken.example"], "gateways": ["missing"],
                          "http": [{ "route": [{ "destination": { "host": "reviews.shop.svc.cluster.local" } }] }] } }),
    ];
    for object in &objects {
        apply(&admin, object).await?;
    }

    let front = analyze(&kubeconfig, &["-n", "front"]);
    let text = stdout(&front);
    ensure!(front.status.code() == Some(2), "{}", all_output(&front));
    ensure!(text.contains("error[IST0101] VirtualService front/broken"), "{text}");
    ensure!(!text.contains("front/reviews") && !text.contains("shop"), "only front, and its valid route: {text}");

    let shop = analyze(&kubeconfig, &["-n", "shop"]);
    ensure!(shop.status.code() == Some(0), "warnings only: {}", all_output(&shop));
    ensure!(stdout(&shop).contains("warning[IST0174] DestinationRule shop/ghost"), "{}", stdout(&shop));
    let strict = analyze(&kubeconfig, &["-n", "shop", "--strict"]);
    ensure!(strict.status.code() == Some(1), "{}", all_output(&strict));

    let all = analyze(&kubeconfig, &["-A", "-o", "json"]);
    ensure!(all.status.code() == Some(2), "{}", all_output(&all));
    let json: Value = serde_json::from_slice(&all.stdout)?;
    let codes: Vec<(String, String)> = json["diagnostics"]
        .as_array()
        .context("diagnostics")?
        .iter()
        .map(|d| (d["object"]["name"].as_str().unwrap_or_default().to_owned(), d["code"].to_string()))
        .collect();
    let has = |name: &str, code: &str| codes.iter().any(|(n, c)| n == name && c.contains(code));
    ensure!(has("broken", "IST0101"), "{json}");
    ensure!(has("ghost", "IST0174"), "{json}");

    // Without -n: the kubeconfig context's namespace (here none given: default, which is clean).
    let default = analyze(&kubeconfig, &[]);
    ensure!(default.status.code() == Some(0), "{}", all_output(&default));
    ensure!(stdout(&default).contains("no problems found in namespace default"), "{}", stdout(&default));
    let dir = tempfile::tempdir()?;
    let in_front = dir.path().join("kubeconfig");
    let config = std::fs::read_to_string(&kubeconfig)?
        .replace("context: {cluster: test", "context: {namespace: front, cluster: test");
    ensure!(config.contains("namespace: front"), "{config}");
    std::fs::write(&in_front, config)?;
    let context = analyze(&in_front, &[]);
    ensure!(context.status.code() == Some(2) && stdout(&context).contains("front/broken"), "{}", all_output(&context));

    // The same lines as `analyze -f` on the same objects, but for where they were read.
    let file = dir.path().join("objects.yaml");
    std::fs::write(
        &file,
        objects.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap_or_default())).collect::<String>(),
    )?;
    let offline = Command::new(PILOTFISH).args(["analyze", "-n", "front", "-f"]).arg(&file).output()?;
    ensure!(offline.status.code() == Some(2), "{}", all_output(&offline));
    let without_source = |text: String| -> Vec<String> {
        text.lines().map(|line| line.split(" (at ").next().unwrap_or(line).to_owned()).collect()
    };
    ensure!(
        without_source(stdout(&offline)) == without_source(stdout(&front)),
        "-f:\n{}\nlive:\n{}",
        stdout(&offline),
        stdout(&front)
    );

    // Mistakes are errors, not an empty report: a namespace that does not exist, a kind that cannot be listed.
    let missing = analyze(&kubeconfig, &["-n", "nowhere"]);
    ensure!(missing.status.code() == Some(1), "{}", all_output(&missing));
    ensure!(all_output(&missing).contains("namespace nowhere not found"), "{}", all_output(&missing));
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    accounts
        .create(&PostParams::default(), &serde_json::from_value(json!({ "metadata": { "name": "nobody" } }))?)
        .await?;
    let nobody = dir.path().join("nobody");
    std::fs::write(
        &nobody,
        cluster.kubeconfig_with_token(cluster.apiserver_addr(), &token(&admin, "default", "nobody").await?),
    )?;
    let forbidden = analyze(&nobody, &["-A"]);
    ensure!(forbidden.status.code() == Some(1), "{}", all_output(&forbidden));
    ensure!(
        all_output(&forbidden).contains("failed to list services") && all_output(&forbidden).contains("403"),
        "{}",
        all_output(&forbidden)
    );
    Ok(())
}
