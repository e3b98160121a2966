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
    /// The lowest severity that fails, as istioctl's flag: Error (the default), Warning (as --strict) or Info.
    /// Errors exit 2, anything else at or above it 1.
    #[arg(long, value_name = "LEVEL", value_parser = parse_severity, conflicts_with = "strict")]
    failure_threshold: Option<Severity>,
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
    let threshold = args.failure_threshold.unwrap_or(if args.strict { Severity::Warning } else { Severity::Error });
    Ok(exit_code(&all, threshold))
}

/// 2 for errors, 1 for anything else at or above `threshold` (`Error` is the most severe), else 0.
fn exit_code(diagnostics: &[Diagnostic], threshold: Severity) -> ExitCode {
    let worst = diagnostics.iter().map(|d| d.severity).min();
    match worst {
        Some(Severity::Error) => ExitCode::from(2),
        Some(worst) if worst <= threshold => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

/// istioctl's level names, in any case.
fn parse_severity(text: &str) -> Result<Severity, String> {
    match text.to_ascii_lowercase().as_str() {
        "error" => Ok(Severity::Error),
        "warning" => Ok(Severity::Warning),
        "info" => Ok(Severity::Info),
        _ => Err(format!("{text:?}: expected Info, Warning or Error")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_threshold_decides_what_fails_and_errors_always_do() {
        let of = |severity| Diagnostic { severity, ..Diagnostic::error("x") };
        let code = |diagnostics: &[Diagnostic], threshold| exit_code(diagnostics, threshold);
        assert_eq!(code(&[of(Severity::Info)], Severity::Error), ExitCode::SUCCESS);
        assert_eq!(code(&[of(Severity::Warning)], Severity::Error), ExitCode::SUCCESS);
        assert_eq!(code(&[of(Severity::Warning)], Severity::Warning), ExitCode::from(1));
        assert_eq!(code(&[of(Severity::Info)], Severity::Warning), ExitCode::SUCCESS);
        assert_eq!(code(&[of(Severity::Info)], Severity::Info), ExitCode::from(1));
        assert_eq!(code(&[of(Severity::Info), of(Severity::Error)], Severity::Error), ExitCode::from(2));
        assert_eq!(code(&[], Severity::Info), ExitCode::SUCCESS);
        assert_eq!(parse_severity("warning"), Ok(Severity::Warning));
        assert_eq!(parse_severity("Info"), Ok(Severity::Info));
        assert!(parse_severity("fatal").is_err());
    }
}
