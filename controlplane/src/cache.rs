//! The snapshot cache: the current snapshot of every proxy class, and a way to be told when it changes.
//!
//! Sources publish a *builder* (`set_builder`: a function from proxy class to snapshot, e.g. translation of the
//! current World), one snapshot for every class (`set_default`), or a snapshot for one class (`set`). Builders run
//! for the classes that have connected proxies, and for a new class when its first proxy connects. A snapshot is
//! checked with [`Snapshot::consistent`] before it is published, and publishing a snapshot with the same content
//! as the current one wakes nobody: unchanged output pushes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use translator::ProxyClass;

use crate::snapshot::{Snapshot, SnapshotError};

/// Builds the snapshot of one proxy class.
pub type Builder = Arc<dyn Fn(&ProxyClass) -> Result<Snapshot, SnapshotError> + Send + Sync>;

#[derive(Debug)]
pub struct SnapshotCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    default: Arc<Snapshot>,
    builder: Option<Builder>,
    /// Snapshots published for one class with `set`: they win over everything else.
    per_class: HashMap<ProxyClass, Arc<Snapshot>>,
    /// Snapshots the builder made, for classes with watchers (or that had them).
    built: HashMap<ProxyClass, Arc<Snapshot>>,
    watchers: HashMap<ProxyClass, watch::Sender<Arc<Snapshot>>>,
}

impl Inner {
    fn current(&self, class: &ProxyClass) -> &Arc<Snapshot> {
        self.per_class.get(class).or_else(|| self.built.get(class)).unwrap_or(&self.default)
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("default", &self.default)
            .field("builder", &self.builder.is_some())
            .field("per_class", &self.per_class.len())
            .field("watchers", &self.watchers.len())
            .finish()
    }
}

/// What a builder run changed.
#[derive(Debug, Default)]
pub struct Rebuild {
    /// Classes whose snapshot changed.
    pub changed: Vec<ProxyClass>,
    /// Classes whose new snapshot was refused; they keep their last good one.
    pub failed: Vec<(ProxyClass, SnapshotError)>,
}

impl Default for SnapshotCache {
    fn default() -> Self {
        SnapshotCache::new()
    }
}

impl SnapshotCache {
    pub fn new() -> SnapshotCache {
        SnapshotCache { inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave `Inner` half-updated (every update is one assignment), so a
        // poisoned lock is still good to use.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the snapshot served to every class that has none of its own. Returns whether anything changed.
    pub fn set_default(&self, snapshot: Snapshot) -> Result<bool, SnapshotError> {
        snapshot.consistent()?;
        let mut inner = self.lock();
        if inner.default.same_content(&snapshot) {
            return Ok(false);
        }
        inner.default = Arc::new(snapshot);
        // One snapshot for all replaces any builder.
        inner.builder = None;
        inner.built.clear();
        inner.watchers.retain(|_, sender| sender.receiver_count() > 0);
        for (class, sender) in &inner.watchers {
            let current = inner.current(class);
            sender.send_if_modified(|published| replace_if_changed(published, current));
        }
        Ok(true)
    }

    /// Publishes a builder and runs it for every class with connected proxies; later classes are built when their
    /// first proxy connects. A class whose build fails keeps its last good snapshot.
    pub fn set_builder(&self, builder: Builder) -> Rebuild {
        let mut inner = self.lock();
        inner.builder = Some(Arc::clone(&builder));
        inner.watchers.retain(|_, sender| sender.receiver_count() > 0);
        let watched: Vec<ProxyClass> = inner.watchers.keys().cloned().collect();
        // Classes no proxy watches any more are rebuilt when one connects again.
        inner.built.retain(|class, _| watched.contains(class));
        let classes = watched;
        let mut rebuild = Rebuild::default();
        for class in classes {
            match builder(&class).and_then(|snapshot| snapshot.consistent().map(|()| snapshot)) {
                Ok(snapshot) => {
                    inner.built.insert(class.clone(), Arc::new(snapshot));
                    let current = inner.current(&class);
                    if let Some(sender) = inner.watchers.get(&class)
                        && sender.send_if_modified(|published| replace_if_changed(published, current))
                    {
                        rebuild.changed.push(class.clone());
                    }
                }
                Err(err) => rebuild.failed.push((class, err)),
            }
        }
        rebuild
    }

    /// Publishes a builder, but updates the classes with connected proxies by `patch`ing their current snapshot
    /// instead of running the builder: the endpoint fast path, where rebuilding everything would redo work whose
    /// result cannot change. A class whose patch fails keeps its last good snapshot.
    pub fn patch(
        &self,
        builder: Builder,
        patch: impl Fn(&ProxyClass, &Snapshot) -> Result<Snapshot, SnapshotError>,
    ) -> Rebuild {
        let mut inner = self.lock();
        inner.builder = Some(builder);
        inner.watchers.retain(|_, sender| sender.receiver_count() > 0);
        let watched: Vec<ProxyClass> = inner.watchers.keys().cloned().collect();
        inner.built.retain(|class, _| watched.contains(class));
        let mut rebuild = Rebuild::default();
        for class in watched {
            let Some(current) = inner.built.get(&class).cloned() else { continue };
            match patch(&class, &current).and_then(|snapshot| snapshot.consistent().map(|()| snapshot)) {
                Ok(snapshot) => {
                    inner.built.insert(class.clone(), Arc::new(snapshot));
                    let current = inner.current(&class);
                    if let Some(sender) = inner.watchers.get(&class)
                        && sender.send_if_modified(|published| replace_if_changed(published, current))
                    {
                        rebuild.changed.push(class.clone());
                    }
                }
                Err(err) => rebuild.failed.push((class, err)),
            }
        }
        rebuild
    }

    /// Publishes the snapshot of one class. Returns whether anything changed.
    pub fn set(&self, class: &ProxyClass, snapshot: Snapshot) -> Result<bool, SnapshotError> {
        snapshot.consistent()?;
        let mut inner = self.lock();
        if inner.per_class.get(class).is_some_and(|current| current.same_content(&snapshot)) {
            return Ok(false);
        }
        let snapshot = Arc::new(snapshot);
        inner.per_class.insert(class.clone(), Arc::clone(&snapshot));
        if let Some(sender) = inner.watchers.get(class) {
            sender.send_if_modified(|current| replace_if_changed(current, &snapshot));
        }
        Ok(true)
    }

    /// The snapshot a proxy of `class` is served now.
    pub fn get(&self, class: &ProxyClass) -> Arc<Snapshot> {
        Arc::clone(self.lock().current(class))
    }

    /// A receiver that holds the class's current snapshot and wakes on every change of it. The first watcher of a
    /// class runs the builder for it.
    pub fn watch(&self, class: &ProxyClass) -> watch::Receiver<Arc<Snapshot>> {
        let mut inner = self.lock();
        if let Some(sender) = inner.watchers.get(class) {
            return sender.subscribe();
        }
        if !inner.built.contains_key(class)
            && let Some(builder) = inner.builder.clone()
        {
            match builder(class).and_then(|snapshot| snapshot.consistent().map(|()| snapshot)) {
                Ok(snapshot) => {
                    inner.built.insert(class.clone(), Arc::new(snapshot));
                }
                Err(err) => {
                    tracing::warn!(class = %class, error = %err, "failed to build a snapshot for a new proxy class")
                }
            }
        }
        let current = Arc::clone(inner.current(class));
        let (sender, receiver) = watch::channel(current);
        inner.watchers.insert(class.clone(), sender);
        receiver
    }
}

fn replace_if_changed(current: &mut Arc<Snapshot>, new: &Arc<Snapshot>) -> bool {
    if current.same_content(new) {
        return false;
    }
    *current = Arc::clone(new);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::{eds_cluster, load_assignment};
    use crate::snapshot::SnapshotBuilder;
    use translator::Role;

    fn snapshot(cluster: &str) -> Snapshot {
        let mut builder = SnapshotBuilder::default();
        builder.add_message(&eds_cluster(cluster)).expect("cluster");
        builder.add_message(&load_assignment(cluster, &[])).expect("endpoints");
        builder.build()
    }

    #[test]
    fn same_content_wakes_nobody() {
        let cache = SnapshotCache::new();
        let class = ProxyClass::new(Role::Gateway);
        let mut receiver = cache.watch(&class);
        assert_eq!(cache.set_default(snapshot("a")).ok(), Some(true));
        assert!(receiver.has_changed().unwrap_or(false));
        receiver.borrow_and_update();
        assert_eq!(cache.set_default(snapshot("a")).ok(), Some(false));
        assert!(!receiver.has_changed().unwrap_or(true));
    }

    #[test]
    fn a_class_snapshot_overrides_the_default() {
        let cache = SnapshotCache::new();
        let gateway = ProxyClass::new(Role::Gateway);
        let sidecar = ProxyClass::new(Role::Sidecar);
        let gateway_rx = cache.watch(&gateway);
        let sidecar_rx = cache.watch(&sidecar);
        cache.set(&gateway, snapshot("gw")).expect("consistent");
        cache.set_default(snapshot("all")).expect("consistent");
        assert!(gateway_rx.borrow().same_content(&snapshot("gw")));
        assert!(sidecar_rx.borrow().same_content(&snapshot("all")));
        assert!(cache.get(&ProxyClass::new(Role::Sidecar)).same_content(&snapshot("all")));
    }

    #[test]
    fn a_builder_serves_each_class_its_own_snapshot_and_keeps_the_last_good_one() {
        let cache = SnapshotCache::new();
        let gateway = ProxyClass::new(Role::Gateway);
        let sidecar = ProxyClass::new(Role::Sidecar);
        cache.set_builder(Arc::new(|class: &ProxyClass| Ok(snapshot(class.role.as_str()))));
        let gateway_rx = cache.watch(&gateway);
        assert!(gateway_rx.borrow().same_content(&snapshot("gateway")));
        assert!(cache.watch(&sidecar).borrow().same_content(&snapshot("sidecar")));
        // A new builder reaches watched classes; one that fails leaves them as they were.
        let rebuild = cache.set_builder(Arc::new(|class: &ProxyClass| Ok(snapshot(&format!("{}-2", class.role)))));
        assert_eq!(rebuild.changed.len(), 1, "only the gateway is still watched");
        assert!(gateway_rx.borrow().same_content(&snapshot("gateway-2")));
        let rebuild = cache.set_builder(Arc::new(|_: &ProxyClass| {
            let mut broken = SnapshotBuilder::default();
            broken.add_message(&eds_cluster("no-endpoints"))?;
            Ok(broken.build())
        }));
        assert_eq!(rebuild.failed.len(), 1);
        assert!(gateway_rx.borrow().same_content(&snapshot("gateway-2")));
    }

    #[test]
    fn an_inconsistent_snapshot_is_refused_and_the_last_good_one_kept() {
        let cache = SnapshotCache::new();
        cache.set_default(snapshot("good")).expect("consistent");
        let mut broken = SnapshotBuilder::default();
        broken.add_message(&eds_cluster("no-endpoints")).expect("cluster");
        assert!(cache.set_default(broken.build()).is_err());
        assert!(cache.get(&ProxyClass::new(Role::Sidecar)).same_content(&snapshot("good")));
    }
}
