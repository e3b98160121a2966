//! Who a proxy is: the class it belongs to, read from its Envoy node.
//!
//! Proxies with the same role, labels, namespace and outbound bind address get identical configuration, so they
//! form one class and share one snapshot. The class is read from `node.metadata` (`ROLE`, `LABELS`, `NAMESPACE`,
//! `OUTBOUND_BIND`); Istio-style node ids (`router~ip~pod.ns~ns.svc.cluster.local`, `sidecar~…`) are understood
//! where the metadata is silent.

use std::collections::BTreeMap;
use std::fmt;

use api_protos::pb::envoy::config::core::v3::Node;
use api_protos::pb::google::protobuf::{Struct, Value, value::Kind};

pub const ROLE_KEY: &str = "ROLE";
pub const LABELS_KEY: &str = "LABELS";
pub const NAMESPACE_KEY: &str = "NAMESPACE";
pub const OUTBOUND_BIND_KEY: &str = "OUTBOUND_BIND";
pub const DEFAULT_NAMESPACE: &str = "default";
/// The port of a captured sidecar's virtual outbound listener, where iptables redirects the workload's outbound
/// TCP (Istio's).
pub const VIRTUAL_OUTBOUND_PORT: u16 = 15001;
/// Where a captured sidecar answers its readiness probe (`GET /healthz/ready`), as istio-proxy does.
pub const READINESS_PORT: u16 = 15021;
/// Where a captured sidecar serves Envoy's Prometheus stats (`GET /stats/prometheus`), as istio-proxy does.
pub const PROMETHEUS_PORT: u16 = 15090;

/// What a proxy does: serve traffic entering the mesh, or the outbound traffic of one workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Gateway,
    Sidecar,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_lowercase().as_str() {
            "gateway" | "router" => Some(Role::Gateway),
            "sidecar" => Some(Role::Sidecar),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Sidecar => "sidecar",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity that decides a proxy's configuration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProxyClass {
    pub role: Role,
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
    /// Address outbound listeners bind when the proxy has no traffic capture (sidecars only).
    pub outbound_bind: Option<String>,
}

impl ProxyClass {
    pub fn new(role: Role) -> ProxyClass {
        ProxyClass { role, labels: BTreeMap::new(), namespace: DEFAULT_NAMESPACE.to_owned(), outbound_bind: None }
    }

    /// Reads the class of a proxy from its node, with sidecar in the default namespace where nothing says otherwise.
    pub fn from_node(node: &Node) -> ProxyClass {
        let metadata = node.metadata.as_ref();
        let id = IstioNodeId::parse(&node.id);
        let role = metadata
            .and_then(|m| string_field(m, ROLE_KEY))
            .and_then(Role::parse)
            .or(id.as_ref().map(|id| id.role))
            .unwrap_or(Role::Sidecar);
        let namespace = metadata
            .and_then(|m| string_field(m, NAMESPACE_KEY))
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned)
            .or(id.and_then(|id| id.namespace))
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let labels = metadata.map(labels_field).unwrap_or_default();
        let outbound_bind =
            metadata.and_then(|m| string_field(m, OUTBOUND_BIND_KEY)).filter(|a| !a.is_empty()).map(str::to_owned);
        ProxyClass { role, labels, namespace, outbound_bind }
    }
}

impl fmt::Display for ProxyClass {
    /// `gateway/istio-system{istio=ingressgateway}`: short enough for a status table.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.namespace)?;
        if !self.labels.is_empty() {
            let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            write!(f, "{{{}}}", labels.join(","))?;
        }
        if let Some(bind) = &self.outbound_bind {
            write!(f, "@{bind}")?;
        }
        Ok(())
    }
}

/// Which proxy classes something is for: every field that is set must match (labels: a subset of the class's).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySelector {
    pub role: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub namespace: Option<String>,
}

impl ProxySelector {
    /// The selector that picks every class.
    pub fn all() -> ProxySelector {
        ProxySelector::default()
    }

    pub fn matches(&self, class: &ProxyClass) -> bool {
        self.role.as_deref().is_none_or(|role| Role::parse(role) == Some(class.role))
            && self.namespace.as_deref().is_none_or(|namespace| namespace == class.namespace)
            && self.labels.iter().all(|(k, v)| class.labels.get(k) == Some(v))
    }
}

/// The parts of an Istio node id (`type~ip~pod.namespace~domain`) that decide a class.
struct IstioNodeId {
    role: Role,
    namespace: Option<String>,
}

impl IstioNodeId {
    fn parse(id: &str) -> Option<IstioNodeId> {
        let mut parts = id.split('~');
        let role = Role::parse(parts.next()?)?;
        let _ip = parts.next()?;
        let namespace =
            parts.next().and_then(|pod| pod.rsplit_once('.')).map(|(_, ns)| ns.to_owned()).filter(|ns| !ns.is_empty());
        Some(IstioNodeId { role, namespace })
    }
}

fn string_field<'a>(metadata: &'a Struct, key: &str) -> Option<&'a str> {
    match metadata.fields.get(key)?.kind.as_ref()? {
        Kind::StringValue(s) => Some(s.as_str()),
        _ => None,
    }
}

fn labels_field(metadata: &Struct) -> BTreeMap<String, String> {
    let Some(Value { kind: Some(Kind::StructValue(labels)) }) = metadata.fields.get(LABELS_KEY) else {
        return BTreeMap::new();
    };
    labels
        .fields
        .iter()
        .filter_map(|(k, v)| match &v.kind {
            Some(Kind::StringValue(s)) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn string(s: &str) -> Value {
        Value { kind: Some(Kind::StringValue(s.to_owned())) }
    }

    fn node(id: &str, fields: &[(&str, Value)]) -> Node {
        let fields: BTreeMap<String, Value> = fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Node { id: id.to_owned(), metadata: Some(Struct { fields }), ..Default::default() }
    }

    #[test]
    fn reads_role_labels_namespace_from_metadata() {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("istio".to_owned(), string("ingressgateway"))].into_iter().collect(),
            })),
        };
        let class = ProxyClass::from_node(&node(
            "gw-1",
            &[(ROLE_KEY, string("gateway")), (NAMESPACE_KEY, string("istio-system")), (LABELS_KEY, labels)],
        ));
        assert_eq!(class.role, Role::Gateway);
        assert_eq!(class.namespace, "istio-system");
        assert_eq!(class.labels.get("istio").map(String::as_str), Some("ingressgateway"));
        assert_eq!(class.to_string(), "gateway/istio-system{istio=ingressgateway}");
    }

    #[test]
    fn understands_istio_node_ids() {
        let gateway = ProxyClass::from_node(&node(
            "router~10.0.0.1~ingress-abc.istio-system~istio-system.svc.cluster.local",
            &[],
        ));
        assert_eq!((gateway.role, gateway.namespace.as_str()), (Role::Gateway, "istio-system"));
        let sidecar =
            ProxyClass::from_node(&node("sidecar~10.0.0.2~reviews-v1-xyz.bookinfo~bookinfo.svc.cluster.local", &[]));
        assert_eq!((sidecar.role, sidecar.namespace.as_str()), (Role::Sidecar, "bookinfo"));
    }

    #[test]
    fn metadata_wins_over_the_node_id() {
        let class = ProxyClass::from_node(&node(
            "router~1.2.3.4~gw.a~a.svc",
            &[(ROLE_KEY, string("sidecar")), (NAMESPACE_KEY, string("b"))],
        ));
        assert_eq!((class.role, class.namespace.as_str()), (Role::Sidecar, "b"));
    }

    #[test]
    fn a_bare_node_is_a_sidecar_in_the_default_namespace() {
        let class = ProxyClass::from_node(&Node { id: "plain".into(), ..Default::default() });
        assert_eq!(class, ProxyClass::new(Role::Sidecar));
    }

    #[test]
    fn selectors_match_role_namespace_and_a_subset_of_labels() {
        let mut gateway = ProxyClass::new(Role::Gateway);
        gateway.labels.insert("istio".into(), "ingressgateway".into());
        gateway.labels.insert("extra".into(), "x".into());
        assert!(ProxySelector::all().matches(&gateway));
        let by_labels = ProxySelector {
            labels: [("istio".to_owned(), "ingressgateway".to_owned())].into_iter().collect(),
            ..ProxySelector::default()
        };
        assert!(by_labels.matches(&gateway));
        assert!(!by_labels.matches(&ProxyClass::new(Role::Sidecar)));
        let by_role = ProxySelector { role: Some("sidecar".into()), ..ProxySelector::default() };
        assert!(!by_role.matches(&gateway));
        let by_namespace = ProxySelector { namespace: Some("default".into()), ..ProxySelector::default() };
        assert!(by_namespace.matches(&gateway));
    }

    #[test]
    fn outbound_bind_is_part_of_the_class() {
        let with_bind = ProxyClass::from_node(&node("a", &[(OUTBOUND_BIND_KEY, string("127.0.0.2"))]));
        assert_eq!(with_bind.outbound_bind.as_deref(), Some("127.0.0.2"));
        assert_ne!(with_bind, ProxyClass::new(Role::Sidecar));
    }
}
