//! Reading Envoy's admin `ConfigDump` (what `/debug/config_dump?proxy=ID` serves, and what Envoy's own
//! `/config_dump` prints) into typed resources, and writing a filtered one back.
//!
//! The dump is read as JSON and each resource through the Envoy descriptors, so a dump of a real Envoy reads the
//! same as pilotfish's own: static resources, warming clusters and secrets included. It does not fetch anything.

use api_protos::pb::envoy::config::cluster::v3::Cluster;
use api_protos::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use api_protos::pb::envoy::config::listener::v3::Listener;
use api_protos::pb::envoy::config::route::v3::RouteConfiguration;
use api_protos::{ResourceType, any, reflect};
use serde_json::{Value, json};

const CLUSTERS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump";
const LISTENERS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump";
const ROUTES_DUMP: &str = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump";
const ENDPOINTS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump";
pub const SECRETS_DUMP: &str = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump";

/// Where each type's resources sit in its dump: its type, and the lists that hold them.
struct Layout {
    dump_type: &'static str,
    lists: &'static [&'static str],
}

fn layout(kind: ResourceType) -> Layout {
    match kind {
        ResourceType::Cluster => Layout {
            dump_type: CLUSTERS_DUMP,
            lists: &["static_clusters", "dynamic_active_clusters", "dynamic_warming_clusters"],
        },
        ResourceType::Listener => {
            Layout { dump_type: LISTENERS_DUMP, lists: &["static_listeners", "dynamic_listeners"] }
        }
        ResourceType::Route => {
            Layout { dump_type: ROUTES_DUMP, lists: &["static_route_configs", "dynamic_route_configs"] }
        }
        ResourceType::Endpoint => {
            Layout { dump_type: ENDPOINTS_DUMP, lists: &["static_endpoint_configs", "dynamic_endpoint_configs"] }
        }
    }
}

/// One resource of a dump, typed, with the entry it was read from.
#[derive(Clone, Debug)]
pub struct Dumped<T> {
    pub resource: T,
    /// The list it was in (`dynamic_active_clusters`, `static_listeners`, …).
    pub list: &'static str,
    /// The list entry as read (version, resource, timestamps).
    pub entry: Value,
}

/// A config dump, read.
#[derive(Clone, Debug, Default)]
pub struct Dump {
    pub clusters: Vec<Dumped<Cluster>>,
    pub listeners: Vec<Dumped<Listener>>,
    pub routes: Vec<Dumped<RouteConfiguration>>,
    pub endpoints: Vec<Dumped<ClusterLoadAssignment>>,
    /// Whether the dump has endpoints at all (Envoy's `/config_dump` leaves them out without `?include_eds`).
    pub has_endpoints: bool,
    /// The secrets (SDS) in the dump: name, and the list it is in.
    pub secrets: Vec<(String, &'static str)>,
    /// The dump of secrets as read.
    pub secrets_dump: Option<Value>,
    /// Each type's dump as read, without its resource lists (its `version_info`), by dump type.
    headers: Vec<(String, Value)>,
    /// Resources that could not be read (a type or field these descriptors do not know), one line each.
    pub problems: Vec<String>,
}

impl Dump {
    /// Reads a `ConfigDump` in JSON (`{"configs": [...]}`).
    pub fn read(text: &str) -> Result<Dump, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let configs =
            value.get("configs").and_then(Value::as_array).ok_or("not an Envoy config dump: no \"configs\" list")?;
        let mut dump = Dump::default();
        for config in configs {
            let dump_type = config.get("@type").and_then(Value::as_str).unwrap_or_default();
            let mut header = config.clone();
            if let Value::Object(fields) = &mut header {
                fields.retain(|key, _| !key.starts_with("static_") && !key.starts_with("dynamic_"));
            }
            dump.headers.push((dump_type.to_owned(), header));
            match dump_type {
                CLUSTERS_DUMP => dump.clusters = read_kind(config, ResourceType::Cluster, &mut dump.problems),
                LISTENERS_DUMP => dump.listeners = read_kind(config, ResourceType::Listener, &mut dump.problems),
                ROUTES_DUMP => dump.routes = read_kind(config, ResourceType::Route, &mut dump.problems),
                ENDPOINTS_DUMP => {
                    dump.has_endpoints = true;
                    dump.endpoints = read_kind(config, ResourceType::Endpoint, &mut dump.problems);
                }
                SECRETS_DUMP => {
                    for list in ["static_secrets", "dynamic_active_secrets", "dynamic_warming_secrets"] {
                        for secret in config.get(list).and_then(Value::as_array).into_iter().flatten() {
                            dump.secrets.push((secret["name"].as_str().unwrap_or_default().to_owned(), list));
                        }
                    }
                    dump.secrets_dump = Some(config.clone());
                }
                _ => {}
            }
        }
        Ok(dump)
    }

    /// A `ConfigDump` of the given types holding only these resources, each in the list it came from.
    pub fn write(&self, parts: &[(ResourceType, Vec<(&'static str, Value)>)]) -> Value {
        let configs: Vec<Value> = parts
            .iter()
            .map(|(kind, entries)| {
                let layout = layout(*kind);
                let mut out = self
                    .headers
                    .iter()
                    .find(|(t, _)| t == layout.dump_type)
                    .map(|(_, header)| header.clone())
                    .unwrap_or_else(|| json!({ "@type": layout.dump_type }));
                for list in layout.lists {
                    let chosen: Vec<Value> =
                        entries.iter().filter(|(l, _)| l == list).map(|(_, entry)| entry.clone()).collect();
                    if !chosen.is_empty() {
                        out[*list] = Value::Array(chosen);
                    }
                }
                out
            })
            .collect();
        json!({ "configs": configs })
    }
}

fn read_kind<T: prost::Message + prost::Name + Default>(
    config: &Value,
    kind: ResourceType,
    problems: &mut Vec<String>,
) -> Vec<Dumped<T>> {
    let layout = layout(kind);
    let mut out = Vec::new();
    for list in layout.lists {
        for entry in config.get(*list).and_then(Value::as_array).into_iter().flatten() {
            let Some(body) = resource_json(entry, kind) else {
                // A dynamic listener only warming or draining, or a resource known by version only.
                continue;
            };
            match reflect::from_json(body).and_then(|packed| any::unpack::<T>(&packed)) {
                Ok(resource) => out.push(Dumped { resource, list, entry: entry.clone() }),
                Err(err) => problems.push(format!("{kind} in {list}: {err}")),
            }
        }
    }
    out
}

/// The field of a list entry that holds the resource.
fn resource_field(kind: ResourceType) -> &'static str {
    match kind {
        ResourceType::Cluster => "cluster",
        ResourceType::Endpoint => "endpoint_config",
        ResourceType::Listener => "listener",
        ResourceType::Route => "route_config",
    }
}

/// The resource inside a dump list entry: static listeners hold `listener`, dynamic ones the state they are in,
/// of which the active one is what serves (as istioctl shows).
pub fn resource_json(entry: &Value, kind: ResourceType) -> Option<&Value> {
    match kind {
        ResourceType::Listener => entry.get("listener").or_else(|| entry.get("active_state")?.get("listener")),
        _ => entry.get(resource_field(kind)),
    }
}

/// Puts `body` in place of the resource of a list entry.
pub fn replace_resource(entry: &mut Value, kind: ResourceType, body: Value) {
    let slot = match kind {
        ResourceType::Listener if entry.get("listener").is_none() => entry.get_mut("active_state"),
        _ => Some(entry),
    };
    if let Some(Value::Object(fields)) = slot {
        fields.insert(resource_field(kind).to_owned(), body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"{"configs": [
      {"@type": "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump", "bootstrap": {}},
      {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "version_info": "v7",
       "static_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                                        "name": "xds", "type": "STATIC"}}],
       "dynamic_active_clusters": [{"version_info": "v7", "cluster": {
           "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "outbound|9080|v1|reviews.local",
           "type": "EDS", "eds_cluster_config": {"eds_config": {"ads": {}}}}, "last_updated": "2026-01-01T00:00:00Z"}]},
      {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
       "dynamic_listeners": [{"name": "l", "active_state": {"listener": {
           "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l"}}},
         {"name": "warming", "warming_state": {"listener": {
           "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "warming"}}}]},
      {"@type": "type.googleapis.com/envoy.admin.v3.SecretsConfigDump",
       "dynamic_active_secrets": [{"name": "default"}]}
    ]}"#;

    #[test]
    fn reads_static_and_dynamic_resources_of_an_envoy_dump() {
        let dump = Dump::read(DUMP).unwrap_or_default();
        let names: Vec<(&str, &str)> = dump.clusters.iter().map(|c| (c.list, c.resource.name.as_str())).collect();
        assert_eq!(names, [("static_clusters", "xds"), ("dynamic_active_clusters", "outbound|9080|v1|reviews.local")]);
        assert_eq!(dump.listeners.iter().map(|l| l.resource.name.as_str()).collect::<Vec<_>>(), ["l"]);
        assert!(!dump.has_endpoints);
        assert_eq!(dump.secrets, [("default".to_owned(), "dynamic_active_secrets")]);
        assert!(dump.problems.is_empty(), "{:?}", dump.problems);
    }

    #[test]
    fn writes_back_only_the_chosen_resources_with_the_type_s_version() {
        let dump = Dump::read(DUMP).unwrap_or_default();
        let chosen: Vec<(&'static str, Value)> =
            dump.clusters.iter().filter(|c| c.list.starts_with("dynamic")).map(|c| (c.list, c.entry.clone())).collect();
        let out = dump.write(&[(ResourceType::Cluster, chosen)]);
        let clusters = &out["configs"][0];
        assert_eq!(clusters["@type"], CLUSTERS_DUMP);
        assert_eq!(clusters["version_info"], "v7");
        assert!(clusters.get("static_clusters").is_none());
        assert_eq!(clusters["dynamic_active_clusters"][0]["cluster"]["name"], "outbound|9080|v1|reviews.local");
        assert_eq!(clusters["dynamic_active_clusters"][0]["last_updated"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn a_resource_these_descriptors_cannot_read_is_a_problem_not_a_failure() {
        let dump = Dump::read(
            r#"{"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                "dynamic_active_clusters": [{"cluster": {"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                "name": "c", "no_such_field": 1}}]}]}"#,
        )
        .unwrap_or_default();
        assert!(dump.clusters.is_empty());
        assert_eq!(dump.problems.len(), 1, "{:?}", dump.problems);
        assert!(Dump::read("{}").is_err());
    }
}
