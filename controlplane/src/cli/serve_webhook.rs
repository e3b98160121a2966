//! The flags of `pilotfish serve --kubernetes` for the sidecar injection webhook.

use std::net::SocketAddr;

use crate::capture::DEFAULT_PROXY_UID;
use crate::inject::{DEFAULT_INIT_IMAGE, DEFAULT_PROXY_IMAGE, DEFAULT_XDS_ADDRESS, InjectOptions};
use crate::webhook::{DEFAULT_CA_SECRET, DEFAULT_CONFIGURATION, DEFAULT_NAMESPACE, DEFAULT_SERVICE, Settings};

#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Sidecar injection webhook (with --kubernetes)")]
pub struct WebhookArgs {
    /// Where the injection webhook listens (HTTPS; the apiserver calls POST /inject).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15017")]
    pub webhook_address: SocketAddr,
    /// Do not serve the injection webhook.
    #[arg(long)]
    pub no_webhook: bool,
    /// The namespace pilotfish runs in: the webhook CA's Secret is there, and its pods are never injected.
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    pub webhook_namespace: String,
    /// The Service the apiserver calls the webhook through (the serving certificate names it).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SERVICE)]
    pub webhook_service: String,
    /// The MutatingWebhookConfiguration whose caBundle pilotfish keeps current.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONFIGURATION)]
    pub webhook_configuration: String,
    /// The Secret, in --webhook-namespace, that holds the webhook CA (created empty by the manifests).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CA_SECRET)]
    pub webhook_ca_secret: String,
    /// The injected sidecar's Envoy image (as `pilotfish inject --proxy-image`).
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_PROXY_IMAGE)]
    pub inject_proxy_image: String,
    /// The injected init container's image, with `sh` and `iptables` (as `pilotfish inject --init-image`).
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_INIT_IMAGE)]
    pub inject_init_image: String,
    /// Where injected sidecars reach pilotfish's xDS (as `pilotfish inject --xds-address`).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_XDS_ADDRESS)]
    pub inject_xds_address: String,
    /// The uid injected sidecars run as; its connections are not captured (as `pilotfish inject --proxy-uid`).
    #[arg(long, value_name = "UID", default_value_t = DEFAULT_PROXY_UID)]
    pub inject_proxy_uid: u32,
}

impl WebhookArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            namespace: self.webhook_namespace.clone(),
            service: self.webhook_service.clone(),
            configuration: self.webhook_configuration.clone(),
            ca_secret: self.webhook_ca_secret.clone(),
            inject: InjectOptions {
                proxy_image: self.inject_proxy_image.clone(),
                init_image: self.inject_init_image.clone(),
                xds_address: self.inject_xds_address.clone(),
                proxy_uid: self.inject_proxy_uid,
                namespace: None,
            },
        }
    }
}
