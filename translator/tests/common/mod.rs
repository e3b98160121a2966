//! What the translator's integration tests share.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Istio's Bookinfo sample configuration, which lives beside this repository (in `../shared/corpus`) in CI and in
/// the project's own workspace, not in a clone of it. `None` when it is not there: the caller skips, and says so
/// loudly. In CI (`CI=true`) its absence is a failure.
pub fn shared_corpus() -> Option<PathBuf> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/istio-bookinfo");
    if corpus.is_dir() {
        return Some(corpus);
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must have the corpus at {}", corpus.display());
    eprintln!("** SKIPPED: Istio's Bookinfo corpus is not at {} (it exists only beside the project)", corpus.display());
    None
}

/// The corpus's YAML files, sorted by name.
pub fn corpus_files(corpus: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus)
        .expect("the corpus is readable")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().and_then(|e| e.to_str()) == Some("yaml"))
        .collect();
    files.sort();
    files
}
