//! What translation reads: Istio objects and the service registry, gathered into one [`World`].
//!
//! [`read`] turns text (one or more YAML or JSON documents, as `kubectl get -o yaml` prints them, `List`s included)
//! into typed objects, raw Envoy resources (documents with `@type`, which the control plane serves as they are) and
//! diagnostics; [`World::new`] orders objects deterministically and drops duplicates. Kinds translation does not use
//! are sorted out in [`kinds`].

pub mod fields;
pub mod istio;
pub mod kinds;
mod load;
pub mod registry;
pub mod yaml;

use std::fmt;
use std::sync::Arc;

pub use istio::Labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
pub use load::{DEFAULT_NAMESPACE, EnvoyResource, IgnoredObject, Read, istio_input, read, read_yaml};
pub use yaml::{Position, Positions};

use crate::diagnostics::{Diagnostic, ObjectRef};

/// The kinds translation reads, and the kinds of Istio it does not read that analysis names in its diagnostics (as
/// `istioctl analyze` checks them: a Sidecar whose workload selector matches no Pod).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Kind {
    Gateway,
    VirtualService,
    DestinationRule,
    ServiceEntry,
    Service,
    EndpointSlice,
    Pod,
    // Never read into an [`Input`]:
    Sidecar,
    Telemetry,
    AuthorizationPolicy,
}

impl Kind {
    /// Whether objects of this kind are read into an [`Input`] (the others are only named by analysis).
    pub fn is_read(self) -> bool {
        !matches!(self, Kind::Sidecar | Kind::Telemetry | Kind::AuthorizationPolicy)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Where an object was read: a file (or other named text) and the line and column it starts at, with where its
/// fields are, so a diagnostic about a field can name the field's line.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    pub file: String,
    pub position: Position,
    /// The positions of the document the object is in, and the object's path in it (`items[2]` in a List; empty
    /// for a document that is the object).
    fields: Option<(Arc<Positions>, String)>,
}

impl Source {
    /// A place in a text, without field positions.
    pub fn at(file: &str, position: Position) -> Source {
        Source { file: file.to_owned(), position, fields: None }
    }

    /// The node at `path` of a document whose fields are at `positions`.
    pub fn with_fields(file: &str, positions: Arc<Positions>, path: String) -> Source {
        let position = positions.locate(&path).unwrap_or(Position { line: 1, column: 1 });
        Source { file: file.to_owned(), position, fields: Some((positions, path)) }
    }

    /// The node at `path` below this one (`items[2]`).
    pub fn item(&self, path: &str) -> Source {
        match &self.fields {
            Some((positions, base)) => Source::with_fields(&self.file, Arc::clone(positions), join(base, path)),
            None => self.clone(),
        }
    }

    /// Where `field` (a path inside this node, as diagnostics write it) is, or the closest enclosing node the text
    /// has; this node itself for the empty path.
    pub fn at_field(&self, field: &str) -> Source {
        let Some((positions, base)) = &self.fields else { return self.clone() };
        let position = positions.locate(&join(base, field)).or_else(|| positions.locate(base));
        Source { position: position.unwrap_or(self.position), ..self.clone() }
    }
}

fn join(base: &str, path: &str) -> String {
    match (base.is_empty(), path.is_empty() || path.starts_with('[')) {
        (true, _) => path.to_owned(),
        (false, true) => format!("{base}{path}"),
        (false, false) => format!("{base}.{path}"),
    }
}

impl fmt::Display for Source {
    /// `file.yaml:12:5`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.position)
    }
}

impl serde::Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut source = serializer.serialize_struct("Source", 3)?;
        source.serialize_field("file", &self.file)?;
        source.serialize_field("line", &self.position.line)?;
        source.serialize_field("column", &self.position.column)?;
        source.end()
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

impl Meta {
    /// The metadata of a Kubernetes object; an object without a namespace is in `default`, as `kubectl apply` puts it.
    pub fn from_kubernetes(metadata: &ObjectMeta, source: Option<Source>) -> Meta {
        Meta {
            name: metadata.name.clone().unwrap_or_default(),
            namespace: metadata
                .namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| load::DEFAULT_NAMESPACE.to_owned()),
            labels: metadata.labels.clone().unwrap_or_default().into_iter().collect(),
            creation_timestamp: metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok())
                .and_then(|t| t.as_str().map(str::to_owned)),
            source,
        }
    }
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
    /// Objects of kinds translation does not use, by kind, namespace and name: only analysis looks at them.
    pub ignored: Vec<Arc<IgnoredObject>>,
}

impl World {
    /// This World with `ignored` as the objects of kinds translation does not use.
    pub fn with_ignored(mut self, ignored: impl IntoIterator<Item = IgnoredObject>) -> World {
        self.ignored = ignored.into_iter().map(Arc::new).collect();
        self.ignored.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
        self
    }

    /// Gathers objects in any order into a world that is the same for the same objects. Of two objects with one
    /// kind, namespace and name, the older one is kept when both have a creation timestamp (Istio's rule), else the
    /// first one handed over (sources hand files over in path order); the other is reported, with where the kept one
    /// is.
    pub fn new(inputs: impl IntoIterator<Item = Input>) -> (World, Vec<Diagnostic>) {
        let mut chosen: std::collections::BTreeMap<ObjectRef, Input> = std::collections::BTreeMap::new();
        let mut diagnostics = Vec::new();
        for input in inputs {
            let reference = input.reference();
            let Some(kept) = chosen.get(&reference) else {
                chosen.insert(reference, input);
                continue;
            };
            let older = match (&input.meta().creation_timestamp, &kept.meta().creation_timestamp) {
                (Some(new), Some(old)) => new < old,
                _ => false,
            };
            let (winner, loser) = if older { (input, kept.clone()) } else { (kept.clone(), input) };
            let why = if older { "the older one" } else { "the first one read" };
            let place = |input: &Input| input.meta().source.as_ref().map_or_else(String::new, |s| format!(" at {s}"));
            diagnostics.push(
                Diagnostic::error(format!(
                    "defined twice: the definition{} is served ({why}), this one is ignored",
                    place(&winner)
                ))
                .object(reference.clone(), loser.meta().source.clone()),
            );
            chosen.insert(reference, winner);
        }
        let mut world = World::default();
        for input in chosen.into_values() {
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

    /// Every object, kind by kind.
    pub fn inputs(&self) -> impl Iterator<Item = Input> + '_ {
        let gateways = self.gateways.iter().cloned().map(Input::Gateway);
        let virtual_services = self.virtual_services.iter().cloned().map(Input::VirtualService);
        let destination_rules = self.destination_rules.iter().cloned().map(Input::DestinationRule);
        let service_entries = self.service_entries.iter().cloned().map(Input::ServiceEntry);
        let services = self.services.iter().cloned().map(Input::Service);
        let endpoint_slices = self.endpoint_slices.iter().cloned().map(Input::EndpointSlice);
        let pods = self.pods.iter().cloned().map(Input::Pod);
        gateways
            .chain(virtual_services)
            .chain(destination_rules)
            .chain(service_entries)
            .chain(services)
            .chain(endpoint_slices)
            .chain(pods)
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
