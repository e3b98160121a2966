//! `pilotfish explain`: walk one request through what a proxy is served.

use std::path::PathBuf;

use serde_json::json;
use translator::input::registry::TargetPort;

use super::offline::{ClassArgs, Offline};
use crate::explain::{Outcome, Request, explain};

/// Walk a request through listener → filter chain → virtual host → route → clusters → endpoints, offline.
///
/// Prints each decision and the Istio object behind it, as Envoy would make it with the configuration a proxy of
/// the given class gets.
///
/// Example:
///   pilotfish explain -f examples/bookinfo/ --role gateway 'GET http://bookinfo.local/productpage' -H 'end-user: jason'
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

pub fn run(args: Args) -> anyhow::Result<()> {
    let request = Request::parse(&args.request, &args.headers).map_err(anyhow::Error::msg)?;
    let offline = Offline::load(&args.path)?;
    let class = args.class.class()?;
    let (snapshot, _) = offline.snapshot(&class);
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
    match args.output {
        super::Output::Text => {
            println!("{} http://{}:{}{} as {class}", request.method, request.host, request.port, request.path);
            for (name, value) in &request.headers {
                println!("  {name}: {value}");
            }
            print!("{}", explanation.text());
        }
        super::Output::Json | super::Output::Yaml => {
            let outcome = match &explanation.outcome {
                Outcome::Clusters(clusters) => json!({ "clusters": clusters }),
                Outcome::Status(status) => json!({ "status": status }),
                Outcome::NoListener => json!({ "no_listener": true }),
            };
            let out = json!({ "class": class.to_string(), "steps": explanation.steps, "outcome": outcome });
            if matches!(args.output, super::Output::Json) {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print!("{}", serde_yaml::to_string(&out)?);
            }
        }
    }
    Ok(())
}
