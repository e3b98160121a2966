//! One kind's watch: list, watch, and list again whenever the watch cannot resume; failures told apart, retried
//! with backoff, and reported while they last.
//!
//! ```text
//!   Init ──► InitApply… ──► InitDone (the list replaces the kind) ──► Apply / Delete …
//!     ▲                                                                   │ 410 Gone: the history to resume
//!     └────────────────────────── relist at once ◄────────────────────────┘ from is gone
//!   no answer (connection refused, cut): retried with backoff, and a cheap list probes when it answers again
//!   404 for an Istio kind: the watch ends, discovery decides what to watch next
//! ```

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Resource;
use kube::api::{Api, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::utils::Backoff;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};
use translator::Kind;

use super::discovery::is_istio;
use super::store::Slot;
use super::{KubernetesSource, convert};

/// How often an unreachable apiserver is probed while a watch waits to retry.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

impl KubernetesSource {
    /// Runs one kind's watcher: list, watch, and list again whenever the watch cannot resume. Returns when the
    /// apiserver answers 404 for an Istio kind (its CRD removed, or the version watched no longer served), for
    /// discovery to decide what to watch next.
    pub(super) async fn watch<K, F>(self: Arc<Self>, kind: Kind, api: Api<K>, convert: F)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
        F: Fn(K) -> Slot + Send + 'static,
    {
        'restart: loop {
            let config = watcher::Config::default();
            let mut events = std::pin::pin!(
                watcher::watcher(api.clone(), config).backoff(RetryBackoff::new(self.settings.max_backoff))
            );
            let mut failing = false;
            // While the apiserver cannot be reached, a cheap list tells when it can again: a watch that resumes
            // from where it was says nothing until the kind changes.
            let mut probe = tokio::time::interval(PROBE_INTERVAL);
            probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let event = tokio::select! {
                    event = events.next() => event,
                    _ = probe.tick(), if failing => {
                        if api.list_metadata(&ListParams::default().limit(1)).await.is_ok() {
                            info!(%kind, "the apiserver answers again");
                            failing = false;
                            self.update(|store| (Vec::new(), store.kind(kind).set_error(None)));
                        }
                        continue;
                    }
                };
                let Some(event) = event else { break };
                let event = match event {
                    Ok(event) => event,
                    Err(err) => {
                        match classify(&err) {
                            Failure::Expired => {
                                // The history the watch would resume from is gone. A new watcher lists at once
                                // (this one would first wait out its backoff); the list replaces the kind whole.
                                warn!(%kind, error = %describe(&err), "watch expired (410 Gone); relisting");
                                continue 'restart;
                            }
                            Failure::NotServed if is_istio(kind) => {
                                // A CRD removed (its objects were deleted first, and those deletions seen), or a
                                // version no longer served: discovery decides what to watch next.
                                warn!(%kind, error = %describe(&err), "the apiserver does not serve this kind now");
                                return;
                            }
                            Failure::NotServed | Failure::Other | Failure::Unreachable => {
                                let error = describe(&err);
                                let logged = self.store().kind(kind).error.is_some();
                                if logged {
                                    debug!(%kind, %error, "still failing to watch");
                                } else {
                                    warn!(%kind, %error, "failed to watch; retrying with backoff");
                                }
                                failing = matches!(classify(&err), Failure::Unreachable);
                                self.update(|store| (Vec::new(), store.kind(kind).set_error(Some(error))));
                            }
                        }
                        continue;
                    }
                };
                if failing || self.store().kind(kind).error.is_some() {
                    info!(%kind, "watching again");
                    failing = false;
                }
                self.update(|store| {
                    let entry = store.kind(kind);
                    let error_cleared = entry.set_error(None);
                    let units = match event {
                        Event::Init => {
                            debug!(%kind, "listing");
                            entry.begin_list();
                            Vec::new()
                        }
                        Event::InitApply(object) => entry.apply(convert::key(&object), convert(object)),
                        Event::InitDone => {
                            let units = entry.end_list();
                            info!(%kind, objects = entry.objects.len(), lists = entry.lists, "listed");
                            // The first list makes the kind count as read, even with nothing in it.
                            return (units, true);
                        }
                        Event::Apply(object) => entry.apply(convert::key(&object), convert(object)),
                        Event::Delete(object) => entry.delete(&convert::key(&object)),
                    };
                    (units, error_cleared)
                });
            }
            // The watcher's stream does not end on its own; if it did, start over.
            warn!(%kind, "the watch ended; starting over");
        }
    }
}

// === errors and retries ===

pub(super) enum Failure {
    /// 410 Gone: the resourceVersion to resume from is older than the history the apiserver keeps.
    Expired,
    /// 404: the apiserver does not serve the resource (a CRD removed).
    NotServed,
    /// No answer from the apiserver (connection refused or cut, timeouts).
    Unreachable,
    Other,
}

pub(super) fn classify(err: &watcher::Error) -> Failure {
    let status = |err: &kube::Error| match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    };
    match err {
        watcher::Error::WatchError(status) if status.code == 410 => Failure::Expired,
        watcher::Error::WatchStartFailed(err) | watcher::Error::InitialListFailed(err) if status(err) == Some(410) => {
            Failure::Expired
        }
        watcher::Error::InitialListFailed(err) | watcher::Error::WatchStartFailed(err) if status(err) == Some(404) => {
            Failure::NotServed
        }
        watcher::Error::WatchError(status) if status.code == 404 => Failure::NotServed,
        watcher::Error::InitialListFailed(err)
        | watcher::Error::WatchStartFailed(err)
        | watcher::Error::WatchFailed(err)
            if status(err).is_none() =>
        {
            Failure::Unreachable
        }
        _ => Failure::Other,
    }
}

/// One line for a watcher error: kube's `Display` of API errors repeats the whole status.
fn describe(err: &watcher::Error) -> String {
    match err {
        watcher::Error::WatchError(status) => format!("{} {}: {}", status.code, status.reason, status.message),
        watcher::Error::InitialListFailed(err) => format!("failed to list: {}", describe_client(err)),
        watcher::Error::WatchStartFailed(err) => format!("failed to start watching: {}", describe_client(err)),
        watcher::Error::WatchFailed(err) => format!("watch stream failed: {}", describe_client(err)),
        other => other.to_string(),
    }
}

pub(crate) fn describe_client(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} {}: {}", status.code, status.reason, status.message),
        other => error_chain(other),
    }
}

/// An error and its causes, each said once: the innermost cause says what happened (connection refused,
/// certificate, ...), and kube's errors repeat their sources in their own text.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

/// Retry delays for a failed list or watch: from 100 ms, doubling, up to a maximum; reset by any success.
pub(super) struct RetryBackoff {
    next: Duration,
    max: Duration,
}

impl RetryBackoff {
    const FIRST: Duration = Duration::from_millis(100);

    pub(super) fn new(max: Duration) -> RetryBackoff {
        RetryBackoff { next: RetryBackoff::FIRST.min(max), max }
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        Some(delay)
    }
}

impl Backoff for RetryBackoff {
    fn reset(&mut self) {
        self.next = RetryBackoff::FIRST.min(self.max);
    }
}
