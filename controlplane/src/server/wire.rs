//! SotW and Delta messages: requests into the state machine's, its responses out as gRPC-framed bytes.
//!
//! A response goes out as shared chunks rather than one encoded message: a small per-stream head (versions, nonce,
//! type, removed names) and then each resource's entry, encoded once per resource (see
//! [`crate::snapshot::EncodedEntries`]) and shared by every stream that sends it. Protobuf parsers accept fields
//! in any order and a repeated field spread over the message, so the concatenation is the response.

use api_protos::pb::envoy::config::core::v3::{ControlPlane, Node};
use api_protos::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource as DeltaResource,
};
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use tonic::Status;

use super::stream::{self, Protocol};
use crate::snapshot::Resource;

const CONTROL_PLANE: &str = "pilotfish";

/// The `resources` field of both `DiscoveryResponse` and `DeltaDiscoveryResponse`.
const RESOURCES_FIELD: u32 = 2;

/// gRPC's length-prefixed message header: a compressed flag, then the length as a big-endian u32.
const GRPC_HEADER_LEN: usize = 5;

pub trait Wire: Send + 'static {
    type Request: Message + Default + Send + 'static;
    const PROTOCOL: Protocol;
    const NAME: &'static str;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn type_url(request: &Self::Request) -> &str;
    fn read(request: Self::Request) -> stream::Request;
    /// The response as one gRPC message, in chunks to send in order.
    fn write(response: &stream::Response) -> Result<Vec<Bytes>, Status>;
}

fn control_plane() -> Option<ControlPlane> {
    Some(ControlPlane { identifier: CONTROL_PLANE.to_owned() })
}

/// Frames `head` followed by `entries` as one uncompressed gRPC message.
fn frame(head: &impl Message, entries: Vec<Bytes>) -> Result<Vec<Bytes>, Status> {
    let head_len = head.encoded_len();
    let length = head_len + entries.iter().map(Bytes::len).sum::<usize>();
    let length = u32::try_from(length)
        .map_err(|_| Status::resource_exhausted(format!("a response of {length} bytes is too large for gRPC")))?;
    let mut first = BytesMut::with_capacity(GRPC_HEADER_LEN + head_len);
    first.put_u8(0);
    first.put_u32(length);
    head.encode(&mut first).map_err(|error| Status::internal(format!("failed to encode a response: {error}")))?;
    let mut chunks = Vec::with_capacity(1 + entries.len());
    chunks.push(first.freeze());
    chunks.extend(entries);
    Ok(chunks)
}

/// Encodes `message` as field `RESOURCES_FIELD`, tag and length included.
fn encode_entry(message: &impl Message) -> Bytes {
    let mut entry = Vec::with_capacity(prost::encoding::message::encoded_len(RESOURCES_FIELD, message));
    prost::encoding::message::encode(RESOURCES_FIELD, message, &mut entry);
    Bytes::from(entry)
}

fn sotw_entry(resource: &Resource) -> Bytes {
    resource.encoded.sotw.get_or_init(|| encode_entry(&resource.body)).clone()
}

fn delta_entry(resource: &Resource) -> Bytes {
    resource
        .encoded
        .delta
        .get_or_init(|| {
            encode_entry(&DeltaResource {
                name: resource.name.clone(),
                version: resource.version.clone(),
                resource: Some(resource.body.clone()),
                ..Default::default()
            })
        })
        .clone()
}

pub struct Sotw;

impl Wire for Sotw {
    type Request = DiscoveryRequest;
    const PROTOCOL: Protocol = Protocol::Sotw;
    const NAME: &'static str = "sotw";

    fn node(request: &DiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn type_url(request: &DiscoveryRequest) -> &str {
        &request.type_url
    }

    fn read(request: DiscoveryRequest) -> stream::Request {
        stream::Request {
            response_nonce: request.response_nonce,
            error: request.error_detail.map(|status| status.message),
            version_info: request.version_info,
            subscribe: request.resource_names,
            ..Default::default()
        }
    }

    fn write(response: &stream::Response) -> Result<Vec<Bytes>, Status> {
        let head = DiscoveryResponse {
            version_info: response.version.clone(),
            type_url: response.kind.type_url().to_owned(),
            nonce: response.nonce.clone(),
            control_plane: control_plane(),
            ..Default::default()
        };
        frame(&head, response.resources.iter().map(|r| sotw_entry(r)).collect())
    }
}

pub struct Delta;

impl Wire for Delta {
    type Request = DeltaDiscoveryRequest;
    const PROTOCOL: Protocol = Protocol::Delta;
    const NAME: &'static str = "delta";

    fn node(request: &DeltaDiscoveryRequest) -> Option<&Node> {
        request.node.as_ref()
    }

    fn type_url(request: &DeltaDiscoveryRequest) -> &str {
        &request.type_url
    }

    fn read(request: DeltaDiscoveryRequest) -> stream::Request {
        stream::Request {
            response_nonce: request.response_nonce,
            error: request.error_detail.map(|status| status.message),
            subscribe: request.resource_names_subscribe,
            unsubscribe: request.resource_names_unsubscribe,
            initial_versions: request.initial_resource_versions,
            ..Default::default()
        }
    }

    fn write(response: &stream::Response) -> Result<Vec<Bytes>, Status> {
        let head = DeltaDiscoveryResponse {
            system_version_info: response.version.clone(),
            type_url: response.kind.type_url().to_owned(),
            removed_resources: response.removed.clone(),
            nonce: response.nonce.clone(),
            control_plane: control_plane(),
            ..Default::default()
        };
        frame(&head, response.resources.iter().map(|r| delta_entry(r)).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use api_protos::ResourceType;
    use api_protos::pb::envoy::config::cluster::v3::Cluster;
    use api_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;

    use super::*;

    fn response(kind: ResourceType, resources: Vec<Resource>, removed: Vec<String>) -> stream::Response {
        stream::Response {
            kind,
            nonce: "7".to_owned(),
            version: "v-abc".to_owned(),
            resources: resources.into_iter().map(Arc::new).collect(),
            removed,
        }
    }

    fn clusters() -> Vec<Resource> {
        ["a", "b", "c"]
            .iter()
            .map(|name| {
                let cluster = Cluster { name: (*name).to_owned(), ..Default::default() };
                Resource::from_message(&cluster).expect("a named cluster is a resource").1
            })
            .collect()
    }

    /// Joins the chunks and checks the gRPC header: one uncompressed message of the stated length.
    fn message(chunks: &[Bytes]) -> Vec<u8> {
        let bytes: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.iter().copied()).collect();
        assert_eq!(bytes[0], 0, "uncompressed");
        let length = u32::from_be_bytes(bytes[1..5].try_into().expect("four length bytes"));
        assert_eq!(length as usize, bytes.len() - GRPC_HEADER_LEN);
        bytes[GRPC_HEADER_LEN..].to_vec()
    }

    #[test]
    fn sotw_chunks_decode_to_the_whole_response() {
        let response = response(ResourceType::Cluster, clusters(), Vec::new());
        let expected = DiscoveryResponse {
            version_info: response.version.clone(),
            resources: response.resources.iter().map(|r| r.body.clone()).collect(),
            type_url: ResourceType::Cluster.type_url().to_owned(),
            nonce: response.nonce.clone(),
            control_plane: control_plane(),
            ..Default::default()
        };
        for _ in 0..2 {
            // The second time round the entries come from the resources' cache.
            let chunks = Sotw::write(&response).expect("a small response frames");
            let decoded = DiscoveryResponse::decode(message(&chunks).as_slice()).expect("the framed message decodes");
            assert_eq!(decoded, expected);
        }
        assert!(response.resources.iter().all(|r| r.encoded.sotw.get().is_some()));
    }

    #[test]
    fn delta_chunks_decode_to_the_whole_response() {
        let assignment = ClusterLoadAssignment { cluster_name: "a".to_owned(), ..Default::default() };
        let (_, endpoint) = Resource::from_message(&assignment).expect("a named assignment is a resource");
        for (kind, resources) in [(ResourceType::Cluster, clusters()), (ResourceType::Endpoint, vec![endpoint])] {
            let response = response(kind, resources, vec!["gone".to_owned(), "also-gone".to_owned()]);
            let expected = DeltaDiscoveryResponse {
                system_version_info: response.version.clone(),
                resources: response
                    .resources
                    .iter()
                    .map(|r| DeltaResource {
                        name: r.name.clone(),
                        version: r.version.clone(),
                        resource: Some(r.body.clone()),
                        ..Default::default()
                    })
                    .collect(),
                type_url: kind.type_url().to_owned(),
                removed_resources: response.removed.clone(),
                nonce: response.nonce.clone(),
                control_plane: control_plane(),
                ..Default::default()
            };
            let chunks = Delta::write(&response).expect("a small response frames");
            let decoded =
                DeltaDiscoveryResponse::decode(message(&chunks).as_slice()).expect("the framed message decodes");
            assert_eq!(decoded, expected);
        }
    }

    #[test]
    fn an_empty_response_is_just_the_head() {
        let response = response(ResourceType::Listener, Vec::new(), Vec::new());
        let chunks = Sotw::write(&response).expect("an empty response frames");
        assert_eq!(chunks.len(), 1);
        let decoded = DiscoveryResponse::decode(message(&chunks).as_slice()).expect("the framed message decodes");
        assert!(decoded.resources.is_empty());
        assert_eq!(decoded.nonce, "7");
    }
}
