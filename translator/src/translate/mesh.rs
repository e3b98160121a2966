//! Which VirtualService routes a host for sidecars: the same for every sidecar class, so it is found once per
//! Model and looked up per service without scanning every VirtualService.

use std::collections::{BTreeMap, BTreeSet};

use super::gateway::ordered;
use crate::input::Object;
use crate::input::istio::VirtualService;
use crate::model::{Model, host_matches, host_specificity, resolve_host};

/// The VirtualService for each host among those that reach sidecars (no `gateways`, or `mesh` among them), the
/// oldest first: for a host named by several, the oldest wins (IST0109 reports the others).
pub struct MeshHosts<'a> {
    exact: BTreeMap<String, &'a Object<VirtualService>>,
    /// Most specific first; of two equally specific, the oldest VirtualService's first.
    wildcards: Vec<(String, &'a Object<VirtualService>)>,
}

impl<'a> MeshHosts<'a> {
    pub fn new(model: &'a Model) -> MeshHosts<'a> {
        let mut seen = BTreeSet::new();
        let mut exact = BTreeMap::new();
        let mut wildcards = Vec::new();
        for vs in ordered(&model.virtual_services) {
            let for_mesh = vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
            if !for_mesh || vs.spec.http.is_empty() {
                continue;
            }
            for host in &vs.spec.hosts {
                let host = resolve_host(host, &vs.meta.namespace);
                if !seen.insert(host.clone()) {
                    continue;
                }
                if host.starts_with('*') {
                    wildcards.push((host, vs));
                } else {
                    exact.insert(host, vs);
                }
            }
        }
        // A stable sort: equally specific wildcards stay oldest first.
        wildcards.sort_by_key(|(host, _)| std::cmp::Reverse(host_specificity(host)));
        MeshHosts { exact, wildcards }
    }

    /// The VirtualService that routes `hostname` for sidecars: the one naming it exactly, else the most specific
    /// wildcard covering it.
    pub fn get(&self, hostname: &str) -> Option<&'a Object<VirtualService>> {
        self.exact
            .get(hostname)
            .copied()
            .or_else(|| self.wildcards.iter().find(|(pattern, _)| host_matches(pattern, hostname)).map(|(_, vs)| *vs))
    }
}
