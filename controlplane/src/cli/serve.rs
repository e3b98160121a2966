//! `pilotfish serve`: the control plane.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{info, warn};
use translator::{Translator, World};

use crate::State;
use crate::config_dir;
use crate::pipeline::{self, log_diagnostic};

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
///   curl -s 127.0.0.1:15014/debug/syncz
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Directory of configuration files, read recursively and watched.
    #[arg(long, value_name = "DIR")]
    config_dir: PathBuf,
    /// Where Envoys connect for ADS (gRPC).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds_address: SocketAddr,
    /// Health, readiness, metrics and debug views (HTTP).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    if !args.config_dir.is_dir() {
        anyhow::bail!("--config-dir {}: not a directory", args.config_dir.display());
    }
    let state = State::default();
    let listener = TcpListener::bind(args.xds_address)
        .await
        .with_context(|| format!("failed to listen on --xds-address {}", args.xds_address))?;
    let admin = TcpListener::bind(args.admin_address)
        .await
        .with_context(|| format!("failed to listen on --admin-address {}", args.admin_address))?;
    let (stop, stopped) = watch::channel(false);
    let wait = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await.is_ok();
    };
    let admin_task = tokio::spawn(crate::admin::serve(admin, state.clone(), wait(stopped.clone())));
    let source =
        Arc::new(DirectorySource { dir: args.config_dir.clone(), stamp: Mutex::new(None), state: state.clone() });
    source.catch_up();
    state.refresh.set({
        let source = Arc::clone(&source);
        Arc::new(move || source.catch_up())
    });
    let watcher = {
        let source = Arc::clone(&source);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(POLL_INTERVAL);
            loop {
                interval.tick().await;
                let source = Arc::clone(&source);
                let _ = tokio::task::spawn_blocking(move || source.catch_up()).await;
            }
        })
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    let result = crate::server::serve(listener, state, wait(stopped)).await;
    watcher.abort();
    let _ = admin_task.await;
    result.context("the xDS server failed")
}

/// The config directory, read again whenever its files change.
struct DirectorySource {
    dir: PathBuf,
    /// What the files looked like when last read; None before the first read.
    stamp: Mutex<Option<Vec<(PathBuf, u64, Option<SystemTime>)>>>,
    state: State,
}

impl DirectorySource {
    /// Reads the directory again if a file changed since the last read (one reader at a time).
    fn catch_up(&self) {
        let mut stamp = self.stamp.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = directory_stamp(&self.dir);
        if stamp.as_ref() != Some(&now) {
            *stamp = Some(now);
            reload(&self.dir, &self.state);
        }
    }
}

/// Reads the directory and publishes what it holds; on any problem the last good config stays served.
fn reload(dir: &Path, state: &State) {
    state.metrics.config_reloads.inc();
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
    let objects: Vec<_> = loaded
        .inputs
        .iter()
        .map(|input| {
            let reference = input.reference();
            json!({
                "kind": reference.kind.to_string(),
                "namespace": reference.namespace,
                "name": reference.name,
                "source": input.meta().source.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    let (world, duplicates) = World::new(std::mem::take(&mut loaded.inputs));
    let translator = Arc::new(Translator::new(&world));
    let mut diagnostics = Vec::new();
    for diagnostic in loaded.input_diagnostics.iter().chain(&duplicates).chain(translator.diagnostics()) {
        log_diagnostic(diagnostic, None);
        diagnostics.push(diagnostic.to_string());
    }
    diagnostics.extend(loaded.diagnostics.iter().map(ToString::to_string));
    let raw_resources: Vec<_> = loaded
        .resources
        .iter()
        .map(|(origin, any)| json!({ "type": any.type_url, "source": origin.to_string() }))
        .collect();
    let raw = Arc::new(loaded.resources.into_iter().map(|(_, any)| any).collect());
    let rebuild = state.cache.set_builder(pipeline::builder(translator, raw, Arc::clone(&state.metrics)));
    for (class, err) in &rebuild.failed {
        warn!(class = %class, error = %err, "not publishing for this class: serving its last good config");
    }
    let read_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    crate::admin::publish_inputs(
        state,
        json!({
            "source": dir.display().to_string(),
            "read_at_unix": read_at,
            "files": loaded.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
            "objects": objects,
            "raw_resources": raw_resources,
            "diagnostics": diagnostics,
        }),
    );
    info!(files = loaded.files.len(), objects = world.len(), changed = rebuild.changed.len(), "config read");
}

/// A cheap fingerprint of the directory: every config file with its size and modification time.
fn directory_stamp(dir: &Path) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut files = Vec::new();
    let Ok(listed) = config_dir::list_files(dir) else { return files };
    for path in listed {
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
