//! Every scenario under `examples/bookinfo-local/` (any directory holding an `expect.yaml`), against a real Envoy:
//! pilotfish serves `base/` plus the scenario's YAML, the requests of `expect.yaml` go through Envoy to backends
//! on the ports the ServiceEntries name, and for each request
//!
//! 1. what Envoy did matches `expect.yaml` (statuses, shares of backends, timings, upstream request counts), and
//! 2. `pilotfish explain`'s walk over the very snapshot Envoy was served agrees with where Envoy sent it: the
//!    backends that received the request are endpoints of the clusters explain names (with the subset matching
//!    the backend's version), in the shares of explain's weights; a status explain predicts (abort, 404) is the
//!    status Envoy answered and no backend saw the request; no listener means the connection was refused; a 504
//!    only where explain shows a timeout or retries that cover one, with as many upstream tries as explain's
//!    retries allow.
//!
//! The examples use fixed ports (gateway 8080 or 3001, backends 9101..9104), so the scenarios run one after the
//! other in one test; `scripts/run-example` must not be running at the same time.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::core::v3::{address, socket_address};
use api_protos::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, lb_endpoint};
use api_protos::{ResourceType, any};
use controlplane::ControlPlane;
use controlplane::bootstrap::{Role, render_yaml};
use controlplane::explain::{Explanation, Outcome, Request, explain};
use controlplane::snapshot::{Snapshot, SnapshotBuilder};
use e2e::{Backend, Behaviour, Envoy, http_get, workspace_root};
use serde_yaml::Value;
use translator::{ProxyClass, Severity, Translator, World};

/// The sample backends, as base/services.yaml lays them out: `<service>-<version>` on a fixed port.
const BACKENDS: [(&str, u16); 4] =
    [("reviews-v1", 9101), ("reviews-v2", 9102), ("reviews-v3", 9103), ("ratings-v1", 9104)];
const NODE: &str = "bookinfo-gateway";
const WAIT: Duration = Duration::from_secs(30);
/// Requests per expectation when it is all-or-nothing, and when it is a share.
const EXACT_COUNT: usize = 20;
const SHARE_COUNT: usize = 200;
/// Percentage points a share may be off by (over 200 requests, 3 to 4 standard deviations).
const DEFAULT_TOLERANCE: f64 = 15.0;
/// How early a timer may seem to fire: Envoy's event loop reads the clock once per iteration, so a 500 ms timeout
/// can end a request 499.x ms after the client sent it.
const TIMER_SLACK: Duration = Duration::from_millis(20);

fn examples_dir() -> PathBuf {
    workspace_root().join("examples/bookinfo-local")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_scenario_behaves_as_expected_and_as_explain_says() -> Result<()> {
    let dir = examples_dir();
    check_base_matches_backends(&dir.join("base"))?;
    let scenarios = scenarios(&dir)?;
    ensure!(scenarios.len() >= 11, "expected the 11 scenarios of examples/bookinfo-local, found {scenarios:?}");
    for port in [8080, 3001] {
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .with_context(|| format!("127.0.0.1:{port} is taken (is scripts/run-example or scripts/demo running?)"))?;
    }
    let mut backends = BTreeMap::new();
    for (name, port) in BACKENDS {
        backends.insert(name.to_owned(), Backend::start_on(name, SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?);
    }
    let mut failures = Vec::new();
    for scenario in &scenarios {
        println!("== {scenario}");
        match run_scenario(&dir, scenario, &backends).await {
            Ok(problems) => failures.extend(problems.into_iter().map(|p| format!("{scenario}: {p}"))),
            Err(err) => failures.push(format!("{scenario}: {err:#}")),
        }
    }
    assert!(failures.is_empty(), "{} problem(s):\n{}", failures.len(), failures.join("\n"));
    Ok(())
}

/// Directories below `dir` holding an `expect.yaml`, relative to `dir`, sorted.
fn scenarios(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).with_context(|| format!("reading {}", current.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.file_name().is_some_and(|n| n == "expect.yaml") {
                let scenario = current.strip_prefix(dir)?.to_string_lossy().into_owned();
                found.push(scenario);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The backends table above is what base/services.yaml says: every endpoint is `<host's first label>-<version>`
/// on its port.
fn check_base_matches_backends(base: &Path) -> Result<()> {
    let text = std::fs::read_to_string(base.join("services.yaml"))?;
    let mut endpoints = Vec::new();
    for document in text.split("\n---") {
        let entry: Value = serde_yaml::from_str(document)?;
        let host = entry["spec"]["hosts"][0].as_str().context("a ServiceEntry host")?;
        let service = host.split('.').next().unwrap_or(host);
        for endpoint in entry["spec"]["endpoints"].as_sequence().context("inline endpoints")? {
            let version = endpoint["labels"]["version"].as_str().context("a version label")?;
            let port = endpoint["ports"]["http"].as_u64().context("an http port")?;
            endpoints.push((format!("{service}-{version}"), u16::try_from(port)?));
        }
    }
    endpoints.sort();
    let mut table: Vec<(String, u16)> = BACKENDS.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect();
    table.sort();
    ensure!(endpoints == table, "base/services.yaml has endpoints {endpoints:?}, the test expects {table:?}");
    Ok(())
}

/// base/*.yaml, then the scenario's *.yaml but expect.yaml; a scenario file named like a base file replaces it.
fn config_files(dir: &Path, scenario: &str) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for source in [dir.join("base"), dir.join(scenario)] {
        for entry in std::fs::read_dir(&source)? {
            let path = entry?.path();
            let name = path.file_name().context("a file name")?.to_string_lossy().into_owned();
            if path.is_file() && name.ends_with(".yaml") && name != "expect.yaml" {
                files.insert(name, std::fs::read_to_string(&path)?);
            }
        }
    }
    Ok(files)
}

/// The gateway's proxy class, as `pilotfish bootstrap --role gateway --labels istio=ingressgateway --namespace
/// istio-system` declares it.
fn gateway_class() -> ProxyClass {
    let mut class = ProxyClass::new(Role::Gateway);
    class.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
    class.namespace = "istio-system".to_owned();
    class
}

/// What `pilotfish translate`/`explain -f` compute offline: the snapshot `class` gets from `files`. The examples
/// must be clean: any warning or error fails.
fn offline_snapshot(files: &BTreeMap<String, String>, class: &ProxyClass) -> Result<Snapshot> {
    let mut inputs = Vec::new();
    let mut diagnostics = Vec::new();
    for (name, yaml) in files {
        let (read, problems) = translator::read_yaml(yaml, name);
        inputs.extend(read);
        diagnostics.extend(problems);
    }
    let (world, duplicates) = World::new(inputs);
    diagnostics.extend(duplicates);
    let translator = Translator::new(&world);
    diagnostics.extend(translator.diagnostics().iter().cloned());
    let translation = translator.translate(class);
    diagnostics.extend(translation.diagnostics.iter().cloned());
    let serious: Vec<String> =
        diagnostics.iter().filter(|d| d.severity != Severity::Info).map(ToString::to_string).collect();
    ensure!(serious.is_empty(), "the example's configuration has problems:\n{}", serious.join("\n"));
    let mut builder = SnapshotBuilder::default();
    for resource in translation.resources() {
        builder.add_any(&resource)?;
    }
    Ok(builder.build())
}

async fn run_scenario(dir: &Path, scenario: &str, backends: &BTreeMap<String, Backend>) -> Result<Vec<String>> {
    let expect = Expect::read(&dir.join(scenario).join("expect.yaml"))?;
    for (name, backend) in backends {
        let delay = expect.delays.get(name).copied().unwrap_or_default();
        backend.set_behaviour(Behaviour { delay, ..Behaviour::default() })?;
    }
    for name in expect.delays.keys() {
        ensure!(backends.contains_key(name), "expect.yaml gives a delay to {name}, which is no backend");
    }
    let files = config_files(dir, scenario)?;
    let class = gateway_class();
    let snapshot = offline_snapshot(&files, &class)?;

    let control_plane = ControlPlane::start().await?;
    for (name, yaml) in &files {
        control_plane.apply(name, yaml)?;
    }
    let mut options = control_plane.bootstrap(NODE, Role::Gateway);
    options.labels = class.labels.clone();
    options.namespace = class.namespace.clone();
    let envoy = Envoy::start(NODE, &render_yaml(&options)?).await?;
    envoy.wait_live(WAIT).await?;
    control_plane.wait_synced(Some(NODE), WAIT).await?;
    let proxy = control_plane.proxy(NODE).context("the gateway is connected")?;
    ensure!(proxy.class == class, "the gateway connected as {}, not {class}", proxy.class);
    let served = control_plane.state().cache.get(&class);
    ensure!(
        served.version() == snapshot.version(),
        "explain would walk snapshot {} but Envoy was served {}",
        snapshot.version(),
        served.version()
    );

    let mut problems = Vec::new();
    for request in &expect.requests {
        let explanation = explain(&snapshot, &request.parsed, &[]);
        let batch = send(request, backends).await;
        println!("{}", batch.tally(request));
        for problem in check_expectation(request, &batch) {
            problems.push(format!("{}: expect.yaml: {problem}", request.title()));
        }
        for problem in check_explain(request, &explanation, &snapshot, &batch, &expect.delays) {
            problems.push(format!(
                "{}: explain disagrees with Envoy: {problem}\n{}",
                request.title(),
                explanation.text()
            ));
        }
    }
    envoy.stop();
    control_plane.shutdown().await;
    Ok(problems)
}

/// One scenario's expect.yaml.
struct Expect {
    /// Backends that answer late in this scenario.
    delays: BTreeMap<String, Duration>,
    requests: Vec<ExpectedRequest>,
}

struct ExpectedRequest {
    line: String,
    headers: Vec<(String, String)>,
    parsed: Request,
    count: usize,
    tolerance: f64,
    /// Percent of answers per backend.
    shares: BTreeMap<String, f64>,
    status: Option<u16>,
    refused: bool,
    min_time: Option<Duration>,
    max_time: Option<Duration>,
    /// Requests each backend must receive per request sent.
    upstream: BTreeMap<String, usize>,
}

impl ExpectedRequest {
    fn title(&self) -> String {
        let headers: Vec<String> = self.headers.iter().map(|(k, v)| format!("({k}: {v})")).collect();
        format!("{} {}", self.line, headers.join(" ")).trim_end().to_owned()
    }

    fn target(&self) -> (SocketAddr, String) {
        let authority = if self.parsed.port == 80 {
            self.parsed.host.clone()
        } else {
            format!("{}:{}", self.parsed.host, self.parsed.port)
        };
        (SocketAddr::from((Ipv4Addr::LOCALHOST, self.parsed.port)), authority)
    }
}

fn duration(value: &Value) -> Result<Duration> {
    let text = match value {
        Value::Number(n) => format!("{n}s"),
        Value::String(s) => s.clone(),
        other => bail!("expected a duration like 1.5s, got {other:?}"),
    };
    translator::duration::parse_duration(&text).map_err(anyhow::Error::msg)
}

fn mapping<'a>(value: &'a Value, what: &str) -> Result<Vec<(String, &'a Value)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| Ok((k.as_str().with_context(|| format!("{what}: keys are strings"))?.to_owned(), v)))
            .collect(),
        other => bail!("{what}: expected a mapping, got {other:?}"),
    }
}

fn number(value: &Value, what: &str) -> Result<f64> {
    value.as_f64().with_context(|| format!("{what}: expected a number, got {value:?}"))
}

impl Expect {
    fn read(path: &Path) -> Result<Expect> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let document: Value = serde_yaml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        Self::parse(&document).with_context(|| format!("{}", path.display()))
    }

    fn parse(document: &Value) -> Result<Expect> {
        for (key, _) in mapping(document, "expect.yaml")? {
            ensure!(key == "backends" || key == "requests", "unknown key {key:?}");
        }
        let mut delays = BTreeMap::new();
        for (name, behaviour) in mapping(&document["backends"], "backends")? {
            for (key, value) in mapping(behaviour, &name)? {
                ensure!(key == "delay", "backends.{name}: unknown key {key:?} (only delay)");
                delays.insert(name.clone(), duration(value)?);
            }
        }
        let mut requests = Vec::new();
        for item in document["requests"].as_sequence().context("requests: expected a list")? {
            requests.push(Self::request(item)?);
        }
        Ok(Expect { delays, requests })
    }

    fn request(item: &Value) -> Result<ExpectedRequest> {
        for (key, _) in mapping(item, "a request")? {
            ensure!(
                ["request", "headers", "count", "tolerance", "expect"].contains(&key.as_str()),
                "unknown key {key:?} in a request"
            );
        }
        let line = item["request"].as_str().context("request: expected 'GET http://host:port/path'")?.to_owned();
        let mut headers = Vec::new();
        for (name, value) in mapping(&item["headers"], "headers")? {
            let value = match value {
                Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other)?.trim().to_owned(),
            };
            headers.push((name, value));
        }
        let header_lines: Vec<String> = headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let parsed = Request::parse(&line, &header_lines).map_err(anyhow::Error::msg)?;
        ensure!(parsed.method == "GET", "{line}: only GET requests are supported");
        let expect = &item["expect"];
        let mut shares = BTreeMap::new();
        let mut upstream = BTreeMap::new();
        let (mut status, mut refused, mut min_time, mut max_time) = (None, false, None, None);
        for (key, value) in mapping(expect, "expect")? {
            match key.as_str() {
                "backends" => {
                    for (name, share) in mapping(value, "expect.backends")? {
                        shares.insert(name, number(share, "expect.backends")?);
                    }
                }
                "status" => status = Some(u16::try_from(value.as_u64().context("expect.status: a number")?)?),
                "refused" => refused = value.as_bool().context("expect.refused: true or false")?,
                "min_time" => min_time = Some(duration(value)?),
                "max_time" => max_time = Some(duration(value)?),
                "upstream_requests" => {
                    for (name, n) in mapping(value, "expect.upstream_requests")? {
                        upstream.insert(name, usize::try_from(value_u64(n)?)?);
                    }
                }
                other => bail!("{line}: unknown expectation {other:?}"),
            }
        }
        ensure!(!shares.is_empty() || status.is_some() || refused, "{line}: expect needs backends, status or refused");
        let exact = shares.values().all(|s| *s == 0.0 || *s == 100.0);
        let count = match item["count"].as_u64() {
            Some(n) => usize::try_from(n)?,
            None if exact => EXACT_COUNT,
            None => SHARE_COUNT,
        };
        let tolerance = item["tolerance"].as_f64().unwrap_or(DEFAULT_TOLERANCE);
        Ok(ExpectedRequest {
            line,
            headers,
            parsed,
            count,
            tolerance,
            shares,
            status,
            refused,
            min_time,
            max_time,
            upstream,
        })
    }
}

fn value_u64(value: &Value) -> Result<u64> {
    value.as_u64().with_context(|| format!("expected a whole number, got {value:?}"))
}

/// What came back for one request sent `count` times.
struct Batch {
    count: usize,
    /// Per answer: the backend that answered (its `x-backend` header), or None for Envoy's own answers.
    answers: Vec<Answer>,
    /// Requests each backend received while the batch was sent (retries included).
    upstream: BTreeMap<String, usize>,
}

enum Answer {
    Reply { status: u16, backend: Option<String>, elapsed: Duration },
    Refused,
    Failed(String),
}

impl Batch {
    fn key(answer: &Answer) -> String {
        match answer {
            Answer::Reply { status: 200, backend: Some(backend), .. } => backend.clone(),
            Answer::Reply { status, backend: Some(backend), .. } => format!("{backend} status {status}"),
            Answer::Reply { status, backend: None, .. } => format!("status {status}"),
            Answer::Refused => "refused".to_owned(),
            Answer::Failed(err) => format!("error: {err}"),
        }
    }

    fn counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for answer in &self.answers {
            *counts.entry(Self::key(answer)).or_default() += 1;
        }
        counts
    }

    fn times(&self) -> Vec<Duration> {
        self.answers
            .iter()
            .filter_map(|a| match a {
                Answer::Reply { elapsed, .. } => Some(*elapsed),
                _ => None,
            })
            .collect()
    }

    fn tally(&self, request: &ExpectedRequest) -> String {
        let counts: Vec<String> = self.counts().iter().map(|(k, n)| format!("{k} ×{n}")).collect();
        let times = self.times();
        let timing = match (times.iter().min(), times.iter().max()) {
            (Some(min), Some(max)) => format!(", {:.2}–{:.2}s", min.as_secs_f64(), max.as_secs_f64()),
            _ => String::new(),
        };
        let upstream: Vec<String> = self.upstream.iter().map(|(k, n)| format!("{k} saw {n}")).collect();
        let upstream = if upstream.is_empty() { "none".to_owned() } else { upstream.join(", ") };
        format!("{}: {}{timing}; upstream: {upstream}", request.title(), counts.join(", "))
    }
}

async fn send(request: &ExpectedRequest, backends: &BTreeMap<String, Backend>) -> Batch {
    let before: BTreeMap<&String, usize> = backends.iter().map(|(n, b)| (n, b.request_count())).collect();
    let (addr, authority) = request.target();
    let headers: Vec<(&str, &str)> = request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut answers = Vec::new();
    for _ in 0..request.count {
        let started = Instant::now();
        let answer = match http_get(addr, &authority, &request.parsed.path, &headers).await {
            Ok(reply) => Answer::Reply {
                status: reply.status,
                backend: reply.header("x-backend").map(str::to_owned),
                elapsed: started.elapsed(),
            },
            Err(err) if refused(&err) => Answer::Refused,
            Err(err) => Answer::Failed(format!("{err:#}")),
        };
        answers.push(answer);
    }
    // A backend that is slow in this scenario may still be sleeping on a request Envoy gave up on: it has been
    // counted already (backends record a request before answering).
    let upstream = backends
        .iter()
        .map(|(n, b)| (n.clone(), b.request_count() - before.get(n).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    Batch { count: request.count, answers, upstream }
}

fn refused(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

/// expect.yaml against what Envoy did.
fn check_expectation(request: &ExpectedRequest, batch: &Batch) -> Vec<String> {
    let mut problems = Vec::new();
    let counts = batch.counts();
    let n = batch.count as f64;
    if !request.shares.is_empty() {
        for key in counts.keys() {
            if !request.shares.contains_key(key) {
                problems.push(format!("got {counts:?}, expected only backends {:?}", request.shares));
            }
        }
        for (backend, share) in &request.shares {
            let got = counts.get(backend).copied().unwrap_or(0) as f64 * 100.0 / n;
            let ok =
                if *share == 0.0 || *share == 100.0 { got == *share } else { (got - share).abs() <= request.tolerance };
            if !ok {
                problems.push(format!("{backend}: expected {share}%, got {got:.1}% ({counts:?})"));
            }
        }
    }
    if let Some(status) = request.status {
        let want = format!("status {status}");
        if counts.get(&want) != Some(&batch.count) {
            problems.push(format!("expected every answer to be {want} from Envoy, got {counts:?}"));
        }
    }
    if request.refused && counts.get("refused") != Some(&batch.count) {
        problems.push(format!("expected the connection to be refused, got {counts:?}"));
    }
    let times = batch.times();
    if let (Some(min_time), Some(fastest)) = (request.min_time, times.iter().min())
        && *fastest + TIMER_SLACK < min_time
    {
        problems.push(format!("expected every answer to take at least {min_time:?}, one took {fastest:?}"));
    }
    if let (Some(max_time), Some(slowest)) = (request.max_time, times.iter().max())
        && *slowest >= max_time
    {
        problems.push(format!("expected every answer within {max_time:?}, one took {slowest:?}"));
    }
    for (backend, per_request) in &request.upstream {
        let seen = batch.upstream.get(backend).copied().unwrap_or(0);
        if seen != per_request * batch.count {
            problems.push(format!(
                "expected {backend} to receive {per_request} request(s) per request sent, it received {seen} for {}",
                batch.count
            ));
        }
    }
    problems
}

/// The backend listening on `address` (`127.0.0.1:9101` → reviews-v1).
fn backend_at(address: &str) -> Option<&'static str> {
    let port: u16 = address.strip_prefix("127.0.0.1:")?.parse().ok()?;
    BACKENDS.iter().find(|(_, p)| *p == port).map(|(name, _)| *name)
}

/// The endpoints (as backend names) of cluster `name` in `snapshot`: its EDS resource, or its inline assignment.
fn cluster_backends(snapshot: &Snapshot, name: &str) -> Result<Vec<String>> {
    let resource = snapshot.resources(ResourceType::Cluster).get(name).with_context(|| format!("no cluster {name}"))?;
    let cluster: Cluster = any::unpack(&resource.body)?;
    let assignment = match cluster.load_assignment {
        Some(inline) => inline,
        None => {
            let service = cluster.eds_cluster_config.map(|e| e.service_name).filter(|s| !s.is_empty());
            let service = service.unwrap_or_else(|| name.to_owned());
            let resource = snapshot
                .resources(ResourceType::Endpoint)
                .get(&service)
                .with_context(|| format!("no endpoints {service}"))?;
            any::unpack::<ClusterLoadAssignment>(&resource.body)?
        }
    };
    let mut names = Vec::new();
    for endpoint in assignment.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
        let Some(lb_endpoint::HostIdentifier::Endpoint(endpoint)) = &endpoint.host_identifier else { continue };
        let Some(address::Address::SocketAddress(socket)) = endpoint.address.as_ref().and_then(|a| a.address.as_ref())
        else {
            continue;
        };
        let Some(socket_address::PortSpecifier::PortValue(port)) = socket.port_specifier else { continue };
        let address = format!("{}:{port}", socket.address);
        names
            .push(backend_at(&address).with_context(|| format!("endpoint {address} is no sample backend"))?.to_owned());
    }
    Ok(names)
}

/// The value explain gives in a step `  <label>: <value>`.
fn step<'a>(explanation: &'a Explanation, label: &str) -> Option<&'a str> {
    explanation.steps.iter().find_map(|s| s.trim_start().strip_prefix(label))
}

/// explain's walk against what Envoy did.
fn check_explain(
    request: &ExpectedRequest,
    explanation: &Explanation,
    snapshot: &Snapshot,
    batch: &Batch,
    delays: &BTreeMap<String, Duration>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let counts = batch.counts();
    match &explanation.outcome {
        Outcome::NoListener => {
            if counts.get("refused") != Some(&batch.count) {
                problems.push(format!("explain finds no listener, but Envoy answered: {counts:?}"));
            }
        }
        Outcome::Status(status) => {
            let want = format!("status {status}");
            if counts.get(&want) != Some(&batch.count) {
                problems.push(format!("explain says Envoy answers {status} itself, Envoy gave {counts:?}"));
            }
            if !batch.upstream.is_empty() {
                problems
                    .push(format!("explain says no backend is reached, but {:?} received requests", batch.upstream));
            }
        }
        Outcome::Clusters(clusters) => {
            problems.extend(check_clusters(request, explanation, snapshot, batch, clusters, delays));
        }
    }
    // A delay fault: explain names it exactly when Envoy held the request (the backends answer at once here).
    let delayed = step(explanation, "fault: delay ").is_some();
    let times = batch.times();
    let fast_backends = batch.upstream.keys().all(|b| !delays.contains_key(b));
    if delayed {
        match request.min_time {
            Some(min_time) if times.iter().all(|t| *t + TIMER_SLACK >= min_time) => {}
            _ => problems.push(format!("explain shows a delay fault, answers took {times:?}")),
        }
    } else if fast_backends && times.iter().any(|t| *t >= Duration::from_secs(1)) {
        problems.push(format!("explain shows no delay and the backends are fast, yet answers took {times:?}"));
    }
    problems
}

fn check_clusters(
    request: &ExpectedRequest,
    explanation: &Explanation,
    snapshot: &Snapshot,
    batch: &Batch,
    clusters: &[(String, u32)],
    delays: &BTreeMap<String, Duration>,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Where explain sends the request: each cluster's weight, spread evenly over its endpoints.
    let total: u32 = clusters.iter().map(|(_, w)| *w).sum();
    let mut shares: BTreeMap<String, f64> = BTreeMap::new();
    for (cluster, weight) in clusters {
        let backends = match cluster_backends(snapshot, cluster) {
            Ok(backends) if !backends.is_empty() => backends,
            Ok(_) => {
                problems.push(format!("explain's cluster {cluster} has no endpoints"));
                continue;
            }
            Err(err) => {
                problems.push(format!("explain's cluster {cluster}: {err:#}"));
                continue;
            }
        };
        // outbound|9080|v2|reviews.local: subset v2 holds only version v2.
        let subset = cluster.split('|').nth(2).unwrap_or_default();
        for backend in &backends {
            if !subset.is_empty() && !backend.ends_with(&format!("-{subset}")) {
                problems.push(format!("explain's cluster {cluster} (subset {subset}) holds backend {backend}"));
            }
            *shares.entry(backend.clone()).or_default() +=
                f64::from(*weight) * 100.0 / f64::from(total.max(1)) / backends.len() as f64;
        }
    }
    // Every backend Envoy sent the request to is one explain names.
    for backend in batch.upstream.keys() {
        if !shares.contains_key(backend) {
            problems.push(format!("Envoy sent requests to {backend}, explain's clusters {clusters:?} do not hold it"));
        }
    }
    // Answers from backends come in explain's proportions.
    let answered: Vec<&String> = batch
        .answers
        .iter()
        .filter_map(|a| match a {
            Answer::Reply { status: 200, backend: Some(backend), .. } => Some(backend),
            _ => None,
        })
        .collect();
    if !answered.is_empty() {
        let n = answered.len() as f64;
        for (backend, share) in &shares {
            let got = answered.iter().filter(|b| **b == backend).count() as f64 * 100.0 / n;
            let ok = if *share >= 100.0 - 1e-9 { got == 100.0 } else { (got - share).abs() <= request.tolerance };
            if !ok {
                problems.push(format!("explain gives {backend} {share:.1}%, Envoy sent it {got:.1}% of {n} answers"));
            }
        }
    }
    // Envoy's own answers while explain forwards: only a 504 for a slow backend, after explain's timeout, with as
    // many tries as explain's retries allow when they cover a timeout (5xx, gateway-error), else one.
    let own: Vec<&Answer> =
        batch.answers.iter().filter(|a| !matches!(a, Answer::Reply { backend: Some(_), .. })).collect();
    if !own.is_empty() {
        let timeout = step(explanation, "timeout: ")
            .filter(|t| *t != "none")
            .map(|t| translator::duration::parse_duration(t).map_err(|e| format!("explain's timeout {t:?}: {e}")));
        let retries = step(explanation, "retries: ").and_then(|r| r.split_once(" on ")).map(|(n, on)| {
            let covers_timeout = on.split(',').any(|p| p == "5xx" || p == "gateway-error");
            (n.parse::<usize>().unwrap_or(0), covers_timeout)
        });
        let slow = batch.upstream.keys().all(|b| delays.contains_key(b)) && !batch.upstream.is_empty();
        let all_504 = own.iter().all(|a| matches!(a, Answer::Reply { status: 504, .. }));
        if !(all_504 && slow) {
            problems.push(format!(
                "explain forwards to {clusters:?}, yet Envoy answered itself ({} of {}; backends hit {:?})",
                own.len(),
                batch.count,
                batch.upstream
            ));
        } else {
            let tries = match retries {
                Some((n, true)) => 1 + n,
                _ => 1,
            };
            let seen: usize = batch.upstream.values().sum();
            if seen != tries * own.len() + (batch.count - own.len()) {
                problems.push(format!(
                    "explain's retries ({retries:?}) allow {tries} tr(ies) per timed-out request, the backends \
                     received {seen} for {} timed-out of {}",
                    own.len(),
                    batch.count
                ));
            }
            match timeout {
                Some(Ok(timeout)) => {
                    for answer in &own {
                        if let Answer::Reply { elapsed, .. } = answer
                            && *elapsed + TIMER_SLACK < timeout
                        {
                            problems.push(format!("504 after {elapsed:?}, before explain's timeout {timeout:?}"));
                        }
                    }
                }
                Some(Err(err)) => problems.push(err),
                None if tries == 1 => {
                    problems.push("504 although explain shows neither a timeout nor retries on timeouts".to_owned());
                }
                None => {}
            }
        }
    }
    problems
}

/// The checks above, fed made-up traffic: they must notice Envoy and explain (or expect.yaml) disagreeing.
#[test]
fn the_checks_catch_disagreements() -> Result<()> {
    let dir = examples_dir();
    let reply = |status: u16, backend: Option<&str>| Answer::Reply {
        status,
        backend: backend.map(str::to_owned),
        elapsed: Duration::from_millis(1),
    };
    let batch = |answers: Vec<Answer>, upstream: &[(&str, usize)]| Batch {
        count: answers.len(),
        answers,
        upstream: upstream.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect(),
    };
    let none = BTreeMap::new();

    let snapshot = offline_snapshot(&config_files(&dir, "request-routing/jason-v2")?, &gateway_class())?;
    let expect = Expect::read(&dir.join("request-routing/jason-v2/expect.yaml"))?;
    let jason = &expect.requests[0];
    assert_eq!(jason.headers, [("end-user".to_owned(), "jason".to_owned())]);
    let explanation = explain(&snapshot, &jason.parsed, &[]);
    let v2 = batch(vec![reply(200, Some("reviews-v2")), reply(200, Some("reviews-v2"))], &[("reviews-v2", 2)]);
    assert!(check_explain(jason, &explanation, &snapshot, &v2, &none).is_empty());
    assert!(check_expectation(jason, &v2).is_empty());
    let v1 = batch(vec![reply(200, Some("reviews-v1")), reply(200, Some("reviews-v1"))], &[("reviews-v1", 2)]);
    assert!(!check_explain(jason, &explanation, &snapshot, &v1, &none).is_empty(), "wrong backend");
    assert!(!check_expectation(jason, &v1).is_empty(), "wrong backend");
    let own = batch(vec![reply(503, None)], &[]);
    assert!(!check_explain(jason, &explanation, &snapshot, &own, &none).is_empty(), "Envoy answered itself");
    let refused = batch(vec![Answer::Refused], &[]);
    assert!(!check_explain(jason, &explanation, &snapshot, &refused, &none).is_empty(), "nothing listened");

    let snapshot = offline_snapshot(&config_files(&dir, "fault-injection/abort")?, &gateway_class())?;
    let expect = Expect::read(&dir.join("fault-injection/abort/expect.yaml"))?;
    let aborted = &expect.requests[0];
    let explanation = explain(&snapshot, &aborted.parsed, &[]);
    assert_eq!(explanation.outcome, Outcome::Status(500));
    let leaked = batch(vec![reply(500, None)], &[("ratings-v1", 1)]);
    assert!(!check_explain(aborted, &explanation, &snapshot, &leaked, &none).is_empty(), "a backend was reached");
    assert!(!check_expectation(aborted, &leaked).is_empty(), "a backend was reached");
    let from_backend = batch(vec![reply(500, Some("ratings-v1"))], &[("ratings-v1", 1)]);
    assert!(!check_explain(aborted, &explanation, &snapshot, &from_backend, &none).is_empty(), "not Envoy's 500");
    Ok(())
}
