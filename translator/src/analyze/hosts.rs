//! The hosts of a World as Istio's analyzers look them up: every Kubernetes Service and every ServiceEntry host
//! (valid or not), with all their ports whatever the protocol, visible where `exportTo` says.

use std::collections::HashMap;
use std::sync::Arc;

use crate::diagnostics::ObjectRef;
use crate::input::istio::ServiceEntry;
use crate::input::{Kind, Object, World, registry};
use crate::model::resolve_host;

/// Where a host is visible: everywhere, or in some namespaces (none for `~`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Export {
    All,
    To(Vec<String>),
}

impl Export {
    /// `exportTo` of an object in `namespace`: empty or `*` is everywhere, `.` is `namespace`, `~` nowhere.
    pub fn of(export_to: &[String], namespace: &str) -> Export {
        if export_to.is_empty() || export_to.iter().any(|e| e == "*") {
            return Export::All;
        }
        let to = export_to
            .iter()
            .filter(|e| *e != "~")
            .map(|e| if e == "." { namespace.to_owned() } else { e.clone() })
            .collect();
        Export::To(to)
    }

    /// Whether an object exported this way is visible to something seen from `from` (namespaces, `*` for every
    /// namespace: then only what is exported everywhere is visible in all of them).
    fn visible_from(&self, from: &[String]) -> bool {
        match self {
            Export::All => true,
            Export::To(namespaces) => namespaces.iter().any(|n| from.contains(n)),
        }
    }
}

/// What defines a host.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'w> {
    Service(&'w Object<registry::Service>),
    ServiceEntry(&'w Object<ServiceEntry>),
}

impl<'w> Origin<'w> {
    pub fn reference(&self) -> ObjectRef {
        match self {
            Origin::Service(s) => s.reference(Kind::Service),
            Origin::ServiceEntry(e) => e.reference(Kind::ServiceEntry),
        }
    }

    /// The object `reference` names in `world`, if it is there.
    fn find(world: &'w World, reference: &ObjectRef) -> Option<Origin<'w>> {
        fn find<'w, T>(objects: &'w [Arc<Object<T>>], reference: &ObjectRef) -> Option<&'w Object<T>> {
            let key = (reference.namespace.as_str(), reference.name.as_str());
            let found = objects.binary_search_by(|o| (o.meta.namespace.as_str(), o.meta.name.as_str()).cmp(&key));
            found.ok().map(|index| objects[index].as_ref())
        }
        match reference.kind {
            Kind::Service => find(&world.services, reference).map(Origin::Service),
            Kind::ServiceEntry => find(&world.service_entries, reference).map(Origin::ServiceEntry),
            _ => None,
        }
    }

    /// `Service ns/name` or `ServiceEntry ns/name`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Service(s) => format!("Service {}/{}", s.meta.namespace, s.meta.name),
            Origin::ServiceEntry(e) => format!("ServiceEntry {}/{}", e.meta.namespace, e.meta.name),
        }
    }

    /// Where its `exportTo` is written, for a message.
    fn export_field(&self) -> &'static str {
        match self {
            Origin::Service(_) => "its networking.istio.io/exportTo annotation",
            Origin::ServiceEntry(_) => "its exportTo",
        }
    }
}

/// One host of a service.
#[derive(Clone, Debug)]
pub struct Host<'w> {
    /// Fully qualified (`reviews.default.svc.cluster.local`), or a wildcard (`*.example.com`).
    pub name: String,
    pub export: Export,
    /// Port numbers as declared, any protocol.
    pub ports: Vec<i64>,
    pub origin: Origin<'w>,
}

impl<'w> Host<'w> {
    /// The host `name` that `origin` defines in `world`, as [`Hosts::new`] makes it.
    pub fn of(world: &'w World, name: &str, origin: &ObjectRef) -> Option<Host<'w>> {
        let origin = Origin::find(world, origin)?;
        let (export, ports) = match origin {
            Origin::Service(s) => {
                (Export::of(&s.spec.export_to, &s.meta.namespace), s.spec.ports.iter().map(|p| p.port).collect())
            }
            Origin::ServiceEntry(e) => {
                (Export::of(&e.spec.export_to, &e.meta.namespace), e.spec.ports.iter().map(|p| p.number).collect())
            }
        };
        Some(Host { name: name.to_owned(), export, ports, origin })
    }

    /// Why a reference to `name` from `from` does not see this host.
    pub fn hidden_because(&self, name: &str, from: &[String]) -> String {
        let to = match &self.export {
            Export::All => "every namespace".to_owned(),
            Export::To(namespaces) if namespaces.is_empty() => "no namespace".to_owned(),
            Export::To(namespaces) => namespaces.join(", "),
        };
        let defines =
            if self.name == name { "defines it".to_owned() } else { format!("covers it (host {})", self.name) };
        format!(
            "{} {defines}, but {} exports it to {to} only, not to {}: Istio hides it there (pilotfish does not \
             enforce exportTo)",
            self.origin.describe(),
            self.origin.export_field(),
            from.join(", ")
        )
    }
}

/// What looking a host up found.
pub enum Lookup<'h, 'w> {
    Visible(&'h Host<'w>),
    /// Defined, but not exported to where it is looked up from.
    Hidden(&'h Host<'w>),
    Missing,
}

/// Every host of a World, exact names by name.
pub struct Hosts<'w> {
    exact: HashMap<String, Vec<Host<'w>>>,
    wildcards: Vec<Host<'w>>,
}

impl<'w> Hosts<'w> {
    pub fn new(world: &'w World) -> Hosts<'w> {
        let mut all = Vec::new();
        for service in &world.services {
            all.push(Host {
                name: resolve_host(&service.meta.name, &service.meta.namespace),
                export: Export::of(&service.spec.export_to, &service.meta.namespace),
                ports: service.spec.ports.iter().map(|p| p.port).collect(),
                origin: Origin::Service(service),
            });
        }
        for entry in &world.service_entries {
            for host in &entry.spec.hosts {
                all.push(Host {
                    name: resolve_host(host, &entry.meta.namespace),
                    export: Export::of(&entry.spec.export_to, &entry.meta.namespace),
                    ports: entry.spec.ports.iter().map(|p| p.number).collect(),
                    origin: Origin::ServiceEntry(entry),
                });
            }
        }
        let mut hosts = Hosts { exact: HashMap::new(), wildcards: Vec::new() };
        for host in all {
            if host.name.starts_with('*') {
                hosts.wildcards.push(host);
            } else {
                hosts.exact.entry(host.name.clone()).or_default().push(host);
            }
        }
        hosts
    }

    /// The host `name` (fully qualified, or a wildcard) as seen from the namespaces `from`: a host of that name, or
    /// a wildcard ServiceEntry host covering it (`*.example.com` covers `a.example.com` and `*.example.com`).
    pub fn find(&self, name: &str, from: &[String]) -> Lookup<'_, 'w> {
        let mut hidden = None;
        let candidates = self.exact.get(name).into_iter().flatten().chain(self.wildcards.iter().filter(|wildcard| {
            let suffix = &wildcard.name[1..];
            name.strip_prefix('*').unwrap_or(name).ends_with(suffix)
        }));
        for host in candidates {
            if host.export.visible_from(from) {
                return Lookup::Visible(host);
            }
            hidden = hidden.or(Some(host));
        }
        hidden.map_or(Lookup::Missing, Lookup::Hidden)
    }

    /// The exact hosts a wildcard `pattern` covers, as seen from `from`, by name.
    pub fn covered_by(&self, pattern: &str, from: &[String]) -> Vec<&Host<'w>> {
        let suffix = &pattern[pattern.len().min(1)..];
        let mut covered: Vec<&Host<'w>> = self
            .exact
            .values()
            .flatten()
            .filter(|host| host.name.ends_with(suffix) && host.export.visible_from(from))
            .collect();
        covered.sort_by(|a, b| (&a.name, a.origin.reference()).cmp(&(&b.name, b.origin.reference())));
        covered
    }
}

/// The namespaces an object in `namespace` with `export_to` is seen from, as Istio's analyzers look up what it
/// references: its own namespace, or those it is exported to (`*` standing for all of them).
pub fn seen_from(export_to: &[String], namespace: &str) -> Vec<String> {
    if export_to.is_empty() {
        return vec![namespace.to_owned()];
    }
    export_to.iter().map(|e| if e == "." { namespace.to_owned() } else { e.clone() }).collect()
}
