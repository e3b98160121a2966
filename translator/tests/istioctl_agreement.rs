//! How far `pilotfish analyze` agrees with `istioctl analyze`, measured on the test cases of Istio's own analyzers.
//!
//! Istio tests each analyzer with input files and the messages it must report (`pkg/config/analysis/analyzers/
//! analyzers_test.go` in istio/istio); the inputs are copied in `testdata/istioctl/`. The cases here are every one
//! of them whose analyzer can report a code pilotfish reports too (IST0101, IST0109, IST0112, IST0130, IST0131,
//! IST0132, IST0145, IST0162, IST0165, IST0173, IST0174). Each case goes through what `pilotfish analyze` runs: the
//! document reader, the Translator, and the translation of every representative proxy class. Of what pilotfish
//! reports, the messages the case's analyzer could have reported are compared with Istio's expectation as
//! (code, severity, object) multisets: a case agrees when they are equal. Precision and recall count messages.
//!
//! The test fails when fewer than nine cases in ten agree, or when the cases that differ are not exactly those
//! `docs/analyze-vs-istioctl.md` explains (listed in [`KNOWN_DIFFERENCES`]).

use std::collections::BTreeMap;
use std::path::Path;

use translator::{Diagnostic, LastValid, Severity, Translator};

/// The Istio analyzer a case tests, which decides which of pilotfish's messages are comparable with it.
#[derive(Clone, Copy, Debug)]
enum Analyzer {
    /// `gateway.IngressGatewayPortAnalyzer`: selector matches no workload (IST0101), port not on the Service (IST0162).
    IngressGatewayPort,
    /// `gateway.SecretAnalyzer`: selector matches no workload, `credentialName` secret missing (IST0101).
    GatewaySecret,
    /// `gateway.ConflictingGatewayAnalyzer`: IST0145, and IST0101 for a selector nothing has.
    ConflictingGateway,
    /// `sidecar.SelectorAnalyzer`: IST0101 for a Sidecar's workload selector.
    SidecarSelector,
    /// `telemetry.SelectorAnalyzer`: IST0101 for a Telemetry's selector.
    TelemetrySelector,
    /// `auth.AuthorizationPoliciesAnalyzer`: IST0101 for a namespace a policy names.
    AuthorizationPolicies,
    /// `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: IST0109.
    ConflictingMeshGatewayHosts,
    /// `virtualservice.DestinationHostAnalyzer`: destination host or port not found (IST0101), IST0112.
    DestinationHost,
    /// `virtualservice.DestinationRuleAnalyzer`: destination subset not found (IST0101).
    DestinationRuleSubsets,
    /// `virtualservice.GatewayAnalyzer`: gateway not found (IST0101), IST0132, IST0165.
    VirtualServiceGateways,
    /// `schema.ValidationAnalyzer.VirtualService`: IST0130, IST0131.
    VirtualServiceSchema,
    /// `destinationrule.PodNotSelectedAnalyzer`: IST0173, IST0174.
    PodNotSelected,
}

impl Analyzer {
    /// Whether `diagnostic` is one this analyzer could have reported.
    fn covers(self, diagnostic: &Diagnostic) -> bool {
        let Some(code) = diagnostic.code else { return false };
        let kind = diagnostic.object.as_ref().map(|o| o.kind.to_string()).unwrap_or_default();
        let field = diagnostic.field.as_str();
        let gateway_selector = kind == "Gateway" && field.starts_with("spec.selector");
        let destination = kind == "VirtualService"
            && ["spec.http", "spec.tcp", "spec.tls"].iter().any(|routes| field.starts_with(routes));
        match (self, code) {
            (Analyzer::IngressGatewayPort, "IST0101") => gateway_selector,
            (Analyzer::IngressGatewayPort, "IST0162") => true,
            (Analyzer::GatewaySecret, "IST0101") => gateway_selector || field.ends_with("credentialName"),
            (Analyzer::ConflictingGateway, "IST0101") => gateway_selector,
            (Analyzer::ConflictingGateway, "IST0145") => true,
            (Analyzer::SidecarSelector, "IST0101") => kind == "Sidecar",
            (Analyzer::TelemetrySelector, "IST0101") => kind == "Telemetry",
            (Analyzer::AuthorizationPolicies, "IST0101") => kind == "AuthorizationPolicy",
            (Analyzer::ConflictingMeshGatewayHosts, "IST0109") => true,
            (Analyzer::DestinationHost, "IST0101") => destination && !field.ends_with(".subset"),
            (Analyzer::DestinationHost, "IST0112") => true,
            (Analyzer::DestinationRuleSubsets, "IST0101") => destination && field.ends_with(".subset"),
            (Analyzer::VirtualServiceGateways, "IST0101") => {
                kind == "VirtualService" && field.starts_with("spec.gateways")
            }
            (Analyzer::VirtualServiceGateways, "IST0132" | "IST0165") => true,
            (Analyzer::VirtualServiceSchema, "IST0130" | "IST0131") => true,
            (Analyzer::PodNotSelected, "IST0173" | "IST0174") => true,
            _ => false,
        }
    }
}

/// One test case of Istio's analyzers: its name there, its input files, and the messages it expects as
/// `(code, "Kind namespace/name")` (`default` where the input gives no namespace, as `istioctl analyze` reads files).
struct Case {
    name: &'static str,
    files: &'static [&'static str],
    analyzer: Analyzer,
    expected: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "gatewayNoWorkload",
        files: &["gateway-no-workload.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[("IST0101", "Gateway default/httpbin-gateway")],
    },
    Case {
        name: "gatewayBadPort",
        files: &["gateway-no-port.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[("IST0162", "Gateway default/httpbin-gateway")],
    },
    Case {
        name: "gatewayCorrectPort",
        files: &["gateway-correct-port.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[],
    },
    Case {
        name: "gatewayCustomIngressGateway",
        files: &["gateway-custom-ingressgateway.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[],
    },
    Case {
        name: "gatewayCustomIngressGatewayBadPort",
        files: &["gateway-custom-ingressgateway-badport.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[("IST0162", "Gateway default/httpbin-gateway")],
    },
    Case {
        name: "gatewayCustomIngressGatewayBadPortWithoutTarget",
        files: &["gateway-custom-ingressgateway-badport-notarget.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[("IST0162", "Gateway default/httpbin-gateway")],
    },
    Case {
        name: "gatewayCustomIngressGatewayTranslation",
        files: &["gateway-custom-ingressgateway-translation.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[],
    },
    Case {
        name: "gatewayServiceMatchPod",
        files: &["gateway-custom-ingressgateway-svcselector.yaml"],
        analyzer: Analyzer::IngressGatewayPort,
        expected: &[("IST0162", "Gateway default/httpbin8002-gateway")],
    },
    Case {
        name: "gatewaySecret",
        files: &["gateway-secrets.yaml"],
        analyzer: Analyzer::GatewaySecret,
        expected: &[
            ("IST0101", "Gateway default/defaultgateway-bogusCredentialName"),
            ("IST0101", "Gateway default/customgateway-wrongnamespace"),
            ("IST0101", "Gateway default/bogusgateway"),
        ],
    },
    Case {
        name: "gatewaySecretValidations",
        files: &["gateway-secrets-validation.yaml"],
        analyzer: Analyzer::GatewaySecret,
        expected: &[],
    },
    Case {
        name: "conflicting gateways detect",
        files: &["conflicting-gateways.yaml"],
        analyzer: Analyzer::ConflictingGateway,
        expected: &[("IST0145", "Gateway default/alpha"), ("IST0145", "Gateway default/beta")],
    },
    Case {
        name: "gateways with different port are non-conflicting",
        files: &["gateway-different-port.yaml"],
        analyzer: Analyzer::ConflictingGateway,
        expected: &[],
    },
    Case {
        name: "conflicting gateways with multiple port declarations",
        files: &["conflicting-gateways-multiple-ports.yaml"],
        analyzer: Analyzer::ConflictingGateway,
        expected: &[("IST0145", "Gateway default/alpha"), ("IST0145", "Gateway default/beta")],
    },
    Case {
        name: "conflicting gateways detect by sub selector",
        files: &["conflicting-gateways-subSelector.yaml"],
        analyzer: Analyzer::ConflictingGateway,
        expected: &[("IST0145", "Gateway default/alpha"), ("IST0145", "Gateway default/beta")],
    },
    Case {
        name: "conflicting gateways detect: no port",
        files: &["conflicting-gateways-invalid-port.yaml"],
        analyzer: Analyzer::ConflictingGateway,
        expected: &[],
    },
    Case {
        name: "sidecarDefaultSelector",
        files: &["sidecar-default-selector.yaml"],
        analyzer: Analyzer::SidecarSelector,
        expected: &[],
    },
    Case {
        name: "sidecarSelector",
        files: &["sidecar-selector.yaml"],
        analyzer: Analyzer::SidecarSelector,
        expected: &[
            ("IST0101", "Sidecar default/maps-to-nonexistent"),
            ("IST0101", "Sidecar other/maps-to-different-ns"),
        ],
    },
    Case {
        name: "virtualServiceConflictingMeshGatewayHosts",
        files: &["virtualservice_conflictingmeshgatewayhosts.yaml"],
        analyzer: Analyzer::ConflictingMeshGatewayHosts,
        expected: &[
            ("IST0109", "VirtualService team3/ratings"),
            ("IST0109", "VirtualService team4/ratings"),
            ("IST0109", "VirtualService foo/ratings"),
            ("IST0109", "VirtualService bar/ratings"),
            ("IST0109", "VirtualService foo/productpage"),
            ("IST0109", "VirtualService foo/bogus-productpage"),
            ("IST0109", "VirtualService team2/ratings"),
        ],
    },
    Case {
        name: "virtualServiceConflictingMeshGatewayHostsWithExportTo",
        files: &["virtualservice_conflictingmeshgatewayhosts_with_exportto.yaml"],
        analyzer: Analyzer::ConflictingMeshGatewayHosts,
        expected: &[
            ("IST0109", "VirtualService foo/productpage"),
            ("IST0109", "VirtualService bar/productpage"),
            ("IST0109", "VirtualService foo/productpage-c"),
            ("IST0109", "VirtualService bar/productpage-c"),
            ("IST0109", "VirtualService foo/productpage-d"),
            ("IST0109", "VirtualService bar/productpage-d"),
        ],
    },
    Case {
        name: "virtualServiceDestinationHosts",
        files: &["virtualservice_destinationhosts.yaml"],
        analyzer: Analyzer::DestinationHost,
        expected: &[
            ("IST0101", "VirtualService default/reviews-bogushost"),
            ("IST0101", "VirtualService default/reviews-bogushost"),
            ("IST0101", "VirtualService default/reviews-bookinfo-other"),
            ("IST0101", "VirtualService default/reviews-mirror-bogushost"),
            ("IST0101", "VirtualService default/reviews-bogusport"),
            ("IST0112", "VirtualService default/reviews-2port-missing"),
            ("IST0101", "VirtualService istio-system/cross-namespace-details"),
            ("IST0101", "VirtualService hello/hello-export-to-bogus"),
        ],
    },
    Case {
        name: "virtualServiceDestinationRules",
        files: &["virtualservice_destinationrules.yaml"],
        analyzer: Analyzer::DestinationRuleSubsets,
        expected: &[
            ("IST0101", "VirtualService default/reviews-bogussubset"),
            ("IST0101", "VirtualService default/reviews-mirror-bogussubset"),
        ],
    },
    Case {
        name: "virtualServiceGateways",
        files: &["virtualservice_gateways.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: &[
            ("IST0101", "VirtualService default/httpbin-bogus"),
            ("IST0132", "VirtualService default/cross-test"),
            ("IST0132", "VirtualService default/httpbin-bogus"),
            ("IST0132", "VirtualService default/httpbin"),
        ],
    },
    Case {
        name: "virtualServiceKubernetesGateways",
        files: &["virtualservice_kubernetes_gateways.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: &[("IST0132", "VirtualService default/my-vs-host-mismatch")],
    },
    Case {
        name: "virtualServiceInternalGatewayRef",
        files: &["virtualservice_internal_gateway_ref.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: &[("IST0165", "VirtualService default/httpbin")],
    },
    Case {
        name: "authorizationpolicies",
        files: &["authorizationpolicies.yaml"],
        analyzer: Analyzer::AuthorizationPolicies,
        expected: &[
            ("IST0101", "AuthorizationPolicy httpbin/httpbin-bogus-ns"),
            ("IST0101", "AuthorizationPolicy httpbin/httpbin-bogus-ns"),
            ("IST0101", "AuthorizationPolicy httpbin/httpbin-bogus-not-ns"),
            ("IST0101", "AuthorizationPolicy httpbin/httpbin-bogus-not-ns"),
        ],
    },
    Case {
        name: "dupmatches",
        files: &["virtualservice_dupmatches.yaml", "virtualservice_overlappingmatches.yaml"],
        analyzer: Analyzer::VirtualServiceSchema,
        expected: &[
            ("IST0130", "VirtualService default/duplicate-match"),
            ("IST0130", "VirtualService foo/sample-foo-cluster01"),
            ("IST0131", "VirtualService default/almost-duplicate-match"),
            ("IST0131", "VirtualService default/duplicate-match"),
            ("IST0130", "VirtualService default/duplicate-tcp-match"),
            ("IST0130", "VirtualService default/duplicate-empty-tcp"),
            ("IST0131", "VirtualService default/almost-duplicate-tcp-match"),
            ("IST0131", "VirtualService default/duplicate-tcp-match"),
            ("IST0130", "VirtualService none/tls-routing"),
            ("IST0131", "VirtualService none/tls-routing-almostmatch"),
            ("IST0131", "VirtualService none/tls-routing"),
            ("IST0131", "VirtualService default/non-method-get"),
            ("IST0131", "VirtualService default/overlapping-in-single-match"),
            ("IST0131", "VirtualService default/overlapping-in-two-matches"),
            ("IST0131", "VirtualService default/overlapping-mathes-with-different-methods"),
        ],
    },
    Case {
        name: "host defined in virtualservice not found in the gateway",
        files: &["virtualservice_host_not_found_gateway.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: HOST_NOT_FOUND_IN_GATEWAY,
    },
    // Istio's `_beta` input of this case is byte-for-byte the same file.
    Case {
        name: "host defined in virtualservice not found in the gateway(beta version)",
        files: &["virtualservice_host_not_found_gateway.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: HOST_NOT_FOUND_IN_GATEWAY,
    },
    Case {
        name: "host defined in virtualservice not found in the gateway with ns",
        files: &["virtualservice_host_not_found_gateway_with_ns_prefix.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: &[("IST0132", "VirtualService default/testing-service-01-test-01")],
    },
    // As above: the `_beta` input is the same file.
    Case {
        name: "host defined in virtualservice not found in the gateway with ns(beta version)",
        files: &["virtualservice_host_not_found_gateway_with_ns_prefix.yaml"],
        analyzer: Analyzer::VirtualServiceGateways,
        expected: &[("IST0132", "VirtualService default/testing-service-01-test-01")],
    },
    Case {
        name: "Route Rule no effect on Ingress",
        files: &["virtualservice_route_rule_no_effects_ingress.yaml"],
        analyzer: Analyzer::DestinationHost,
        expected: &[],
    },
    Case {
        name: "Analyze conflicting gateway with list type",
        files: &["analyze-list-type.yaml"],
        analyzer: Analyzer::ConflictingGateway,
        expected: &[
            ("IST0145", "Gateway default/alpha"),
            ("IST0145", "Gateway default/alpha-l"),
            ("IST0145", "Gateway default/beta-l"),
        ],
    },
    Case {
        name: "telemetrySelector",
        files: &["telemetry-selector.yaml"],
        analyzer: Analyzer::TelemetrySelector,
        expected: &[
            ("IST0101", "Telemetry default/maps-to-nonexistent"),
            ("IST0101", "Telemetry other/maps-to-different-ns"),
        ],
    },
    Case {
        name: "DestinationRuleWithFakeHost",
        files: &["destinationrule-with-fake-host.yaml"],
        analyzer: Analyzer::PodNotSelected,
        expected: &[("IST0174", "DestinationRule default/fake-host")],
    },
    Case {
        name: "DestinationRuleSubsetsNotSelectPods",
        files: &["destinationrule-subsets-not-select-pods.yaml"],
        analyzer: Analyzer::PodNotSelected,
        expected: &[("IST0173", "DestinationRule default/subsets-not-select-pods")],
    },
    Case {
        name: "DestinationRuleSubsetsWithTopologyLabels",
        files: &["destinationrule-subsets-with-topology-labels.yaml"],
        analyzer: Analyzer::PodNotSelected,
        expected: &[],
    },
    Case {
        name: "DestinationRuleEmptyTopologyLabels",
        files: &["destinationrule-empty-topology-labels.yaml"],
        analyzer: Analyzer::PodNotSelected,
        expected: &[("IST0173", "DestinationRule default/empty-topology-labels")],
    },
];

const HOST_NOT_FOUND_IN_GATEWAY: &[(&str, &str)] = &[
    ("IST0132", "VirtualService default/testing-service-02-test-01"),
    ("IST0132", "VirtualService default/testing-service-02-test-02"),
    ("IST0132", "VirtualService default/testing-service-02-test-03"),
    ("IST0132", "VirtualService default/testing-service-03-test-04"),
];

/// The cases where pilotfish does not agree, each explained in `docs/analyze-vs-istioctl.md`.
const KNOWN_DIFFERENCES: &[&str] = &["gatewayBadPort"];

/// The level `istioctl analyze` gives each code (`pkg/config/analysis/msg/messages.yaml`).
fn istio_severity(code: &str) -> Severity {
    match code {
        "IST0130" | "IST0132" | "IST0162" | "IST0165" | "IST0174" => Severity::Warning,
        "IST0131" => Severity::Info,
        _ => Severity::Error,
    }
}

/// A message as the comparison sees it.
type Message = (String, Severity, String);

/// Every diagnostic `pilotfish analyze` reports for `files`: what reading them says, the Translator's diagnostics
/// and those of translating each representative proxy class.
fn analyze(files: &[&str]) -> Vec<Diagnostic> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/istioctl");
    let mut inputs = Vec::new();
    let mut ignored = Vec::new();
    let mut unreadable = Vec::new();
    let mut diagnostics = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(directory.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let read = translator::read(&text, file);
        inputs.extend(read.inputs);
        ignored.extend(read.ignored);
        unreadable.extend(read.unreadable);
        diagnostics.extend(read.diagnostics);
    }
    let translator = Translator::prepare(None, inputs, ignored, &unreadable, &mut LastValid::default());
    diagnostics.extend(translator.diagnostics().iter().cloned());
    for class in translator::analyze::representative_classes(translator.model()) {
        diagnostics.extend(translator.translate(&class).diagnostics);
    }
    translator::diagnostics::sorted(diagnostics)
}

/// How many messages two sorted multisets share.
fn shared(a: &[Message], b: &[Message]) -> usize {
    let mut counts: BTreeMap<&Message, usize> = BTreeMap::new();
    for message in a {
        *counts.entry(message).or_default() += 1;
    }
    b.iter()
        .filter(|message| match counts.get_mut(message) {
            Some(count) if *count > 0 => {
                *count -= 1;
                true
            }
            _ => false,
        })
        .count()
}

#[test]
fn analyze_agrees_with_istioctl_on_istios_analyzer_tests() {
    let (mut agreeing, mut reported, mut expected_total, mut matched) = (0, 0, 0, 0);
    let mut differing = Vec::new();
    let mut report = String::new();
    for case in CASES {
        let diagnostics = analyze(case.files);
        let mut actual: Vec<Message> = diagnostics
            .iter()
            .filter(|d| case.analyzer.covers(d))
            .map(|d| {
                let object = d.object.as_ref().map(ToString::to_string).unwrap_or_default();
                (d.code.unwrap_or_default().to_owned(), d.severity, object)
            })
            .collect();
        let mut expected: Vec<Message> = case
            .expected
            .iter()
            .map(|(code, object)| ((*code).to_owned(), istio_severity(code), (*object).to_owned()))
            .collect();
        actual.sort();
        expected.sort();
        let both = shared(&actual, &expected);
        reported += actual.len();
        expected_total += expected.len();
        matched += both;
        if actual == expected {
            agreeing += 1;
            report.push_str(&format!("agrees   {}\n", case.name));
        } else {
            differing.push(case.name);
            report.push_str(&format!("DIFFERS  {} ({:?})\n", case.name, case.analyzer));
            for message in expected.iter().filter(|m| !actual.contains(m)) {
                report.push_str(&format!("           istioctl only: {message:?}\n"));
            }
            for message in actual.iter().filter(|m| !expected.contains(m)) {
                report.push_str(&format!("           pilotfish only: {message:?}\n"));
            }
            for diagnostic in diagnostics.iter().filter(|d| case.analyzer.covers(d)) {
                report.push_str(&format!("           | {diagnostic}\n"));
            }
        }
    }
    let precision = if reported == 0 { 1.0 } else { matched as f64 / reported as f64 };
    let recall = if expected_total == 0 { 1.0 } else { matched as f64 / expected_total as f64 };
    let agreement = agreeing as f64 / CASES.len() as f64;
    println!("{report}");
    println!(
        "istioctl agreement: {agreeing} of {} cases ({agreement:.2}), precision {precision:.2} ({matched}/{reported}), \
         recall {recall:.2} ({matched}/{expected_total})",
        CASES.len()
    );
    assert!(agreement >= 0.9, "fewer than 9 in 10 of Istio's analyzer cases agree:\n{report}");
    assert_eq!(
        differing, KNOWN_DIFFERENCES,
        "the cases that differ are not those docs/analyze-vs-istioctl.md explains:\n{report}"
    );
}
