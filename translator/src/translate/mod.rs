//! Translation of a [`World`] into the Envoy resources of one proxy class.
//!
//! ```text
//!   World ──validate──► valid objects ──Model::new──► Model (services, endpoints, rule indexes)   once per World
//!     (a changed World: only its changed objects are validated; only endpoint changes: only their services rebuilt)
//!                                                       │
//!   ProxyClass ─────────────────────────────────────────┴──► gateway | sidecar listeners + routes, clusters,
//!                                                            endpoints (+ class-specific diagnostics)  per class
//! ```
//!
//! Output is deterministic: resources are sorted by name, and the same objects in any input order give
//! byte-identical resources.

mod cluster;
mod envoy;
mod gateway;
mod listener;
mod mesh;
mod route;
mod sidecar;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use api_protos::Any;
use api_protos::any::pack;
use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use api_protos::pb::envoy::config::listener::v3::Listener;
use api_protos::pb::envoy::config::route::v3::RouteConfiguration;

pub use listener::listener_name;
pub use route::gateway_name;

use crate::analyze::Analysis;
use crate::diagnostics::{Diagnostic, ObjectRef, sorted};
use crate::input::{IgnoredObject, Input, World, same_objects};
use crate::model::{Model, Resolution, Service};
use crate::proxy::{ProxyClass, Role};
use crate::validate::Checks;

/// The Envoy resources of one proxy class, each kind sorted by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Translation {
    /// Every resource packed, in push order (clusters, endpoints, listeners, routes), each kind by name.
    pub fn resources(&self) -> Vec<Any> {
        let mut all: Vec<Any> = Vec::new();
        all.extend(self.clusters.iter().map(pack));
        all.extend(self.endpoints.iter().map(pack));
        all.extend(self.listeners.iter().map(pack));
        all.extend(self.routes.iter().map(pack));
        all
    }
}

/// A World prepared for translation: validated, indexed, analysed. Build once per World, then translate for as
/// many proxy classes as needed. When the World changes, [`Translator::update`] builds the next one from this one,
/// at a cost that follows what changed.
#[derive(Debug)]
pub struct Translator {
    /// The World this was built from (shared objects), to tell what the next one changed.
    world: World,
    checks: Checks,
    model: Model,
    /// What [`Analysis`] found in `world`.
    analysis: Analysis,
    diagnostics: Vec<Diagnostic>,
}

impl Translator {
    pub fn new(world: &World) -> Translator {
        let checks = Checks::new(world, None);
        let model = Model::checked(world, &checks);
        Translator::assemble(world, checks, model, None)
    }

    /// The Translator of `world`, made from `previous` (of an earlier World): objects it shares with that World
    /// (the same `Arc`s: a source that keeps its objects hands them over again) are not validated again, and when
    /// only endpoints changed (ServiceEntries, EndpointSlices, Pods, see [`Model::updated`]) only the services
    /// they define are rebuilt. The result equals `Translator::new(world)`.
    pub fn update(previous: &Translator, world: &World) -> Translator {
        let checks = Checks::new(world, Some((&previous.world, &previous.checks)));
        match previous.model.updated(&previous.world, &previous.checks, world, &checks) {
            // Hosts, rules, gateways and VirtualServices are as they were: so is much of the analysis.
            Some(model) => {
                let analysis = previous.analysis.updated(&previous.world, world);
                Translator::assemble(world, checks, model, Some(analysis))
            }
            None => {
                let model = previous.model.rebuilt(&previous.world, world, &checks);
                Translator::assemble(world, checks, model, None)
            }
        }
    }

    /// The Translator of `inputs` as a source hands them over (with the objects of kinds translation does not use,
    /// which analysis looks at): duplicates are reported (the first definition counts),
    /// and an object that is invalid now, or that did not read at all (`unreadable`), is served at its version in
    /// `last_valid` when it has one, with its errors and a note saying so. `last_valid` is then brought up to date:
    /// valid objects become their own last valid version, objects gone from the inputs are forgotten. Built from
    /// `previous` (the one serving now) as [`Translator::update`] is; every object is validated once.
    pub fn prepare(
        previous: Option<&Translator>,
        inputs: Vec<Input>,
        ignored: Vec<IgnoredObject>,
        unreadable: &[ObjectRef],
        last_valid: &mut LastValid,
    ) -> Translator {
        let (world, mut extra) = World::new(inputs.iter().cloned());
        let world = world.with_ignored(ignored);
        let checks = Checks::new(&world, previous.map(|p| (&p.world, &p.checks)));
        let invalid = checks.invalid(&world);
        let stale: BTreeSet<&ObjectRef> =
            invalid.iter().chain(unreadable).filter(|reference| last_valid.0.contains_key(*reference)).collect();
        let (world, checks) = if stale.is_empty() {
            (world, checks)
        } else {
            for reference in &stale {
                // The errors of the version that does not count stay visible: they are why the last one is served.
                extra.extend(checks.diagnostics().filter(|d| d.object.as_ref() == Some(*reference)).cloned());
                let kept = &last_valid.0[*reference];
                extra.push(
                    Diagnostic::warning(
                        "is invalid now: serving its last valid version until it is fixed (the errors above say why)",
                    )
                    .object((*reference).clone(), kept.meta().source.clone()),
                );
            }
            let replaced = inputs
                .into_iter()
                .filter(|input| !stale.contains(&input.reference()))
                .chain(stale.iter().map(|reference| last_valid.0[*reference].clone()));
            let (mut world_kept, _) = World::new(replaced);
            world_kept.ignored = world.ignored.clone();
            let checks_kept = Checks::new(&world_kept, Some((&world, &checks)));
            (world_kept, checks_kept)
        };
        last_valid.remember(&world, &checks, unreadable);
        let model = match previous {
            None => Model::checked(&world, &checks),
            Some(previous) => match previous.model.updated(&previous.world, &previous.checks, &world, &checks) {
                Some(model) => {
                    let analysis = previous.analysis.updated(&previous.world, &world);
                    let mut translator = Translator::assemble(&world, checks, model, Some(analysis));
                    translator.add_diagnostics(extra);
                    return translator;
                }
                None => previous.model.rebuilt(&previous.world, &world, &checks),
            },
        };
        let mut translator = Translator::assemble(&world, checks, model, None);
        translator.add_diagnostics(extra);
        translator
    }

    fn add_diagnostics(&mut self, extra: Vec<Diagnostic>) {
        if !extra.is_empty() {
            self.diagnostics.extend(extra);
            self.diagnostics = sorted(std::mem::take(&mut self.diagnostics));
        }
    }

    /// Whether any diagnostic of this World (not of one class) is an error that means something written is not
    /// served (analysis errors do not: see [`Diagnostic::advisory`]).
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::rejects)
    }

    fn assemble(world: &World, checks: Checks, model: Model, analysis: Option<Analysis>) -> Translator {
        let analysis = analysis.unwrap_or_else(|| Analysis::new(world));
        let mut diagnostics: Vec<Diagnostic> = checks.diagnostics().cloned().collect();
        diagnostics.extend(model.diagnostics.iter().cloned());
        diagnostics.extend(analysis.diagnostics().cloned());
        Translator { world: world.clone(), checks, model, analysis, diagnostics: sorted(diagnostics) }
    }

    /// The World this translates (with the last valid version of objects that are invalid now).
    pub fn world(&self) -> &World {
        &self.world
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Diagnostics that hold for every proxy class (validation and cross-object analysis).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// What validation found for each object of the World this was built from.
    pub fn checks(&self) -> &Checks {
        &self.checks
    }

    /// When `self` differs from `previous` only in endpoints of services whose endpoints go over EDS (a pod came or
    /// went, became ready, changed labels; a ServiceEntry's STATIC endpoints changed), the hosts of those services:
    /// then only their ClusterLoadAssignments change ([`Translator::endpoints`]). None when anything else differs.
    /// Objects and services shared with `previous` (see [`Translator::update`]) are compared by pointer.
    pub fn endpoint_changes_since(&self, previous: &Translator) -> Option<BTreeSet<String>> {
        let (now, before) = (&self.model, &previous.model);
        if !same_objects(&now.gateways, &before.gateways)
            || !same_objects(&now.virtual_services, &before.virtual_services)
            || !same_objects(&now.destination_rules, &before.destination_rules)
            || !same_objects(&now.kubernetes_services, &before.kubernetes_services)
            || now.services.len() != before.services.len()
        {
            return None;
        }
        let mut changed = BTreeSet::new();
        for ((host, service), (old_host, old)) in now.services.iter().zip(&before.services) {
            if host != old_host {
                return None;
            }
            if Arc::ptr_eq(service, old) || **service == **old {
                continue;
            }
            let same_but_endpoints = Service { endpoints: Vec::new(), ..(**service).clone() }
                == Service { endpoints: Vec::new(), ..(**old).clone() };
            if !same_but_endpoints || service.resolution != Resolution::Static {
                return None;
            }
            changed.insert(host.to_string());
        }
        Some(changed)
    }

    /// The ClusterLoadAssignments of the services `hosts` names, as [`Translator::translate`] makes them for `class`.
    pub fn endpoints(&self, class: &ProxyClass, hosts: &BTreeSet<String>) -> Vec<ClusterLoadAssignment> {
        let mut endpoints = Vec::new();
        for host in hosts {
            let Some(service) = self.model.services.get(host.as_str()) else { continue };
            let rule = self.model.destination_rule(host, &class.namespace);
            endpoints.extend(cluster::service_clusters(service, rule.map(AsRef::as_ref)).1);
        }
        endpoints.sort_by_cached_key(|e| e.cluster_name.clone());
        endpoints
    }

    /// The resources of `class`; its diagnostics are those found translating for it.
    pub fn translate(&self, class: &ProxyClass) -> Translation {
        let mut diagnostics = Vec::new();
        let (mut listeners, mut routes) = match class.role {
            Role::Gateway => gateway::translate(&self.model, class, &mut diagnostics),
            Role::Sidecar => sidecar::translate(&self.model, class, &mut diagnostics),
        };
        let mut clusters = match class.role {
            Role::Sidecar if sidecar::is_captured(class) => sidecar::captured_clusters(),
            _ => Vec::new(),
        };
        let mut endpoints = Vec::new();
        for service in self.model.services.values() {
            let rule = self.model.destination_rule(&service.hostname, &class.namespace);
            let (service_clusters, assignments) = cluster::service_clusters(service, rule.map(AsRef::as_ref));
            clusters.extend(service_clusters);
            endpoints.extend(assignments);
        }
        // Resources are large: sorting keys (with the resources' positions) and then moving each resource once
        // costs far less than a comparison sort that moves the resources themselves.
        listeners.sort_by_cached_key(|l| l.name.clone());
        routes.sort_by_cached_key(|r| r.name.clone());
        clusters.sort_by_cached_key(|c| c.name.clone());
        endpoints.sort_by_cached_key(|e| e.cluster_name.clone());
        Translation { listeners, routes, clusters, endpoints, diagnostics: sorted(diagnostics) }
    }
}

/// The last valid version of every object a source handed over, so an edit that makes one invalid does not take it
/// away (see [`Translator::prepare`]).
#[derive(Clone, Debug, Default)]
pub struct LastValid(BTreeMap<ObjectRef, Input>);

impl LastValid {
    /// Records the valid objects of `world` (checked by `checks`), and forgets objects that are neither in it nor
    /// `unreadable` (gone from the input).
    fn remember(&mut self, world: &World, checks: &Checks, unreadable: &[ObjectRef]) {
        let invalid = checks.invalid(world);
        let mut present = BTreeSet::new();
        for input in world.inputs() {
            let reference = input.reference();
            if !invalid.contains(&reference) && !self.0.get(&reference).is_some_and(|kept| kept.same(&input)) {
                self.0.insert(reference.clone(), input);
            }
            present.insert(reference);
        }
        self.0.retain(|reference, _| present.contains(reference) || unreadable.contains(reference));
    }

    /// The last valid version of `reference`.
    pub fn get(&self, reference: &ObjectRef) -> Option<&Input> {
        self.0.get(reference)
    }
}

/// Translates `world` for `class`, with every diagnostic (the World's and the class's).
pub fn translate(world: &World, class: &ProxyClass) -> Translation {
    let translator = Translator::new(world);
    let mut translation = translator.translate(class);
    let mut all = translator.diagnostics.clone();
    all.append(&mut translation.diagnostics);
    translation.diagnostics = sorted(all);
    translation
}
