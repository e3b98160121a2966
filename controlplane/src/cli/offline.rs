//! What `translate`, `analyze` and `explain` share: reading a file or directory (or, for `analyze`, a cluster's
//! objects) and translating it offline, through the same pipeline `serve` runs.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use translator::{Diagnostic, ProxyClass, Role, Translator};

use crate::State;
use crate::pipeline::{ChangeSet, Commit, Pipeline, UnitKey};
use crate::snapshot::Snapshot;
use crate::sources::directory;

/// A file or directory, read and translated.
pub struct Offline {
    pipeline: Arc<Pipeline>,
    pub translator: Arc<Translator>,
    /// Every diagnostic of what was read (before any class is translated).
    pub diagnostics: Vec<Diagnostic>,
}

impl Offline {
    pub fn load(path: &Path) -> anyhow::Result<Offline> {
        if !path.exists() {
            anyhow::bail!("-f {}: no such file or directory", path.display());
        }
        let changes = directory::read_all(path).with_context(|| format!("failed to read {}", path.display()))?;
        Offline::from_changes(changes)
    }

    /// Objects read elsewhere (a live cluster), with the reader's diagnostics; no raw Envoy resources.
    pub fn from_inputs(inputs: Vec<translator::Input>, diagnostics: Vec<Diagnostic>) -> anyhow::Result<Offline> {
        let read = translator::Read { inputs, diagnostics, complete: true, ..translator::Read::default() };
        Offline::from_changes(ChangeSet {
            units: vec![(UnitKey::named("cluster"), Some(read))],
            synced: true,
            ..ChangeSet::default()
        })
    }

    fn from_changes(changes: ChangeSet) -> anyhow::Result<Offline> {
        let pipeline = State::default().pipeline;
        let publication = pipeline.register("offline").apply(changes, Commit::Always).unwrap_or_else(|refused| refused);
        let translator = pipeline.translator().context("nothing was translated")?;
        Ok(Offline { pipeline, translator, diagnostics: publication.diagnostics })
    }

    /// The snapshot a proxy of `class` would be served, and the class's own diagnostics.
    pub fn snapshot(&self, class: &ProxyClass) -> anyhow::Result<(Snapshot, Vec<Diagnostic>)> {
        self.pipeline.snapshot(class).with_context(|| format!("failed to build the snapshot of {class}"))
    }

    /// The proxy classes whose translations show every class-specific diagnostic of the input.
    pub fn representative_classes(&self) -> Vec<ProxyClass> {
        translator::analyze::representative_classes(self.translator.model())
    }
}

/// Proxy class flags shared by the offline verbs.
#[derive(Debug, clap::Args)]
pub struct ClassArgs {
    /// The proxy's role.
    #[arg(long, value_parser = parse_role, default_value = "gateway")]
    pub role: Role,
    /// The proxy's workload labels, k=v,k2=v2 (gateways are selected by them). Default for gateways:
    /// istio=ingressgateway.
    #[arg(long, value_name = "K=V,…")]
    pub labels: Option<String>,
    /// The proxy's namespace (default: istio-system for gateways, default for sidecars).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// For sidecars without traffic capture: the address outbound listeners bind.
    #[arg(long, value_name = "ADDR")]
    pub outbound_bind: Option<String>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: expected gateway or sidecar"))
}

impl ClassArgs {
    pub fn class(&self) -> anyhow::Result<ProxyClass> {
        let mut class = ProxyClass::new(self.role);
        match (&self.labels, self.role) {
            (Some(labels), _) => class.labels = crate::bootstrap::parse_labels(labels)?,
            (None, Role::Gateway) => {
                class.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
            }
            (None, Role::Sidecar) => {}
        }
        class.namespace = match (&self.namespace, self.role) {
            (Some(namespace), _) => namespace.clone(),
            (None, Role::Gateway) => "istio-system".to_owned(),
            (None, Role::Sidecar) => "default".to_owned(),
        };
        class.outbound_bind = self.outbound_bind.clone();
        Ok(class)
    }
}
