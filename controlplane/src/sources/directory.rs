//! A directory of configuration files, watched.
//!
//! ```text
//!   inotify (content changes only) ──► the pipeline is nudged ──debounce──► catch_up ──┐
//!   /debug/syncz (the pipeline's catch-up), a slow poll ───────────────────► catch_up ──┤
//!   catch_up: stat every file; read the changed ones (translator::read) ──► ChangeSet: a unit per file, set or gone
//! ```
//!
//! Every `*.yaml`, `*.yml` and `*.json` file below the directory is read (hidden files are not); a file may hold
//! several documents: Istio and Kubernetes objects, and raw Envoy resources (see [`translator::read`] and
//! `examples/raw-envoy`). A file is a unit of the pipeline: one that stops parsing mid-edit keeps its last complete
//! version there. This source reads files and hands them over; it does not translate or publish.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};
use translator::{Diagnostic, Read};

use crate::pipeline::{ChangeSet, Pipeline, SourceDetail, SourceHandle, SourceStatus, UnitKey};
use crate::shutdown::Shutdown;

/// A file's size and modification time: a file whose stamp is unchanged is not read again.
type Stamp = (u64, Option<SystemTime>);

pub struct DirectorySource {
    dir: PathBuf,
    handle: SourceHandle,
    /// The files as last read.
    files: Mutex<Option<BTreeMap<PathBuf, Stamp>>>,
}

impl DirectorySource {
    /// A source for `dir`, registered with `pipeline` (which asks it to catch up before answering sync state).
    pub fn new(dir: PathBuf, pipeline: &Arc<Pipeline>) -> Arc<DirectorySource> {
        let handle = pipeline.register(&format!("directory {}", dir.display()));
        let source = Arc::new(DirectorySource { dir, handle, files: Mutex::new(None) });
        let weak = Arc::downgrade(&source);
        pipeline.on_catch_up(Arc::new(move || {
            if let Some(source) = weak.upgrade() {
                source.catch_up();
            }
        }));
        source
    }

    /// Reads whatever changed since the last read and hands it to the pipeline; nothing when nothing did.
    pub fn catch_up(&self) {
        if let Some(changes) = self.scan() {
            self.handle.submit(changes);
        }
    }

    /// The changes since the last scan.
    fn scan(&self) -> Option<ChangeSet> {
        let mut files = self.files.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = files.is_none();
        let listed = match list_files(&self.dir) {
            Ok(listed) => listed,
            Err(err) => {
                let problem = Diagnostic::error(format!(
                    "failed to list the config directory {}: {err}; serving the last configuration read",
                    self.dir.display()
                ));
                warn!("{problem}");
                let status = SourceStatus { problems: vec![problem], detail: self.detail(files.as_ref()) };
                return Some(ChangeSet { status: Some(status), synced: true, ..ChangeSet::default() });
            }
        };
        let mut previous = files.take().unwrap_or_default();
        let mut current = BTreeMap::new();
        let mut units = Vec::new();
        for path in listed {
            let stamp = stamp(&path);
            if previous.remove(&path) != Some(stamp) {
                units.push((UnitKey::file(&path), Some(read_file(&path))));
            }
            current.insert(path, stamp);
        }
        // Files removed since.
        units.extend(previous.into_keys().map(|path| (UnitKey::file(&path), None)));
        let changed = first || !units.is_empty();
        let status = SourceStatus { problems: Vec::new(), detail: self.detail(Some(&current)) };
        *files = Some(current);
        changed.then_some(ChangeSet { units, status: Some(status), synced: true })
    }

    fn detail(&self, files: Option<&BTreeMap<PathBuf, Stamp>>) -> SourceDetail {
        let files = files.map(|f| f.keys().map(|f| f.display().to_string()).collect()).unwrap_or_default();
        SourceDetail::Directory { files }
    }

    /// Watches the directory until `shutdown`: a change to a file's content, name or presence nudges the pipeline,
    /// which catches up once changes have been quiet for its debounce period; a slow poll is the safety net (file
    /// systems without inotify). Reads are not changes: pilotfish's own reads would wake it again.
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        let (events, mut changes) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|event| changes_content(&event.kind)) {
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
        info!(dir = %self.dir.display(), "watching the config directory");
        let mut poll = tokio::time::interval(Duration::from_secs(2));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                event = changes.recv() => {
                    if event.is_none() {
                        return;
                    }
                    self.handle.nudge();
                }
                _ = poll.tick() => {
                    let source = Arc::clone(&self);
                    let _ = tokio::task::spawn_blocking(move || source.catch_up()).await;
                }
            }
        }
    }
}

/// Whether an inotify event can change what the directory holds: not an access (open, read, close without writing)
/// and not metadata alone.
fn changes_content(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)))
}

/// The config files below `dir`, sorted (or `dir` itself when it is a file).
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    Ok(files)
}

fn is_config_file(path: &Path) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or_default();
    !hidden && matches!(extension, "yaml" | "yml" | "json")
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), std::io::Error> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else if is_config_file(&path) {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads every config file below `path` (or the file `path`) once, as a change set: what the offline commands read.
pub fn read_all(path: &Path) -> Result<ChangeSet, std::io::Error> {
    let units = list_files(path)?.into_iter().map(|file| (UnitKey::file(&file), Some(read_file(&file)))).collect();
    Ok(ChangeSet { units, status: None, synced: true })
}

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok();
    (metadata.as_ref().map_or(0, |m| m.len()), metadata.and_then(|m| m.modified().ok()))
}

/// Reads one file. One that cannot be read at all is an incomplete read: its last complete version stays served.
fn read_file(path: &Path) -> Read {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => translator::read(&text, &name),
        Err(err) => Read {
            diagnostics: vec![Diagnostic::error(format!("{name}: failed to read the file: {err}"))],
            complete: false,
            ..Read::default()
        },
    }
}

#[cfg(test)]
mod tests;
