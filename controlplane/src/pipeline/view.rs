//! What was read and what became of it: the typed view behind `/debug/inputs`, `/readyz` and `status`.

use std::collections::BTreeMap;

use serde::Serialize;
use translator::input::IgnoredObject;
use translator::{Diagnostic, Severity};

use super::State;

/// What the sources handed over, as served now.
#[derive(Clone, Debug, Default, Serialize)]
pub struct InputsView {
    /// Every source has handed over its initial state: what is served is the whole configuration.
    pub ready: bool,
    /// Bumped on every publication.
    pub generation: u64,
    pub read_at_unix: u64,
    /// The sources, by name (`directory /etc/pilotfish`, `kubernetes`, `embedded`).
    pub source: String,
    /// Files read, for a directory source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<String>>,
    /// The namespace read, for a Kubernetes source (`None`: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Per kind, for a Kubernetes source: what is watched, how often it was listed, what fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kinds: Option<BTreeMap<String, KindStatus>>,
    /// The objects translation reads.
    pub objects: Vec<ObjectView>,
    /// Objects of kinds translation does not need, left alone.
    pub ignored: Vec<IgnoredObject>,
    pub raw_resources: Vec<RawView>,
    /// Every diagnostic of the configuration served: reading, validation, analysis, the sources' own problems.
    pub diagnostics: Vec<Diagnostic>,
    /// Errors that mean something written is not served as written.
    pub errors: usize,
    /// Errors of analysis (as `istioctl analyze` reports them): what is served will not work as meant.
    pub advisory_errors: usize,
    pub warnings: usize,
}

impl InputsView {
    /// The diagnostics that are errors: something written is not served as written.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.rejects())
    }

    /// The errors of analysis: served as written, and will not work as meant.
    pub fn advisory_errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.severity == Severity::Error && d.advisory)
    }
}

/// One object translation reads.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectView {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// `file:line:column`, for objects read from text.
    pub source: Option<String>,
}

/// One raw Envoy resource.
#[derive(Clone, Debug, Serialize)]
pub struct RawView {
    #[serde(rename = "type")]
    pub type_url: String,
    pub source: String,
}

/// A source's own state, handed over with its change sets.
#[derive(Clone, Debug, Default)]
pub struct SourceStatus {
    /// What the source cannot read now (a failing watch, a CRD not installed, a directory that cannot be listed).
    pub problems: Vec<Diagnostic>,
    pub detail: SourceDetail,
}

#[derive(Clone, Debug, Default)]
pub enum SourceDetail {
    #[default]
    None,
    Directory {
        files: Vec<String>,
    },
    Kubernetes {
        namespace: Option<String>,
        kinds: BTreeMap<String, KindStatus>,
    },
}

/// One kind a Kubernetes source watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KindStatus {
    /// The version watched; `None` for an Istio kind whose CRD is not installed (or not known yet).
    pub api_version: Option<String>,
    pub installed: bool,
    /// Completed lists: 1 after the first, more after relists.
    pub lists: u64,
    pub objects: usize,
    /// The last list or watch failure, while it lasts.
    pub error: Option<String>,
}

pub(super) fn build(state: &State, diagnostics: &[Diagnostic]) -> InputsView {
    let mut view = InputsView {
        ready: !state.sources.is_empty() && state.sources.iter().all(|s| s.synced),
        generation: state.generation,
        read_at_unix: super::now_unix(),
        source: state.sources.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", "),
        diagnostics: diagnostics.to_vec(),
        errors: diagnostics.iter().filter(|d| d.rejects()).count(),
        advisory_errors: diagnostics.iter().filter(|d| d.severity == Severity::Error && d.advisory).count(),
        warnings: diagnostics.iter().filter(|d| d.severity == Severity::Warning).count(),
        ..InputsView::default()
    };
    for source in &state.sources {
        match &source.status.detail {
            SourceDetail::None => {}
            SourceDetail::Directory { files } => view.files = Some(files.clone()),
            SourceDetail::Kubernetes { namespace, kinds } => {
                view.namespace.clone_from(namespace);
                view.kinds = Some(kinds.clone());
            }
        }
    }
    for unit in state.units.values() {
        for input in &unit.read.inputs {
            let reference = input.reference();
            view.objects.push(ObjectView {
                kind: reference.kind.to_string(),
                namespace: reference.namespace,
                name: reference.name,
                source: input.meta().source.as_ref().map(ToString::to_string),
            });
        }
        view.ignored.extend(unit.read.ignored.iter().cloned());
        view.raw_resources.extend(
            unit.read
                .envoy
                .iter()
                .map(|r| RawView { type_url: r.resource.type_url.clone(), source: r.source.to_string() }),
        );
    }
    view
}
