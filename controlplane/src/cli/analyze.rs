//! `pilotfish analyze`: Istio-style diagnostics for configuration, offline.

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::json;
use translator::{Diagnostic, Severity};

use super::offline::Offline;

/// Check configuration and report problems with istioctl-analyze codes (IST0101, …).
///
/// Exit status: 0 without errors (and, with --strict, without warnings), 1 for warnings under --strict, 2 for
/// errors. Every message names the object (kind namespace/name), the field and where it was read.
///
/// Example:
///   pilotfish analyze -f examples/bookinfo-local/base
///   pilotfish analyze -f reviews.yaml --strict -o json
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A YAML/JSON file or a directory of them.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    path: PathBuf,
    /// Warnings fail too (exit 1).
    #[arg(long)]
    strict: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = super::Output::Text)]
    output: super::Output,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let offline = Offline::load(&args.path)?;
    let mut all: Vec<Diagnostic> = offline.diagnostics.clone();
    for class in offline.representative_classes() {
        all.extend(offline.snapshot(&class)?.1);
    }
    let all = translator::diagnostics::sorted(all);
    let errors = all.iter().filter(|d| d.severity == Severity::Error).count();
    let warnings = all.iter().filter(|d| d.severity == Severity::Warning).count();
    match args.output {
        super::Output::Json => println!("{}", serde_json::to_string_pretty(&json!({ "diagnostics": all }))?),
        super::Output::Yaml => print!("{}", serde_yaml::to_string(&json!({ "diagnostics": all }))?),
        super::Output::Text => {
            for diagnostic in &all {
                println!("{diagnostic}");
            }
            if all.is_empty() {
                println!("✔ no problems found in {}", args.path.display());
            } else {
                println!("{errors} error(s), {warnings} warning(s), {} info", all.len() - errors - warnings);
            }
        }
    }
    Ok(if errors > 0 {
        ExitCode::from(2)
    } else if warnings > 0 && args.strict {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
