//! A real Envoy process, owned by a test.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, MutexGuard, OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;
use tokio::time::Instant;

use crate::{binary::envoy_binary, client::http_get, client::http_request};

/// How long Envoy gets to open its admin listener. It takes well under a
/// second; the slack is for a loaded 2-core CI machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Envoy writes its `--log-path` file through a buffer flushed on a timer
/// (10 s by default!). Flushing this often keeps `log_tail` current.
const LOG_FLUSH_INTERVAL_MS: &str = "50";

/// Log lines shown when a test panics while owning an Envoy.
const PANIC_LOG_LINES: usize = 80;

/// Log lines put into start-up errors.
const ERROR_LOG_LINES: usize = 30;

/// Flags the harness passes unless the caller passes them itself (Envoy
/// rejects a flag given twice). Each entry: the flag's spellings and value.
///
/// One worker thread makes round-robin load balancing exact across
/// sequential requests (each worker balances on its own) and keeps several
/// Envoys cheap on a 2-core machine.
const DEFAULT_FLAGS: &[(&[&str], &str)] = &[(&["--concurrency"], "1"), (&["--log-level", "-l"], "info")];

/// How to run Envoy other than directly as this process's user (see [`Envoy::launch`]).
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// A command that ends by executing its arguments (same pid), put before Envoy: `ip netns exec NS`.
    pub prefix: Vec<String>,
    /// Run as this uid (and gid of the same number), with no supplementary groups: e.g. 1337, the sidecar's
    /// user that traffic capture leaves alone.
    pub user: Option<u32>,
}

/// A running Envoy, killed when dropped.
///
/// Everything it writes (bootstrap, log, admin address) lives in a fresh
/// temporary directory, removed on drop, except when the owning test
/// panics: then the directory is kept, and the end of Envoy's log is printed
/// so the test output shows what Envoy had to say.
#[derive(Debug)]
pub struct Envoy {
    name: String,
    admin: SocketAddr,
    /// `None` once stopped. A mutex so that `&Envoy` can be shared freely.
    child: Mutex<Option<Child>>,
    /// `None` once kept on purpose (see `Drop`).
    dir: Option<TempDir>,
    dir_path: PathBuf,
    config_path: PathBuf,
    log_path: PathBuf,
    stdio_path: PathBuf,
}

impl Envoy {
    /// Starts Envoy with `bootstrap` (YAML, or JSON if it starts with `{`)
    /// and waits for its admin listener.
    ///
    /// The bootstrap should put the admin listener on `127.0.0.1` port 0:
    /// Envoy then picks a free port and reports it through
    /// `--admin-address-path`, so tests never race each other for it.
    ///
    /// If the test process dies without dropping the `Envoy` (SIGKILL, an
    /// abort), Envoy is killed too: it is started under
    /// `setpriv --pdeathsig KILL` where util-linux's `setpriv` exists. That
    /// signal comes when the *thread* that started Envoy ends, so start it
    /// from the test's own thread or a runtime worker, never from
    /// `spawn_blocking` or a short-lived thread.
    pub async fn start(name: &str, bootstrap: &str) -> Result<Self> {
        Self::start_with_args(name, bootstrap, &[]).await
    }

    /// Like [`Envoy::start`], with extra command-line flags, e.g.
    /// `["--component-log-level", "upstream:debug"]`. Passing `--concurrency`
    /// or `--log-level` replaces the harness's default for it; the flags the
    /// harness always sets (`-c`, `--log-path`, `--admin-address-path`,
    /// `--base-id`, `--disable-hot-restart`, `--drain-time-s`,
    /// `--file-flush-interval-msec`) must not be repeated. Envoy takes
    /// `--flag value`, not `--flag=value`.
    pub async fn start_with_args(name: &str, bootstrap: &str, extra_args: &[&str]) -> Result<Self> {
        Self::launch(name, bootstrap, extra_args, &Launch::default()).await
    }

    /// Like [`Envoy::start_with_args`], run the way `launch` says: e.g. inside a network namespace as another
    /// user. The bootstrap's admin address must then be one this process can reach.
    pub async fn launch(name: &str, bootstrap: &str, extra_args: &[&str], launch: &Launch) -> Result<Self> {
        let mut binary = tokio::task::spawn_blocking(envoy_binary).await.context("looking for the Envoy binary")??;

        let dir = tempfile::Builder::new()
            .prefix(&format!("e2e-envoy-{}-", file_name_safe(name)))
            .tempdir()
            .context("creating a temporary directory for Envoy")?;
        let dir_path = dir.path().to_path_buf();
        if let Some(uid) = launch.user {
            // Envoy running as `uid` writes its log and admin address here, and may not be able to reach the
            // binary where it is installed (a home directory): it gets a copy it owns.
            let copy = dir_path.join("envoy");
            std::fs::copy(&binary, &copy).with_context(|| format!("copying {} for uid {uid}", binary.display()))?;
            for path in [&dir_path, &copy] {
                std::os::unix::fs::chown(path, Some(uid), Some(uid))
                    .with_context(|| format!("giving {} to uid {uid}", path.display()))?;
            }
            binary = copy;
        }
        // Envoy picks the bootstrap parser from the file extension.
        let extension = if bootstrap.trim_start().starts_with('{') { "json" } else { "yaml" };
        let config_path = dir_path.join(format!("bootstrap.{extension}"));
        std::fs::write(&config_path, bootstrap).with_context(|| format!("writing {}", config_path.display()))?;
        let admin_path = dir_path.join("admin.txt");
        let log_path = dir_path.join("envoy.log");
        // Errors found before logging is set up (bad flags, unparsable
        // bootstrap) go to stderr only.
        let stdio_path = dir_path.join("stdio.log");
        let stdio = File::create(&stdio_path).with_context(|| format!("creating {}", stdio_path.display()))?;

        let mut command = match setpriv() {
            Some(setpriv) => {
                let mut command = Command::new(setpriv);
                command.args(["--pdeathsig", "KILL", "--"]).args(&launch.prefix);
                if let Some(uid) = launch.user {
                    // Changing user clears the parent-death signal: set it again after the change.
                    let ids = [format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned()];
                    command.arg(setpriv).args(ids).args(["--pdeathsig", "KILL", "--"]);
                }
                command.arg(&binary);
                command
            }
            None if launch.prefix.is_empty() && launch.user.is_none() => Command::new(&binary),
            None => bail!("running envoy `{name}` inside a namespace or as another user needs util-linux `setpriv`"),
        };
        command
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log_path)
            .args(["--file-flush-interval-msec", LOG_FLUSH_INTERVAL_MS])
            // No shared memory or domain sockets shared with other Envoys on
            // the machine. Envoy 1.40 then ignores --base-id (it logs
            // "base id=0"); a unique one is passed anyway in case a caller's
            // flags turn hot restart back on.
            .arg("--disable-hot-restart")
            .args(["--base-id", &unique_base_id().to_string()])
            // Listeners removed or replaced over LDS would otherwise drain
            // for 10 minutes, and tests want to see the new config at once.
            .args(["--drain-time-s", "0"]);
        for (spellings, value) in DEFAULT_FLAGS {
            if !extra_args.iter().any(|arg| spellings.contains(arg)) {
                command.args([spellings[0], value]);
            }
        }
        command.args(extra_args).stdin(Stdio::null()).stdout(stdio.try_clone()?).stderr(stdio);

        tracing::debug!(envoy = name, "starting {command:?}");
        let child = command.spawn().with_context(|| format!("spawning {}", binary.display()))?;

        // From here on, `Drop` kills the process if start-up fails.
        let mut envoy = Self {
            name: name.to_owned(),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: Mutex::new(Some(child)),
            dir: Some(dir),
            dir_path,
            config_path,
            log_path,
            stdio_path,
        };
        envoy.admin = envoy.wait_for_admin_address(&admin_path).await?;
        tracing::debug!(envoy = name, admin = %envoy.admin, "started");
        Ok(envoy)
    }

    async fn wait_for_admin_address(&self, admin_path: &Path) -> Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            self.fail_if_exited("before its admin listener came up")?;
            // The file can be seen half-written, so parse failures just mean
            // "not yet".
            if let Ok(text) = std::fs::read_to_string(admin_path)
                && let Ok(addr) = text.trim().parse()
            {
                return Ok(addr);
            }
            if Instant::now() >= deadline {
                self.stop();
                bail!(
                    "envoy `{}` did not write its admin address within {START_TIMEOUT:?}{}",
                    self.name,
                    self.diagnostics()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until `/ready` reports `LIVE`, i.e. Envoy finished initialising:
    /// with xDS, that is after its first clusters and listeners arrived (or
    /// their `initial_fetch_timeout` passed).
    pub async fn wait_live(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.fail_if_exited("while waiting to become LIVE")?;
            let last = match http_get(self.admin, "localhost", "/ready", &[]).await {
                Ok(reply) if reply.body.contains("LIVE") => return Ok(()),
                Ok(reply) => format!("/ready says {} {}", reply.status, reply.body.trim()),
                Err(error) => format!("{error:#}"),
            };
            if Instant::now() >= deadline {
                bail!("envoy `{}` not LIVE after {timeout:?}: {last}{}", self.name, self.diagnostics());
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The name given to [`Envoy::start`], used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// Envoy's own log (`--log-path`), flushed every 50 ms.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The bootstrap file Envoy was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The temporary directory holding this Envoy's files.
    pub fn dir(&self) -> &Path {
        &self.dir_path
    }

    /// The last `n` lines of Envoy's log, without the long list of compiled-in
    /// extensions Envoy prints at start-up (it would crowd out everything
    /// else in a short tail).
    pub fn log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|line| !is_extension_listing(line)).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// `GET` on the admin interface; errors unless the status is 200.
    pub async fn get_admin(&self, path: &str) -> Result<String> {
        let reply = http_get(self.admin, "localhost", path, &[])
            .await
            .with_context(|| format!("envoy `{}` admin", self.name))?;
        if reply.status != 200 {
            bail!("envoy `{}` admin GET {path}: status {}: {}", self.name, reply.status, reply.body.trim());
        }
        Ok(reply.body)
    }

    /// `POST` on the admin interface (endpoints that change state, such as
    /// `/logging?level=debug` or `/healthcheck/fail`, refuse `GET`); errors
    /// unless the status is 200.
    pub async fn post_admin(&self, path: &str) -> Result<String> {
        let reply = http_request("POST", self.admin, "localhost", path, &[], "")
            .await
            .with_context(|| format!("envoy `{}` admin", self.name))?;
        if reply.status != 200 {
            bail!("envoy `{}` admin POST {path}: status {}: {}", self.name, reply.status, reply.body.trim());
        }
        Ok(reply.body)
    }

    /// `/config_dump`, parsed. Like the endpoint, it leaves out EDS
    /// endpoints; use `get_admin("/config_dump?include_eds")` for those.
    pub async fn config_dump(&self) -> Result<serde_json::Value> {
        let body = self.get_admin("/config_dump").await?;
        serde_json::from_str(&body).with_context(|| format!("envoy `{}` /config_dump is not JSON", self.name))
    }

    /// `/stats` in its text form: one `name: value` per line.
    pub async fn stats(&self) -> Result<String> {
        self.get_admin("/stats").await
    }

    /// The value of counter or gauge `name`, e.g.
    /// `cluster.backend.upstream_rq_total`. `None` if Envoy has no such stat
    /// (yet: a cluster's stats appear with the cluster) or it is a histogram.
    pub async fn stat(&self, name: &str) -> Result<Option<u64>> {
        Ok(parse_stat(&self.stats().await?, name))
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        match lock(&self.child).as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills Envoy (SIGKILL: tests gain nothing from a graceful drain) and
    /// reaps it. Idempotent; the files stay until the `Envoy` is dropped.
    pub fn stop(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            // Fails only if it already exited, which is as good.
            let _ = child.kill();
            // Reaping is what keeps a zombie from lingering; after SIGKILL it
            // returns at once.
            if let Err(error) = child.wait() {
                tracing::warn!(envoy = %self.name, "waiting for envoy: {error}");
            }
        }
    }

    fn fail_if_exited(&self, when: &str) -> Result<()> {
        let status = match lock(&self.child).as_mut() {
            None => Some("was stopped".to_owned()),
            Some(child) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(status)) => Some(format!("exited ({status})")),
                Err(error) => Some(format!("is in an unknown state ({error})")),
            },
        };
        match status {
            None => Ok(()),
            Some(status) => bail!("envoy `{}` {status} {when}{}", self.name, self.diagnostics()),
        }
    }

    /// What Envoy printed, for error messages: stderr, then the log's end.
    fn diagnostics(&self) -> String {
        let stdio = std::fs::read_to_string(&self.stdio_path).unwrap_or_default();
        let mut text = String::new();
        if !stdio.trim().is_empty() {
            text.push_str(&format!("\n--- envoy stderr ---\n{}", stdio.trim_end()));
        }
        text.push_str(&format!("\n--- end of envoy log ---\n{}", self.log_tail(ERROR_LOG_LINES)));
        text
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        if panicking && self.is_running() {
            // Give Envoy one log flush interval to write out what it was
            // doing when the test failed; SIGKILL loses unflushed lines.
            std::thread::sleep(Duration::from_millis(120));
        }
        self.stop();
        if !panicking {
            return;
        }
        // `keep` stops TempDir from deleting the files on drop.
        if let Some(dir) = self.dir.take() {
            let _ = dir.keep();
        }
        let stdio = std::fs::read_to_string(&self.stdio_path).unwrap_or_default();
        let stdio =
            if stdio.trim().is_empty() { String::new() } else { format!("--- stderr ---\n{}\n", stdio.trim_end()) };
        eprintln!(
            "===== envoy `{name}` (test panicked): last {PANIC_LOG_LINES} log lines =====\n\
             {stdio}{tail}\n\
             ===== end of envoy `{name}`; full log kept at {log} =====",
            name = self.name,
            tail = self.log_tail(PANIC_LOG_LINES),
            log = self.log_path.display(),
        );
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for listeners the test
/// puts into Envoy's config. (Another process could take it in between;
/// on a test machine that is rare enough.)
///
/// # Panics
/// If no port can be bound on 127.0.0.1, in which case no test can run.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 to find a free port")
}

/// Finds `name: <integer>` in admin `/stats` text.
fn parse_stat(stats: &str, name: &str) -> Option<u64> {
    stats.lines().find_map(|line| {
        let (key, value) = line.split_once(": ")?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// Whether `line` is part of the "statically linked extensions" listing that
/// opens every Envoy log (about 100 very long lines).
fn is_extension_listing(line: &str) -> bool {
    let Some(at) = line.find("[source/server/server.cc:") else {
        return false;
    };
    let message = line[at..].split_once("] ").map_or("", |(_, message)| message);
    message.starts_with("  ") || message.starts_with("statically linked extensions")
}

/// Envoys on one machine must not share a base id while hot restart is on:
/// it names their shared memory. pid keeps processes apart, the counter the
/// Envoys of one process.
fn unique_base_id() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    (std::process::id() % 10_000) * 100 + NEXT.fetch_add(1, Ordering::Relaxed) % 100
}

/// util-linux `setpriv`, if installed: it sets the parent-death signal and
/// then execs Envoy (same pid), which std cannot do without `unsafe`.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("setpriv")).find(|path| path.is_file())
        })
        .as_deref()
}

fn file_name_safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not stop Drop from killing Envoy.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_and_skips_histograms() {
        let stats = "cluster.a.upstream_rq_total: 3\n\
                     cluster.a.upstream_rq_time: P0(nan,1) P25(nan,1)\n\
                     server.live: 1\n";
        assert_eq!(parse_stat(stats, "cluster.a.upstream_rq_total"), Some(3));
        assert_eq!(parse_stat(stats, "server.live"), Some(1));
        assert_eq!(parse_stat(stats, "cluster.a.upstream_rq_time"), None);
        assert_eq!(parse_stat(stats, "cluster.a"), None);
    }

    #[test]
    fn recognises_the_extension_listing() {
        let listing =
            "[2026-01-01 00:00:00.000][1][info][main] [source/server/server.cc:467]   envoy.filters.http: envoy.buffer";
        let header =
            "[2026-01-01 00:00:00.000][1][info][main] [source/server/server.cc:465] statically linked extensions:";
        let useful = "[2026-01-01 00:00:00.000][1][info][main] [source/server/server.cc:1159] exiting";
        assert!(is_extension_listing(listing));
        assert!(is_extension_listing(header));
        assert!(!is_extension_listing(useful));
    }

    #[test]
    fn base_ids_differ_within_a_process() {
        assert_ne!(unique_base_id(), unique_base_id());
    }
}
