//! The service registry as translation needs it: Kubernetes Services, EndpointSlices and Pods, slimmed down.
//!
//! Objects are read with `k8s-openapi`'s types (so anything `kubectl get -o yaml` prints is accepted) and kept only
//! in the parts translation uses: ports, selectors and addresses, endpoint readiness, pod labels and IP. A pod is
//! a few hundred bytes this way rather than the tens of kilobytes of its full spec and status.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::istio::Labels;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    pub ports: Vec<ServicePort>,
    /// Pods with these labels back the service; empty for services without a selector.
    pub selector: Labels,
    pub cluster_ip: Option<String>,
    /// The namespaces the service is visible in, from the `networking.istio.io/exportTo` annotation (`.` is its
    /// own namespace); empty for everywhere. pilotfish does not enforce it; analysis reports what Istio would hide.
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServicePort {
    pub name: String,
    pub port: i64,
    pub target_port: Option<TargetPort>,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    pub app_protocol: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(i64),
    Name(String),
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointSlice {
    /// The service it belongs to (label `kubernetes.io/service-name`).
    pub service_name: String,
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<SliceEndpoint>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointPort {
    pub name: String,
    pub port: i64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SliceEndpoint {
    pub addresses: Vec<String>,
    pub ready: bool,
    pub terminating: bool,
    /// Name of the pod behind the endpoint, whose labels select subsets.
    pub pod: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pod {
    pub ip: Option<String>,
    pub ready: bool,
    /// Container ports by name, for services whose target port is a name.
    pub named_ports: Vec<(String, i64)>,
}

pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Istio's annotation that limits where a Kubernetes Service is visible.
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

impl Service {
    /// The service as translation needs it: its spec, and the namespaces Istio's `exportTo` annotation names.
    pub fn from_k8s(service: core::Service) -> Service {
        let export_to = service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(EXPORT_TO_ANNOTATION))
            .map(|list| list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        Service { export_to, ..Service::from(service.spec.unwrap_or_default()) }
    }
}

impl From<core::ServiceSpec> for Service {
    fn from(spec: core::ServiceSpec) -> Service {
        let ports = spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                name: p.name.unwrap_or_default(),
                port: i64::from(p.port),
                target_port: p.target_port.map(|t| match t {
                    IntOrString::Int(n) => TargetPort::Number(i64::from(n)),
                    IntOrString::String(s) => match s.parse::<i64>() {
                        Ok(n) => TargetPort::Number(n),
                        Err(_) => TargetPort::Name(s),
                    },
                }),
                protocol: p.protocol.unwrap_or_else(|| "TCP".to_owned()),
                app_protocol: p.app_protocol,
            })
            .collect();
        Service {
            ports,
            selector: spec.selector.unwrap_or_default().into_iter().collect(),
            cluster_ip: spec.cluster_ip.filter(|ip| !ip.is_empty() && ip != "None"),
            export_to: Vec::new(),
        }
    }
}

impl EndpointSlice {
    pub fn from_k8s(slice: discovery::EndpointSlice) -> EndpointSlice {
        let service_name =
            slice.metadata.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)).cloned().unwrap_or_default();
        let ports = slice
            .ports
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some(EndpointPort { name: p.name.unwrap_or_default(), port: i64::from(p.port?) }))
            .collect();
        let endpoints = slice
            .endpoints
            .into_iter()
            .map(|e| {
                let conditions = e.conditions.unwrap_or_default();
                SliceEndpoint {
                    addresses: e.addresses,
                    // Kubernetes: an unknown readiness is to be read as ready.
                    ready: conditions.ready.unwrap_or(true),
                    terminating: conditions.terminating.unwrap_or(false),
                    pod: e.target_ref.filter(|r| r.kind.as_deref() == Some("Pod")).and_then(|r| r.name),
                }
            })
            .collect();
        EndpointSlice { service_name, ports, endpoints }
    }
}

impl Pod {
    pub fn from_k8s(pod: core::Pod) -> Pod {
        let status = pod.status.unwrap_or_default();
        let ready = status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Ready" && c.status == "True")
            && status.phase.as_deref().is_none_or(|p| p == "Running");
        let named_ports = pod
            .spec
            .map(|spec| {
                spec.containers
                    .into_iter()
                    .flat_map(|c| c.ports.unwrap_or_default())
                    .filter_map(|p| Some((p.name?, i64::from(p.container_port))))
                    .collect()
            })
            .unwrap_or_default();
        Pod { ip: status.pod_ip.filter(|ip| !ip.is_empty()), ready, named_ports }
    }
}
