//! `pilotfish proxy-config`: what a connected proxy runs, as `istioctl proxy-config` shows it.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use api_protos::{ResourceType, reflect};
use clap::Subcommand;
use serde_json::{Value, json};

use super::Output;
use super::config_dump::{self, Dump, Dumped};
use super::tables::{self, ClusterFilter, EndpointFilter, ListenerFilter, RouteFilter};

/// Show the clusters, listeners, routes or endpoints a connected proxy runs, like `istioctl proxy-config`.
///
/// What the proxy runs is what it ACKed, as pilotfish's admin API serves it (/debug/config_dump?proxy=ID). The
/// tables have istioctl's columns; -o json and -o yaml print Envoy's own admin ConfigDump (the shape of Envoy's
/// /config_dump), cut to what the filters chose, so tools that read Envoy's dumps read it. --file reads such a
/// dump instead (Envoy's own, from its admin port, or this command's -o json).
///
/// Example:
///   pilotfish proxy-config cluster bookinfo-gateway --fqdn reviews
///   pilotfish proxy-config route bookinfo-gateway -o json
///   curl -s 'localhost:15000/config_dump?include_eds' > envoy.json && pilotfish proxy-config endpoint --file envoy.json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The proxy's clusters: SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE.
    ///
    /// Example:
    ///   pilotfish proxy-config cluster bookinfo-gateway
    ///   pilotfish proxy-config cluster bookinfo-gateway --fqdn reviews.local --subset v2 -o yaml
    #[command(visible_alias = "clusters", alias = "c", verbatim_doc_comment)]
    Cluster {
        #[command(flatten)]
        source: Source,
        /// Only clusters whose service FQDN contains this.
        #[arg(long, value_name = "FQDN")]
        fqdn: Option<String>,
        /// Only clusters of this service port.
        #[arg(long)]
        port: Option<u16>,
        /// Only clusters whose subset contains this.
        #[arg(long)]
        subset: Option<String>,
        /// Only clusters of this direction (outbound, inbound).
        #[arg(long)]
        direction: Option<String>,
    },
    /// The proxy's listeners, one row per filter chain: ADDRESSES, PORT, MATCH, DESTINATION.
    ///
    /// Example:
    ///   pilotfish proxy-config listener bookinfo-gateway
    ///   pilotfish proxy-config listener sidecar-1 --port 9080 -o json
    #[command(visible_alias = "listeners", alias = "l", verbatim_doc_comment)]
    Listener {
        #[command(flatten)]
        source: Source,
        /// Only listeners on this address.
        #[arg(long)]
        address: Option<String>,
        /// Only listeners on this port.
        #[arg(long)]
        port: Option<u32>,
        /// Only listeners of this type: HTTP, TCP or HTTP+TCP.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
    },
    /// The proxy's routes, one row per route: NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE.
    ///
    /// Example:
    ///   pilotfish proxy-config route bookinfo-gateway
    ///   pilotfish proxy-config route bookinfo-gateway --name http.8080 -o yaml
    #[command(visible_alias = "routes", alias = "r", verbatim_doc_comment)]
    Route {
        #[command(flatten)]
        source: Source,
        /// Only the route configuration of this name.
        #[arg(long)]
        name: Option<String>,
    },
    /// The endpoints the proxy was sent: ENDPOINT, STATUS, CLUSTER.
    ///
    /// Example:
    ///   pilotfish proxy-config endpoint bookinfo-gateway --cluster 'outbound|9080|v2|reviews.local'
    ///   pilotfish proxy-config endpoint bookinfo-gateway --port 9080 --status healthy -o json
    #[command(visible_alias = "endpoints", alias = "ep", verbatim_doc_comment)]
    Endpoint {
        #[command(flatten)]
        source: Source,
        /// Only endpoints of this address (with or without :port).
        #[arg(long)]
        address: Option<String>,
        /// Only endpoints on this port.
        #[arg(long)]
        port: Option<u32>,
        /// Only endpoints of this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Only endpoints of this status (HEALTHY, UNHEALTHY, DRAINING, …).
        #[arg(long)]
        status: Option<String>,
    },
    /// The proxy's secrets (SDS). pilotfish serves none yet: it issues no certificates.
    ///
    /// Example:
    ///   pilotfish proxy-config secret bookinfo-gateway
    #[command(visible_alias = "secrets", alias = "s", verbatim_doc_comment)]
    Secret {
        #[command(flatten)]
        source: Source,
    },
    /// Clusters, listeners, routes and endpoints, one table after the other.
    ///
    /// Example:
    ///   pilotfish proxy-config all bookinfo-gateway
    ///   pilotfish proxy-config all bookinfo-gateway -o json > dump.json
    #[command(verbatim_doc_comment)]
    All {
        #[command(flatten)]
        source: Source,
    },
}

/// Where the dump comes from, and how to print it.
#[derive(Debug, clap::Args)]
struct Source {
    /// The proxy's node id, as `pilotfish status` lists it.
    #[arg(value_name = "PROXY", required_unless_present = "file")]
    proxy: Option<String>,
    /// Read an Envoy config dump from this file instead of asking pilotfish.
    #[arg(short = 'f', long, value_name = "FILE", conflicts_with = "proxy")]
    file: Option<PathBuf>,
    /// The admin address of a running `pilotfish serve`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
    /// Output format: a table (text, also called short, as istioctl), or Envoy's ConfigDump in JSON or YAML.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// Renders the dump in the chosen output, with the chosen subcommand's filters.
type Printer = Box<dyn Fn(&Dump, Output) -> anyhow::Result<String>>;

pub fn run(args: Args) -> anyhow::Result<()> {
    let (source, print): (&Source, Printer) = match &args.what {
        What::Cluster { source, fqdn, port, subset, direction } => {
            let filter =
                ClusterFilter { fqdn: fqdn.clone(), port: *port, subset: subset.clone(), direction: direction.clone() };
            (source, Box::new(move |dump, output| clusters(dump, &filter, output)))
        }
        What::Listener { source, address, port, kind } => {
            let filter = ListenerFilter { address: address.clone(), port: *port, kind: kind.clone() };
            (source, Box::new(move |dump, output| listeners(dump, &filter, output)))
        }
        What::Route { source, name } => {
            let filter = RouteFilter { name: name.clone() };
            (source, Box::new(move |dump, output| routes(dump, &filter, output)))
        }
        What::Endpoint { source, address, port, cluster, status } => {
            let filter = EndpointFilter {
                address: address.clone(),
                port: *port,
                cluster: cluster.clone(),
                status: status.clone(),
            };
            (source, Box::new(move |dump, output| endpoints(dump, &filter, output)))
        }
        What::Secret { source } => (source, Box::new(secrets)),
        What::All { source } => (source, Box::new(all)),
    };
    let dump = load(source)?;
    for problem in &dump.problems {
        eprintln!("pilotfish: skipped a resource of the dump: {problem}");
    }
    print!("{}", print(&dump, source.output)?);
    Ok(())
}

/// The dump of `--file`, or what the proxy runs, from the admin API.
fn load(source: &Source) -> anyhow::Result<Dump> {
    let text = match (&source.file, &source.proxy) {
        (Some(file), _) => {
            std::fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?
        }
        (None, Some(proxy)) => fetch_dump(source.admin_address, proxy, "acked")?,
        (None, None) => bail!("name a proxy (its node id, as `pilotfish status` lists it) or --file"),
    };
    let origin = source.file.as_ref().map_or_else(|| "the admin API's dump".to_owned(), |f| f.display().to_string());
    Dump::read(&text).map_err(|e| anyhow::anyhow!("{origin}: {e}"))
}

/// `/debug/config_dump?proxy=ID&config=…` of a running pilotfish.
pub fn fetch_dump(admin: SocketAddr, proxy: &str, config: &str) -> anyhow::Result<String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let path = format!("/debug/config_dump?proxy={}&config={config}", crate::admin::url_encode(proxy));
    let (status, body) = runtime.block_on(super::http::get(admin, &path))?;
    match status {
        200 => Ok(body),
        _ => bail!("{}", body.trim()),
    }
}

fn structured(value: &Value, output: Output) -> anyhow::Result<String> {
    Ok(match output {
        Output::Yaml => serde_yaml::to_string(value)?,
        _ => format!("{}\n", serde_json::to_string_pretty(value)?),
    })
}

fn entries<T>(chosen: &[&Dumped<T>]) -> Vec<(&'static str, Value)> {
    chosen.iter().map(|d| (d.list, d.entry.clone())).collect()
}

fn clusters(dump: &Dump, filter: &ClusterFilter, output: Output) -> anyhow::Result<String> {
    let chosen: Vec<&Dumped<_>> = dump.clusters.iter().filter(|c| filter.matches(&c.resource)).collect();
    match output {
        Output::Text => Ok(tables::clusters(chosen.iter().map(|c| &c.resource), filter)),
        _ => structured(&dump.write(&[(ResourceType::Cluster, entries(&chosen))]), output),
    }
}

fn listeners(dump: &Dump, filter: &ListenerFilter, output: Output) -> anyhow::Result<String> {
    let chosen: Vec<&Dumped<_>> = dump.listeners.iter().filter(|l| filter.matches(&l.resource)).collect();
    match output {
        Output::Text => Ok(tables::listeners(chosen.iter().map(|l| &l.resource), filter)),
        _ => structured(&dump.write(&[(ResourceType::Listener, entries(&chosen))]), output),
    }
}

fn routes(dump: &Dump, filter: &RouteFilter, output: Output) -> anyhow::Result<String> {
    let chosen: Vec<&Dumped<_>> = dump.routes.iter().filter(|r| filter.matches(&r.resource)).collect();
    match output {
        Output::Text => Ok(tables::routes(chosen.iter().map(|r| &r.resource), filter)),
        _ => structured(&dump.write(&[(ResourceType::Route, entries(&chosen))]), output),
    }
}

fn endpoints(dump: &Dump, filter: &EndpointFilter, output: Output) -> anyhow::Result<String> {
    if !dump.has_endpoints {
        bail!("the dump has no endpoints (Envoy's /config_dump has them only with ?include_eds)");
    }
    match output {
        Output::Text => Ok(tables::endpoints(dump.endpoints.iter().map(|e| &e.resource), filter)),
        _ => {
            // Each assignment cut to the endpoints that match, as istioctl does.
            let mut chosen = Vec::new();
            for dumped in &dump.endpoints {
                let Some(kept) = filter.apply(&dumped.resource) else { continue };
                let mut entry = dumped.entry.clone();
                if kept != dumped.resource {
                    config_dump::replace_resource(&mut entry, ResourceType::Endpoint, reflect::message_to_json(&kept)?);
                }
                chosen.push((dumped.list, entry));
            }
            structured(&dump.write(&[(ResourceType::Endpoint, chosen)]), output)
        }
    }
}

fn secrets(dump: &Dump, output: Output) -> anyhow::Result<String> {
    match output {
        Output::Text if dump.secrets.is_empty() => {
            Ok("no secrets: pilotfish does not serve certificates (SDS) yet, so its proxies get none (see README, \
             What it does not do)\n"
                .to_owned())
        }
        Output::Text => {
            let mut out = String::from("RESOURCE NAME     STATUS\n");
            for (name, list) in &dump.secrets {
                let status = if list.contains("warming") { "WARMING" } else { "ACTIVE" };
                out.push_str(&format!("{name:<18}{status}\n"));
            }
            Ok(out)
        }
        _ => {
            let secrets = dump.secrets_dump.clone().unwrap_or_else(|| json!({ "@type": config_dump::SECRETS_DUMP }));
            structured(&json!({ "configs": [secrets] }), output)
        }
    }
}

fn everything<T>(dumped: &[Dumped<T>]) -> Vec<(&'static str, Value)> {
    dumped.iter().map(|d| (d.list, d.entry.clone())).collect()
}

fn all(dump: &Dump, output: Output) -> anyhow::Result<String> {
    match output {
        Output::Text => {
            let mut sections = vec![
                tables::clusters(dump.clusters.iter().map(|c| &c.resource), &ClusterFilter::default()),
                tables::listeners(dump.listeners.iter().map(|l| &l.resource), &ListenerFilter::default()),
                tables::routes(dump.routes.iter().map(|r| &r.resource), &RouteFilter::default()),
            ];
            if dump.has_endpoints {
                sections
                    .push(tables::endpoints(dump.endpoints.iter().map(|e| &e.resource), &EndpointFilter::default()));
            }
            Ok(sections.join("\n"))
        }
        _ => {
            let mut parts = vec![
                (ResourceType::Cluster, everything(&dump.clusters)),
                (ResourceType::Listener, everything(&dump.listeners)),
                (ResourceType::Route, everything(&dump.routes)),
            ];
            if dump.has_endpoints {
                parts.push((ResourceType::Endpoint, everything(&dump.endpoints)));
            }
            structured(&dump.write(&parts), output)
        }
    }
}
