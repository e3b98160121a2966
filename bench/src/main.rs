//! `loadgen`: simulated Envoy proxies against an xDS server, for benchmarks. See `scripts/bench`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use bench::driver::{self, Change, Mix, Results, Settings};
use bench::envoy_report::{self, Run};
use bench::peer::PeerSettings;
use bench::selfhost::{self, SelfSettings};
use bench::{converge, hitless, procfs, report, world};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadgen", about = "Simulated Envoy proxies over ADS: change → ACK latency, CPU and memory")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the benchmark's world (S services and a Gateway, as Istio YAML) into a directory.
    World {
        #[arg(long)]
        services: usize,
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Run against a server that is already running; changes are made by rewriting files in --config-dir (the
    /// server must watch it) or by --change-cmd.
    Converge {
        /// The server's ADS address.
        #[arg(long, value_name = "HOST:PORT")]
        target: SocketAddr,
        /// The world's directory, as `loadgen world` wrote it: a change shifts one service's weights.
        #[arg(long, value_name = "DIR", required_unless_present = "change_cmd", requires = "services")]
        config_dir: Option<PathBuf>,
        /// Services in --config-dir.
        #[arg(long)]
        services: Option<usize>,
        /// A shell command that makes change number $CHANGE; the change counts as made when it exits.
        #[arg(long, value_name = "CMD", conflicts_with = "config_dir")]
        change_cmd: Option<String>,
        /// The server's process id, for its CPU time and memory.
        #[arg(long, value_name = "PID")]
        server_pid: Option<u32>,
        /// pilotfish's admin address, for its translation metrics.
        #[arg(long, value_name = "HOST:PORT")]
        admin: Option<SocketAddr>,
        /// The server's name in the results.
        #[arg(long, default_value = "pilotfish")]
        server_name: String,
        /// The server's debounce (the quiet period it waits after a change), for the results.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        debounce: Duration,
        #[command(flatten)]
        load: Load,
    },
    /// Write the world to a temporary directory, start `pilotfish serve` on it (a child process on loopback), run
    /// against it, stop it.
    #[command(name = "self")]
    SelfHosted {
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// The pilotfish binary (default: beside loadgen).
        #[arg(long, value_name = "PATH")]
        pilotfish: Option<PathBuf>,
        /// pilotfish's --debounce-quiet (its default).
        #[arg(long, default_value = "100ms", value_parser = parse_duration)]
        debounce_quiet: Duration,
        /// pilotfish's --debounce-max (its default).
        #[arg(long, default_value = "1s", value_parser = parse_duration)]
        debounce_max: Duration,
        /// Keep the world and pilotfish's log here instead of a temporary directory.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        #[command(flatten)]
        load: Load,
    },
    /// The same as `self` against go-control-plane (tests/peer/go-control-plane), serving `pilotfish translate` of
    /// the same world per proxy class; a change is translated first (not timed), then moved into place.
    Peer {
        /// The peer's binary (`tests/peer/go-control-plane/build` builds it and prints its path).
        #[arg(long, value_name = "PATH")]
        peer: PathBuf,
        #[arg(long, default_value_t = 1000)]
        services: usize,
        /// The pilotfish binary, for `translate` (default: beside loadgen).
        #[arg(long, value_name = "PATH")]
        pilotfish: Option<PathBuf>,
        /// The peer's --debounce (its default, as pilotfish's).
        #[arg(long, default_value = "100ms", value_parser = parse_duration)]
        debounce: Duration,
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        #[command(flatten)]
        load: Load,
    },
    /// Real Envoys (gateways) fed by an in-process pilotfish: change → every Envoy serving it, next to Envoy's own
    /// apply time (response sent → ACK) for the same change.
    EnvoyConverge {
        #[arg(long, default_value_t = 1)]
        envoys: usize,
        #[arg(long, value_enum, default_value = "sotw")]
        protocol: Mix,
        /// Kinds of change, one after the other.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "route,cluster")]
        kinds: Vec<converge::ChangeKind>,
        /// Changes of each kind.
        #[arg(long, default_value_t = 50)]
        changes: usize,
        /// Services (a cluster each) in the world besides the one the routes use, for a larger CDS.
        #[arg(long, default_value_t = 0)]
        services: usize,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Constant keep-alive load through a real Envoy while weight shifts, new routes, new subsets and endpoint churn
    /// are applied: every non-2xx reply and connection error, by kind of change.
    Hitless {
        #[arg(long, value_enum, default_value = "sotw")]
        protocol: Mix,
        /// Changes of each kind.
        #[arg(long, default_value_t = 100)]
        changes: usize,
        /// Keep-alive connections of the load client.
        #[arg(long, default_value_t = 8)]
        connections: usize,
        /// Envoy's worker threads.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// How long a removed endpoint's backend keeps serving (as a draining pod) before it stops.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        drain: Duration,
        /// How long each change stays under load after Envoy ACKed it, before the next one.
        #[arg(long, default_value = "20ms", value_parser = parse_duration)]
        dwell: Duration,
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
    },
    /// Render `envoy-converge` and `hitless` results (JSON) as markdown; write them between their markers of --out.
    EnvoyReport {
        /// The file to splice the tables into (created if missing); `-` prints them.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        #[arg(long, default_value = "scripts/bench")]
        command: String,
        /// A paragraph to add under the tables (repeatable).
        #[arg(long)]
        note: Vec<String>,
        results: Vec<PathBuf>,
    },
    /// Render results (JSON from --json) as a markdown table; write it between the markers of --out.
    Report {
        /// The file to splice the table into (created if missing); `-` prints it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The command that reproduces the results, for the text.
        #[arg(long, default_value = "scripts/bench")]
        command: String,
        /// A paragraph to add under the table (repeatable).
        #[arg(long)]
        note: Vec<String>,
        results: Vec<PathBuf>,
    },
}

/// The simulated fleet.
#[derive(clap::Args)]
struct Load {
    #[arg(long, default_value_t = 100)]
    proxies: usize,
    /// Proxy classes: 1 gateway and K−1 sidecar classes (different labels and namespaces); proxy i is of class i mod K.
    #[arg(long, default_value_t = 4)]
    classes: usize,
    #[arg(long, value_enum, default_value = "sotw")]
    protocol: Mix,
    /// HTTP/2 connections shared by the streams (0: one per proxy, as Envoys have).
    #[arg(long, default_value_t = 0)]
    connections: usize,
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// A change is over when no response came for this long after every proxy had one.
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    settle: Duration,
    /// Give up on the initial sync or a change after this long.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    timeout: Duration,
    /// Stop when the machine has less memory available than this many MiB (0: never).
    #[arg(long, default_value_t = 4096)]
    min_available_mib: u64,
    /// Write the results here as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    translator::duration::parse_duration(text)
}

impl Load {
    fn settings(&self, server: String, target: SocketAddr, change: Change) -> anyhow::Result<Settings> {
        let connections = if self.connections == 0 { self.proxies } else { self.connections };
        if let Some(limit) = bench::open_file_limit() {
            anyhow::ensure!(
                (connections as u64) + 64 <= limit,
                "{connections} connections need more open files than the limit of {limit}: raise it (ulimit -n)"
            );
        }
        Ok(Settings {
            server,
            target,
            proxies: self.proxies,
            classes: self.classes,
            mix: self.protocol,
            connections,
            changes: self.changes,
            change,
            settle: self.settle,
            timeout: self.timeout,
            server_pid: None,
            admin: None,
            debounce: Duration::ZERO,
            min_available: self.min_available_mib << 20,
        })
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::World { services, dir } => {
            world::write(&dir, services).with_context(|| format!("failed to write {}", dir.display()))
        }
        Command::Converge {
            target,
            config_dir,
            services,
            change_cmd,
            server_pid,
            admin,
            server_name,
            debounce,
            load,
        } => {
            let change = match (config_dir, change_cmd) {
                (Some(dir), _) => Change::Directory { dir, services: services.unwrap_or(1) },
                (None, Some(command)) => Change::Command(command),
                (None, None) => anyhow::bail!("give --config-dir or --change-cmd"),
            };
            let mut settings = load.settings(server_name, target, change)?;
            settings.server_pid = server_pid;
            settings.admin = admin;
            settings.debounce = debounce;
            finish(&load, driver::run(&settings).await?)
        }
        Command::SelfHosted { services, pilotfish, debounce_quiet, debounce_max, work_dir, load } => {
            let pilotfish = pilotfish_or_sibling(pilotfish)?;
            let placeholder = SocketAddr::from(([127, 0, 0, 1], 0));
            let settings = load.settings("pilotfish".to_owned(), placeholder, Change::Command(String::new()))?;
            let own = SelfSettings { pilotfish, services, debounce_quiet, debounce_max, work_dir };
            finish(&load, selfhost::run(&own, settings).await?)
        }
        Command::Peer { peer, services, pilotfish, debounce, work_dir, load } => {
            let pilotfish = pilotfish_or_sibling(pilotfish)?;
            let placeholder = SocketAddr::from(([127, 0, 0, 1], 0));
            let settings = load.settings(report::PEER.to_owned(), placeholder, Change::Command(String::new()))?;
            let own = PeerSettings { peer, pilotfish, services, debounce, work_dir };
            finish(&load, bench::peer::run(&own, settings).await?)
        }
        Command::EnvoyConverge { envoys, protocol, kinds, changes, services, timeout, json } => {
            let settings = converge::Settings { envoys, protocol, kinds, changes, services, timeout };
            let results = converge::run(&settings).await?;
            let missed: usize = results.iter().map(|r| r.missed).sum();
            write_json(json.as_deref(), &Run::Converge { results })?;
            anyhow::ensure!(missed == 0, "{missed} Envoy-changes were not served within {timeout:?}");
            Ok(())
        }
        Command::Hitless { protocol, changes, connections, concurrency, drain, dwell, timeout, json } => {
            anyhow::ensure!(connections > 0 && concurrency > 0, "--connections and --concurrency must be at least 1");
            let settings = hitless::Settings { protocol, changes, connections, concurrency, drain, dwell, timeout };
            let results = hitless::run(&settings).await?;
            eprintln!(
                "loadgen: hitless {}: {} requests in {:.1} s ({:.0}/s), {} failed",
                protocol.as_str(),
                results.requests,
                results.seconds,
                results.requests as f64 / results.seconds,
                results.failed()
            );
            for phase in &results.phases {
                eprintln!(
                    "loadgen:   {}: {} changes, {} requests, {} non-2xx, {} connection errors",
                    phase.name, phase.changes, phase.requests, phase.non_2xx, phase.connection_errors
                );
            }
            for failure in &results.failures {
                eprintln!(
                    "loadgen:   failure at {:.3} s ({}) {}: {}",
                    failure.at, failure.phase, failure.path, failure.what
                );
            }
            let failed = results.failed();
            write_json(json.as_deref(), &Run::Hitless { results })?;
            // The results are written either way: the table shows the failures.
            anyhow::ensure!(failed == 0, "{failed} requests failed while changes were applied");
            Ok(())
        }
        Command::EnvoyReport { out, command, note, results } => {
            let mut runs = Vec::new();
            for path in &results {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
                runs.push(serde_json::from_str::<Run>(&text).with_context(|| format!("in {}", path.display()))?);
            }
            let text = envoy_report::render(&runs, &procfs::Machine::read(), &utc_now(), &command, &note);
            if out.as_os_str() == "-" {
                print!("{text}");
                return Ok(());
            }
            let document = std::fs::read_to_string(&out).unwrap_or_default();
            std::fs::write(&out, envoy_report::splice(&document, &text))
                .with_context(|| format!("failed to write {}", out.display()))
        }
        Command::Report { out, command, note, results } => {
            let mut runs = Vec::new();
            for path in &results {
                let text =
                    std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
                runs.push(serde_json::from_str::<Results>(&text).with_context(|| format!("in {}", path.display()))?);
            }
            let date = std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .unwrap_or_default();
            let table = report::render(&runs, &procfs::Machine::read(), &date, &command, &note);
            if out.as_os_str() == "-" {
                print!("{table}");
                return Ok(());
            }
            let document = std::fs::read_to_string(&out).unwrap_or_default();
            std::fs::write(&out, report::splice(&document, &table))
                .with_context(|| format!("failed to write {}", out.display()))
        }
    }
}

fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Writes `value` as JSON to `path`, or prints it.
fn write_json(path: Option<&std::path::Path>, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(value)?;
    match path {
        Some(path) => std::fs::write(path, json).with_context(|| format!("failed to write {}", path.display())),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

/// The pilotfish binary given, else the one beside loadgen (both are built into the same target directory).
fn pilotfish_or_sibling(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match given {
        Some(path) => Ok(path),
        None => Ok(std::env::current_exe()?.with_file_name("pilotfish")),
    }
}

/// Prints a one-line summary and writes the JSON.
fn finish(load: &Load, results: Results) -> anyhow::Result<()> {
    let rss =
        |m: Option<procfs::Memory>| m.map_or_else(|| "?".to_owned(), |m| format!("{:.1}", m.rss as f64 / 1048576.0));
    eprintln!(
        "loadgen: {} {} N={}: change→all ACKed p50 {:.1} ms p99 {:.1} ms max {:.1} ms; per proxy p99 {:.1} ms; \
         CPU/change {:.3} s; RSS {} → {} → {} MB; missed {}, wrong {}",
        results.server,
        results.protocol.as_str(),
        results.proxies,
        results.all_acked_ms.p50,
        results.all_acked_ms.p99,
        results.all_acked_ms.max,
        results.acked_ms.p99,
        results.server_cpu_per_change_seconds.unwrap_or(f64::NAN),
        rss(results.memory_idle),
        rss(results.memory_classes),
        rss(results.memory_loaded),
        results.missed,
        results.wrong_content,
    );
    let json = serde_json::to_string_pretty(&results)?;
    match &load.json {
        Some(path) => std::fs::write(path, json).with_context(|| format!("failed to write {}", path.display()))?,
        None => println!("{json}"),
    }
    anyhow::ensure!(
        results.missed == 0 && results.wrong_content == 0,
        "{} proxy-changes got no response and {} content checks failed",
        results.missed,
        results.wrong_content
    );
    Ok(())
}
