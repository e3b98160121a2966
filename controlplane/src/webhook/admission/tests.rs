use base64::Engine;
use serde_json::{Value, json};

use super::*;
use crate::inject::{InjectOptions, PROXY_CONTAINER, inject};

fn admission() -> Admission {
    Admission::new(InjectOptions::default(), "pilotfish-system")
}

/// A Pod as a ReplicaSet creates it: no name yet, `generateName`, no namespace in the object itself.
fn pod() -> Value {
    json!({
        "metadata": {
            "generateName": "reviews-v2-5d8f7c9b6-",
            "labels": { "app": "reviews", "version": "v2", "pod-template-hash": "5d8f7c9b6" },
        },
        "spec": {
            "containers": [{ "name": "reviews", "image": "example.invalid/reviews", "ports": [{ "containerPort": 9080 }] }],
        },
    })
}

fn review_of(namespace: &str, pod: Value) -> Vec<u8> {
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "", "version": "v1", "kind": "Pod" },
            "resource": { "group": "", "version": "v1", "resource": "pods" },
            "namespace": namespace,
            "operation": "CREATE",
            "object": pod,
        },
    });
    serde_json::to_vec(&review).expect("JSON")
}

fn response(answer: &Answer) -> &Value {
    assert_eq!(answer.review["apiVersion"], API_VERSION);
    assert_eq!(answer.review["kind"], "AdmissionReview");
    &answer.review["response"]
}

fn patch_of(response: &Value) -> Vec<Value> {
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes =
        base64::engine::general_purpose::STANDARD.decode(response["patch"].as_str().expect("a patch")).expect("base64");
    serde_json::from_slice(&bytes).expect("a JSON array of operations")
}

/// Applies `add`, `replace` and `remove` as RFC 6902 says, for the object members this webhook patches.
fn apply(mut document: Value, operations: &[Value]) -> Value {
    for operation in operations {
        let path = operation["path"].as_str().expect("a path");
        let tokens: Vec<String> =
            path.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect();
        let (last, parents) = tokens.split_last().expect("not the root");
        let mut target = &mut document;
        for token in parents {
            target = target.get_mut(token.as_str()).expect("the parent exists");
        }
        let object = target.as_object_mut().expect("an object member");
        match operation["op"].as_str() {
            Some("add") => {
                object.insert(last.clone(), operation["value"].clone());
            }
            Some("replace") => {
                assert!(object.contains_key(last), "replace needs {path} to exist");
                object.insert(last.clone(), operation["value"].clone());
            }
            Some("remove") => {
                object.remove(last).expect("remove needs the member");
            }
            other => panic!("unexpected operation {other:?}"),
        }
    }
    document
}

#[test]
fn a_pod_is_patched_into_exactly_what_pilotfish_inject_writes_for_it() {
    let answer = admission().review(&review_of("bookinfo", pod()));
    let response = response(&answer);
    assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002", "the request's uid is echoed");
    assert_eq!(response["allowed"], true);
    assert_eq!(answer.outcome, Outcome::Injected);
    assert_eq!(answer.pod, "bookinfo/reviews-v2-5d8f7c9b6-*");
    let operations = patch_of(response);
    assert_eq!(operations, [json!({ "op": "add", "path": "/spec/initContainers", "value": operations[0]["value"] })]);

    let mut manifest = pod();
    manifest["apiVersion"] = json!("v1");
    manifest["kind"] = json!("Pod");
    let patched = apply(manifest.clone(), &operations);
    let options = InjectOptions { namespace: Some("bookinfo".to_owned()), ..InjectOptions::default() };
    let by_hand = inject(&serde_json::to_string(&manifest).expect("JSON"), &options).expect("injects");
    let by_hand: Value = serde_yaml::from_str(by_hand.yaml.trim_start_matches("---\n")).expect("YAML");
    assert_eq!(patched, by_hand, "the webhook and `pilotfish inject` add the same sidecar");

    let proxy = &patched["spec"]["initContainers"][1];
    assert_eq!(proxy["name"], PROXY_CONTAINER);
    let args = proxy["args"].as_array().expect("args");
    let node = args.iter().position(|a| a == "--service-node").expect("--service-node");
    assert_eq!(args[node + 1], "$(POD_NAME).$(POD_NAMESPACE)", "the kubelet fills in the generated name");
    let bootstrap = args[args.iter().position(|a| a == "--config-yaml").expect("--config-yaml") + 1].as_str();
    let bootstrap: Value = serde_json::from_str(bootstrap.expect("text")).expect("JSON");
    assert_eq!(bootstrap["node"]["metadata"]["NAMESPACE"], "bookinfo", "the request's namespace");
    assert_eq!(bootstrap["node"]["metadata"]["LABELS"]["version"], "v2");
}

#[test]
fn a_pod_that_opts_out_or_is_injected_already_is_allowed_unchanged_with_the_reason_as_a_warning() {
    let mut opted_out = pod();
    opted_out["metadata"]["annotations"] = json!({ "sidecar.istio.io/inject": "false" });
    let answer = admission().review(&review_of("bookinfo", opted_out));
    let response = response(&answer);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none() && response.get("patchType").is_none(), "{response}");
    let warning = response["warnings"][0].as_str().expect("a warning");
    assert!(warning.contains("not injected") && warning.contains("\"false\""), "{warning}");

    let once = admission().review(&review_of("bookinfo", pod()));
    let injected = apply(pod(), &patch_of(&once.review["response"]));
    let twice = admission().review(&review_of("bookinfo", injected));
    assert!(twice.review["response"].get("patch").is_none());
    assert!(matches!(&twice.outcome, Outcome::Unchanged(notes) if notes[0].contains("already injected")));
}

#[test]
fn a_pod_pilotfish_inject_refuses_is_denied_with_its_message() {
    let mut pod = pod();
    pod["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(15001);
    let answer = admission().review(&review_of("bookinfo", pod));
    let response = response(&answer);
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().expect("a message");
    assert!(message.contains("15001") && message.contains("generateName reviews-v2-5d8f7c9b6-"), "{message}");
    assert!(message.contains("Pod bookinfo/"), "the message names the pod: {message}");
}

#[test]
fn system_namespaces_and_pilotfishs_own_are_never_injected() {
    for namespace in ["kube-system", "kube-public", "kube-node-lease", "pilotfish-system"] {
        let answer = admission().review(&review_of(namespace, pod()));
        assert_eq!(response(&answer)["allowed"], true, "{namespace}");
        assert!(response(&answer).get("patch").is_none(), "{namespace}: not patched");
    }
    let answer = admission().review(&review_of("istio-system", pod()));
    assert_eq!(answer.outcome, Outcome::Injected, "any other namespace is");
}

#[test]
fn anything_but_creating_a_pod_passes_unchanged_with_a_warning() {
    let mut update: Value = serde_json::from_slice(&review_of("bookinfo", pod())).expect("JSON");
    update["request"]["operation"] = json!("UPDATE");
    let mut deployment = update.clone();
    deployment["request"]["operation"] = json!("CREATE");
    deployment["request"]["kind"] = json!({ "group": "apps", "version": "v1", "kind": "Deployment" });
    for (review, said) in [(update, "UPDATE of Pod (v1)"), (deployment, "CREATE of Deployment (apps/v1)")] {
        let answer = admission().review(&serde_json::to_vec(&review).expect("JSON"));
        let response = response(&answer);
        assert_eq!(response["allowed"], true);
        assert!(response.get("patch").is_none());
        let warning = response["warnings"][0].as_str().expect("a warning");
        assert!(warning.contains(said), "{warning}");
    }
}

#[test]
fn a_malformed_review_gets_a_denying_review_saying_what_is_wrong() {
    let valid: Value = serde_json::from_slice(&review_of("bookinfo", pod())).expect("JSON");
    let mut wrong_kind = valid.clone();
    wrong_kind["kind"] = json!("Pod");
    let mut old_version = valid.clone();
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let mut no_uid = valid.clone();
    no_uid["request"].as_object_mut().expect("object").remove("uid");
    let mut no_object = valid.clone();
    no_object["request"].as_object_mut().expect("object").remove("object");
    let cases: [(Vec<u8>, &str, &str); 6] = [
        (b"{\"apiVersion\": ".to_vec(), "", "not JSON"),
        (b"[1, 2]".to_vec(), "", "kind is null"),
        (serde_json::to_vec(&wrong_kind).expect("JSON"), "705ab4f5-6393-11e8-b7cc-42010a800002", "kind is \"Pod\""),
        (serde_json::to_vec(&old_version).expect("JSON"), "705ab4f5-6393-11e8-b7cc-42010a800002", "v1beta1"),
        (serde_json::to_vec(&no_uid).expect("JSON"), "", "request.uid is missing"),
        (serde_json::to_vec(&no_object).expect("JSON"), "705ab4f5-6393-11e8-b7cc-42010a800002", "request.object"),
    ];
    for (body, uid, said) in cases {
        let answer = admission().review(&body);
        let response = response(&answer);
        assert_eq!(response["uid"], uid, "{said}");
        assert_eq!(response["allowed"], false, "{said}");
        assert_eq!(response["status"]["code"], 400, "{said}");
        let message = response["status"]["message"].as_str().expect("a message");
        assert!(message.starts_with("malformed AdmissionReview") && message.contains(said), "{message}");
    }
}

#[test]
fn the_patch_escapes_keys_and_removes_what_is_gone() {
    let from = json!({ "metadata": { "annotations": { "a/b": "1", "c~d": "2", "gone": "3" } }, "list": [1, 2] });
    let to = json!({ "metadata": { "annotations": { "a/b": "9", "c~d": "2", "new": "4" } }, "list": [1, 2, 3] });
    let operations = json_patch(&from, &to);
    assert_eq!(
        operations,
        [
            json!({ "op": "replace", "path": "/list", "value": [1, 2, 3] }),
            json!({ "op": "replace", "path": "/metadata/annotations/a~1b", "value": "9" }),
            json!({ "op": "remove", "path": "/metadata/annotations/gone" }),
            json!({ "op": "add", "path": "/metadata/annotations/new", "value": "4" }),
        ]
    );
    assert_eq!(apply(from, &operations), to);
    assert!(json_patch(&to, &to).is_empty());
}
