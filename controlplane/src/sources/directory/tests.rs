use std::time::Instant;

use super::*;
use crate::State;
use crate::pipeline::Debounce;
use translator::{ProxyClass, Role};

const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
"#;

fn listeners(state: &State) -> usize {
    let mut class = ProxyClass::new(Role::Gateway);
    class.labels.insert("istio".into(), "ingressgateway".into());
    // Watching makes the cache build the class.
    let receiver = state.cache.watch(&class);
    receiver.borrow().resources(api_protos::ResourceType::Listener).len()
}

fn inputs(state: &State) -> serde_json::Value {
    serde_json::to_value(state.pipeline.view().as_ref()).expect("serializes")
}

/// A source for `dir` whose first read is published.
fn source(dir: &Path, state: &State) -> Arc<DirectorySource> {
    let source = DirectorySource::new(dir.to_owned(), &state.pipeline);
    state.pipeline.catch_up();
    source
}

#[test]
fn a_file_that_stops_parsing_keeps_its_last_good_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, GATEWAY).expect("write");
    let state = State::default();
    let _source = source(dir.path(), &state);
    assert_eq!(listeners(&state), 1);

    // Half-written: the YAML is broken. The gateway stays, and the diagnostic says why.
    std::fs::write(&file, format!("{GATEWAY}\n  - broken: [\n")).expect("write");
    state.pipeline.catch_up();
    assert_eq!(listeners(&state), 1, "the last good parse is still served");
    let diagnostics = inputs(&state)["diagnostics"].to_string();
    assert!(diagnostics.contains("serving its last complete version"), "{diagnostics}");
    assert!(diagnostics.contains("gateway.yaml") && diagnostics.contains("\"line\":9"), "{diagnostics}");

    // Deleting the file removes what it held.
    std::fs::remove_file(&file).expect("remove");
    state.pipeline.catch_up();
    assert_eq!(listeners(&state), 0);
}

#[test]
fn unchanged_files_are_not_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let state = State::default();
    let _source = source(dir.path(), &state);
    state.pipeline.catch_up();
    state.pipeline.catch_up();
    assert_eq!(state.metrics.config_reloads.get(), 1);
}

/// Runs the pipeline and the watcher until the returned trigger is dropped.
fn watching(source: &Arc<DirectorySource>, state: &State, debounce: Debounce) -> crate::shutdown::Trigger {
    let (stop, stopped) = crate::shutdown::channel();
    tokio::spawn(Arc::clone(&state.pipeline).run(debounce, stopped.clone()));
    tokio::spawn(Arc::clone(source).watch(stopped));
    stop
}

fn debounces(state: &State) -> u64 {
    let metrics = state.metrics.encode(&state.registry);
    let count = metrics.lines().find_map(|line| line.strip_prefix("pilotfish_debounce_seconds_count "));
    count.and_then(|n| n.trim().parse().ok()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_edits_becomes_few_translations() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let state = State::default();
    let source = source(dir.path(), &state);
    let debounce = Debounce { quiet: Duration::from_millis(300), max_delay: Duration::from_secs(5) };
    let _stop = watching(&source, &state, debounce);
    tokio::time::sleep(Duration::from_millis(100)).await; // let the watcher start
    for i in 0..20 {
        std::fs::write(
            dir.path().join(format!("extra-{i}.yaml")),
            GATEWAY.replace("name: gw", &format!("name: gw-{i}")),
        )
        .expect("write");
    }
    // Poll until all 21 files are read, then count the translations it took.
    let deadline = Instant::now() + Duration::from_secs(20);
    while inputs(&state)["files"].as_array().map_or(0, Vec::len) < 21 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inputs(&state)["files"].as_array().map_or(0, Vec::len), 21);
    let reloads = state.metrics.config_reloads.get();
    assert!(reloads <= 4, "20 edits in a burst took {reloads} translations");
}

#[tokio::test(flavor = "multi_thread")]
async fn reading_the_files_does_not_wake_the_watcher() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let state = State::default();
    let source = source(dir.path(), &state);
    let quick = Debounce { quiet: Duration::from_millis(10), max_delay: Duration::from_millis(50) };
    let _stop = watching(&source, &state, quick);
    // The watcher's own catch-ups and the slow poll read every file: opening and reading are not changes.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pipeline = Arc::clone(&state.pipeline);
        tokio::task::spawn_blocking(move || pipeline.catch_up()).await.expect("catch up");
        let _ = std::fs::read_to_string(dir.path().join("gateway.yaml")).expect("read");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(debounces(&state), 0, "an idle directory woke the pipeline");
    // A real edit does.
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY.replace("8080", "8081")).expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while debounces(&state) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(debounces(&state) >= 1, "an edit wakes the pipeline");
}

#[test]
fn an_object_made_invalid_by_an_edit_keeps_its_last_valid_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, GATEWAY).expect("write");
    let state = State::default();
    let _source = source(dir.path(), &state);
    assert_eq!(listeners(&state), 1);
    // Port 0 is invalid: the Gateway as it was stays served.
    std::fs::write(&file, GATEWAY.replace("number: 8080", "number: 0")).expect("write");
    state.pipeline.catch_up();
    assert_eq!(listeners(&state), 1);
    let diagnostics: Vec<String> = state.pipeline.view().diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        diagnostics.iter().any(|d| d.contains("Gateway default/gw") && d.contains("serving its last valid version")),
        "{diagnostics:#?}"
    );
    assert!(diagnostics.iter().any(|d| d.starts_with("error[IST0106] Gateway default/gw")), "{diagnostics:#?}");
}

#[test]
fn an_edited_file_keeps_the_objects_it_did_not_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("mesh.yaml");
    let entry = |address: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web}}
spec:
  hosts: [web.example.com]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints: [{{address: {address}}}]
"
        )
    };
    std::fs::write(&file, format!("{GATEWAY}---\n{}", entry("10.0.0.1"))).expect("write");
    let state = State::default();
    let _source = source(dir.path(), &state);
    let first = state.pipeline.translator().expect("published");
    std::fs::write(&file, format!("{GATEWAY}---\n{}", entry("10.0.0.2"))).expect("write");
    state.pipeline.catch_up();
    let second = state.pipeline.translator().expect("published");
    let (before, after) = (first.world(), second.world());
    assert!(Arc::ptr_eq(&before.gateways[0], &after.gateways[0]), "the Gateway did not change: the same object");
    assert!(!Arc::ptr_eq(&before.service_entries[0], &after.service_entries[0]), "the ServiceEntry changed");
    assert_ne!(before.service_entries[0], after.service_entries[0]);
}
