use std::collections::BTreeMap;

use prost::Message;

use super::*;
use crate::any::pack;
use crate::pb::envoy::config::cluster::v3::Cluster;
use crate::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use crate::pb::google::protobuf::{Duration, Struct, Value, value::Kind as ValueKind};

fn route_config_with_filter_configs(keys: &[&str]) -> RouteConfiguration {
    let mut typed_per_filter_config = BTreeMap::new();
    for key in keys {
        let mut fields = BTreeMap::new();
        for inner in ["a", "b", "c", "d", "e", "f"] {
            fields.insert(inner.to_owned(), Value { kind: Some(ValueKind::StringValue(format!("{key}-{inner}"))) });
        }
        typed_per_filter_config.insert((*key).to_owned(), pack(&Struct { fields }));
    }
    RouteConfiguration {
        name: "http.8080".into(),
        virtual_hosts: vec![VirtualHost {
            name: "bookinfo".into(),
            domains: vec!["*".into()],
            routes: vec![Route { name: "r".into(), typed_per_filter_config, ..Default::default() }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn canonical_bytes_do_not_depend_on_map_order() {
    // The generated types keep maps sorted, but bytes from elsewhere (a raw resource read through reflection, or
    // another encoder) may hold map entries in any order: concatenating encodings of messages with one entry each
    // is a valid encoding of the merged message with its entries in that order.
    let keys = ["k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"];
    let encode = |keys: &[&str]| {
        let mut bytes = Vec::new();
        for key in keys {
            let options =
                route_config_with_filter_configs(&[key]).virtual_hosts[0].routes[0].typed_per_filter_config.clone();
            // Only map entries: a scalar field repeated in each piece would be an encoding of its own.
            let cluster = Cluster { typed_extension_protocol_options: options, ..Default::default() };
            bytes.extend(cluster.encode_to_vec());
        }
        Any { type_url: "type.googleapis.com/envoy.config.cluster.v3.Cluster".into(), value: bytes }
    };
    let mut reversed = keys;
    reversed.reverse();
    let (forward, backward) = (encode(&keys), encode(&reversed));
    assert_ne!(forward.value, backward.value, "the test needs map order to differ to mean anything");
    let canonical = canonical_any(&forward).expect("canonical");
    assert_eq!(canonical_any(&backward).expect("canonical").value, canonical.value);
    // Still the same message: it decodes, and its own canonical form is itself.
    let decoded = Cluster::decode(canonical.value.as_slice()).expect("decodes");
    assert_eq!(decoded.typed_extension_protocol_options.len(), keys.len());
    assert_eq!(canonical_any(&pack(&decoded)).expect("canonical").value, canonical.value);
}

#[test]
fn canonical_bytes_keep_messages_without_maps_unchanged() {
    let cluster = Cluster {
        name: "outbound|9080||reviews.default.svc.cluster.local".into(),
        connect_timeout: Some(Duration { seconds: 10, nanos: 0 }),
        ..Default::default()
    };
    let any = pack(&cluster);
    assert_eq!(canonical_any(&any).expect("canonical").value, any.value);
}

#[test]
fn renders_envoy_json_with_proto_field_names_and_type() {
    let cluster = Cluster {
        name: "web".into(),
        connect_timeout: Some(Duration { seconds: 1, nanos: 500_000_000 }),
        ..Default::default()
    };
    let json = message_to_json(&cluster).expect("renders");
    assert_eq!(
        json,
        serde_json::json!({
            "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            "name": "web",
            "connect_timeout": "1.500s",
        })
    );
}

#[test]
fn renders_nested_any_with_its_type() {
    let config = route_config_with_filter_configs(&["envoy.filters.http.fault"]);
    let json = message_to_json(&config).expect("renders");
    let nested = &json["virtual_hosts"][0]["routes"][0]["typed_per_filter_config"]["envoy.filters.http.fault"];
    assert_eq!(nested["@type"], "type.googleapis.com/google.protobuf.Struct");
}

#[test]
fn reads_envoy_json_in_either_spelling() {
    let snake = serde_json::json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "web",
        "connect_timeout": "0.25s",
        "type": "STATIC",
    });
    let camel = serde_json::json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "web",
        "connectTimeout": "0.25s",
        "type": "STATIC",
    });
    let a = from_json(&snake).expect("snake_case reads");
    let b = from_json(&camel).expect("camelCase reads");
    assert_eq!(a, b);
    let cluster: Cluster = crate::any::unpack(&a).expect("a cluster");
    assert_eq!(cluster.connect_timeout, Some(Duration { seconds: 0, nanos: 250_000_000 }));
    // Durations render with millisecond precision, as protobuf's JSON mapping (and Envoy's config dump) do.
    let mut rendered = snake.clone();
    rendered["connect_timeout"] = "0.250s".into();
    assert_eq!(to_json(&a).expect("renders"), rendered);
}

#[test]
fn json_errors_name_the_problem() {
    let missing = from_json(&serde_json::json!({"name": "x"})).expect_err("no @type");
    assert!(missing.to_string().contains("@type"), "{missing}");
    let unknown = from_json(&serde_json::json!({"@type": "type.googleapis.com/no.Such"})).expect_err("unknown");
    assert!(unknown.to_string().contains("no.Such"), "{unknown}");
    let bad_field = serde_json::json!({
        "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        "name": "web",
        "connect_timeot": "1s",
    });
    let err = from_json(&bad_field).expect_err("unknown field");
    assert!(err.to_string().contains("connect_timeot"), "{err}");
}

#[test]
fn the_served_descriptors_canonicalize_as_the_full_set_does() {
    let bytes = route_config_with_filter_configs(&["b", "a", "c"]).encode_to_vec();
    let name = "envoy.config.route.v3.RouteConfiguration";
    let canonical_with = |pool: &DescriptorPool| {
        let message = pool.get_message_by_name(name).expect("RouteConfiguration is described");
        let mut out = Vec::new();
        canonicalize(&message, &bytes, &mut out).expect("the encoding is valid");
        out
    };
    assert_eq!(canonical_with(served_pool()), canonical_with(pool()));
    assert!(served_pool().get_message_by_name("envoy.extensions.filters.http.lua.v3.Lua").is_none());
    assert!(pool().get_message_by_name("envoy.extensions.filters.http.lua.v3.Lua").is_some());
}
