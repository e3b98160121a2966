//! The `pilotfish` command line: one module per verb; this one parses and dispatches.

mod analyze;
mod bootstrap;
mod crds;
mod explain;
mod http;
mod inject;
mod offline;
mod serve;
mod serve_webhook;
mod status;
mod translate;
mod wait;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// A small, fast control plane that serves xDS to Envoy.
#[derive(Debug, Parser)]
#[command(name = "pilotfish", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr. Filter with RUST_LOG (e.g. RUST_LOG=debug shows every xDS request and response).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    Serve(serve::Args),
    Bootstrap(bootstrap::Args),
    Translate(translate::Args),
    Analyze(analyze::Args),
    Explain(explain::Args),
    Status(status::Args),
    Wait(wait::Args),
    Crds(crds::Args),
    Inject(inject::Args),
}

/// The log filter: `RUST_LOG` (default `info`), where the libraries under pilotfish stay at `info` unless it names
/// them: at `debug`, h2, hyper, tonic and tower print every frame and poll, which buries the xDS exchanges
/// pilotfish logs at that level. kube's client logs every failed request of a retry loop; the Kubernetes source
/// says once what failed and why, so it is off unless named.
fn log_directives(rust_log: Option<&str>) -> String {
    let requested = rust_log.filter(|r| !r.trim().is_empty()).unwrap_or("info");
    let mut directives = requested.to_owned();
    for (library, level) in [
        ("h2", "info"),
        ("hyper", "info"),
        ("hyper_util", "info"),
        ("tonic", "info"),
        ("tower", "info"),
        ("kube_client::client", "off"),
    ] {
        let named = requested.split(',').any(|d| d.trim().split('=').next() == Some(library));
        if !named {
            directives.push_str(&format!(",{library}={level}"));
        }
    }
    directives
}

/// Output formats of the verbs that print data.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Text,
    Yaml,
    Json,
}

/// Runs the command line; errors are printed as one line and give a non-zero exit.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The offline verbs print what they found themselves; the pipeline's log of the same would say it twice.
    let offline = matches!(cli.command, Command::Translate(_) | Command::Analyze(_) | Command::Explain(_));
    init_logging(cli.log_format, if offline { "error" } else { "info" });
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Bootstrap(args) => bootstrap::run(args).map(|()| ExitCode::SUCCESS),
        Command::Translate(args) => translate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Analyze(args) => analyze::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Status(args) => status::run(args).map(|()| ExitCode::SUCCESS),
        Command::Wait(args) => wait::run(args),
        Command::Crds(args) => crds::run(args).map(|()| ExitCode::SUCCESS),
        Command::Inject(args) => inject::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pilotfish: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG").ok().filter(|r| !r.trim().is_empty());
    let filter = EnvFilter::new(log_directives(Some(rust_log.as_deref().unwrap_or(default_level))));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_logs_are_pilotfish_s_own_unless_a_library_is_named() {
        assert!(log_directives(Some("debug")).starts_with("debug,h2=info,hyper=info"));
        assert_eq!(
            log_directives(None),
            "info,h2=info,hyper=info,hyper_util=info,tonic=info,tower=info,kube_client::client=off"
        );
        assert!(
            log_directives(Some("debug,h2=trace")).contains("h2=trace")
                && !log_directives(Some("debug,h2=trace")).contains("h2=info")
        );
    }
}
