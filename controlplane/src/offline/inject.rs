//! Sidecar injection into Kubernetes manifests: what `pilotfish inject` does, like `istioctl kube-inject`.
//!
//! ```text
//!   YAML stream ──per document──► workload? (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
//!                                 │          List items)       no ──► passed through unchanged
//!                                 ▼ yes: its pod template
//!       opted out (sidecar.istio.io/inject: "false"), hostNetwork, already injected ──► unchanged, with a note
//!                                 ▼
//!       initContainers = [pilotfish-init: iptables (CaptureSettings::shell_script), runs once, NET_ADMIN/NET_RAW
//!                         pilotfish-proxy: Envoy as a native sidecar (restartPolicy: Always), uid 1337,
//!                                          bootstrap inline: role sidecar, the template's labels and namespace,
//!                                          no OUTBOUND_BIND (captured), node id from the downward API,
//!                                          startup and readiness probes on :15021/healthz/ready, stats on :15090]
//!                        + the template's own init containers
//! ```
//!
//! The proxy is a native sidecar (Kubernetes 1.29 and later): it starts before the application's containers and
//! stops after them, so a Job still completes. Its startup probe holds the application's containers back until
//! Envoy has its first configuration, so that their first request does not meet an unconfigured proxy. Its bootstrap comes from [`crate::bootstrap`] and is passed with
//! `--config-yaml`, so an injected workload needs no ConfigMap. Istio's capture annotations that map onto
//! [`CaptureSettings`] are honoured (`traffic.sidecar.istio.io/excludeOutboundPorts`, `…/excludeOutboundIPRanges`).
//!
//! This module transforms text; it reads no files and contacts no cluster. Every document is re-serialized, so
//! comments and formatting of the input are not kept (as with `istioctl kube-inject`).

use serde_yaml::{Mapping, Value};
use translator::Role;

use crate::bootstrap::{
    BootstrapOptions, DEFAULT_ADMIN_PORT, ISTIO_PROMETHEUS_PORT, ISTIO_READINESS_PORT, READINESS_PATH, render,
};
use crate::capture::{CaptureSettings, Cidr, DEFAULT_PROXY_UID};

/// The Envoy sidecar's container name.
pub const PROXY_CONTAINER: &str = "pilotfish-proxy";
/// The init container that installs the iptables rules.
pub const INIT_CONTAINER: &str = "pilotfish-init";
/// Envoy's official image, the release pilotfish is tested against.
pub const DEFAULT_PROXY_IMAGE: &str = "docker.io/envoyproxy/envoy:v1.40.0";
/// The pilotfish image (see `examples/lab-cluster/Dockerfile`): it carries `sh` and `iptables`.
pub const DEFAULT_INIT_IMAGE: &str = "pilotfish:dev";
/// The in-cluster Service of `examples/lab-cluster`.
pub const DEFAULT_XDS_ADDRESS: &str = "pilotfish.pilotfish-system.svc:15010";

/// Istio's opt-out: on the pod template's annotations (or labels), `"false"` leaves the workload alone.
pub const INJECT_ANNOTATION: &str = "sidecar.istio.io/inject";
/// Destination ports the init container does not capture, comma-separated.
pub const EXCLUDE_PORTS_ANNOTATION: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
/// Destination networks (CIDRs) the init container does not capture, comma-separated.
pub const EXCLUDE_RANGES_ANNOTATION: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
/// The container Istio's injector adds: a template that has it is not injected again.
const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";

/// What the injected containers look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectOptions {
    pub proxy_image: String,
    pub init_image: String,
    /// Where the sidecars find pilotfish, `HOST:PORT`.
    pub xds_address: String,
    /// The uid Envoy runs as; its own connections are not captured.
    pub proxy_uid: u32,
    /// The namespace of objects that do not say (what `kubectl apply -n` would give them); `default` if `None`.
    pub namespace: Option<String>,
}

impl Default for InjectOptions {
    fn default() -> Self {
        InjectOptions {
            proxy_image: DEFAULT_PROXY_IMAGE.to_owned(),
            init_image: DEFAULT_INIT_IMAGE.to_owned(),
            xds_address: DEFAULT_XDS_ADDRESS.to_owned(),
            proxy_uid: DEFAULT_PROXY_UID,
            namespace: None,
        }
    }
}

/// Failures to inject; the stream is then not printed at all, so a half-injected manifest never reaches a cluster.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("failed to read document {document}: {source}")]
    Parse {
        document: usize,
        #[source]
        source: serde_yaml::Error,
    },
    /// `object` names the document and object (`document 2, Deployment default/reviews`).
    #[error("{object}: {reason}")]
    Invalid { object: String, reason: String },
    #[error("no workload to inject into (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob)")]
    NoWorkload,
    #[error("failed to write document {document}: {source}")]
    Write {
        document: usize,
        #[source]
        source: serde_yaml::Error,
    },
}

/// The injected stream, and what was left alone and why (for stderr).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Injected {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// Injects the sidecar into every workload of the multi-document YAML `input`; other documents pass through.
pub fn inject(input: &str, options: &InjectOptions) -> Result<Injected, InjectError> {
    let mut injector = Injector { options, notes: Vec::new(), workloads: 0 };
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let number = index + 1;
        let mut value: Value = serde::Deserialize::deserialize(document)
            .map_err(|source| InjectError::Parse { document: number, source })?;
        if value.is_null() {
            continue; // an empty document, as a leading or trailing `---` leaves
        }
        injector.object(&mut value, &format!("document {number}"))?;
        documents.push((number, value));
    }
    if injector.workloads == 0 {
        return Err(InjectError::NoWorkload);
    }
    let mut yaml = String::new();
    for (number, value) in &documents {
        yaml.push_str("---\n");
        yaml.push_str(
            &serde_yaml::to_string(value).map_err(|source| InjectError::Write { document: *number, source })?,
        );
    }
    Ok(Injected { yaml, notes: injector.notes })
}

/// Injects the sidecar into one object that is already parsed (a Pod, or a workload with a pod template), exactly
/// as [`inject`] does for each document; `place` names it in messages. Returns the notes: what was left alone and
/// why. The admission webhook calls this, so automatic and manual injection add the same sidecar.
pub fn inject_object(object: &mut Value, place: &str, options: &InjectOptions) -> Result<Vec<String>, InjectError> {
    let mut injector = Injector { options, notes: Vec::new(), workloads: 0 };
    injector.object(object, place)?;
    Ok(injector.notes)
}

struct Injector<'o> {
    options: &'o InjectOptions,
    notes: Vec<String>,
    /// Workloads seen, injected or not.
    workloads: usize,
}

impl Injector<'_> {
    fn object(&mut self, object: &mut Value, place: &str) -> Result<(), InjectError> {
        let invalid = |reason: &str| InjectError::Invalid { object: place.to_owned(), reason: reason.to_owned() };
        let Some(mapping) = object.as_mapping() else {
            return Err(invalid("not a Kubernetes object (expected a mapping with apiVersion and kind)"));
        };
        let Some(kind) = mapping.get("kind").and_then(Value::as_str).map(str::to_owned) else {
            return Err(invalid("not a Kubernetes object: it has no kind"));
        };
        let metadata = mapping.get("metadata");
        let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("<unnamed>").to_owned();
        let object_namespace = metadata.and_then(|m| m.get("namespace")).and_then(Value::as_str).map(str::to_owned);
        let namespace = object_namespace
            .or_else(|| self.options.namespace.clone())
            .unwrap_or_else(|| translator::proxy::DEFAULT_NAMESPACE.to_owned());
        let described = format!("{place}, {kind} {namespace}/{name}");

        if kind.ends_with("List") {
            let Some(items) = object.get_mut("items").and_then(Value::as_sequence_mut) else {
                return Ok(()); // a list of nothing
            };
            for (index, item) in items.iter_mut().enumerate() {
                self.object(item, &format!("{place}, items[{index}]"))?;
            }
            return Ok(());
        }
        let template_path: &[&str] = match kind.as_str() {
            "Pod" => &[],
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "ReplicationController" | "Job" => {
                &["spec", "template"]
            }
            "CronJob" => &["spec", "jobTemplate", "spec", "template"],
            _ => return Ok(()),
        };
        self.workloads += 1;
        let mut template = &mut *object;
        for (depth, key) in template_path.iter().enumerate() {
            template = template.get_mut(*key).filter(|v| v.is_mapping()).ok_or_else(|| InjectError::Invalid {
                object: described.clone(),
                reason: format!("it has no pod template ({} is missing)", template_path[..=depth].join(".")),
            })?;
        }
        let field = if template_path.is_empty() { String::new() } else { format!("{}.", template_path.join(".")) };
        self.template(template, &described, &field, &namespace)
    }

    /// Injects into one pod template (or Pod); `field` is the template's path in the object, for messages.
    fn template(
        &mut self,
        template: &mut Value,
        object: &str,
        field: &str,
        namespace: &str,
    ) -> Result<(), InjectError> {
        let invalid = |reason: String| InjectError::Invalid { object: object.to_owned(), reason };
        let metadata = template.get("metadata");
        let annotations = string_map(metadata.and_then(|m| m.get("annotations")))
            .map_err(|reason| invalid(format!("{field}metadata.annotations: {reason}")))?;
        let labels = string_map(metadata.and_then(|m| m.get("labels")))
            .map_err(|reason| invalid(format!("{field}metadata.labels: {reason}")))?;

        for (place, map) in [("annotation", &annotations), ("label", &labels)] {
            match map.iter().find(|(key, _)| key == INJECT_ANNOTATION).map(|(_, value)| value.as_str()) {
                None | Some("true") => {}
                Some("false") => {
                    self.notes.push(format!("{object}: not injected ({place} {INJECT_ANNOTATION} is \"false\")"));
                    return Ok(());
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "{field}metadata: {place} {INJECT_ANNOTATION} must be \"true\" or \"false\", found {other:?}"
                    )));
                }
            }
        }

        let Some(spec) = template.get_mut("spec").and_then(Value::as_mapping_mut) else {
            return Err(invalid(format!("{field}spec is missing")));
        };
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            // iptables rules in the node's network namespace would capture the node's traffic.
            self.notes.push(format!("{object}: not injected (hostNetwork pods share the node's network)"));
            return Ok(());
        }
        let names = container_names(spec);
        if names.iter().any(|n| n == PROXY_CONTAINER || n == INIT_CONTAINER) {
            self.notes.push(format!("{object}: already injected, left as is"));
            return Ok(());
        }
        if names.iter().any(|n| n == ISTIO_PROXY_CONTAINER) {
            return Err(invalid(format!(
                "{field}spec has Istio's sidecar ({ISTIO_PROXY_CONTAINER}); inject into the manifest without it"
            )));
        }
        if let Some(port) = claimed_port(spec) {
            return Err(invalid(format!(
                "{field}spec: a container uses port {port}, which the sidecar needs (Envoy admin {DEFAULT_ADMIN_PORT}, \
                 outbound capture {}, readiness {ISTIO_READINESS_PORT}, Prometheus {ISTIO_PROMETHEUS_PORT})",
                crate::capture::VIRTUAL_OUTBOUND_PORT
            )));
        }

        let capture = capture_settings(&annotations, self.options.proxy_uid)
            .map_err(|reason| invalid(format!("{field}metadata.annotations: {reason}")))?;
        let bootstrap = self.bootstrap(object, namespace, &labels)?;
        let mut init_containers = vec![self.init_container(&capture), self.proxy_container(&bootstrap)];
        if let Some(existing) = spec.get("initContainers").and_then(Value::as_sequence) {
            init_containers.extend(existing.iter().cloned());
        }
        spec.insert("initContainers".into(), Value::Sequence(init_containers));
        Ok(())
    }

    /// The sidecar's bootstrap as one line of JSON (which is YAML), for `--config-yaml`.
    fn bootstrap(&self, object: &str, namespace: &str, labels: &[(String, String)]) -> Result<String, InjectError> {
        let options = BootstrapOptions {
            labels: labels.iter().cloned().collect(),
            namespace: namespace.to_owned(),
            xds_address: self.options.xds_address.clone(),
            // Where istio-proxy has them: the probes below, and Prometheus scrape configs written for Istio.
            readiness_port: Some(ISTIO_READINESS_PORT),
            prometheus_port: Some(ISTIO_PROMETHEUS_PORT),
            // The node id is replaced per pod by --service-node; a bootstrap needs one all the same.
            ..BootstrapOptions::new("sidecar", Role::Sidecar)
        };
        let bootstrap = render(&options)
            .map_err(|err| InjectError::Invalid { object: object.to_owned(), reason: err.to_string() })?;
        Ok(bootstrap.to_string())
    }

    fn init_container(&self, capture: &CaptureSettings) -> Value {
        yaml(serde_json::json!({
            "name": INIT_CONTAINER,
            "image": self.options.init_image,
            "command": ["sh", "-c", capture.shell_script()],
            "securityContext": {
                // iptables needs root in the pod's network namespace, and nothing else.
                "runAsUser": 0,
                "runAsNonRoot": false,
                "allowPrivilegeEscalation": false,
                "capabilities": { "add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"] },
            },
            "resources": { "requests": { "cpu": "10m", "memory": "10Mi" } },
        }))
    }

    fn proxy_container(&self, bootstrap: &str) -> Value {
        let uid = self.options.proxy_uid;
        yaml(serde_json::json!({
            "name": PROXY_CONTAINER,
            "image": self.options.proxy_image,
            // A native sidecar: started before the application's containers, stopped after them.
            "restartPolicy": "Always",
            "command": ["envoy"],
            "args": [
                "--config-yaml", bootstrap,
                // One node id per pod, for `pilotfish status`; the bootstrap is shared by the workload's pods.
                "--service-node", "$(POD_NAME).$(POD_NAMESPACE)",
                "--disable-hot-restart",
                "--log-level", "warning",
            ],
            "env": [
                { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
            ],
            "ports": [
                { "name": "http-envoy-prom", "containerPort": ISTIO_PROMETHEUS_PORT, "protocol": "TCP" },
            ],
            // The application's containers start only once this succeeds: once Envoy has its first clusters and
            // listeners, so that their first outbound request already goes through a configured proxy. Istio's
            // values (up to 10 minutes for a first configuration).
            "startupProbe": {
                "httpGet": { "path": READINESS_PATH, "port": ISTIO_READINESS_PORT },
                "periodSeconds": 1,
                "timeoutSeconds": 3,
                "failureThreshold": 600,
            },
            "readinessProbe": {
                "httpGet": { "path": READINESS_PATH, "port": ISTIO_READINESS_PORT },
                "periodSeconds": 15,
                "timeoutSeconds": 3,
                "failureThreshold": 4,
            },
            "securityContext": {
                "runAsUser": uid,
                "runAsGroup": uid,
                "runAsNonRoot": uid != 0,
                "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true,
                "capabilities": { "drop": ["ALL"] },
            },
            "resources": { "requests": { "cpu": "10m", "memory": "40Mi" } },
        }))
    }
}

/// A container built with `json!` as a YAML mapping, `name` and `image` first as people write them (`json!`
/// sorts keys). A JSON value always converts.
fn yaml(value: serde_json::Value) -> Value {
    let Ok(Value::Mapping(sorted)) = serde_yaml::to_value(value) else { return Value::Null };
    let mut container = Mapping::new();
    for key in ["name", "image"] {
        if let Some(value) = sorted.get(key) {
            container.insert(key.into(), value.clone());
        }
    }
    for (key, value) in sorted {
        if !container.contains_key(&key) {
            container.insert(key, value);
        }
    }
    Value::Mapping(container)
}

/// Annotations or labels as `(key, value)` pairs; values must be strings (or booleans and numbers, which a
/// hand-written manifest may leave unquoted and which the capture annotations compare as text).
fn string_map(value: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let Some(mapping) = value.as_mapping() else { return Err("expected a mapping of strings".to_owned()) };
    mapping
        .iter()
        .map(|(key, value)| {
            let key = key.as_str().ok_or_else(|| format!("the key {key:?} is not a string"))?;
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("{key}: expected a string, found {other:?}")),
            };
            Ok((key.to_owned(), value))
        })
        .collect()
}

fn container_names(spec: &Mapping) -> Vec<String> {
    ["containers", "initContainers"]
        .iter()
        .filter_map(|list| spec.get(*list).and_then(Value::as_sequence))
        .flatten()
        .filter_map(|container| container.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// A container port the sidecar needs for itself, if an application container declares one.
fn claimed_port(spec: &Mapping) -> Option<u64> {
    let reserved = [
        u64::from(DEFAULT_ADMIN_PORT),
        u64::from(crate::capture::VIRTUAL_OUTBOUND_PORT),
        u64::from(ISTIO_READINESS_PORT),
        u64::from(ISTIO_PROMETHEUS_PORT),
    ];
    spec.get("containers")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|container| container.get("ports").and_then(Value::as_sequence))
        .flatten()
        .filter_map(|port| port.get("containerPort").and_then(Value::as_u64))
        .find(|port| reserved.contains(port))
}

/// The capture settings the template's annotations ask for.
fn capture_settings(annotations: &[(String, String)], proxy_uid: u32) -> Result<CaptureSettings, String> {
    let annotation = |key: &str| annotations.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    fn items(text: &str) -> impl Iterator<Item = &str> {
        text.split(',').map(str::trim).filter(|item| !item.is_empty())
    }
    let mut settings = CaptureSettings { proxy_uid, ..CaptureSettings::default() };
    if let Some(text) = annotation(EXCLUDE_PORTS_ANNOTATION) {
        for item in items(text) {
            let port = item
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0 && item.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                format!("{EXCLUDE_PORTS_ANNOTATION} {text:?}: {item:?} is not a port (a number from 1 to 65535)")
            })?;
            settings.exclude_ports.push(port);
        }
    }
    if let Some(text) = annotation(EXCLUDE_RANGES_ANNOTATION) {
        for item in items(text) {
            let cidr: Cidr =
                item.parse().map_err(|reason| format!("{EXCLUDE_RANGES_ANNOTATION} {text:?}: {reason}"))?;
            settings.exclude_cidrs.push(cidr);
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests;
