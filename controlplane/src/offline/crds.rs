//! CustomResourceDefinitions for the four Istio kinds pilotfish reads, for clusters without Istio.
//!
//! Each kind is served as `networking.istio.io/v1`, `v1beta1` and `v1alpha3` (all field-identical, as in Istio;
//! `v1` is stored), with a minimal structural schema that keeps every field of `spec` and `status`: pilotfish
//! validates objects itself and reports problems as diagnostics, so the apiserver need not know the fields. Names,
//! short names and categories are Istio's, so `kubectl get vs` works as Istio users expect.

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
    CustomResourceDefinitionVersion, CustomResourceSubresourceStatus, CustomResourceSubresources,
    CustomResourceValidation, JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The API group of the Istio kinds.
pub const GROUP: &str = "networking.istio.io";

/// The versions served, most preferred first; the first is the storage version.
pub const VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// One Istio kind as the apiserver names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IstioKind {
    pub kind: &'static str,
    pub plural: &'static str,
    pub short_name: &'static str,
}

/// The Istio kinds pilotfish reads.
pub const ISTIO_KINDS: [IstioKind; 4] = [
    IstioKind { kind: "Gateway", plural: "gateways", short_name: "gw" },
    IstioKind { kind: "VirtualService", plural: "virtualservices", short_name: "vs" },
    IstioKind { kind: "DestinationRule", plural: "destinationrules", short_name: "dr" },
    IstioKind { kind: "ServiceEntry", plural: "serviceentries", short_name: "se" },
];

/// The CustomResourceDefinitions, in the order of [`ISTIO_KINDS`].
pub fn definitions() -> Vec<CustomResourceDefinition> {
    ISTIO_KINDS.iter().map(definition).collect()
}

/// The definitions as a multi-document YAML stream, for `kubectl apply -f -`.
pub fn yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in definitions() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

fn definition(kind: &IstioKind) -> CustomResourceDefinition {
    let open_object = || JSONSchemaProps {
        type_: Some("object".to_owned()),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..JSONSchemaProps::default()
    };
    let schema = JSONSchemaProps {
        type_: Some("object".to_owned()),
        properties: Some(BTreeMap::from([("spec".to_owned(), open_object()), ("status".to_owned(), open_object())])),
        ..JSONSchemaProps::default()
    };
    let versions = VERSIONS
        .iter()
        .enumerate()
        .map(|(index, version)| CustomResourceDefinitionVersion {
            name: (*version).to_owned(),
            served: true,
            storage: index == 0,
            schema: Some(CustomResourceValidation { open_api_v3_schema: Some(schema.clone()) }),
            subresources: Some(CustomResourceSubresources {
                status: Some(CustomResourceSubresourceStatus(serde_json::Value::Object(Default::default()))),
                ..CustomResourceSubresources::default()
            }),
            ..CustomResourceDefinitionVersion::default()
        })
        .collect();
    CustomResourceDefinition {
        metadata: ObjectMeta { name: Some(format!("{}.{GROUP}", kind.plural)), ..ObjectMeta::default() },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: kind.kind.to_owned(),
                list_kind: Some(format!("{}List", kind.kind)),
                plural: kind.plural.to_owned(),
                singular: Some(kind.kind.to_lowercase()),
                short_names: Some(vec![kind.short_name.to_owned()]),
                categories: Some(vec!["istio-io".to_owned(), "networking-istio-io".to_owned()]),
            },
            scope: "Namespaced".to_owned(),
            versions,
            ..CustomResourceDefinitionSpec::default()
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_serves_three_versions_and_stores_v1() {
        let crds = definitions();
        assert_eq!(crds.len(), 4);
        for crd in &crds {
            let served: Vec<&str> = crd.spec.versions.iter().filter(|v| v.served).map(|v| v.name.as_str()).collect();
            assert_eq!(served, ["v1", "v1beta1", "v1alpha3"]);
            let stored: Vec<&str> = crd.spec.versions.iter().filter(|v| v.storage).map(|v| v.name.as_str()).collect();
            assert_eq!(stored, ["v1"]);
            assert_eq!(crd.spec.scope, "Namespaced");
        }
        assert_eq!(crds[1].metadata.name.as_deref(), Some("virtualservices.networking.istio.io"));
    }

    #[test]
    fn the_yaml_reads_back_as_four_crds_with_open_schemas() {
        let text = yaml().expect("serializes");
        let documents: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
            .collect();
        assert_eq!(documents.len(), 4);
        for document in &documents {
            assert_eq!(document["apiVersion"], "apiextensions.k8s.io/v1");
            assert_eq!(document["kind"], "CustomResourceDefinition");
            let schema = &document["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
            assert_eq!(schema["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"], true);
        }
    }
}
