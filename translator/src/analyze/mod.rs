//! Checks across objects, as `istioctl analyze` makes them and with its codes and levels, over every object of a
//! [`World`] (valid or not: an object with a schema error still names what it names).
//!
//! | code | level | what | module |
//! |---|---|---|---|
//! | IST0101 | error | a Gateway's selector matches no workload; its `credentialName` no Secret | [`gateways`] |
//! | IST0145 | error | two Gateways serve one host on one port of the same workloads | [`gateways`] |
//! | IST0162 | warning | a Gateway port no Service in front of its workloads exposes | [`gateways`] |
//! | IST0101 | error | a VirtualService's gateway, destination host, port or subset does not exist | [`virtual_services`] |
//! | IST0109 | error | mesh VirtualServices that route one host | [`virtual_services`] |
//! | IST0112 | error | a destination without a port, to a service with several | [`virtual_services`] |
//! | IST0132 | warning | a Gateway that accepts none of a VirtualService's hosts | [`virtual_services`] |
//! | IST0165 | warning | a gateway Istio generates for a Kubernetes Gateway, named as a VirtualService's gateway | [`virtual_services`] |
//! | IST0173 | error | a DestinationRule subset that selects no workload of its service | [`destination_rules`] |
//! | IST0174 | warning | a DestinationRule host that matches no service | [`destination_rules`] |
//! | IST0101 | error | a Sidecar's or Telemetry's selector, an AuthorizationPolicy's namespace (kinds pilotfish does not translate) | [`untranslated`] |
//!
//! IST0130 and IST0131 (unreachable rules, ineffective matches) look at one VirtualService and are made by
//! [`crate::validate`], as istiod's validation makes them. Where pilotfish's local mode needs a decision istioctl does
//! not have to make, and where pilotfish deliberately differs, `docs/analyze-vs-istioctl.md` says so.
//!
//! Services are looked up as Istio sees them: a Kubernetes Service or ServiceEntry is visible from the namespaces its
//! `exportTo` names, though pilotfish itself does not enforce `exportTo`. Workloads are the Pods of the input and
//! the endpoints of ServiceEntries; like `istioctl analyze` reading files, the analysis assumes the default ingress
//! gateway workload (`istio: ingressgateway` in `istio-system`, what gateway proxies usually carry) exists even when
//! no Pod stands for it, as in local mode. Objects of kinds translation does not use (Secrets, Namespaces, Sidecars,
//! Kubernetes Gateways, …) come with the World as [`World::ignored`].
//!
//! Everything analysis finds is [advisory](Diagnostic::advisory): as in Istio, where the validation webhook rejects
//! a schema error but `istioctl analyze` rejects nothing, an analysis error is reported and the configuration is
//! served as written. Checks that depend on the proxy (which listener a route lands on) are made while translating.

mod destination_rules;
mod gateways;
mod hosts;
mod untranslated;
mod virtual_services;

use std::collections::BTreeSet;
use std::sync::Arc;

use destination_rules::RuleSubsets;

use crate::diagnostics::{Diagnostic, ObjectRef};
use crate::input::istio::ServiceEntry;
use crate::input::registry::Pod;
use crate::input::{Kind, Labels, Object, World, same_objects};
use crate::model::{Model, ROOT_NAMESPACE};
use crate::proxy::{ProxyClass, Role};

/// The labels of the ingress gateway workload analysis assumes, as `istioctl analyze` does for files.
pub const DEFAULT_GATEWAY_LABELS: [(&str, &str); 1] = [("istio", "ingressgateway")];

/// What analysis found, in parts that change at different rates: what follows from the configuration alone; what
/// also depends on Pods (gateway workloads, selectors); and the subsets of each DestinationRule, which also depend on
/// endpoints. An endpoint change, the most frequent change, checks again only the rules of the services it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    configuration: Vec<Diagnostic>,
    workloads: Vec<Diagnostic>,
    /// Per DestinationRule of the World, in its order (shared, so an update copies pointers, not checks).
    subsets: Arc<Vec<Arc<RuleSubsets>>>,
}

impl Analysis {
    pub fn new(world: &World) -> Analysis {
        let hosts = hosts::Hosts::new(world);
        let mut configuration = virtual_services::check(world, &hosts);
        configuration.extend(destination_rules::check_hosts(world, &hosts));
        configuration.extend(untranslated::check_policy_namespaces(world));
        Analysis { configuration: advisory(configuration), ..Analysis::of_workloads(world, &hosts) }
    }

    /// The parts that depend on workloads.
    fn of_workloads(world: &World, hosts: &hosts::Hosts<'_>) -> Analysis {
        let mut workloads = gateways::check(world);
        workloads.extend(untranslated::check_selectors(world));
        let subsets = destination_rules::check_subsets(world, hosts)
            .into_iter()
            .map(|rule| Arc::new(RuleSubsets { diagnostics: advisory(rule.diagnostics), ..rule }))
            .collect();
        Analysis { configuration: Vec::new(), workloads: advisory(workloads), subsets: Arc::new(subsets) }
    }

    /// The analysis of `world`, made from `self` (the analysis of `before`) as far as the two share objects: when they
    /// differ only in Pods and EndpointSlices, only the parts that depend on workloads are made again; when they
    /// differ only in the endpoints of ServiceEntries, only the subsets of the rules for those. Equals
    /// `Analysis::new(world)`.
    pub fn updated(&self, before: &World, world: &World) -> Analysis {
        let same_configuration = same_objects(&before.gateways, &world.gateways)
            && same_objects(&before.virtual_services, &world.virtual_services)
            && same_objects(&before.destination_rules, &world.destination_rules)
            && same_objects(&before.services, &world.services)
            && same_objects(&before.ignored, &world.ignored);
        let Some(changed_entries) = same_configuration.then(|| endpoints_changed(before, world)).flatten() else {
            return Analysis::new(world);
        };
        if !same_objects(&before.pods, &world.pods) || !same_objects(&before.endpoint_slices, &world.endpoint_slices) {
            let hosts = hosts::Hosts::new(world);
            return Analysis { configuration: self.configuration.clone(), ..Analysis::of_workloads(world, &hosts) };
        }
        if changed_entries.is_empty() {
            return self.clone();
        }
        let mut subsets = Vec::clone(&self.subsets);
        for (index, rule) in subsets.iter_mut().enumerate() {
            if rule.services.iter().any(|(_, origin)| changed_entries.contains(origin)) {
                let checked = destination_rules::recheck_subsets(world, index, rule);
                *rule = Arc::new(RuleSubsets { diagnostics: advisory(checked.diagnostics), ..checked });
            }
        }
        Analysis { subsets: Arc::new(subsets), ..self.clone() }
    }

    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.configuration.iter().chain(&self.workloads).chain(self.subsets.iter().flat_map(|r| &r.diagnostics))
    }
}

/// The ServiceEntries of `world` that differ from those of `before` in their endpoints only; None when one came,
/// went or changed anything else.
fn endpoints_changed(before: &World, world: &World) -> Option<BTreeSet<ObjectRef>> {
    if before.service_entries.len() != world.service_entries.len() {
        return None;
    }
    let mut changed = BTreeSet::new();
    for (old, new) in before.service_entries.iter().zip(&world.service_entries) {
        if Arc::ptr_eq(old, new) || old == new {
            continue;
        }
        let without_endpoints =
            |entry: &Object<ServiceEntry>| ServiceEntry { endpoints: Vec::new(), ..entry.spec.clone() };
        if old.meta != new.meta || without_endpoints(old) != without_endpoints(new) {
            return None;
        }
        changed.insert(new.reference(Kind::ServiceEntry));
    }
    Some(changed)
}

/// Analysis says what will not work as meant; it refuses nothing (see [`Diagnostic::advisory`]).
fn advisory(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    diagnostics.into_iter().map(Diagnostic::advisory).collect()
}

/// Whether `labels` has every label of `selector`.
fn selects(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `{k=v, k2=v2}`.
fn labels_text(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The Pods of `namespace` (the World keeps them sorted by namespace).
fn pods_in<'w>(world: &'w World, namespace: &str) -> &'w [Arc<Object<Pod>>] {
    let start = world.pods.partition_point(|p| p.meta.namespace.as_str() < namespace);
    let end = start + world.pods[start..].partition_point(|p| p.meta.namespace == namespace);
    &world.pods[start..end]
}

/// The labels of the default ingress gateway workload.
fn default_gateway_labels() -> Labels {
    DEFAULT_GATEWAY_LABELS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Where the default ingress gateway workload is.
const DEFAULT_GATEWAY_NAMESPACE: &str = ROOT_NAMESPACE;

/// One proxy class per Gateway selector and a sidecar per namespace: enough to see every class-specific diagnostic
/// the input can produce (`pilotfish analyze` translates each).
pub fn representative_classes(model: &Model) -> Vec<ProxyClass> {
    let mut classes = BTreeSet::new();
    for gateway in &model.gateways {
        let mut class = ProxyClass::new(Role::Gateway);
        class.labels = gateway.spec.selector.clone();
        class.namespace = gateway.meta.namespace.clone();
        classes.insert(class);
    }
    let namespaces: BTreeSet<&String> = model
        .virtual_services
        .iter()
        .map(|v| &v.meta.namespace)
        .chain(model.services.values().map(|s| &s.namespace))
        .collect();
    for namespace in namespaces {
        let mut class = ProxyClass::new(Role::Sidecar);
        class.namespace = namespace.clone();
        classes.insert(class);
    }
    if classes.is_empty() {
        classes.insert(ProxyClass::new(Role::Sidecar));
    }
    classes.into_iter().collect()
}

#[cfg(test)]
mod tests;
