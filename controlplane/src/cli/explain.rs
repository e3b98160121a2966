//! `pilotfish explain`: walk one request through what a proxy is served.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use translator::Severity;
use translator::input::registry::TargetPort;

use super::offline::{ClassArgs, Offline};
use crate::explain::{Outcome, Request, explain};

/// Walk a request through listener → filter chain → virtual host → route → clusters → endpoints, offline.
///
/// Prints each decision and the Istio object behind it, as Envoy would make it with the configuration a proxy of
/// the given class gets, then the configuration's errors and warnings. Exits 1 when the request would fail (no
/// listener, a 4xx or 5xx answered by Envoy, no cluster with endpoints), 0 when it reaches an upstream.
///
/// Example:
///   pilotfish explain -f examples/bookinfo-local/base --role gateway 'GET http://bookinfo.local/reviews' -H 'end-user: jason'
///   pilotfish explain -f mesh.yaml --role sidecar --namespace default 'http://reviews:9080/'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A YAML/JSON file or a directory of them.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    path: PathBuf,
    #[command(flatten)]
    class: ClassArgs,
    /// The request: 'METHOD http://host[:port]/path?query' (METHOD defaults to GET).
    #[arg(value_name = "REQUEST")]
    request: String,
    /// A request header, 'name: value' (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = super::Output::Text)]
    output: super::Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = Request::parse(&args.request, &args.headers).map_err(anyhow::Error::msg)?;
    let offline = Offline::load(&args.path)?;
    let class = args.class.class()?;
    let (snapshot, class_diagnostics) = offline.snapshot(&class)?;
    // Services that select this proxy's workload map their ports to the proxy's (e.g. 80 → 8080).
    let port_map: Vec<(u16, u16, String)> = offline
        .translator
        .model()
        .kubernetes_services
        .iter()
        .filter(|s| !s.spec.selector.is_empty() && s.spec.selector.iter().all(|(k, v)| class.labels.get(k) == Some(v)))
        .flat_map(|s| {
            let name = format!("{}/{}", s.meta.namespace, s.meta.name);
            s.spec.ports.iter().filter_map(move |p| {
                let target = match &p.target_port {
                    Some(TargetPort::Number(n)) => *n,
                    _ => p.port,
                };
                Some((u16::try_from(p.port).ok()?, u16::try_from(target).ok()?, name.clone()))
            })
        })
        .collect();
    let explanation = explain(&snapshot, &request, &port_map);
    let diagnostics = translator::diagnostics::sorted(
        offline
            .diagnostics
            .iter()
            .chain(&class_diagnostics)
            .filter(|d| d.severity != Severity::Info)
            .cloned()
            .collect(),
    );
    match args.output {
        super::Output::Text => {
            println!("{} http://{}:{}{} as {class}", request.method, request.host, request.port, request.path);
            for (name, value) in &request.headers {
                println!("  {name}: {value}");
            }
            print!("{}", explanation.text());
            if !diagnostics.is_empty() {
                println!("\nthe configuration has {} problem(s):", diagnostics.len());
                for diagnostic in &diagnostics {
                    println!("  {diagnostic}");
                }
            }
        }
        super::Output::Json | super::Output::Yaml => {
            let outcome = match &explanation.outcome {
                Outcome::Clusters(clusters) => json!({ "clusters": clusters }),
                Outcome::Status(status) => json!({ "status": status }),
                Outcome::NoListener => json!({ "no_listener": true }),
            };
            let out = json!({
                "class": class.to_string(),
                "steps": explanation.steps,
                "outcome": outcome,
                "diagnostics": diagnostics,
            });
            if matches!(args.output, super::Output::Json) {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", serde_yaml::to_string(&out)?);
            }
        }
    }
    Ok(if explanation.outcome.fails() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
