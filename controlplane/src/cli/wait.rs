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
///      does not read or is invalid keeps its last valid version); the errors are printed
///   2  a proxy rejected the latest configuration (NACK); Envoy's message is printed
///   1  the timeout passed (or the admin address did not answer)
///
/// Example:
///   pilotfish wait --all --timeout 10s && curl -s 127.0.0.1:8080/
///   pilotfish wait --proxy ingress-1
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
    /// The admin address of a running `pilotfish serve`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
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
            Ok(syncz) => match verdict(&syncz, args.proxy.as_deref()) {
                Verdict::Synced => {
                    let errors = config_errors(&syncz);
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

/// The errors of the configuration served, as `/debug/syncz` lists them.
fn config_errors(syncz: &Value) -> Vec<String> {
    let errors = syncz["config"]["errors"].as_array().cloned().unwrap_or_default();
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
