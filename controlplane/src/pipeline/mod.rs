//! The one path from what sources read to what the cache serves.
//!
//! ```text
//!   directory source ─┐                                           ┌──► snapshot cache (per proxy class: the
//!   Kubernetes source ├─ ChangeSet ──► submit ──debounce──► apply ┤     translation + raw Envoy resources)
//!   embedded API ─────┘  (units set or removed,                   └──► InputsView (/debug/inputs, /readyz, status)
//!                         the source's status)
//!
//!   apply: units (each file or watched object, as last read in full)
//!          ──► inputs ──Translator::prepare──► Translator (World, last valid versions, validation, model)
//!          ──► diagnostics ──► cache: endpoint fast path, or every connected class rebuilt
//! ```
//!
//! A *unit* is what a source adds, replaces or removes as a whole: a file, a Kubernetes object, a named piece of
//! embedded configuration. Each holds the [`Read`] of its text or object. A unit that is only partly read (a file that
//! stops parsing mid-edit) keeps its last complete read; an object that does not read, or is invalid, keeps its last
//! valid version ([`LastValid`]). Sources only hand over change sets; the pipeline owns everything after, and the
//! admin API and metrics only read what it publishes.

mod debounce;
mod view;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use api_protos::{Any, ResourceType};
use tokio::sync::mpsc;
use tracing::{info, warn};
use translator::input::EnvoyResource;
use translator::{Diagnostic, LastValid, ProxyClass, ProxySelector, Read, Severity, Translator};

pub use debounce::Debounce;
pub use view::{InputsView, KindStatus, ObjectView, RawView, SourceDetail, SourceStatus};

use crate::cache::{Builder, Rebuild, SnapshotCache};
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::snapshot::{Resource, Snapshot, SnapshotBuilder, SnapshotError};

/// What a source adds, replaces or removes as a whole, named so that units sort in a documented order: files by
/// path, Kubernetes objects by kind, namespace and name. Of two definitions of one object, the one in the unit that
/// sorts first is served (unless creation timestamps say which is older; see [`translator::World::new`]).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnitKey(String);

impl UnitKey {
    pub fn file(path: &std::path::Path) -> UnitKey {
        UnitKey(format!("file:{}", path.display()))
    }

    pub fn object(kind: &str, namespace: &str, name: &str) -> UnitKey {
        UnitKey(format!("kubernetes:{kind}/{namespace}/{name}"))
    }

    pub fn named(name: &str) -> UnitKey {
        UnitKey(format!("embedded:{name}"))
    }
}

/// What a source hands over: units read anew (`Some`) or gone (`None`), and, when it changed, the source's status.
#[derive(Clone, Debug, Default)]
pub struct ChangeSet {
    pub units: Vec<(UnitKey, Option<Read>)>,
    /// The source's own state (what it watches, what fails), replacing the last one.
    pub status: Option<SourceStatus>,
    /// The source has handed over everything it had when it started (a directory read once, every Kubernetes kind
    /// listed): until every source has, the pipeline is not ready.
    pub synced: bool,
}

impl ChangeSet {
    fn merge(&mut self, later: ChangeSet) {
        for (key, read) in later.units {
            match self.units.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = read,
                None => self.units.push((key, read)),
            }
        }
        if later.status.is_some() {
            self.status = later.status;
        }
        self.synced |= later.synced;
    }

    fn is_empty(&self) -> bool {
        self.units.is_empty() && self.status.is_none() && !self.synced
    }
}

/// Whether an apply that leaves errors is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Commit {
    /// Always: what is invalid keeps its last valid version, the rest is served (sources that watch).
    Always,
    /// Only without errors: a change with an error is refused whole (the embedded API, which returns the errors).
    IfValid,
}

/// What an apply did.
#[derive(Debug, Default)]
pub struct Publication {
    /// Every diagnostic of the configuration now served (reading, validation, analysis).
    pub diagnostics: Vec<Diagnostic>,
    /// Classes whose snapshot changed.
    pub changed: Vec<ProxyClass>,
    /// Classes whose snapshot was refused (they keep their last good one).
    pub failed: Vec<(ProxyClass, SnapshotError)>,
}

/// A source's handle on the pipeline.
#[derive(Clone)]
pub struct SourceHandle {
    id: usize,
    pipeline: Arc<Pipeline>,
}

impl SourceHandle {
    /// Hands over a change set; it is applied once changes have been quiet for the debounce period.
    pub fn submit(&self, changes: ChangeSet) {
        self.pipeline.submit(self.id, changes);
    }

    /// Hands over a change set and applies it (with anything pending) now.
    pub fn apply(&self, changes: ChangeSet, commit: Commit) -> Result<Publication, Publication> {
        self.pipeline.submit(self.id, changes);
        self.pipeline.flush(commit)
    }

    /// Tells the pipeline the source has something new without handing it over yet: once changes have been quiet
    /// for the debounce period, the pipeline asks every source to catch up ([`Pipeline::on_catch_up`]).
    pub fn nudge(&self) {
        self.pipeline.wake();
    }

    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }
}

/// A source's "catch up now": reading sync state first makes each source hand over what it has not read yet (a
/// directory checks its files), so `pilotfish wait` right after an edit waits for that edit.
pub type CatchUp = Arc<dyn Fn() + Send + Sync>;

/// Validates, translates and publishes what the sources hand over. One per control plane.
pub struct Pipeline {
    cache: Arc<SnapshotCache>,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Changes submitted and not applied yet, per source.
    pending: Mutex<BTreeMap<usize, ChangeSet>>,
    /// Wakes the debounce task on every submit and nudge.
    submitted: mpsc::UnboundedSender<()>,
    /// Something was submitted or nudged since the last flush: a wake-up that finds it unset is stale (its change
    /// was applied by a direct flush already).
    dirty: AtomicBool,
    submissions: Mutex<Option<mpsc::UnboundedReceiver<()>>>,
    catch_ups: RwLock<Vec<CatchUp>>,
    view: RwLock<Arc<InputsView>>,
    /// Class diagnostics already logged (whatever class found them); cleared on every publication, so one that
    /// stands is logged once per change rather than once per class and rebuild.
    logged: Arc<Mutex<HashSet<Diagnostic>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

#[derive(Clone, Default)]
struct State {
    units: BTreeMap<UnitKey, Unit>,
    sources: Vec<SourceState>,
    last_valid: LastValid,
    published: Option<Published>,
    generation: u64,
}

#[derive(Clone, Debug, Default)]
struct SourceState {
    name: String,
    synced: bool,
    status: SourceStatus,
}

/// A unit as served: its last complete read, and the diagnostics of a newer read that was not complete.
#[derive(Clone, Debug)]
struct Unit {
    read: Arc<Read>,
    /// Why a newer version is not served.
    kept: Vec<Diagnostic>,
}

/// What was published last: the translator (for [`Translator::prepare`] and the endpoint fast path) and the raw
/// resources.
#[derive(Clone)]
struct Published {
    translator: Arc<Translator>,
    raw: Arc<Vec<(ProxySelector, Any)>>,
}

impl Pipeline {
    pub fn new(cache: Arc<SnapshotCache>, metrics: Arc<Metrics>) -> Arc<Pipeline> {
        let (submitted, submissions) = mpsc::unbounded_channel();
        Arc::new(Pipeline {
            cache,
            metrics,
            state: Mutex::default(),
            pending: Mutex::default(),
            submitted,
            dirty: AtomicBool::new(false),
            submissions: Mutex::new(Some(submissions)),
            catch_ups: RwLock::default(),
            view: RwLock::new(Arc::new(InputsView::default())),
            logged: Arc::default(),
        })
    }

    /// Registers a source (named in `/debug/inputs`); the pipeline is ready once every source has sent a change set
    /// marked `synced`.
    pub fn register(self: &Arc<Self>, name: &str) -> SourceHandle {
        let mut state = lock(&self.state);
        state.sources.push(SourceState { name: name.to_owned(), ..SourceState::default() });
        SourceHandle { id: state.sources.len() - 1, pipeline: Arc::clone(self) }
    }

    /// Registers what a source runs to catch up ([`Pipeline::catch_up`]).
    pub fn on_catch_up(&self, catch_up: CatchUp) {
        if let Ok(mut hooks) = self.catch_ups.write() {
            hooks.push(catch_up);
        }
    }

    /// Makes every source hand over what it has not yet, and applies everything pending now. Blocking: call it off
    /// the async workers.
    pub fn catch_up(&self) {
        let hooks = self.catch_ups.read().map(|hooks| hooks.clone()).unwrap_or_default();
        for hook in hooks {
            hook();
        }
        let _ = self.flush(Commit::Always);
    }

    /// What was read and what became of it; `ready` once every source has handed over its initial state.
    pub fn view(&self) -> Arc<InputsView> {
        self.view.read().map(|view| Arc::clone(&view)).unwrap_or_default()
    }

    /// The snapshot `class` would be served now (built for it, whether or not a proxy of the class is connected),
    /// and the diagnostics of translating for that class.
    pub fn snapshot(&self, class: &ProxyClass) -> Result<(Snapshot, Vec<Diagnostic>), SnapshotError> {
        let published = lock(&self.state).published.clone();
        match published {
            Some(published) => build(&published.translator, &published.raw, class),
            None => Ok((Snapshot::empty(), Vec::new())),
        }
    }

    /// The Translator of what is served now.
    pub fn translator(&self) -> Option<Arc<Translator>> {
        lock(&self.state).published.as_ref().map(|p| Arc::clone(&p.translator))
    }

    fn submit(&self, source: usize, changes: ChangeSet) {
        lock(&self.pending).entry(source).or_default().merge(changes);
        self.wake();
    }

    fn wake(&self) {
        self.dirty.store(true, Ordering::SeqCst);
        let _ = self.submitted.send(());
    }

    /// Applies the pending change sets. `Err` when `commit` refused them (the last configuration stays).
    fn flush(&self, commit: Commit) -> Result<Publication, Publication> {
        // One apply at a time, in the order of submission: the state lock is taken before the pending changes.
        let mut state = lock(&self.state);
        self.dirty.store(false, Ordering::SeqCst);
        let pending = std::mem::take(&mut *lock(&self.pending));
        let pending: Vec<(usize, ChangeSet)> = pending.into_iter().filter(|(_, c)| !c.is_empty()).collect();
        if pending.is_empty() && state.published.is_some() {
            return Ok(Publication { diagnostics: self.view().diagnostics.clone(), ..Publication::default() });
        }
        let mut next = state.clone();
        for (source, changes) in pending {
            next.take(source, changes);
        }
        if !next.sources.iter().all(|source| source.synced) {
            // A partial configuration (a Kubernetes kind not listed yet) would take away what it lacks from every
            // proxy: nothing is published until every source has handed over all it had at start.
            *state = next;
            return Ok(Publication::default());
        }
        let (publication, published) = self.apply(&next, commit);
        let Some((published, last_valid)) = published else { return Err(publication) };
        next.published = Some(published);
        next.last_valid = last_valid;
        next.generation += 1;
        // Each problem is logged when it appears, not again on every change that leaves it standing.
        let before = self.view();
        for diagnostic in publication.diagnostics.iter().filter(|d| !before.diagnostics.contains(d)) {
            log_diagnostic(diagnostic, None);
        }
        self.publish_view(&next, &publication.diagnostics);
        *state = next;
        Ok(publication)
    }

    /// Translates `state`'s units and publishes the result, unless `commit` refuses it.
    fn apply(&self, state: &State, commit: Commit) -> (Publication, Option<(Published, LastValid)>) {
        let started = Instant::now();
        self.metrics.config_reloads.inc();
        let mut diagnostics = Vec::new();
        let mut inputs = Vec::new();
        let mut ignored = Vec::new();
        let mut unreadable = Vec::new();
        let mut raw = Vec::new();
        for unit in state.units.values() {
            inputs.extend(unit.read.inputs.iter().cloned());
            ignored.extend(unit.read.ignored.iter().cloned());
            unreadable.extend(unit.read.unreadable.iter().cloned());
            diagnostics.extend(unit.read.diagnostics.iter().cloned());
            diagnostics.extend(unit.kept.iter().cloned());
            raw.extend(unit.read.envoy.iter().filter_map(|resource| checked_raw(resource, &mut diagnostics)));
        }
        for source in &state.sources {
            diagnostics.extend(source.status.problems.iter().cloned());
        }
        let mut last_valid = state.last_valid.clone();
        let previous = state.published.as_ref().map(|p| p.translator.as_ref());
        let translator = Arc::new(Translator::prepare(previous, inputs, ignored, &unreadable, &mut last_valid));
        diagnostics.extend(translator.diagnostics().iter().cloned());
        let diagnostics = translator::diagnostics::sorted(diagnostics);
        if commit == Commit::IfValid && diagnostics.iter().any(Diagnostic::rejects) {
            return (Publication { diagnostics, ..Publication::default() }, None);
        }
        let raw = Arc::new(raw);
        let previous = state.published.as_ref();
        lock(&self.logged).clear();
        let rebuild = self.publish_to_cache(&translator, &raw, previous);
        for (class, err) in &rebuild.failed {
            warn!(class = %class, error = %err, "not publishing for this class: serving its last good config");
        }
        if commit == Commit::IfValid && !rebuild.failed.is_empty() {
            return (Publication { diagnostics, changed: rebuild.changed, failed: rebuild.failed }, None);
        }
        info!(
            objects = translator.world().len(),
            errors = diagnostics.iter().filter(|d| d.rejects()).count(),
            changed_classes = rebuild.changed.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "configuration published"
        );
        let published = Published { translator, raw };
        let publication = Publication { diagnostics, changed: rebuild.changed, failed: rebuild.failed };
        (publication, Some((published, last_valid)))
    }

    /// Publishes the translation to the cache. When only endpoints of EDS services changed since `previous`,
    /// connected classes get just those ClusterLoadAssignments replaced in their current snapshot (the endpoint
    /// fast path) instead of a full translation.
    fn publish_to_cache(
        &self,
        translator: &Arc<Translator>,
        raw: &Arc<Vec<(ProxySelector, Any)>>,
        previous: Option<&Published>,
    ) -> Rebuild {
        let builder =
            builder(Arc::clone(translator), Arc::clone(raw), Arc::clone(&self.metrics), Arc::clone(&self.logged));
        let changed_hosts = previous
            .filter(|previous| previous.raw == *raw)
            .and_then(|previous| translator.endpoint_changes_since(&previous.translator));
        let Some(hosts) = changed_hosts else { return self.cache.set_builder(builder) };
        self.metrics.endpoint_fast_path.inc();
        let started = Instant::now();
        let rebuild = self.cache.patch(builder, |class, current| {
            let assignments = translator.endpoints(class, &hosts);
            let mut replacements = Vec::with_capacity(assignments.len());
            for assignment in &assignments {
                let (_, resource) = Resource::from_message(assignment)?;
                replacements.push(resource);
            }
            Ok(current.with_replaced(ResourceType::Endpoint, replacements))
        });
        tracing::debug!(
            hosts = hosts.len(),
            took_us = started.elapsed().as_micros() as u64,
            "endpoint-only change: pushed only the changed endpoints"
        );
        rebuild
    }

    fn publish_view(&self, state: &State, diagnostics: &[Diagnostic]) {
        let view = view::build(state, diagnostics);
        if let Ok(mut slot) = self.view.write() {
            *slot = Arc::new(view);
        }
    }

    /// Applies submitted changes once they have been quiet for `debounce.quiet` (at most `debounce.max_delay` after
    /// the first), until `shutdown`. Runs once per pipeline.
    pub async fn run(self: Arc<Self>, debounce: Debounce, shutdown: Shutdown) {
        let Some(mut submissions) = lock(&self.submissions).take() else {
            warn!("the pipeline is already running");
            return;
        };
        loop {
            tokio::select! {
                submitted = submissions.recv() => if submitted.is_none() { return },
                () = shutdown.wait() => return,
            }
            if !self.dirty.load(Ordering::SeqCst) {
                continue;
            }
            let burst = debounce.settle(&mut submissions).await;
            self.metrics.debounce.observe(burst.as_secs_f64());
            let pipeline = Arc::clone(&self);
            // Reading files and translating take a while: off the async workers.
            let _ = tokio::task::spawn_blocking(move || pipeline.catch_up()).await;
        }
    }
}

impl State {
    /// Takes one source's change set into the units and source states.
    fn take(&mut self, source: usize, changes: ChangeSet) {
        for (key, read) in changes.units {
            match read {
                None => {
                    self.units.remove(&key);
                }
                Some(read) => {
                    let unit = match self.units.remove(&key) {
                        Some(previous) => previous.replaced_by(read),
                        None => Unit { read: Arc::new(read), kept: Vec::new() },
                    };
                    self.units.insert(key, unit);
                }
            }
        }
        if let Some(entry) = self.sources.get_mut(source) {
            if let Some(status) = changes.status {
                entry.status = status;
            }
            entry.synced |= changes.synced;
        }
    }
}

impl Unit {
    /// The unit after a new read: that read when it is complete; otherwise the last complete one stays, with the
    /// new read's diagnostics saying why.
    fn replaced_by(self, read: Read) -> Unit {
        let held = self.read.inputs.len() + self.read.envoy.len();
        if read.complete && held > 0 && read.inputs.is_empty() && read.envoy.is_empty() && read.ignored.is_empty() {
            // Often a file truncated by an editor or a failed copy: say what went away.
            let source = self.read.inputs.first().and_then(|i| i.meta().source.clone());
            let file = source.as_ref().map_or("it", |s| s.file.as_str());
            let note = Diagnostic::warning(format!(
                "{file} holds nothing now: the {held} object(s) it held are no longer served (remove the file if \
                 that is meant)"
            ));
            return Unit { read: Arc::new(read), kept: vec![note] };
        }
        if read.complete || held == 0 {
            return Unit { read: Arc::new(share_unchanged(read, &self.read)), kept: Vec::new() };
        }
        let source = read.diagnostics.iter().find_map(|d| d.source.clone());
        let mut kept = read.diagnostics;
        kept.push(
            Diagnostic::warning("does not read in full: serving its last complete version until it does")
                .source(source),
        );
        Unit { read: self.read, kept }
    }
}

/// `read` with each object equal to the one at its position in `previous` replaced by that one: translation tells
/// unchanged objects by identity, so an edit of one object among many has the others validated and modelled no more.
fn share_unchanged(mut read: Read, previous: &Read) -> Read {
    for (index, input) in read.inputs.iter_mut().enumerate() {
        if let Some(old) = previous.inputs.get(index)
            && *old == *input
        {
            *input = old.clone();
        }
    }
    read
}

/// A raw resource that reads as an Envoy resource pilotfish serves; otherwise a diagnostic naming where it was.
fn checked_raw(resource: &EnvoyResource, diagnostics: &mut Vec<Diagnostic>) -> Option<(ProxySelector, Any)> {
    match Resource::from_any(&resource.resource) {
        Ok(_) => Some((resource.proxies.clone(), resource.resource.clone())),
        Err(err) => {
            diagnostics.push(
                Diagnostic::error(format!("raw Envoy resource not served: {err}"))
                    .source(Some(resource.source.clone())),
            );
            None
        }
    }
}

/// A cache builder serving each class its translation, plus the raw resources its selector picks. A class's own
/// diagnostic is logged the first time it is found (`logged` keeps what was), not on every rebuild of every class.
fn builder(
    translator: Arc<Translator>,
    raw: Arc<Vec<(ProxySelector, Any)>>,
    metrics: Arc<Metrics>,
    logged: Arc<Mutex<HashSet<Diagnostic>>>,
) -> Builder {
    Arc::new(move |class: &ProxyClass| {
        let started = Instant::now();
        let (snapshot, diagnostics) = build(&translator, &raw, class)?;
        metrics.translation.observe(started.elapsed().as_secs_f64());
        let mut logged = lock(&logged);
        for diagnostic in diagnostics {
            if !logged.contains(&diagnostic) {
                log_diagnostic(&diagnostic, Some(class));
                logged.insert(diagnostic);
            }
        }
        Ok(snapshot)
    })
}

/// The snapshot of `class`: its translation, plus the raw resources its selector picks; and the class's own
/// diagnostics. A raw resource named like a translated one is not served (the translated one is): a warning says so.
fn build(
    translator: &Translator,
    raw: &[(ProxySelector, Any)],
    class: &ProxyClass,
) -> Result<(Snapshot, Vec<Diagnostic>), SnapshotError> {
    let translation = translator.translate(class);
    let mut diagnostics = translation.diagnostics.clone();
    let mut snapshot = SnapshotBuilder::default();
    snapshot.add_translation(&translation)?;
    for (_, resource) in raw.iter().filter(|(selector, _)| selector.matches(class)) {
        if let Err(err) = snapshot.add_any(resource) {
            diagnostics.push(Diagnostic::warning(format!("raw Envoy resource not served to {class}: {err}")));
        }
    }
    Ok((snapshot.build(), diagnostics))
}

/// Logs a diagnostic at the level its severity calls for.
pub fn log_diagnostic(diagnostic: &Diagnostic, class: Option<&ProxyClass>) {
    let class = class.map(ToString::to_string).unwrap_or_default();
    match diagnostic.severity {
        Severity::Error | Severity::Warning => warn!(class, "{diagnostic}"),
        Severity::Info => info!(class, "{diagnostic}"),
    }
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update under these locks is complete or not started when a panic could strike.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests;
