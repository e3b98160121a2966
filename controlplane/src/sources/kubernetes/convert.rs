//! Objects from the apiserver into what translation reads, with no text in between: registry kinds from their typed
//! k8s-openapi objects, Istio kinds from their spec through the translator's own reader (the same checks and
//! diagnostics as a file gets).

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use kube::Resource;
use kube::api::DynamicObject;
use translator::input::registry::{EndpointSlice, Pod, Service};
use translator::input::{Meta, Object};
use translator::{Input, Kind, ObjectRef};

use super::store::{Key, Slot};

fn meta(object: &impl Resource) -> Meta {
    Meta::from_kubernetes(object.meta(), None)
}

fn slot(kind: Kind, meta: &Meta, input: Option<Input>, diagnostics: Vec<translator::Diagnostic>) -> Slot {
    let reference = ObjectRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone() };
    Slot { reference, input, diagnostics }
}

pub(crate) fn service(service: core::Service) -> Slot {
    let meta = meta(&service);
    let spec = Service::from_k8s(service);
    let input = Input::Service(Arc::new(Object { meta: meta.clone(), spec }));
    slot(Kind::Service, &meta, Some(input), Vec::new())
}

pub(crate) fn endpoint_slice(endpoint_slice: discovery::EndpointSlice) -> Slot {
    let meta = meta(&endpoint_slice);
    let input =
        Input::EndpointSlice(Arc::new(Object { meta: meta.clone(), spec: EndpointSlice::from_k8s(endpoint_slice) }));
    slot(Kind::EndpointSlice, &meta, Some(input), Vec::new())
}

/// A Pod is kept as its labels, IP, readiness and named ports, never as the full object.
pub(crate) fn pod(pod: core::Pod) -> Slot {
    let meta = meta(&pod);
    let input = Input::Pod(Arc::new(Object { meta: meta.clone(), spec: Pod::from_k8s(pod) }));
    slot(Kind::Pod, &meta, Some(input), Vec::new())
}

/// An Istio object, read from its spec as a document's would be.
pub(crate) fn istio(kind: Kind, object: DynamicObject) -> Slot {
    let meta = meta(&object);
    let empty = serde_json::Value::Null;
    let spec = object.data.get("spec").unwrap_or(&empty);
    let (input, diagnostics) = translator::istio_input(kind, meta.clone(), spec);
    slot(kind, &meta, input, diagnostics)
}

pub(super) fn key<K: Resource>(object: &K) -> Key {
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    (namespace, object.meta().name.clone().unwrap_or_default())
}
