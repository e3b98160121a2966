//! What the watchers have seen, per kind, and the change sets it makes for the pipeline.
//!
//! Each object is kept as its slim translator input (a Pod as its labels, IP, readiness and named ports), so an event
//! that changes nothing translation reads (a status heartbeat, a relist) hands nothing over. A list replaces its
//! kind as a whole once it completes: a relist never shows a half-listed kind, and what it no longer has is gone.

use std::collections::BTreeMap;

use translator::{Diagnostic, Input, Kind, ObjectRef, Read};

use super::KINDS;
use super::discovery::{is_istio, not_installed, registry_api_version};
use crate::pipeline::{KindStatus, SourceDetail, SourceStatus, UnitKey};

/// Namespace and name.
pub(super) type Key = (String, String);

/// Units read anew (`Some`) or gone (`None`).
pub(super) type Units = Vec<(UnitKey, Option<Read>)>;

/// One object as translation reads it: its input, or the diagnostics saying why it does not read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slot {
    pub reference: ObjectRef,
    pub input: Option<Input>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Slot {
    /// The object's unit: its input, or its name as unreadable (its last valid version then stands in for it).
    fn read(&self) -> Read {
        Read {
            inputs: self.input.iter().cloned().collect(),
            unreadable: if self.input.is_none() { vec![self.reference.clone()] } else { Vec::new() },
            diagnostics: self.diagnostics.clone(),
            complete: true,
            ..Read::default()
        }
    }

    fn unit_key(reference: &ObjectRef) -> UnitKey {
        UnitKey::object(&reference.kind.to_string(), &reference.namespace, &reference.name)
    }
}

#[derive(Debug, Default)]
pub(super) struct Store {
    kinds: BTreeMap<Kind, KindStore>,
}

#[derive(Debug, Default)]
pub(super) struct KindStore {
    pub objects: BTreeMap<Key, Slot>,
    /// The objects of a list in progress: they replace `objects` as a whole once it completes.
    listing: Option<BTreeMap<Key, Slot>>,
    /// Completed lists: 1 after the first, more after relists.
    pub lists: u64,
    /// For Istio kinds: the apiVersion watched (`Some(Some(..))`), or the CRD is not installed (`Some(None)`);
    /// `None` until discovery has answered.
    pub installed: Option<Option<String>>,
    /// The last list or watch failure, while it lasts.
    pub error: Option<String>,
}

impl Store {
    pub fn kind(&mut self, kind: Kind) -> &mut KindStore {
        self.kinds.entry(kind).or_default()
    }

    /// Every kind is listed, or known not to be installed.
    pub fn ready(&self) -> bool {
        KINDS.iter().all(|kind| self.kinds.get(kind).is_some_and(|k| k.lists > 0 || matches!(k.installed, Some(None))))
    }

    /// What the source cannot read now: failed lists and watches (e.g. `403 Forbidden` for a kind its RBAC does not
    /// grant: an error, since that kind's objects are not served), CRDs not installed (a warning).
    pub fn problems(&self) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        for (kind, store) in &self.kinds {
            if is_istio(*kind) && matches!(store.installed, Some(None)) {
                problems.push(Diagnostic::warning(not_installed(*kind)));
            }
            if let Some(error) = &store.error {
                problems.push(Diagnostic::error(format!(
                    "failed to watch {kind}: {error} (retrying; its objects are served as last seen)"
                )));
            }
        }
        problems
    }

    /// The source's status: its problems and every kind's state.
    pub fn status(&self, namespace: Option<String>) -> SourceStatus {
        let mut kinds = BTreeMap::new();
        for kind in KINDS {
            let Some(store) = self.kinds.get(&kind) else { continue };
            let api_version = match (&store.installed, is_istio(kind)) {
                (Some(Some(version)), _) => Some(version.clone()),
                (_, false) => Some(registry_api_version(kind).to_owned()),
                _ => None,
            };
            let installed = store.installed.as_ref().map(Option::is_some).unwrap_or(!is_istio(kind));
            let objects = store.objects.values().filter(|slot| slot.input.is_some()).count();
            let status = KindStatus { api_version, installed, lists: store.lists, objects, error: store.error.clone() };
            kinds.insert(kind.to_string(), status);
        }
        SourceStatus { problems: self.problems(), detail: SourceDetail::Kubernetes { namespace, kinds } }
    }
}

impl KindStore {
    pub fn begin_list(&mut self) {
        self.listing = Some(BTreeMap::new());
    }

    /// Ends a list: its objects replace the kind's. Returns what changed.
    pub fn end_list(&mut self) -> Units {
        let Some(listed) = self.listing.take() else { return Vec::new() };
        self.lists += 1;
        let mut units = Vec::new();
        for (key, slot) in &listed {
            if self.objects.get(key) != Some(slot) {
                units.push((Slot::unit_key(&slot.reference), Some(slot.read())));
            }
        }
        for (key, slot) in &self.objects {
            if !listed.contains_key(key) {
                units.push((Slot::unit_key(&slot.reference), None));
            }
        }
        self.objects = listed;
        units
    }

    /// Records an added or modified object (into the list in progress, if there is one). Returns the unit to hand
    /// over when what translation reads changed.
    pub fn apply(&mut self, key: Key, slot: Slot) -> Units {
        if let Some(listing) = &mut self.listing {
            // An unchanged object stays the same shared object: translation tells unchanged objects by identity.
            let slot = match self.objects.get(&key) {
                Some(previous) if *previous == slot => previous.clone(),
                _ => slot,
            };
            listing.insert(key, slot);
            return Vec::new();
        }
        if self.objects.get(&key) == Some(&slot) {
            return Vec::new();
        }
        let unit = (Slot::unit_key(&slot.reference), Some(slot.read()));
        self.objects.insert(key, slot);
        vec![unit]
    }

    pub fn delete(&mut self, key: &Key) -> Units {
        if let Some(listing) = &mut self.listing {
            listing.remove(key);
        }
        match self.objects.remove(key) {
            Some(slot) => vec![(Slot::unit_key(&slot.reference), None)],
            None => Vec::new(),
        }
    }

    /// Sets the watch error; returns whether it changed.
    pub fn set_error(&mut self, error: Option<String>) -> bool {
        if self.error == error {
            return false;
        }
        self.error = error;
        true
    }

    /// Records what discovery found; returns whether it changed.
    pub fn set_installed(&mut self, api_version: Option<String>) -> bool {
        let installed = Some(api_version);
        if self.installed == installed {
            return false;
        }
        self.installed = installed;
        true
    }

    /// The kind is no longer served: its objects are gone and it waits for discovery again.
    pub fn forget(&mut self) -> Units {
        let gone = self.objects.values().map(|slot| (Slot::unit_key(&slot.reference), None)).collect();
        *self = KindStore { installed: Some(None), ..KindStore::default() };
        gone
    }
}
