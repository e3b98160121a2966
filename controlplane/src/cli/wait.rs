//! `pilotfish wait`: block until proxies run the latest configuration, for scripts and test suites.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::Value;

use super::http::get_json;

const POLL: Duration = Duration::from_millis(50);

/// Wait until proxies have ACKed the latest configuration (instead of `sleep` in test scripts).
///
/// Exit status, once the proxies have ACKed (or earlier, for a rejection):
///   0  synced, and everything written is served
///   3  synced, but the configuration has errors: something written is not served as written (an object that
///      does not read or is invalid keeps its last valid version); the errors are printed. Analysis errors (a
///      route to a host that does not exist, as `istioctl analyze` reports them) are printed too, and exit 0:
///      what they point at is served as written, as Istio serves it
///   2  a proxy rejected the latest configuration (NACK); Envoy's message is printed
///   1  the timeout passed (or the admin address did not answer)
///
/// With --for KIND/NAME[.NAMESPACE] (as `istioctl x wait`), it waits too until that object is in the configuration
/// served (read, and valid or kept at its last valid version), and then until the proxies run that configuration:
/// pilotfish does not track which proxies a given object reaches, so it waits for all of them (or --proxy), which
/// is never too early. KIND is the kind or its short name (virtualservice or vs, destinationrule or dr, gateway or
/// gw, serviceentry or se, service or svc, endpointslice, pod); NAMESPACE defaults to default and is what follows
/// the last dot, as istioctl reads it.
///
/// Example:
///   pilotfish wait --all --timeout 10s && curl -s 127.0.0.1:8080/
///   pilotfish wait --proxy ingress-1
///   pilotfish wait --for virtualservice/reviews.default
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Wait for this proxy (node id); it must connect within the timeout.
    #[arg(long, value_name = "ID", conflicts_with = "all")]
    proxy: Option<String>,
    /// Wait for every connected proxy (at least one must be connected). The default.
    #[arg(long)]
    all: bool,
    /// Give up after this long (e.g. 500ms, 10s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_timeout)]
    timeout: Duration,
    /// Also wait until this object is served: KIND/NAME[.NAMESPACE], e.g. vs/reviews.default.
    #[arg(long = "for", value_name = "KIND/NAME[.NS]", value_parser = parse_object)]
    object: Option<ObjectSpec>,
    /// The admin address of a running `pilotfish serve`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
}

/// An object `--for` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// As `/debug/inputs` names kinds: `VirtualService`.
    kind: &'static str,
    name: String,
    namespace: String,
}

impl std::fmt::Display for ObjectSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// The kinds translation reads, with the names and short names kubectl and istioctl take for them.
const KINDS: &[(&str, &[&str])] = &[
    ("VirtualService", &["virtualservice", "virtualservices", "vs"]),
    ("DestinationRule", &["destinationrule", "destinationrules", "dr"]),
    ("Gateway", &["gateway", "gateways", "gw"]),
    ("ServiceEntry", &["serviceentry", "serviceentries", "se"]),
    ("Service", &["service", "services", "svc"]),
    ("EndpointSlice", &["endpointslice", "endpointslices"]),
    ("Pod", &["pod", "pods", "po"]),
];

fn parse_object(text: &str) -> Result<ObjectSpec, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| format!("{text:?}: expected KIND/NAME[.NAMESPACE]"))?;
    // `virtualservices.networking.istio.io` is the kind too.
    let short = kind.split('.').next().unwrap_or_default().to_ascii_lowercase();
    let kind =
        KINDS.iter().find(|(_, names)| names.contains(&short.as_str())).map(|(kind, _)| *kind).ok_or_else(|| {
            let known: Vec<&str> = KINDS.iter().map(|(_, names)| names[0]).collect();
            format!("unknown kind {kind:?}: expected one of {}", known.join(", "))
        })?;
    let (name, namespace) = match name.rsplit_once('.') {
        Some((name, namespace)) => (name, namespace),
        None => (name, "default"),
    };
    if name.is_empty() || namespace.is_empty() {
        return Err(format!("{text:?}: expected KIND/NAME[.NAMESPACE]"));
    }
    Ok(ObjectSpec { kind, name: name.to_owned(), namespace: namespace.to_owned() })
}

/// Whether `/debug/inputs` lists the object.
fn served(inputs: &Value, object: &ObjectSpec) -> bool {
    inputs["objects"].as_array().into_iter().flatten().any(|o| {
        o["kind"] == object.kind && o["name"] == object.name.as_str() && o["namespace"] == object.namespace.as_str()
    })
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    translator::duration::parse_duration(text)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(wait(args))
}

/// What the proxies' state says about waiting.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Synced,
    Waiting(String),
    Rejected(String),
}

/// A proxy rejected the latest configuration.
const REJECTED: u8 = 2;
/// The proxies run the latest configuration, which has errors.
const CONFIG_ERRORS: u8 = 3;

async fn wait(args: Args) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + args.timeout;
    loop {
        let last = match get_json(args.admin_address, "/debug/syncz").await {
            // `/debug/syncz` has caught up with the sources, so the inputs read after it hold the latest edit.
            Ok(syncz) => match object_verdict(args.admin_address, args.object.as_ref())
                .await
                .unwrap_or_else(|| verdict(&syncz, args.proxy.as_deref()))
            {
                Verdict::Synced => {
                    let advisory = config_list(&syncz, "advisory");
                    if !advisory.is_empty() {
                        // Served as written, as Istio would: said, not a failure.
                        eprintln!(
                            "pilotfish: synced; analysis reports {} problem(s) with what is served:",
                            advisory.len()
                        );
                        for problem in &advisory {
                            eprintln!("  {problem}");
                        }
                    }
                    let errors = config_list(&syncz, "errors");
                    if errors.is_empty() {
                        return Ok(ExitCode::SUCCESS);
                    }
                    eprintln!("pilotfish: synced, but the configuration has {} error(s):", errors.len());
                    for error in errors {
                        eprintln!("  {error}");
                    }
                    return Ok(ExitCode::from(CONFIG_ERRORS));
                }
                Verdict::Rejected(message) => {
                    eprintln!("pilotfish: {message}");
                    return Ok(ExitCode::from(REJECTED));
                }
                Verdict::Waiting(why) => why,
            },
            Err(err) => format!("{err:#}"),
        };
        if Instant::now() >= deadline {
            bail!("timed out after {:?}: {last}", args.timeout);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `Some(Waiting)` while `object` is not in the configuration served.
async fn object_verdict(admin: SocketAddr, object: Option<&ObjectSpec>) -> Option<Verdict> {
    let object = object?;
    match get_json(admin, "/debug/inputs").await {
        Ok(inputs) if served(&inputs, object) => None,
        Ok(_) => Some(Verdict::Waiting(format!("{object} is not in the configuration served"))),
        Err(err) => Some(Verdict::Waiting(format!("{err:#}"))),
    }
}

/// A list of the configuration served, as `/debug/syncz` has it (`errors`, `advisory`).
fn config_list(syncz: &Value, key: &str) -> Vec<String> {
    let errors = syncz["config"][key].as_array().cloned().unwrap_or_default();
    errors.iter().map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned)).collect()
}

/// Decides from `/debug/syncz` whether the proxies (one, or all) are synced.
pub fn verdict(syncz: &Value, proxy: Option<&str>) -> Verdict {
    let proxies = syncz["proxies"].as_array().cloned().unwrap_or_default();
    let targets: Vec<&Value> = match proxy {
        Some(id) => proxies.iter().filter(|p| p["node_id"] == id).collect(),
        None => proxies.iter().collect(),
    };
    if targets.is_empty() {
        return Verdict::Waiting(match proxy {
            Some(id) => format!("proxy {id} is not connected"),
            None => "no proxy is connected".to_owned(),
        });
    }
    for target in &targets {
        let node = target["node_id"].as_str().unwrap_or_default();
        // A NACK counts only once the proxy's stream works from the latest configuration.
        if target["snapshot_version"] != target["latest_snapshot_version"] {
            continue;
        }
        for kind in target["types"].as_array().into_iter().flatten() {
            if let Some(message) = kind["nack"]["message"].as_str() {
                return Verdict::Rejected(format!(
                    "proxy {node} rejected the latest {} config: {}",
                    kind["type"].as_str().unwrap_or_default(),
                    super::status::summary(message)
                ));
            }
        }
    }
    match targets.iter().find(|t| !t["synced"].as_bool().unwrap_or(false)) {
        Some(behind) => {
            Verdict::Waiting(format!("proxy {} is not synced yet", behind["node_id"].as_str().unwrap_or_default()))
        }
        None => Verdict::Synced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn proxy(id: &str, synced: bool, nack: Option<&str>) -> Value {
        json!({
            "node_id": id,
            "synced": synced,
            "snapshot_version": "1",
            "latest_snapshot_version": "1",
            "types": [{"type": "RDS", "nack": nack.map(|m| json!({"message": m}))}],
        })
    }

    #[test]
    fn objects_are_named_as_kubectl_and_istioctl_name_them() {
        let reviews = ObjectSpec { kind: "VirtualService", name: "reviews".into(), namespace: "default".into() };
        assert_eq!(parse_object("virtualservice/reviews.default"), Ok(reviews.clone()));
        assert_eq!(parse_object("vs/reviews"), Ok(reviews.clone()));
        assert_eq!(parse_object("VirtualService/reviews"), Ok(reviews.clone()));
        assert_eq!(parse_object("virtualservices.networking.istio.io/reviews.default"), Ok(reviews));
        // The namespace is what follows the last dot, as istioctl reads it.
        let entry = parse_object("se/reviews.local.mesh").map(|o| (o.kind, o.name, o.namespace));
        assert_eq!(entry, Ok(("ServiceEntry", "reviews.local".to_owned(), "mesh".to_owned())));
        assert!(parse_object("virtualservise/reviews").is_err_and(|e| e.contains("unknown kind")));
        assert!(parse_object("reviews").is_err());
        assert!(parse_object("vs/reviews.").is_err());
    }

    #[test]
    fn an_object_is_served_when_the_inputs_list_it() {
        let inputs = json!({"objects": [{"kind": "VirtualService", "namespace": "default", "name": "reviews"}]});
        let wanted = |text: &str| parse_object(text).map(|o| served(&inputs, &o));
        assert_eq!(wanted("vs/reviews"), Ok(true));
        assert_eq!(wanted("vs/reviews.other"), Ok(false));
        assert_eq!(wanted("dr/reviews"), Ok(false));
    }

    #[test]
    fn waits_for_connection_then_sync_and_reports_rejections() {
        assert!(matches!(verdict(&json!({"proxies": []}), None), Verdict::Waiting(_)));
        let one = json!({"proxies": [proxy("a", false, None), proxy("b", true, None)]});
        assert_eq!(verdict(&one, Some("b")), Verdict::Synced);
        assert!(matches!(verdict(&one, None), Verdict::Waiting(w) if w.contains("proxy a")));
        assert!(matches!(verdict(&one, Some("c")), Verdict::Waiting(w) if w.contains("not connected")));
        let rejected = json!({"proxies": [proxy("a", false, Some("missing ): (x"))]});
        assert!(
            matches!(verdict(&rejected, None), Verdict::Rejected(m) if m.contains("missing ): (x") && m.contains("RDS"))
        );
    }
}
