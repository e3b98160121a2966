//! The `pilotfish` binary: see `pilotfish --help`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    controlplane::cli::main()
}
