//! A directory of configuration files, watched: a burst of edits becomes one translation, and a file that stops
//! parsing mid-edit keeps serving its last good version.
//!
//! ```text
//!   inotify events ──► debounce (quiet period, bounded by a maximum delay) ──► catch_up()
//!   /debug/syncz, a slow poll ───────────────────────────────────────────────► catch_up()
//!   catch_up: stat every file; re-read the changed ones (last good parse kept per file); translate; publish
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use api_protos::Any;
use notify::{RecursiveMode, Watcher};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{info, warn};
use translator::validate::check_input;
use translator::{Diagnostic, Input, ObjectRef, World};

use crate::State;
use crate::config_dir::{self, Origin};
use crate::pipeline::{self, log_diagnostic};

/// Debounce settings: a burst of changes becomes one translation.
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    /// Translate once nothing changed for this long.
    pub quiet: Duration,
    /// ... but no later than this after the first change of a burst.
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce { quiet: Duration::from_millis(100), max_delay: Duration::from_secs(1) }
    }
}

impl Debounce {
    /// Waits out a burst whose first change just arrived: returns once `changes` has been quiet for `quiet`, or
    /// `max_delay` after the burst began, whichever comes first. Returns how long the burst lasted.
    pub async fn settle(&self, changes: &mut mpsc::UnboundedReceiver<()>) -> Duration {
        let burst_started = Instant::now();
        let deadline = burst_started + self.max_delay;
        while let Ok(Some(())) =
            tokio::time::timeout(self.quiet.min(deadline.saturating_duration_since(Instant::now())), changes.recv())
                .await
        {
            if Instant::now() >= deadline {
                break;
            }
        }
        burst_started.elapsed()
    }
}

/// The last valid version of every object, so an edit that makes one invalid does not take it away.
#[derive(Debug, Default)]
pub struct LastValid(Mutex<BTreeMap<ObjectRef, Input>>);

impl LastValid {
    /// Replaces objects that are invalid now by their last valid version, if they had one, and remembers the valid
    /// ones. Returns the inputs to translate and a message per object kept.
    pub fn keep(&self, inputs: Vec<Input>) -> (Vec<Input>, Vec<String>) {
        let mut last_valid = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Of two definitions of one object the first counts, as in `World::new`; an object still the one last
        // found valid (the same `Arc`) is not validated again.
        let mut validity = BTreeMap::new();
        let mut kept = Vec::new();
        let mut result = Vec::with_capacity(inputs.len());
        for input in inputs {
            let reference = input.reference();
            let valid = *validity.entry(reference.clone()).or_insert_with(|| match last_valid.get(&reference) {
                Some(previous) if previous.same(&input) => true,
                _ => check_input(&input).valid,
            });
            if !valid {
                if let Some(previous) = last_valid.get(&reference) {
                    let message =
                        format!("{reference} is invalid now; serving its last valid version until it is fixed");
                    warn!("{message}");
                    kept.push(message);
                    result.push(previous.clone());
                    continue;
                }
            } else if !last_valid.get(&reference).is_some_and(|previous| previous.same(&input)) {
                last_valid.insert(reference.clone(), input.clone());
            }
            result.push(input);
        }
        // Objects gone from the files are gone.
        last_valid.retain(|reference, _| validity.contains_key(reference));
        (result, kept)
    }
}

/// A file as last read successfully.
#[derive(Clone)]
struct FileRead {
    stamp: (u64, Option<SystemTime>),
    inputs: Vec<Input>,
    raw: Vec<(Origin, Any)>,
    problems: Vec<String>,
}

pub struct DirectorySource {
    dir: PathBuf,
    state: State,
    /// The files as last read; shared with the publish in progress rather than copied, as it holds every object.
    files: Mutex<Option<Arc<BTreeMap<PathBuf, FileRead>>>>,
    last_valid: LastValid,
    /// What was published last, for the endpoint fast path.
    published: Mutex<Option<pipeline::Published>>,
}

impl DirectorySource {
    pub fn new(dir: PathBuf, state: State) -> Arc<DirectorySource> {
        Arc::new(DirectorySource {
            dir,
            state,
            files: Mutex::new(None),
            last_valid: LastValid::default(),
            published: Mutex::new(None),
        })
    }

    /// Reads whatever changed since the last read and publishes the result; a no-op when nothing did.
    pub fn catch_up(&self) {
        let mut files = self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let listed = match config_dir::list_files(&self.dir) {
            Ok(listed) => listed,
            Err(err) => {
                warn!(dir = %self.dir.display(), error = %err, "failed to list the config directory; serving the last good config");
                return;
            }
        };
        let previous = files.take();
        let first = previous.is_none();
        // Unshared unless a publish of the last read is still running (it holds the map only while it runs).
        let mut previous = previous
            .map(|shared| Arc::try_unwrap(shared).unwrap_or_else(|shared| (*shared).clone()))
            .unwrap_or_default();
        let mut changed = first || previous.len() != listed.len();
        let mut current = BTreeMap::new();
        for path in listed {
            let stamp = stamp(&path);
            match previous.remove(&path) {
                Some(read) if read.stamp == stamp => {
                    current.insert(path, read);
                }
                last_good => {
                    changed = true;
                    current.insert(path.clone(), read_file(&path, stamp, last_good));
                }
            }
        }
        changed |= !previous.is_empty(); // files removed
        let current = Arc::new(current);
        *files = Some(Arc::clone(&current));
        drop(files);
        if changed {
            self.publish(&current);
        }
    }

    fn publish(&self, files: &BTreeMap<PathBuf, FileRead>) {
        let started = Instant::now();
        self.state.metrics.config_reloads.inc();
        let inputs: Vec<Input> = files.values().flat_map(|f| f.inputs.iter().cloned()).collect();
        let objects: Vec<_> = inputs
            .iter()
            .map(|input| {
                let reference = input.reference();
                json!({
                    "kind": reference.kind.to_string(),
                    "namespace": reference.namespace,
                    "name": reference.name,
                    "source": input.meta().source.as_ref().map(ToString::to_string),
                })
            })
            .collect();
        let (inputs, kept) = self.last_valid.keep(inputs);
        let (world, duplicates) = World::new(inputs);
        let mut published = self.published.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let translator = Arc::new(pipeline::translator(&world, published.as_ref()));
        let mut diagnostics: Vec<String> = files.values().flat_map(|f| f.problems.iter().cloned()).collect();
        diagnostics.extend(kept);
        for problem in &diagnostics {
            warn!("{problem}");
        }
        for diagnostic in duplicates.iter().chain(translator.diagnostics()) {
            log_diagnostic(diagnostic, None);
            diagnostics.push(diagnostic.to_string());
        }
        let raw: Vec<&(Origin, Any)> = files.values().flat_map(|f| f.raw.iter()).collect();
        let raw_resources: Vec<_> =
            raw.iter().map(|(origin, any)| json!({ "type": any.type_url, "source": origin.to_string() })).collect();
        let raw = Arc::new(raw.into_iter().map(|(origin, any)| (origin.proxies.clone(), any.clone())).collect());
        let (rebuild, now) = pipeline::publish(&self.state, translator, raw, published.as_ref());
        *published = Some(now);
        drop(published);
        for (class, err) in &rebuild.failed {
            warn!(class = %class, error = %err, "not publishing for this class: serving its last good config");
        }
        let read_at = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
        crate::admin::publish_inputs(
            &self.state,
            json!({
                "source": self.dir.display().to_string(),
                "read_at_unix": read_at,
                "files": files.keys().map(|f| f.display().to_string()).collect::<Vec<_>>(),
                "objects": objects,
                "raw_resources": raw_resources,
                "diagnostics": diagnostics,
            }),
        );
        info!(
            files = files.len(),
            objects = world.len(),
            changed_classes = rebuild.changed.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "config read"
        );
    }

    /// Watches the directory until the task is dropped: file events are debounced into `catch_up`, with a slow
    /// poll as a safety net (e.g. for file systems without inotify).
    pub async fn watch(self: Arc<Self>, debounce: Debounce) {
        let (events, mut changes) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok() {
                let _ = events.send(());
            }
        })
        .and_then(|mut watcher| watcher.watch(&self.dir, RecursiveMode::Recursive).map(|()| watcher));
        let _watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                warn!(dir = %self.dir.display(), error = %err, "failed to watch the config directory; polling it instead");
                None
            }
        };
        let poll = Duration::from_secs(2);
        loop {
            // Wait for the first change of a burst (or the poll interval).
            let first = tokio::time::timeout(poll, changes.recv()).await;
            if matches!(first, Ok(None)) {
                return;
            }
            if first.is_ok() {
                let burst = debounce.settle(&mut changes).await;
                self.state.metrics.debounce.observe(burst.as_secs_f64());
            }
            let source = Arc::clone(&self);
            let _ = tokio::task::spawn_blocking(move || source.catch_up()).await;
        }
    }
}

fn stamp(path: &Path) -> (u64, Option<SystemTime>) {
    let metadata = std::fs::metadata(path).ok();
    (metadata.as_ref().map_or(0, |m| m.len()), metadata.and_then(|m| m.modified().ok()))
}

/// Reads one file; if it no longer parses, keeps its last good version (and says so).
fn read_file(path: &Path, stamp: (u64, Option<SystemTime>), last_good: Option<FileRead>) -> FileRead {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            return keep_last_good(path, stamp, last_good, format!("failed to read the file: {err}"));
        }
    };
    let mut loaded = config_dir::Loaded::default();
    config_dir::read_documents(path, &text, &mut loaded);
    let syntax_error = loaded.diagnostics.iter().find(|d| d.message.starts_with("failed to parse YAML")).cloned();
    if let Some(error) = syntax_error
        && last_good.is_some()
    {
        return keep_last_good(path, stamp, last_good, error.message);
    }
    let (inputs, input_problems) = translator::read_yaml(&text, &path.display().to_string());
    let inputs = share_unchanged(inputs, last_good.as_ref().map_or(&[], |read| &read.inputs));
    let mut problems: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
    problems.extend(
        input_problems.iter().filter(|d| !d.message.starts_with("failed to parse YAML")).map(Diagnostic::to_string),
    );
    // Raw resources are checked on their own so their problems name file and position.
    let mut check = crate::snapshot::SnapshotBuilder::default();
    let mut raw = Vec::new();
    for (origin, any) in loaded.resources {
        match check.add_any(&any) {
            Ok(_) => raw.push((origin, any)),
            Err(err) => problems.push(format!("{origin}: {err}")),
        }
    }
    FileRead { stamp, inputs, raw, problems }
}

/// `inputs` with each object that equals the one at its position in `previous` (the file's last read) replaced by
/// that one: translation tells unchanged objects by identity, so an edit of one object in a file of many has the
/// others validated and modelled no more.
fn share_unchanged(inputs: Vec<Input>, previous: &[Input]) -> Vec<Input> {
    inputs
        .into_iter()
        .enumerate()
        .map(|(index, input)| match previous.get(index) {
            Some(old) if *old == input => old.clone(),
            _ => input,
        })
        .collect()
}

fn keep_last_good(path: &Path, stamp: (u64, Option<SystemTime>), last_good: Option<FileRead>, why: String) -> FileRead {
    let message = format!("{}: {why}; serving its last good version until it reads again", path.display());
    match last_good {
        Some(mut read) => {
            read.stamp = stamp;
            read.problems = vec![message];
            read
        }
        None => FileRead { stamp, inputs: Vec::new(), raw: Vec::new(), problems: vec![message] },
    }
}

#[cfg(test)]
mod tests;
