//! `pilotfish status`: one row per connected proxy, like `istioctl proxy-status`.

use std::net::SocketAddr;

use serde_json::Value;

use super::http::get_json;

/// Show every connected proxy and, per type, whether it runs the latest config.
///
/// CDS/EDS/LDS/RDS columns: SYNCED (ACKed the latest), STALE (behind, or a response in flight), NOT SENT, NACKED
/// (rejected the latest; Envoy's message follows the table). Below: the errors of the configuration served, when it
/// has any (what was written and is not served as written; `/debug/inputs` has every diagnostic).
///
/// Example:
///   pilotfish status
///   pilotfish status --admin-address 127.0.0.1:15014 -o json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The admin address of a running `pilotfish serve`.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15014")]
    admin_address: SocketAddr,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = super::Output::Text)]
    output: super::Output,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let syncz = runtime.block_on(get_json(args.admin_address, "/debug/syncz"))?;
    match args.output {
        super::Output::Json => println!("{}", serde_json::to_string_pretty(&syncz)?),
        super::Output::Yaml => print!("{}", serde_yaml::to_string(&syncz)?),
        super::Output::Text => print!("{}", table(&syncz)),
    }
    Ok(())
}

/// The status table, with NACK messages and the configuration's errors below it.
pub fn table(syncz: &Value) -> String {
    let mut out = proxy_table(syncz);
    let errors = syncz["config"]["errors"].as_array().cloned().unwrap_or_default();
    let advisory = syncz["config"]["advisory"].as_array().cloned().unwrap_or_default();
    let warnings = syncz["config"]["warnings"].as_u64().unwrap_or_default();
    if !errors.is_empty() || !advisory.is_empty() {
        out.push_str(&format!(
            "\nconfiguration: {} error(s), {} analysis error(s) (served as written), {warnings} warning(s)\n",
            errors.len(),
            advisory.len()
        ));
        for error in errors.iter().chain(&advisory) {
            out.push_str(&format!("  {}\n", text(error)));
        }
    } else if warnings > 0 {
        out.push_str(&format!("\nconfiguration: {warnings} warning(s) (see /debug/inputs or pilotfish analyze)\n"));
    }
    out
}

fn proxy_table(syncz: &Value) -> String {
    let proxies = syncz["proxies"].as_array().cloned().unwrap_or_default();
    if proxies.is_empty() {
        return "no proxies connected\n".to_owned();
    }
    let mut rows = vec![["NAME", "CLASS", "PROTOCOL", "CDS", "EDS", "LDS", "RDS"].map(str::to_owned).to_vec()];
    let mut nacks = Vec::new();
    for proxy in &proxies {
        let node = proxy["node_id"].as_str().unwrap_or_default().to_owned();
        let mut row = vec![node.clone(), text(&proxy["class"]), text(&proxy["protocol"])];
        for kind in ["CDS", "EDS", "LDS", "RDS"] {
            let entry = proxy["types"].as_array().and_then(|types| types.iter().find(|t| t["type"] == kind));
            let status = entry.map(|t| text(&t["status"])).unwrap_or_else(|| "NOT SENT".to_owned());
            let requested = entry.is_some_and(|t| t["requested"].as_bool().unwrap_or(false));
            row.push(if requested { status } else { "-".to_owned() });
            if let Some(nack) = entry.map(|t| &t["nack"]).filter(|n| !n.is_null()) {
                nacks.push(format!("{node} {kind} NACKED: {}", summary(&text(&nack["message"]))));
            }
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for nack in nacks {
        out.push_str(&nack);
        out.push('\n');
    }
    out
}

/// Envoy's NACK messages can hold a dump of the whole resource; the table shows the line that says what is wrong
/// (`/debug/syncz` keeps the full text).
pub fn summary(message: &str) -> String {
    let lines: Vec<&str> = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let line = match lines.as_slice() {
        [] => "",
        [only] => only,
        [.., last] => last.trim_start_matches(": ").trim_start_matches(':').trim(),
    };
    const MAX: usize = 300;
    if line.len() > MAX {
        let mut end = MAX;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &line[..end])
    } else {
        line.to_owned()
    }
}

fn text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_follow_the_table() {
        let syncz = serde_json::json!({
            "proxies": [],
            "config": {"errors": ["error VirtualService default/reviews spec.http[0]: bad (at r.yaml:7:5)"], "warnings": 2},
        });
        let table = table(&syncz);
        assert!(
            table.contains("configuration: 1 error(s), 0 analysis error(s) (served as written), 2 warning(s)"),
            "{table}"
        );
        assert!(table.contains("  error VirtualService default/reviews"), "{table}");
    }

    #[test]
    fn a_nack_dump_is_summarised_by_its_last_line() {
        let message = "goo.gle/debugstr\nname: \"c\"\nconnect_timeout {\n}\n: Proto constraint validation failed (ClusterValidationError.ConnectTimeout: value must be greater than 0s)";
        assert_eq!(
            summary(message),
            "Proto constraint validation failed (ClusterValidationError.ConnectTimeout: value must be greater than 0s)"
        );
        assert_eq!(summary("missing ): (unclosed"), "missing ): (unclosed");
    }
}
