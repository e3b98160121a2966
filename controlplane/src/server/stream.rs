//! The xDS conversation with one proxy, as a state machine without I/O.
//!
//! The ADS task feeds it requests and snapshots and sends whatever responses it returns; SotW and Delta differ
//! only in how requests are read and responses written, so both share these rules:
//!
//! * **One response in flight per type.** The next one waits for the ACK or NACK; requests carrying any other nonce
//!   than the latest are stale and ignored (Delta still applies their subscription changes, which are incremental).
//! * **NACK-safe.** On a NACK the proxy still runs what it last ACKed; the rejected set is remembered and not sent
//!   again until what we would send changes.
//! * **Make-before-break.** Types go out in the order clusters → endpoints → listeners → routes, and a listener or
//!   route whose new version sends traffic to a cluster the proxy has not yet warmed (cluster ACKed *and* its
//!   endpoints ACKed) is held back: the proxy keeps the version it has until the cluster is warm. Envoy ACKs CDS
//!   before a cluster is warm, so ordering alone is not enough. The reverse holds for removal: a cluster stays
//!   while a listener or route the proxy has still refers to it.
//! * **Only what changed.** A set the proxy already has (by content version, which survives restarts) is not sent.
//!
//! Every ACK and every snapshot runs the rules for every type, on every stream, so their cost per proxy is what
//! limits how many proxies a change reaches quickly. Sets are compared by fingerprint before name by name, the
//! per-stream results that depend only on sets (what the subscription covers, which clusters are kept) are
//! cached by fingerprint, and equal subscriptions share one name set between streams (the proxies of a class
//! subscribe to the same thousands of EDS names).

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use api_protos::{Any, ResourceType};

use crate::snapshot::{Resource, ResourceSet, Snapshot};
pub use crate::sync::{Nack, Protocol, SyncState, TypeSync};
use xxhash_rust::xxh3::Xxh3;

/// A DiscoveryRequest or DeltaDiscoveryRequest, reduced to what the rules need.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub response_nonce: String,
    /// `error_detail.message`: set on a NACK. Debug text from Envoy, shown but never parsed.
    pub error: Option<String>,
    /// SotW: the version the proxy last accepted. Unused in Delta.
    pub version_info: String,
    /// SotW: the full list of names. Delta: names to add.
    pub subscribe: Vec<String>,
    /// Delta: names to drop.
    pub unsubscribe: Vec<String>,
    /// Delta, first request of a type on a stream: what the proxy already has from an earlier stream.
    pub initial_versions: BTreeMap<String, String>,
}

/// What to send: the whole set (SotW) or the changes (Delta).
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub kind: ResourceType,
    pub nonce: String,
    /// Fingerprint of the complete set the proxy will have (SotW `version_info`, Delta `system_version_info`).
    pub version: String,
    pub resources: Vec<Arc<Resource>>,
    /// Delta only: names the proxy must drop.
    pub removed: Vec<String>,
}

/// What happened to a request, for logs and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The first request for a type, or a change of subscription.
    Subscribed,
    Ack {
        version: String,
    },
    Nack {
        version: String,
        message: String,
    },
    /// Answers a response that is no longer the latest one: ignored.
    Stale,
}

#[derive(Debug)]
struct Pending {
    nonce: String,
    after: Arc<ResourceSet>,
}

#[derive(Debug, Default)]
struct TypeState {
    requested: bool,
    answered: bool,
    wildcard: bool,
    /// Subscribed names (besides the wildcard); shared with other streams subscribed to the same names.
    names: Arc<BTreeSet<String>>,
    /// Whether `names` covers the whole of the set with the given fingerprint, for the current `names`.
    covers: Cell<Option<(u64, bool)>>,
    /// What the proxy has, or will have once it applies the response in flight.
    sent: Arc<ResourceSet>,
    acked: Arc<ResourceSet>,
    ever_acked: bool,
    pending: Option<Pending>,
    last_nonce: String,
    /// Fingerprint of a set the proxy rejected; not sent again.
    rejected: Option<u64>,
    nack: Option<Nack>,
    responses_sent: u64,
    resources_sent: u64,
}

/// The state of one ADS stream.
#[derive(Debug)]
pub struct StreamState {
    protocol: Protocol,
    snapshot: Arc<Snapshot>,
    types: [TypeState; 4],
    nonces: u64,
    held: Vec<Held>,
    /// The last [`StreamState::desired_clusters`] result, by the fingerprints it was computed from.
    desired_clusters_cache: Option<(DesiredClustersKey, Arc<ResourceSet>)>,
}

/// Fingerprints of the sets [`StreamState::desired_clusters`] reads: snapshot clusters, clusters sent, listeners
/// sent, routes sent.
type DesiredClustersKey = (u64, u64, u64, u64);

/// A listener or route whose new version waits until the proxy has warmed the clusters it sends traffic to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    pub kind: ResourceType,
    pub name: String,
    pub waiting_for: Vec<String>,
}

impl StreamState {
    pub fn new(protocol: Protocol, snapshot: Arc<Snapshot>) -> StreamState {
        StreamState {
            protocol,
            snapshot,
            types: Default::default(),
            nonces: 0,
            held: Vec::new(),
            desired_clusters_cache: None,
        }
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// A new snapshot for the proxy's class. Returns the responses it calls for, in push order.
    pub fn on_snapshot(&mut self, snapshot: Arc<Snapshot>) -> Vec<Response> {
        self.snapshot = snapshot;
        self.pump()
    }

    /// A request from the proxy. Returns what it meant and the responses it calls for, in push order.
    pub fn on_request(&mut self, kind: ResourceType, request: Request) -> (RequestOutcome, Vec<Response>) {
        let outcome = match self.protocol {
            Protocol::Sotw => self.on_sotw_request(kind, request),
            Protocol::Delta => self.on_delta_request(kind, request),
        };
        let responses = if outcome == RequestOutcome::Stale { Vec::new() } else { self.pump() };
        (outcome, responses)
    }

    fn on_sotw_request(&mut self, kind: ResourceType, request: Request) -> RequestOutcome {
        let snapshot = Arc::clone(&self.snapshot);
        let state = &mut self.types[kind.index()];
        if !request.response_nonce.is_empty() && request.response_nonce != state.last_nonce {
            return RequestOutcome::Stale;
        }
        let outcome = state.settle(&request);
        let first = !state.requested;
        state.requested = true;
        state.wildcard =
            kind.is_wildcard() && (request.subscribe.is_empty() || request.subscribe.iter().any(|n| n == "*"));
        // An ACK repeats the subscription: compare before building a set of what are often thousands of names.
        let explicit = || request.subscribe.iter().filter(|n| *n != "*");
        let same = explicit().count() == state.names.len() && explicit().all(|n| state.names.contains(n));
        if !same {
            state.set_names(explicit().cloned().collect());
            if !state.wildcard {
                state.forget_unsubscribed();
            }
        }
        if first && request.response_nonce.is_empty() && !request.version_info.is_empty() {
            // A proxy reconnecting with a version: if it is what we would send, it already has it.
            let current = state.select(snapshot.resources(kind));
            if current.version() == request.version_info {
                state.sent = Arc::clone(&current);
                state.acked = current;
                state.ever_acked = true;
                state.answered = true;
            }
        }
        outcome.unwrap_or(RequestOutcome::Subscribed)
    }

    fn on_delta_request(&mut self, kind: ResourceType, request: Request) -> RequestOutcome {
        let state = &mut self.types[kind.index()];
        if !state.requested {
            state.requested = true;
            state.wildcard =
                kind.is_wildcard() && (request.subscribe.is_empty() || request.subscribe.iter().any(|n| n == "*"));
            if !request.initial_versions.is_empty() {
                // Placeholders carry only the version: enough to compare, and the proxy already has the content.
                let known: BTreeMap<String, Arc<Resource>> = request
                    .initial_versions
                    .iter()
                    .map(|(name, version)| (name.clone(), Arc::new(Resource::placeholder(name, version))))
                    .collect();
                state.sent = Arc::new(ResourceSet::new(known));
                state.acked = Arc::clone(&state.sent);
                state.ever_acked = true;
            }
        }
        let outcome = if request.response_nonce.is_empty() {
            None
        } else if request.response_nonce == state.last_nonce {
            state.settle(&request)
        } else {
            Some(RequestOutcome::Stale)
        };
        let mut dropped = false;
        if !request.subscribe.is_empty() || !request.unsubscribe.is_empty() {
            let mut names = BTreeSet::clone(&state.names);
            for name in request.subscribe {
                if name == "*" {
                    state.wildcard = true;
                } else {
                    names.insert(name);
                }
            }
            for name in request.unsubscribe {
                if name == "*" {
                    state.wildcard = false;
                    dropped = true;
                } else {
                    dropped |= names.remove(&name);
                }
            }
            if names != *state.names {
                state.set_names(names);
            }
        }
        if dropped && !state.wildcard {
            state.forget_unsubscribed();
        }
        // A stale ACK is ignored, but its subscription changes above were applied: in Delta they are not repeated.
        match outcome {
            Some(RequestOutcome::Stale) => RequestOutcome::Subscribed,
            Some(outcome) => outcome,
            None => RequestOutcome::Subscribed,
        }
    }

    /// Sends what is due, type by type in push order.
    fn pump(&mut self) -> Vec<Response> {
        let mut responses = Vec::new();
        let mut held = Vec::new();
        let clusters = self.desired_clusters();
        for kind in ResourceType::ALL {
            let desired = match kind {
                ResourceType::Cluster => Arc::clone(&clusters),
                ResourceType::Endpoint => self.desired_endpoints(&clusters),
                ResourceType::Listener | ResourceType::Route => self.desired_when_warm(kind, &mut held),
            };
            if let Some(response) = self.respond(kind, desired) {
                responses.push(response);
            }
        }
        self.held = held;
        responses
    }

    /// Clusters of the snapshot, plus those the proxy's listeners and routes still send traffic to.
    fn desired_clusters(&mut self) -> Arc<ResourceSet> {
        let state = &self.types[ResourceType::Cluster.index()];
        let base = state.select(self.snapshot.resources(ResourceType::Cluster));
        let key = (
            base.fingerprint(),
            state.sent.fingerprint(),
            self.types[ResourceType::Listener.index()].sent.fingerprint(),
            self.types[ResourceType::Route.index()].sent.fingerprint(),
        );
        if let Some((cached_key, cached)) = &self.desired_clusters_cache
            && *cached_key == key
        {
            // The same inputs give the same set; `base` may be a newer Arc of equal content, so prefer it.
            return if cached.fingerprint() == base.fingerprint() { base } else { Arc::clone(cached) };
        }
        let desired = self.clusters_still_referenced(base);
        self.desired_clusters_cache = Some((key, Arc::clone(&desired)));
        desired
    }

    fn clusters_still_referenced(&self, base: Arc<ResourceSet>) -> Arc<ResourceSet> {
        let state = &self.types[ResourceType::Cluster.index()];
        let mut kept = BTreeMap::new();
        for kind in [ResourceType::Listener, ResourceType::Route] {
            for (_, resource) in self.types[kind.index()].sent.iter() {
                for cluster in &resource.references.clusters {
                    if !base.contains(cluster)
                        && let Some(old) = state.sent.get(cluster)
                    {
                        kept.insert(cluster.clone(), Arc::clone(old));
                    }
                }
            }
        }
        extend(base, kept)
    }

    /// Endpoints the proxy subscribed to, plus those of clusters kept for it.
    fn desired_endpoints(&self, clusters: &ResourceSet) -> Arc<ResourceSet> {
        let state = &self.types[ResourceType::Endpoint.index()];
        let base = state.select(self.snapshot.resources(ResourceType::Endpoint));
        if state.sent.fingerprint() == base.fingerprint() || state.sent.is_empty() {
            // Nothing was sent that the snapshot lacks, so nothing is kept.
            return base;
        }
        let eds_names: BTreeSet<&str> =
            clusters.iter().filter_map(|(_, c)| c.references.endpoints.as_deref()).collect();
        let kept: BTreeMap<String, Arc<Resource>> = state
            .sent
            .iter()
            .filter(|(name, _)| !base.contains(name) && eds_names.contains(name.as_str()) && state.subscribed(name))
            .map(|(name, r)| (name.clone(), Arc::clone(r)))
            .collect();
        extend(base, kept)
    }

    /// Listeners or routes of the snapshot, holding back new versions that need a cluster not yet warm.
    fn desired_when_warm(&self, kind: ResourceType, held: &mut Vec<Held>) -> Arc<ResourceSet> {
        let state = &self.types[kind.index()];
        let base = state.select(self.snapshot.resources(kind));
        let held_before = held.len();
        let mut chosen = BTreeMap::new();
        for (name, new) in base.iter() {
            let old = state.sent.get(name);
            let cold =
                if old.is_some_and(|old| old.version == new.version) { Vec::new() } else { self.cold_clusters(new) };
            if cold.is_empty() {
                chosen.insert(name.clone(), Arc::clone(new));
            } else {
                held.push(Held { kind, name: name.clone(), waiting_for: cold });
                if let Some(old) = old {
                    chosen.insert(name.clone(), Arc::clone(old));
                }
            }
        }
        if held.len() > held_before { Arc::new(ResourceSet::new(chosen)) } else { base }
    }

    /// The clusters `resource` sends traffic to that the proxy has not warmed yet (clusters not in the snapshot never
    /// will be, and do not count).
    fn cold_clusters(&self, resource: &Resource) -> Vec<String> {
        let snapshot_clusters = self.snapshot.resources(ResourceType::Cluster);
        let snapshot_endpoints = self.snapshot.resources(ResourceType::Endpoint);
        let acked_clusters = &self.types[ResourceType::Cluster.index()].acked;
        let acked_endpoints = &self.types[ResourceType::Endpoint.index()].acked;
        if acked_clusters.fingerprint() == snapshot_clusters.fingerprint()
            && acked_endpoints.fingerprint() == snapshot_endpoints.fingerprint()
        {
            // The proxy runs every cluster and endpoint of the snapshot: all are warm (the usual case, in which a
            // route that names thousands of clusters need not look each up).
            return Vec::new();
        }
        let warm = |name: &String| {
            if !snapshot_clusters.contains(name) {
                return true;
            }
            match acked_clusters.get(name) {
                None => false,
                Some(cluster) => match &cluster.references.endpoints {
                    None => true,
                    Some(eds) => acked_endpoints.contains(eds) || !snapshot_endpoints.contains(eds),
                },
            }
        };
        resource.references.clusters.iter().filter(|name| !warm(name)).cloned().collect()
    }

    /// Listeners and routes held back at the last push, with the clusters they wait for.
    pub fn held(&self) -> &[Held] {
        &self.held
    }

    fn respond(&mut self, kind: ResourceType, desired: Arc<ResourceSet>) -> Option<Response> {
        let protocol = self.protocol;
        let state = &mut self.types[kind.index()];
        if !state.requested || state.pending.is_some() || state.rejected == Some(desired.fingerprint()) {
            return None;
        }
        let must_answer = !state.answered && state.wildcard;
        let (resources, removed) = match protocol {
            Protocol::Sotw => {
                // Wildcard types are sent whole (absence means removal); named ones when one of them changed.
                let changed = if state.wildcard || desired.fingerprint() == state.sent.fingerprint() {
                    desired.fingerprint() != state.sent.fingerprint()
                } else {
                    desired.iter().any(|(name, r)| state.sent.get(name).is_none_or(|s| s.version != r.version))
                };
                if !changed && !must_answer {
                    return None;
                }
                (desired.iter().map(|(_, r)| Arc::clone(r)).collect::<Vec<_>>(), Vec::new())
            }
            Protocol::Delta if desired.fingerprint() == state.sent.fingerprint() && !must_answer => return None,
            Protocol::Delta => {
                let updates: Vec<Arc<Resource>> = desired
                    .iter()
                    .filter(|(name, r)| state.sent.get(name).is_none_or(|s| s.version != r.version))
                    .map(|(_, r)| Arc::clone(r))
                    .collect();
                let removed: Vec<String> = state.sent.names().filter(|n| !desired.contains(n)).cloned().collect();
                if updates.is_empty() && removed.is_empty() && !must_answer {
                    return None;
                }
                (updates, removed)
            }
        };
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        let state = &mut self.types[kind.index()];
        state.pending = Some(Pending { nonce: nonce.clone(), after: Arc::clone(&desired) });
        state.sent = Arc::clone(&desired);
        state.answered = true;
        // Something else than the rejected set goes out; if it is rejected too, that is recorded anew.
        state.rejected = None;
        state.last_nonce = nonce.clone();
        state.responses_sent += 1;
        state.resources_sent += resources.len() as u64;
        Some(Response { kind, nonce, version: desired.version(), resources, removed })
    }

    /// Per-type sync state, in push order.
    pub fn sync(&self) -> Vec<TypeSync> {
        ResourceType::ALL
            .into_iter()
            .map(|kind| {
                let state = &self.types[kind.index()];
                let latest = state.select(self.snapshot.resources(kind));
                // SotW cannot remove a named resource (a route configuration, an endpoint assignment): the proxy
                // keeps it until it unsubscribes, and nothing uses it once nothing refers to it. So the proxy runs
                // the latest configuration when it has every resource of it, whatever it keeps besides.
                let (sent, acked) = match self.protocol {
                    Protocol::Sotw if !state.wildcard => {
                        (within(&state.sent, &latest).version(), within(&state.acked, &latest).version())
                    }
                    _ => (state.sent.version(), state.acked.version()),
                };
                TypeSync {
                    kind,
                    requested: state.requested,
                    sent_version: (state.answered || state.ever_acked).then_some(sent),
                    acked_version: state.ever_acked.then_some(acked),
                    pending_nonce: state.pending.as_ref().map(|p| p.nonce.clone()),
                    latest_version: latest.version(),
                    // A NACK stands while what we would send is what was rejected.
                    nack: state.rejected.filter(|r| *r == latest.fingerprint()).and(state.nack.clone()),
                    last_nack: state.nack.clone(),
                    resource_count: state.acked.len(),
                    responses_sent: state.responses_sent,
                    resources_sent: state.resources_sent,
                }
            })
            .collect()
    }

    /// The resources the proxy has ACKed, by type, for config dumps.
    pub fn acked(&self, kind: ResourceType) -> &Arc<ResourceSet> {
        &self.types[kind.index()].acked
    }
}

impl TypeState {
    /// Applies the ACK or NACK a request carries for the response in flight, if it answers it.
    fn settle(&mut self, request: &Request) -> Option<RequestOutcome> {
        let pending = self.pending.take_if(|p| p.nonce == request.response_nonce)?;
        Some(match &request.error {
            None => {
                let version = pending.after.version();
                self.acked = pending.after;
                self.ever_acked = true;
                self.rejected = None;
                RequestOutcome::Ack { version }
            }
            Some(message) => {
                let rejected_version = pending.after.version();
                self.rejected = Some(pending.after.fingerprint());
                self.nack = Some(Nack {
                    nonce: pending.nonce,
                    rejected_version: rejected_version.clone(),
                    message: message.clone(),
                });
                // The proxy still runs what it last accepted.
                self.sent = Arc::clone(&self.acked);
                RequestOutcome::Nack { version: rejected_version, message: message.clone() }
            }
        })
    }

    fn subscribed(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }

    fn set_names(&mut self, names: BTreeSet<String>) {
        self.names = SHARED_NAMES.share(names);
        self.covers.set(None);
    }

    /// Whether the subscription takes in every resource of `set`.
    fn covers(&self, set: &ResourceSet) -> bool {
        if self.wildcard {
            return true;
        }
        if let Some((fingerprint, covers)) = self.covers.get()
            && fingerprint == set.fingerprint()
        {
            return covers;
        }
        let covers = self.names.len() >= set.len() && set.names().all(|n| self.names.contains(n));
        self.covers.set(Some((set.fingerprint(), covers)));
        covers
    }

    /// The part of `set` this proxy subscribes to; shares `set` when that is all of it.
    fn select(&self, set: &Arc<ResourceSet>) -> Arc<ResourceSet> {
        if self.covers(set) {
            return Arc::clone(set);
        }
        let chosen = set.iter().filter(|(n, _)| self.names.contains(*n)).map(|(n, r)| (n.clone(), Arc::clone(r)));
        Arc::new(ResourceSet::new(chosen.collect()))
    }

    /// After an unsubscribe the proxy forgets the resource, so a later subscribe must send it again.
    fn forget_unsubscribed(&mut self) {
        let names = &self.names;
        let keep = |set: &Arc<ResourceSet>| -> Arc<ResourceSet> {
            if set.names().all(|n| names.contains(n)) {
                return Arc::clone(set);
            }
            let kept = set.iter().filter(|(n, _)| names.contains(*n)).map(|(n, r)| (n.clone(), Arc::clone(r)));
            Arc::new(ResourceSet::new(kept.collect()))
        };
        self.sent = keep(&self.sent);
        self.acked = keep(&self.acked);
    }
}

/// The resources of `set` that `latest` has too.
fn within(set: &Arc<ResourceSet>, latest: &ResourceSet) -> Arc<ResourceSet> {
    if set.names().all(|name| latest.contains(name)) {
        return Arc::clone(set);
    }
    let kept = set.iter().filter(|(name, _)| latest.contains(name)).map(|(n, r)| (n.clone(), Arc::clone(r)));
    Arc::new(ResourceSet::new(kept.collect()))
}

/// Subscriptions shared between streams: proxies of one class subscribe to the same names, often thousands of EDS
/// names, and each stream holding its own copy would make that the largest part of a proxy's cost.
static SHARED_NAMES: LazyLock<SharedNames> = LazyLock::new(SharedNames::default);

#[derive(Default)]
struct SharedNames {
    /// Live name sets by a hash of their content (several per hash only on collision).
    sets: Mutex<HashMap<u64, Vec<Weak<BTreeSet<String>>>>>,
}

impl SharedNames {
    /// Sweep sets no stream holds once the table has this many more entries than at the last sweep.
    const SWEEP_AFTER: usize = 1024;

    /// A shared set equal to `names`: an existing one if a stream holds one, else `names` itself.
    fn share(&self, names: BTreeSet<String>) -> Arc<BTreeSet<String>> {
        if names.is_empty() {
            return Arc::default();
        }
        let mut hasher = Xxh3::new();
        for name in &names {
            hasher.update(name.as_bytes());
            hasher.update(&[0]);
        }
        let hash = hasher.digest();
        let mut sets = self.sets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let bucket = sets.entry(hash).or_default();
        bucket.retain(|set| set.strong_count() > 0);
        if let Some(existing) = bucket.iter().filter_map(Weak::upgrade).find(|set| **set == names) {
            return existing;
        }
        let shared = Arc::new(names);
        bucket.push(Arc::downgrade(&shared));
        if sets.len() >= Self::SWEEP_AFTER && sets.len().is_power_of_two() {
            sets.retain(|_, bucket| {
                bucket.retain(|set| set.strong_count() > 0);
                !bucket.is_empty()
            });
        }
        shared
    }
}

/// `base` with `extra` added; shares `base` when there is nothing to add.
fn extend(base: Arc<ResourceSet>, extra: BTreeMap<String, Arc<Resource>>) -> Arc<ResourceSet> {
    if extra.is_empty() {
        return base;
    }
    let mut all = Arc::unwrap_or_clone(base).into_map();
    all.extend(extra);
    Arc::new(ResourceSet::new(all))
}

impl Resource {
    /// A resource known only by name and version (what a Delta proxy reports having).
    fn placeholder(name: &str, version: &str) -> Resource {
        Resource {
            name: name.to_owned(),
            version: version.to_owned(),
            body: Any::default(),
            references: Default::default(),
            encoded: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests;
