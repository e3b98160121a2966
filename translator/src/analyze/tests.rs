use super::*;
use crate::diagnostics::Severity;
use crate::input::read_yaml;
use crate::proxy::ProxyClass;
use crate::translate::Translator;

// === Helpers ===

/// The World of `yaml`, with the objects translation does not use.
fn world(yaml: &str) -> World {
    let read = crate::input::read(yaml, "test.yaml");
    World::new(read.inputs).0.with_ignored(read.ignored)
}

/// Every diagnostic of the Translator of `yaml` (validation and analysis), and of translating the representative
/// classes: what `pilotfish analyze` prints.
fn all(yaml: &str) -> Vec<Diagnostic> {
    let translator = Translator::new(&world(yaml));
    let mut diagnostics = translator.diagnostics().to_vec();
    for class in representative_classes(translator.model()) {
        diagnostics.extend(translator.translate(&class).diagnostics);
    }
    diagnostics
}

fn coded<'a>(diagnostics: &'a [Diagnostic], code: &str) -> Vec<&'a Diagnostic> {
    diagnostics.iter().filter(|d| d.code == Some(code)).collect()
}

fn listing(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(|d| format!("  {d}\n")).collect()
}

/// The one diagnostic with `code` about `object` (`Kind ns/name`) at `field`.
#[track_caller]
fn one<'a>(diagnostics: &'a [Diagnostic], code: &str, object: &str, field: &str) -> &'a Diagnostic {
    let found: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.code == Some(code) && d.object.as_ref().map(ToString::to_string).as_deref() == Some(object))
        .filter(|d| d.field == field)
        .collect();
    assert_eq!(found.len(), 1, "expected one {code} for {object} at {field}, got:\n{}", listing(diagnostics));
    found[0]
}

#[track_caller]
fn none(diagnostics: &[Diagnostic], code: &str) {
    assert!(coded(diagnostics, code).is_empty(), "expected no {code}, got:\n{}", listing(diagnostics));
}

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: default, labels: {app: web, version: v1}}
"#;

// === Gateways ===

#[test]
fn a_gateway_selector_no_workload_has_is_ist0101() {
    let d = all(r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: typo, namespace: istio-system}
spec:
  selector: {istio: ingresstypo}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: default-proxy, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
"#);
    let typo = one(&d, "IST0101", "Gateway istio-system/typo", "spec.selector");
    assert_eq!(typo.severity, Severity::Error);
    assert!(typo.message.contains("{istio=ingresstypo}"), "{}", typo.message);
    assert_eq!(
        coded(&d, "IST0101").len(),
        1,
        "the default ingress gateway is assumed, as istioctl does:\n{}",
        listing(&d)
    );
    none(&d, "IST0162");
}

#[test]
fn a_gateway_port_follows_the_target_port_of_its_service() {
    let base = r#"
apiVersion: v1
kind: Pod
metadata: {name: gw-1, namespace: edge, labels: {app: edge}}
---
apiVersion: v1
kind: Service
metadata: {name: edge, namespace: edge}
spec:
  selector: {app: edge}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: edge}
spec:
  selector: {app: edge}
  servers:
"#;
    for port in [80, 8080] {
        let d = all(&format!("{base}  - {{port: {{number: {port}, name: http, protocol: HTTP}}, hosts: [\"*\"]}}\n"));
        none(&d, "IST0162");
    }
    let d = all(&format!("{base}  - {{port: {{number: 8081, name: http, protocol: HTTP}}, hosts: [\"*\"]}}\n"));
    let unexposed = one(&d, "IST0162", "Gateway edge/gw", "spec.servers[0].port.number");
    assert_eq!(unexposed.severity, Severity::Warning);
    assert!(unexposed.message.contains("Service edge/edge"), "{}", unexposed.message);
}

#[test]
fn gateways_of_the_same_workloads_on_one_host_and_port_conflict() {
    let gateway = |name: &str, selector: &str, host: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  \
             selector: {selector}\n  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: [{host}]}}]\n---\n"
        )
    };
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: gw, labels: {istio: ingressgateway, tier: edge}}\n---\n";
    let d = all(&format!(
        "{}{}{}{pod}",
        gateway("alpha", "{istio: ingressgateway}", "a.example.com"),
        gateway("beta", "{istio: ingressgateway, tier: edge}", "a.example.com"),
        gateway("gamma", "{istio: ingressgateway}", "b.example.com"),
    ));
    let alpha = one(&d, "IST0145", "Gateway default/alpha", "spec.servers[0]");
    assert_eq!(alpha.severity, Severity::Error);
    assert!(alpha.message.contains("default/beta") && !alpha.message.contains("gamma"), "{}", alpha.message);
    one(&d, "IST0145", "Gateway default/beta", "spec.servers[0]");
    assert_eq!(coded(&d, "IST0145").len(), 2, "{}", listing(&d));
}

// === VirtualServices ===

#[test]
fn a_gateway_with_an_invalid_server_still_exists_for_its_virtual_services() {
    // An HTTPS server without tls is an error of the Gateway; it does not make the Gateway disappear.
    let d = all(r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [shop.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: shop.example.com}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: shop, namespace: default}
spec:
  hosts: [shop.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
"#);
    assert!(
        d.iter().any(|d| d.code == Some("IST0106") && d.field.starts_with("spec.servers[0]")),
        "the server is invalid:\n{}",
        listing(&d)
    );
    assert!(!d.iter().any(|d| d.message.contains("gateway not found")), "{}", listing(&d));
    none(&d, "IST0132");
}

#[test]
fn a_missing_subset_names_the_subsets_the_rule_has() {
    let d = all(&format!(
        r#"{WEB}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: web, namespace: default}}
spec:
  host: web
  subsets: [{{name: v1, labels: {{version: v1}}}}, {{name: v2, labels: {{version: v2}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: default}}
spec:
  hosts: [web]
  http: [{{route: [{{destination: {{host: web, subset: v3}}}}]}}]
"#
    ));
    let missing = one(&d, "IST0101", "VirtualService default/web", "spec.http[0].route[0].destination.subset");
    assert!(missing.message.contains("DestinationRule default/web defines v1, v2"), "{}", missing.message);
    assert!(!missing.message.contains("no DestinationRule"), "{}", missing.message);
}

#[test]
fn a_service_port_with_protocol_http_is_a_port() {
    let d = all(r#"
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  ports: [{port: 80, name: http-ratings, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http: [{route: [{destination: {host: ratings}}]}]
"#);
    none(&d, "IST0112");
    assert!(!d.iter().any(|d| d.message.contains("several ports")), "{}", listing(&d));
    let translator = Translator::new(&world(
        "apiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  ports: [{port: 80, name: http, protocol: HTTP}]\n",
    ));
    let service = &translator.model().services["ratings.default.svc.cluster.local"];
    assert_eq!(service.ports.iter().map(|p| p.number).collect::<Vec<_>>(), [80]);
}

#[test]
fn a_mesh_route_to_a_host_that_does_not_exist_is_ist0101() {
    let d = all(&format!(
        r#"{WEB}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: legacy, namespace: default}}
spec:
  hosts: [legacy.example.com]
  http: [{{route: [{{destination: {{host: gone}}}}]}}]
"#
    ));
    let gone = one(&d, "IST0101", "VirtualService default/legacy", "spec.http[0].route[0].destination.host");
    assert!(gone.message.contains("gone.default.svc.cluster.local"), "{}", gone.message);
}

#[test]
fn delegate_and_hostless_virtual_services_get_their_references_checked() {
    let d = all(&format!(
        r#"{WEB}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: delegate, namespace: default}}
spec:
  http: [{{route: [{{destination: {{host: web, port: {{number: 81}}}}}}]}}]
"#
    ));
    one(&d, "IST0101", "VirtualService default/delegate", "spec.http[0].route[0].destination.port.number");
}

#[test]
fn a_destination_without_a_port_to_a_service_with_several_is_ist0112() {
    let d = all(r#"
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  ports: [{name: http, port: 9090}, {name: grpc, port: 9091}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: default}
spec:
  hosts: [api]
  http: [{route: [{destination: {host: api}}]}]
"#);
    let ambiguous = one(&d, "IST0112", "VirtualService default/api", "spec.http[0].route[0].destination");
    assert_eq!(ambiguous.severity, Severity::Error);
    assert!(ambiguous.message.contains("(9090, 9091)"), "{}", ambiguous.message);
}

#[test]
fn a_host_exported_elsewhere_is_not_found_where_istio_hides_it() {
    let d = all(r#"
apiVersion: v1
kind: Service
metadata:
  name: details
  namespace: default
  annotations: {networking.istio.io/exportTo: banana}
spec:
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: istio-system}
spec:
  hosts: [details]
  http: [{route: [{destination: {host: details.default.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: banana}
spec:
  hosts: [details]
  http: [{route: [{destination: {host: details.default.svc.cluster.local}}]}]
"#);
    let hidden = one(&d, "IST0101", "VirtualService istio-system/details", "spec.http[0].route[0].destination.host");
    assert!(hidden.message.contains("exports it to banana only"), "{}", hidden.message);
    assert_eq!(coded(&d, "IST0101").len(), 1, "{}", listing(&d));
}

#[test]
fn conflicting_mesh_virtual_services_each_name_all_of_them() {
    let vs = |namespace: &str, host: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: ratings, namespace: {namespace}}}\n\
             spec:\n  hosts: [{host}]\n  http: [{{route: [{{destination: {{host: {host}}}}}]}}]\n---\n"
        )
    };
    let d =
        all(&format!("{}{}{}", vs("foo", "ratings"), vs("bar", "ratings.foo.svc.cluster.local"), vs("baz", "ratings")));
    for namespace in ["foo", "bar"] {
        let conflict = one(&d, "IST0109", &format!("VirtualService {namespace}/ratings"), "spec.hosts[0]");
        assert_eq!(conflict.severity, Severity::Error);
        assert!(conflict.message.contains("bar/ratings, foo/ratings"), "{}", conflict.message);
    }
    assert_eq!(coded(&d, "IST0109").len(), 2, "{}", listing(&d));
}

#[test]
fn a_gateway_that_accepts_none_of_the_hosts_is_ist0132_and_dot_hosts_are_for_its_namespace() {
    let d = all(r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["./own.example.com", "*.shop.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: some, namespace: default}
spec:
  hosts: [a.shop.example.com, blog.example.com]
  gateways: [istio-system/gw]
  http: [{directResponse: {status: 200}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: own, namespace: default}
spec:
  hosts: [own.example.com]
  gateways: [istio-system/gw]
  http: [{directResponse: {status: 200}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: own, namespace: istio-system}
spec:
  hosts: [own.example.com]
  gateways: [gw]
  http: [{directResponse: {status: 200}}]
"#);
    let own = one(&d, "IST0132", "VirtualService default/own", "spec.gateways[0]");
    assert_eq!(own.severity, Severity::Warning);
    assert_eq!(coded(&d, "IST0132").len(), 1, "one accepted host is enough:\n{}", listing(&d));
}

#[test]
fn a_kubernetes_gateway_exists_for_virtual_services_with_its_listener_hosts() {
    let d = all(r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, hostname: example.com, port: 80, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: right, namespace: default}
spec:
  hosts: [example.com]
  gateways: [edge]
  http: [{directResponse: {status: 200}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: wrong, namespace: default}
spec:
  hosts: [wrong.example.com]
  gateways: [edge]
  http: [{directResponse: {status: 200}}]
"#);
    none(&d, "IST0101");
    one(&d, "IST0132", "VirtualService default/wrong", "spec.gateways[0]");
    assert_eq!(coded(&d, "IST0132").len(), 1, "{}", listing(&d));
}

#[test]
fn a_credential_name_no_secret_of_the_gateway_namespace_has_is_ist0101() {
    let gateway = |name: &str, credential: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  \
             selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 443, name: https, protocol: HTTPS}}\n    \
             hosts: [shop.example.com]\n    tls: {{mode: SIMPLE, credentialName: {credential}}}\n---\n"
        )
    };
    let gateways = format!("{}{}", gateway("right", "shop-cert"), gateway("wrong", "other-cert"));
    // Without any Secret in the input nothing is said: a cluster's Secrets are not read.
    none(&all(&gateways), "IST0101");
    let secret =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: shop-cert, namespace: istio-system}\ntype: kubernetes.io/tls\n";
    let d = all(&format!("{gateways}{secret}"));
    let wrong = one(&d, "IST0101", "Gateway default/wrong", "spec.servers[0].tls.credentialName");
    assert!(wrong.message.contains("istio-system/other-cert"), "{}", wrong.message);
    assert_eq!(coded(&d, "IST0101").len(), 1, "{}", listing(&d));
}

#[test]
fn untranslated_kinds_are_checked_as_istioctl_checks_them() {
    let d = all(r#"
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: web, namespace: shop}
spec:
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: typo, namespace: shop}
spec:
  workloadSelector: {labels: {app: wbe}}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: other, namespace: other}
spec:
  selector: {matchLabels: {app: web}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from, namespace: shop}
spec:
  rules: [{from: [{source: {namespaces: [shop, "sh*", bogus]}}]}]
"#);
    let typo = one(&d, "IST0101", "Sidecar shop/typo", "spec.workloadSelector.labels");
    assert_eq!(typo.severity, Severity::Error);
    assert_eq!(typo.source.as_ref().map(|s| s.position.line), Some(20));
    one(&d, "IST0101", "Telemetry other/other", "spec.selector.matchLabels");
    let bogus = one(&d, "IST0101", "AuthorizationPolicy shop/from", "spec.rules[0].from[0].source.namespaces[2]");
    assert!(bogus.message.contains("\"bogus\""), "{}", bogus.message);
    assert_eq!(coded(&d, "IST0101").len(), 3, "{}", listing(&d));
}

// === DestinationRules ===

#[test]
fn a_subset_no_workload_has_is_ist0173_with_service_entry_endpoints_as_workloads() {
    let d = all(r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.local]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v3, labels: {version: v3}}]
"#);
    let v3 = one(&d, "IST0173", "DestinationRule default/reviews", "spec.subsets[1]");
    assert_eq!(v3.severity, Severity::Error);
    assert!(v3.message.contains("{version=v3}"), "{}", v3.message);
    assert_eq!(v3.source.as_ref().map(|s| s.position.line), Some(17), "the subset's own line");
    assert_eq!(coded(&d, "IST0173").len(), 1, "{}", listing(&d));
}

#[test]
fn a_rule_for_no_service_is_ist0174() {
    let d = all(r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ghost, namespace: default}
spec:
  host: ghost
"#);
    let ghost = one(&d, "IST0174", "DestinationRule default/ghost", "spec.host");
    assert_eq!(ghost.severity, Severity::Warning);
}

#[test]
fn an_update_of_pods_only_gives_the_analysis_of_the_new_world() {
    let before = world(&format!(
        "{WEB}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: web}}\nspec:\n  \
         host: web\n  subsets: [{{name: v2, labels: {{version: v2}}}}]\n"
    ));
    let analysis = Analysis::new(&before);
    assert_eq!(analysis.diagnostics().filter(|d| d.code == Some("IST0173")).count(), 1);
    let (pod, _) = read_yaml(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web-2, namespace: default, labels: {app: web, version: v2}}\n",
        "pod.yaml",
    );
    let (after, _) = World::new(before.inputs().chain(pod));
    let updated = analysis.updated(&before, &after);
    assert_eq!(updated, Analysis::new(&after));
    assert_eq!(updated.diagnostics().filter(|d| d.code == Some("IST0173")).count(), 0);
}

#[test]
fn an_endpoint_change_of_a_service_entry_checks_its_rules_again() {
    let entry = |version: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews}}\nspec:\n  hosts: \
             [reviews.local]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  \
             endpoints: [{{address: 127.0.0.1, labels: {{version: {version}}}}}]\n---\n"
        )
    };
    let rules = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  \
                 host: reviews.local\n  subsets: [{name: v2, labels: {version: v2}}]\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ghost}\nspec:\n  \
                 host: ghost.local\n";
    let before = world(&format!("{}{rules}", entry("v1")));
    let analysis = Analysis::new(&before);
    assert_eq!(analysis.diagnostics().filter(|d| d.code == Some("IST0173")).count(), 1);
    // The same objects but the changed entry, as a source hands them over.
    let (changed, _) = read_yaml(&entry("v2"), "test.yaml");
    let inputs = before.inputs().filter(|i| i.kind() != Kind::ServiceEntry).chain(changed);
    let after = World::new(inputs).0;
    let updated = analysis.updated(&before, &after);
    assert_eq!(updated, Analysis::new(&after));
    assert_eq!(updated.diagnostics().filter(|d| d.code == Some("IST0173")).count(), 0);
    assert_eq!(updated.diagnostics().filter(|d| d.code == Some("IST0174")).count(), 1, "the rest is kept");
}

#[test]
fn representative_classes_cover_every_gateway_selector_and_namespace() {
    let translator = Translator::new(&world(WEB));
    let classes: Vec<ProxyClass> = representative_classes(translator.model());
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0].namespace, "default");
}
