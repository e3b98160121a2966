//! From inputs to what the cache serves: translation per proxy class plus raw Envoy resources.

use std::sync::Arc;
use std::time::Instant;

use api_protos::Any;
use tracing::{info, warn};
use translator::{Diagnostic, ProxyClass, ProxySelector, Severity, Translator, World};

use api_protos::ResourceType;

use crate::cache::Builder;
use crate::metrics::Metrics;
use crate::snapshot::Resource;
use crate::snapshot::SnapshotBuilder;

/// A cache builder serving each class its translation of the World behind `translator`, plus every raw resource.
/// A raw resource named like a translated one is not served (the translated one is), and that is logged.
pub fn builder(translator: Arc<Translator>, raw: Arc<Vec<Any>>, metrics: Arc<Metrics>) -> Builder {
    let targeted = raw.iter().map(|any| (ProxySelector::all(), any.clone())).collect();
    targeted_builder(translator, Arc::new(targeted), metrics)
}

/// Like [`builder`], with each raw resource served only to the classes its selector picks.
pub fn targeted_builder(
    translator: Arc<Translator>,
    raw: Arc<Vec<(ProxySelector, Any)>>,
    metrics: Arc<Metrics>,
) -> Builder {
    Arc::new(move |class: &ProxyClass| {
        let started = Instant::now();
        let translation = translator.translate(class);
        metrics.translation.observe(started.elapsed().as_secs_f64());
        for diagnostic in &translation.diagnostics {
            log_diagnostic(diagnostic, Some(class));
        }
        let mut snapshot = SnapshotBuilder::default();
        for resource in translation.resources() {
            snapshot.add_any(&resource)?;
        }
        for (selector, resource) in raw.iter() {
            if !selector.matches(class) {
                continue;
            }
            if let Err(err) = snapshot.add_any(resource) {
                warn!(class = %class, error = %err, "raw Envoy resource not served");
            }
        }
        Ok(snapshot.build())
    })
}

/// Logs a diagnostic at the level its severity calls for.
pub fn log_diagnostic(diagnostic: &Diagnostic, class: Option<&ProxyClass>) {
    let class = class.map(ToString::to_string).unwrap_or_default();
    match diagnostic.severity {
        Severity::Error | Severity::Warning => warn!(class, "{diagnostic}"),
        Severity::Info => info!(class, "{diagnostic}"),
    }
}

/// What a source last published, to tell whether the next change can take the endpoint fast path.
#[derive(Clone)]
pub struct Published {
    translator: Arc<Translator>,
    raw: Arc<Vec<(ProxySelector, Any)>>,
}

/// The Translator of `world`, built from the one last published when there is one: then what did not change is
/// not validated or modelled again ([`Translator::update`]).
pub fn translator(world: &World, previous: Option<&Published>) -> Translator {
    match previous {
        Some(previous) => Translator::update(&previous.translator, world),
        None => Translator::new(world),
    }
}

/// Publishes the translation of a new World (and the raw resources) to the cache. When only endpoints of EDS
/// services changed since `previous`, connected classes get just those ClusterLoadAssignments replaced in their
/// current snapshot (the endpoint fast path) instead of a full translation.
pub fn publish(
    state: &crate::State,
    translator: Arc<Translator>,
    raw: Arc<Vec<(ProxySelector, Any)>>,
    previous: Option<&Published>,
) -> (crate::cache::Rebuild, Published) {
    let builder = targeted_builder(Arc::clone(&translator), Arc::clone(&raw), Arc::clone(&state.metrics));
    let changed_hosts = previous
        .filter(|previous| previous.raw == raw)
        .and_then(|previous| translator.endpoint_changes_since(&previous.translator));
    let rebuild = match changed_hosts {
        Some(hosts) => {
            state.metrics.endpoint_fast_path.inc();
            let started = Instant::now();
            let rebuild = state.cache.patch(builder, |class, current| {
                let assignments = translator.endpoints(class, &hosts);
                let mut replacements = Vec::with_capacity(assignments.len());
                for assignment in &assignments {
                    let (_, resource) = Resource::from_message(assignment)?;
                    replacements.push(resource);
                }
                Ok(current.with_replaced(ResourceType::Endpoint, replacements))
            });
            tracing::debug!(
                hosts = hosts.len(),
                took_us = started.elapsed().as_micros() as u64,
                "endpoint-only change: pushed only the changed endpoints"
            );
            rebuild
        }
        None => state.cache.set_builder(builder),
    };
    (rebuild, Published { translator, raw })
}

#[cfg(test)]
mod tests;
