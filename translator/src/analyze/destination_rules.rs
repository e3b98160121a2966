//! DestinationRules against the services they are for: IST0174 (the host matches no service) and IST0173 (a subset
//! selects no workload of the service).

use std::collections::{BTreeMap, BTreeSet};

use super::hosts::{Host, Hosts, Lookup, Origin, seen_from};
use super::{labels_text, pods_in, selects};
use crate::diagnostics::{Diagnostic, ObjectRef};
use crate::input::istio::{DestinationRule, Subset};
use crate::input::{Kind, Labels, Object, World};
use crate::model::resolve_host;

/// Labels istiod adds to every endpoint from its Node and cluster (`AugmentLabels`): pilotfish reads no Nodes, so
/// it cannot tell whether a workload has them.
const TOPOLOGY_LABELS: [&str; 6] = [
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "topology.istio.io/cluster",
    "topology.istio.io/network",
    "kubernetes.io/hostname",
];

fn report(rule: &Object<DestinationRule>, diagnostic: Diagnostic, field: impl Into<String>) -> Diagnostic {
    diagnostic.object(rule.reference(Kind::DestinationRule), rule.meta.source.clone()).field(field)
}

/// The services `rule` is for, as seen from its namespace: the one its host names, or for a wildcard host every
/// service it covers. Err: why there is none.
fn services_of<'h, 'w>(rule: &Object<DestinationRule>, hosts: &'h Hosts<'w>) -> Result<Vec<&'h Host<'w>>, String> {
    let from = seen_from(&rule.spec.export_to, &rule.meta.namespace);
    let host = resolve_host(&rule.spec.host, &rule.meta.namespace);
    match hosts.find(&host, &from) {
        Lookup::Visible(found) => Ok(vec![found]),
        Lookup::Hidden(found) => Err(found.hidden_because(&host, &from)),
        Lookup::Missing if host.starts_with('*') => {
            let covered = hosts.covered_by(&host, &from);
            if covered.is_empty() { Err(format!("no service host is covered by {host}")) } else { Ok(covered) }
        }
        Lookup::Missing => Err(format!("no Service or ServiceEntry defines {host}")),
    }
}

/// IST0174: rules whose host matches no service.
pub fn check_hosts(world: &World, hosts: &Hosts<'_>) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for rule in &world.destination_rules {
        if let Err(why) = services_of(rule, hosts) {
            diagnostics.push(report(
                rule,
                Diagnostic::warning(format!(
                    "host {:?} matches no service ({why}): the rule has no effect",
                    rule.spec.host
                ))
                .code("IST0174"),
                "spec.host",
            ));
        }
    }
    diagnostics
}

/// The Pods of a World named by the EndpointSlices of each Kubernetes Service, found once.
struct SlicedPods<'w>(BTreeMap<(&'w str, &'w str), BTreeSet<&'w str>>);

impl<'w> SlicedPods<'w> {
    fn new(world: &'w World) -> SlicedPods<'w> {
        let mut pods: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
        for slice in &world.endpoint_slices {
            let names = slice.spec.endpoints.iter().filter_map(|e| e.pod.as_deref());
            pods.entry((&slice.meta.namespace, &slice.spec.service_name)).or_default().extend(names);
        }
        SlicedPods(pods)
    }
}

/// The label sets of the workloads behind a service: the Pods its EndpointSlices name, else the Pods its selector
/// picks (ready or not), as the model finds its endpoints; a ServiceEntry's endpoints, and the Pods its
/// `workloadSelector` picks.
fn workloads<'w>(world: &'w World, sliced: &SlicedPods<'w>, host: &Host<'w>) -> Vec<&'w Labels> {
    match host.origin {
        Origin::Service(service) => {
            let namespace = service.meta.namespace.as_str();
            let pods = pods_in(world, namespace);
            match sliced.0.get(&(namespace, service.meta.name.as_str())) {
                Some(names) => names
                    .iter()
                    .filter_map(|name| pods.binary_search_by(|p| p.meta.name.as_str().cmp(name)).ok())
                    .map(|index| &pods[index].meta.labels)
                    .collect(),
                None if service.spec.selector.is_empty() => Vec::new(),
                None => pods
                    .iter()
                    .filter(|p| selects(&service.spec.selector, &p.meta.labels))
                    .map(|p| &p.meta.labels)
                    .collect(),
            }
        }
        Origin::ServiceEntry(entry) => {
            let mut labels: Vec<&Labels> = entry.spec.endpoints.iter().map(|e| &e.labels).collect();
            if let Some(selector) = workload_selector(entry.spec.workload_selector.as_ref()) {
                labels.extend(
                    pods_in(world, &entry.meta.namespace)
                        .iter()
                        .filter(|pod| selects(&selector, &pod.meta.labels))
                        .map(|pod| &pod.meta.labels),
                );
            }
            labels
        }
    }
}

/// `workloadSelector.labels` of a ServiceEntry.
fn workload_selector(selector: Option<&serde_json::Value>) -> Option<Labels> {
    let labels = selector?.get("labels")?.as_object()?;
    Some(labels.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
}

/// Whether a workload with `labels` can be in `subset`. Topology labels, which istiod adds from the workload's Node,
/// are taken to match when they have a value (pilotfish cannot tell) and never when they are empty (istiod adds
/// none then).
fn in_subset(subset: &Subset, labels: &Labels) -> bool {
    subset
        .labels
        .iter()
        .all(|(k, v)| if TOPOLOGY_LABELS.contains(&k.as_str()) { !v.is_empty() } else { labels.get(k) == Some(v) })
}

/// What the subsets of one DestinationRule were checked against, and what was found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSubsets {
    /// The hosts the rule is for, each with the Service or ServiceEntry that defines it.
    pub services: Vec<(String, ObjectRef)>,
    pub diagnostics: Vec<Diagnostic>,
}

/// The subsets of every rule of `world` (in its order), checked by [`check_rule_subsets`].
pub fn check_subsets(world: &World, hosts: &Hosts<'_>) -> Vec<RuleSubsets> {
    let sliced = SlicedPods::new(world);
    world
        .destination_rules
        .iter()
        .map(|rule| match services_of(rule, hosts) {
            Ok(services) if !rule.spec.subsets.is_empty() => RuleSubsets {
                services: services.iter().map(|h| (h.name.clone(), h.origin.reference())).collect(),
                diagnostics: check_rule_subsets(world, &sliced, rule, &services),
            },
            _ => RuleSubsets::default(),
        })
        .collect()
}

/// The subsets of the rule at `index` of `world` checked again, with the services `previous` found it is for
/// (which are still there, with the same hosts: only their endpoints changed).
pub fn recheck_subsets(world: &World, index: usize, previous: &RuleSubsets) -> RuleSubsets {
    let rule = &world.destination_rules[index];
    let services: Option<Vec<Host<'_>>> =
        previous.services.iter().map(|(name, origin)| Host::of(world, name, origin)).collect();
    match services {
        Some(services) => {
            // Only rules for ServiceEntries are checked again (their endpoints changed): no slices to look up then.
            let sliced = if services.iter().any(|h| matches!(h.origin, Origin::Service(_))) {
                SlicedPods::new(world)
            } else {
                SlicedPods(BTreeMap::new())
            };
            let services: Vec<&Host<'_>> = services.iter().collect();
            let diagnostics = check_rule_subsets(world, &sliced, rule, &services);
            RuleSubsets { services: previous.services.clone(), diagnostics }
        }
        None => RuleSubsets::default(),
    }
}

/// IST0173: subsets of `rule` that select no workload of `services`; and a warning for subsets that select by
/// topology labels, which pilotfish's endpoints do not carry.
fn check_rule_subsets<'w>(
    world: &'w World,
    sliced: &SlicedPods<'w>,
    rule: &Object<DestinationRule>,
    services: &[&Host<'w>],
) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let workloads: Vec<&Labels> = services.iter().flat_map(|host| workloads(world, sliced, host)).collect();
    let names = || services.iter().map(|h| h.name.as_str()).collect::<Vec<_>>().join(", ");
    for (index, subset) in rule.spec.subsets.iter().enumerate() {
        let field = || format!("spec.subsets[{index}]");
        let topology: Vec<&str> =
            subset.labels.keys().map(String::as_str).filter(|k| TOPOLOGY_LABELS.contains(k)).collect();
        if !topology.is_empty() {
            diagnostics.push(report(
                rule,
                Diagnostic::warning(format!(
                    "subset {:?} selects by {}, which istiod adds to endpoints from their Node: pilotfish reads no \
                     Nodes, so this subset gets no endpoints from pilotfish",
                    subset.name,
                    topology.join(", ")
                )),
                field(),
            ));
        }
        if workloads.iter().any(|labels| in_subset(subset, labels)) {
            continue;
        }
        let why = if workloads.is_empty() {
            format!("{} has no workload in the input (no Pod its selector picks, no endpoint)", names())
        } else {
            format!(
                "none of the {} workloads of {} has labels {}",
                workloads.len(),
                names(),
                labels_text(&subset.labels)
            )
        };
        diagnostics.push(report(
            rule,
            Diagnostic::error(format!(
                "subset {:?} selects no workload: {why}; requests to it get 503 (no healthy upstream)",
                subset.name
            ))
            .code("IST0173"),
            field(),
        ));
    }
    diagnostics
}
