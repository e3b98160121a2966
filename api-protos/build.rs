//! Generates the Envoy message types pilotfish uses, with prost only (no gRPC, no protoc).
//!
//! The descriptors come from the `envoy-types` package (`src/generated/types.bin`, written by the protoc run that
//! generated that crate), found through `cargo metadata`. We do not link `envoy-types` itself: it brings tonic and
//! tokio, and the translator, which builds on these types, must stay free of I/O crates. Generating only the
//! files our resources need (their import closure) also compiles far less code than all of Envoy's API.
//!
//! Outputs: `$OUT_DIR/pb/mod.rs` (the generated modules) and `$OUT_DIR/envoy.bin` (the full descriptor set, for
//! reflection over any Envoy type). Dependents' build scripts find the set as `DEP_API_PROTOS_DESCRIPTORS`.
//! `PILOTFISH_ENVOY_DESCRIPTORS` overrides the lookup (e.g. for vendored builds).

use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};

const ENVOY_TYPES: &str = "envoy-types";
const DESCRIPTORS_IN_CRATE: &str = "src/generated/types.bin";

/// The files whose messages pilotfish builds or reads; everything they import comes along.
const ROOTS: &[&str] = &[
    "envoy/config/bootstrap/v3/bootstrap.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/service/discovery/v3/ads.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/wrappers.proto",
];

fn main() {
    println!("cargo:rerun-if-env-changed=PILOTFISH_ENVOY_DESCRIPTORS");
    println!("cargo:rerun-if-changed=build.rs");
    let source = match env::var_os("PILOTFISH_ENVOY_DESCRIPTORS") {
        Some(path) => PathBuf::from(path),
        None => locate_envoy_types().join(DESCRIPTORS_IN_CRATE),
    };
    println!("cargo:rerun-if-changed={}", source.display());
    let bytes = std::fs::read(&source)
        .unwrap_or_else(|err| panic!("failed to read the Envoy descriptor set {}: {err}", source.display()));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let full = out.join("envoy.bin");
    std::fs::write(&full, &bytes).expect("failed to write envoy.bin");
    println!("cargo:descriptors={}", full.display());

    let set = FileDescriptorSet::decode(bytes.as_slice()).expect("failed to decode the Envoy descriptor set");
    let subset = import_closure(set, ROOTS);
    // The generated types' own descriptors: enough to canonicalize everything pilotfish builds, at a fraction of
    // the memory the full set takes once decoded.
    std::fs::write(out.join("served.bin"), subset.encode_to_vec()).expect("failed to write served.bin");
    let generated = out.join("pb");
    std::fs::create_dir_all(&generated).expect("failed to create the output directory");
    prost_build::Config::new()
        .out_dir(&generated)
        .compile_well_known_types()
        // Sorted maps encode the same bytes for the same content: resources are versioned by a hash of their
        // encoding, which must not change with a HashMap's random order.
        .btree_map(["."])
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com")
        .include_file("mod.rs")
        // Envoy's docs are written for protoc's C++ output; as rustdoc they are noise and broken links.
        .disable_comments(["."])
        .compile_fds(subset)
        .expect("failed to generate the Envoy types");
}

/// The files of `set` that `roots` need, directly or through imports.
fn import_closure(set: FileDescriptorSet, roots: &[&str]) -> FileDescriptorSet {
    let by_name: BTreeMap<String, FileDescriptorProto> =
        set.file.into_iter().map(|f| (f.name().to_owned(), f)).collect();
    let mut keep = BTreeSet::new();
    let mut todo: Vec<String> = roots.iter().map(|r| (*r).to_owned()).collect();
    while let Some(name) = todo.pop() {
        let Some(file) = by_name.get(&name) else { panic!("the Envoy descriptor set has no {name}") };
        if keep.insert(name) {
            todo.extend(file.dependency.iter().cloned());
        }
    }
    FileDescriptorSet { file: by_name.into_iter().filter(|(name, _)| keep.contains(name)).map(|(_, f)| f).collect() }
}

/// The source directory of the `envoy-types` package in this build's lockfile.
fn locate_envoy_types() -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest_dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // Not --offline: the package is never built, so the first `cargo metadata` may be what downloads it.
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(&manifest_dir)
        .output()
        .expect("failed to run cargo metadata");
    if !output.status.success() {
        panic!("failed to run cargo metadata: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("cargo metadata lists packages");
    let found: Vec<&serde_json::Value> = packages.iter().filter(|p| p["name"] == ENVOY_TYPES).collect();
    match found.as_slice() {
        [package] => {
            let manifest = package["manifest_path"].as_str().expect("packages have a manifest_path");
            Path::new(manifest).parent().expect("a manifest lives in a directory").to_path_buf()
        }
        [] => panic!("failed to find the {ENVOY_TYPES} package in cargo metadata"),
        _ => panic!("several {ENVOY_TYPES} packages in the build; set PILOTFISH_ENVOY_DESCRIPTORS"),
    }
}
