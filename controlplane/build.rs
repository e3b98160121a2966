//! Generates the ADS gRPC client (for the load generator and tests; `server/grpc.rs` serves both ADS methods itself) over api-protos' message types, from the descriptor set
//! api-protos found (`DEP_API_PROTOS_DESCRIPTORS`). Only this crate speaks gRPC.

use std::env;
use std::path::PathBuf;

use prost::Message;
use prost_types::FileDescriptorSet;

const ADS_PROTO: &str = "envoy/service/discovery/v3/ads.proto";

fn main() {
    let path = PathBuf::from(env::var("DEP_API_PROTOS_DESCRIPTORS").expect("api-protos exports its descriptor set"));
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rerun-if-changed=build.rs");
    let bytes = std::fs::read(&path).expect("failed to read the Envoy descriptor set");
    let mut set = FileDescriptorSet::decode(bytes.as_slice()).expect("failed to decode the Envoy descriptor set");
    set.file.retain(|f| f.name() == ADS_PROTO);
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // Messages are api-protos' own; generate only the service.
        .extern_path(".envoy", "::api_protos::pb::envoy")
        .extern_path(".google", "::api_protos::pb::google")
        .extern_path(".xds", "::api_protos::pb::xds")
        .extern_path(".udpa", "::api_protos::pb::udpa")
        .compile_fds(set)
        .expect("failed to generate the ADS service");
}
