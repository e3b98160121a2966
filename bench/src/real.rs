//! Real Envoys for the convergence and hitless-change benchmarks: the world they route by (Istio YAML rendered
//! from a [`Scenario`]), a fleet of gateway Envoys fed by an in-process [`ControlPlane`], and a keep-alive HTTP
//! client to send traffic through them.
//!
//! Each Envoy of a fleet is its own proxy class: Envoy `i` carries the label `bench-envoy: e<i>` and a Gateway of its
//! own selects it, on a port of its own (Envoys on one machine cannot share a listener port and still be told
//! apart). One VirtualService binds to every Gateway, so a change reaches every Envoy.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use controlplane::ControlPlane;
use controlplane::bootstrap::{Role, render_yaml};
use controlplane::registry::ProxyStatus;
use e2e::{Envoy, free_port};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::driver::Mix;

/// The host every request asks for.
pub const HOST: &str = "app.bench";
/// The response header whose value says which version of the main route answered.
pub const MARKER: &str = "x-bench-change";
/// Name of the configuration piece the benchmarks apply.
const PIECE: &str = "bench";

/// Where the main route (`/`) sends traffic.
#[derive(Clone, Debug, PartialEq)]
pub enum Main {
    /// Percent to subset v1, the rest to v2.
    Split(u32),
    Subset(String),
}

/// Where an extra route sends traffic.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A subset of app.bench.
    Subset(String),
    /// A host of its own (a ServiceEntry in [`Scenario::services`]).
    Host(String),
}

/// The world, as the benchmarks change it.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// One Gateway per Envoy: its listener port.
    pub gateways: Vec<u16>,
    /// Backend ports of app.bench's endpoints labelled `version: v1`, and `v2`.
    pub v1: Vec<u16>,
    pub v2: Vec<u16>,
    /// Subsets beyond v1 and v2: name and the version they select.
    pub subsets: Vec<(String, &'static str)>,
    pub main: Main,
    /// Set as [`MARKER`] on the main route's responses.
    pub marker: u64,
    /// Routes before the main one: path prefix and target.
    pub routes: Vec<(String, Target)>,
    /// Hosts of their own, each with one endpoint: host and backend port.
    pub services: Vec<(String, u16)>,
}

impl Scenario {
    pub fn new(gateways: Vec<u16>, v1: Vec<u16>, v2: Vec<u16>) -> Scenario {
        Scenario {
            gateways,
            v1,
            v2,
            subsets: Vec::new(),
            main: Main::Split(90),
            marker: 0,
            routes: Vec::new(),
            services: Vec::new(),
        }
    }

    /// The Istio YAML of the scenario.
    pub fn yaml(&self) -> String {
        let mut out = String::new();
        let endpoints = |out: &mut String, ports: &[u16], version: &str| {
            for port in ports {
                let _ = writeln!(
                    out,
                    "  - {{address: 127.0.0.1, ports: {{http: {port}}}, labels: {{version: {version}}}}}"
                );
            }
        };
        out.push_str(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: app}\nspec:\n  hosts: [app.bench]\n  \
             ports: [{number: 80, name: http, protocol: HTTP}]\n  resolution: STATIC\n  endpoints:\n",
        );
        endpoints(&mut out, &self.v1, "v1");
        endpoints(&mut out, &self.v2, "v2");
        out.push_str(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: app}\nspec:\n  host: app.bench\n  \
             subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n",
        );
        for (name, version) in &self.subsets {
            let _ = writeln!(out, "  - {{name: {name}, labels: {{version: {version}}}}}");
        }
        for (host, port) in &self.services {
            let name = host.replace('.', "-");
            let _ = write!(
                out,
                "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\nspec:\n  \
                 hosts: [{host}]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  \
                 endpoints: [{{address: 127.0.0.1, ports: {{http: {port}}}}}]\n"
            );
        }
        for (i, port) in self.gateways.iter().enumerate() {
            let _ = write!(
                out,
                "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw-{i}}}\nspec:\n  \
                 selector: {{bench-envoy: e{i}}}\n  servers:\n  - port: {{number: {port}, name: http, protocol: HTTP}}\n    \
                 bind: 127.0.0.1\n    hosts: [\"*\"]\n"
            );
        }
        let gateways: Vec<String> = (0..self.gateways.len()).map(|i| format!("gw-{i}")).collect();
        let _ = write!(
            out,
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: app}}\nspec:\n  \
             hosts: [{HOST}]\n  gateways: [{}]\n  http:\n",
            gateways.join(", ")
        );
        for (prefix, target) in &self.routes {
            let destination = match target {
                Target::Subset(subset) => format!("{{host: {HOST}, subset: {subset}}}"),
                Target::Host(host) => format!("{{host: {host}}}"),
            };
            let _ = writeln!(
                out,
                "  - match: [{{uri: {{prefix: {prefix}}}}}]\n    route: [{{destination: {destination}}}]"
            );
        }
        let _ = writeln!(out, "  - headers: {{response: {{set: {{{MARKER}: \"{}\"}}}}}}\n    route:", self.marker);
        match &self.main {
            Main::Split(v1) => {
                let _ = writeln!(out, "    - {{destination: {{host: {HOST}, subset: v1}}, weight: {v1}}}");
                let _ = writeln!(out, "    - {{destination: {{host: {HOST}, subset: v2}}, weight: {}}}", 100 - v1);
            }
            Main::Subset(subset) => {
                let _ = writeln!(out, "    - {{destination: {{host: {HOST}, subset: {subset}}}}}");
            }
        }
        out
    }
}

/// Gateway Envoys on loopback and the control plane feeding them.
pub struct Fleet {
    pub control_plane: ControlPlane,
    pub envoys: Vec<Envoy>,
    /// Envoy i's listener.
    pub listeners: Vec<SocketAddr>,
}

impl Fleet {
    /// Free ports for `envoys` Gateways.
    pub fn gateway_ports(envoys: usize) -> Vec<u16> {
        (0..envoys).map(|_| free_port()).collect()
    }

    /// Like [`Fleet::try_start`], on fresh gateway ports if one was taken before Envoy could bind it (another
    /// process, or an outgoing connection given that port: free ports come from the same range) and Envoy rejected
    /// its listener.
    pub async fn start(
        scenario: &mut Scenario,
        protocol: Mix,
        envoy_args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Fleet> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 1;
        loop {
            match Fleet::try_start(scenario, protocol, envoy_args, timeout).await {
                Err(err) if attempt < ATTEMPTS && format!("{err:#}").contains("Address already in use") => {
                    eprintln!("loadgen: a gateway port was taken before Envoy bound it ({err:#}); trying other ports");
                    scenario.gateways = Fleet::gateway_ports(scenario.gateways.len());
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    /// Starts the control plane with `scenario` (whose gateways say how many Envoys), then the Envoys, and waits
    /// until every Envoy has ACKed everything and serves the main route.
    pub async fn try_start(
        scenario: &Scenario,
        protocol: Mix,
        envoy_args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<Fleet> {
        let control_plane = ControlPlane::start().await?;
        control_plane.apply(PIECE, &scenario.yaml())?;
        let mut envoys = Vec::new();
        for i in 0..scenario.gateways.len() {
            let node = node_id(i);
            let mut options = control_plane.bootstrap(&node, Role::Gateway);
            options.labels.insert("bench-envoy".to_owned(), format!("e{i}"));
            options.delta = match protocol {
                Mix::Sotw => false,
                Mix::Delta => true,
                Mix::Mixed => i % 2 == 1,
            };
            let envoy = Envoy::start_with_args(&node, &render_yaml(&options)?, envoy_args).await?;
            envoys.push(envoy);
        }
        for envoy in &envoys {
            envoy.wait_live(timeout).await?;
        }
        control_plane.wait_synced(None, timeout).await?;
        let listeners: Vec<SocketAddr> =
            scenario.gateways.iter().map(|port| SocketAddr::from(([127, 0, 0, 1], *port))).collect();
        let fleet = Fleet { control_plane, envoys, listeners };
        anyhow::ensure!(
            fleet.control_plane.proxies().len() == scenario.gateways.len(),
            "{} Envoys connected, {} expected",
            fleet.control_plane.proxies().len(),
            scenario.gateways.len()
        );
        for (i, listener) in fleet.listeners.iter().enumerate() {
            let mut client = Client::new(*listener);
            let deadline = Instant::now() + timeout;
            loop {
                match client.get("/").await {
                    Ok(reply) if reply.status == 200 => break,
                    Ok(reply) if Instant::now() > deadline => {
                        bail!("Envoy {i} answers / with {} {}", reply.status, reply.body)
                    }
                    Err(err) if Instant::now() > deadline => return Err(err.context(format!("Envoy {i}"))),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }
        Ok(fleet)
    }

    /// Publishes `scenario`: translation and the push to every stream.
    pub fn apply(&self, scenario: &Scenario) -> anyhow::Result<()> {
        self.control_plane.apply(PIECE, &scenario.yaml())?;
        Ok(())
    }

    /// The tail of every Envoy's log, for a failed run.
    pub fn logs(&self, lines: usize) -> String {
        self.envoys.iter().map(|e| format!("--- {} ---\n{}\n", e.name(), e.log_tail(lines))).collect()
    }
}

pub fn node_id(i: usize) -> String {
    format!("bench-envoy-{i}")
}

/// How long Envoy took to apply the responses of one change, as the control plane saw it: from the first response
/// sent after `since` to the last ACK, and the sum over types of each response's send → ACK.
pub fn apply_time(proxy: &ProxyStatus, since: Instant) -> Option<(Duration, Duration)> {
    let acks: Vec<_> = proxy.timing.iter().filter_map(|t| t.last_ack).filter(|a| a.sent >= since).collect();
    let first = acks.iter().map(|a| a.sent).min()?;
    let last = acks.iter().map(|a| a.acked).max()?;
    let sum = acks.iter().map(|a| a.acked.saturating_duration_since(a.sent)).sum();
    Some((last.saturating_duration_since(first), sum))
}

/// One HTTP/1.1 keep-alive connection to an Envoy listener, reopened after an error.
pub struct Client {
    address: SocketAddr,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

/// A reply, reduced to what the benchmarks look at.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub marker: Option<String>,
    pub body: String,
}

impl Client {
    pub fn new(address: SocketAddr) -> Client {
        Client { address, sender: None }
    }

    /// GETs `path` on the connection (opening one if needed). An error drops the connection.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<Reply> {
        let result = self.try_get(path).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_get(&mut self, path: &str) -> anyhow::Result<Reply> {
        let sender = match &mut self.sender {
            Some(sender) => sender,
            None => {
                let stream = TcpStream::connect(self.address).await.context("connect")?;
                stream.set_nodelay(true)?;
                let (sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.context("handshake")?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                self.sender.insert(sender)
            }
        };
        sender.ready().await.context("connection closed")?;
        let request = hyper::Request::get(path).header(hyper::header::HOST, HOST).body(Empty::new())?;
        let response = sender.send_request(request).await.context("request")?;
        let status = response.status().as_u16();
        let marker = response.headers().get(MARKER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.into_body().collect().await.context("body")?.to_bytes();
        Ok(Reply { status, marker, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_reads_as_valid_istio_configuration() {
        let mut scenario = Scenario::new(vec![10001, 10002], vec![20001], vec![20002]);
        scenario.subsets.push(("s1".to_owned(), "v1"));
        scenario.routes.push(("/r-1".to_owned(), Target::Subset("v2".to_owned())));
        scenario.routes.push(("/c-1".to_owned(), Target::Host("c1.bench".to_owned())));
        scenario.services.push(("c1.bench".to_owned(), 20003));
        for main in [Main::Split(70), Main::Subset("s1".to_owned())] {
            scenario.main = main;
            let yaml = scenario.yaml();
            let (inputs, problems) = translator::read_yaml(&yaml, "bench");
            assert!(problems.is_empty(), "{problems:?}\n{yaml}");
            // 2 ServiceEntries, a DestinationRule, 2 Gateways, a VirtualService.
            assert_eq!(inputs.len(), 6, "{yaml}");
        }
    }
}
