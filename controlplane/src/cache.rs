//! The snapshot cache: the current snapshot of every proxy class, and a way to be told when it changes.
//!
//! Sources publish either one snapshot for every class (`set_default`, what a directory of raw Envoy resources
//! gives) or a snapshot for one class (`set`, what translation per class gives). A snapshot is checked with
//! [`Snapshot::consistent`] before it is published, and publishing a snapshot with the same content as the current
//! one wakes nobody: unchanged output pushes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use translator::ProxyClass;

use crate::snapshot::{Snapshot, SnapshotError};

#[derive(Debug)]
pub struct SnapshotCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    default: Arc<Snapshot>,
    per_class: HashMap<ProxyClass, Arc<Snapshot>>,
    watchers: HashMap<ProxyClass, watch::Sender<Arc<Snapshot>>>,
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
        let Inner { default, per_class, watchers } = &mut *inner;
        watchers.retain(|_, sender| sender.receiver_count() > 0);
        for (class, sender) in watchers.iter() {
            if !per_class.contains_key(class) {
                sender.send_if_modified(|current| replace_if_changed(current, default));
            }
        }
        Ok(true)
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
        let inner = self.lock();
        Arc::clone(inner.per_class.get(class).unwrap_or(&inner.default))
    }

    /// A receiver that holds the class's current snapshot and wakes on every change of it.
    pub fn watch(&self, class: &ProxyClass) -> watch::Receiver<Arc<Snapshot>> {
        let mut inner = self.lock();
        if let Some(sender) = inner.watchers.get(class) {
            return sender.subscribe();
        }
        let current = Arc::clone(inner.per_class.get(class).unwrap_or(&inner.default));
        let (sender, receiver) = watch::channel(current);
        inner.watchers.insert(class.clone(), sender);
        receiver
    }

    /// Classes with at least one watcher (connected proxies).
    pub fn watched_classes(&self) -> Vec<ProxyClass> {
        let inner = self.lock();
        inner.watchers.iter().filter(|(_, s)| s.receiver_count() > 0).map(|(c, _)| c.clone()).collect()
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
    fn an_inconsistent_snapshot_is_refused_and_the_last_good_one_kept() {
        let cache = SnapshotCache::new();
        cache.set_default(snapshot("good")).expect("consistent");
        let mut broken = SnapshotBuilder::default();
        broken.add_message(&eds_cluster("no-endpoints")).expect("cluster");
        assert!(cache.set_default(broken.build()).is_err());
        assert!(cache.get(&ProxyClass::new(Role::Sidecar)).same_content(&snapshot("good")));
    }
}
