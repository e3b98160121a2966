use super::*;
use crate::input::World;

#[test]
fn reads_every_corpus_file() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/istio-bookinfo");
    let Ok(entries) = std::fs::read_dir(&corpus) else {
        panic!("the corpus is expected at {}", corpus.display());
    };
    let mut total = 0;
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let (inputs, diagnostics) = read_yaml(&text, &path.display().to_string());
        assert!(diagnostics.is_empty(), "{}: {diagnostics:?}", path.display());
        total += inputs.len();
    }
    assert!(total >= 20, "read {total} objects");
}

#[test]
fn reads_all_three_istio_versions_and_kubernetes_kinds() {
    let text = r#"
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: a}
spec: {selector: {istio: ingressgateway}, servers: []}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: b, namespace: shop}
spec: {hosts: [b]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: c}
spec: {host: c}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080, targetPort: 9080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: reviews-abc, labels: {kubernetes.io/service-name: reviews}}
addressType: IPv4
ports: [{name: http, port: 9080}]
endpoints:
- addresses: [10.0.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: reviews-v1-x}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1-x, labels: {app: reviews, version: v1}}
status: {podIP: 10.0.0.1, phase: Running, conditions: [{type: Ready, status: "True"}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
"#;
    let (inputs, diagnostics) = read_yaml(text, "t.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let kinds: Vec<Kind> = inputs.iter().map(Input::kind).collect();
    assert_eq!(
        kinds,
        [Kind::Gateway, Kind::VirtualService, Kind::DestinationRule, Kind::Service, Kind::EndpointSlice, Kind::Pod]
    );
    assert_eq!(inputs[1].meta().namespace, "shop");
    assert_eq!(inputs[0].meta().namespace, "default");
    let Input::EndpointSlice(slice) = &inputs[4] else { panic!("slice") };
    assert_eq!(slice.spec.service_name, "reviews");
    assert_eq!(slice.spec.endpoints[0].pod.as_deref(), Some("reviews-v1-x"));
    let Input::Pod(pod) = &inputs[5] else { panic!("pod") };
    assert!(pod.spec.ready);
    assert_eq!(pod.spec.ip.as_deref(), Some("10.0.0.1"));
}

#[test]
fn a_bad_field_names_the_object_and_path_and_the_rest_is_read() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: broken, namespace: shop}
spec:
  hosts: [a]
  http:
  - route:
    - destination: {host: a}
      weight: "lots"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fine}
spec: {host: a}
"#;
    let (inputs, diagnostics) = read_yaml(text, "t.yaml");
    assert_eq!(inputs.len(), 1);
    let message = diagnostics[0].to_string();
    assert!(message.contains("VirtualService shop/broken"), "{message}");
    assert!(message.contains("spec.http[0].route[0].weight"), "{message}");
    assert!(message.contains("t.yaml#1"), "{message}");
}

#[test]
fn lists_are_unpacked_and_duplicates_reported() {
    let text = r#"
apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: same}
  spec: {host: a}
- apiVersion: networking.istio.io/v1
  kind: DestinationRule
  metadata: {name: same}
  spec: {host: b}
"#;
    let (inputs, diagnostics) = read_yaml(text, "t.yaml");
    assert!(diagnostics.is_empty());
    let (world, duplicates) = World::new(inputs);
    assert_eq!(world.destination_rules.len(), 1);
    assert_eq!(world.destination_rules[0].spec.host, "a");
    assert!(duplicates[0].to_string().contains("defined twice"), "{duplicates:?}");
}

#[test]
fn raw_envoy_resources_and_unknown_kinds_are_skipped_quietly() {
    let text = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    let (inputs, diagnostics) = read_yaml(text, "t.yaml");
    assert!(inputs.is_empty() && diagnostics.is_empty());
}
