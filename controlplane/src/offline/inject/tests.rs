use serde_json::Value as Json;

use super::*;

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v2, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  template:
    metadata:
      labels: {app: reviews, version: v2}
    spec:
      initContainers:
      - {name: migrate, image: example.invalid/migrate}
      containers:
      - name: reviews
        image: example.invalid/reviews
        ports: [{containerPort: 9080}]
"#;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  ports: [{port: 9080}]\n";

fn documents(yaml: &str) -> Vec<Json> {
    serde_yaml::Deserializer::from_str(yaml).map(|d| serde::Deserialize::deserialize(d).expect("YAML")).collect()
}

fn injected(input: &str) -> Vec<Json> {
    documents(&inject(input, &InjectOptions::default()).expect("injects").yaml)
}

fn container<'a>(pod_spec: &'a Json, name: &str) -> &'a Json {
    pod_spec["initContainers"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).expect(name)
}

fn error(input: &str) -> String {
    inject(input, &InjectOptions::default()).expect_err("an error").to_string()
}

#[test]
fn a_deployment_gets_the_capture_init_container_then_envoy_as_a_native_sidecar() {
    let out = injected(DEPLOYMENT);
    let spec = &out[0]["spec"]["template"]["spec"];
    let names: Vec<&str> = spec["initContainers"]
        .as_array()
        .expect("as the test built it")
        .iter()
        .map(|c| c["name"].as_str().expect("as the test built it"))
        .collect();
    assert_eq!(names, [INIT_CONTAINER, PROXY_CONTAINER, "migrate"], "the capture first, the app's own init last");
    assert_eq!(
        spec["containers"].as_array().expect("as the test built it").len(),
        1,
        "the application's containers are untouched"
    );

    let init = container(spec, INIT_CONTAINER);
    assert_eq!(init["image"], DEFAULT_INIT_IMAGE);
    assert_eq!(init["command"][2], CaptureSettings::default().shell_script());
    assert_eq!(init["securityContext"]["capabilities"]["add"], serde_json::json!(["NET_ADMIN", "NET_RAW"]));

    let proxy = container(spec, PROXY_CONTAINER);
    assert_eq!(proxy["image"], DEFAULT_PROXY_IMAGE);
    assert_eq!(proxy["restartPolicy"], "Always");
    assert_eq!(proxy["securityContext"]["runAsUser"], 1337);
    let args: Vec<&str> = proxy["args"]
        .as_array()
        .expect("as the test built it")
        .iter()
        .map(|a| a.as_str().expect("as the test built it"))
        .collect();
    let node = args.iter().position(|a| *a == "--service-node").expect("--service-node");
    assert_eq!(args[node + 1], "$(POD_NAME).$(POD_NAMESPACE)");
    let env: Vec<&str> = proxy["env"]
        .as_array()
        .expect("as the test built it")
        .iter()
        .map(|e| e["name"].as_str().expect("as the test built it"))
        .collect();
    assert_eq!(env, ["POD_NAME", "POD_NAMESPACE"], "the downward API defines what --service-node refers to");
}

#[test]
fn the_sidecar_bootstrap_reads_back_as_a_captured_sidecar_of_the_templates_labels_and_namespace() {
    let out = injected(DEPLOYMENT);
    let proxy = container(&out[0]["spec"]["template"]["spec"], PROXY_CONTAINER);
    let args = proxy["args"].as_array().expect("as the test built it");
    let config = args.iter().position(|a| a == "--config-yaml").expect("--config-yaml");
    let bootstrap: Json = serde_json::from_str(args[config + 1].as_str().expect("as the test built it")).expect("JSON");
    let metadata = &bootstrap["node"]["metadata"];
    assert_eq!(metadata["ROLE"], "sidecar");
    assert_eq!(metadata["NAMESPACE"], "bookinfo");
    assert_eq!(metadata["LABELS"], serde_json::json!({ "app": "reviews", "version": "v2" }));
    assert!(metadata.get("OUTBOUND_BIND").is_none(), "no OUTBOUND_BIND: the sidecar is captured");
    // What the server reads back from the node, decoded as Envoy decodes the bootstrap.
    let mut typed = bootstrap.clone();
    typed["@type"] = "type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap".into();
    let any = api_protos::reflect::from_json(&typed).expect("Envoy's descriptors accept the bootstrap");
    let decoded: api_protos::pb::envoy::config::bootstrap::v3::Bootstrap =
        api_protos::any::unpack(&any).expect("as the test built it");
    let class = translator::ProxyClass::from_node(&decoded.node.expect("a node"));
    assert_eq!(class.role, Role::Sidecar);
    assert_eq!(class.namespace, "bookinfo");
    assert_eq!(class.outbound_bind, None);
    assert_eq!(class.labels.get("version").map(String::as_str), Some("v2"));
    let xds = &bootstrap["static_resources"]["clusters"][0];
    assert_eq!(xds["type"], "STRICT_DNS");
    assert!(bootstrap.to_string().contains("pilotfish.pilotfish-system.svc"), "{xds}");
    assert_eq!(bootstrap["admin"]["address"]["socket_address"]["address"], "127.0.0.1");
}

#[test]
fn every_workload_kind_is_injected_at_its_pod_template_and_other_kinds_pass_through() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: a}]}\n";
    let cron = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec:\n  schedule: '* * * * *'\n  \
                jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: a, image: a}]}}}}\n";
    let mut input = String::new();
    for kind in ["StatefulSet", "DaemonSet", "ReplicaSet", "Job"] {
        input.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: w}}\nspec:\n  template:\n    \
             metadata: {{labels: {{app: w}}}}\n    spec: {{containers: [{{name: a, image: a}}]}}\n"
        ));
    }
    input.push_str(&format!("---\n{pod}---\n{cron}---\n{SERVICE}"));
    let out = injected(&input);
    assert_eq!(out.len(), 7);
    for workload in &out[..4] {
        container(&workload["spec"]["template"]["spec"], PROXY_CONTAINER);
    }
    container(&out[4]["spec"], PROXY_CONTAINER);
    container(&out[5]["spec"]["jobTemplate"]["spec"]["template"]["spec"], PROXY_CONTAINER);
    assert_eq!(out[6], documents(SERVICE)[0], "a Service passes through unchanged");
}

#[test]
fn items_of_a_list_are_injected() {
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}",
        serde_json::to_string(&documents(DEPLOYMENT)[0]).expect("as the test built it")
    );
    let out = injected(&list);
    container(&out[0]["items"][0]["spec"]["template"]["spec"], PROXY_CONTAINER);
}

#[test]
fn injecting_twice_changes_nothing_and_says_so() {
    let once = inject(DEPLOYMENT, &InjectOptions::default()).expect("as the test built it");
    let twice = inject(&once.yaml, &InjectOptions::default()).expect("as the test built it");
    assert_eq!(twice.yaml, once.yaml);
    assert_eq!(twice.notes.len(), 1);
    assert!(twice.notes[0].contains("already injected"), "{:?}", twice.notes);
    assert!(twice.notes[0].contains("Deployment bookinfo/reviews-v2"), "{:?}", twice.notes);
}

#[test]
fn the_opt_out_annotation_and_label_are_honoured() {
    for place in ["annotations", "labels"] {
        let input = DEPLOYMENT.replace(
            "      labels: {app: reviews, version: v2}",
            &format!("      {place}: {{sidecar.istio.io/inject: \"false\"}}"),
        );
        let out = inject(&input, &InjectOptions::default()).expect("as the test built it");
        assert_eq!(documents(&out.yaml), documents(&input), "{place}: left as is");
        assert!(out.notes[0].contains("not injected"), "{:?}", out.notes);
    }
    let input =
        DEPLOYMENT.replace("labels: {app: reviews, version: v2}", "annotations: {sidecar.istio.io/inject: \"maybe\"}");
    let message = error(&input);
    assert!(message.contains("sidecar.istio.io/inject") && message.contains("\"maybe\""), "{message}");
}

#[test]
fn capture_annotations_become_exclusions_and_bad_values_name_the_object_and_annotation() {
    let annotated = |value: &str| {
        DEPLOYMENT.replace(
            "      labels: {app: reviews, version: v2}",
            &format!("      labels: {{app: reviews}}\n      annotations: {value}"),
        )
    };
    let input = annotated(
        "{traffic.sidecar.istio.io/excludeOutboundPorts: \"5432, 6379\", \
         traffic.sidecar.istio.io/excludeOutboundIPRanges: \"10.96.0.0/12\"}",
    );
    let out = injected(&input);
    let script = container(&out[0]["spec"]["template"]["spec"], INIT_CONTAINER)["command"][2]
        .as_str()
        .expect("as the test built it")
        .to_owned();
    assert!(script.contains("--dport 5432 -j RETURN") && script.contains("--dport 6379 -j RETURN"), "{script}");
    assert!(script.contains("-d 10.96.0.0/12 -j RETURN"), "{script}");

    let message = error(&annotated("{traffic.sidecar.istio.io/excludeOutboundPorts: \"5432,http\"}"));
    assert!(message.contains("Deployment bookinfo/reviews-v2"), "{message}");
    assert!(message.contains("excludeOutboundPorts") && message.contains("\"http\""), "{message}");
    let message = error(&annotated("{traffic.sidecar.istio.io/excludeOutboundIPRanges: \"10.0.0.0/40\"}"));
    assert!(message.contains("excludeOutboundIPRanges") && message.contains("prefix"), "{message}");
}

#[test]
fn options_choose_images_address_uid_and_the_default_namespace() {
    let options = InjectOptions {
        proxy_image: "registry.example/envoy:1".to_owned(),
        init_image: "registry.example/init:1".to_owned(),
        xds_address: "10.0.0.9:15010".to_owned(),
        proxy_uid: 2000,
        namespace: Some("shop".to_owned()),
    };
    let input = DEPLOYMENT.replace(", namespace: bookinfo", "");
    let out = documents(&inject(&input, &options).expect("as the test built it").yaml);
    let spec = &out[0]["spec"]["template"]["spec"];
    let proxy = container(spec, PROXY_CONTAINER);
    assert_eq!(proxy["image"], "registry.example/envoy:1");
    assert_eq!(proxy["securityContext"]["runAsUser"], 2000);
    let bootstrap = proxy["args"][1].as_str().expect("as the test built it");
    assert!(bootstrap.contains(r#""NAMESPACE":"shop""#) && bootstrap.contains("10.0.0.9"), "{bootstrap}");
    let init = container(spec, INIT_CONTAINER);
    assert_eq!(init["image"], "registry.example/init:1");
    assert!(init["command"][2].as_str().expect("as the test built it").contains("--uid-owner 2000 -j RETURN"));
}

#[test]
fn input_without_workloads_or_that_does_not_read_is_an_error_naming_the_document() {
    assert!(error(SERVICE).contains("no workload"));
    assert!(error("").contains("no workload"));
    let message = error(&format!("{SERVICE}---\nkind: [unclosed\n"));
    assert!(message.contains("document 2"), "{message}");
    let message = error(&format!("{DEPLOYMENT}---\n- just\n- a list\n"));
    assert!(message.contains("document 2") && message.contains("not a Kubernetes object"), "{message}");
    let message = error("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: broken}\nspec: {replicas: 1}\n");
    assert!(message.contains("Deployment default/broken") && message.contains("spec.template"), "{message}");
}

#[test]
fn pods_that_cannot_take_the_sidecar_are_refused_or_skipped() {
    for port in ["15000", "15001", "15021", "15090"] {
        let message = error(&DEPLOYMENT.replace("containerPort: 9080", &format!("containerPort: {port}")));
        assert!(message.contains(port), "{message}");
    }
    let message = error(&DEPLOYMENT.replace("name: reviews\n", "name: istio-proxy\n"));
    assert!(message.contains("istio-proxy"), "{message}");
    let host = DEPLOYMENT.replace("      initContainers:", "      hostNetwork: true\n      initContainers:");
    let out = inject(&host, &InjectOptions::default()).expect("as the test built it");
    assert!(out.notes[0].contains("hostNetwork"), "{:?}", out.notes);
    assert_eq!(documents(&out.yaml), documents(&host));
}

#[test]
fn the_application_starts_once_its_sidecar_is_configured_and_stats_are_where_istio_has_them() {
    let out = injected(DEPLOYMENT);
    let proxy = container(&out[0]["spec"]["template"]["spec"], PROXY_CONTAINER);
    // The kubelet starts the next container only once a native sidecar's startup probe succeeds.
    let startup = &proxy["startupProbe"]["httpGet"];
    assert_eq!((startup["path"].as_str(), startup["port"].as_u64()), (Some("/healthz/ready"), Some(15021)));
    assert_eq!(proxy["readinessProbe"]["httpGet"], *startup);
    assert_eq!(proxy["ports"][0]["containerPort"], 15090);
    // The bootstrap serves that path from Envoy's /ready, and waits for its first configuration without limit.
    let args = proxy["args"].as_array().expect("as the test built it");
    let config = args.iter().position(|a| a == "--config-yaml").expect("--config-yaml");
    let bootstrap: Json = serde_json::from_str(args[config + 1].as_str().expect("as the test built it")).expect("JSON");
    let listeners = bootstrap["static_resources"]["listeners"].as_array().expect("static listeners");
    let ports: Vec<u64> =
        listeners.iter().filter_map(|l| l["address"]["socket_address"]["port_value"].as_u64()).collect();
    assert_eq!(ports, [15021, 15090]);
    assert_eq!(bootstrap["dynamic_resources"]["lds_config"]["initial_fetch_timeout"], "0s");
}
