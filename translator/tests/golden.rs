//! Golden translation tests: `testdata/<case>.in.yaml` → `testdata/<case>.out.yaml`.
//!
//! The output holds the diagnostics and, for each proxy class, the listeners, routes, clusters and endpoints in
//! Envoy's JSON shape (as YAML, each kind sorted by name). Proxy classes come from header lines of the input:
//!
//! ```yaml
//! # proxy: gateway namespace=istio-system labels=istio=ingressgateway
//! # proxy: sidecar namespace=default bind=127.0.0.1
//! ```
//!
//! (default: those two without `bind`). `# include: PATH` lines (relative to `testdata/`) read other files first,
//! such as the Istio sample configuration in `../shared/corpus` (a case that includes it is skipped, loudly, where it
//! is not there: outside CI). `UPDATE_GOLDEN=1 cargo test -p translator --test golden` rewrites the
//! outputs and deletes outputs whose input is gone. Each case is also translated with its documents in reverse
//! order, which must give the same bytes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use api_protos::reflect::message_to_json;
use serde_json::{Value, json};
use translator::{ProxyClass, Role, Translator, World, read_yaml};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn proxy_classes(text: &str) -> Vec<ProxyClass> {
    let mut classes = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#') || l.trim().is_empty()) {
        let Some(spec) = line.strip_prefix("# proxy:") else { continue };
        let mut words = spec.split_whitespace();
        let role = words.next().and_then(Role::parse).expect("`# proxy:` starts with gateway or sidecar");
        let mut class = ProxyClass::new(role);
        for word in words {
            let (key, value) = word.split_once('=').expect("proxy settings are key=value");
            match key {
                "namespace" => class.namespace = value.to_owned(),
                "bind" => class.outbound_bind = Some(value.to_owned()),
                "labels" => {
                    for label in value.split(',') {
                        let (k, v) = label.split_once('=').expect("labels are k=v,k2=v2");
                        class.labels.insert(k.to_owned(), v.to_owned());
                    }
                }
                other => panic!("unknown proxy setting {other}"),
            }
        }
        classes.push(class);
    }
    if classes.is_empty() {
        let mut gateway = ProxyClass::new(Role::Gateway);
        gateway.namespace = "istio-system".to_owned();
        gateway.labels.insert("istio".to_owned(), "ingressgateway".to_owned());
        classes.push(gateway);
        classes.push(ProxyClass::new(Role::Sidecar));
    }
    classes
}

fn render<M: prost::Message + prost::Name>(messages: &[M]) -> Value {
    Value::Array(messages.iter().map(|m| message_to_json(m).expect("renders as Envoy JSON")).collect())
}

/// The golden output of one input text.
fn translate_case(name: &str, text: &str, reverse: bool) -> String {
    let mut inputs = Vec::new();
    let mut diagnostics = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#') || l.trim().is_empty()) {
        let Some(include) = line.strip_prefix("# include:").map(str::trim) else { continue };
        let path = testdata().join(include);
        let included = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {}: {e}", path.display()));
        let file = Path::new(include).file_name().and_then(|f| f.to_str()).unwrap_or(include);
        let (more, problems) = read_yaml(&included, file);
        inputs.extend(more);
        diagnostics.extend(problems);
    }
    let (own, problems) = read_yaml(text, name);
    inputs.extend(own);
    diagnostics.extend(problems);
    if reverse {
        inputs.reverse();
    }
    let (world, duplicates) = World::new(inputs);
    diagnostics.extend(duplicates);
    let translator = Translator::new(&world);
    diagnostics.extend(translator.diagnostics().iter().cloned());
    let mut proxies = Vec::new();
    for class in proxy_classes(text) {
        let translation = translator.translate(&class);
        diagnostics.extend(translation.diagnostics.iter().cloned());
        proxies.push(json!({
            "class": class.to_string(),
            "listeners": render(&translation.listeners),
            "routes": render(&translation.routes),
            "clusters": render(&translation.clusters),
            "endpoints": render(&translation.endpoints),
        }));
    }
    let diagnostics: Vec<String> =
        translator::diagnostics::sorted(diagnostics).iter().map(ToString::to_string).collect();
    let output = json!({ "diagnostics": diagnostics, "proxies": proxies });
    serde_yaml::to_string(&output).expect("renders as YAML")
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: BTreeMap<String, PathBuf> = BTreeMap::new();
    for entry in std::fs::read_dir(testdata()).expect("testdata exists") {
        let path = entry.expect("entry").path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if let Some(case) = file.strip_suffix(".in.yaml") {
            cases.insert(case.to_owned(), path);
        } else if let Some(case) = file.strip_suffix(".out.yaml")
            && !testdata().join(format!("{case}.in.yaml")).exists()
        {
            if update {
                std::fs::remove_file(&path).expect("remove stale output");
            } else {
                panic!("{file} has no input; UPDATE_GOLDEN=1 removes it");
            }
        }
    }
    assert!(!cases.is_empty(), "no golden cases in {}", testdata().display());
    let mut failures = Vec::new();
    for (case, input) in &cases {
        let text = std::fs::read_to_string(input).expect("read input");
        if includes_missing_corpus(&text) && common::shared_corpus().is_none() {
            eprintln!("** SKIPPED golden case {case}: it includes the corpus");
            continue;
        }
        let name = format!("{case}.in.yaml");
        let actual = translate_case(&name, &text, false);
        let reversed = translate_case(&name, &text, true);
        assert_eq!(actual, reversed, "{case}: output depends on input order");
        let expected_path = testdata().join(format!("{case}.out.yaml"));
        if update {
            std::fs::write(&expected_path, &actual).expect("write output");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!("{case}:\n{}", first_difference(&expected, &actual)));
        }
    }
    assert!(failures.is_empty(), "golden outputs differ (UPDATE_GOLDEN=1 rewrites them):\n{}", failures.join("\n"));
}

/// Whether `text` includes a file of the shared corpus that is not there.
fn includes_missing_corpus(text: &str) -> bool {
    text.lines()
        .filter_map(|line| line.strip_prefix("# include:").map(str::trim))
        .any(|include| include.contains("shared/corpus") && !testdata().join(include).exists())
}

fn first_difference(expected: &str, actual: &str) -> String {
    let (expected_lines, actual_lines): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    let line = expected_lines
        .iter()
        .zip(&actual_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(expected_lines.len().min(actual_lines.len()));
    let show =
        |lines: &[&str]| lines.iter().skip(line.saturating_sub(3)).take(7).copied().collect::<Vec<_>>().join("\n");
    format!("  at line {}\n  expected:\n{}\n  actual:\n{}", line + 1, show(&expected_lines), show(&actual_lines))
}
