//! `pilotfish proxy-status`: which proxies run the latest configuration, and for one proxy, how what it runs
//! differs from what pilotfish serves it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::bail;
use api_protos::ResourceType;
use serde_json::Value;

use super::config_dump::{Dump, Dumped, resource_json};
use super::http::get_json;
use super::proxy_config::fetch_dump;

/// Show whether proxies run the latest configuration, like `istioctl proxy-status`.
///
/// Without PROXY: the table of `pilotfish status` (per proxy and type: SYNCED, STALE, NOT SENT, NACKED).
///
/// With PROXY: per type, whether what pilotfish serves the proxy now (the latest configuration of its class) and
/// what the proxy runs (what it ACKed) are the same, and where they are not, a unified diff of the two in Envoy's
/// JSON: `-` lines are only in what pilotfish serves, `+` lines only in what the proxy runs. istioctl
/// proxy-status POD diffs istiod's view and Envoy's the same way. They differ while a push is in flight, while a
/// route waits for its clusters to warm (make-before-break), and after a NACK (the proxy keeps what it last
/// accepted; the diff shows what it refused).
///
/// Exit status: 0 when every type matches (and without PROXY), 1 when one does not.
///
/// Example:
///   pilotfish proxy-status
///   pilotfish proxy-status bookinfo-gateway
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The proxy's node id, as `pilotfish status` lists it.
    #[arg(value_name = "PROXY")]
    proxy: Option<String>,
    /// The admin address of a running `pilotfish serve`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let syncz = runtime.block_on(get_json(args.admin_address, "/debug/syncz"))?;
    let Some(proxy) = &args.proxy else {
        print!("{}", super::status::table(&syncz));
        return Ok(ExitCode::SUCCESS);
    };
    let proxies = syncz["proxies"].as_array().cloned().unwrap_or_default();
    let Some(entry) = proxies.iter().find(|p| p["node_id"] == proxy.as_str()) else {
        let connected: Vec<&str> = proxies.iter().filter_map(|p| p["node_id"].as_str()).collect();
        let connected = if connected.is_empty() { "none".to_owned() } else { connected.join(", ") };
        bail!("no connected proxy with node id {proxy:?} (connected: {connected})");
    };
    let read = |config: &str| -> anyhow::Result<Dump> {
        Dump::read(&fetch_dump(args.admin_address, proxy, config)?).map_err(anyhow::Error::msg)
    };
    let (served, running) = (read("latest")?, read("acked")?);
    let comparison = compare(&served, &running, entry, proxy);
    print!("{}", comparison.text);
    Ok(if comparison.all_match { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The comparison of what is served and what runs, type by type.
#[derive(Debug)]
pub struct Comparison {
    pub text: String,
    pub all_match: bool,
}

/// Compares per type (clusters, listeners, routes, endpoints); `status` is the proxy's entry of `/debug/syncz`.
pub fn compare(served: &Dump, running: &Dump, status: &Value, proxy: &str) -> Comparison {
    let sotw = status["protocol"] == "SOTW";
    let mut text = String::new();
    let mut all_match = true;
    for (kind, title) in [
        (ResourceType::Cluster, "Clusters"),
        (ResourceType::Listener, "Listeners"),
        (ResourceType::Route, "Routes"),
        (ResourceType::Endpoint, "Endpoints"),
    ] {
        let wanted = resources(served, kind);
        let mut runs = resources(running, kind);
        // A SotW proxy keeps a route table or an endpoint assignment it no longer needs until it unsubscribes
        // from it (SotW cannot remove a named resource): that is no difference in what it runs.
        let mut unused = 0;
        if sotw && !kind.is_wildcard() {
            let before = runs.len();
            runs.retain(|name, _| wanted.contains_key(name));
            unused = before - runs.len();
        }
        let diff = unified_diff(&wanted, &runs, &format!("pilotfish {title}"), &format!("{proxy} {title}"));
        let state = type_state(status, kind);
        if diff.is_empty() {
            text.push_str(&format!("{title} Match{state}\n"));
        } else {
            all_match = false;
            text.push_str(&format!("{title} Don't Match{state}\n{diff}"));
        }
        if unused > 0 {
            text.push_str(&format!(
                "  (the proxy also keeps {unused} {} it no longer uses: SotW cannot remove them)\n",
                title.to_lowercase()
            ));
        }
    }
    Comparison { text, all_match }
}

/// `" (RDS NACKED: message)"`, from `/debug/syncz`.
fn type_state(status: &Value, kind: ResourceType) -> String {
    let entry = status["types"].as_array().and_then(|types| types.iter().find(|t| t["type"] == kind.short_name()));
    let Some(entry) = entry else { return format!(" ({} NOT SENT)", kind.short_name()) };
    let state = entry["status"].as_str().unwrap_or_default();
    match entry["nack"]["message"].as_str() {
        Some(message) => format!(" ({} {state}: {})", kind.short_name(), super::status::summary(message)),
        None => format!(" ({} {state})", kind.short_name()),
    }
}

/// The resources of one type, by name, in Envoy's JSON.
fn resources(dump: &Dump, kind: ResourceType) -> BTreeMap<String, Value> {
    fn named<T>(dumped: &[Dumped<T>], kind: ResourceType, name: impl Fn(&T) -> &str) -> BTreeMap<String, Value> {
        dumped
            .iter()
            .filter(|d| d.list.starts_with("dynamic"))
            .filter_map(|d| Some((name(&d.resource).to_owned(), resource_json(&d.entry, kind)?.clone())))
            .collect()
    }
    match kind {
        ResourceType::Cluster => named(&dump.clusters, kind, |c| &c.name),
        ResourceType::Listener => named(&dump.listeners, kind, |l| &l.name),
        ResourceType::Route => named(&dump.routes, kind, |r| &r.name),
        ResourceType::Endpoint => named(&dump.endpoints, kind, |e| &e.cluster_name),
    }
}

/// A unified diff (3 lines of context) of two sets of resources as pretty JSON lists; empty when they are equal.
pub fn unified_diff(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>, a_name: &str, b_name: &str) -> String {
    if a == b {
        return String::new();
    }
    let text = |set: &BTreeMap<String, Value>| {
        let list: Vec<&Value> = set.values().collect();
        format!("{}\n", serde_json::to_string_pretty(&list).unwrap_or_default())
    };
    let (a_text, b_text) = (text(a), text(b));
    similar::TextDiff::from_lines(&a_text, &b_text).unified_diff().context_radius(3).header(a_name, b_name).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn dump(routes: &[(&str, &str)]) -> Dump {
        let entries: Vec<Value> = routes
            .iter()
            .map(|(name, cluster)| {
                json!({"version_info": "1", "route_config": {
                    "@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
                    "name": name,
                    "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": cluster}}]}],
                }})
            })
            .collect();
        let text = json!({"configs": [
            {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": entries},
        ]});
        Dump::read(&text.to_string()).unwrap_or_default()
    }

    fn status(protocol: &str, rds: &str) -> Value {
        json!({"protocol": protocol, "types": [
            {"type": "CDS", "status": "SYNCED"}, {"type": "LDS", "status": "SYNCED"},
            {"type": "RDS", "status": rds, "nack": if rds == "NACKED" { json!({"message": "x\n: bad regex"}) } else { Value::Null }},
        ]})
    }

    #[test]
    fn a_nacked_route_shows_as_a_diff_of_what_was_refused() {
        let served = dump(&[("http.8080", "outbound|9080|v2|reviews.local")]);
        let running = dump(&[("http.8080", "outbound|9080|v1|reviews.local")]);
        let comparison = compare(&served, &running, &status("SOTW", "NACKED"), "ingress");
        assert!(!comparison.all_match);
        let text = comparison.text;
        assert!(text.contains("Clusters Match (CDS SYNCED)\n"), "{text}");
        assert!(
            text.contains("Routes Don't Match (RDS NACKED: bad regex)\n--- pilotfish Routes\n+++ ingress Routes\n"),
            "{text}"
        );
        assert!(text.contains("\n-") && text.contains("outbound|9080|v2|reviews.local"), "{text}");
        assert!(text.contains("\n+") && text.contains("outbound|9080|v1|reviews.local"), "{text}");
        assert!(text.contains("Endpoints Match (EDS NOT SENT)"), "{text}");
    }

    #[test]
    fn route_tables_a_sotw_proxy_keeps_unused_are_no_difference() {
        let served = dump(&[("http.8080", "a")]);
        let running = dump(&[("http.8080", "a"), ("http.9090", "b")]);
        let sotw = compare(&served, &running, &status("SOTW", "SYNCED"), "p");
        assert!(sotw.all_match, "{}", sotw.text);
        assert!(sotw.text.contains("keeps 1 routes it no longer uses"), "{}", sotw.text);
        let delta = compare(&served, &running, &status("DELTA", "SYNCED"), "p");
        assert!(!delta.all_match && delta.text.contains("+++ p Routes"), "{}", delta.text);
    }
}
