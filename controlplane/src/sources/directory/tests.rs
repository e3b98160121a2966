use super::*;
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
    state.inputs.read().ok().and_then(|i| i.as_ref().map(|v| v.as_ref().clone())).unwrap_or_default()
}

#[test]
fn a_file_that_stops_parsing_keeps_its_last_good_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, GATEWAY).expect("write");
    let state = State::default();
    let source = DirectorySource::new(dir.path().to_owned(), state.clone());
    source.catch_up();
    assert_eq!(listeners(&state), 1);

    // Half-written: the YAML is broken. The gateway stays, and the diagnostic says why.
    std::fs::write(&file, format!("{GATEWAY}\n  - broken: [\n")).expect("write");
    source.catch_up();
    assert_eq!(listeners(&state), 1, "the last good parse is still served");
    let diagnostics = inputs(&state)["diagnostics"].to_string();
    assert!(diagnostics.contains("serving its last good version"), "{diagnostics}");

    // Deleting the file removes what it held.
    std::fs::remove_file(&file).expect("remove");
    source.catch_up();
    assert_eq!(listeners(&state), 0);
}

#[test]
fn unchanged_files_are_not_read_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let state = State::default();
    let source = DirectorySource::new(dir.path().to_owned(), state.clone());
    source.catch_up();
    source.catch_up();
    source.catch_up();
    assert_eq!(state.metrics.config_reloads.get(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_edits_becomes_few_translations() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("gateway.yaml"), GATEWAY).expect("write");
    let state = State::default();
    let source = DirectorySource::new(dir.path().to_owned(), state.clone());
    source.catch_up();
    let debounce = Debounce { quiet: Duration::from_millis(300), max_delay: Duration::from_secs(5) };
    let watcher = tokio::spawn(Arc::clone(&source).watch(debounce));
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
    watcher.abort();
    assert_eq!(inputs(&state)["files"].as_array().map_or(0, Vec::len), 21);
    let reloads = state.metrics.config_reloads.get();
    assert!(reloads <= 4, "20 edits in a burst took {reloads} translations");
}

#[test]
fn an_object_made_invalid_by_an_edit_keeps_its_last_valid_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gateway.yaml");
    std::fs::write(&file, GATEWAY).expect("write");
    let state = State::default();
    let source = DirectorySource::new(dir.path().to_owned(), state.clone());
    source.catch_up();
    assert_eq!(listeners(&state), 1);
    // Port 0 is invalid: the Gateway as it was stays served.
    std::fs::write(&file, GATEWAY.replace("number: 8080", "number: 0")).expect("write");
    source.catch_up();
    assert_eq!(listeners(&state), 1);
    let diagnostics = inputs(&state)["diagnostics"].to_string();
    assert!(diagnostics.contains("Gateway default/gw is invalid now; serving its last valid version"), "{diagnostics}");
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
    let first = read_file(&file, stamp(&file), None);
    std::fs::write(&file, format!("{GATEWAY}---\n{}", entry("10.0.0.2"))).expect("write");
    let second = read_file(&file, stamp(&file), Some(first.clone()));
    assert_eq!(second.inputs.len(), 2);
    assert!(second.inputs[0].same(&first.inputs[0]), "the Gateway did not change: the same object");
    assert!(!second.inputs[1].same(&first.inputs[1]), "the ServiceEntry changed");
    assert_ne!(second.inputs[1], first.inputs[1]);
}
