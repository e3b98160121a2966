//! `loadgen peer`: the same benchmark against go-control-plane (the peer under `tests/peer/go-control-plane`),
//! serving the same resources: `pilotfish translate -o json` of the benchmark's world, one file per proxy class,
//! loaded into go-control-plane's snapshot cache.
//!
//! A change rewrites the service's file in the world, translates every class into a staging directory (not timed:
//! translation is pilotfish's work, not the cache's), then moves the files over the ones the peer watches; the
//! change counts from when the last move returns. The peer's own cost of a change (reading and parsing the JSON,
//! setting the snapshot) is in its CPU time and latency.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::driver::{self, Change, ChangeFn, Changed, Results, Settings};
use crate::proxy::Class;
use crate::report::PEER;
use crate::selfhost::{free_port, millis, stop, tail};
use crate::world;

#[derive(Clone, Debug)]
pub struct PeerSettings {
    /// The peer's binary (`tests/peer/go-control-plane/build` prints it).
    pub peer: PathBuf,
    /// pilotfish, for `translate`.
    pub pilotfish: PathBuf,
    pub services: usize,
    /// The peer's `--debounce`.
    pub debounce: Duration,
    pub work_dir: Option<PathBuf>,
}

pub async fn run(own: &PeerSettings, mut settings: Settings) -> anyhow::Result<Results> {
    let temporary = tempfile::Builder::new().prefix("loadgen-peer-").tempdir()?;
    let base = own.work_dir.clone().unwrap_or_else(|| temporary.path().to_owned());
    let (config, snapshots, staging) = (base.join("config"), base.join("gcp"), base.join("gcp.staging"));
    for dir in [&config, &snapshots, &staging] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    world::write(&config, own.services)?;
    let classes: Vec<Class> = (0..settings.classes).map(Class::bench).collect();
    let files: Vec<PathBuf> = (0..classes.len()).map(|i| snapshots.join(format!("class-{i}.json"))).collect();
    for (class, file) in classes.iter().zip(&files) {
        translate(&own.pilotfish, &config, class, file)?;
    }
    let xds = free_port()?;
    let log_path = base.join("peer.log");
    let log = std::fs::File::create(&log_path)?;
    let mut command = Command::new(&own.peer);
    command.args(["--xds-address", &xds.to_string(), "--debounce", &millis(own.debounce)]);
    for file in &files {
        command.arg("--snapshot").arg(file);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("failed to start {}", own.peer.display()))?;
    let result = async {
        wait_serving(&mut child, &log_path).await?;
        let weights = Mutex::new(std::collections::HashMap::<usize, u32>::new());
        let (pilotfish, services) = (own.pilotfish.clone(), own.services);
        let apply: ChangeFn = Arc::new(move |number| {
            let service = number % services.max(1);
            let mut weights = weights.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let weight = world::next_weight(*weights.get(&service).unwrap_or(&world::INITIAL_WEIGHT));
            world::set_weight(&config, service, weight)?;
            weights.insert(service, weight);
            let staged: Vec<PathBuf> = (0..classes.len()).map(|i| staging.join(format!("class-{i}.json"))).collect();
            for (class, file) in classes.iter().zip(&staged) {
                translate(&pilotfish, &config, class, file)?;
            }
            for (from, to) in staged.iter().zip(&files) {
                std::fs::rename(from, to)?;
            }
            Ok(Changed { at: Some(Instant::now()), expect: Some((world::host(service), weight)) })
        });
        settings.server = PEER.to_owned();
        settings.target = xds;
        settings.admin = None;
        settings.server_pid = child.id();
        settings.change = Change::Function { services: own.services, apply };
        settings.debounce = own.debounce;
        driver::run(&settings).await
    }
    .await;
    stop(&mut child).await;
    result.map_err(|err| err.context(format!("the peer's log: {}", tail(&log_path))))
}

/// `pilotfish translate` of the world for one class, as JSON, into `out`.
fn translate(pilotfish: &Path, config: &Path, class: &Class, out: &Path) -> anyhow::Result<()> {
    let labels: Vec<String> = class.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let status = std::process::Command::new(pilotfish)
        .arg("translate")
        .arg("-f")
        .arg(config)
        .args(["-o", "json", "--role", class.role, "--namespace", &class.namespace, "--labels", &labels.join(",")])
        .env("RUST_LOG", "error")
        .stdout(std::fs::File::create(out)?)
        .status()
        .with_context(|| format!("failed to run {} translate", pilotfish.display()))?;
    anyhow::ensure!(status.success(), "pilotfish translate failed for {}: {status}", out.display());
    Ok(())
}

/// Until the peer prints its `serving` line.
async fn wait_serving(child: &mut Child, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("the peer exited before serving ({status}): {}", tail(log));
        }
        if std::fs::read_to_string(log).unwrap_or_default().contains("gcp-peer serving") {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the peer was not serving after 120s: {}", tail(log));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
