//! One admission review: an `admission.k8s.io/v1` AdmissionReview for a Pod in, the AdmissionReview answering it
//! out. Pure: no I/O, no clock.
//!
//! ```text
//!   request.object (the Pod) ──► crate::inject::inject_object (what `pilotfish inject` runs) ──► the Pod with
//!                                sidecar; the difference as a JSON Patch (RFC 6902), base64 in `response.patch`
//! ```
//!
//! What it answers:
//! - a Pod injected: allowed, with the patch;
//! - a Pod left alone (opted out by annotation, `hostNetwork`, already injected): allowed unchanged, with the
//!   reason as a warning, which `kubectl` prints;
//! - a Pod that `pilotfish inject` refuses (a container on the sidecar's ports, a malformed capture annotation, an
//!   inject value other than "true" or "false"): denied with the same message. Injected as written it would not
//!   work, and admitted without a sidecar it would silently bypass the mesh its namespace asked for;
//! - a Pod in a namespace that is never injected (see [`Admission::ignored_namespaces`]): allowed unchanged,
//!   whatever the MutatingWebhookConfiguration's selectors let through;
//! - anything but the CREATE of a Pod: allowed unchanged, with a warning (the webhook's rules send only those);
//! - a body that is not an AdmissionReview: an AdmissionReview that denies, saying what is wrong.

use std::collections::BTreeSet;

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::inject::{InjectOptions, inject_object};

/// The AdmissionReview version pilotfish reads and answers (the MutatingWebhookConfiguration asks for it alone).
pub const API_VERSION: &str = "admission.k8s.io/v1";

/// Namespaces whose pods are never injected: Kubernetes' own (as istiod's injector ignores them). The namespace
/// pilotfish runs in is added by whoever builds an [`Admission`]: pilotfish must never need itself to start.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// What the webhook injects, and where it never does.
#[derive(Clone, Debug)]
pub struct Admission {
    pub options: InjectOptions,
    pub ignored_namespaces: BTreeSet<String>,
}

impl Admission {
    /// Injects `options`' sidecar everywhere but [`SYSTEM_NAMESPACES`] and `own_namespace`.
    pub fn new(options: InjectOptions, own_namespace: &str) -> Admission {
        let mut ignored_namespaces: BTreeSet<String> = SYSTEM_NAMESPACES.iter().map(|n| (*n).to_owned()).collect();
        ignored_namespaces.insert(own_namespace.to_owned());
        Admission { options, ignored_namespaces }
    }

    /// The AdmissionReview answering `body`, and what it says; never fails (a bad request gets a denying answer).
    pub fn review(&self, body: &[u8]) -> Answer {
        let (uid, pod, verdict) = match read_request(body) {
            Ok(request) => {
                let uid = request["uid"].as_str().unwrap_or_default().to_owned();
                (uid, pod_name(&request), self.verdict(&request))
            }
            Err((uid, reason)) => {
                (uid, "<unknown>".to_owned(), Verdict::Deny(format!("malformed AdmissionReview: {reason}")))
            }
        };
        let mut response = Map::new();
        response.insert("uid".to_owned(), Value::String(uid.clone()));
        let outcome = match verdict {
            Verdict::Allow { patch, warnings } => {
                response.insert("allowed".to_owned(), Value::Bool(true));
                if !patch.is_empty() {
                    let bytes = serde_json::to_vec(&patch).unwrap_or_default();
                    response.insert("patchType".to_owned(), json!("JSONPatch"));
                    response.insert("patch".to_owned(), json!(base64::engine::general_purpose::STANDARD.encode(bytes)));
                }
                if !warnings.is_empty() {
                    response.insert("warnings".to_owned(), json!(warnings));
                }
                if patch.is_empty() { Outcome::Unchanged(warnings) } else { Outcome::Injected }
            }
            Verdict::Deny(message) => {
                response.insert("allowed".to_owned(), Value::Bool(false));
                response.insert(
                    "status".to_owned(),
                    json!({ "status": "Failure", "code": 400, "reason": "BadRequest", "message": message }),
                );
                Outcome::Denied(message)
            }
        };
        let review = json!({ "apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response });
        Answer { review, uid, pod, outcome }
    }

    fn verdict(&self, request: &Value) -> Verdict {
        let kind = &request["kind"];
        let is_pod =
            kind["group"].as_str().unwrap_or_default().is_empty() && kind["version"] == "v1" && kind["kind"] == "Pod";
        let operation = request["operation"].as_str().unwrap_or_default();
        if !is_pod || operation != "CREATE" {
            return Verdict::unchanged(format!(
                "pilotfish injects sidecars into Pods being created; {operation} of {} left unchanged \
                 (check the MutatingWebhookConfiguration's rules)",
                describe_kind(kind)
            ));
        }
        let namespace = request["namespace"].as_str().unwrap_or_default();
        if self.ignored_namespaces.contains(namespace) {
            return Verdict::unchanged(format!(
                "pods in namespace {namespace} are never injected (Kubernetes' own namespaces and pilotfish's)"
            ));
        }
        let Some(pod) = request.get("object").filter(|o| o.is_object()) else {
            return Verdict::Deny("malformed AdmissionReview: request.object (the Pod) is missing".to_owned());
        };
        // The injector reads what `kubectl get -o yaml` prints; a Pod in a review is that, once kind is certain.
        let mut object = pod.clone();
        object["apiVersion"] = json!("v1");
        object["kind"] = json!("Pod");
        let mut injected = match serde_yaml::to_value(&object) {
            Ok(value) => value,
            Err(err) => return Verdict::Deny(format!("the Pod does not read: {err}")),
        };
        let options = InjectOptions { namespace: Some(namespace.to_owned()), ..self.options.clone() };
        let notes = match inject_object(&mut injected, &place(pod), &options) {
            Ok(notes) => notes,
            Err(err) => return Verdict::Deny(format!("pilotfish cannot inject its sidecar: {err}")),
        };
        let injected: Value = match serde_json::to_value(&injected) {
            Ok(value) => value,
            Err(err) => return Verdict::Deny(format!("the injected Pod does not serialize: {err}")),
        };
        Verdict::Allow { patch: json_patch(&object, &injected), warnings: notes }
    }
}

/// The answer to one review, and what it says, for logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The AdmissionReview to send back.
    pub review: Value,
    pub uid: String,
    /// `namespace/name` of the pod (`namespace/prefix*` before its name is generated).
    pub pod: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    /// Allowed as it came; the notes say why.
    Unchanged(Vec<String>),
    Denied(String),
}

enum Verdict {
    Allow { patch: Vec<Value>, warnings: Vec<String> },
    Deny(String),
}

impl Verdict {
    fn unchanged(warning: String) -> Verdict {
        Verdict::Allow { patch: Vec::new(), warnings: vec![warning] }
    }
}

/// The review's `request`, or the uid (if any could be read) and what is wrong.
fn read_request(body: &[u8]) -> Result<Value, (String, String)> {
    let review: Value = serde_json::from_slice(body).map_err(|err| (String::new(), format!("not JSON: {err}")))?;
    let uid = review["request"]["uid"].as_str().unwrap_or_default().to_owned();
    let fail = |reason: String| Err((uid.clone(), reason));
    if review["kind"] != "AdmissionReview" {
        return fail(format!("kind is {}, expected AdmissionReview", review["kind"]));
    }
    if review["apiVersion"] != API_VERSION {
        return fail(format!("apiVersion is {}, expected {API_VERSION}", review["apiVersion"]));
    }
    if !review["request"].is_object() {
        return fail("it has no request".to_owned());
    }
    if uid.is_empty() {
        return fail("request.uid is missing".to_owned());
    }
    Ok(review["request"].clone())
}

fn describe_kind(kind: &Value) -> String {
    let group = kind["group"].as_str().unwrap_or_default();
    let version = kind["version"].as_str().unwrap_or_default();
    let name = kind["kind"].as_str().unwrap_or("an unnamed kind");
    match group {
        "" => format!("{name} ({version})"),
        group => format!("{name} ({group}/{version})"),
    }
}

/// How the injector's messages place the pod: at admission, a pod made from `generateName` has no name yet.
fn place(pod: &Value) -> String {
    let metadata = &pod["metadata"];
    match (metadata["name"].as_str().filter(|n| !n.is_empty()), metadata["generateName"].as_str()) {
        (None, Some(prefix)) => format!("admission review (generateName {prefix})"),
        _ => "admission review".to_owned(),
    }
}

/// `namespace/name` of the pod under review, for logs.
fn pod_name(request: &Value) -> String {
    let namespace = request["namespace"].as_str().unwrap_or_default();
    let metadata = &request["object"]["metadata"];
    match (request["name"].as_str().filter(|n| !n.is_empty()), metadata["generateName"].as_str()) {
        (Some(name), _) => format!("{namespace}/{name}"),
        (None, Some(prefix)) => format!("{namespace}/{prefix}*"),
        (None, None) => format!("{namespace}/<unnamed>"),
    }
}

// === JSON Patch ===

/// The operations that turn `from` into `to`: objects are compared member by member, anything else (arrays
/// included) is replaced whole when it differs. An injected pod differs in a few members, so the patch says
/// exactly what injection changed.
pub fn json_patch(from: &Value, to: &Value) -> Vec<Value> {
    let mut operations = Vec::new();
    diff(from, to, &mut String::new(), &mut operations);
    operations
}

fn diff(from: &Value, to: &Value, path: &mut String, operations: &mut Vec<Value>) {
    match (from, to) {
        (Value::Object(before), Value::Object(after)) => {
            for (key, old) in before {
                let length = path.len();
                push_token(path, key);
                match after.get(key) {
                    Some(new) => diff(old, new, path, operations),
                    None => operations.push(json!({ "op": "remove", "path": path })),
                }
                path.truncate(length);
            }
            for (key, new) in after {
                if !before.contains_key(key) {
                    let length = path.len();
                    push_token(path, key);
                    operations.push(json!({ "op": "add", "path": path, "value": new }));
                    path.truncate(length);
                }
            }
        }
        _ if from == to => {}
        _ => operations.push(json!({ "op": "replace", "path": path, "value": to })),
    }
}

/// Appends `/key` to a JSON Pointer (RFC 6901: `~` is written `~0`, `/` is written `~1`).
fn push_token(path: &mut String, key: &str) {
    path.push('/');
    path.push_str(&key.replace('~', "~0").replace('/', "~1"));
}

#[cfg(test)]
mod tests;
