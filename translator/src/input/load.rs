//! The one document reader: text (YAML or JSON, one or more documents) into typed values.
//!
//! ```text
//!   text ──yaml::parse──► documents (JSON value + field positions)
//!                           ├─ "@type", or a "resources:" list ──► raw Envoy resources (with the proxies they are for)
//!                           └─ apiVersion + kind ──kinds::classify──► Istio / Kubernetes object ──fields::read──► Input
//!                                                                 ├─► left alone (Deployments, …)
//!                                                                 └─► a diagnostic (unknown or untranslated kinds)
//! ```
//!
//! Every source reads through here: the directory source and the embedded API with [`read`], the Kubernetes source
//! with [`istio_input`] for the objects its watchers hand it. A document is parsed once. Fields an object's type does
//! not have are errors (the object is ignored, as `kubectl apply` refuses it), with the field the writer most likely
//! meant; fields Istio has and pilotfish does not translate are warnings.

use std::sync::Arc;

use api_protos::{Any, reflect};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::fields::{self, UnknownField, closest};
use super::istio::unsupported_field;
use super::kinds::{self, Classification};
use super::registry::{EndpointSlice, Pod, Service};
use super::yaml::{self, YamlDocument};
use super::{Input, Kind, Labels, Meta, Object, Source};
use crate::diagnostics::{Diagnostic, ObjectRef};
use crate::proxy::ProxySelector;

pub const DEFAULT_NAMESPACE: &str = "default";

/// Everything one text holds.
#[derive(Clone, Debug, Default)]
pub struct Read {
    /// Objects to translate.
    pub inputs: Vec<Input>,
    /// Objects of translated kinds that did not read: their last valid version may stand in for them.
    pub unreadable: Vec<ObjectRef>,
    /// Raw Envoy resources, served as written.
    pub envoy: Vec<EnvoyResource>,
    /// Objects of kinds translation does not need, left alone (listed, so a reader can see what was read).
    pub ignored: Vec<IgnoredObject>,
    pub diagnostics: Vec<Diagnostic>,
    /// Whether the text was read to its end: after a syntax error the documents that follow are not read.
    pub complete: bool,
}

/// A resource in Envoy's own shape, for the proxies `proxies` picks.
#[derive(Clone, Debug, PartialEq)]
pub struct EnvoyResource {
    pub resource: Any,
    pub proxies: ProxySelector,
    pub source: Source,
}

/// An object of a kind translation does not use. Analysis looks at some of them as `istioctl analyze` does (a
/// Gateway's Secret, a Sidecar's workload selector, a Kubernetes Gateway a VirtualService names).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IgnoredObject {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub source: Option<Source>,
    #[serde(skip)]
    pub labels: Labels,
    /// The spec of an Istio or Gateway API object (which pilotfish knows and does not translate); null for other
    /// kinds, whose contents (a Secret's data) are not kept.
    #[serde(skip)]
    pub spec: Value,
}

impl IgnoredObject {
    /// Whether this is `kind` of the API group `group` (`""` for Kubernetes' core group).
    pub fn is(&self, group: &str, kind: &str) -> bool {
        let own_group = self.api_version.rsplit_once('/').map_or("", |(group, _)| group);
        self.kind == kind && own_group == group
    }
}

/// Reads every document of `text` (named `file` in diagnostics).
pub fn read(text: &str, file: &str) -> Read {
    let (documents, syntax_error) = yaml::parse(text);
    let mut read = Read { complete: syntax_error.is_none(), ..Read::default() };
    for document in &documents {
        let source = Source::document(file, document);
        read_value(&document.value, &source, &mut read);
    }
    if let Some(error) = syntax_error {
        let source = Source::at(file, error.position);
        read.diagnostics.push(Diagnostic::error(error.to_string()).source(Some(source)));
    }
    read
}

/// Reads `text` into the objects to translate and the diagnostics; raw Envoy resources and kinds translation does
/// not use are left out.
pub fn read_yaml(text: &str, file: &str) -> (Vec<Input>, Vec<Diagnostic>) {
    let read = read(text, file);
    (read.inputs, read.diagnostics)
}

fn read_value(value: &Value, source: &Source, read: &mut Read) {
    let Value::Object(object) = value else {
        if !value.is_null() {
            read.diagnostics.push(
                Diagnostic::error("not a Kubernetes object or Envoy resource: expected a mapping")
                    .source(Some(source.clone())),
            );
        }
        return;
    };
    if object.contains_key("@type") {
        return envoy_resource(value, ProxySelector::all(), source, read);
    }
    if object.contains_key("resources") && !object.contains_key("kind") {
        return envoy_resources(object, source, read);
    }
    let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        read.diagnostics.push(
            Diagnostic::error(
                "not a Kubernetes object: apiVersion and kind are required (an Envoy resource needs \"@type\")",
            )
            .source(Some(source.clone())),
        );
        return;
    }
    let metadata = object.get("metadata").unwrap_or(&Value::Null);
    let name = || {
        let name = metadata["name"].as_str().unwrap_or_default().to_owned();
        let namespace = metadata["namespace"].as_str().unwrap_or(DEFAULT_NAMESPACE).to_owned();
        (namespace, name)
    };
    let ignored = |spec: Value| {
        let (namespace, name) = name();
        let labels = metadata["labels"].as_object().into_iter().flatten();
        IgnoredObject {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace,
            name,
            source: Some(source.clone()),
            labels: labels.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect(),
            spec,
        }
    };
    let described = || {
        let (namespace, name) = name();
        format!("{kind} {namespace}/{name} ({api_version})")
    };
    match kinds::classify(api_version, kind) {
        Classification::Read(kind) => {
            let (input, diagnostics) = object_input(kind, value, source);
            read.diagnostics.extend(diagnostics);
            match input {
                Ok(input) => read.inputs.push(input),
                Err(Some(reference)) => read.unreadable.push(reference),
                Err(None) => {}
            }
        }
        Classification::List => match object.get("items") {
            Some(Value::Array(items)) => {
                for (index, item) in items.iter().enumerate() {
                    read_value(item, &source.item(&format!("items[{index}]")), read);
                }
            }
            Some(_) => read.diagnostics.push(
                Diagnostic::error(format!("{kind}: items must be a list")).source(Some(source.at_field("items"))),
            ),
            None => {}
        },
        Classification::Ignored => read.ignored.push(ignored(Value::Null)),
        Classification::NotTranslated { security, note } => {
            read.ignored.push(ignored(object.get("spec").cloned().unwrap_or_default()));
            let message = format!("{}: {note}", described());
            let diagnostic = if security { Diagnostic::error(message) } else { Diagnostic::warning(message) };
            read.diagnostics.push(diagnostic.source(Some(source.clone())));
        }
        Classification::UnsupportedVersion => read.diagnostics.push(
            Diagnostic::error(format!(
                "{}: apiVersion {api_version} is not one Istio serves (v1, v1beta1 or v1alpha3); the object is ignored",
                described()
            ))
            .source(Some(source.at_field("apiVersion"))),
        ),
        Classification::Unknown { known_group, suggestion } => {
            let hint = suggestion.map(|s| format!(" (did you mean {s}?)")).unwrap_or_default();
            let diagnostic = if known_group {
                Diagnostic::error(format!(
                    "{}: {api_version} has no kind {kind}{hint}; the object is ignored",
                    described()
                ))
            } else {
                Diagnostic::warning(format!(
                    "{}: a kind pilotfish does not know{hint}; the object is ignored",
                    described()
                ))
            };
            read.diagnostics.push(diagnostic.source(Some(source.at_field("kind"))));
        }
    }
}

/// Reads an object of a translated kind. `Err(Some(reference))`: it did not read (diagnostics say why);
/// `Err(None)`: not even its name could be told.
fn object_input(kind: Kind, value: &Value, source: &Source) -> (Result<Input, Option<ObjectRef>>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let (meta, unknown_in_metadata) = match meta(kind, value, source) {
        Ok(read) => read,
        Err(diagnostic) => return (Err(None), vec![*diagnostic]),
    };
    let reference = ObjectRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone() };
    let input = match kind {
        Kind::Gateway | Kind::VirtualService | Kind::DestinationRule | Kind::ServiceEntry => {
            // Kubernetes kinds are read whole below, metadata included.
            report_unknown(&reference, source, unknown_in_metadata, &mut diagnostics);
            let top = ["apiVersion", "kind", "metadata", "spec", "status"];
            if let Value::Object(object) = value {
                let unknown = object.keys().filter(|key| !top.contains(&key.as_str())).map(|key| UnknownField {
                    path: key.clone(),
                    container: "object",
                    field: key.clone(),
                    known: &["apiVersion", "kind", "metadata", "spec"],
                });
                report_unknown(&reference, source, unknown.collect(), &mut diagnostics);
            }
            let spec = value.get("spec").unwrap_or(&Value::Null);
            istio_spec(kind, meta, spec, &mut diagnostics)
        }
        Kind::Service => kubernetes::<core::Service>(&reference, value, source, &mut diagnostics).map(|s| {
            report_service_protocols(&reference, source, &s, &mut diagnostics);
            Input::Service(Arc::new(Object { meta, spec: Service::from_k8s(s) }))
        }),
        Kind::EndpointSlice => kubernetes::<discovery::EndpointSlice>(&reference, value, source, &mut diagnostics)
            .map(|s| Input::EndpointSlice(Arc::new(Object { meta, spec: EndpointSlice::from_k8s(s) }))),
        Kind::Pod => kubernetes::<core::Pod>(&reference, value, source, &mut diagnostics)
            .map(|p| Input::Pod(Arc::new(Object { meta, spec: Pod::from_k8s(p) }))),
        // Kinds only analysis names: `kinds::classify` never reads them.
        Kind::Sidecar | Kind::Telemetry | Kind::AuthorizationPolicy => None,
    };
    let errors = diagnostics.iter().any(|d| d.severity == crate::Severity::Error);
    match input {
        Some(input) if !errors => (Ok(input), diagnostics),
        _ => (Err(Some(reference)), diagnostics),
    }
}

/// An Istio object from its metadata and spec, as the Kubernetes source has them: the same checks and diagnostics as
/// for a document (none of them name a file). `None` when it does not read.
pub fn istio_input(kind: Kind, meta: Meta, spec: &Value) -> (Option<Input>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let input = istio_spec(kind, meta, spec, &mut diagnostics);
    let errors = diagnostics.iter().any(|d| d.severity == crate::Severity::Error);
    (input.filter(|_| !errors), diagnostics)
}

fn istio_spec(kind: Kind, meta: Meta, spec: &Value, diagnostics: &mut Vec<Diagnostic>) -> Option<Input> {
    let reference = ObjectRef { kind, namespace: meta.namespace.clone(), name: meta.name.clone() };
    let source = meta.source.clone();
    let empty = Value::Object(serde_json::Map::new());
    let spec = if spec.is_null() { &empty } else { spec };
    let source = source.as_ref();
    Some(match kind {
        Kind::Gateway => {
            Input::Gateway(Arc::new(Object { meta, spec: typed(spec, "spec", &reference, source, diagnostics)? }))
        }
        Kind::VirtualService => Input::VirtualService(Arc::new(Object {
            meta,
            spec: typed(spec, "spec", &reference, source, diagnostics)?,
        })),
        Kind::DestinationRule => Input::DestinationRule(Arc::new(Object {
            meta,
            spec: typed(spec, "spec", &reference, source, diagnostics)?,
        })),
        Kind::ServiceEntry => {
            Input::ServiceEntry(Arc::new(Object { meta, spec: typed(spec, "spec", &reference, source, diagnostics)? }))
        }
        Kind::Service
        | Kind::EndpointSlice
        | Kind::Pod
        | Kind::Sidecar
        | Kind::Telemetry
        | Kind::AuthorizationPolicy => return None,
    })
}

/// A whole Kubernetes object, typed as k8s-openapi has it.
fn kubernetes<T: DeserializeOwned>(
    reference: &ObjectRef,
    value: &Value,
    source: &Source,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    typed(value, "", reference, Some(source), diagnostics)
}

/// `value` (at `path` in its object) read as a `T`: fields `T` does not declare are reported, and a value that does
/// not read is an error that makes the object ignored.
fn typed<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    reference: &ObjectRef,
    source: Option<&Source>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    match fields::read::<T>(value, path) {
        Ok((typed, unknown)) => {
            report_unknown_at(reference, source, unknown, diagnostics);
            Some(typed)
        }
        Err(error) => {
            diagnostics.push(
                Diagnostic::error(format!("{}; the object is ignored", error.message))
                    .object(reference.clone(), source.cloned())
                    .field(error.path),
            );
            None
        }
    }
}

/// A port protocol Kubernetes does not have (`protocol: HTTP`): the apiserver refuses it, Istio reads the port as
/// TCP, and so does pilotfish.
fn report_service_protocols(
    reference: &ObjectRef,
    source: &Source,
    service: &core::Service,
    out: &mut Vec<Diagnostic>,
) {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
    for (index, port) in ports.iter().enumerate() {
        let Some(protocol) = port.protocol.as_deref() else { continue };
        if !["TCP", "UDP", "SCTP"].contains(&protocol) {
            out.push(
                Diagnostic::warning(format!(
                    "protocol {protocol:?} is not a Kubernetes protocol (TCP, UDP or SCTP): the apiserver refuses it; \
                     pilotfish, as Istio, reads the port as TCP, its application protocol coming from the port name \
                     or appProtocol"
                ))
                .object(reference.clone(), Some(source.clone()))
                .field(format!("spec.ports[{index}].protocol")),
            );
        }
    }
}

fn report_unknown(reference: &ObjectRef, source: &Source, unknown: Vec<UnknownField>, out: &mut Vec<Diagnostic>) {
    report_unknown_at(reference, Some(source), unknown, out);
}

/// Fields the object's type does not declare: a warning for a field of Istio's API that pilotfish does not translate,
/// an error (the object is ignored) for any other.
fn report_unknown_at(
    reference: &ObjectRef,
    source: Option<&Source>,
    unknown: Vec<UnknownField>,
    out: &mut Vec<Diagnostic>,
) {
    for field in unknown {
        let diagnostic = match unsupported_field(field.container, &field.field) {
            Some(note) => Diagnostic::warning(format!("{}: {note}", field.field)),
            None => {
                let hint = field.suggestion().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default();
                Diagnostic::error(format!("unknown field {:?}{hint}; the object is ignored", field.field))
            }
        };
        out.push(diagnostic.object(reference.clone(), source.cloned()).field(field.path));
    }
}

/// The metadata translation uses, and the fields of `metadata` Kubernetes does not have.
fn meta(kind: Kind, value: &Value, source: &Source) -> Result<(Meta, Vec<UnknownField>), Box<Diagnostic>> {
    let metadata = value.get("metadata").unwrap_or(&Value::Null);
    let (metadata, unknown) = match fields::read::<Option<ObjectMeta>>(metadata, "metadata") {
        Ok((metadata, unknown)) => (metadata.unwrap_or_default(), unknown),
        Err(error) => {
            return Err(Box::new(
                Diagnostic::error(format!("{kind}: {}; the object is ignored", error.message))
                    .source(Some(source.clone()))
                    .field(error.path),
            ));
        }
    };
    let meta = Meta::from_kubernetes(&metadata, Some(source.clone()));
    if meta.name.is_empty() {
        return Err(Box::new(
            Diagnostic::error(format!("{kind} without metadata.name; ignored"))
                .field("metadata.name")
                .source(Some(source.clone())),
        ));
    }
    Ok((meta, unknown))
}

/// A raw Envoy resource.
fn envoy_resource(value: &Value, proxies: ProxySelector, source: &Source, read: &mut Read) {
    match reflect::from_json(value) {
        Ok(resource) => read.envoy.push(EnvoyResource { resource, proxies, source: source.clone() }),
        Err(err) => read
            .diagnostics
            .push(Diagnostic::error(format!("Envoy resource not read: {err}")).source(Some(source.clone()))),
    }
}

/// `resources:` (a list of Envoy resources, the shape of Envoy's file-based xDS), optionally with `proxies:`.
fn envoy_resources(object: &serde_json::Map<String, Value>, source: &Source, read: &mut Read) {
    let proxies = match object.get("proxies") {
        None => ProxySelector::all(),
        Some(proxies) => match fields::read::<ProxySelector>(proxies, "proxies") {
            Ok((selector, unknown)) if unknown.is_empty() => selector,
            Ok((_, unknown)) => {
                for field in unknown {
                    let hint = closest(&field.field, field.known.iter().copied())
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                    read.diagnostics.push(
                        Diagnostic::error(format!(
                            "\"proxies\" is not a proxy selector: unknown field {:?}{hint} (role, labels, namespace); \
                             these resources are not served",
                            field.field
                        ))
                        .source(Some(source.at_field(&field.path))),
                    );
                }
                return;
            }
            Err(error) => {
                read.diagnostics.push(
                    Diagnostic::error(format!(
                        "\"proxies\" is not a proxy selector: {}; these resources are not served",
                        error.message
                    ))
                    .source(Some(source.at_field(&error.path))),
                );
                return;
            }
        },
    };
    match object.get("resources") {
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                envoy_resource(item, proxies.clone(), &source.item(&format!("resources[{index}]")), read);
            }
        }
        _ => read.diagnostics.push(
            Diagnostic::error("\"resources\" must be a list of Envoy resources")
                .source(Some(source.at_field("resources"))),
        ),
    }
}

impl Source {
    fn document(file: &str, document: &YamlDocument) -> Source {
        Source::with_fields(file, Arc::clone(&document.positions), String::new())
    }
}

#[cfg(test)]
mod tests;
