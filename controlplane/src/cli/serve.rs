//! `pilotfish serve`: the control plane.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::info;

use crate::State;
use crate::pipeline::Debounce;
use crate::shutdown;
use crate::sources::directory::DirectorySource;
use crate::sources::kubernetes::{self, KubernetesSource};

/// Serve xDS to Envoy from a directory of configuration, or from a Kubernetes cluster.
///
/// The directory holds Istio objects (Gateway, VirtualService, DestinationRule, ServiceEntry), Kubernetes Services,
/// EndpointSlices and Pods, and raw Envoy resources (YAML or JSON with "@type"). Each proxy gets the translation
/// for its class plus every raw resource; changes to the directory are picked up while serving.
///
/// With --kubernetes, the same kinds are watched in the cluster kube finds (in-cluster service account, else
/// $KUBECONFIG or ~/.kube/config); `pilotfish crds` prints the Istio CRDs for clusters without Istio. pilotfish
/// then also serves the sidecar injection webhook (HTTPS, as istiod on 15017) that examples/lab-cluster's
/// MutatingWebhookConfiguration calls: it injects what `pilotfish inject` would, keeps its CA in a Secret and
/// keeps that CA as the configuration's caBundle.
///
/// Example:
///   pilotfish serve --config-dir examples/raw-envoy/config
///   pilotfish bootstrap --node-id gw --role gateway > envoy.yaml && envoy -c envoy.yaml
///   curl -s 127.0.0.1:15014/debug/syncz
///   pilotfish serve --kubernetes --namespace bookinfo
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Directory of configuration files, read recursively and watched.
    #[arg(long, value_name = "DIR", required_unless_present = "kubernetes", conflicts_with = "kubernetes")]
    config_dir: Option<PathBuf>,
    /// Watch a Kubernetes cluster instead of a directory.
    #[arg(long)]
    kubernetes: bool,
    /// With --kubernetes: read only this namespace (default: all).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Where Envoys connect for ADS (gRPC).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// Health, readiness, metrics and debug views (HTTP).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
    /// Translate once files have been quiet this long after a change...
    #[arg(long, value_name = "DURATION", default_value = "100ms", value_parser = parse_duration)]
    debounce_quiet: Duration,
    /// ... but no later than this after the first change of a burst.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    debounce_max: Duration,
    #[command(flatten)]
    webhook: super::serve_webhook::WebhookArgs,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    translator::duration::parse_duration(text)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if args.namespace.is_some() && !args.kubernetes {
        anyhow::bail!("--namespace filters what --kubernetes reads; it needs --kubernetes");
    }
    if let Some(dir) = &args.config_dir
        && !dir.is_dir()
    {
        anyhow::bail!("--config-dir {}: not a directory", dir.display());
    }
    let client = if args.kubernetes { Some(kubernetes::default_client().await?) } else { None };
    let state = State::default();
    let listener = TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("failed to listen on --xds-address {}", args.xds_address))?;
    let admin = TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("failed to listen on --admin-address {}", args.admin_address))?;
    let (stop, stopped) = shutdown::channel();
    let stop = Arc::new(stop);
    let admin_task = tokio::spawn(crate::admin::serve(admin, state.clone(), {
        let stopped = stopped.clone();
        async move { stopped.wait().await }
    }));
    let webhook_task =
        match &client {
            Some(client) if !args.webhook.no_webhook => {
                let address = args.webhook.webhook_address;
                let listener = TcpListener::bind(address)
                    .await
                    .with_context(|| format!("failed to listen on --webhook-address {address}"))?;
                let stopped = stopped.clone();
                let run = crate::webhook::run(client.clone(), listener, args.webhook.settings(), async move {
                    stopped.wait().await
                });
                Some(tokio::spawn(run))
            }
            _ => None,
        };
    let debounce = Debounce { quiet: args.debounce_quiet, max_delay: args.debounce_max };
    let pipeline = tokio::spawn(Arc::clone(&state.pipeline).run(debounce, stopped.clone()));
    let source = match (client, args.config_dir) {
        (Some(client), _) => {
            let settings = kubernetes::Settings { namespace: args.namespace, ..Default::default() };
            tokio::spawn(KubernetesSource::new(client, settings, &state.pipeline).run(stopped.clone()))
        }
        (None, Some(dir)) => {
            let source = DirectorySource::new(dir, &state.pipeline);
            // The first read is published before Envoys can connect: they get the whole configuration at once.
            let pipeline = Arc::clone(&state.pipeline);
            tokio::task::spawn_blocking(move || pipeline.catch_up()).await?;
            tokio::spawn(source.watch(stopped.clone()))
        }
        (None, None) => anyhow::bail!("one of --config-dir and --kubernetes is required"),
    };
    tokio::spawn({
        let stop = Arc::clone(&stop);
        async move {
            shutdown_signal().await;
            stop.trigger();
        }
    });
    let result = crate::server::serve(listener, state, {
        let stopped = stopped.clone();
        async move { stopped.wait().await }
    })
    .await;
    // The xDS server ended (on the signal, or failing): everything else ends with it.
    stop.trigger();
    let _ = tokio::join!(admin_task, pipeline, source);
    if let Some(webhook) = webhook_task {
        let _ = webhook.await;
    }
    result.context("the xDS server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    info!("shutting down");
}
