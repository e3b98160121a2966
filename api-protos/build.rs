//! Finds the protobuf descriptor set that the `envoy-types` crate ships (`src/generated/types.bin`, written by
//! the same protoc run that generated its Rust types) so this crate can embed it for reflection: canonical
//! encoding and Envoy-JSON rendering. The crate does not export it, so we ask Cargo where the package lives.
//!
//! `PILOTFISH_ENVOY_DESCRIPTORS` overrides the lookup (e.g. for vendored builds).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const ENVOY_TYPES: &str = "envoy-types";
const DESCRIPTORS_IN_CRATE: &str = "src/generated/types.bin";

fn main() {
    println!("cargo:rerun-if-env-changed=PILOTFISH_ENVOY_DESCRIPTORS");
    println!("cargo:rerun-if-changed=build.rs");
    let path = match env::var_os("PILOTFISH_ENVOY_DESCRIPTORS") {
        Some(path) => PathBuf::from(path),
        None => locate_envoy_types().join(DESCRIPTORS_IN_CRATE),
    };
    if !path.is_file() {
        panic!("failed to find the envoy-types descriptor set at {}", path.display());
    }
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=PILOTFISH_ENVOY_DESCRIPTORS={}", path.display());
}

/// The source directory of the `envoy-types` package this build resolved to.
fn locate_envoy_types() -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform"])
        .arg(env::var("TARGET").expect("cargo sets TARGET"))
        .current_dir(&manifest_dir)
        .output()
        .expect("failed to run cargo metadata");
    if !output.status.success() {
        panic!("failed to run cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let expected_version = env::var("DEP_ENVOY_TYPES_VERSION").ok();
    let packages = metadata["packages"].as_array().expect("cargo metadata lists packages");
    let mut found: Vec<&serde_json::Value> = packages.iter().filter(|p| p["name"] == ENVOY_TYPES).collect();
    if let Some(version) = expected_version {
        found.retain(|p| p["version"] == version.as_str());
    }
    match found.as_slice() {
        [package] => {
            let manifest = package["manifest_path"].as_str().expect("packages have a manifest_path");
            Path::new(manifest).parent().expect("a manifest lives in a directory").to_path_buf()
        }
        [] => panic!("failed to find the {ENVOY_TYPES} package in cargo metadata"),
        _ => panic!("several {ENVOY_TYPES} packages in the build; set PILOTFISH_ENVOY_DESCRIPTORS"),
    }
}
