//! `pilotfish translate`: offline translation, no server.

use std::path::PathBuf;

use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use api_protos::pb::envoy::config::listener::v3::Listener;
use api_protos::pb::envoy::config::route::v3::RouteConfiguration;
use api_protos::{ResourceType, any, reflect};
use serde_json::{Value, json};

use super::offline::{ClassArgs, Offline};
use super::tables;
use crate::snapshot::Snapshot;

/// Print the Envoy resources a proxy would get from some configuration, without a server.
///
/// Reads Istio objects, Kubernetes Services/EndpointSlices/Pods and raw Envoy resources from a file or directory
/// and prints the listeners, routes, clusters and endpoints (Envoy's JSON shape) a proxy of the given class gets.
/// -o text prints a summary instead: a table per type, as `pilotfish proxy-config` shows a running proxy's.
/// Diagnostics go to stderr.
///
/// Example:
///   pilotfish translate -f examples/bookinfo-local/base --role gateway --labels istio=ingressgateway
///   pilotfish translate -f reviews.yaml --role sidecar --namespace default -o json
///   pilotfish translate -f examples/bookinfo-local/base -o text
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
        super::Output::Yaml => print!("{}", serde_yaml::to_string(&out)?),
        super::Output::Text => print!("{}", summary(&class, &snapshot)?),
    }
    Ok(())
}

/// The snapshot as `proxy-config` shows a proxy's configuration: a table per type.
pub fn summary(class: &translator::ProxyClass, snapshot: &Snapshot) -> anyhow::Result<String> {
    fn decoded<M: prost::Message + prost::Name + Default>(
        snapshot: &Snapshot,
        kind: ResourceType,
    ) -> anyhow::Result<Vec<M>> {
        snapshot.resources(kind).iter().map(|(_, r)| Ok(any::unpack(&r.body)?)).collect()
    }
    let listeners: Vec<Listener> = decoded(snapshot, ResourceType::Listener)?;
    let routes: Vec<RouteConfiguration> = decoded(snapshot, ResourceType::Route)?;
    let clusters: Vec<Cluster> = decoded(snapshot, ResourceType::Cluster)?;
    let endpoints: Vec<ClusterLoadAssignment> = decoded(snapshot, ResourceType::Endpoint)?;
    let section = |title: &str, count: usize, table: String| {
        if count == 0 { format!("{title}: none\n") } else { format!("{title}:\n{table}") }
    };
    Ok([
        format!("class: {class}\n"),
        section("listeners", listeners.len(), tables::listeners(&listeners, &Default::default())),
        section("routes", routes.len(), tables::routes(&routes, &Default::default())),
        section("clusters", clusters.len(), tables::clusters(&clusters, &Default::default())),
        section("endpoints", endpoints.len(), tables::endpoints(&endpoints, &Default::default())),
    ]
    .join("\n"))
}

pub fn plural(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::Route => "routes",
    }
}
