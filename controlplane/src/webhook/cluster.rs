//! What the webhook keeps in the cluster, each reached by name only (the RBAC of `examples/lab-cluster` grants no
//! more): its CA, in a Secret that the manifests create empty and the first pilotfish fills; and that CA as the
//! `caBundle` of every webhook of its MutatingWebhookConfiguration, set at start and again whenever it drifts
//! (someone cleared it, `kubectl apply` put an old copy back).
//!
//! ```text
//!   Secret <ns>/<secret>: ca.crt, ca.key ──get──► filled?  yes ──► that CA (every replica and restart: the same)
//!                                                  empty ──► a new CA, written back (update at its resourceVersion:
//!                                                            of two replicas racing, the loser reads the winner's)
//!                          missing or forbidden ──► a CA of this process only, with a warning
//!   MutatingWebhookConfiguration <name> ──watch (fieldSelector metadata.name)──► caBundle ≠ CA ──► patch caBundle
//! ```
//!
//! pilotfish never creates or deletes these objects: the manifests own them.

use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use super::ca::Ca;
use crate::sources::kubernetes::describe_client;

/// The Secret's key holding the CA certificate (PEM).
pub const CA_CERT_KEY: &str = "ca.crt";
/// The Secret's key holding the CA's private key (PKCS#8 PEM).
pub const CA_KEY_KEY: &str = "ca.key";
/// The field manager of pilotfish's writes.
const FIELD_MANAGER: &str = "pilotfish";
/// The longest wait between two tries to read the Secret while the apiserver cannot be reached.
const MAX_RETRY: Duration = Duration::from_secs(5);
/// How often a failed caBundle patch is tried again.
const PATCH_RETRY: Duration = Duration::from_secs(2);

/// Where the CA came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaOrigin {
    /// Read from the Secret.
    Stored,
    /// Made now and written to the Secret.
    Created,
    /// Made now for this process alone: the Secret could not be used (the reason was logged).
    Process,
}

/// The CA in the Secret `namespace/name`: read, or made and stored when the Secret is empty. Retries while the
/// apiserver cannot be reached; falls back to a CA of this process alone, with a warning, when the Secret is
/// missing, forbidden or holds something else.
pub async fn load_ca(client: &Client, namespace: &str, name: &str) -> (Ca, CaOrigin) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut delay = Duration::from_millis(100);
    let mut unreachable_logged = false;
    loop {
        match try_load_ca(&secrets, name).await {
            Ok(Some(loaded)) => return loaded,
            Ok(None) => {
                info!(secret = %format!("{namespace}/{name}"), "another pilotfish filled the Secret first; reading its CA");
                continue;
            }
            Err(Failure::Fallback(reason)) => {
                warn!(
                    secret = %format!("{namespace}/{name}"),
                    %reason,
                    "the webhook CA is this process's own: the caBundle changes when pilotfish restarts, and replicas \
                     would each set their own"
                );
                return process_ca();
            }
            Err(Failure::Retry(reason)) => {
                if unreachable_logged {
                    debug!(%reason, "still cannot read the webhook CA's Secret");
                } else {
                    warn!(secret = %format!("{namespace}/{name}"), %reason, "cannot read the webhook CA's Secret; retrying");
                    unreachable_logged = true;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}

enum Failure {
    /// The Secret cannot serve (missing, forbidden, not pilotfish's CA): use a CA of this process.
    Fallback(String),
    /// The apiserver did not answer: try again.
    Retry(String),
}

/// One try: the CA, or `None` when the Secret changed under us (a conflict) and must be read again.
async fn try_load_ca(secrets: &Api<Secret>, name: &str) -> Result<Option<(Ca, CaOrigin)>, Failure> {
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(Failure::Fallback(
                "the Secret does not exist (examples/lab-cluster/webhook.yaml creates it empty)".to_owned(),
            ));
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Err(Failure::Fallback(format!(
                "reading it is forbidden ({}); grant get and update on this Secret by name",
                status.message
            )));
        }
        Err(err @ kube::Error::Api(_)) => return Err(Failure::Fallback(describe_client(&err))),
        Err(err) => return Err(Failure::Retry(describe_client(&err))),
    };
    let data = secret.data.clone().unwrap_or_default();
    let text = |key: &str| data.get(key).map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned());
    match (text(CA_CERT_KEY), text(CA_KEY_KEY)) {
        (Some(cert), Some(key)) if !cert.trim().is_empty() && !key.trim().is_empty() => {
            let ca = Ca::from_pem(&cert, &key, SystemTime::now()).map_err(|err| {
                Failure::Fallback(format!(
                    "{err}; empty the Secret's data to let pilotfish make a new CA (and restart every pilotfish pod)"
                ))
            })?;
            info!(secret = %name, "webhook CA read from its Secret");
            Ok(Some((ca, CaOrigin::Stored)))
        }
        _ => {
            let ca = Ca::generate(SystemTime::now()).map_err(|err| Failure::Fallback(err.to_string()))?;
            let mut filled = secret;
            let data = filled.data.get_or_insert_with(Default::default);
            data.insert(CA_CERT_KEY.to_owned(), ByteString(ca.cert_pem().as_bytes().to_vec()));
            data.insert(CA_KEY_KEY.to_owned(), ByteString(ca.key_pem().into_bytes()));
            // `replace` sends the resourceVersion read: if another replica filled the Secret meanwhile, this fails
            // with 409 Conflict and the next try reads its CA.
            let params = PostParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PostParams::default() };
            match secrets.replace(name, &params, &filled).await {
                Ok(_) => {
                    info!(secret = %name, "new webhook CA stored in its Secret");
                    Ok(Some((ca, CaOrigin::Created)))
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
                Err(kube::Error::Api(status)) if status.code == 403 => Err(Failure::Fallback(format!(
                    "writing it is forbidden ({}); grant update on this Secret by name",
                    status.message
                ))),
                Err(err @ kube::Error::Api(_)) => Err(Failure::Fallback(describe_client(&err))),
                Err(err) => Err(Failure::Retry(describe_client(&err))),
            }
        }
    }
}

fn process_ca() -> (Ca, CaOrigin) {
    loop {
        // Generating a key with the system's randomness does not fail in practice; if it did, trying again is all
        // there is to do.
        match Ca::generate(SystemTime::now()) {
            Ok(ca) => return (ca, CaOrigin::Process),
            Err(err) => warn!(error = %err, "failed to make a webhook CA; trying again"),
        }
    }
}

/// Keeps `ca_pem` as the `caBundle` of every webhook of the MutatingWebhookConfiguration `name`, until dropped.
pub async fn keep_ca_bundle(client: Client, name: String, ca_pem: String) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api.clone(), config).default_backoff());
    let mut seen = false;
    let mut failing: Option<String> = None;
    // A patch that failed is tried again on this tick (the object may not change to give another event).
    let mut retry = tokio::time::interval(PATCH_RETRY);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut patch_failed = false;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = retry.tick(), if patch_failed => {
                match api.get_opt(&name).await {
                    Ok(Some(object)) => patch_failed = !set_ca_bundle(&api, &object, &ca_pem).await,
                    Ok(None) => patch_failed = false,
                    Err(err) => debug!(configuration = %name, error = %describe_client(&err), "still failing to read it"),
                }
                continue;
            }
        };
        let Some(event) = event else { return };
        let event = match event {
            Ok(event) => event,
            Err(err) => {
                let error = err.to_string();
                if failing.as_deref() != Some(error.as_str()) {
                    warn!(
                        configuration = %name,
                        %error,
                        "failed to watch the MutatingWebhookConfiguration (pilotfish needs get, list, watch and patch \
                         on it, by name); retrying"
                    );
                }
                failing = Some(error);
                continue;
            }
        };
        if failing.take().is_some() {
            info!(configuration = %name, "watching the MutatingWebhookConfiguration again");
        }
        match event {
            Event::Init => seen = false,
            Event::InitApply(object) | Event::Apply(object) => {
                seen = true;
                patch_failed = !set_ca_bundle(&api, &object, &ca_pem).await;
            }
            Event::InitDone if !seen => warn!(
                configuration = %name,
                "no such MutatingWebhookConfiguration: the apiserver does not call the injection webhook until it \
                 exists (kubectl apply -k examples/lab-cluster; --no-webhook turns the webhook off)"
            ),
            Event::InitDone => {}
            Event::Delete(_) => {
                seen = false;
                patch_failed = false;
                warn!(configuration = %name, "the MutatingWebhookConfiguration was deleted: no more automatic injection");
            }
        }
    }
}

/// Patches the `caBundle` of the webhooks of `object` that do not have `ca_pem`. False when that failed (logged).
async fn set_ca_bundle(
    api: &Api<MutatingWebhookConfiguration>,
    object: &MutatingWebhookConfiguration,
    ca_pem: &str,
) -> bool {
    let name = object.name_any();
    let stale: Vec<&str> = object
        .webhooks
        .iter()
        .flatten()
        .filter(|webhook| webhook.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca_pem.as_bytes()))
        .map(|webhook| webhook.name.as_str())
        .collect();
    if stale.is_empty() {
        return true;
    }
    // A strategic merge patch merges webhooks by name: only their caBundle changes, whatever else is edited meanwhile.
    let bundle = ByteString(ca_pem.as_bytes().to_vec());
    let webhooks: Vec<_> =
        stale.iter().map(|webhook| json!({ "name": webhook, "clientConfig": { "caBundle": bundle } })).collect();
    let params = PatchParams { field_manager: Some(FIELD_MANAGER.to_owned()), ..PatchParams::default() };
    match api.patch(&name, &params, &Patch::Strategic(json!({ "webhooks": webhooks }))).await {
        Ok(_) => {
            info!(configuration = %name, webhooks = ?stale, "caBundle set to the webhook CA");
            true
        }
        Err(err) => {
            warn!(configuration = %name, error = %describe_client(&err), "failed to set the caBundle; retrying");
            false
        }
    }
}
