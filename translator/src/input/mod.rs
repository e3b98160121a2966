//! What translation reads: Istio objects and the service registry, gathered into one [`World`].
//!
//! [`read_yaml`] turns text (one or more YAML or JSON documents, as `kubectl get -o yaml` prints them, `List`s
//! included) into typed objects plus diagnostics; [`World::new`] orders them deterministically and drops duplicates.
//! Kinds translation does not use (Deployments, ServiceAccounts, …) are ignored, and so are raw Envoy resources
//! (documents with `@type`), which the control plane serves as they are.

pub mod istio;
mod load;
pub mod registry;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

pub use istio::Labels;
pub use load::read_yaml;

use crate::diagnostics::{Diagnostic, ObjectRef};

/// The kinds translation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    Gateway,
    VirtualService,
    DestinationRule,
    ServiceEntry,
    Service,
    EndpointSlice,
    Pod,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where an object was read: a file (or other named text) and the document's position in it, from 1.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Source {
    pub file: String,
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.file, self.document)
    }
}

/// The metadata translation uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub namespace: String,
    pub labels: Labels,
    /// RFC 3339, as Kubernetes writes it; orders VirtualServices for one host ("oldest wins").
    pub creation_timestamp: Option<String>,
    pub source: Option<Source>,
}

/// An object of kind `K` with its spec.
#[derive(Clone, Debug, PartialEq)]
pub struct Object<T> {
    pub meta: Meta,
    pub spec: T,
}

impl<T> Object<T> {
    pub fn reference(&self, kind: Kind) -> ObjectRef {
        ObjectRef { kind, namespace: self.meta.namespace.clone(), name: self.meta.name.clone() }
    }
}

/// One object read from input. Shared: a source that keeps its inputs and builds a World from them again hands the
/// same objects to translation, and [`crate::Translator::update`] tells an unchanged object by its identity.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    Gateway(Arc<Object<istio::Gateway>>),
    VirtualService(Arc<Object<istio::VirtualService>>),
    DestinationRule(Arc<Object<istio::DestinationRule>>),
    ServiceEntry(Arc<Object<istio::ServiceEntry>>),
    Service(Arc<Object<registry::Service>>),
    EndpointSlice(Arc<Object<registry::EndpointSlice>>),
    Pod(Arc<Object<registry::Pod>>),
}

impl Input {
    pub fn kind(&self) -> Kind {
        match self {
            Input::Gateway(_) => Kind::Gateway,
            Input::VirtualService(_) => Kind::VirtualService,
            Input::DestinationRule(_) => Kind::DestinationRule,
            Input::ServiceEntry(_) => Kind::ServiceEntry,
            Input::Service(_) => Kind::Service,
            Input::EndpointSlice(_) => Kind::EndpointSlice,
            Input::Pod(_) => Kind::Pod,
        }
    }

    pub fn meta(&self) -> &Meta {
        match self {
            Input::Gateway(o) => &o.meta,
            Input::VirtualService(o) => &o.meta,
            Input::DestinationRule(o) => &o.meta,
            Input::ServiceEntry(o) => &o.meta,
            Input::Service(o) => &o.meta,
            Input::EndpointSlice(o) => &o.meta,
            Input::Pod(o) => &o.meta,
        }
    }

    pub fn reference(&self) -> ObjectRef {
        let meta = self.meta();
        ObjectRef { kind: self.kind(), namespace: meta.namespace.clone(), name: meta.name.clone() }
    }

    /// Whether `self` and `other` are the same shared object (not merely equal ones).
    pub fn same(&self, other: &Input) -> bool {
        match (self, other) {
            (Input::Gateway(a), Input::Gateway(b)) => Arc::ptr_eq(a, b),
            (Input::VirtualService(a), Input::VirtualService(b)) => Arc::ptr_eq(a, b),
            (Input::DestinationRule(a), Input::DestinationRule(b)) => Arc::ptr_eq(a, b),
            (Input::ServiceEntry(a), Input::ServiceEntry(b)) => Arc::ptr_eq(a, b),
            (Input::Service(a), Input::Service(b)) => Arc::ptr_eq(a, b),
            (Input::EndpointSlice(a), Input::EndpointSlice(b)) => Arc::ptr_eq(a, b),
            (Input::Pod(a), Input::Pod(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Everything translation reads, each kind sorted by namespace and name. Cheap to clone: objects are shared.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub gateways: Vec<Arc<Object<istio::Gateway>>>,
    pub virtual_services: Vec<Arc<Object<istio::VirtualService>>>,
    pub destination_rules: Vec<Arc<Object<istio::DestinationRule>>>,
    pub service_entries: Vec<Arc<Object<istio::ServiceEntry>>>,
    pub services: Vec<Arc<Object<registry::Service>>>,
    pub endpoint_slices: Vec<Arc<Object<registry::EndpointSlice>>>,
    pub pods: Vec<Arc<Object<registry::Pod>>>,
}

impl World {
    /// Gathers objects in any order into a world that is the same for the same objects. Of two objects with one
    /// kind, namespace and name, the first is kept and the second reported.
    pub fn new(inputs: impl IntoIterator<Item = Input>) -> (World, Vec<Diagnostic>) {
        let mut world = World::default();
        let mut seen = BTreeSet::new();
        let mut diagnostics = Vec::new();
        for input in inputs {
            let reference = input.reference();
            if !seen.insert(reference.clone()) {
                let source = input.meta().source.clone();
                diagnostics
                    .push(Diagnostic::error("defined twice; this definition is ignored").object(reference, source));
                continue;
            }
            match input {
                Input::Gateway(o) => world.gateways.push(o),
                Input::VirtualService(o) => world.virtual_services.push(o),
                Input::DestinationRule(o) => world.destination_rules.push(o),
                Input::ServiceEntry(o) => world.service_entries.push(o),
                Input::Service(o) => world.services.push(o),
                Input::EndpointSlice(o) => world.endpoint_slices.push(o),
                Input::Pod(o) => world.pods.push(o),
            }
        }
        world.sort();
        (world, diagnostics)
    }

    fn sort(&mut self) {
        fn by_name<T>(objects: &mut [Arc<Object<T>>]) {
            objects.sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
        }
        by_name(&mut self.gateways);
        by_name(&mut self.virtual_services);
        by_name(&mut self.destination_rules);
        by_name(&mut self.service_entries);
        by_name(&mut self.services);
        by_name(&mut self.endpoint_slices);
        by_name(&mut self.pods);
    }

    pub fn len(&self) -> usize {
        self.gateways.len()
            + self.virtual_services.len()
            + self.destination_rules.len()
            + self.service_entries.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.pods.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where `objects` (sorted by namespace and name, as a World keeps them) holds `object` itself (the same `Arc`):
/// first at `hint`, where it is when nothing before it was added or removed, else by its name.
pub fn position_in<T>(objects: &[Arc<Object<T>>], object: &Arc<Object<T>>, hint: usize) -> Option<usize> {
    if objects.get(hint).is_some_and(|o| Arc::ptr_eq(o, object)) {
        return Some(hint);
    }
    let key = (&object.meta.namespace, &object.meta.name);
    let found = objects.binary_search_by(|o| (&o.meta.namespace, &o.meta.name).cmp(&key)).ok()?;
    Arc::ptr_eq(&objects[found], object).then_some(found)
}

/// Whether two lists of objects are the same objects: pointers first, contents only where they differ.
pub fn same_objects<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
}
