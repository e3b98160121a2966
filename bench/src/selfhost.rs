//! `loadgen self`: the benchmark's world in a temporary directory, `pilotfish serve` on it as a child process on
//! loopback (its own process, so its CPU time and memory are its own), and the convergence benchmark against it.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

use crate::driver::{self, Change, Results, Settings};
use crate::world;

/// What `loadgen self` needs beyond the driver's settings.
#[derive(Clone, Debug)]
pub struct SelfSettings {
    pub pilotfish: PathBuf,
    pub services: usize,
    /// `--debounce-quiet` and `--debounce-max` for `pilotfish serve`.
    pub debounce_quiet: Duration,
    pub debounce_max: Duration,
    /// Where to keep the world and the server's log (a temporary directory, removed afterwards, if not given).
    pub work_dir: Option<PathBuf>,
}

/// Runs the benchmark against a fresh `pilotfish serve`; `settings.target`, `server_pid`, `admin` and `change` are
/// filled in here.
pub async fn run(own: &SelfSettings, mut settings: Settings) -> anyhow::Result<Results> {
    let temporary = tempfile::Builder::new().prefix("loadgen-").tempdir()?;
    let base = own.work_dir.clone().unwrap_or_else(|| temporary.path().to_owned());
    let config = base.join("config");
    if config.exists() {
        std::fs::remove_dir_all(&config)?;
    }
    world::write(&config, own.services)
        .with_context(|| format!("failed to write the world to {}", config.display()))?;
    let xds = free_port()?;
    let admin = free_port()?;
    let log_path = base.join("pilotfish.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(&own.pilotfish)
        .arg("serve")
        .arg("--config-dir")
        .arg(&config)
        .args(["--xds-address", &xds.to_string(), "--admin-address", &admin.to_string()])
        .args(["--debounce-quiet", &millis(own.debounce_quiet), "--debounce-max", &millis(own.debounce_max)])
        .env("RUST_LOG", std::env::var("PILOTFISH_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("failed to start {}", own.pilotfish.display()))?;
    let result = async {
        wait_ready(&mut child, admin, &log_path).await?;
        settings.target = xds;
        settings.admin = Some(admin);
        settings.server_pid = child.id();
        settings.change = Change::Directory { dir: config.clone(), services: own.services };
        settings.debounce = own.debounce_quiet;
        driver::run(&settings).await
    }
    .await;
    stop(&mut child).await;
    result.map_err(|err| err.context(format!("pilotfish's log: {}", tail(&log_path))))
}

/// A duration as the servers' flags take it.
pub(crate) fn millis(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> std::io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

async fn wait_ready(child: &mut Child, admin: SocketAddr, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("pilotfish exited before it was ready ({status}): {}", tail(log));
        }
        if let Ok((200, _)) = crate::http::get(admin, "/readyz").await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("pilotfish was not ready after 120s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM (a graceful stop), then SIGKILL if it lingers.
pub(crate) async fn stop(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_ok() {
            return;
        }
    }
    let _ = child.kill().await;
}

/// The last lines of a log file.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
