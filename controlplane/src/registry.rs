//! Connected proxies and how far each has taken its configuration: what `status`, `wait` and `/debug/syncz` read.
//!
//! Each ADS stream registers itself when the proxy first speaks, updates its entry after every exchange, and
//! removes it when the stream ends (however it ends: the guard does it on drop).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;
use translator::ProxyClass;

use crate::snapshot::ResourceSet;
use crate::sync::{Protocol, SyncState, TypeSync};

/// One connected proxy.
#[derive(Clone, Debug)]
pub struct ProxyStatus {
    pub stream: u64,
    pub node_id: String,
    pub class: ProxyClass,
    pub protocol: Protocol,
    pub connected_at: SystemTime,
    /// Version of the snapshot the stream last worked from ([`crate::snapshot::Snapshot::version`]).
    pub snapshot_version: String,
    /// Per type, in push order.
    pub sync: Vec<TypeSync>,
    /// Per type, in push order: when responses went out and ACKs came back.
    pub timing: Vec<TypeTiming>,
}

/// When the stream handed a type's latest response to gRPC, and how long the proxy took to ACK the last response
/// it ACKed: the proxy's own apply time (decode, validate, apply, ACK) plus the loopback, as the server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeTiming {
    pub kind: api_protos::ResourceType,
    pub last_sent: Option<Instant>,
    pub last_ack: Option<AckTiming>,
}

/// One response and its ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckTiming {
    /// When the response was handed to gRPC for sending.
    pub sent: Instant,
    /// When the request carrying its ACK arrived.
    pub acked: Instant,
}

impl ProxyStatus {
    /// Synced on every type it asked for, with nothing in flight and nothing rejected. Clusters and listeners must
    /// have been asked for: Envoy always subscribes to both, and before it has, it is still starting.
    pub fn is_synced(&self) -> bool {
        let asked = |kind: api_protos::ResourceType| self.sync.iter().any(|s| s.kind == kind && s.requested);
        asked(api_protos::ResourceType::Cluster)
            && asked(api_protos::ResourceType::Listener)
            && self.sync.iter().filter(|s| s.requested).all(|s| s.status() == SyncState::Synced)
    }
}

/// A registered stream: its status, and the resources its proxy has ACKed (for config dumps).
#[derive(Debug)]
struct Entry {
    status: ProxyStatus,
    acked: Vec<Arc<ResourceSet>>,
}

#[derive(Debug)]
pub struct ProxyRegistry {
    proxies: Mutex<BTreeMap<u64, Entry>>,
    next_stream: Mutex<u64>,
    /// Bumped on every change, so waiters can sleep until something happened.
    generation: watch::Sender<u64>,
}

impl Default for ProxyRegistry {
    fn default() -> Self {
        ProxyRegistry::new()
    }
}

impl ProxyRegistry {
    pub fn new() -> ProxyRegistry {
        ProxyRegistry {
            proxies: Mutex::new(BTreeMap::new()),
            next_stream: Mutex::new(0),
            generation: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, Entry>> {
        // Entries are replaced whole, so a poisoned lock holds no half-written entry.
        self.proxies.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Registers a new stream; the entry goes when the returned guard is dropped.
    pub fn register(self: &Arc<Self>, node_id: String, class: ProxyClass, protocol: Protocol) -> Registration {
        let stream = {
            let mut next = self.next_stream.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *next += 1;
            *next
        };
        let status = ProxyStatus {
            stream,
            node_id,
            class,
            protocol,
            connected_at: SystemTime::now(),
            snapshot_version: String::new(),
            sync: Vec::new(),
            timing: Vec::new(),
        };
        self.lock().insert(stream, Entry { status, acked: Vec::new() });
        self.bump();
        Registration { registry: Arc::clone(self), stream }
    }

    /// All connected proxies, by node id then stream.
    pub fn list(&self) -> Vec<ProxyStatus> {
        let mut all: Vec<ProxyStatus> = self.lock().values().map(|e| e.status.clone()).collect();
        all.sort_by(|a, b| (&a.node_id, a.stream).cmp(&(&b.node_id, b.stream)));
        all
    }

    /// The resources `node_id`'s proxy has ACKed, by type in push order (its newest stream if several).
    pub fn acked(&self, node_id: &str) -> Option<(ProxyStatus, Vec<Arc<ResourceSet>>)> {
        let proxies = self.lock();
        let entry = proxies.values().filter(|e| e.status.node_id == node_id).max_by_key(|e| e.status.stream)?;
        Some((entry.status.clone(), entry.acked.clone()))
    }

    /// Wakes on every change of any proxy's state.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// A registered stream. Dropping it removes the proxy from the registry.
#[derive(Debug)]
pub struct Registration {
    registry: Arc<ProxyRegistry>,
    stream: u64,
}

impl Registration {
    pub fn stream(&self) -> u64 {
        self.stream
    }

    pub fn update(
        &self,
        snapshot_version: String,
        sync: Vec<TypeSync>,
        timing: Vec<TypeTiming>,
        acked: Vec<Arc<ResourceSet>>,
    ) {
        if let Some(entry) = self.registry.lock().get_mut(&self.stream) {
            entry.acked = acked;
            // Timing changes only with sync (a send or an ACK), so it needs no wake-up of its own.
            entry.status.timing = timing;
            if entry.status.sync == sync && entry.status.snapshot_version == snapshot_version {
                return;
            }
            entry.status.snapshot_version = snapshot_version;
            entry.status.sync = sync;
        }
        self.registry.bump();
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.stream);
        self.registry.bump();
    }
}
