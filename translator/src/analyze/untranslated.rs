//! Istio objects pilotfish reads but does not translate, checked as `istioctl analyze` checks them: a Sidecar or
//! Telemetry whose workload selector matches no Pod of its namespace, an AuthorizationPolicy naming a namespace
//! that does not exist (IST0101). pilotfish already says it does not apply them; these say what Istio would find.

use serde_json::Value;

use super::{labels_text, pods_in, selects};
use crate::diagnostics::{Diagnostic, ObjectRef};
use crate::input::{IgnoredObject, Kind, Labels, World};

const ISTIO_NETWORKING: &str = "networking.istio.io";

fn report(object: &IgnoredObject, kind: Kind, diagnostic: Diagnostic, field: impl Into<String>) -> Diagnostic {
    let reference = ObjectRef { kind, namespace: object.namespace.clone(), name: object.name.clone() };
    diagnostic.object(reference, object.source.clone()).field(field)
}

/// A `{key: value}` map of strings.
fn labels(value: &Value) -> Labels {
    let map = value.as_object().into_iter().flatten();
    map.filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect()
}

/// IST0101 for Sidecars and Telemetries whose selector no Pod of their namespace matches.
pub fn check_selectors(world: &World) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for object in &world.ignored {
        let (kind, field, selector) = if object.is(ISTIO_NETWORKING, "Sidecar") {
            (Kind::Sidecar, "spec.workloadSelector.labels", labels(&object.spec["workloadSelector"]["labels"]))
        } else if object.is("telemetry.istio.io", "Telemetry") {
            (Kind::Telemetry, "spec.selector.matchLabels", labels(&object.spec["selector"]["matchLabels"]))
        } else {
            continue;
        };
        if selector.is_empty() || pods_in(world, &object.namespace).iter().any(|p| selects(&selector, &p.meta.labels)) {
            continue;
        }
        diagnostics.push(report(
            object,
            kind,
            Diagnostic::error(format!(
                "referenced selector not found: no Pod of namespace {} has labels {}",
                object.namespace,
                labels_text(&selector)
            ))
            .code("IST0101"),
            field,
        ));
    }
    diagnostics
}

/// Whether a namespace name matches an AuthorizationPolicy's namespace pattern: `*`, `prefix*`, `*suffix`, or the
/// name itself.
fn namespace_matches(pattern: &str, namespace: &str) -> bool {
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        namespace.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        namespace.starts_with(prefix)
    } else {
        pattern.eq_ignore_ascii_case(namespace)
    }
}

/// IST0101 for each namespace of an AuthorizationPolicy's `from.source.namespaces` or `notNamespaces` that no
/// Namespace of the input matches.
pub fn check_policy_namespaces(world: &World) -> Vec<Diagnostic> {
    let namespaces: Vec<&str> =
        world.ignored.iter().filter(|o| o.is("", "Namespace")).map(|o| o.name.as_str()).collect();
    let mut diagnostics = Vec::new();
    for policy in world.ignored.iter().filter(|o| o.is("security.istio.io", "AuthorizationPolicy")) {
        let rules = policy.spec["rules"].as_array().into_iter().flatten().enumerate();
        for (i, rule) in rules {
            for (j, from) in rule["from"].as_array().into_iter().flatten().enumerate() {
                for list in ["namespaces", "notNamespaces"] {
                    let patterns = from["source"][list].as_array().into_iter().flatten().enumerate();
                    for (k, pattern) in patterns {
                        let pattern = pattern.as_str().unwrap_or_default();
                        if namespaces.iter().any(|n| namespace_matches(pattern, n)) {
                            continue;
                        }
                        diagnostics.push(report(
                            policy,
                            Kind::AuthorizationPolicy,
                            Diagnostic::error(format!(
                                "referenced namespace not found: no Namespace of the input matches {pattern:?}"
                            ))
                            .code("IST0101"),
                            format!("spec.rules[{i}].from[{j}].source.{list}[{k}]"),
                        ));
                    }
                }
            }
        }
    }
    diagnostics
}
