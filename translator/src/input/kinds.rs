//! Which kinds pilotfish reads, which it knows and leaves alone, and what it says about the rest.
//!
//! | kinds | what happens |
//! |---|---|
//! | Gateway, VirtualService, DestinationRule, ServiceEntry (networking.istio.io v1, v1beta1, v1alpha3); Service, Pod (v1); EndpointSlice (discovery.k8s.io/v1) | read and translated |
//! | `List` and `<Kind>List` | their items are read |
//! | Kubernetes kinds translation does not need (Deployment, ServiceAccount, ConfigMap, …) | left alone, silently: they belong beside the config |
//! | AuthorizationPolicy, PeerAuthentication, RequestAuthentication | an **error**: the policy is not enforced, so what it closes stays open |
//! | other Istio kinds (Sidecar, EnvoyFilter, Telemetry, …) and the Gateway API | a warning: not translated |
//! | an unknown kind of a known API group (`VirtualSerivce`) | an error, with the closest kind |
//! | a kind of an API group pilotfish does not know | a warning |

use crate::input::Kind;
use crate::input::fields::closest;

pub const ISTIO_NETWORKING: &str = "networking.istio.io";
pub const ISTIO_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// What reading does with a document of some apiVersion and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Classification {
    /// Read into an input of this kind.
    Read(Kind),
    /// A list: its `items` are read.
    List,
    /// A Kubernetes kind translation does not need: left alone.
    Ignored,
    /// A kind pilotfish knows of and does not translate. `security` is true for security policy: leaving it out
    /// opens what it closes.
    NotTranslated { security: bool, note: &'static str },
    /// An Istio kind at a version Istio does not serve.
    UnsupportedVersion,
    /// A kind its API group does not have; the closest one it has, or the group a kind of this name belongs to.
    Unknown { known_group: bool, suggestion: Option<String> },
}

/// Kinds of API groups pilotfish knows: `(group, kinds)`; `""` is the core group.
const KNOWN: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "Service",
            "Pod",
            "Namespace",
            "ConfigMap",
            "Secret",
            "ServiceAccount",
            "Endpoints",
            "PersistentVolumeClaim",
            "PersistentVolume",
            "ReplicationController",
            "LimitRange",
            "ResourceQuota",
            "Node",
            "Event",
            "PodTemplate",
        ],
    ),
    ("apps", &["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ControllerRevision"]),
    ("batch", &["Job", "CronJob"]),
    ("autoscaling", &["HorizontalPodAutoscaler"]),
    ("policy", &["PodDisruptionBudget"]),
    ("rbac.authorization.k8s.io", &["Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]),
    ("networking.k8s.io", &["NetworkPolicy", "Ingress", "IngressClass"]),
    ("discovery.k8s.io", &["EndpointSlice"]),
    ("apiextensions.k8s.io", &["CustomResourceDefinition"]),
    (
        "admissionregistration.k8s.io",
        &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        ],
    ),
    ("storage.k8s.io", &["StorageClass", "CSIDriver", "CSINode", "VolumeAttachment"]),
    ("scheduling.k8s.io", &["PriorityClass"]),
    ("coordination.k8s.io", &["Lease"]),
    ("node.k8s.io", &["RuntimeClass"]),
    ("events.k8s.io", &["Event"]),
    ("certificates.k8s.io", &["CertificateSigningRequest"]),
    ("kustomize.config.k8s.io", &["Kustomization"]),
    (
        ISTIO_NETWORKING,
        &[
            "Gateway",
            "VirtualService",
            "DestinationRule",
            "ServiceEntry",
            "Sidecar",
            "EnvoyFilter",
            "WorkloadEntry",
            "WorkloadGroup",
            "ProxyConfig",
        ],
    ),
    ("security.istio.io", &["AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"]),
    ("telemetry.istio.io", &["Telemetry"]),
    ("extensions.istio.io", &["WasmPlugin"]),
    (
        "gateway.networking.k8s.io",
        &[
            "Gateway",
            "GatewayClass",
            "HTTPRoute",
            "GRPCRoute",
            "TLSRoute",
            "TCPRoute",
            "UDPRoute",
            "ReferenceGrant",
            "BackendTLSPolicy",
            "ListenerSet",
        ],
    ),
];

/// Decides what to do with a document of `api_version` and `kind`.
pub fn classify(api_version: &str, kind: &str) -> Classification {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if kind == "List" || kind.strip_suffix("List").is_some_and(|item| kinds_of(group).contains(&item)) {
        return Classification::List;
    }
    let Some(kinds) = KNOWN.iter().find(|(g, _)| *g == group).map(|(_, kinds)| *kinds) else {
        return Classification::Unknown { known_group: false, suggestion: home_of(kind) };
    };
    if !kinds.contains(&kind) {
        let suggestion = home_of(kind).or_else(|| closest(kind, kinds.iter().copied()).map(str::to_owned));
        return Classification::Unknown { known_group: true, suggestion };
    }
    match (group, kind) {
        (ISTIO_NETWORKING, _) if !ISTIO_VERSIONS.contains(&version) => Classification::UnsupportedVersion,
        (ISTIO_NETWORKING, "Gateway") => Classification::Read(Kind::Gateway),
        (ISTIO_NETWORKING, "VirtualService") => Classification::Read(Kind::VirtualService),
        (ISTIO_NETWORKING, "DestinationRule") => Classification::Read(Kind::DestinationRule),
        (ISTIO_NETWORKING, "ServiceEntry") => Classification::Read(Kind::ServiceEntry),
        ("", "Service") if version == "v1" => Classification::Read(Kind::Service),
        ("", "Pod") if version == "v1" => Classification::Read(Kind::Pod),
        ("discovery.k8s.io", "EndpointSlice") if version == "v1" => Classification::Read(Kind::EndpointSlice),
        ("security.istio.io", "AuthorizationPolicy") => Classification::NotTranslated {
            security: true,
            note: "pilotfish does not enforce authorization yet: this policy is NOT applied, so requests it would \
                   deny are let through",
        },
        ("security.istio.io", "PeerAuthentication") => Classification::NotTranslated {
            security: true,
            note: "pilotfish does not serve mutual TLS yet: this policy is NOT applied, so plaintext traffic it \
                   would refuse is accepted",
        },
        ("security.istio.io", "RequestAuthentication") => Classification::NotTranslated {
            security: true,
            note: "pilotfish does not validate JWTs yet: this policy is NOT applied, so requests with invalid tokens \
                   are let through",
        },
        (ISTIO_NETWORKING | "telemetry.istio.io" | "extensions.istio.io", _) => Classification::NotTranslated {
            security: false,
            note: "pilotfish does not translate this kind; it is ignored",
        },
        ("gateway.networking.k8s.io", _) => Classification::NotTranslated {
            security: false,
            note: "pilotfish does not read the Kubernetes Gateway API; use Istio's Gateway and VirtualService",
        },
        _ => Classification::Ignored,
    }
}

fn kinds_of(group: &str) -> &'static [&'static str] {
    KNOWN.iter().find(|(g, _)| *g == group).map(|(_, kinds)| *kinds).unwrap_or_default()
}

/// `apiVersion` to use for a kind of this exact name, when one group has it (`VirtualService` →
/// `networking.istio.io/v1`).
fn home_of(kind: &str) -> Option<String> {
    let homes: Vec<&str> = KNOWN.iter().filter(|(_, kinds)| kinds.contains(&kind)).map(|(g, _)| *g).collect();
    match homes.as_slice() {
        [""] => Some(format!("{kind} (apiVersion v1)")),
        [group] if *group == ISTIO_NETWORKING => Some(format!("{kind} (apiVersion {group}/v1)")),
        [group] => Some(format!("{kind} (apiVersion {group}/…)")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kinds_it_translates_at_every_istio_version() {
        for version in ISTIO_VERSIONS {
            assert_eq!(
                classify(&format!("networking.istio.io/{version}"), "VirtualService"),
                Classification::Read(Kind::VirtualService)
            );
        }
        assert_eq!(classify("v1", "Service"), Classification::Read(Kind::Service));
        assert_eq!(classify("discovery.k8s.io/v1", "EndpointSlice"), Classification::Read(Kind::EndpointSlice));
        assert_eq!(classify("networking.istio.io/v2", "VirtualService"), Classification::UnsupportedVersion);
    }

    #[test]
    fn names_the_kind_a_typo_meant() {
        assert_eq!(
            classify("networking.istio.io/v1", "VirtualSerivce"),
            Classification::Unknown { known_group: true, suggestion: Some("VirtualService".to_owned()) }
        );
        assert_eq!(
            classify("v1", "VirtualService"),
            Classification::Unknown {
                known_group: true,
                suggestion: Some("VirtualService (apiVersion networking.istio.io/v1)".to_owned())
            }
        );
        assert!(matches!(
            classify("cert-manager.io/v1", "Certificate"),
            Classification::Unknown { known_group: false, .. }
        ));
    }

    #[test]
    fn security_policy_is_flagged_and_workloads_are_left_alone() {
        assert!(matches!(
            classify("security.istio.io/v1", "AuthorizationPolicy"),
            Classification::NotTranslated { security: true, .. }
        ));
        assert!(matches!(
            classify("networking.istio.io/v1alpha3", "EnvoyFilter"),
            Classification::NotTranslated { security: false, .. }
        ));
        assert!(matches!(
            classify("gateway.networking.k8s.io/v1", "HTTPRoute"),
            Classification::NotTranslated { security: false, .. }
        ));
        assert_eq!(classify("apps/v1", "Deployment"), Classification::Ignored);
        assert_eq!(classify("v1", "List"), Classification::List);
        assert_eq!(classify("networking.istio.io/v1", "VirtualServiceList"), Classification::List);
    }
}
