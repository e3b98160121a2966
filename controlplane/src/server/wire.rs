//! SotW and Delta messages to and from the state machine's requests and responses.

use api_protos::pb::envoy::config::core::v3::{ControlPlane, Node};
use api_protos::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};

use super::stream::{self, Protocol};

const CONTROL_PLANE: &str = "pilotfish";

pub trait Wire: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;
    const PROTOCOL: Protocol;
    const NAME: &'static str;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn type_url(request: &Self::Request) -> &str;
    fn read(request: Self::Request) -> stream::Request;
    fn write(response: &stream::Response) -> Self::Response;
}

fn control_plane() -> Option<ControlPlane> {
    Some(ControlPlane { identifier: CONTROL_PLANE.to_owned() })
}

pub struct Sotw;

impl Wire for Sotw {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;
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

    fn write(response: &stream::Response) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: response.version.clone(),
            resources: response.resources.iter().map(|r| r.body.clone()).collect(),
            type_url: response.kind.type_url().to_owned(),
            nonce: response.nonce.clone(),
            control_plane: control_plane(),
            ..Default::default()
        }
    }
}

pub struct Delta;

impl Wire for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;
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

    fn write(response: &stream::Response) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: response.version.clone(),
            resources: response
                .resources
                .iter()
                .map(|r| Resource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.body.clone()),
                    ..Default::default()
                })
                .collect(),
            type_url: response.kind.type_url().to_owned(),
            removed_resources: response.removed.clone(),
            nonce: response.nonce.clone(),
            control_plane: control_plane(),
            ..Default::default()
        }
    }
}
