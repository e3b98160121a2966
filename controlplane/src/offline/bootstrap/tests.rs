use api_protos::pb::envoy::config::bootstrap::v3::Bootstrap;
use api_protos::pb::envoy::config::core::v3::api_config_source::ApiType;
use translator::ProxyClass;

use super::*;

const BOOTSTRAP_TYPE: &str = "type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap";

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// An ingress gateway selected by its labels.
fn gateway() -> BootstrapOptions {
    BootstrapOptions {
        labels: labels(&[("istio", "ingressgateway"), ("app", "edge")]),
        namespace: "istio-system".to_owned(),
        ..BootstrapOptions::new("gw-1", Role::Gateway)
    }
}

/// A sidecar without traffic capture, binding its outbound listeners on a loopback alias.
fn sidecar() -> BootstrapOptions {
    BootstrapOptions {
        labels: labels(&[("app", "reviews"), ("version", "v1")]),
        namespace: "bookinfo".to_owned(),
        outbound_bind: Some("127.0.0.2".to_owned()),
        ..BootstrapOptions::new("reviews-v1", Role::Sidecar)
    }
}

fn with_xds(xds_address: &str) -> BootstrapOptions {
    BootstrapOptions { xds_address: xds_address.to_owned(), ..gateway() }
}

fn rendered(options: &BootstrapOptions) -> Value {
    render(options).unwrap_or_else(|e| panic!("rendering {options:?}: {e}"))
}

/// Reads a rendered bootstrap strictly against Envoy's descriptors, as Envoy's own JSON parser would: an unknown
/// field, a misspelt enum value or a wrongly typed value fails here.
fn decode(bootstrap: &Value) -> Bootstrap {
    let mut typed = bootstrap.clone();
    typed["@type"] = BOOTSTRAP_TYPE.into();
    let any = api_protos::reflect::from_json(&typed)
        .unwrap_or_else(|e| panic!("Envoy's descriptors refuse the bootstrap: {e}\n{bootstrap:#}"));
    api_protos::any::unpack(&any).expect("the Any holds a Bootstrap")
}

fn expected_class(options: &BootstrapOptions) -> ProxyClass {
    ProxyClass {
        role: options.role,
        labels: options.labels.clone(),
        namespace: options.namespace.clone(),
        outbound_bind: options.outbound_bind.clone(),
    }
}

fn class_read_by_the_server(bootstrap: &Value) -> ProxyClass {
    let node = decode(bootstrap).node.expect("the bootstrap has a node");
    ProxyClass::from_node(&node)
}

fn xds_cluster(bootstrap: &Value) -> &Value {
    let cluster = &bootstrap["static_resources"]["clusters"][0];
    assert_eq!(cluster["name"], XDS_CLUSTER);
    cluster
}

fn error_of(options: &BootstrapOptions) -> String {
    match render(options) {
        Ok(bootstrap) => panic!("expected {options:?} to be refused, got {bootstrap:#}"),
        Err(e) => e.to_string(),
    }
}

// === the bootstrap Envoy reads ===

#[test]
fn every_rendered_bootstrap_is_a_valid_envoy_bootstrap_message() {
    let cases = [
        gateway(),
        sidecar(),
        BootstrapOptions { delta: true, ..gateway() },
        BootstrapOptions { delta: true, ..sidecar() },
        with_xds("localhost:15010"),
        with_xds("[::1]:15010"),
        BootstrapOptions { admin_address: "::1".to_owned(), admin_port: 0, ..sidecar() },
        BootstrapOptions { node_cluster: Some("edge".to_owned()), ..BootstrapOptions::new("bare", Role::Sidecar) },
    ];
    for options in &cases {
        decode(&rendered(options));
    }
}

#[test]
fn state_of_the_world_is_the_default_protocol() {
    let bootstrap = rendered(&gateway());
    assert_eq!(bootstrap["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
    let ads = decode(&bootstrap).dynamic_resources.and_then(|d| d.ads_config).expect("an ads_config");
    assert_eq!(ads.api_type(), ApiType::Grpc);
}

#[test]
fn delta_selects_the_incremental_protocol() {
    let bootstrap = rendered(&BootstrapOptions { delta: true, ..gateway() });
    assert_eq!(bootstrap["dynamic_resources"]["ads_config"]["api_type"], "DELTA_GRPC");
    let ads = decode(&bootstrap).dynamic_resources.and_then(|d| d.ads_config).expect("an ads_config");
    assert_eq!(ads.api_type(), ApiType::DeltaGrpc);
}

#[test]
fn clusters_and_listeners_come_over_ads_from_the_xds_cluster() {
    let dynamic = &rendered(&sidecar())["dynamic_resources"];
    let ads = &dynamic["ads_config"];
    assert_eq!(ads["grpc_services"], json!([{ "envoy_grpc": { "cluster_name": XDS_CLUSTER } }]));
    assert_eq!(ads["transport_api_version"], "V3");
    assert_eq!(ads["set_node_on_first_message_only"], true);
    for config in ["cds_config", "lds_config"] {
        assert_eq!(dynamic[config], json!({ "ads": {}, "resource_api_version": "V3" }), "{config}");
    }
}

// === the proxy class: the contract with the server ===

#[test]
fn metadata_holds_the_class_under_the_keys_the_server_reads() {
    let metadata = &rendered(&sidecar())["node"]["metadata"];
    assert_eq!(
        *metadata,
        json!({
            "ROLE": "sidecar",
            "LABELS": { "app": "reviews", "version": "v1" },
            "NAMESPACE": "bookinfo",
            "OUTBOUND_BIND": "127.0.0.2",
        })
    );
}

#[test]
fn outbound_bind_is_left_out_when_not_set() {
    let metadata = &rendered(&gateway())["node"]["metadata"];
    assert_eq!(metadata["ROLE"], "gateway");
    assert!(metadata.get(OUTBOUND_BIND_KEY).is_none(), "{metadata:#}");
}

#[test]
fn the_server_reads_back_the_class_the_options_name() {
    let cases = [
        gateway(),
        sidecar(),
        BootstrapOptions { delta: true, ..sidecar() },
        // Nothing but defaults: still a class, and the one the options name.
        BootstrapOptions::new("plain", Role::Gateway),
        // Values a YAML reader could take for booleans or numbers stay strings.
        BootstrapOptions { labels: labels(&[("enabled", "yes"), ("zone", "012"), ("empty", "")]), ..gateway() },
    ];
    for options in &cases {
        let bootstrap = rendered(options);
        assert_eq!(class_read_by_the_server(&bootstrap), expected_class(options), "{options:?}");
    }
}

#[test]
fn the_printed_yaml_means_the_same_bootstrap() {
    for options in [gateway(), sidecar(), with_xds("localhost:15010"), with_xds("[::1]:15010")] {
        let yaml = render_yaml(&options).expect("renders");
        let read_back: Value = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("unreadable YAML: {e}\n{yaml}"));
        assert_eq!(read_back, rendered(&options), "{yaml}");
        assert_eq!(class_read_by_the_server(&read_back), expected_class(&options));
    }
}

#[test]
fn node_cluster_defaults_to_pilotfish_and_the_role() {
    assert_eq!(rendered(&gateway())["node"]["cluster"], "pilotfish-gateway");
    assert_eq!(rendered(&sidecar())["node"]["cluster"], "pilotfish-sidecar");
    let named = BootstrapOptions { node_cluster: Some("reviews.bookinfo".to_owned()), ..sidecar() };
    let node = &rendered(&named)["node"];
    assert_eq!((node["id"].as_str(), node["cluster"].as_str()), (Some("reviews-v1"), Some("reviews.bookinfo")));
}

#[test]
fn defaults_are_the_command_lines() {
    let options = BootstrapOptions::new("n", Role::Sidecar);
    assert_eq!(options.xds_address, "127.0.0.1:15010");
    assert_eq!((options.admin_address.as_str(), options.admin_port), ("127.0.0.1", 15000));
    assert_eq!(options.namespace, "default");
    assert!(options.labels.is_empty() && options.outbound_bind.is_none() && !options.delta);
}

// === the xDS cluster ===

#[test]
fn xds_cluster_speaks_http2_to_the_xds_address() {
    let bootstrap = rendered(&with_xds("10.1.2.3:15012"));
    let cluster = xds_cluster(&bootstrap);
    assert_eq!(cluster["type"], "STATIC");
    assert_eq!(cluster["connect_timeout"], "1s");
    assert!(cluster.get("dns_lookup_family").is_none(), "{cluster:#}");
    let protocol_options = &cluster["typed_extension_protocol_options"][HTTP_PROTOCOL_OPTIONS];
    let http2 = &protocol_options["explicit_http_config"]["http2_protocol_options"];
    assert!(http2["connection_keepalive"].is_object(), "{cluster:#}");
    let endpoint = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
    assert_eq!(endpoint["address"]["socket_address"], json!({ "address": "10.1.2.3", "port_value": 15012 }));
}

#[test]
fn an_ipv6_xds_address_is_static_and_unbracketed() {
    let bootstrap = rendered(&with_xds("[::1]:15010"));
    let cluster = xds_cluster(&bootstrap);
    assert_eq!(cluster["type"], "STATIC");
    let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(address["socket_address"], json!({ "address": "::1", "port_value": 15010 }));
}

#[test]
fn a_hostname_xds_address_is_resolved_with_strict_dns_preferring_ipv4() {
    for name in ["localhost", "pilotfish.pilotfish-system.svc.cluster.local", "xds_1.example."] {
        let bootstrap = rendered(&with_xds(&format!("{name}:15010")));
        let cluster = xds_cluster(&bootstrap);
        assert_eq!(cluster["type"], "STRICT_DNS", "{name}");
        assert_eq!(cluster["dns_lookup_family"], "V4_PREFERRED", "{name}");
        let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
        assert_eq!(address["socket_address"], json!({ "address": name, "port_value": 15010 }));
    }
}

#[test]
fn admin_listens_where_told() {
    let admin = &rendered(&gateway())["admin"];
    assert_eq!(*admin, json!({ "address": { "socket_address": { "address": "127.0.0.1", "port_value": 15000 } } }));
    let ephemeral = BootstrapOptions { admin_address: "[::1]".to_owned(), admin_port: 0, ..gateway() };
    let admin = &rendered(&ephemeral)["admin"];
    assert_eq!(admin["address"]["socket_address"], json!({ "address": "::1", "port_value": 0 }));
}

// === refusing bad options, naming the flag ===

#[test]
fn bad_options_are_refused_naming_their_flag() {
    let cases: Vec<(BootstrapOptions, &str)> = vec![
        (BootstrapOptions::new("", Role::Gateway), "--node-id"),
        (BootstrapOptions::new("  ", Role::Gateway), "--node-id"),
        (BootstrapOptions { namespace: String::new(), ..gateway() }, "--namespace"),
        (BootstrapOptions { labels: labels(&[("", "x")]), ..gateway() }, "--labels"),
        (BootstrapOptions { outbound_bind: Some("127.0.0.2".to_owned()), ..gateway() }, "--outbound-bind"),
        (BootstrapOptions { outbound_bind: Some(String::new()), ..sidecar() }, "--outbound-bind"),
        (BootstrapOptions { outbound_bind: Some("localhost".to_owned()), ..sidecar() }, "--outbound-bind"),
        (BootstrapOptions { admin_address: "localhost".to_owned(), ..gateway() }, "admin address"),
        (BootstrapOptions { node_cluster: Some(String::new()), ..gateway() }, "--node-cluster"),
        (BootstrapOptions { readiness_port: Some(0), ..gateway() }, "--readiness-port"),
        (
            BootstrapOptions { prometheus_port: Some(15021), readiness_port: Some(15021), ..gateway() },
            "--prometheus-port",
        ),
        (BootstrapOptions { readiness_port: Some(15021), admin_port: 0, ..gateway() }, "--admin-port"),
        (BootstrapOptions::default(), "--node-id"),
    ];
    for (options, flag) in &cases {
        let message = error_of(options);
        assert!(message.starts_with(&format!("invalid {flag} ")), "{message}");
    }
}

#[test]
fn xds_addresses_that_are_not_host_and_port_are_refused() {
    let bad = [
        "",
        "localhost",
        "127.0.0.1",
        "127.0.0.1:",
        ":15010",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:+80",
        "127.0.0.1:xds",
        "::1:15010",
        "[::1]15010",
        "[::1]",
        "[127.0.0.1]:15010",
        "10.0.0.256:15010",
        "bad host:15010",
        "-dash.example:15010",
        "a..b:15010",
        "http://localhost:15010",
    ];
    for address in bad {
        let message = error_of(&with_xds(address));
        assert!(message.starts_with("invalid --xds-address "), "{address}: {message}");
    }
    assert!(error_of(&with_xds("127.0.0.1:99999")).contains("port must be a number from 1 to 65535"));
}

// === --labels ===

#[test]
fn labels_parse_from_comma_separated_pairs() {
    assert_eq!(
        parse_labels("istio=ingressgateway, app = edge ,version=").expect("parses"),
        labels(&[("istio", "ingressgateway"), ("app", "edge"), ("version", "")])
    );
    assert_eq!(parse_labels("k=a=b").expect("parses"), labels(&[("k", "a=b")]));
    assert_eq!(parse_labels("app=edge,").expect("parses"), labels(&[("app", "edge")]));
}

#[test]
fn no_labels_is_an_empty_map() {
    assert_eq!(parse_labels("").expect("parses"), BTreeMap::new());
    assert_eq!(parse_labels("  ").expect("parses"), BTreeMap::new());
}

#[test]
fn malformed_labels_are_refused_naming_the_flag() {
    for text in ["app", "app=edge,version", "=edge", " =edge", "app=a,app=b"] {
        let message = parse_labels(text).expect_err(text).to_string();
        assert!(message.starts_with("invalid --labels "), "{text}: {message}");
    }
}

// === YAML ===

#[test]
fn yaml_reads_back_as_the_same_value_for_awkward_strings() {
    #[rustfmt::skip]
    let awkward = [
        "yes", "on", "Off", "y", "N", "true", "null", "~", "012", "0x1f", "1e3", ".inf", "NaN", "1.5", "-1",
        "2024-01-01", "", " leading", "trailing ", "a: b", "a #b", "#c", "- x", "@type", "*ref", "&anchor", "!tag",
        "%dir", "`tick", "|", ">", "{x}", "[x]", "quote\"d", "single'd", "back\\slash", "multi\nline", "tab\there",
        "bell\u{7}", "del\u{7f}", "nel\u{85}", "sep\u{2028}", "bom\u{feff}", "ünïcödé", "💡",
    ];
    let strings: Map<String, Value> = awkward.iter().map(|s| ((*s).to_owned(), (*s).into())).collect();
    let value = json!({
        "strings": strings,
        "list": awkward.to_vec(),
        "nested": [[1, 2], [], {}, [{ "a": [{ "b": null }] }], { "c": [true, false] }],
        "numbers": [0, -7, 15010, 1.5, 18446744073709551615_u64],
        "empty_map": {},
        "empty_list": [],
    });
    let yaml = to_yaml(&value);
    let read_back: Value = serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("unreadable YAML: {e}\n{yaml}"));
    assert_eq!(read_back, value, "{yaml}");
}

#[test]
fn yaml_quotes_strings_envoy_would_read_as_something_else() {
    // yaml-cpp, Envoy's YAML reader, takes all of these for booleans, numbers or null when unquoted.
    for word in ["yes", "No", "ON", "off", "y", "n", "true", "null", "~", "012", "0x1f", "15010", "1.5", ".inf", "nan"]
    {
        let yaml = to_yaml(&json!({ "k": word }));
        assert!(yaml.starts_with("k: \""), "{word:?} was written as {yaml:?}");
    }
    for plain in ["ingressgateway", "istio-system", "V3", "type.googleapis.com/envoy.config.bootstrap.v3.Bootstrap"] {
        assert_eq!(to_yaml(&json!({ "k": plain })), format!("k: {plain}\n"));
    }
}

#[test]
fn printed_yaml_quotes_label_values_envoy_would_retype() {
    let options = BootstrapOptions { labels: labels(&[("enabled", "yes"), ("zone", "012")]), ..gateway() };
    let yaml = render_yaml(&options).expect("renders");
    assert!(yaml.contains("enabled: \"yes\"") && yaml.contains("zone: \"012\""), "{yaml}");
}

#[test]
fn printed_yaml_looks_like_hand_written_envoy_config() {
    let yaml = render_yaml(&gateway()).expect("renders");
    let expected_fragments = [
        "node:\n  cluster: pilotfish-gateway\n  id: gw-1\n  metadata:\n    LABELS:\n      app: edge\n",
        "  clusters:\n  - name: pilotfish-xds\n    connect_timeout: \"1s\"\n",
        "      - lb_endpoints:\n        - endpoint:\n            address:\n              socket_address:\n",
    ];
    for fragment in expected_fragments {
        assert!(yaml.contains(fragment), "{fragment:?} not in\n{yaml}");
    }
}

// === readiness and Prometheus ports ===

fn with_ports() -> BootstrapOptions {
    BootstrapOptions { readiness_port: Some(15021), prometheus_port: Some(15090), ..gateway() }
}

/// The static listener on `port`: the path it answers and the admin path it asks.
fn admin_route(bootstrap: &Value, port: u64) -> (String, String, String) {
    let listener = bootstrap["static_resources"]["listeners"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["address"]["socket_address"]["port_value"] == port))
        .unwrap_or_else(|| panic!("no listener on {port}: {bootstrap}"));
    let hcm = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    let route = &hcm["route_config"]["virtual_hosts"][0]["routes"][0];
    (
        listener["address"]["socket_address"]["address"].as_str().unwrap_or_default().to_owned(),
        route["match"]["path"].as_str().unwrap_or_default().to_owned(),
        route["route"]["prefix_rewrite"].as_str().unwrap_or_default().to_owned(),
    )
}

#[test]
fn readiness_and_prometheus_ports_serve_one_admin_page_each_on_every_address() {
    let bootstrap = rendered(&with_ports());
    decode(&bootstrap);
    assert_eq!(
        admin_route(&bootstrap, 15021),
        ("0.0.0.0".to_owned(), "/healthz/ready".to_owned(), "/ready".to_owned())
    );
    assert_eq!(
        admin_route(&bootstrap, 15090),
        ("0.0.0.0".to_owned(), "/stats/prometheus".to_owned(), "/stats/prometheus".to_owned())
    );
    let admin = bootstrap["static_resources"]["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "pilotfish-admin"))
        .expect("the admin cluster");
    let address = &admin["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"];
    assert_eq!(address["socket_address"], json!({ "address": "127.0.0.1", "port_value": 15000 }));
}

#[test]
fn a_readiness_port_makes_envoy_wait_for_its_first_configuration() {
    let bootstrap = rendered(&with_ports());
    for config in ["cds_config", "lds_config"] {
        assert_eq!(bootstrap["dynamic_resources"][config]["initial_fetch_timeout"], "0s", "{config}");
    }
    let plain = rendered(&gateway());
    assert!(plain["dynamic_resources"]["lds_config"].get("initial_fetch_timeout").is_none());
    assert!(plain["static_resources"].get("listeners").is_none(), "no listeners unless asked for");
}
