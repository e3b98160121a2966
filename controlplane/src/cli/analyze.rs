//! `pilotfish analyze`: Istio-style diagnostics for configuration, from files or from the live cluster.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use translator::{Diagnostic, Severity};

use super::offline::Offline;

/// Check configuration and report problems with istioctl-analyze codes (IST0101, …).
///
/// With -f, the files of PATH are analysed, offline. Without -f, the live cluster is, like `istioctl analyze`:
/// pilotfish reads it through the kubeconfig (in-cluster service account, else $KUBECONFIG or ~/.kube/config), lists
/// the kinds `pilotfish serve --kubernetes` watches in every namespace (a route may point at another namespace's
/// Service) and reports on one namespace: -n NS, else the kubeconfig context's namespace; -A reports on all.
/// It reads the cluster, not a running pilotfish's admin API: it works with no pilotfish running or reachable,
/// it sees what the cluster holds now rather than what a pilotfish kept as last valid, and it needs only read
/// access (list on Services, EndpointSlices, Pods and the Istio kinds).
///
/// Exit status: 0 without errors (and, with --strict, without warnings), 1 for warnings under --strict (and when
/// the input cannot be read at all), 2 for errors. Every message names the object (kind namespace/name), the field
/// and, for files, where it was read.
///
/// Example:
///   pilotfish analyze -f examples/bookinfo-local/base
///   pilotfish analyze -f reviews.yaml --strict -o json
///   pilotfish analyze -n bookinfo
///   pilotfish analyze -A --context kind-pilotfish
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// A YAML/JSON file or a directory of them; without it, the live cluster is analysed.
    #[arg(short = 'f', long = "filename", value_name = "PATH")]
    path: Option<PathBuf>,
    /// Report on this namespace only (default: every namespace of the files; the kubeconfig context's namespace in
    /// the live cluster).
    #[arg(short = 'n', long, value_name = "NS")]
    namespace: Option<String>,
    /// Report on every namespace of the live cluster.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    all_namespaces: bool,
    /// The live cluster's kubeconfig file (default: in-cluster service account, else $KUBECONFIG or ~/.kube/config).
    #[arg(long, value_name = "FILE", conflicts_with = "path")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME", conflicts_with = "path")]
    context: Option<String>,
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
    let (offline, mut read_diagnostics, scope) = match &args.path {
        Some(path) => {
            let scope = match &args.namespace {
                Some(namespace) => format!("{} (namespace {namespace})", path.display()),
                None => path.display().to_string(),
            };
            (Offline::load(path)?, Vec::new(), Scope { namespace: args.namespace.clone(), text: scope })
        }
        None => live(&args)?,
    };
    let mut all: Vec<Diagnostic> = offline.diagnostics.clone();
    all.append(&mut read_diagnostics);
    for class in offline.representative_classes() {
        all.extend(offline.snapshot(&class)?.1);
    }
    // Only the namespace reported on; problems that belong to no object (a kind not installed) always show.
    if let Some(namespace) = &scope.namespace {
        all.retain(|d| d.object.as_ref().is_none_or(|object| &object.namespace == namespace));
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
                println!("✔ no problems found in {}", scope.text);
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

/// Which diagnostics are reported, and how the "no problems" line names it.
struct Scope {
    namespace: Option<String>,
    text: String,
}

/// The live cluster, read through the kubeconfig (see `crate::live`).
fn live(args: &Args) -> anyhow::Result<(Offline, Vec<Diagnostic>, Scope)> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (client, context_namespace) = crate::live::client(args.kubeconfig.as_deref(), args.context.as_deref())
            .await
            .context("cannot read the live cluster (pass -f PATH to analyse files)")?;
        let namespace = match (&args.namespace, args.all_namespaces) {
            (_, true) => None,
            (Some(namespace), false) => Some(namespace.clone()),
            (None, false) => Some(context_namespace),
        };
        if let Some(namespace) = &namespace
            && !crate::live::namespace_exists(&client, namespace).await?
        {
            anyhow::bail!("namespace {namespace} not found in the cluster");
        }
        let read = crate::live::read(&client).await?;
        let text = match &namespace {
            Some(namespace) => format!("namespace {namespace} of the cluster"),
            None => "every namespace of the cluster".to_owned(),
        };
        Ok((Offline::from_inputs(read.inputs, Vec::new())?, read.diagnostics, Scope { namespace, text }))
    })
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
