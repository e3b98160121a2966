//! Small Envoy building blocks shared by the translation stages.

use api_protos::any::pack;
use api_protos::pb::envoy::config::core::v3::{Address, SocketAddress};
use api_protos::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiVersion, ConfigSource, HeaderValue, HeaderValueOption, Metadata, address, config_source,
    header_value_option::HeaderAppendAction, socket_address,
};
use api_protos::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use api_protos::pb::google::protobuf::{Duration, Struct, Value, value::Kind as ValueKind};

use crate::input::istio::HeaderOperations;

pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";
pub const ROUTER_FILTER: &str = "envoy.filters.http.router";
pub const HCM_FILTER: &str = "envoy.filters.network.http_connection_manager";

/// Resources delivered over the ADS stream itself.
pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub fn socket_address(ip: &str, port: u32) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: ip.to_owned(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(port)),
            ..Default::default()
        })),
    }
}

pub fn duration(d: std::time::Duration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

pub fn seconds(s: i64) -> Duration {
    Duration { seconds: s, nanos: 0 }
}

/// An Istio percentage (0..100, fractional) as Envoy's fraction of a million, as istiod writes it.
pub fn percent_of_million(value: f64) -> FractionalPercent {
    let numerator = (value.clamp(0.0, 100.0) * 10_000.0).round() as u32;
    FractionalPercent { numerator, denominator: DenominatorType::Million as i32 }
}

/// A deprecated whole-number Istio percentage as Envoy's fraction of a hundred.
pub fn percent_of_hundred(value: i64) -> FractionalPercent {
    FractionalPercent { numerator: value.clamp(0, 100) as u32, denominator: DenominatorType::Hundred as i32 }
}

/// Header additions: `set` overwrites, `add` appends; sorted by name for stable output. Headers Envoy does not let
/// a route modify (`:`-prefixed ones and `host`) are left out, as istiod does; an authority set that way becomes a
/// host rewrite instead (see [`authority_rewrite`]).
pub fn header_options(operations: &HeaderOperations) -> Vec<HeaderValueOption> {
    let option = |key: &String, value: &String, action: HeaderAppendAction| HeaderValueOption {
        header: Some(HeaderValue { key: key.clone(), value: value.clone(), ..Default::default() }),
        append_action: action as i32,
        ..Default::default()
    };
    let modifiable = |(key, _): &(&String, &String)| !is_internal_header(key);
    let set =
        operations.set.iter().filter(modifiable).map(|(k, v)| option(k, v, HeaderAppendAction::OverwriteIfExistsOrAdd));
    let add =
        operations.add.iter().filter(modifiable).map(|(k, v)| option(k, v, HeaderAppendAction::AppendIfExistsOrAdd));
    set.chain(add).collect()
}

/// Header removals, without the headers Envoy does not let a route modify.
pub fn headers_to_remove(operations: &HeaderOperations) -> Vec<String> {
    operations.remove.iter().filter(|key| !is_internal_header(key)).cloned().collect()
}

/// The authority a request header operation sets (`:authority` or `host`, from `set` before `add`), which istiod's
/// `TranslateHeadersOperations` turns into a host rewrite.
pub fn authority_rewrite(operations: &HeaderOperations) -> Option<String> {
    let authority = |headers: &std::collections::BTreeMap<String, String>| {
        headers.iter().rev().find(|(key, _)| is_authority_header(key)).map(|(_, value)| value.clone())
    };
    authority(&operations.set).or_else(|| authority(&operations.add))
}

/// `:`-prefixed headers and `host`: Envoy refuses route configurations that add or remove them.
fn is_internal_header(key: &str) -> bool {
    key.starts_with(':') || key.eq_ignore_ascii_case("host")
}

fn is_authority_header(key: &str) -> bool {
    key.eq_ignore_ascii_case(":authority") || key.eq_ignore_ascii_case("host")
}

/// `filter_metadata.istio.config` naming the Istio object behind a resource, as istiod writes it; `explain` and
/// config dumps use it to say where a route came from.
pub fn istio_metadata(kind_path: &str, namespace: &str, name: &str) -> Metadata {
    let config = format!("/apis/networking.istio.io/v1/namespaces/{namespace}/{kind_path}/{name}");
    let fields = [("config".to_owned(), Value { kind: Some(ValueKind::StringValue(config)) })].into_iter().collect();
    Metadata { filter_metadata: [("istio".to_owned(), Struct { fields })].into_iter().collect(), ..Default::default() }
}

/// Packs a message for a `typed_config` field.
pub fn typed<M: prost::Message + prost::Name>(message: &M) -> api_protos::Any {
    pack(message)
}
