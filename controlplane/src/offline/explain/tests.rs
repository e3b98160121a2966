use super::*;
use crate::snapshot::SnapshotBuilder;
use translator::{ProxyClass, Role, Translator, World, read_yaml};

const CONFIG: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.0.0.1, ports: {http: 9080}, labels: {version: v1}}
  - {address: 10.0.0.2, ports: {http: 9080}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["bookinfo.local"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: [bookinfo.local]
  gateways: [istio-system/gw]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews.local, subset: v2}}]
  - name: abort
    match: [{uri: {prefix: /broken}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: reviews.local, subset: v1}}]
  - name: split
    route:
    - {destination: {host: reviews.local, subset: v1}, weight: 80}
    - {destination: {host: reviews.local, subset: v2}, weight: 20}
"#;

fn gateway_snapshot() -> Snapshot {
    let mut class = ProxyClass::new(Role::Gateway);
    class.labels.insert("istio".into(), "ingressgateway".into());
    snapshot_for(&class)
}

fn snapshot_for(class: &ProxyClass) -> Snapshot {
    let (inputs, diagnostics) = read_yaml(CONFIG, "t.yaml");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let (world, _) = World::new(inputs);
    let translation = Translator::new(&world).translate(class);
    let mut builder = SnapshotBuilder::default();
    for resource in translation.resources() {
        builder.add_any(&resource).expect("valid");
    }
    builder.build()
}

fn walk(line: &str, headers: &[&str]) -> Explanation {
    let headers: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    explain(&gateway_snapshot(), &Request::parse(line, &headers).expect("request"), &[])
}

#[test]
fn a_header_match_picks_its_route_and_names_the_virtual_service() {
    let explanation = walk("GET http://bookinfo.local:8080/productpage", &["end-user: jason"]);
    let text = explanation.text();
    assert!(text.contains("listener \"0.0.0.0_8080\""), "{text}");
    assert!(text.contains("virtual host \"bookinfo.local:8080\""), "{text}");
    assert!(text.contains("route 0 \"jason\": matches (from VirtualService default/bookinfo)"), "{text}");
    assert!(text.contains("endpoints: 10.0.0.2:9080"), "{text}");
    assert_eq!(explanation.outcome, Outcome::Clusters(vec![("outbound|9080|v2|reviews.local".into(), 100)]));
}

#[test]
fn skipped_routes_say_why_and_weights_show_as_shares() {
    let explanation = walk("http://bookinfo.local:8080/productpage", &[]);
    let text = explanation.text();
    assert!(text.contains("route 0 \"jason\": skipped, header \"end-user\" must be \"jason\", got none"), "{text}");
    assert!(
        text.contains("route 1 \"abort\": skipped, path \"/productpage\" does not start with \"/broken\""),
        "{text}"
    );
    assert!(text.contains("cluster \"outbound|9080|v1|reviews.local\" (80%)"), "{text}");
    assert!(text.contains("cluster \"outbound|9080|v2|reviews.local\" (20%)"), "{text}");
}

#[test]
fn a_full_abort_ends_the_walk_with_its_status() {
    let explanation = walk("GET http://bookinfo.local:8080/broken/x", &[]);
    assert!(explanation.text().contains("abort 100% of requests with status 503"), "{}", explanation.text());
    assert_eq!(explanation.outcome, Outcome::Status(503));
}

#[test]
fn unknown_hosts_and_ports_are_explained() {
    let wrong_host = walk("GET http://other.local:8080/", &[]);
    assert_eq!(wrong_host.outcome, Outcome::Status(404));
    assert!(wrong_host.text().contains("blackhole"), "{}", wrong_host.text());
    let wrong_port = walk("GET http://bookinfo.local:9999/", &[]);
    assert_eq!(wrong_port.outcome, Outcome::NoListener);
    assert!(wrong_port.text().contains("listeners on: 8080"), "{}", wrong_port.text());
    let mapped = explain(
        &gateway_snapshot(),
        &Request::parse("GET http://bookinfo.local/", &[]).expect("request"),
        &[(80, 8080, "istio-system/istio-ingressgateway".into())],
    );
    assert!(mapped.text().contains("port 80 is port 8080"), "{}", mapped.text());
}

#[test]
fn parses_requests() {
    let request = Request::parse("post http://a.b:81/x/y?q=1&r", &["X-Thing: v".to_owned()]).expect("parses");
    assert_eq!(
        (request.method.as_str(), request.host.as_str(), request.port, request.path.as_str()),
        ("POST", "a.b", 81, "/x/y")
    );
    assert_eq!(request.query, [("q".to_owned(), "1".to_owned()), ("r".to_owned(), String::new())]);
    assert_eq!(request.header("x-thing").as_deref(), Some("v"));
    assert!(Request::parse("GET ftp://x/", &[]).is_err());
    assert!(Request::parse("GET http://x/", &["no-colon".to_owned()]).is_err());
}

fn sidecar_walk(outbound_bind: Option<&str>, line: &str) -> Explanation {
    let class = ProxyClass { outbound_bind: outbound_bind.map(str::to_owned), ..ProxyClass::new(Role::Sidecar) };
    explain(&snapshot_for(&class), &Request::parse(line, &[]).expect("request"), &[])
}

#[test]
fn a_captured_sidecar_starts_at_the_virtual_outbound_listener_and_passes_the_unknown_through() {
    let known = sidecar_walk(None, "GET http://reviews.local:9080/");
    let text = known.text();
    assert!(text.contains("captured: iptables redirects the connection to listener \"virtualOutbound\""), "{text}");
    assert!(text.contains("listener \"0.0.0.0_9080\" on port 9080 (does not bind)"), "{text}");
    assert_eq!(known.outcome, Outcome::Clusters(vec![("outbound|9080||reviews.local".into(), 100)]));

    let unknown_host = sidecar_walk(None, "GET http://example.com:9080/");
    let text = unknown_host.text();
    assert!(text.contains("virtual host \"allow_any\""), "{text}");
    assert!(text.contains("original destination: the address the client dialled, port 9080"), "{text}");
    assert_eq!(unknown_host.outcome, Outcome::Clusters(vec![("PassthroughCluster".into(), 100)]));

    let unknown_port = sidecar_walk(None, "GET http://example.com:5432/");
    let text = unknown_port.text();
    assert!(text.contains("filter chain \"virtualOutbound-catchall-tcp\" proxies the connection as TCP"), "{text}");
    assert_eq!(unknown_port.outcome, Outcome::Clusters(vec![("PassthroughCluster".into(), 100)]));
}

#[test]
fn a_sidecar_that_binds_its_listeners_refuses_unknown_ports_and_hosts() {
    let unknown_host = sidecar_walk(Some("127.0.0.2"), "GET http://example.com:9080/");
    assert_eq!(unknown_host.outcome, Outcome::Status(404), "{}", unknown_host.text());
    assert!(!unknown_host.text().contains("captured"), "{}", unknown_host.text());
    let unknown_port = sidecar_walk(Some("127.0.0.2"), "GET http://example.com:5432/");
    assert_eq!(unknown_port.outcome, Outcome::NoListener, "{}", unknown_port.text());
}
