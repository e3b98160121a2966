//! A directory of configuration: Istio and Kubernetes objects to translate, and raw Envoy resources to serve as-is.
//!
//! Every `*.yaml`, `*.yml` and `*.json` file below the directory is read; a file may hold several YAML documents.
//! Documents with `apiVersion` and `kind` go to the translator ([`translator::read_yaml`]). A document with `@type`
//! is one resource in Envoy's own JSON shape (a Listener, RouteConfiguration, Cluster or ClusterLoadAssignment),
//! and `resources:` holds a list of them (the shape of Envoy's file-based xDS):
//!
//! ```yaml
//! "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
//! name: web
//! connect_timeout: 1s
//! type: EDS
//! eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 } }
//! ```
//!
//! Raw resources go to every proxy, unless a `resources:` document names the proxies they are for with
//! `proxies:` (every field optional; labels match when the proxy has them all):
//!
//! ```yaml
//! proxies: { role: gateway, labels: { istio: ingressgateway }, namespace: istio-system }
//! resources:
//! - "@type": type.googleapis.com/envoy.config.listener.v3.Listener
//!   ...
//! ```
//!
//! A document that does not read is reported with its file and position and skipped; the rest is served.

use std::fmt;
use std::path::{Path, PathBuf};

use api_protos::{Any, reflect};
use translator::ProxySelector;

use crate::snapshot::{Snapshot, SnapshotBuilder};

/// Where a resource came from: a file and the document's position in it (from 1), and which proxies it is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub file: PathBuf,
    pub document: usize,
    pub proxies: ProxySelector,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (document {})", self.file.display(), self.document)
    }
}

/// A problem with one document or resource; it was skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub origin: Origin,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

/// What a directory holds.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Raw Envoy resources.
    pub resources: Vec<(Origin, Any)>,
    /// Istio and Kubernetes objects, for the translator.
    pub inputs: Vec<translator::Input>,
    /// Problems with raw resources and unreadable documents.
    pub diagnostics: Vec<Diagnostic>,
    /// Problems the translator's reader found in objects.
    pub input_diagnostics: Vec<translator::Diagnostic>,
    /// Files read, sorted.
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// A snapshot of every resource that could be added; the others become diagnostics.
    pub fn snapshot(&mut self) -> Snapshot {
        let mut builder = SnapshotBuilder::default();
        for (origin, any) in &self.resources {
            if let Err(err) = builder.add_any(any) {
                self.diagnostics.push(Diagnostic { origin: origin.clone(), message: err.to_string() });
            }
        }
        builder.build()
    }
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

/// Reads every config file below `dir`.
pub fn load(dir: &Path) -> Result<Loaded, std::io::Error> {
    let mut loaded = Loaded::default();
    let files = list_files(dir)?;
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => {
                read_documents(file, &text, &mut loaded);
                let (inputs, diagnostics) = translator::read_yaml(&text, &file.display().to_string());
                loaded.inputs.extend(inputs);
                // Syntax errors are reported once, by `read_documents`.
                loaded
                    .input_diagnostics
                    .extend(diagnostics.into_iter().filter(|d| !d.message.starts_with("failed to parse YAML")));
            }
            Err(err) => loaded.diagnostics.push(Diagnostic {
                origin: Origin { file: file.clone(), document: 0, proxies: ProxySelector::all() },
                message: format!("failed to read the file: {err}"),
            }),
        }
    }
    loaded.files = files;
    Ok(loaded)
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

/// Reads the documents of one file into `loaded`.
pub fn read_documents(file: &Path, text: &str, loaded: &mut Loaded) {
    use serde::Deserialize;
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let origin = Origin { file: file.to_owned(), document: index + 1, proxies: ProxySelector::all() };
        let value = match serde_json::Value::deserialize(document) {
            Ok(value) => value,
            Err(err) => {
                loaded.diagnostics.push(Diagnostic { origin, message: format!("failed to parse YAML: {err}") });
                // The parser cannot resume after a syntax error.
                break;
            }
        };
        read_value(&origin, value, loaded);
    }
}

fn read_value(origin: &Origin, value: serde_json::Value, loaded: &mut Loaded) {
    let diagnostic = |message: String| Diagnostic { origin: origin.clone(), message };
    match value {
        serde_json::Value::Null => {}
        serde_json::Value::Object(ref object) if object.contains_key("@type") => match reflect::from_json(&value) {
            Ok(any) => loaded.resources.push((origin.clone(), any)),
            Err(err) => loaded.diagnostics.push(diagnostic(err.to_string())),
        },
        serde_json::Value::Object(mut object) if object.contains_key("resources") => {
            let mut origin = origin.clone();
            if let Some(proxies) = object.remove("proxies") {
                match serde_json::from_value::<ProxySelector>(proxies) {
                    Ok(selector) => origin.proxies = selector,
                    Err(err) => {
                        loaded.diagnostics.push(diagnostic(format!("\"proxies\" is not a proxy selector: {err}")));
                        return;
                    }
                }
            }
            match object.remove("resources") {
                Some(serde_json::Value::Array(items)) => {
                    for item in items {
                        read_value(&origin, item, loaded);
                    }
                }
                _ => loaded.diagnostics.push(diagnostic("\"resources\" must be a list of resources".to_owned())),
            }
        }
        // Istio and Kubernetes objects: read by the translator.
        serde_json::Value::Object(object) if object.contains_key("apiVersion") || object.contains_key("kind") => {}
        _ => loaded.diagnostics.push(diagnostic(
            "not an Envoy resource: expected an object with \"@type\" or a \"resources\" list".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_protos::ResourceType;

    const CLUSTER: &str = r#"
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: web
connect_timeout: 1s
type: EDS
eds_cluster_config: { eds_config: { ads: {}, resource_api_version: V3 } }
"#;

    const ENDPOINTS: &str = r#"
"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
cluster_name: web
endpoints:
- lb_endpoints:
  - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 9000 } } }
"#;

    #[test]
    fn reads_documents_lists_and_reports_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a.yaml"), format!("{CLUSTER}\n---\n{ENDPOINTS}")).expect("write");
        std::fs::create_dir(dir.path().join("nested")).expect("mkdir");
        std::fs::write(
            dir.path().join("nested/broken.yml"),
            "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\nconect_timeout: 1s\n",
        )
        .expect("write");
        std::fs::write(
            dir.path().join("istio.yaml"),
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v}\nspec: {hosts: [a]}\n",
        )
        .expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let mut loaded = load(dir.path()).expect("load");
        assert_eq!(loaded.files.len(), 3);
        assert_eq!(loaded.resources.len(), 2);
        assert_eq!(loaded.inputs.len(), 1, "the VirtualService goes to the translator");
        let snapshot = loaded.snapshot();
        assert_eq!(snapshot.resources(ResourceType::Cluster).len(), 1);
        snapshot.consistent().expect("consistent");
        let messages: Vec<String> = loaded.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages.iter().any(|m| m.contains("broken.yml (document 1)") && m.contains("conect_timeout")),
            "{messages:?}"
        );
    }

    #[test]
    fn a_resources_list_and_duplicates() {
        let mut loaded = Loaded::default();
        let list = format!("resources:\n- {}\n- {}\n", indent(CLUSTER), indent(CLUSTER));
        read_documents(Path::new("list.yaml"), &list, &mut loaded);
        assert_eq!(loaded.resources.len(), 2);
        let snapshot = loaded.snapshot();
        assert_eq!(snapshot.resources(ResourceType::Cluster).len(), 1);
        assert!(loaded.diagnostics[0].message.contains("already taken"), "{:?}", loaded.diagnostics);
    }

    #[test]
    fn a_resources_list_may_name_its_proxies() {
        let mut loaded = Loaded::default();
        let list = format!(
            "proxies: {{role: gateway, labels: {{istio: ingressgateway}}}}\nresources:\n- {}\n---\n{CLUSTER}",
            indent(CLUSTER)
        );
        read_documents(Path::new("targeted.yaml"), &list, &mut loaded);
        let selectors: Vec<Option<String>> = loaded.resources.iter().map(|(o, _)| o.proxies.role.clone()).collect();
        assert_eq!(selectors, [Some("gateway".to_owned()), None]);
        let mut bad = Loaded::default();
        read_documents(Path::new("bad.yaml"), "proxies: {colour: blue}\nresources: []\n", &mut bad);
        assert!(bad.diagnostics[0].message.contains("proxy selector"), "{:?}", bad.diagnostics);
    }

    #[test]
    fn a_syntax_error_is_reported_not_fatal() {
        let mut loaded = Loaded::default();
        read_documents(Path::new("bad.yaml"), "a: [unclosed\n", &mut loaded);
        assert!(loaded.resources.is_empty());
        assert!(loaded.diagnostics[0].message.starts_with("failed to parse YAML"), "{:?}", loaded.diagnostics);
    }

    fn indent(document: &str) -> String {
        document.trim().lines().collect::<Vec<_>>().join("\n  ")
    }
}
