//! What `translate`, `analyze` and `explain` share: reading a file or directory (or, for `analyze`, a cluster's
//! objects) and translating it offline.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use api_protos::Any;
use translator::{Diagnostic, ProxyClass, ProxySelector, Role, Translator, World};

use crate::config_dir;
use crate::snapshot::{Snapshot, SnapshotBuilder};

/// A file or directory, read and prepared for translation.
pub struct Offline {
    pub translator: Translator,
    /// Raw Envoy resources, with the proxies they are for.
    pub raw: Vec<(ProxySelector, Any)>,
    /// Problems reading files and raw resources, as one-line messages.
    pub read_problems: Vec<String>,
    /// Reader and World diagnostics (before any class is translated).
    pub diagnostics: Vec<Diagnostic>,
}

impl Offline {
    pub fn load(path: &Path) -> anyhow::Result<Offline> {
        if !path.exists() {
            anyhow::bail!("-f {}: no such file or directory", path.display());
        }
        let mut loaded = config_dir::load(path).with_context(|| format!("failed to read {}", path.display()))?;
        loaded.snapshot();
        let mut offline = Offline::from_inputs(std::mem::take(&mut loaded.inputs), loaded.input_diagnostics);
        offline.raw = loaded.resources.into_iter().map(|(origin, any)| (origin.proxies, any)).collect();
        offline.read_problems = loaded.diagnostics.iter().map(ToString::to_string).collect();
        Ok(offline)
    }

    /// Objects read elsewhere (a live cluster), with the reader's diagnostics; no raw Envoy resources.
    pub fn from_inputs(inputs: Vec<translator::Input>, input_diagnostics: Vec<Diagnostic>) -> Offline {
        let (world, duplicates) = World::new(inputs);
        let translator = Translator::new(&world);
        let mut diagnostics = input_diagnostics;
        diagnostics.extend(duplicates);
        diagnostics.extend(translator.diagnostics().iter().cloned());
        Offline { translator, raw: Vec::new(), read_problems: Vec::new(), diagnostics }
    }

    /// The snapshot a proxy of `class` would be served, and the class's own diagnostics.
    pub fn snapshot(&self, class: &ProxyClass) -> (Snapshot, Vec<Diagnostic>) {
        let translation = self.translator.translate(class);
        let mut builder = SnapshotBuilder::default();
        let mut problems = Vec::new();
        let raw = self.raw.iter().filter(|(selector, _)| selector.matches(class)).map(|(_, any)| any);
        for resource in translation.resources().iter().chain(raw) {
            if let Err(err) = builder.add_any(resource) {
                problems.push(Diagnostic::warning(format!("raw Envoy resource not served: {err}")));
            }
        }
        let mut diagnostics = translation.diagnostics;
        diagnostics.extend(problems);
        (builder.build(), diagnostics)
    }

    /// One proxy class per Gateway selector and a sidecar per namespace: enough to see every class-specific
    /// diagnostic the input can produce.
    pub fn representative_classes(&self) -> Vec<ProxyClass> {
        let model = self.translator.model();
        let mut classes = BTreeSet::new();
        for gateway in &model.gateways {
            let mut class = ProxyClass::new(Role::Gateway);
            class.labels = gateway.spec.selector.clone();
            class.namespace = gateway.meta.namespace.clone();
            classes.insert(class);
        }
        let namespaces: BTreeSet<&String> = model
            .virtual_services
            .iter()
            .map(|v| &v.meta.namespace)
            .chain(model.services.values().map(|s| &s.namespace))
            .collect();
        for namespace in namespaces {
            let mut class = ProxyClass::new(Role::Sidecar);
            class.namespace = namespace.clone();
            classes.insert(class);
        }
        if classes.is_empty() {
            classes.insert(ProxyClass::new(Role::Sidecar));
        }
        classes.into_iter().collect()
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
