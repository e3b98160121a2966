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
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Command::Bootstrap(args) => bootstrap::run(args).map(|()| ExitCode::SUCCESS),
        Command::Translate(args) => translate::run(args).map(|()| ExitCode::SUCCESS),
        Command::Analyze(args) => analyze::run(args),
        Command::Explain(args) => explain::run(args).map(|()| ExitCode::SUCCESS),
        Command::Status(args) => status::run(args).map(|()| ExitCode::SUCCESS),
        Command::Wait(args) => wait::run(args).map(|()| ExitCode::SUCCESS),
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

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    // kube's client logs every failed request of a retry loop; the Kubernetes source says once what failed and why.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,kube_client::client=off"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
