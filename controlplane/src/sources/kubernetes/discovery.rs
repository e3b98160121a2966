//! Which version of each Istio kind the cluster serves, found by API discovery and watched; polled while a CRD is
//! missing, and again when a watcher ends because the apiserver stopped serving its kind.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::discovery::ApiGroup;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};
use translator::Kind;

use super::watch::describe_client;
use super::{KubernetesSource, convert};
use crate::crds::{GROUP, ISTIO_KINDS, IstioKind, VERSIONS};

impl KubernetesSource {
    /// Finds which version of each Istio kind the cluster serves and runs its watcher; polls discovery while a
    /// kind's CRD is missing, and again when a watcher ends because the apiserver stopped serving its kind.
    pub(super) async fn istio_kinds(self: Arc<Self>) {
        let mut watchers: JoinSet<Kind> = JoinSet::new();
        let mut active = BTreeSet::new();
        // Kinds that were served and that discovery has missed once: an apiserver that just (re)started serves
        // CRDs only once it has read them, so their objects are dropped only when discovery misses them twice.
        let mut missed_once = BTreeSet::new();
        let mut discovery_failing = false;
        loop {
            let missing: Vec<&IstioKind> =
                ISTIO_KINDS.iter().filter(|k| !active.contains(&istio_kind(k.kind))).collect();
            if !missing.is_empty() {
                match served_versions(&self.client).await {
                    Ok(group) => {
                        if discovery_failing {
                            info!("API discovery works again");
                            discovery_failing = false;
                        }
                        for istio in missing {
                            let kind = istio_kind(istio.kind);
                            match group.as_ref().and_then(|group| pick_version(group, istio.kind)) {
                                Some(resource) => {
                                    missed_once.remove(&kind);
                                    let api_version = resource.api_version.clone();
                                    self.update(|store| {
                                        (Vec::new(), store.kind(kind).set_installed(Some(api_version)))
                                    });
                                    info!(%kind, api_version = %resource.api_version, "watching");
                                    active.insert(kind);
                                    watchers.spawn(Arc::clone(&self).watch_istio(kind, resource));
                                }
                                None => {
                                    let was_served = matches!(self.store().kind(kind).installed, Some(Some(_)));
                                    if was_served && missed_once.insert(kind) {
                                        continue;
                                    }
                                    missed_once.remove(&kind);
                                    let changed = self.update(|store| {
                                        let entry = store.kind(kind);
                                        if was_served {
                                            (entry.forget(), true)
                                        } else {
                                            (Vec::new(), entry.set_installed(None))
                                        }
                                    });
                                    if changed {
                                        warn!(%kind, "{}", not_installed(kind));
                                    }
                                }
                            }
                        }
                    }
                    Err(err) => {
                        if discovery_failing {
                            debug!(error = %describe_client(&err), "API discovery still failing");
                        } else {
                            warn!(error = %describe_client(&err), "API discovery failed; retrying");
                            discovery_failing = true;
                        }
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.discovery_interval) => {}
                Some(Ok(kind)) = watchers.join_next() => {
                    active.remove(&kind);
                    // Not at once: the apiserver may be between two states (a CRD being removed or read).
                    tokio::time::sleep(self.settings.discovery_interval.min(Duration::from_secs(1))).await;
                }
            }
        }
    }

    /// Watches one Istio kind at the version discovery found; returns the kind when the apiserver stops serving it.
    async fn watch_istio(self: Arc<Self>, kind: Kind, resource: ApiResource) -> Kind {
        let api: Api<DynamicObject> = match &self.settings.namespace {
            Some(namespace) => Api::namespaced_with(self.client.clone(), namespace, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        };
        self.watch(kind, api, move |object: DynamicObject| convert::istio(kind, object)).await;
        kind
    }
}

/// The networking.istio.io group as the cluster serves it; `None` when it serves no version of it.
pub(crate) async fn served_versions(client: &Client) -> Result<Option<ApiGroup>, kube::Error> {
    match kube::discovery::group(client, GROUP).await {
        Ok(group) => Ok(Some(group)),
        Err(kube::Error::Discovery(kube::error::DiscoveryError::MissingApiGroup(_))) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The most preferred of v1, v1beta1, v1alpha3 the group serves `kind` at.
pub(crate) fn pick_version(group: &ApiGroup, kind: &str) -> Option<ApiResource> {
    preferred(|version| group.versioned_resources(version).into_iter().map(|(resource, _)| resource).collect(), kind)
}

pub(super) fn preferred(served: impl Fn(&str) -> Vec<ApiResource>, kind: &str) -> Option<ApiResource> {
    VERSIONS.iter().find_map(|version| served(version).into_iter().find(|r| r.kind == kind))
}

pub(crate) fn istio_kind(kind: &str) -> Kind {
    match kind {
        "Gateway" => Kind::Gateway,
        "VirtualService" => Kind::VirtualService,
        "DestinationRule" => Kind::DestinationRule,
        _ => Kind::ServiceEntry,
    }
}

pub(super) fn is_istio(kind: Kind) -> bool {
    matches!(kind, Kind::Gateway | Kind::VirtualService | Kind::DestinationRule | Kind::ServiceEntry)
}

pub(super) fn registry_api_version(kind: Kind) -> &'static str {
    match kind {
        Kind::EndpointSlice => "discovery.k8s.io/v1",
        _ => "v1",
    }
}

pub(crate) fn not_installed(kind: Kind) -> String {
    let plural = ISTIO_KINDS.iter().find(|k| istio_kind(k.kind) == kind).map_or("", |k| k.plural);
    format!(
        "the CustomResourceDefinition {plural}.{GROUP} is not installed: {kind} objects are not read until it is \
         (`pilotfish crds | kubectl apply -f -` installs it)"
    )
}
