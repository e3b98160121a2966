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

/// One object read from input.
#[derive(Clone, Debug, PartialEq)]
#[expect(clippy::large_enum_variant, reason = "short-lived: each input moves into an Arc in the World")]
pub enum Input {
    Gateway(Object<istio::Gateway>),
    VirtualService(Object<istio::VirtualService>),
    DestinationRule(Object<istio::DestinationRule>),
    ServiceEntry(Object<istio::ServiceEntry>),
    Service(Object<registry::Service>),
    EndpointSlice(Object<registry::EndpointSlice>),
    Pod(Object<registry::Pod>),
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
                Input::Gateway(o) => world.gateways.push(Arc::new(o)),
                Input::VirtualService(o) => world.virtual_services.push(Arc::new(o)),
                Input::DestinationRule(o) => world.destination_rules.push(Arc::new(o)),
                Input::ServiceEntry(o) => world.service_entries.push(Arc::new(o)),
                Input::Service(o) => world.services.push(Arc::new(o)),
                Input::EndpointSlice(o) => world.endpoint_slices.push(Arc::new(o)),
                Input::Pod(o) => world.pods.push(Arc::new(o)),
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
