use super::*;
use crate::Severity;
use crate::input::World;

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
    let read = read(text, "t.yaml");
    assert!(read.diagnostics.is_empty(), "{:?}", read.diagnostics);
    let inputs = read.inputs;
    assert_eq!(read.ignored.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>(), ["Deployment"]);
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
    let read = read(text, "t.yaml");
    assert_eq!(read.inputs.len(), 1);
    assert_eq!(read.unreadable.len(), 1, "the broken object is named, for its last valid version to stand in");
    let message = read.diagnostics[0].to_string();
    assert!(message.contains("VirtualService shop/broken"), "{message}");
    assert!(message.contains("spec.http[0].route[0].weight"), "{message}");
    assert!(message.contains("(at t.yaml:10:7)"), "the weight's own line: {message}");
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
fn raw_envoy_resources_are_read_and_other_kubernetes_kinds_left_alone() {
    let text = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\nproxies: {role: gateway}\nresources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: y\n";
    let read = read(text, "t.yaml");
    assert!(read.inputs.is_empty() && read.diagnostics.is_empty(), "{:?}", read.diagnostics);
    assert_eq!(read.envoy.len(), 2);
    assert_eq!(read.envoy[1].proxies.role.as_deref(), Some("gateway"));
    assert_eq!(read.envoy[1].source.position.line, 10, "the list item's own line");
    assert_eq!(read.ignored[0].kind, "ConfigMap");
}

fn messages(read: &Read) -> Vec<String> {
    read.diagnostics.iter().map(ToString::to_string).collect()
}

#[test]
fn a_misspelled_kind_is_an_error_that_names_the_kind_meant() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualSerivce\nmetadata: {name: reviews}\nspec: {hosts: [reviews]}\n";
    let read = read(text, "t.yaml");
    assert!(read.inputs.is_empty());
    let messages = messages(&read);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].starts_with("error: VirtualSerivce default/reviews"), "{messages:?}");
    assert!(messages[0].contains("did you mean VirtualService?"), "{messages:?}");
    assert!(messages[0].contains("(at t.yaml:2:1)"), "{messages:?}");
}

#[test]
fn security_policy_pilotfish_does_not_enforce_is_an_error_and_other_istio_kinds_a_warning() {
    let text = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: shop}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec: {}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata: {name: c}
"#;
    let read = read(text, "t.yaml");
    let found: Vec<(Severity, bool)> =
        read.diagnostics.iter().map(|d| (d.severity, d.message.contains("NOT applied"))).collect();
    assert_eq!(
        found,
        [(Severity::Error, true), (Severity::Warning, false), (Severity::Warning, false), (Severity::Warning, false)]
    );
    assert!(read.diagnostics[0].message.contains("AuthorizationPolicy shop/deny-all"), "{:?}", read.diagnostics);
}

#[test]
fn an_unknown_field_is_an_error_with_the_field_meant_and_istio_fields_pilotfish_skips_are_warnings() {
    let text = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  host: [reviews]
  http:
  - timout: 1s
    route:
    - destinaton: {host: reviews}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {warmupDurationSecs: 10s}}
"#;
    let read = read(text, "t.yaml");
    let messages = messages(&read);
    assert_eq!(read.inputs.iter().map(Input::kind).collect::<Vec<_>>(), [Kind::DestinationRule], "{messages:?}");
    assert_eq!(read.unreadable.len(), 1);
    let expected = [
        ("spec.host", "did you mean hosts?", "t.yaml:5:3"),
        ("spec.http[0].timout", "did you mean timeout?", "t.yaml:7:5"),
        ("spec.http[0].route[0].destinaton", "did you mean destination?", "t.yaml:9:7"),
        ("spec.trafficPolicy.loadBalancer.warmupDurationSecs", "not translated by pilotfish", "t.yaml:16:34"),
    ];
    assert_eq!(messages.len(), expected.len(), "{messages:?}");
    for (message, (field, hint, at)) in messages.iter().zip(expected) {
        assert!(message.contains(field) && message.contains(hint) && message.contains(at), "{message}");
    }
    assert_eq!(read.diagnostics[3].severity, Severity::Warning);
}

#[test]
fn an_unsupported_istio_version_names_the_object() {
    let text = "apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: gw, namespace: edge}\n";
    let messages = messages(&read(text, "t.yaml"));
    assert!(messages[0].starts_with("error: Gateway edge/gw (networking.istio.io/v2)"), "{messages:?}");
}

#[test]
fn a_syntax_error_says_where_and_the_documents_before_it_are_read() {
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: a}\nspec: {host: a}\n---\nspec: [oops\n";
    let read = read(text, "t.yaml");
    assert!(!read.complete);
    assert_eq!(read.inputs.len(), 1);
    let messages = messages(&read);
    assert!(messages[0].contains("failed to parse YAML at line 7"), "{messages:?}");
    assert!(messages[0].contains("(at t.yaml:7:"), "{messages:?}");
}
