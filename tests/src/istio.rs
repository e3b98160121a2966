//! Istio configuration the end-to-end tests share: a service with versioned backends and its subsets, an ingress
//! gateway, a VirtualService. Each renders YAML documents to join with `---`.

use std::fmt::Write;
use std::net::SocketAddr;

/// A STATIC ServiceEntry for `host` on `port` (named `http`) whose endpoints are `backends`, each labelled with its
/// version, and a DestinationRule with a subset per version; both named `name` in `namespace`.
pub fn versioned_service(
    name: &str,
    namespace: &str,
    host: &str,
    port: u16,
    backends: &[(&str, SocketAddr)],
) -> String {
    let mut endpoints = String::new();
    let mut subsets = String::new();
    for (version, address) in backends {
        let _ = writeln!(
            endpoints,
            "  - {{address: {}, ports: {{http: {}}}, labels: {{version: {version}}}}}",
            address.ip(),
            address.port()
        );
        let _ = writeln!(subsets, "  - {{name: {version}, labels: {{version: {version}}}}}");
    }
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{host}]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  host: {host}
  subsets:
{subsets}"
    )
}

/// Gateway `istio-system/gw` for the `istio: ingressgateway` workload: one HTTP server on `port`, bound to `bind`,
/// for every host.
pub fn ingress_gateway(port: u16, bind: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: http, protocol: HTTP}}
    bind: {bind}
    hosts: [\"*\"]
"
    )
}

/// VirtualService `name` in `namespace` for `hosts` on `gateways` (none: the mesh), with `http` as its routes (YAML
/// list items indented by two spaces).
pub fn virtual_service(name: &str, namespace: &str, hosts: &[&str], gateways: &[&str], http: &str) -> String {
    let gateways = if gateways.is_empty() { String::new() } else { format!("  gateways: [{}]\n", gateways.join(", ")) };
    format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{}]
{gateways}  http:
{}",
        hosts.join(", "),
        http.trim_start_matches('\n')
    )
}

/// One route item splitting traffic to `host` between subsets by weight.
pub fn weighted_route(host: &str, weights: &[(&str, u32)]) -> String {
    let mut route = String::from("  - route:\n");
    for (subset, weight) in weights {
        let _ = writeln!(route, "    - {{destination: {{host: {host}, subset: {subset}}}, weight: {weight}}}");
    }
    route
}

/// Documents joined into one YAML stream.
pub fn documents(parts: &[String]) -> String {
    parts.join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_objects_pilotfish_reads_without_a_diagnostic() {
        let v1: SocketAddr = "127.0.0.1:9101".parse().expect("address");
        let v2: SocketAddr = "127.0.0.2:9102".parse().expect("address");
        let yaml = documents(&[
            versioned_service("reviews", "default", "reviews.local", 9080, &[("v1", v1), ("v2", v2)]),
            ingress_gateway(8080, "127.0.0.1"),
            virtual_service(
                "reviews",
                "default",
                &["bookinfo.local"],
                &["istio-system/gw"],
                &weighted_route("reviews.local", &[("v1", 80), ("v2", 20)]),
            ),
        ]);
        let read = translator::read(&yaml, "fixture.yaml");
        assert!(read.diagnostics.is_empty(), "{yaml}\n{:?}", read.diagnostics);
        assert_eq!(read.inputs.len(), 4, "{yaml}");
    }
}
