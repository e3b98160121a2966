//! Automatic sidecar injection, as istiod does it: a mutating admission webhook over HTTPS (port 15017) that the
//! apiserver calls for every Pod created where the MutatingWebhookConfiguration's selectors say (Istio's:
//! namespaces labelled `istio-injection=enabled` or `istio.io/rev=default`, pods labelled
//! `sidecar.istio.io/inject: "true"`; see `examples/lab-cluster/webhook.yaml`).
//!
//! ```text
//!   start: CA from the Secret (cluster::load_ca) ──► serving certificate for the Service's DNS names (ca.rs)
//!                                                    └──► caBundle kept on the MutatingWebhookConfiguration
//!   apiserver ──POST /inject, AdmissionReview──► server.rs (TLS) ──► admission.rs ──► crate::inject::inject_object
//!             ◄── AdmissionReview: allowed + JSON Patch, or denied with the injector's message ──┘
//! ```
//!
//! The sidecar is the one `pilotfish inject` adds (same function, same options), so a pod gets the same node
//! identity (`--service-node $(POD_NAME).$(POD_NAMESPACE)`, resolved by the kubelet once the pod has its generated
//! name) and the same proxy class (its labels and namespace) either way.
//!
//! This module does not read the pod's namespace (the apiserver has matched its labels already), does not handle
//! Istio's named revisions (`istio.io/rev` other than `default`) or its injection templates and
//! `neverInjectSelector`, and does not create the MutatingWebhookConfiguration or the Secret: the manifests own them.

pub mod admission;
pub mod ca;
pub mod cluster;
pub mod server;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use kube::Client;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::inject::InjectOptions;
pub use admission::Admission;
use ca::Ca;
pub use server::INJECT_PATH;

/// The port istiod's webhook listens on, and pilotfish's.
pub const DEFAULT_PORT: u16 = 15017;
/// The MutatingWebhookConfiguration of `examples/lab-cluster`.
pub const DEFAULT_CONFIGURATION: &str = "pilotfish-sidecar-injector";
/// The Secret holding the webhook CA.
pub const DEFAULT_CA_SECRET: &str = "pilotfish-webhook-ca";
/// The Service in front of pilotfish.
pub const DEFAULT_SERVICE: &str = "pilotfish";
/// The namespace pilotfish runs in.
pub const DEFAULT_NAMESPACE: &str = "pilotfish-system";

/// Where the webhook's objects are and what it injects.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The namespace pilotfish runs in: the Secret is there, and its pods are never injected.
    pub namespace: String,
    /// The Service the apiserver reaches the webhook through: the serving certificate is for its DNS names.
    pub service: String,
    /// The MutatingWebhookConfiguration whose `caBundle` pilotfish keeps.
    pub configuration: String,
    /// The Secret (in `namespace`) holding the CA.
    pub ca_secret: String,
    /// The sidecar: what `pilotfish inject` takes as flags.
    pub inject: InjectOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: DEFAULT_NAMESPACE.to_owned(),
            service: DEFAULT_SERVICE.to_owned(),
            configuration: DEFAULT_CONFIGURATION.to_owned(),
            ca_secret: DEFAULT_CA_SECRET.to_owned(),
            inject: InjectOptions::default(),
        }
    }
}

/// The names the serving certificate is for: the Service's DNS names, and the address listened on when it is a
/// specific one (a `url:` webhook on a test machine calls `https://127.0.0.1:PORT/inject`).
pub fn serving_names(service: &str, namespace: &str, listening: Option<SocketAddr>) -> Vec<String> {
    let mut names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ];
    if let Some(address) = listening.filter(|a| !a.ip().is_unspecified()) {
        names.push(address.ip().to_string());
    }
    names
}

/// Runs the webhook on `listener` until `shutdown` completes: reads (or makes) the CA, serves HTTPS with a
/// certificate it signs (renewed at half its life), and keeps the `caBundle` current.
pub async fn run(client: Client, listener: TcpListener, settings: Settings, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let (ca, origin) = tokio::select! {
        loaded = cluster::load_ca(&client, &settings.namespace, &settings.ca_secret) => loaded,
        () = &mut shutdown => return,
    };
    let names = serving_names(&settings.service, &settings.namespace, listener.local_addr().ok());
    let serving = loop {
        match ca.issue(&names, SystemTime::now()) {
            Ok(serving) => break serving,
            // Only key generation can fail here, which does not happen in practice; keep trying rather than run
            // without a webhook.
            Err(err) => {
                warn!(error = %err, "failed to sign the webhook's serving certificate; trying again");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    info!(?origin, names = ?names, "webhook serving certificate signed");
    let certificate = Arc::new(server::Certificate::new(serving.key));
    let mut tasks = JoinSet::new();
    tasks.spawn(cluster::keep_ca_bundle(client, settings.configuration.clone(), ca.cert_pem().to_owned()));
    tasks.spawn(renew(ca, names, serving.renew_at, Arc::clone(&certificate)));
    let admission = Arc::new(Admission::new(settings.inject, &settings.namespace));
    server::serve(listener, certificate, admission, shutdown).await;
    tasks.abort_all();
}

/// Signs a new serving certificate whenever the current one is half way through its life.
async fn renew(ca: Ca, names: Vec<String>, mut renew_at: SystemTime, certificate: Arc<server::Certificate>) {
    loop {
        let wait = renew_at.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::time::sleep(wait).await;
        match ca.issue(&names, SystemTime::now()) {
            Ok(serving) => {
                certificate.replace(serving.key);
                renew_at = serving.renew_at;
                info!("webhook serving certificate renewed");
            }
            Err(err) => {
                warn!(error = %err, "failed to renew the webhook's serving certificate; trying again in a minute");
                renew_at = SystemTime::now() + std::time::Duration::from_secs(60);
            }
        }
    }
}
