//! Hitless changes: constant load through a real Envoy (keep-alive connections, requests back to back) while
//! changes of four kinds are applied one after another, counting every reply that is not 2xx and every connection
//! error, by the kind of change under way.
//!
//! - **weight shift**: the main route's v1/v2 split moves (RDS);
//! - **new route**: a route `/r-<i>/` to subset v1 is added; once Envoy serves it, the load includes it (the newest
//!   few such routes and the main route are under load) (RDS);
//! - **new subset**: a DestinationRule subset `s<i>` is added and the main route moved onto it, the subset before
//!   the previous one removed (CDS, EDS, RDS: the route must not reach Envoy before its cluster is warm, and the old
//!   cluster must not go before the route has left it);
//! - **endpoint churn**: subset v1's endpoints roll: each change adds a freshly started backend and removes the
//!   oldest one (EDS). A removed backend keeps serving for [`Settings::drain`], as a terminating pod does while it
//!   drains, and is stopped then.
//!
//! Between changes the driver waits until Envoy has ACKed the change and then [`Settings::dwell`], so changes never
//! pile up and each one carries traffic before the next.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use e2e::Backend;
use serde::{Deserialize, Serialize};

use crate::driver::Mix;
use crate::real::{self, Client, Fleet, Main, Scenario, Target};

/// The phases of a run, in order; requests count against the phase under way when they were sent.
pub const PHASES: [&str; 6] =
    ["steady (before)", "weight shift", "new route", "new subset", "endpoint churn", "steady (after)"];

/// Failures kept with their details.
const KEPT_FAILURES: usize = 10;
/// Added routes under load at once (the newest ones): the main route and these.
const LOADED_ROUTES: usize = 8;
/// Load before the first change and after the last, to tell failures of changes from failures of the setup.
const STEADY: Duration = Duration::from_secs(1);

pub struct Settings {
    pub protocol: Mix,
    pub changes: usize,
    /// Keep-alive connections of the load client.
    pub connections: usize,
    /// Envoy's worker threads.
    pub concurrency: usize,
    /// How long a removed endpoint's backend keeps serving before it stops.
    pub drain: Duration,
    /// How long each change stays under load after Envoy ACKed it, before the next change.
    pub dwell: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub changes: usize,
    pub seconds: f64,
    pub requests: u64,
    pub non_2xx: u64,
    pub connection_errors: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    pub phase: String,
    /// Seconds since the load started.
    pub at: f64,
    pub path: String,
    /// `HTTP 503: no healthy upstream`, or the connection error.
    pub what: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub protocol: Mix,
    pub connections: usize,
    pub envoy_concurrency: usize,
    pub drain_seconds: f64,
    #[serde(default)]
    pub dwell_seconds: f64,
    pub phases: Vec<Phase>,
    pub requests: u64,
    pub seconds: f64,
    pub failures: Vec<Failure>,
    /// Responses pilotfish sent the Envoy over the whole run, by type (CDS, EDS, LDS, RDS).
    #[serde(default)]
    pub pushes: Vec<(String, u64)>,
    pub load_before: String,
    pub load_after: String,
}

impl Results {
    pub fn failed(&self) -> u64 {
        self.phases.iter().map(|p| p.non_2xx + p.connection_errors).sum()
    }
}

/// What the load tasks share with the driver.
struct Load {
    started: Instant,
    phase: AtomicUsize,
    stop: AtomicBool,
    paths: RwLock<Vec<String>>,
    requests: [AtomicU64; PHASES.len()],
    non_2xx: [AtomicU64; PHASES.len()],
    errors: [AtomicU64; PHASES.len()],
    failures: Mutex<Vec<Failure>>,
}

impl Load {
    fn fail(&self, phase: usize, path: &str, what: String) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() < KEPT_FAILURES {
            failures.push(Failure {
                phase: PHASES[phase].to_owned(),
                at: self.started.elapsed().as_secs_f64(),
                path: path.to_owned(),
                what,
            });
        }
    }
}

async fn load_task(load: Arc<Load>, listener: SocketAddr, offset: usize) {
    let mut client = Client::new(listener);
    let mut turn = offset;
    while !load.stop.load(Ordering::Relaxed) {
        let path = {
            let paths = load.paths.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            paths[turn % paths.len()].clone()
        };
        turn += 1;
        let phase = load.phase.load(Ordering::Relaxed);
        load.requests[phase].fetch_add(1, Ordering::Relaxed);
        match client.get(&path).await {
            Ok(reply) if (200..300).contains(&reply.status) => {}
            Ok(reply) => {
                load.non_2xx[phase].fetch_add(1, Ordering::Relaxed);
                load.fail(phase, &path, format!("HTTP {}: {}", reply.status, reply.body.trim()));
            }
            Err(err) => {
                load.errors[phase].fetch_add(1, Ordering::Relaxed);
                load.fail(phase, &path, format!("{err:#}"));
                // Do not spin if Envoy is gone.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

pub async fn run(settings: &Settings) -> anyhow::Result<Results> {
    let load_before = real::load_average();
    let v2 = Backend::start("v2").await?;
    let mut serial = 0;
    let mut v1: VecDeque<Backend> = VecDeque::new();
    for _ in 0..2 {
        serial += 1;
        v1.push_back(Backend::start(&format!("v1-{serial}")).await?);
    }
    let ports = |v1: &VecDeque<Backend>| v1.iter().map(Backend::port).collect::<Vec<_>>();
    let mut scenario = Scenario::new(Fleet::gateway_ports(1), ports(&v1), vec![v2.port()]);
    let concurrency = settings.concurrency.to_string();
    let fleet =
        Fleet::start(&mut scenario, settings.protocol, &["--concurrency", &concurrency], settings.timeout).await?;
    let node = real::node_id(0);
    let load = Arc::new(Load {
        started: Instant::now(),
        phase: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        paths: RwLock::new(vec!["/".to_owned()]),
        requests: Default::default(),
        non_2xx: Default::default(),
        errors: Default::default(),
        failures: Mutex::new(Vec::new()),
    });
    let tasks: Vec<_> =
        (0..settings.connections).map(|i| tokio::spawn(load_task(Arc::clone(&load), fleet.listeners[0], i))).collect();
    let mut phases: Vec<Phase> =
        PHASES.iter().map(|name| Phase { name: (*name).to_owned(), ..Phase::default() }).collect();
    let mut draining: Vec<tokio::task::JoinHandle<()>> = Vec::new();

    let mut phase_started = Instant::now();
    tokio::time::sleep(STEADY).await;
    let outcome: anyhow::Result<()> = async {
        for phase in 1..=4 {
            phases[phase - 1].seconds = phase_started.elapsed().as_secs_f64();
            load.phase.store(phase, Ordering::Relaxed);
            phase_started = Instant::now();
            for i in 0..settings.changes {
                let mut probe: Option<(String, &str)> = None;
                match phase {
                    1 => scenario.main = Main::Split(10 + (i as u32 * 7) % 81),
                    2 => {
                        // The trailing slash keeps `/r-1/` from matching `/r-10/` as a prefix.
                        let path = format!("/r-{i}/");
                        // To v1, whose endpoints churn later on: that churn happens under load.
                        scenario.routes.insert(0, (path.clone(), Target::Subset("v1".to_owned())));
                        probe = Some((path, "v1-"));
                    }
                    3 => {
                        let name = format!("s{i}");
                        scenario.subsets.push((name.clone(), if i % 2 == 0 { "v1" } else { "v2" }));
                        scenario.main = Main::Subset(name);
                        // Keep the new subset and the one before it (the route may still be on it in Envoy).
                        if scenario.subsets.len() > 2 {
                            scenario.subsets.remove(0);
                        }
                    }
                    _ => {
                        serial += 1;
                        v1.push_back(Backend::start(&format!("v1-{serial}")).await?);
                        let removed = v1.pop_front().context("the v1 endpoints are never empty")?;
                        scenario.v1 = ports(&v1);
                        let drain = settings.drain;
                        draining.push(tokio::spawn(async move {
                            tokio::time::sleep(drain).await;
                            drop(removed);
                        }));
                    }
                }
                fleet.apply(&scenario)?;
                fleet.control_plane.wait_synced(Some(&node), settings.timeout).await?;
                if let Some((path, body)) = probe {
                    let mut client = Client::new(fleet.listeners[0]);
                    let deadline = Instant::now() + settings.timeout;
                    loop {
                        if let Ok(reply) = client.get(&path).await
                            && reply.status == 200
                            && reply.body.starts_with(body)
                        {
                            break;
                        }
                        anyhow::ensure!(Instant::now() < deadline, "Envoy does not serve the new route {path}");
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    let mut paths = load.paths.write().unwrap_or_else(std::sync::PoisonError::into_inner);
                    paths.push(path);
                    if paths.len() > LOADED_ROUTES + 1 {
                        paths.remove(1);
                    }
                }
                tokio::time::sleep(settings.dwell).await;
                phases[phase].changes += 1;
                // Backends record every request they get: forget them as we go.
                v2.take_requests();
                v1.iter().for_each(|b| drop(b.take_requests()));
            }
        }
        Ok(())
    }
    .await;
    let last = if outcome.is_ok() { 4 } else { load.phase.load(Ordering::Relaxed) };
    phases[last].seconds = phase_started.elapsed().as_secs_f64();
    load.phase.store(PHASES.len() - 1, Ordering::Relaxed);
    let tail = Instant::now();
    tokio::time::sleep(STEADY).await;
    load.stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    phases[PHASES.len() - 1].seconds = tail.elapsed().as_secs_f64();
    let seconds = load.started.elapsed().as_secs_f64();
    for (i, phase) in phases.iter_mut().enumerate() {
        phase.requests = load.requests[i].load(Ordering::Relaxed);
        phase.non_2xx = load.non_2xx[i].load(Ordering::Relaxed);
        phase.connection_errors = load.errors[i].load(Ordering::Relaxed);
    }
    for task in draining {
        task.abort();
    }
    if let Err(err) = outcome {
        return Err(err.context(format!("Envoy log:\n{}", fleet.logs(30))));
    }
    let pushes = fleet
        .control_plane
        .proxy(&node)
        .map(|proxy| proxy.sync.iter().map(|s| (s.kind.short_name().to_owned(), s.responses_sent)).collect())
        .unwrap_or_default();
    fleet.control_plane.shutdown().await;
    let failures = std::mem::take(&mut *load.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    Ok(Results {
        protocol: settings.protocol,
        connections: settings.connections,
        envoy_concurrency: settings.concurrency,
        drain_seconds: settings.drain.as_secs_f64(),
        dwell_seconds: settings.dwell.as_secs_f64(),
        requests: phases.iter().map(|p| p.requests).sum(),
        phases,
        seconds,
        failures,
        pushes,
        load_before,
        load_after: real::load_average(),
    })
}
