//! Reading YAML or JSON text into typed objects.

use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::registry::{EndpointSlice, Pod, Service};
use super::{Input, Kind, Meta, Object, Source};
use crate::diagnostics::{Diagnostic, ObjectRef};

const ISTIO_GROUP: &str = "networking.istio.io";
const ISTIO_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];
pub const DEFAULT_NAMESPACE: &str = "default";

/// Reads every document of `text` (named `file` in diagnostics).
pub fn read_yaml(text: &str, file: &str) -> (Vec<Input>, Vec<Diagnostic>) {
    let mut inputs = Vec::new();
    let mut diagnostics = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = Source { file: file.to_owned(), document: index + 1 };
        match Value::deserialize(document) {
            Ok(value) => read_value(value, &source, &mut inputs, &mut diagnostics),
            Err(err) => {
                diagnostics.push(Diagnostic::error(format!("failed to parse YAML: {err}")).source(Some(source)));
                // A syntax error ends the stream: the parser cannot find the next document reliably.
                break;
            }
        }
    }
    (inputs, diagnostics)
}

fn read_value(value: Value, source: &Source, inputs: &mut Vec<Input>, diagnostics: &mut Vec<Diagnostic>) {
    let Value::Object(object) = &value else {
        if !value.is_null() {
            diagnostics
                .push(Diagnostic::error("not a Kubernetes object: expected a mapping").source(Some(source.clone())));
        }
        return;
    };
    if object.contains_key("@type") || (object.contains_key("resources") && !object.contains_key("kind")) {
        return; // Raw Envoy resources: served as-is by the control plane, not translated.
    }
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        diagnostics.push(
            Diagnostic::error("not a Kubernetes object: apiVersion and kind are required").source(Some(source.clone())),
        );
        return;
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let result = match (group, kind) {
        (_, "List")
        | (_, "VirtualServiceList")
        | (_, "GatewayList")
        | (_, "DestinationRuleList")
        | (_, "ServiceEntryList")
        | (_, "ServiceList")
        | (_, "PodList")
        | (_, "EndpointSliceList") => {
            for item in object.get("items").and_then(Value::as_array).into_iter().flatten() {
                read_value(item.clone(), source, inputs, diagnostics);
            }
            return;
        }
        (ISTIO_GROUP, _) if !ISTIO_VERSIONS.contains(&version) => {
            diagnostics.push(
                Diagnostic::warning(format!("unsupported apiVersion {api_version}; ignored"))
                    .source(Some(source.clone())),
            );
            return;
        }
        (ISTIO_GROUP, "Gateway") => istio_object(&value, Kind::Gateway, source).map(|o| Input::Gateway(Arc::new(o))),
        (ISTIO_GROUP, "VirtualService") => {
            istio_object(&value, Kind::VirtualService, source).map(|o| Input::VirtualService(Arc::new(o)))
        }
        (ISTIO_GROUP, "DestinationRule") => {
            istio_object(&value, Kind::DestinationRule, source).map(|o| Input::DestinationRule(Arc::new(o)))
        }
        (ISTIO_GROUP, "ServiceEntry") => {
            istio_object(&value, Kind::ServiceEntry, source).map(|o| Input::ServiceEntry(Arc::new(o)))
        }
        ("", "Service") if version == "v1" => {
            k8s_object::<core::Service>(&value, Kind::Service, source).map(|(meta, s)| {
                Input::Service(Arc::new(Object { meta, spec: Service::from(s.spec.unwrap_or_default()) }))
            })
        }
        ("discovery.k8s.io", "EndpointSlice") if version == "v1" => {
            k8s_object::<discovery::EndpointSlice>(&value, Kind::EndpointSlice, source)
                .map(|(meta, s)| Input::EndpointSlice(Arc::new(Object { meta, spec: EndpointSlice::from_k8s(s) })))
        }
        ("", "Pod") if version == "v1" => k8s_object::<core::Pod>(&value, Kind::Pod, source)
            .map(|(meta, p)| Input::Pod(Arc::new(Object { meta, spec: Pod::from_k8s(p) }))),
        _ => return, // Deployments, ServiceAccounts, …: not needed to translate.
    };
    match result {
        Ok(input) => inputs.push(input),
        Err(diagnostic) => diagnostics.push(*diagnostic),
    }
}

fn meta(value: &Value, kind: Kind, source: &Source) -> Result<Meta, Box<Diagnostic>> {
    let metadata = &value["metadata"];
    let name = metadata["name"].as_str().unwrap_or_default().to_owned();
    let namespace = metadata["namespace"].as_str().filter(|n| !n.is_empty()).unwrap_or(DEFAULT_NAMESPACE).to_owned();
    if name.is_empty() {
        return Err(Box::new(
            Diagnostic::error(format!("{kind} without metadata.name; ignored"))
                .field("metadata.name")
                .source(Some(source.clone())),
        ));
    }
    let labels = metadata["labels"]
        .as_object()
        .map(|l| l.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default();
    let creation_timestamp = metadata["creationTimestamp"].as_str().map(str::to_owned);
    Ok(Meta { name, namespace, labels, creation_timestamp, source: Some(source.clone()) })
}

fn istio_object<T: DeserializeOwned>(value: &Value, kind: Kind, source: &Source) -> Result<Object<T>, Box<Diagnostic>> {
    let meta = meta(value, kind, source)?;
    let spec = value.get("spec").cloned().unwrap_or(Value::Object(Default::default()));
    let spec = serde_path_to_error::deserialize(spec).map_err(|err| {
        let reference = ObjectRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone() };
        let path = err.path().to_string();
        let field = if path == "." { "spec".to_owned() } else { format!("spec.{path}") };
        Box::new(
            Diagnostic::error(format!("{}; the object is ignored", err.into_inner()))
                .object(reference, Some(source.clone()))
                .field(field),
        )
    })?;
    Ok(Object { meta, spec })
}

fn k8s_object<T: DeserializeOwned>(value: &Value, kind: Kind, source: &Source) -> Result<(Meta, T), Box<Diagnostic>> {
    let meta = meta(value, kind, source)?;
    let object = serde_path_to_error::deserialize(value.clone()).map_err(|err| {
        let reference = ObjectRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone() };
        Box::new(
            Diagnostic::error(format!("{}; the object is ignored", err.inner()))
                .object(reference, Some(source.clone()))
                .field(err.path().to_string()),
        )
    })?;
    Ok((meta, object))
}

#[cfg(test)]
mod tests;
