//! The benchmark's world as Istio YAML in a directory, and the change the benchmark makes to it.
//!
//! ```text
//!   DIR/svc-00000.yaml … svc-<S-1>.yaml   one file per service: a ServiceEntry (STATIC, 3 endpoints: 2 × v1, 1 × v2),
//!                                         a DestinationRule (subsets v1, v2), a VirtualService (a header match to
//!                                         v2, then a weighted split v1/v2) bound to the mesh and the gateway
//!   DIR/gateway.yaml                      one Gateway for `istio=ingressgateway`, HTTP on 127.0.0.1:8080
//! ```
//!
//! A change shifts the v1/v2 weights of one service by rewriting its file: the new text is written beside the
//! directory and renamed into it, so a watcher never reads a half-written file, and the change is complete when the
//! rename returns.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Weight of subset v1 in every VirtualService as generated (v2 gets the rest of 100).
pub const INITIAL_WEIGHT: u32 = 90;

/// The service's short name, `svc-00042`.
pub fn service_name(index: usize) -> String {
    format!("svc-{index:05}")
}

/// The service's host, `svc-00042.bench.local`.
pub fn host(index: usize) -> String {
    format!("{}.bench.local", service_name(index))
}

/// The file holding the service's objects.
pub fn service_file(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("{}.yaml", service_name(index)))
}

/// The three Istio objects of one service, with `weight` percent of the split to subset v1.
pub fn service_yaml(index: usize, weight: u32) -> String {
    let name = service_name(index);
    let host = host(index);
    let (a, b) = (index / 250, index % 250 + 1);
    let rest = 100 - weight.min(100);
    format!(
        "\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 10.1.{a}.{b}, ports: {{http: 9080}}, labels: {{version: v1}}}}
  - {{address: 10.2.{a}.{b}, ports: {{http: 9080}}, labels: {{version: v1}}}}
  - {{address: 10.3.{a}.{b}, ports: {{http: 9080}}, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: default}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: {name}, namespace: default}}
spec:
  hosts: [{host}]
  gateways: [mesh, bench-gateway]
  http:
  - match: [{{headers: {{end-user: {{exact: jason}}}}}}]
    route: [{{destination: {{host: {host}, subset: v2}}}}]
  - route:
    - {{destination: {{host: {host}, subset: v1}}, weight: {weight}}}
    - {{destination: {{host: {host}, subset: v2}}, weight: {rest}}}
"
    )
}

/// The one Gateway, selecting the gateway proxies' `istio=ingressgateway` label.
pub fn gateway_yaml() -> &'static str {
    "\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: [\"*\"]
"
}

/// The world of `services` services in `dir` (created if missing), every split at [`INITIAL_WEIGHT`].
pub fn write(dir: &Path, services: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("gateway.yaml"), gateway_yaml())?;
    for index in 0..services {
        std::fs::write(service_file(dir, index), service_yaml(index, INITIAL_WEIGHT))?;
    }
    Ok(())
}

/// The weight a change moves a split to from `current`: always different, always in 10..=89.
pub fn next_weight(current: u32) -> u32 {
    10 + (current.saturating_sub(10) + 37) % 80
}

/// The v1 weight in the file of service `index` as it is now, if the file reads as this module writes it.
pub fn current_weight(dir: &Path, index: usize) -> Option<u32> {
    let text = std::fs::read_to_string(service_file(dir, index)).ok()?;
    let (_, rest) = text.split_once("subset: v1}, weight: ")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Rewrites the file of service `index` with `weight` for v1, atomically (write beside `dir`, then rename).
pub fn set_weight(dir: &Path, index: usize, weight: u32) -> std::io::Result<()> {
    let staging = staging_dir(dir);
    std::fs::create_dir_all(&staging)?;
    let temporary = staging.join(format!("{}.yaml", service_name(index)));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(service_yaml(index, weight).as_bytes())?;
    drop(file);
    std::fs::rename(&temporary, service_file(dir, index))
}

/// Where new file contents are written before they are renamed into `dir`: beside it (same file system), outside
/// the watched tree.
fn staging_dir(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().map(|n| n.to_os_string()).unwrap_or_else(|| "config".into());
    name.push(".staging");
    dir.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_object_reads_without_diagnostics() {
        let (inputs, problems) = translator::read_yaml(&service_yaml(7, INITIAL_WEIGHT), "svc-00007.yaml");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(inputs.len(), 3);
        let (inputs, problems) = translator::read_yaml(gateway_yaml(), "gateway.yaml");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(inputs.len(), 1);
    }

    #[test]
    fn a_change_always_moves_the_weight_and_stays_in_range() {
        let mut weight = INITIAL_WEIGHT;
        for _ in 0..500 {
            let next = next_weight(weight);
            assert_ne!(next, weight);
            assert!((10..=89).contains(&next), "{next}");
            weight = next;
        }
    }

    #[test]
    fn set_weight_replaces_the_file_and_leaves_nothing_else_in_the_directory() -> std::io::Result<()> {
        let base = tempfile::tempdir()?;
        let dir = base.path().join("config");
        write(&dir, 2)?;
        assert_eq!(current_weight(&dir, 1), Some(INITIAL_WEIGHT));
        set_weight(&dir, 1, 47)?;
        assert_eq!(current_weight(&dir, 1), Some(47));
        let text = std::fs::read_to_string(service_file(&dir, 1))?;
        assert!(text.contains("weight: 47") && text.contains("weight: 53"), "{text}");
        assert_eq!(std::fs::read_dir(&dir)?.count(), 3);
        Ok(())
    }
}
