//! Change → real Envoys serving it: the time from applying a change to pilotfish until every Envoy answers by the
//! new configuration, next to Envoy's own apply time (response sent → ACK) for the same change.
//!
//! Two kinds of change: a route change (the main route's response header [`MARKER`] gets a new value: RDS only)
//! and a new cluster (a new ServiceEntry and a route `/c-<i>` to it: CDS, EDS, then RDS once the cluster is warm).
//! After applying a change, one task per Envoy GETs through it back to back on a keep-alive connection until the
//! reply shows the change.

use std::time::{Duration, Instant};

use anyhow::Context;
use e2e::Backend;
use serde::{Deserialize, Serialize};

use crate::driver::Mix;
use crate::real::{self, Client, Fleet, Scenario, Target};
use crate::stats::Summary;

/// What a change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    /// A new response header value on the main route (RDS).
    Route,
    /// A new ServiceEntry and a route to it (CDS, EDS, RDS).
    Cluster,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Route => "route change",
            ChangeKind::Cluster => "new cluster",
        }
    }
}

pub struct Settings {
    pub envoys: usize,
    pub protocol: Mix,
    pub kinds: Vec<ChangeKind>,
    pub changes: usize,
    /// Services (ServiceEntries, a cluster each) in the world before the changes start.
    pub services: usize,
    /// Give up on one change (or the start) after this long.
    pub timeout: Duration,
}

/// One kind of change over one fleet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub envoys: usize,
    pub protocol: Mix,
    pub kind: ChangeKind,
    pub changes: usize,
    /// Clusters each Envoy had before the changes.
    #[serde(default)]
    pub clusters: usize,
    /// Per change: apply → the last Envoy serving it.
    pub all_serving_ms: Summary,
    /// Per Envoy and change: apply → that Envoy serving it.
    pub serving_ms: Summary,
    /// Per Envoy and change: the first response of the change sent → the last ACK (what Envoy takes, as pilotfish
    /// sees it, including pilotfish's own pacing between types).
    pub apply_span_ms: Summary,
    /// Per Envoy and change: the sum over the change's responses of send → ACK.
    pub apply_sum_ms: Summary,
    /// Per change: apply → every Envoy ACKed (the control plane's view of convergence).
    pub all_acked_ms: Summary,
    /// Envoy-changes that were not served within the timeout.
    pub missed: usize,
    pub load_before: String,
    pub load_after: String,
}

pub async fn run(settings: &Settings) -> anyhow::Result<Vec<Results>> {
    let load_before = real::load_average();
    let stable = Backend::start("stable").await?;
    let fresh = Backend::start("fresh").await?;
    let mut scenario = Scenario::new(Fleet::gateway_ports(settings.envoys), vec![stable.port()], vec![stable.port()]);
    scenario.services = (0..settings.services).map(|i| (format!("base{i}.bench"), stable.port())).collect();
    let fleet = Fleet::start(&mut scenario, settings.protocol, &[], settings.timeout).await?;
    let clusters = fleet
        .control_plane
        .proxies()
        .iter()
        .flat_map(|p| p.sync.iter().filter(|s| s.kind == api_protos::ResourceType::Cluster))
        .map(|s| s.resource_count)
        .max()
        .unwrap_or(0);
    eprintln!(
        "loadgen: {} Envoy(s) ({}) serving, {clusters} clusters each; {} changes of each kind",
        settings.envoys,
        settings.protocol.as_str(),
        settings.changes
    );
    let mut all = Vec::new();
    for kind in &settings.kinds {
        let result = measure(&fleet, &mut scenario, *kind, settings, fresh.port()).await;
        // Backends record every request: forget them between kinds.
        stable.take_requests();
        fresh.take_requests();
        let mut result = result.with_context(|| format!("Envoy logs:\n{}", fleet.logs(20)))?;
        result.load_before.clone_from(&load_before);
        result.clusters = clusters;
        result.load_after = real::load_average();
        eprintln!(
            "loadgen: {} Envoy(s) {} {}: serving (all) p50 {:.2} ms p99 {:.2} ms max {:.2} ms; Envoy apply (span) \
             p50 {:.2} ms p99 {:.2} ms; missed {}",
            result.envoys,
            result.protocol.as_str(),
            kind.as_str(),
            result.all_serving_ms.p50,
            result.all_serving_ms.p99,
            result.all_serving_ms.max,
            result.apply_span_ms.p50,
            result.apply_span_ms.p99,
            result.missed
        );
        all.push(result);
    }
    fleet.control_plane.shutdown().await;
    Ok(all)
}

async fn measure(
    fleet: &Fleet,
    scenario: &mut Scenario,
    kind: ChangeKind,
    settings: &Settings,
    fresh_port: u16,
) -> anyhow::Result<Results> {
    let mut clients: Vec<Client> = fleet.listeners.iter().map(|l| Client::new(*l)).collect();
    let (mut all_serving, mut serving, mut spans, mut sums, mut all_acked) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut missed = 0;
    for _ in 0..settings.changes {
        let expected = match kind {
            ChangeKind::Route => {
                scenario.marker += 1;
                Expect::Marker(scenario.marker.to_string())
            }
            ChangeKind::Cluster => {
                let i = scenario.routes.len();
                let host = format!("c{i}.bench");
                scenario.services.push((host.clone(), fresh_port));
                // The trailing slash keeps `/c-1/` from matching `/c-10/` as a prefix.
                let path = format!("/c-{i}/");
                // First, so the main route's `/` prefix does not catch it.
                scenario.routes.insert(0, (path.clone(), Target::Host(host)));
                Expect::Body { path, body: "fresh" }
            }
        };
        let start = Instant::now();
        fleet.apply(scenario)?;
        let polls = clients.iter_mut().map(|client| poll(client, &expected, start, settings.timeout));
        let served: Vec<Option<Duration>> = futures::future::join_all(polls).await;
        fleet.control_plane.wait_synced(None, settings.timeout).await?;
        let acked = start.elapsed();
        missed += served.iter().filter(|s| s.is_none()).count();
        serving.extend(served.iter().flatten().map(|d| millis(*d)));
        if served.iter().all(Option::is_some) {
            all_serving.extend(served.iter().flatten().max().map(|d| millis(*d)));
        }
        // wait_synced returned when the registry said so; the last ACK came before.
        let mut last_ack = Duration::ZERO;
        for proxy in fleet.control_plane.proxies() {
            if let Some((span, sum)) = real::apply_time(&proxy, start) {
                spans.push(millis(span));
                sums.push(millis(sum));
            }
            for ack in proxy.timing.iter().filter_map(|t| t.last_ack).filter(|a| a.sent >= start) {
                last_ack = last_ack.max(ack.acked.saturating_duration_since(start));
            }
        }
        all_acked.push(millis(if last_ack.is_zero() { acked } else { last_ack }));
        // Let the Envoys settle (workers pick up the change, stats flush) before the next change.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Results {
        envoys: settings.envoys,
        protocol: settings.protocol,
        kind,
        changes: settings.changes,
        clusters: 0,
        all_serving_ms: Summary::of(all_serving),
        serving_ms: Summary::of(serving),
        apply_span_ms: Summary::of(spans),
        apply_sum_ms: Summary::of(sums),
        all_acked_ms: Summary::of(all_acked),
        missed,
        load_before: String::new(),
        load_after: String::new(),
    })
}

enum Expect {
    /// The main route's response carries this marker.
    Marker(String),
    /// `path` answers 200 with this body.
    Body { path: String, body: &'static str },
}

/// GETs until the reply shows the change; the time from `start`, or None after `timeout`.
async fn poll(client: &mut Client, expected: &Expect, start: Instant, timeout: Duration) -> Option<Duration> {
    let path = match expected {
        Expect::Marker(_) => "/",
        Expect::Body { path, .. } => path.as_str(),
    };
    while start.elapsed() < timeout {
        // Errors (a connection Envoy closed) are retried: only the change's arrival is measured.
        match client.get(path).await {
            Ok(reply) => {
                let seen = match expected {
                    Expect::Marker(marker) => reply.marker.as_deref() == Some(marker.as_str()),
                    Expect::Body { body, .. } => reply.status == 200 && reply.body == *body,
                };
                if seen {
                    return Some(start.elapsed());
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
    None
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
