//! `pilotfish translate`: offline translation, no server.

use std::path::PathBuf;

use api_protos::{ResourceType, reflect};
use serde_json::{Value, json};

use super::offline::{ClassArgs, Offline};

/// Print the Envoy resources a proxy would get from some configuration, without a server.
///
/// Reads Istio objects, Kubernetes Services/EndpointSlices/Pods and raw Envoy resources from a file or directory
/// and prints the listeners, routes, clusters and endpoints (Envoy's JSON shape) a proxy of the given class gets.
/// Diagnostics go to stderr.
///
/// Example:
///   pilotfish translate -f examples/bookinfo-local/base --role gateway --labels istio=ingressgateway
///   pilotfish translate -f reviews.yaml --role sidecar --namespace default -o json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A YAML/JSON file or a directory of them.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    path: PathBuf,
    #[command(flatten)]
    class: ClassArgs,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = super::Output::Yaml)]
    output: super::Output,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let offline = Offline::load(&args.path)?;
    let class = args.class.class()?;
    let (snapshot, class_diagnostics) = offline.snapshot(&class)?;
    for diagnostic in
        translator::diagnostics::sorted(offline.diagnostics.iter().chain(&class_diagnostics).cloned().collect())
    {
        eprintln!("{diagnostic}");
    }
    let mut out = serde_json::Map::new();
    out.insert("class".to_owned(), json!(class.to_string()));
    for kind in [ResourceType::Listener, ResourceType::Route, ResourceType::Cluster, ResourceType::Endpoint] {
        let resources: Result<Vec<Value>, _> =
            snapshot.resources(kind).iter().map(|(_, resource)| reflect::to_json(&resource.body)).collect();
        out.insert(plural(kind).to_owned(), Value::Array(resources?));
    }
    let out = Value::Object(out);
    match args.output {
        super::Output::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        super::Output::Yaml | super::Output::Text => print!("{}", serde_yaml::to_string(&out)?),
    }
    Ok(())
}

pub fn plural(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::Route => "routes",
    }
}
