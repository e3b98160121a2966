//! The convergence benchmark: connect N simulated proxies to a control plane, make C changes one at a time, and
//! measure change → every proxy ACKed, with the control plane's CPU time and memory around it.
//!
//! ```text
//!   RSS at 0 proxies
//!   connect one proxy per class, wait until each is ready, quiet      → RSS with every class built
//!   connect the rest, wait until all are ready, quiet                  → initial sync time, RSS and CPU at N
//!   C times: apply a change (t0 = when the write returns);
//!            collect every proxy's responses until all N got one and the stream is quiet
//!            → per proxy: t0 → response received → ACK sent; per change: t0 → last ACK; CPU used
//! ```
//!
//! A change counts as converged at a proxy when the proxy has received and ACKed a response sent after it; the
//! window stays open until no response came for `settle`, so a change that takes several responses is measured to
//! the last one. Where the change is known (a weight in the benchmark's world), the first proxy of each class also
//! checks that the routes it now holds carry the new weight.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tonic::transport::{Channel, Endpoint};

use crate::procfs::{self, Memory};
use crate::proxy::{Class, Event, Protocol, Proxy, RouteStore, Shared};
use crate::stats::Summary;
use crate::world;

/// How long the server is left alone after it is ready, then watched doing nothing, before any proxy connects.
const IDLE_SETTLE: Duration = Duration::from_secs(3);
const IDLE_WINDOW: Duration = Duration::from_secs(3);

/// Envoy's default HTTP/2 windows for its xDS connection (256 MiB): a large response never waits for credit.
const WINDOW: u32 = 256 << 20;

/// How the proxies split between SotW and Delta.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    Sotw,
    Delta,
    /// Even proxies SotW, odd ones Delta.
    Mixed,
}

impl Mix {
    fn protocol(self, index: usize) -> Protocol {
        match self {
            Mix::Sotw => Protocol::Sotw,
            Mix::Delta => Protocol::Delta,
            Mix::Mixed if index.is_multiple_of(2) => Protocol::Sotw,
            Mix::Mixed => Protocol::Delta,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mix::Sotw => "sotw",
            Mix::Delta => "delta",
            Mix::Mixed => "mixed",
        }
    }
}

/// How a change is made.
#[derive(Clone)]
pub enum Change {
    /// Shift the weights of one service of the benchmark's world in `dir` (service `c mod services` at change c).
    Directory { dir: PathBuf, services: usize },
    /// Run this shell command (`$CHANGE` holds the change's number); the change is made when it exits.
    Command(String),
    /// Call this with the change's number (e.g. to apply to an embedded control plane, or to stage files and move
    /// them into place); it may block.
    Function { services: usize, apply: ChangeFn },
}

/// A change made by a function: change number → what it did.
pub type ChangeFn = Arc<dyn Fn(usize) -> anyhow::Result<Changed> + Send + Sync>;

/// What a [`ChangeFn`] did.
#[derive(Clone, Debug, Default)]
pub struct Changed {
    /// When the change was made, if the function knows (e.g. preparing it took a while); else when it was called.
    pub at: Option<Instant>,
    /// The host whose v1 weight changed, and the new weight, for the checks.
    pub expect: Option<(String, u32)>,
}

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Directory { dir, services } => write!(f, "Directory({}, {services})", dir.display()),
            Change::Command(command) => write!(f, "Command({command:?})"),
            Change::Function { services, .. } => write!(f, "Function({services})"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    /// The server's name, for the results.
    pub server: String,
    pub target: SocketAddr,
    pub proxies: usize,
    pub classes: usize,
    pub mix: Mix,
    /// HTTP/2 connections the streams share (proxy i uses connection i mod this); at most one per proxy.
    pub connections: usize,
    pub changes: usize,
    pub change: Change,
    /// A change is over once no response came for this long after every proxy had one.
    pub settle: Duration,
    /// Give up on a change (or on the initial sync) after this long.
    pub timeout: Duration,
    /// The server process, for CPU and memory.
    pub server_pid: Option<u32>,
    /// pilotfish's admin address, for its translation metrics.
    pub admin: Option<SocketAddr>,
    /// How long the server waits for quiet after a change before it acts on it (its debounce): reported, and
    /// subtracted in the latency "less debounce".
    pub debounce: Duration,
    /// Stop the run when the machine has less memory available than this (bytes; 0: never).
    pub min_available: u64,
}

/// Everything one run measured.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Results {
    pub server: String,
    pub protocol: Mix,
    pub proxies: usize,
    pub classes: usize,
    pub connections: usize,
    pub services: Option<usize>,
    pub changes: usize,
    /// The server's debounce (quiet period), in ms.
    pub debounce_ms: f64,
    /// From starting the proxies beyond the first of each class to the last of them being ready.
    pub initial_sync_seconds: f64,
    /// Per change: from the change to the last proxy's ACK.
    pub all_acked_ms: Summary,
    /// Per proxy and change: from the change to the proxy receiving the (first) response.
    pub received_ms: Summary,
    /// Per proxy and change: from the change to the proxy's (last) ACK.
    pub acked_ms: Summary,
    /// Proxy-changes without any response before the timeout.
    pub missed: usize,
    /// Checks of the new weight at the first proxy of each class that failed.
    pub wrong_content: usize,
    pub responses_per_change: f64,
    pub response_bytes_per_change: f64,
    pub server_cpu_connect_seconds: Option<f64>,
    pub server_cpu_per_change_seconds: Option<f64>,
    /// The server's CPU use with nothing to do (no proxy, no change), in CPU seconds per second.
    pub server_idle_cpu: Option<f64>,
    /// Wall time of the change windows (change → quiet), summed.
    pub change_window_seconds: f64,
    pub memory_idle: Option<Memory>,
    pub memory_classes: Option<Memory>,
    pub memory_loaded: Option<Memory>,
    /// (RSS at N − RSS at 0) / N.
    pub bytes_per_proxy: Option<f64>,
    /// (RSS at N − RSS with one proxy per class) / (N − classes): the cost of one more proxy of a known class.
    pub marginal_bytes_per_proxy: Option<f64>,
    /// pilotfish's own translation metrics over the changes: classes translated per change, mean ms per class.
    pub translations_per_change: Option<f64>,
    pub translation_mean_ms: Option<f64>,
    pub loadgen_cpu_seconds: f64,
    /// loadgen's own memory with every proxy connected.
    pub loadgen_memory: Option<Memory>,
}

/// Runs the benchmark against the server at `settings.target`.
pub async fn run(settings: &Settings) -> anyhow::Result<Results> {
    anyhow::ensure!(settings.proxies > 0 && settings.classes > 0, "need at least one proxy and one class");
    let loadgen_cpu_before = procfs::cpu_seconds(std::process::id()).unwrap_or(0.0);
    let server_cpu = || settings.server_pid.and_then(|pid| procfs::cpu_seconds(pid).ok());
    let server_memory = || settings.server_pid.and_then(|pid| procfs::memory(pid).ok());
    let classes: Vec<Arc<Class>> = (0..settings.classes).map(|i| Arc::new(Class::bench(i))).collect();
    let connections = settings.connections.clamp(1, settings.proxies);
    let mut fleet = Fleet::new(settings, connections)?;

    // What the server burns on its own, to tell it apart from what the proxies and changes cost. Not right after
    // start: a server may do its periodic work (pilotfish polls its directory every 2 s) only later.
    if settings.server_pid.is_some() {
        tokio::time::sleep(IDLE_SETTLE).await;
    }
    let memory_idle = server_memory();
    let idle_cpu_before = server_cpu();
    let idle_started = Instant::now();
    if settings.server_pid.is_some() {
        tokio::time::sleep(IDLE_WINDOW).await;
    }
    let server_idle_cpu = idle_cpu_before
        .zip(server_cpu())
        .map(|(before, after)| (after - before) / idle_started.elapsed().as_secs_f64());
    let cpu_start = server_cpu();

    // One proxy per class first: they make the server build every class's snapshot, and they check content.
    let first = settings.classes.min(settings.proxies);
    let mut checkers = Vec::new();
    for index in 0..first {
        let routes = Arc::new(RouteStore::default());
        checkers.push(Arc::clone(&routes));
        fleet.spawn(index, Arc::clone(&classes[index % classes.len()]), Some(routes)).await?;
    }
    fleet.wait_ready(first, settings.timeout).await.context("the first proxy of each class never became ready")?;
    fleet.quiet(settings.settle).await?;
    let memory_classes = server_memory();

    let started = Instant::now();
    for index in first..settings.proxies {
        fleet.spawn(index, Arc::clone(&classes[index % classes.len()]), None).await?;
    }
    fleet.wait_ready(settings.proxies, settings.timeout).await.context("not every proxy became ready")?;
    let initial_sync = if settings.proxies > first { started.elapsed() } else { Duration::ZERO };
    fleet.quiet(settings.settle).await?;
    let memory_loaded = server_memory();
    let loadgen_memory = procfs::memory(std::process::id()).ok();
    let cpu_connected = server_cpu();
    eprintln!(
        "loadgen: {} proxies ready in {:.2}s (after the first of each class); making {} changes",
        settings.proxies,
        initial_sync.as_secs_f64(),
        settings.changes
    );

    let metrics_before = match settings.admin {
        Some(admin) => crate::http::metrics(admin).await.ok(),
        None => None,
    };
    let mut weights: HashMap<usize, u32> = HashMap::new();
    let mut outcomes = Vec::new();
    let mut wrong_content = 0;
    let mut cpu_changes = 0.0;
    let mut change_window = Duration::ZERO;
    for number in 0..settings.changes {
        let cpu_before = server_cpu();
        let (changed_at, expect) = apply(&settings.change, number, &mut weights).await?;
        let outcome = fleet.collect_change(changed_at, settings.settle, settings.timeout).await?;
        change_window += changed_at.elapsed();
        if let (Some(before), Some(after)) = (cpu_before, server_cpu()) {
            cpu_changes += after - before;
        }
        if let Some((host, weight)) = &expect {
            for (class, checker) in checkers.iter().enumerate() {
                let seen = checker.v1_weights(host);
                if seen.is_empty() || seen.iter().any(|w| w != weight) {
                    wrong_content += 1;
                    eprintln!(
                        "loadgen: change {number}: class {class} has v1 weights {seen:?} for {host}, expected {weight}"
                    );
                }
            }
        }
        if outcome.missed > 0 {
            eprintln!(
                "loadgen: change {number}: {} proxies got no response within {:?}",
                outcome.missed, settings.timeout
            );
        }
        outcomes.push(outcome);
    }
    let metrics_after = match settings.admin {
        Some(admin) => crate::http::metrics(admin).await.ok(),
        None => None,
    };
    fleet.shutdown();

    let changes = settings.changes.max(1) as f64;
    let all_acked: Vec<f64> = outcomes.iter().filter_map(|o| o.all_acked).map(ms).collect();
    let received: Vec<f64> = outcomes.iter().flat_map(|o| o.received.iter().copied().map(ms)).collect();
    let acked: Vec<f64> = outcomes.iter().flat_map(|o| o.acked.iter().copied().map(ms)).collect();
    let rss = |m: &Option<Memory>| m.map(|m| m.rss as f64);
    let bytes_per_proxy =
        rss(&memory_loaded).zip(rss(&memory_idle)).map(|(loaded, idle)| (loaded - idle) / settings.proxies as f64);
    let marginal = (settings.proxies > first)
        .then(|| rss(&memory_loaded).zip(rss(&memory_classes)))
        .flatten()
        .map(|(loaded, classes)| (loaded - classes) / (settings.proxies - first) as f64);
    let translation = metrics_before.zip(metrics_after).map(|(before, after)| {
        let count = after.translation_count - before.translation_count;
        let seconds = after.translation_sum - before.translation_sum;
        (count / changes, if count > 0.0 { seconds * 1000.0 / count } else { 0.0 })
    });
    Ok(Results {
        server: settings.server.clone(),
        protocol: settings.mix,
        proxies: settings.proxies,
        classes: settings.classes,
        connections,
        services: match &settings.change {
            Change::Directory { services, .. } | Change::Function { services, .. } => Some(*services),
            Change::Command(_) => None,
        },
        changes: settings.changes,
        debounce_ms: ms(settings.debounce),
        initial_sync_seconds: initial_sync.as_secs_f64(),
        all_acked_ms: Summary::of(all_acked),
        received_ms: Summary::of(received),
        acked_ms: Summary::of(acked),
        missed: outcomes.iter().map(|o| o.missed).sum(),
        wrong_content,
        responses_per_change: outcomes.iter().map(|o| o.responses).sum::<u64>() as f64 / changes,
        response_bytes_per_change: outcomes.iter().map(|o| o.bytes).sum::<u64>() as f64 / changes,
        server_cpu_connect_seconds: cpu_start.zip(cpu_connected).map(|(a, b)| b - a),
        server_cpu_per_change_seconds: settings.server_pid.map(|_| cpu_changes / changes),
        server_idle_cpu,
        change_window_seconds: change_window.as_secs_f64(),
        memory_idle,
        memory_classes,
        memory_loaded,
        bytes_per_proxy,
        marginal_bytes_per_proxy: marginal,
        translations_per_change: translation.map(|t| t.0),
        translation_mean_ms: translation.map(|t| t.1),
        loadgen_cpu_seconds: procfs::cpu_seconds(std::process::id()).unwrap_or(0.0) - loadgen_cpu_before,
        loadgen_memory,
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Makes change `number`; returns when it was made and, if known, the host and v1 weight the proxies should get.
async fn apply(
    change: &Change,
    number: usize,
    weights: &mut HashMap<usize, u32>,
) -> anyhow::Result<(Instant, Option<(String, u32)>)> {
    match change {
        Change::Directory { dir, services } => {
            let service = number % services.max(&1);
            // From the file: a directory used before may not be at the initial weights.
            let current = world::current_weight(dir, service).or(weights.get(&service).copied());
            let weight = world::next_weight(current.unwrap_or(world::INITIAL_WEIGHT));
            world::set_weight(dir, service, weight)
                .with_context(|| format!("failed to rewrite {}", world::service_file(dir, service).display()))?;
            let changed_at = Instant::now();
            weights.insert(service, weight);
            Ok((changed_at, Some((world::host(service), weight))))
        }
        Change::Function { apply, .. } => {
            // An embedded server may push before the call returns: unless told otherwise, the change starts with
            // the call.
            let called_at = Instant::now();
            let changed = tokio::task::block_in_place(|| apply(number))?;
            Ok((changed.at.unwrap_or(called_at), changed.expect))
        }
        Change::Command(command) => {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .env("CHANGE", number.to_string())
                .status()
                .await
                .with_context(|| format!("failed to run {command:?}"))?;
            let changed_at = Instant::now();
            anyhow::ensure!(status.success(), "the change command {command:?} failed: {status}");
            Ok((changed_at, None))
        }
    }
}

/// What one change did at the proxies.
struct ChangeOutcome {
    /// Change → last proxy's last ACK, if every proxy got a response.
    all_acked: Option<Duration>,
    received: Vec<Duration>,
    acked: Vec<Duration>,
    missed: usize,
    responses: u64,
    bytes: u64,
}

/// Runs the connections' tasks (HTTP/2 framing, PING replies, tonic's request buffer) on their own runtime, so a
/// connection answers its server's keepalive PINGs even while thousands of proxy tasks are busy decoding: servers
/// close a connection whose PING goes unanswered for a few seconds (go-control-plane's example server after 5 s).
#[derive(Clone)]
struct IoExecutor(tokio::runtime::Handle);

impl<F: std::future::Future<Output = ()> + Send + 'static> hyper::rt::Executor<F> for IoExecutor {
    fn execute(&self, future: F) {
        self.0.spawn(future);
    }
}

/// The simulated proxies, their connections and what they report.
struct Fleet {
    target: String,
    mix: Mix,
    channels: Vec<Option<Channel>>,
    io: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    tasks: JoinSet<()>,
    events: mpsc::UnboundedSender<Event>,
    reports: mpsc::UnboundedReceiver<Event>,
    ready: Vec<bool>,
    ready_count: usize,
    min_available: u64,
    server_pid: Option<u32>,
    memory_checked: Instant,
}

impl Fleet {
    fn new(settings: &Settings, connections: usize) -> anyhow::Result<Fleet> {
        let (events, reports) = mpsc::unbounded_channel();
        let io = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loadgen-io")
            .enable_all()
            .build()?;
        Ok(Fleet {
            target: format!("http://{}", settings.target),
            mix: settings.mix,
            channels: vec![None; connections],
            io: Some(io),
            shared: Arc::new(Shared::default()),
            tasks: JoinSet::new(),
            events,
            reports,
            ready: vec![false; settings.proxies],
            ready_count: 0,
            min_available: settings.min_available,
            server_pid: settings.server_pid,
            memory_checked: Instant::now(),
        })
    }

    /// The connection of proxy `index`, opened on first use.
    async fn channel(&mut self, index: usize) -> anyhow::Result<Channel> {
        let slot = index % self.channels.len();
        if let Some(channel) = &self.channels[slot] {
            return Ok(channel.clone());
        }
        let io = self.io.as_ref().context("the fleet is shut down")?.handle().clone();
        let channel = Endpoint::from_shared(self.target.clone())?
            .executor(IoExecutor(io))
            .initial_stream_window_size(Some(WINDOW))
            .initial_connection_window_size(Some(WINDOW))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("failed to connect to {}", self.target))?;
        self.channels[slot] = Some(channel.clone());
        Ok(channel)
    }

    async fn spawn(&mut self, index: usize, class: Arc<Class>, routes: Option<Arc<RouteStore>>) -> anyhow::Result<()> {
        let channel = self.channel(index).await?;
        let protocol = self.mix.protocol(index);
        let proxy = Proxy {
            index: u32::try_from(index)?,
            node_id: format!("loadgen-{}-{index:05}", protocol.as_str()),
            class,
            protocol,
            routes,
        };
        self.tasks.spawn(proxy.run(channel, Arc::clone(&self.shared), self.events.clone()));
        Ok(())
    }

    async fn next(&mut self, deadline: Instant) -> anyhow::Result<Option<Event>> {
        let received = loop {
            self.check_memory()?;
            // Wake at least twice a second to look at memory.
            let slice = deadline.min(Instant::now() + Duration::from_millis(500));
            match tokio::time::timeout_at(slice.into(), self.reports.recv()).await {
                Err(_) if Instant::now() >= deadline => return Ok(None),
                Err(_) => continue,
                Ok(received) => break received,
            }
        };
        match received {
            None => bail!("every proxy is gone"),
            Some(Event::Ended { proxy, error }) => bail!("proxy {proxy}'s stream ended: {error}"),
            Some(event) => {
                if let Event::Ready { proxy } = event
                    && let Some(ready) = self.ready.get_mut(proxy as usize)
                    && !*ready
                {
                    *ready = true;
                    self.ready_count += 1;
                }
                Ok(Some(event))
            }
        }
    }

    /// Fails once the machine runs low on memory (checked twice a second), before the kernel's OOM killer picks a
    /// victim that may be neither of us.
    fn check_memory(&mut self) -> anyhow::Result<()> {
        if self.min_available == 0 || self.memory_checked.elapsed() < Duration::from_millis(500) {
            return Ok(());
        }
        self.memory_checked = Instant::now();
        let Some(available) = procfs::available_memory() else { return Ok(()) };
        if available >= self.min_available {
            return Ok(());
        }
        let rss = |pid: Option<u32>| {
            pid.and_then(|pid| procfs::memory(pid).ok())
                .map_or_else(|| "?".to_owned(), |m| format!("{} MiB", m.rss >> 20))
        };
        bail!(
            "stopped: the machine has {} MiB of memory available, below the {} MiB floor (server RSS {}, loadgen RSS {}, \
             {} of {} proxies ready)",
            available >> 20,
            self.min_available >> 20,
            rss(self.server_pid),
            rss(Some(std::process::id())),
            self.ready_count,
            self.ready.len()
        )
    }

    /// Waits until `count` proxies are ready.
    async fn wait_ready(&mut self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while self.ready_count < count {
            if self.next(deadline).await?.is_none() {
                bail!("{} of {count} proxies ready after {timeout:?}", self.ready_count);
            }
        }
        Ok(())
    }

    /// Waits until no proxy has reported anything for `settle`.
    async fn quiet(&mut self, settle: Duration) -> anyhow::Result<()> {
        while self.next(Instant::now() + settle).await?.is_some() {}
        Ok(())
    }

    async fn collect_change(
        &mut self,
        changed_at: Instant,
        settle: Duration,
        timeout: Duration,
    ) -> anyhow::Result<ChangeOutcome> {
        let proxies = self.ready.len();
        let mut received: Vec<Option<Duration>> = vec![None; proxies];
        let mut acked: Vec<Option<Duration>> = vec![None; proxies];
        let (mut outstanding, mut responses, mut bytes) = (proxies, 0, 0);
        let give_up = changed_at + timeout;
        let mut last = Instant::now();
        loop {
            let deadline = if outstanding == 0 { last + settle } else { give_up };
            let Some(event) = self.next(deadline).await? else { break };
            let Event::Response { proxy, received: at, acked: ack, bytes: size, .. } = event else { continue };
            if at < changed_at {
                continue;
            }
            last = Instant::now();
            responses += 1;
            bytes += size;
            let proxy = proxy as usize;
            if received[proxy].is_none() {
                received[proxy] = Some(at - changed_at);
                outstanding -= 1;
            }
            acked[proxy] = Some(ack - changed_at);
        }
        let acked: Vec<Duration> = acked.into_iter().flatten().collect();
        Ok(ChangeOutcome {
            all_acked: (outstanding == 0).then(|| acked.iter().copied().max().unwrap_or_default()),
            received: received.into_iter().flatten().collect(),
            acked,
            missed: outstanding,
            responses,
            bytes,
        })
    }

    fn shutdown(&mut self) {
        self.tasks.abort_all();
        self.channels.clear();
        // Dropping a runtime blocks, which an async context must not do.
        if let Some(io) = self.io.take() {
            io.shutdown_background();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shutdown();
    }
}
