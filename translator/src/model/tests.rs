use super::*;
use crate::input::read_yaml;

fn model(yaml: &str) -> Model {
    let (inputs, diagnostics) = read_yaml(yaml, "t.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let (world, _) = World::new(inputs);
    Model::new(&world, &BTreeSet::new())
}

const REVIEWS: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.7
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 9080}, {name: grpc-api, port: 9090, targetPort: api}]
"#;

#[test]
fn endpoints_come_from_slices_with_pod_labels_and_readiness() {
    let m = model(&format!(
        r#"{REVIEWS}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: reviews-1, namespace: shop, labels: {{kubernetes.io/service-name: reviews}}}}
addressType: IPv4
ports: [{{name: http, port: 9080}}]
endpoints:
- {{addresses: [10.0.0.1], conditions: {{ready: true}}, targetRef: {{kind: Pod, name: v1}}}}
- {{addresses: [10.0.0.2], conditions: {{ready: false}}, targetRef: {{kind: Pod, name: v2}}}}
- {{addresses: [10.0.0.3], conditions: {{ready: true, terminating: true}}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: v1, namespace: shop, labels: {{app: reviews, version: v1}}}}
"#
    ));
    let service = &m.services["reviews.shop.svc.cluster.local"];
    assert_eq!(service.addresses, ["10.96.0.7"]);
    assert_eq!(
        service.ports.iter().map(|p| (p.number, p.protocol)).collect::<Vec<_>>(),
        [(9080, Protocol::Http), (9090, Protocol::Grpc)]
    );
    assert_eq!(service.endpoints.len(), 1, "not-ready and terminating endpoints are dropped");
    assert_eq!(service.endpoints[0].labels.get("version").map(String::as_str), Some("v1"));
    let v1: Labels = [("version".to_owned(), "v1".to_owned())].into_iter().collect();
    assert_eq!(service.endpoints_for(9080, &v1).count(), 1);
    assert_eq!(service.endpoints_for(9090, &v1).count(), 0, "the slice has no port for 9090");
}

#[test]
fn without_slices_ready_pods_of_the_selector_are_endpoints_with_named_target_ports() {
    let m = model(&format!(
        r#"{REVIEWS}
---
apiVersion: v1
kind: Pod
metadata: {{name: a, namespace: shop, labels: {{app: reviews, version: v2}}}}
spec: {{containers: [{{name: c, ports: [{{name: api, containerPort: 7070}}]}}]}}
status: {{podIP: 10.0.0.9, phase: Running, conditions: [{{type: Ready, status: "True"}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: b, namespace: shop, labels: {{app: reviews}}}}
status: {{podIP: 10.0.0.8, phase: Pending}}
"#
    ));
    let service = &m.services["reviews.shop.svc.cluster.local"];
    assert_eq!(service.endpoints.len(), 1);
    assert_eq!(service.endpoints[0].ports, BTreeMap::from([(9080, 9080), (9090, 7070)]));
}

#[test]
fn service_entries_give_static_and_dns_services() {
    let m = model(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: local}
spec:
  hosts: [web.local]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 9101}, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: google}
spec:
  hosts: [www.googleapis.com]
  ports: [{number: 443, name: https, protocol: http}]
  resolution: DNS
"#,
    );
    let web = &m.services["web.local"];
    assert_eq!(web.resolution, Resolution::Static);
    assert_eq!(web.endpoints[0].ports, BTreeMap::from([(80, 9101)]));
    let google = &m.services["www.googleapis.com"];
    assert_eq!(google.resolution, Resolution::Dns);
    assert_eq!(google.endpoints[0].address, "www.googleapis.com", "a DNS entry resolves its own host");
    assert_eq!(google.ports[0].protocol, Protocol::Http, "protocols are case-insensitive");
}

#[test]
fn host_rules() {
    assert_eq!(resolve_host("reviews", "shop"), "reviews.shop.svc.cluster.local");
    assert_eq!(resolve_host("reviews.other.svc.cluster.local", "shop"), "reviews.other.svc.cluster.local");
    assert!(host_matches("*", "anything"));
    assert!(host_matches("*.example.com", "a.example.com"));
    assert!(host_matches("*.example.com", "a.b.example.com"));
    assert!(!host_matches("*.example.com", "example.com"));
    assert!(!host_matches("a.example.com", "b.example.com"));
}

#[test]
fn destination_rules_are_looked_up_by_namespace_then_specificity() {
    let m = model(&format!(
        r#"{REVIEWS}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: in-root, namespace: istio-system}}
spec: {{host: "*.svc.cluster.local"}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: in-service-ns, namespace: shop}}
spec: {{host: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: in-client-ns, namespace: client}}
spec: {{host: reviews.shop.svc.cluster.local}}
"#
    ));
    let host = "reviews.shop.svc.cluster.local";
    let name = |ns: &str| m.destination_rule(host, ns).map(|dr| dr.meta.name.clone());
    assert_eq!(name("client").as_deref(), Some("in-client-ns"));
    assert_eq!(name("shop").as_deref(), Some("in-service-ns"));
    assert_eq!(name("elsewhere").as_deref(), Some("in-service-ns"));
    assert_eq!(
        m.destination_rule("other.svc.cluster.local", "elsewhere").map(|d| d.meta.name.as_str()),
        Some("in-root")
    );
}

#[test]
fn service_entry_hosts_shaped_as_services_of_their_namespace_get_short_names() {
    let model = model(
        r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local, ratings.other.svc.cluster.local, api.example.com]
  ports: [{name: http, number: 9080, protocol: HTTP}]
  resolution: DNS
"#,
    );
    let names = |host: &str| model.services[host].short_names.clone();
    assert_eq!(names("reviews.default.svc.cluster.local"), ["reviews", "reviews.default", "reviews.default.svc"]);
    assert!(names("ratings.other.svc.cluster.local").is_empty(), "another namespace's name is not expanded");
    assert!(names("api.example.com").is_empty());
}
