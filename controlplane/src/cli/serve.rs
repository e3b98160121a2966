//! `pilotfish serve`: the control plane.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::net::TcpListener;
use tracing::{info, warn};

use translator::{Translator, World};

use crate::cache::SnapshotCache;
use crate::config_dir;
use crate::pipeline::{self, log_diagnostic};
use crate::registry::ProxyRegistry;

/// How often the config directory is checked for changes.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Serve xDS to Envoy from a directory of configuration.
///
/// The directory holds Istio objects (Gateway, VirtualService, DestinationRule, ServiceEntry), Kubernetes Services,
/// EndpointSlices and Pods, and raw Envoy resources (YAML or JSON with "@type"). Each proxy gets the translation
/// for its class plus every raw resource; changes to the directory are picked up while serving.
///
/// Example:
///   pilotfish serve --config-dir examples/raw-envoy/config
///   pilotfish bootstrap --node-id gw --role gateway > envoy.yaml && envoy -c envoy.yaml
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Directory of configuration files, read recursively and watched.
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Where Envoys connect for ADS (gRPC).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if !args.config_dir.is_dir() {
        anyhow::bail!("--config-dir {}: not a directory", args.config_dir.display());
    }
    let cache = Arc::new(SnapshotCache::new());
    let registry = Arc::new(ProxyRegistry::new());
    let listener = TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("failed to listen on --xds-address {}", args.xds_address))?;
    let mut stamp = directory_stamp(&args.config_dir);
    reload(&args.config_dir, &cache);
    let watcher = {
        let (dir, cache) = (args.config_dir.clone(), Arc::clone(&cache));
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(POLL_INTERVAL);
            loop {
                interval.tick().await;
                let now = directory_stamp(&dir);
                if now != stamp {
                    stamp = now;
                    reload(&dir, &cache);
                }
            }
        })
    };
    let result = crate::server::serve(listener, cache, registry, shutdown_signal()).await;
    watcher.abort();
    result.context("the xDS server failed")
}

/// Reads the directory and publishes what it holds; on any problem the last good config stays served.
fn reload(dir: &Path, cache: &SnapshotCache) {
    let mut loaded = match config_dir::load(dir) {
        Ok(loaded) => loaded,
        Err(err) => {
            warn!(dir = %dir.display(), error = %err, "failed to read the config directory; serving the last good config");
            return;
        }
    };
    // Checks the raw resources on their own, so their problems are reported once, with file and position.
    loaded.snapshot();
    for diagnostic in &loaded.diagnostics {
        warn!(file = %diagnostic.origin.file.display(), document = diagnostic.origin.document, "{}", diagnostic.message);
    }
    let (world, duplicates) = World::new(std::mem::take(&mut loaded.inputs));
    let translator = Arc::new(Translator::new(&world));
    for diagnostic in loaded.input_diagnostics.iter().chain(&duplicates).chain(translator.diagnostics()) {
        log_diagnostic(diagnostic, None);
    }
    let raw = Arc::new(loaded.resources.into_iter().map(|(_, any)| any).collect());
    let builder = pipeline::builder(translator, raw);
    let rebuild = cache.set_builder(builder);
    for (class, err) in &rebuild.failed {
        warn!(class = %class, error = %err, "not publishing for this class: serving its last good config");
    }
    info!(files = loaded.files.len(), objects = world.len(), changed = rebuild.changed.len(), "config read");
}

/// A cheap fingerprint of the directory: every config file with its size and modification time.
fn directory_stamp(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    let Ok(loaded) = config_dir::list_files(dir) else { return files };
    for path in loaded {
        let metadata = std::fs::metadata(&path).ok();
        let size = metadata.as_ref().map_or(0, |m| m.len());
        let modified = metadata.and_then(|m| m.modified().ok());
        files.push((path, size, modified));
    }
    files
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
