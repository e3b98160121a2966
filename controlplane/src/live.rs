//! One read of a live cluster, for `pilotfish analyze` without `-f`: the kinds the Kubernetes source watches,
//! each listed once in every namespace, and converted as the Kubernetes source converts what it watches.
//!
//! ```text
//!   kubeconfig ──► list Services, EndpointSlices, Pods, and the Istio kinds at the version the Kubernetes source
//!                  would watch ──► the Kubernetes source's conversions (same types, same diagnostics) ──► inputs
//! ```
//!
//! Every namespace is read even when one is analysed: a VirtualService may route to a Service of another namespace,
//! and only the whole cluster tells whether that host exists (`istioctl analyze -n` reads the whole cluster too and
//! reports on one namespace). Objects read here carry no file; diagnostics name them by kind, namespace and name,
//! as those of `pilotfish serve --kubernetes` do. An Istio kind whose CRD is not installed is an info diagnostic;
//! a kind that cannot be listed (e.g. 403 Forbidden) is an error, since analysing without it would report
//! references to its objects as broken. This module only reads.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::api::{Api, DynamicObject, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::de::DeserializeOwned;
use translator::{Diagnostic, Input};

use crate::crds::ISTIO_KINDS;
use crate::sources::kubernetes::{
    Slot, convert, describe_client, error_chain, istio_kind, not_installed, pick_version, served_versions,
};

/// Objects fetched per list request.
const PAGE: u32 = 500;

/// Failures to read the cluster. Each carries its causes as text, once (kube's errors repeat their sources).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to configure a Kubernetes client (in-cluster service account or kubeconfig): {0}")]
    Config(String),
    #[error("failed to list {kind} in the cluster: {message}")]
    List { kind: String, message: String },
    #[error("failed to discover which networking.istio.io versions the cluster serves: {0}")]
    Discovery(String),
    #[error("failed to look up namespace {namespace}: {message}")]
    Namespace { namespace: String, message: String },
}

/// What the cluster holds, as translator inputs.
#[derive(Debug, Default)]
pub struct Read {
    pub inputs: Vec<Input>,
    /// Objects that did not read (each is skipped), and kinds not installed.
    pub diagnostics: Vec<Diagnostic>,
}

/// A client for `kubeconfig` (a file) and `context`, or as kube finds one (in-cluster service account, else
/// `$KUBECONFIG` or `~/.kube/config`), as `kubectl` does; and the namespace its context names (`default` if none).
pub async fn client(kubeconfig: Option<&std::path::Path>, context: Option<&str>) -> Result<(Client, String), Error> {
    let options = KubeConfigOptions { context: context.map(str::to_owned), ..KubeConfigOptions::default() };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|err| Error::Config(error_chain(&err)))?;
            Config::from_custom_kubeconfig(file, &options).await.map_err(|err| Error::Config(error_chain(&err)))?
        }
        None if context.is_some() => {
            Config::from_kubeconfig(&options).await.map_err(|err| Error::Config(error_chain(&err)))?
        }
        None => Config::infer().await.map_err(|err| Error::Config(error_chain(&err)))?,
    };
    let namespace = config.default_namespace.clone();
    Ok((Client::try_from(config).map_err(|err| Error::Config(error_chain(&err)))?, namespace))
}

/// Whether the cluster has `namespace`.
pub async fn namespace_exists(client: &Client, namespace: &str) -> Result<bool, Error> {
    let namespaces: Api<core::Namespace> = Api::all(client.clone());
    namespaces
        .get_opt(namespace)
        .await
        .map(|found| found.is_some())
        .map_err(|err| Error::Namespace { namespace: namespace.to_owned(), message: describe_client(&err) })
}

/// Lists every kind pilotfish reads, in every namespace.
pub async fn read(client: &Client) -> Result<Read, Error> {
    let mut read = Read::default();
    list::<core::Service>(Api::all(client.clone()), "services", convert::service, &mut read).await?;
    let slices = Api::<discovery::EndpointSlice>::all(client.clone());
    list(slices, "endpointslices", convert::endpoint_slice, &mut read).await?;
    list::<core::Pod>(Api::all(client.clone()), "pods", convert::pod, &mut read).await?;
    let group = served_versions(client).await.map_err(|err| Error::Discovery(describe_client(&err)))?;
    for kind in &ISTIO_KINDS {
        let kind = istio_kind(kind.kind);
        match group.as_ref().and_then(|group| pick_version(group, &kind.to_string())) {
            Some(resource) => {
                let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
                let plural = resource.plural.clone();
                list(api, &plural, move |object| convert::istio(kind, object), &mut read).await?;
            }
            None => read.diagnostics.push(Diagnostic::info(not_installed(kind))),
        }
    }
    Ok(read)
}

/// Lists one kind, page by page, into `read`.
async fn list<K>(api: Api<K>, plural: &str, convert: impl Fn(K) -> Slot, read: &mut Read) -> Result<(), Error>
where
    K: Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = api
            .list(&params)
            .await
            .map_err(|err| Error::List { kind: plural.to_owned(), message: describe_client(&err) })?;
        for object in page.items {
            let slot = convert(object);
            read.inputs.extend(slot.input);
            read.diagnostics.extend(slot.diagnostics);
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(()),
        }
    }
}
