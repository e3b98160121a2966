//! `pilotfish explain`: walk one request through what a proxy is served (offline) or runs (live).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use serde_json::{Value, json};
use translator::Severity;

use super::offline::{ClassArgs, Offline};
use crate::explain::{Outcome, Request, explain, service_port_map};

/// Walk a request through listener → filter chain → virtual host → route → clusters → endpoints.
///
/// Prints each decision and the Istio object behind it, as Envoy would make it, then the configuration's errors
/// and warnings. With -f, for what a proxy of the given class would get from the files (offline). With --proxy,
/// for what that connected proxy runs (what it ACKed from a running `pilotfish serve`, with its class's Service
/// ports), asked of the admin API's /debug/explain. Exits 1 when the request would fail (no listener, a 4xx or
/// 5xx answered by Envoy, no cluster with endpoints), 0 when it reaches an upstream.
///
/// Example:
///   pilotfish explain -f examples/bookinfo-local/base --role gateway 'GET http://bookinfo.local/reviews' -H 'end-user: jason'
///   pilotfish explain -f mesh.yaml --role sidecar --namespace default 'http://reviews:9080/'
///   pilotfish explain --proxy bookinfo-gateway 'GET http://bookinfo.local:8080/reviews' -H 'end-user: jason'
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A YAML/JSON file or a directory of them.
    #[arg(short = 'f', long = "filename", value_name = "PATH", required_unless_present = "proxy")]
    path: Option<PathBuf>,
    /// A proxy connected to a running `pilotfish serve` (its node id): explain with what it runs.
    #[arg(long, value_name = "ID", conflicts_with_all = ["path", "role", "labels", "namespace", "outbound_bind"])]
    proxy: Option<String>,
    /// With --proxy: the admin address of the running `pilotfish serve`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
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

/// What `explain` found, offline or live, as `-o json` prints it.
struct Explained {
    json: Value,
    /// The line that opens the text output, after the request.
    about: String,
    /// Diagnostics, one line each.
    problems: Vec<String>,
    /// Said before the problems (a live proxy behind the latest configuration).
    notes: Vec<String>,
    fails: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let request = Request::parse(&args.request, &args.headers).map_err(anyhow::Error::msg)?;
    let explained = match (&args.proxy, &args.path) {
        (Some(proxy), _) => live(&args, proxy)?,
        (None, Some(path)) => offline(&args, path, &request)?,
        (None, None) => bail!("give -f PATH (offline) or --proxy ID (a connected proxy)"),
    };
    match args.output {
        super::Output::Text => {
            println!("{} http://{}:{}{} {}", request.method, request.host, request.port, request.path, explained.about);
            for (name, value) in &request.headers {
                println!("  {name}: {value}");
            }
            for step in explained.json["steps"].as_array().into_iter().flatten() {
                println!("{}", step.as_str().unwrap_or_default());
            }
            for note in &explained.notes {
                println!("\n{note}");
            }
            if !explained.problems.is_empty() {
                println!("\nthe configuration has {} problem(s):", explained.problems.len());
                for problem in &explained.problems {
                    println!("  {problem}");
                }
            }
        }
        super::Output::Json => println!("{}", serde_json::to_string_pretty(&explained.json)?),
        super::Output::Yaml => print!("{}", serde_yaml::to_string(&explained.json)?),
    }
    Ok(if explained.fails { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn offline(args: &Args, path: &std::path::Path, request: &Request) -> anyhow::Result<Explained> {
    let offline = Offline::load(path)?;
    let class = args.class.class()?;
    let (snapshot, class_diagnostics) = offline.snapshot(&class)?;
    // Services that select this proxy's workload map their ports to the proxy's (e.g. 80 → 8080).
    let port_map = service_port_map(&offline.translator, &class);
    let explanation = explain(&snapshot, request, &port_map);
    let diagnostics = translator::diagnostics::sorted(
        offline
            .diagnostics
            .iter()
            .chain(&class_diagnostics)
            .filter(|d| d.severity != Severity::Info)
            .cloned()
            .collect(),
    );
    let mut json = explanation.to_json();
    json["class"] = json!(class.to_string());
    json["diagnostics"] = json!(diagnostics);
    Ok(Explained {
        json,
        about: format!("as {class}"),
        problems: diagnostics.iter().map(ToString::to_string).collect(),
        notes: Vec::new(),
        fails: explanation.outcome.fails(),
    })
}

fn live(args: &Args, proxy: &str) -> anyhow::Result<Explained> {
    let encode = crate::admin::url_encode;
    let mut path = format!("/debug/explain?proxy={}&request={}", encode(proxy), encode(&args.request));
    for header in &args.headers {
        path.push_str(&format!("&header={}", encode(header)));
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let json = runtime.block_on(super::http::get_json(args.admin_address, &path))?;
    let fails = outcome(&json).is_none_or(|o| o.fails());
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut notes = Vec::new();
    if json["synced"] == false {
        let behind: Vec<String> = json["behind"].as_array().into_iter().flatten().map(text).collect();
        notes.push(format!(
            "note: {proxy} does not run the latest configuration ({}): this is what it runs now",
            if behind.is_empty() { "it is still being pushed".to_owned() } else { behind.join(", ") }
        ));
    }
    let unacked: Vec<String> = json["unacked"].as_array().into_iter().flatten().map(text).collect();
    if !unacked.is_empty() {
        notes.push(format!(
            "note: {proxy} has not ACKed any {} on this connection: what it runs there is not known to pilotfish \
             (after a reconnect, Envoy keeps what it had)",
            unacked.join(", ")
        ));
    }
    if let Some(unknown) = json["unknown_resources"].as_u64().filter(|n| *n > 0) {
        notes.push(format!("note: {unknown} resource(s) the proxy runs are known by version only and were left out"));
    }
    Ok(Explained {
        about: format!("as {} (proxy {proxy}, what it runs)", text(&json["class"])),
        problems: json["messages"].as_array().into_iter().flatten().map(text).collect(),
        notes,
        fails,
        json,
    })
}

/// The outcome of an explanation as `/debug/explain` writes it.
fn outcome(json: &Value) -> Option<Outcome> {
    let outcome = &json["outcome"];
    if let Some(clusters) = outcome["clusters"].as_array() {
        let clusters = clusters
            .iter()
            .filter_map(|c| Some((c[0].as_str()?.to_owned(), u32::try_from(c[1].as_u64()?).ok()?)))
            .collect();
        return Some(Outcome::Clusters(clusters));
    }
    if let Some(status) = outcome["status"].as_u64() {
        return Some(Outcome::Status(u32::try_from(status).ok()?));
    }
    outcome["no_listener"].as_bool().filter(|b| *b).map(|_| Outcome::NoListener)
}
