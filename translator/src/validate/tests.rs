use super::*;
use crate::input::read_yaml;

// === Helpers ===

/// Validates the objects of `yaml`, which must read without diagnostics.
fn run(yaml: &str) -> Validation {
    let (inputs, diagnostics) = read_yaml(yaml, "test.yaml");
    assert!(diagnostics.is_empty(), "reading: {diagnostics:?}");
    let (world, diagnostics) = World::new(inputs);
    assert!(diagnostics.is_empty(), "gathering: {diagnostics:?}");
    validate(&world)
}

/// One object of `kind` named `test` in `default`, with `spec` as block YAML (indented any way: see [`dedent`]).
fn object(kind: &str, spec: &str) -> String {
    let spec: String = dedent(spec).lines().map(|line| format!("  {line}\n")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: {kind}\nmetadata: {{name: test, namespace: default}}\nspec:\n{spec}"
    )
}

/// `text` without its common indentation, so YAML can be written indented inside a test.
fn dedent(text: &str) -> String {
    let indent = text.lines().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min();
    let indent = indent.unwrap_or(0);
    text.lines().map(|l| format!("{}\n", l.get(indent..).unwrap_or_default())).collect::<String>().trim().to_owned()
}

fn vs(spec: &str) -> Validation {
    run(&object("VirtualService", spec))
}

fn dr(spec: &str) -> Validation {
    run(&object("DestinationRule", spec))
}

fn gw(spec: &str) -> Validation {
    run(&object("Gateway", spec))
}

fn se(spec: &str) -> Validation {
    run(&object("ServiceEntry", spec))
}

/// A VirtualService for `reviews` whose single http route is `route` (block YAML of one `http[]` entry).
fn vs_route(route: &str) -> Validation {
    let route: String = dedent(route).lines().map(|line| format!("  {line}\n")).collect();
    vs(&format!("hosts: [reviews]\nhttp:\n- {}", route.trim_start()))
}

fn listing(validation: &Validation) -> String {
    validation.diagnostics.iter().map(|d| format!("  {d}\n")).collect()
}

#[track_caller]
fn find<'a>(validation: &'a Validation, severity: Severity, field: &str, fragment: &str) -> &'a Diagnostic {
    validation
        .diagnostics
        .iter()
        .find(|d| d.severity == severity && d.field == field && d.message.contains(fragment))
        .unwrap_or_else(|| {
            panic!("expected a {severity} at {field} containing {fragment:?}, got:\n{}", listing(validation))
        })
}

/// Asserts an error at `field` whose message contains `fragment`, and that its object is invalid.
#[track_caller]
fn error<'a>(validation: &'a Validation, field: &str, fragment: &str) -> &'a Diagnostic {
    let diagnostic = find(validation, Severity::Error, field, fragment);
    assert_eq!(diagnostic.code, Some("IST0106"));
    let object = diagnostic.object.as_ref().expect("object");
    assert!(validation.invalid.contains(object), "{object} should be invalid");
    diagnostic
}

/// Asserts a warning at `field` whose message contains `fragment`.
#[track_caller]
fn warning<'a>(validation: &'a Validation, field: &str, fragment: &str) -> &'a Diagnostic {
    find(validation, Severity::Warning, field, fragment)
}

#[track_caller]
fn no_errors(validation: &Validation) {
    let errors: Vec<_> = validation.diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "expected no errors, got:\n{}", listing(validation));
    assert!(validation.invalid.is_empty());
}

#[track_caller]
fn clean(validation: &Validation) {
    assert!(validation.diagnostics.is_empty(), "expected no diagnostics, got:\n{}", listing(validation));
    assert!(validation.invalid.is_empty());
}

#[track_caller]
fn error_count(validation: &Validation) -> usize {
    validation.diagnostics.iter().filter(|d| d.severity == Severity::Error).count()
}

// === Every kind ===

#[test]
fn diagnostics_name_the_object_its_source_and_the_field() {
    let validation = vs_route(
        r#"
        route:
        - destination: {host: reviews}
          weight: -5
        - destination: {host: reviews}
    "#,
    );
    let diagnostic = error(&validation, "spec.http[0].route[0].weight", "weight must be 0 or more, got -5");
    let object = diagnostic.object.as_ref().expect("object");
    assert_eq!(
        (object.kind, object.namespace.as_str(), object.name.as_str()),
        (Kind::VirtualService, "default", "test")
    );
    let source = diagnostic.source.as_ref().expect("source");
    assert_eq!(source.file.as_str(), "test.yaml");
    assert_eq!(
        diagnostic.to_string(),
        "error[IST0106] VirtualService default/test spec.http[0].route[0].weight: weight must be 0 or more, got -5 (at \
         test.yaml:9:7)"
    );
}

#[test]
fn an_error_invalidates_only_its_own_object() {
    let yaml = format!(
        "{}---\n{}",
        object(
            "VirtualService",
            r#"
            hosts: [reviews]
            http:
            - route: [{destination: {host: reviews}}]
        "#
        ),
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: broken}\nspec: {hosts: [ratings]}\n"
    );
    let validation = run(&yaml);
    let broken = ObjectRef { kind: Kind::VirtualService, namespace: "default".into(), name: "broken".into() };
    let fine = ObjectRef { kind: Kind::VirtualService, namespace: "default".into(), name: "test".into() };
    assert_eq!(validation.invalid, BTreeSet::from([broken.clone()]));
    assert!(!validation.is_valid(&broken));
    assert!(validation.is_valid(&fine));
}

#[test]
fn warnings_do_not_invalidate() {
    let validation = vs(r#"
        hosts: [reviews]
        exportTo: [other]
        tcp: [{route: [{destination: {host: reviews}}]}]
    "#);
    warning(&validation, "spec.tcp", "TCP routes are not translated yet");
    no_errors(&validation);
}

#[test]
fn export_to_a_namespace_warns_once_that_it_is_not_enforced() {
    let validation = vs(r#"
        hosts: [reviews]
        exportTo: [a, b]
        http:
        - route: [{destination: {host: reviews}}]
    "#);
    warning(&validation, "spec.exportTo", "exportTo is not enforced by pilotfish: the object is visible everywhere");
    assert_eq!(validation.diagnostics.len(), 1, "{}", listing(&validation));
    clean(&dr(r#"
        host: reviews
        exportTo: ['.']
    "#));
    clean(&dr(r#"
        host: reviews
        exportTo: ['*']
    "#));
}

#[test]
fn export_to_entries_must_be_namespaces_without_duplicates() {
    let validation = dr(r#"
        host: reviews
        exportTo: ['*', 'Not_A_Namespace', '*']
    "#);
    error(&validation, "spec.exportTo[1]", "\"Not_A_Namespace\" is invalid");
    error(&validation, "spec.exportTo[2]", "more than once");
    error(&validation, "spec.exportTo", "cannot list \"*\" together");
    let validation = se(r#"
        hosts: [a.example.com]
        ports: [{number: 80, name: http, protocol: HTTP}]
        exportTo: ['~']
    "#);
    warning(&validation, "spec.exportTo", "not enforced");
    no_errors(&validation);
}

// === VirtualService ===

#[test]
fn a_complete_virtual_service_is_clean() {
    let validation = vs(r#"
hosts: [reviews, reviews.prod.svc.cluster.local]
gateways: [mesh, istio-system/public, shop-gateway]
http:
- name: jason
  match:
  - headers: {end-user: {exact: jason}, x-present: {}}
    withoutHeaders: {x-debug: {regex: "*"}}
    queryParams: {v: {regex: "^[0-9]+$"}}
    uri: {prefix: /api}
    method: {exact: GET}
    port: 9080
    sourceLabels: {app: productpage, app.kubernetes.io/version: v1}
    sourceNamespace: default
    ignoreUriCase: true
  route:
  - destination: {host: reviews, subset: v2, port: {number: 9080}}
    weight: 75
    headers: {request: {set: {x-route: v2}}}
  - destination: {host: reviews, subset: v3}
    weight: 25
  timeout: 1.5s
  retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure,503"}
  fault:
    delay: {fixedDelay: 7s, percentage: {value: 0.5}}
    abort: {httpStatus: 500, percentage: {value: 100}}
  mirror: {host: reviews-shadow}
  mirrorPercentage: {value: 10}
  corsPolicy:
    allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*\\.example\\.com"}]
    allowMethods: [GET, POST]
    allowHeaders: [x-custom, "*"]
    maxAge: 24h
  headers:
    request: {set: {":authority": reviews.internal, x-start: "%START_TIME(%s.%3f)%"}, remove: [x-debug]}
    response: {add: {x-served-by: "%HOSTNAME%", x-ratio: "100%%"}}
  rewrite: {uri: /v2}
- route: [{destination: {host: reviews, subset: v1}}]
"#);
    clean(&validation);
}

#[test]
fn virtual_service_needs_http_tcp_or_tls_routes() {
    let validation = vs("hosts: [reviews]");
    error(&validation, "spec", "at least one of http, tcp, tls");
}

#[test]
fn host_star_is_rejected_when_the_virtual_service_applies_to_sidecars() {
    let route = "http:\n- route: [{destination: {host: reviews}}]";
    error(&vs(&format!("hosts: ['*']\n{route}")), "spec.hosts[0]", "host \"*\" is not allowed");
    error(&vs(&format!("hosts: ['*']\ngateways: [gw, mesh]\n{route}")), "spec.hosts[0]", "applies to sidecars");
    clean(&vs(&format!("hosts: ['*']\ngateways: [gw]\n{route}")));
}

#[test]
fn hosts_must_be_domain_names_or_ip_addresses() {
    let validation = vs(r#"
            hosts: [a_b.example.com, default/reviews, '*.example.com', 10.0.0.1]
            http:
            - route: [{destination: {host: reviews}}]
        "#);
    error(&validation, "spec.hosts[0]", "host \"a_b.example.com\" is not a valid domain name: label \"a_b\"");
    error(&validation, "spec.hosts[1]", "\"default/reviews\" is not a valid domain name");
    assert_eq!(error_count(&validation), 2, "{}", listing(&validation));
}

#[test]
fn overlapping_hosts_in_one_virtual_service_are_rejected() {
    let validation = vs(r#"
            hosts: ['*.example.com', api.example.com, reviews]
            http:
            - route: [{destination: {host: reviews}}]
        "#);
    error(&validation, "spec.hosts[1]", "overlaps hosts[0] \"*.example.com\"");
    assert_eq!(error_count(&validation), 1);
}

#[test]
fn a_virtual_service_without_hosts_is_an_unsupported_delegate() {
    let validation = vs(r#"
        http:
        - route: [{destination: {host: reviews}}]
    "#);
    warning(&validation, "spec.hosts", "delegate VirtualService, which pilotfish does not support");
    no_errors(&validation);
    error(
        &vs(r#"
            gateways: [gw]
            http:
            - route: [{destination: {host: reviews}}]
        "#),
        "spec.gateways",
        "must not name gateways",
    );
}

#[test]
fn gateway_references_are_checked() {
    let validation = vs(r#"
            hosts: [reviews]
            gateways: [istio-system/Bad_Name, gw.istio-system, '/gw']
            http:
            - route: [{destination: {host: reviews}}]
        "#);
    error(&validation, "spec.gateways[0]", "name \"Bad_Name\" is not a DNS-1123 label");
    warning(&validation, "spec.gateways[1]", "prefer \"istio-system/gw\"");
    error(&validation, "spec.gateways[2]", "namespace \"\" is not a DNS-1123 label");
}

#[test]
fn an_http_route_needs_exactly_one_action() {
    error(&vs_route("name: nothing"), "spec.http[0]", "exactly one of route, redirect, directResponse; it has none");
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        redirect: {uri: /elsewhere}
    "#,
    );
    error(&validation, "spec.http[0]", "it has route and redirect");
    let validation = vs_route(
        r#"
        redirect: {uri: /a}
        directResponse: {status: 200}
    "#,
    );
    error(&validation, "spec.http[0]", "it has redirect and directResponse");
}

#[test]
fn delegate_routes_are_ignored_with_a_warning() {
    let validation = vs(r#"
        hosts: [reviews]
        http:
        - delegate: {name: reviews-routes, namespace: shop}
    "#);
    warning(&validation, "spec.http[0].delegate", "not supported by pilotfish: this route is ignored");
    no_errors(&validation);
    let validation = vs_route(
        r#"
        delegate: {name: other}
        route: [{destination: {host: reviews}}]
    "#,
    );
    error(&validation, "spec.http[0].route", "must not also set route");
}

#[test]
fn redirect_excludes_fault_and_rewrite_and_makes_mirrors_pointless() {
    let validation = vs_route(
        r#"
            redirect: {uri: /new}
            fault: {abort: {httpStatus: 500}}
            rewrite: {uri: /x}
            mirror: {host: shadow}
        "#,
    );
    error(&validation, "spec.http[0].fault", "fault cannot be combined with redirect");
    error(&validation, "spec.http[0].rewrite", "rewrite cannot be combined with redirect");
    warning(&validation, "spec.http[0].mirror", "mirror has no effect with redirect");
    let validation = vs_route(
        r#"
        directResponse: {status: 503}
        fault: {delay: {fixedDelay: 1s}}
    "#,
    );
    error(&validation, "spec.http[0].fault", "fault cannot be combined with directResponse");
}

#[test]
fn redirect_needs_a_target_and_an_envoy_redirect_code() {
    error(&vs_route("redirect: {redirectCode: 301}"), "spec.http[0].redirect", "at least one of uri, authority");
    let validation = vs_route("redirect: {uri: /new, redirectCode: 305, scheme: ftp}");
    error(
        &validation,
        "spec.http[0].redirect.redirectCode",
        "one of 301, 302, 303, 307, 308 (what Envoy supports), got 305",
    );
    error(&validation, "spec.http[0].redirect.scheme", "must be http or https, got \"ftp\"");
    clean(&vs_route("redirect: {authority: example.com, redirectCode: 308}"));
}

#[test]
fn redirect_port_is_a_port_and_excludes_derive_port() {
    let validation = vs_route("redirect: {port: 70000, derivePort: FROM_REQUEST_PORT}");
    error(&validation, "spec.http[0].redirect.port", "redirect port must be in 1..65535, got 70000");
    error(&validation, "spec.http[0].redirect", "port or derivePort, not both");
    let validation = vs_route("redirect: {derivePort: FROM_SOMEWHERE}");
    error(&validation, "spec.http[0].redirect.derivePort", "FROM_PROTOCOL_DEFAULT or FROM_REQUEST_PORT");
    clean(&vs_route("redirect: {derivePort: FROM_PROTOCOL_DEFAULT, scheme: https}"));
}

#[test]
fn direct_response_status_must_be_200_to_599() {
    error(&vs_route("directResponse: {status: 199}"), "spec.http[0].directResponse.status", "200..599, got 199");
    error(&vs_route("directResponse: {status: 600}"), "spec.http[0].directResponse.status", "got 600");
    clean(&vs_route("directResponse: {status: 599, body: {string: unavailable}}"));
}

#[test]
fn direct_response_body_is_string_or_base64_bytes() {
    let validation = vs_route("directResponse: {status: 200, body: {string: a, bytes: YQ==}}");
    error(&validation, "spec.http[0].directResponse.body", "string or bytes, not both");
    let validation = vs_route("directResponse: {status: 200, body: {bytes: 'not base64!'}}");
    error(&validation, "spec.http[0].directResponse.body.bytes", "must be base64");
    clean(&vs_route("directResponse: {status: 200, body: {bytes: aGVsbG8=}}"));
}

#[test]
fn rewrite_needs_a_target_and_one_uri_form() {
    error(
        &vs_route(
            r#"
            route: [{destination: {host: reviews}}]
            rewrite: {}
        "#,
        ),
        "spec.http[0].rewrite",
        "at least one of uri",
    );
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            rewrite: {uri: /a, uriRegexRewrite: {match: '^/b', rewrite: /c}}
        "#,
    );
    error(&validation, "spec.http[0].rewrite", "uri or uriRegexRewrite, not both");
    clean(&vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        rewrite: {authority: reviews.internal}
    "#,
    ));
}

#[test]
fn uri_regex_rewrite_match_must_be_a_plausible_regex() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            rewrite: {uriRegexRewrite: {match: '^/(a|b', rewrite: /x}}
        "#,
    );
    error(&validation, "spec.http[0].rewrite.uriRegexRewrite.match", "missing closing )");
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            rewrite: {uriRegexRewrite: {match: '^/a', rewrite: ''}}
        "#,
    );
    error(&validation, "spec.http[0].rewrite.uriRegexRewrite", "both match and rewrite");
    clean(&vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            rewrite: {uriRegexRewrite: {match: '^/v1/(.*)$', rewrite: '/v2/\1'}}
        "#,
    ));
}

#[test]
fn string_matches_set_exactly_one_of_exact_prefix_regex() {
    let validation = vs_route(
        r#"
            match: [{uri: {exact: /a, prefix: /b}}, {uri: {}}, {method: {}}]
            route: [{destination: {host: reviews}}]
        "#,
    );
    error(&validation, "spec.http[0].match[0].uri", "exactly one of exact, prefix, regex; got exact and prefix");
    error(&validation, "spec.http[0].match[1].uri", "uri match is empty");
    error(&validation, "spec.http[0].match[2].method", "method match is empty");
}

#[test]
fn empty_prefixes_and_regexes_are_rejected_except_the_uri_prefix() {
    let validation = vs_route(
        r#"
            match: [{uri: {prefix: ''}, authority: {prefix: ''}, headers: {x-a: {regex: ''}}}]
            route: [{destination: {host: reviews}}]
        "#,
    );
    error(&validation, "spec.http[0].match[0].authority.prefix", "prefix must not be empty");
    error(&validation, "spec.http[0].match[0].headers.x-a.regex", "a regex must not be empty");
    assert_eq!(error_count(&validation), 2, "{}", listing(&validation));
}

#[test]
fn empty_header_and_query_matches_mean_present() {
    clean(&vs_route(
        r#"
            match: [{headers: {x-a: {}}, withoutHeaders: {x-b: {}}, queryParams: {debug: {}}}]
            route: [{destination: {host: reviews}}]
        "#,
    ));
}

#[test]
fn match_header_names_are_checked() {
    let validation = vs_route(
        r#"
            match: [{headers: {'x bad': {exact: a}, ':authority': {exact: b}, X-Upper_Case: {exact: c}}}]
            route: [{destination: {host: reviews}}]
        "#,
    );
    error(&validation, "spec.http[0].match[0].headers.x bad", "header name \"x bad\" is invalid");
    error(&validation, "spec.http[0].match[0].headers.:authority", "with the authority, method and scheme fields");
    assert_eq!(error_count(&validation), 2, "upper case names are fine (Envoy matches names case-insensitively)");
}

#[test]
fn jwt_claim_routing_is_only_for_gateways_and_unsupported_there() {
    let match_claim = r#"
        http:
        - match: [{headers: {'@request.auth.claims.group': {exact: admin}}}]
          route: [{destination: {host: reviews}}]
    "#;
    let match_claim = dedent(match_claim);
    error(
        &vs(&format!("hosts: [reviews]\n{match_claim}")),
        "spec.http[0].match[0].headers.@request.auth.claims.group",
        "only allowed on gateways",
    );
    let validation = vs(&format!("hosts: [reviews.example.com]\ngateways: [gw]\n{match_claim}"));
    warning(&validation, "spec.http[0].match[0].headers.@request.auth.claims.group", "not supported by pilotfish");
    no_errors(&validation);
}

#[test]
fn regexes_are_light_checked_for_re2() {
    let route = |regex: &str| {
        vs_route(&format!("match: [{{uri: {{regex: '{regex}'}}}}]\nroute: [{{destination: {{host: reviews}}}}]"))
    };
    error(&route("^/(?=a)"), "spec.http[0].match[0].uri.regex", "look-around");
    error(&route("^/[a-z"), "spec.http[0].match[0].uri.regex", "missing closing ]");
    error(&route("(a)\\1"), "spec.http[0].match[0].uri.regex", "back-reference");
    error(&route("*a"), "spec.http[0].match[0].uri.regex", "missing argument to repetition operator *");
    error(&route("a)"), "spec.http[0].match[0].uri.regex", "unexpected )");
    clean(&route("^/api/(v[0-9]+|latest)/[^/]*?$"));
    clean(&route("(?i)^/[]a]+\\.(png|jpe?g)$"));
}

#[test]
fn check_regex_reports_trailing_backslashes_and_long_patterns() {
    assert!(check_regex("abc\\").is_err_and(|e| e.contains("trailing backslash")));
    assert!(check_regex(&"a".repeat(1025)).is_err_and(|e| e.contains("at most 1024")));
    assert!(check_regex("[\\]]").is_ok());
    assert!(check_regex("a{2,3}(?P<name>b)").is_ok());
}

#[test]
fn negative_weights_are_rejected() {
    let validation = vs_route(
        r#"
            route:
            - destination: {host: reviews, subset: v1}
              weight: -5
            - destination: {host: reviews, subset: v2}
              weight: 105
        "#,
    );
    error(&validation, "spec.http[0].route[0].weight", "weight must be 0 or more, got -5");
    assert_eq!(error_count(&validation), 1, "{}", listing(&validation));
}

#[test]
fn weights_of_several_destinations_must_not_sum_to_zero() {
    let validation = vs_route(
        r#"
            route:
            - destination: {host: reviews, subset: v1}
            - destination: {host: reviews, subset: v2}
              weight: 0
        "#,
    );
    error(&validation, "spec.http[0].route", "must not sum to 0");
}

#[test]
fn weights_need_not_sum_to_100() {
    clean(&vs_route(
        r#"
            route:
            - destination: {host: reviews, subset: v1}
              weight: 1
            - destination: {host: reviews, subset: v2}
              weight: 2
        "#,
    ));
    clean(&vs_route(
        r#"
        route:
        - destination: {host: reviews}
          weight: 0
    "#,
    ));
}

#[test]
fn destinations_need_a_host_and_valid_subset_and_port() {
    let validation = vs_route(
        r#"
            route:
            - destination: {subset: v1}
              weight: 50
            - destination: {host: '*', subset: v1_beta, port: {number: 0}}
              weight: 50
        "#,
    );
    error(&validation, "spec.http[0].route[0].destination.host", "destination host is required");
    error(&validation, "spec.http[0].route[1].destination.host", "\"*\" is invalid");
    error(&validation, "spec.http[0].route[1].destination.subset", "subset \"v1_beta\" is not a DNS-1123 label");
    error(&validation, "spec.http[0].route[1].destination.port.number", "destination port must be in 1..65535, got 0");
}

#[test]
fn match_ports_and_source_labels_are_checked() {
    let validation = vs_route(
        r#"
            match: [{port: 70000, sourceLabels: {'bad key!': v1}, sourceNamespace: Not_Valid}]
            route: [{destination: {host: reviews}}]
        "#,
    );
    error(&validation, "spec.http[0].match[0].port", "match port must be in 1..65535, got 70000");
    error(&validation, "spec.http[0].match[0].sourceLabels.bad key!", "label key \"bad key!\" is invalid");
    error(&validation, "spec.http[0].match[0].sourceNamespace", "not a namespace name");
}

#[test]
fn durations_must_parse_and_be_whole_milliseconds_of_at_least_1ms() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            timeout: '10'
            retries: {attempts: 2, perTryTimeout: 0.5ms}
            fault: {delay: {fixedDelay: 1.0005s}}
        "#,
    );
    error(&validation, "spec.http[0].timeout", "timeout is not a valid duration: missing unit");
    error(&validation, "spec.http[0].retries.perTryTimeout", "perTryTimeout must be at least 1ms, got \"0.5ms\"");
    error(&validation, "spec.http[0].fault.delay.fixedDelay", "must be whole milliseconds");
    error(
        &vs_route(
            r#"
        route: [{destination: {host: reviews}}]
        timeout: -1s
    "#,
        ),
        "spec.http[0].timeout",
        "negative",
    );
}

#[test]
fn a_zero_timeout_turns_the_timeout_off_and_is_allowed() {
    clean(&vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        timeout: 0s
    "#,
    ));
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        timeout: 0.5ms
    "#,
    );
    error(&validation, "spec.http[0].timeout", "must be 0s or at least 1ms");
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        retries: {attempts: 1, perTryTimeout: 0s}
    "#,
    );
    error(&validation, "spec.http[0].retries.perTryTimeout", "at least 1ms");
}

#[test]
fn retries_need_non_negative_attempts_and_known_conditions() {
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        retries: {attempts: -1}
    "#,
    );
    error(&validation, "spec.http[0].retries.attempts", "attempts must be 0 or more, got -1");
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            retries: {attempts: 3, retryOn: '5xx,bogus,503,600, reset'}
        "#,
    );
    error(&validation, "spec.http[0].retries.retryOn", "\"bogus\" is not a retry condition");
    error(&validation, "spec.http[0].retries.retryOn", "\"600\" is not a retry condition");
    error(&validation, "spec.http[0].retries.retryOn", "\" reset\" is not a retry condition");
    assert_eq!(error_count(&validation), 3, "{}", listing(&validation));
}

#[test]
fn retry_settings_with_zero_attempts_are_rejected_like_istiod() {
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        retries: {attempts: 0, retryOn: 5xx}
    "#,
    );
    error(&validation, "spec.http[0].retries", "attempts is 0");
    clean(&vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        retries: {attempts: 0}
    "#,
    ));
}

#[test]
fn fault_needs_a_fixed_delay_or_an_http_abort() {
    let route = |fault: &str| vs_route(&format!("route: [{{destination: {{host: reviews}}}}]\nfault: {fault}"));
    error(&route("{}"), "spec.http[0].fault", "delay, abort, or both");
    error(&route("{delay: {percentage: {value: 10}}}"), "spec.http[0].fault.delay", "delay needs fixedDelay");
    error(&route("{delay: {exponentialDelay: 1s}}"), "spec.http[0].fault.delay.exponentialDelay", "not supported");
    error(&route("{abort: {percentage: {value: 10}}}"), "spec.http[0].fault.abort", "abort needs httpStatus");
    error(&route("{abort: {httpStatus: 100}}"), "spec.http[0].fault.abort.httpStatus", "200..599, got 100");
}

#[test]
fn grpc_aborts_are_ignored_with_a_warning() {
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        fault: {abort: {grpcStatus: UNAVAILABLE}}
    "#,
    );
    warning(&validation, "spec.http[0].fault.abort.grpcStatus", "this abort is ignored");
    no_errors(&validation);
}

#[test]
fn fault_percentages_are_0_to_100_and_percent_is_deprecated() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            fault:
              delay: {fixedDelay: 1s, percentage: {value: 150}}
              abort: {httpStatus: 503, percent: 101}
        "#,
    );
    error(&validation, "spec.http[0].fault.delay.percentage.value", "between 0.0001 and 100, got 150");
    error(&validation, "spec.http[0].fault.abort.percent", "percent must be between 0 and 100, got 101");
    let deprecated = warning(&validation, "spec.http[0].fault.abort.percent", "deprecated");
    assert_eq!(deprecated.code, Some("IST0002"));
}

#[test]
fn mirrors_are_destinations_with_percentages() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            mirrors:
            - destination: {host: ''}
              percentage: {value: -1}
            mirrorPercentage: {value: 101}
            mirror: {host: shadow}
        "#,
    );
    error(&validation, "spec.http[0].mirrors[0].destination.host", "destination host is required");
    error(&validation, "spec.http[0].mirrors[0].percentage.value", "got -1");
    error(&validation, "spec.http[0].mirrorPercentage.value", "got 101");
    error(&validation, "spec.http[0].mirrors", "mirror or mirrors, not both");
    let validation = vs_route(
        r#"
        route: [{destination: {host: reviews}}]
        mirror: {host: shadow}
        mirrorPercent: 50
    "#,
    );
    warning(&validation, "spec.http[0].mirrorPercent", "deprecated");
    no_errors(&validation);
}

#[test]
fn cors_policy_is_checked() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            corsPolicy:
              allowOrigins: [{exact: ''}, {}, {regex: '('}]
              allowMethods: [GET, get]
              exposeHeaders: ['bad header']
              maxAge: 1.5s
        "#,
    );
    error(&validation, "spec.http[0].corsPolicy.allowOrigins[0].exact", "exact value must not be empty");
    error(&validation, "spec.http[0].corsPolicy.allowOrigins[1]", "allowOrigins entry is empty");
    error(&validation, "spec.http[0].corsPolicy.allowOrigins[2].regex", "missing closing )");
    error(&validation, "spec.http[0].corsPolicy.allowMethods[1]", "\"get\" is not an HTTP method");
    error(&validation, "spec.http[0].corsPolicy.exposeHeaders[0]", "not a header name");
    error(&validation, "spec.http[0].corsPolicy.maxAge", "whole seconds");
}

#[test]
fn header_operations_cannot_touch_pseudo_headers_except_the_authority() {
    let validation = vs_route(
        r#"
            route:
            - destination: {host: reviews}
              headers: {request: {set: {':path': /x}}}
            headers:
              request: {add: {host: a.example.com}, remove: [':authority']}
              response: {set: {host: x, '': y}}
        "#,
    );
    error(&validation, "spec.http[0].route[0].headers.request.set.:path", "pseudo-headers other than :authority");
    error(&validation, "spec.http[0].headers.request.remove[0]", "only request set/add may rewrite the authority");
    error(&validation, "spec.http[0].headers.response.set.host", "only request set/add may rewrite the authority");
    error(&validation, "spec.http[0].headers.response.set.", "header name must not be empty");
    assert_eq!(error_count(&validation), 4, "{}", listing(&validation));
}

#[test]
fn header_values_must_be_valid_envoy_format_strings() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            headers:
              request: {set: {x-a: '100%', x-b: '%START_TIME(%s'}}
              response: {add: {x-c: "a\u0001b"}}
        "#,
    );
    error(&validation, "spec.http[0].headers.request.set.x-a", "lone % at the end");
    error(&validation, "spec.http[0].headers.request.set.x-b", "unterminated");
    error(&validation, "spec.http[0].headers.response.add.x-c", "control characters");
    assert!(check_header_value("%REQ([\"x-a\", \"x-b\"])%").is_ok());
    assert!(check_header_value("%REQ([x])%").is_err());
}

#[test]
fn the_authority_may_be_rewritten_in_one_place_only() {
    let validation = vs_route(
        r#"
            route: [{destination: {host: reviews}}]
            rewrite: {authority: a.example.com}
            headers: {request: {set: {':authority': b.example.com}}}
        "#,
    );
    error(
        &validation,
        "spec.http[0].headers.request.set.:authority",
        "rewritten twice: already by spec.http[0].rewrite.authority",
    );
}

#[test]
fn routes_after_a_catch_all_are_unreachable() {
    let validation = vs(r#"
            hosts: [reviews]
            http:
            - route: [{destination: {host: reviews, subset: v1}}]
            - match: [{uri: {prefix: /a}}, {uri: {prefix: /b}}]
              route: [{destination: {host: reviews}}]
            - route: [{destination: {host: reviews}}]
        "#);
    for field in ["spec.http[1].match[0]", "spec.http[1].match[1]"] {
        let unreachable = warning(&validation, field, "rule #1 is never used: http[0] before it has no match");
        assert_eq!(unreachable.code, Some("IST0130"));
    }
    let last = warning(&validation, "spec.http[2]", "only the last rule may have no match");
    assert_eq!(last.code, Some("IST0130"));
    no_errors(&validation);
}

#[test]
fn a_match_an_earlier_rule_has_is_ineffective_and_a_rule_of_only_such_matches_unreachable() {
    let validation = vs(r#"
            hosts: [reviews]
            http:
            - name: first
              match: [{name: products, uri: {prefix: /api/v1/products}}]
              route: [{destination: {host: reviews}}]
            - name: second
              match: [{uri: {prefix: /api/v1/products}}]
              route: [{destination: {host: reviews}}]
            - match: [{uri: {prefix: /api/v1/products}}, {uri: {prefix: /potato}}]
              route: [{destination: {host: reviews}}]
        "#);
    let same =
        find(&validation, Severity::Info, "spec.http[1].match[0]", "rule \"first\" before it has the same match");
    assert_eq!(same.code, Some("IST0131"));
    let unused = warning(&validation, "spec.http[1]", "rule \"second\" is never used: every one of its matches");
    assert_eq!(unused.code, Some("IST0130"));
    find(&validation, Severity::Info, "spec.http[2].match[0]", "the same match");
    assert!(
        !validation.diagnostics.iter().any(|d| d.field == "spec.http[2]"),
        "rule #2 has a match of its own:\n{}",
        listing(&validation)
    );
}

#[test]
fn a_uri_prefix_an_earlier_prefix_covers_is_ineffective() {
    let validation = vs(r#"
            hosts: [reviews]
            http:
            - match: [{uri: {prefix: /api/v1/prod}, method: {exact: GET}}]
              route: [{destination: {host: reviews}}]
            - match: [{uri: {prefix: /api/v1/product}}, {uri: {prefix: /api/v1/products}, method: {exact: POST}}]
              route: [{destination: {host: reviews}}]
        "#);
    let covered = find(&validation, Severity::Info, "spec.http[1].match[0]", "(prefix /api/v1/prod) of rule #0");
    assert_eq!(covered.code, Some("IST0131"));
    assert!(
        !validation.diagnostics.iter().any(|d| d.field == "spec.http[1].match[1]"),
        "another method is another match:\n{}",
        listing(&validation)
    );
}

#[test]
fn tcp_and_tls_rules_are_checked_for_duplicate_matches() {
    let validation = vs(r#"
            hosts: ["*"]
            gateways: [tcp-gateway]
            tcp:
            - match: [{port: 31400}]
              route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
            - match: [{port: 31400}]
              route: [{destination: {host: tcp-echo, port: {number: 9001}}}]
        "#);
    let duplicate = find(&validation, Severity::Info, "spec.tcp[1].match[0]", "rule #0 before it has the same match");
    assert_eq!(duplicate.code, Some("IST0131"));
    let unused = warning(&validation, "spec.tcp[1]", "rule #1 is never used");
    assert_eq!(unused.code, Some("IST0130"));
}

#[test]
fn tls_and_tcp_routes_are_not_translated_yet() {
    let validation = vs(r#"
            hosts: [db.example.com]
            tls: [{match: [{sniHosts: [db.example.com]}], route: [{destination: {host: db.example.com}}]}]
            tcp: [{route: [{destination: {host: db.example.com}}]}]
        "#);
    warning(&validation, "spec.tls", "TLS routes are not translated yet");
    warning(&validation, "spec.tcp", "TCP routes are not translated yet");
    no_errors(&validation);
}

// === DestinationRule ===

#[test]
fn destination_rule_needs_a_valid_host() {
    error(&dr("subsets: [{name: v1, labels: {version: v1}}]"), "spec.host", "host is required");
    error(&dr("host: reviews..default"), "spec.host", "not a valid domain name");
    clean(&dr("host: '*.example.com'"));
}

#[test]
fn subset_names_are_unique_dns_labels() {
    let validation = dr(r#"
            host: reviews
            subsets:
            - {name: v1, labels: {version: v1}}
            - {name: v1, labels: {version: v2}}
            - {name: V2_beta}
            - {labels: {version: v3}}
            - {name: v4}
        "#);
    error(&validation, "spec.subsets[1].name", "\"v1\" is already used by subsets[0]");
    error(&validation, "spec.subsets[2].name", "\"V2_beta\" is not a DNS-1123 label");
    error(&validation, "spec.subsets[3].name", "subset name is required");
    assert_eq!(error_count(&validation), 3, "a subset without labels is fine: {}", listing(&validation));
}

#[test]
fn load_balancer_sets_simple_or_consistent_hash() {
    let validation = dr(r#"
            host: reviews
            trafficPolicy:
              loadBalancer: {simple: ROUND_ROBIN, consistentHash: {httpHeaderName: x-user}}
        "#);
    error(&validation, "spec.trafficPolicy.loadBalancer", "simple or consistentHash, not both");
    let validation = dr(r#"
        host: reviews
        trafficPolicy: {loadBalancer: {simple: FASTEST}}
    "#);
    error(&validation, "spec.trafficPolicy.loadBalancer.simple", "got \"FASTEST\"");
    let validation = dr(r#"
        host: reviews
        trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}
    "#);
    warning(&validation, "spec.trafficPolicy.loadBalancer.simple", "LEAST_CONN is deprecated");
    no_errors(&validation);
    clean(&dr(r#"
        host: reviews
        trafficPolicy: {loadBalancer: {simple: PASSTHROUGH}}
    "#));
}

#[test]
fn consistent_hash_takes_one_key_and_one_algorithm() {
    let at = "spec.trafficPolicy.loadBalancer.consistentHash";
    let validation = dr(r#"
            host: reviews
            trafficPolicy:
              loadBalancer:
                consistentHash:
                  httpHeaderName: x-user
                  useSourceIp: true
                  ringHash: {minimumRingSize: 1024}
                  maglev: {tableSize: 65537}
        "#);
    error(&validation, at, "it has httpHeaderName and useSourceIp");
    error(&validation, at, "ringHash or maglev, not both");
    let validation = dr(r#"
        host: reviews
        trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {ttl: 10s}}}}
    "#);
    error(&validation, &format!("{at}.httpCookie.name"), "httpCookie needs a name");
    let validation = dr(r#"
            host: reviews
            trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}}
        "#);
    error(&validation, &format!("{at}.maglev.tableSize"), "prime number");
    let validation = dr(r#"
            host: reviews
            trafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 64}}}}
        "#);
    warning(&validation, at, "sets no hash key");
    no_errors(&validation);
    clean(&dr(r#"
            host: reviews
            trafficPolicy:
              loadBalancer:
                consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 1024}}
        "#));
}

#[test]
fn connection_pool_values_are_non_negative_and_timeouts_at_least_1ms() {
    let validation = dr(r#"
            host: reviews
            trafficPolicy:
              connectionPool:
                tcp: {maxConnections: -1, connectTimeout: 0s}
                http: {http1MaxPendingRequests: 0, maxRetries: -3, idleTimeout: 1h}
        "#);
    error(&validation, "spec.trafficPolicy.connectionPool.tcp.maxConnections", "must be 0 or more, got -1");
    error(&validation, "spec.trafficPolicy.connectionPool.tcp.connectTimeout", "at least 1ms");
    error(&validation, "spec.trafficPolicy.connectionPool.http.maxRetries", "got -3");
    assert_eq!(error_count(&validation), 3, "{}", listing(&validation));
    error(
        &dr(r#"
            host: reviews
            trafficPolicy: {connectionPool: {}}
        "#),
        "spec.trafficPolicy.connectionPool",
        "tcp, http, or both",
    );
}

#[test]
fn outlier_detection_percents_and_intervals_are_checked() {
    let validation = dr(r#"
            host: reviews
            trafficPolicy:
              outlierDetection:
                consecutive5xxErrors: -1
                interval: 500us
                baseEjectionTime: 30s
                maxEjectionPercent: 120
                minHealthPercent: 50
                consecutiveErrors: 5
        "#);
    let at = "spec.trafficPolicy.outlierDetection";
    error(&validation, &format!("{at}.consecutive5xxErrors"), "got -1");
    error(&validation, &format!("{at}.interval"), "at least 1ms");
    error(&validation, &format!("{at}.maxEjectionPercent"), "between 0 and 100, got 120");
    warning(&validation, &format!("{at}.consecutiveErrors"), "deprecated");
    assert_eq!(error_count(&validation), 3, "{}", listing(&validation));
}

#[test]
fn mesh_tls_modes_warn_that_traffic_stays_plaintext() {
    let validation = dr(r#"
        host: reviews
        trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
    "#);
    warning(&validation, "spec.trafficPolicy.tls.mode", "not supported yet: traffic to this host stays plaintext");
    no_errors(&validation);
    let validation = dr(r#"
        host: reviews
        trafficPolicy: {tls: {mode: MUTUAL}}
    "#);
    warning(&validation, "spec.trafficPolicy.tls.mode", "MUTUAL is not supported yet");
    error(&validation, "spec.trafficPolicy.tls.clientCertificate", "needs clientCertificate");
}

#[test]
fn tls_modes_and_credentials_are_checked() {
    error(
        &dr(r#"
        host: reviews
        trafficPolicy: {tls: {mode: STRICT}}
    "#),
        "spec.trafficPolicy.tls.mode",
        "got \"STRICT\"",
    );
    let validation = dr(r#"
        host: api.example.com
        trafficPolicy: {tls: {mode: SIMPLE, credentialName: api-ca}}
    "#);
    warning(&validation, "spec.trafficPolicy.tls.credentialName", "not supported by pilotfish");
    no_errors(&validation);
    let validation = dr(r#"
            host: api.example.com
            trafficPolicy: {tls: {mode: SIMPLE, credentialName: api-ca, caCertificates: /ca.pem}}
        "#);
    error(&validation, "spec.trafficPolicy.tls.credentialName", "cannot be combined");
    clean(&dr(r#"
        host: api.example.com
        trafficPolicy: {tls: {mode: SIMPLE, sni: api.example.com}}
    "#));
}

#[test]
fn port_level_settings_need_distinct_valid_ports() {
    let validation = dr(r#"
            host: reviews
            trafficPolicy:
              portLevelSettings:
              - {port: {number: 9080}, loadBalancer: {simple: RANDOM}}
              - {port: {number: 9080}, tls: {mode: DISABLE}}
              - {loadBalancer: {simple: RANDOM}}
              - {port: {number: 70000}}
        "#);
    let at = "spec.trafficPolicy.portLevelSettings";
    error(&validation, &format!("{at}[1].port.number"), "already has settings in portLevelSettings[0]");
    error(&validation, &format!("{at}[2].port"), "port is required");
    error(&validation, &format!("{at}[3].port.number"), "port must be in 1..65535, got 70000");
    error(&validation, &format!("{at}[3]"), "need at least one of loadBalancer");
}

#[test]
fn subset_traffic_policies_get_the_same_checks() {
    let validation = dr(r#"
            host: reviews
            subsets:
            - name: v1
              labels: {version: v1}
              trafficPolicy: {outlierDetection: {baseEjectionTime: 1.0001s}, tls: {mode: ISTIO_MUTUAL}}
        "#);
    error(&validation, "spec.subsets[0].trafficPolicy.outlierDetection.baseEjectionTime", "whole milliseconds");
    warning(&validation, "spec.subsets[0].trafficPolicy.tls.mode", "stays plaintext");
}

// === Gateway ===

#[test]
fn gateway_needs_servers() {
    error(&gw("selector: {istio: ingressgateway}"), "spec.servers", "at least one server");
}

#[test]
fn server_ports_need_a_number_name_and_known_protocol() {
    let validation = gw(r#"
            servers:
            - {port: {number: 0, name: '', protocol: SMTP}, hosts: ['*']}
            - {hosts: ['*']}
            - {port: {number: 8080, name: http, protocol: http, targetPort: 80}, hosts: ['*']}
        "#);
    error(&validation, "spec.servers[0].port.number", "port number must be in 1..65535, got 0");
    error(&validation, "spec.servers[0].port.name", "port name is required");
    error(&validation, "spec.servers[0].port.protocol", "protocol \"SMTP\" is unknown");
    error(&validation, "spec.servers[1].port", "port is required");
    error(&validation, "spec.servers[2].port.targetPort", "no effect on Gateways");
    assert_eq!(error_count(&validation), 5, "lower-case protocols are fine: {}", listing(&validation));
}

#[test]
fn port_names_are_unique_within_a_gateway() {
    let validation = gw(r#"
            servers:
            - {port: {number: 80, name: http, protocol: HTTP}, hosts: [a.example.com]}
            - {port: {number: 81, name: http, protocol: HTTP}, hosts: [b.example.com]}
        "#);
    error(&validation, "spec.servers[1].port.name", "port name \"http\" is already used by servers[0]");
}

#[test]
fn server_hosts_are_namespace_slash_domain_names() {
    let validation = gw(r#"
            servers:
            - port: {number: 80, name: http, protocol: HTTP}
              hosts:
              - ./shop.example.com
              - '*/*.example.com'
              - 'prod/*'
              - reviews
              - '*shop.example.com'
              - Bad_NS/a.example.com
              - /a.example.com
              - 192.168.1.1
            - port: {number: 81, name: http2, protocol: HTTP}
              hosts: []
        "#);
    error(&validation, "spec.servers[0].hosts[3]", "short names are not allowed on gateways");
    error(&validation, "spec.servers[0].hosts[4]", "a wildcard must be a whole label");
    error(&validation, "spec.servers[0].hosts[5]", "namespace \"Bad_NS\" must be");
    error(&validation, "spec.servers[0].hosts[6]", "both namespace and name");
    error(&validation, "spec.servers[1].hosts", "at least one host");
    assert_eq!(error_count(&validation), 5, "{}", listing(&validation));
}

#[test]
fn https_servers_need_tls_and_are_not_served_yet() {
    let validation = gw(r#"
            servers:
            - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*']}
            - {port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}
        "#);
    error(&validation, "spec.servers[0].tls", "HTTPS servers need tls settings");
    let validation = gw(r#"
            servers:
            - port: {number: 443, name: https, protocol: HTTPS}
              hosts: ['*']
              tls: {mode: SIMPLE, credentialName: shop-cert}
            - {port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], tls: {httpsRedirect: true}}
        "#);
    warning(&validation, "spec.servers[0].port.protocol", "HTTPS/TLS servers are not served yet");
    no_errors(&validation);
    assert_eq!(validation.diagnostics.len(), 1, "{}", listing(&validation));
}

#[test]
fn tcp_servers_are_not_served_yet() {
    let validation = gw(r#"
        servers:
        - {port: {number: 27017, name: mongo, protocol: MONGO}, hosts: ['*']}
    "#);
    warning(&validation, "spec.servers[0].port.protocol", "TCP servers are not served yet");
    no_errors(&validation);
}

#[test]
fn terminating_tls_needs_a_credential() {
    let validation = gw(r#"
            servers:
            - {port: {number: 443, name: https, protocol: HTTPS}, hosts: ['*'], tls: {mode: SIMPLE}}
            - port: {number: 8443, name: mtls, protocol: HTTPS}
              hosts: ['*']
              tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}
            - {port: {number: 9443, name: odd, protocol: TLS}, hosts: ['*'], tls: {mode: TERMINATE}}
        "#);
    error(&validation, "spec.servers[0].tls", "SIMPLE tls needs credentialName, or serverCertificate and privateKey");
    error(&validation, "spec.servers[1].tls", "(missing caCertificates)");
    error(&validation, "spec.servers[2].tls.mode", "got \"TERMINATE\"");
}

#[test]
fn plaintext_servers_may_only_carry_https_redirect() {
    let validation = gw(r#"
            servers:
            - {port: {number: 80, name: http, protocol: HTTP}, hosts: ['*'], tls: {mode: SIMPLE, credentialName: c}}
            - {port: {number: 9000, name: tcp, protocol: TCP}, hosts: ['*'], tls: {httpsRedirect: true}}
        "#);
    error(&validation, "spec.servers[0].tls", "tls may only set httpsRedirect");
    error(&validation, "spec.servers[1].tls", "tls settings need protocol HTTPS or TLS");
    warning(&validation, "spec.servers[1].tls.httpsRedirect", "only applies to HTTP servers");
}

#[test]
fn bind_is_an_ip_address_and_unix_sockets_are_unsupported() {
    let validation = gw(r#"
            servers:
            - {port: {number: 80, name: a, protocol: HTTP}, hosts: ['*'], bind: localhost}
            - {port: {number: 0, name: b, protocol: HTTP}, hosts: ['*'], bind: 'unix:///var/run/gw.sock'}
            - {port: {number: 82, name: c, protocol: HTTP}, hosts: ['*'], bind: '::1'}
        "#);
    error(&validation, "spec.servers[0].bind", "bind must be an IP address, got \"localhost\"");
    warning(&validation, "spec.servers[1].bind", "unix domain socket binds are not supported");
    assert_eq!(error_count(&validation), 1, "{}", listing(&validation));
}

#[test]
fn gateway_names_cannot_contain_dots() {
    let yaml = r#"
        apiVersion: networking.istio.io/v1
        kind: Gateway
        metadata: {name: public.gw}
        spec:
          servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
    "#;
    let yaml = dedent(yaml);
    error(&run(&yaml), "metadata.name", "must be a DNS-1123 label");
}

// === ServiceEntry ===

#[test]
fn a_typical_egress_service_entry_is_clean() {
    clean(&se(r#"
            hosts: [api.example.com]
            ports: [{number: 443, name: https, protocol: TLS}, {number: 80, name: http, protocol: http}]
            location: MESH_EXTERNAL
            resolution: DNS
        "#));
}

#[test]
fn service_entry_hosts_are_required_and_not_star() {
    let validation = se("ports: [{number: 80, name: http, protocol: HTTP}]");
    error(&validation, "spec.hosts", "at least one host");
    let validation = se(r#"
        hosts: ['*', 'a..b']
        ports: [{number: 80, name: http, protocol: HTTP}]
    "#);
    error(&validation, "spec.hosts[0]", "host \"*\" is not allowed in a ServiceEntry");
    error(&validation, "spec.hosts[1]", "not a valid domain name");
}

#[test]
fn wildcard_hosts_cannot_be_resolved_by_dns_without_endpoints() {
    let validation = se(r#"
        hosts: ['*.example.com']
        ports: [{number: 443, name: tls, protocol: TLS}]
        resolution: DNS
    "#);
    error(&validation, "spec.hosts[0]", "cannot be resolved by DNS");
    clean(&se(r#"
        hosts: ['*.example.com']
        ports: [{number: 443, name: tls, protocol: TLS}]
        resolution: NONE
    "#));
    clean(&se(r#"
            hosts: ['*.example.com']
            ports: [{number: 443, name: tls, protocol: TLS}]
            resolution: DNS
            endpoints: [{address: proxy.example.com}]
        "#));
}

#[test]
fn service_entry_ports_are_required_unique_and_known() {
    error(&se("hosts: [a.example.com]"), "spec.ports", "at least one port");
    let validation = se(r#"
            hosts: [a.example.com]
            ports:
            - {number: 80, name: http, protocol: HTTP}
            - {number: 80, name: http, protocol: SMTP}
            - {number: 70000, name: Bad_Name, protocol: udp}
        "#);
    error(&validation, "spec.ports[1].number", "port 80 is already declared by ports[0]");
    error(&validation, "spec.ports[1].name", "port name \"http\" is already used by ports[0]");
    error(&validation, "spec.ports[1].protocol", "protocol \"SMTP\" is unknown");
    error(&validation, "spec.ports[2].number", "port number must be in 1..65535, got 70000");
    error(&validation, "spec.ports[2].name", "not a DNS-1123 label");
    assert_eq!(error_count(&validation), 5, "{}", listing(&validation));
}

#[test]
fn resolution_and_location_are_enums() {
    let validation = se(r#"
            hosts: [a.example.com]
            ports: [{number: 80, name: http, protocol: HTTP}]
            resolution: dns
            location: OUTSIDE
        "#);
    error(&validation, "spec.resolution", "got \"dns\"");
    error(&validation, "spec.location", "got \"OUTSIDE\"");
}

#[test]
fn static_endpoints_are_ip_addresses_and_dns_endpoints_may_be_hostnames() {
    let validation = se(r#"
            hosts: [db.internal]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            resolution: STATIC
            endpoints: [{address: 10.0.0.1}, {address: db1.internal}, {address: ''}]
        "#);
    error(&validation, "spec.endpoints[1].address", "resolution STATIC needs IPs");
    error(&validation, "spec.endpoints[2].address", "endpoint address is required");
    let validation = se(r#"
            hosts: [db.internal]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            resolution: DNS
            endpoints: [{address: 10.0.0.1}, {address: db1.internal}, {address: 'not a host'}]
        "#);
    error(&validation, "spec.endpoints[2].address", "neither a hostname nor an IP address");
    assert_eq!(error_count(&validation), 1, "{}", listing(&validation));
}

#[test]
fn endpoint_ports_name_declared_ports() {
    let validation = se(r#"
            hosts: [db.internal]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            resolution: STATIC
            endpoints: [{address: 10.0.0.1, ports: {tcp: 15432, admin: 9000}}, {address: 10.0.0.2, ports: {tcp: 0}}]
        "#);
    error(&validation, "spec.endpoints[0].ports.admin", "\"admin\" names no port of this ServiceEntry (declared: tcp)");
    error(&validation, "spec.endpoints[1].ports.tcp", "endpoint port must be in 1..65535, got 0");
    assert_eq!(error_count(&validation), 2, "{}", listing(&validation));
}

#[test]
fn resolution_rules_for_endpoints() {
    let validation = se(r#"
            hosts: [db.internal]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            endpoints: [{address: 10.0.0.1}]
        "#);
    error(&validation, "spec.endpoints", "resolution NONE takes no endpoints");
    let validation = se(r#"
            hosts: [db.internal]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            resolution: DNS_ROUND_ROBIN
            endpoints: [{address: a.internal}, {address: b.internal}]
        "#);
    error(&validation, "spec.endpoints", "at most one endpoint");
    let validation = se(r#"
        hosts: [db.internal]
        ports: [{number: 5432, name: tcp, protocol: TCP}]
        resolution: STATIC
    "#);
    warning(&validation, "spec.endpoints", "no endpoints");
    no_errors(&validation);
}

#[test]
fn several_hosts_need_http_or_tls_ports_unless_resolution_is_none() {
    let validation = se(r#"
            hosts: [a.internal, b.internal]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            resolution: DNS
        "#);
    error(&validation, "spec.hosts", "several hosts need HTTP or TLS ports");
    clean(&se(r#"
        hosts: [a.internal, b.internal]
        ports: [{number: 5432, name: tcp, protocol: TCP}]
    "#));
}

#[test]
fn addresses_are_ips_or_cidrs() {
    let validation = se(r#"
            hosts: [db.internal]
            addresses: [10.0.0.0/8, 10.1.2.3, 300.0.0.1, 10.0.0.0/33]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
        "#);
    error(&validation, "spec.addresses[2]", "not an IP address or CIDR block");
    error(&validation, "spec.addresses[3]", "not an IP address or CIDR block");
    assert_eq!(error_count(&validation), 2, "{}", listing(&validation));
    let validation = se(r#"
            hosts: [db.internal]
            addresses: [10.0.0.0/8]
            ports: [{number: 5432, name: tcp, protocol: TCP}]
            resolution: DNS
        "#);
    error(&validation, "spec.addresses[0]", "needs resolution NONE or STATIC");
}

#[test]
fn workload_selectors_are_unsupported() {
    let validation = se(r#"
            hosts: [app.internal]
            ports: [{number: 80, name: http, protocol: HTTP}]
            resolution: STATIC
            workloadSelector: {labels: {app: vm}}
        "#);
    warning(&validation, "spec.workloadSelector", "not supported by pilotfish");
    no_errors(&validation);
}

// === Helpers of the module ===

#[test]
fn host_overlap_follows_istio_wildcards() {
    assert!(hosts_overlap("*", "a.example.com"));
    assert!(hosts_overlap("*.example.com", "a.example.com"));
    assert!(hosts_overlap("*.com", "*.example.com"));
    assert!(hosts_overlap("Reviews", "reviews"));
    assert!(!hosts_overlap("*.example.com", "example.com"));
    assert!(!hosts_overlap("a.example.com", "b.example.com"));
}

#[test]
fn domain_names_follow_istio_rules() {
    assert!(check_wildcard_domain("reviews").is_ok());
    assert!(check_wildcard_domain("*").is_ok());
    assert!(check_wildcard_domain("*.example.com").is_ok());
    assert!(check_wildcard_domain("istio.io.").is_ok());
    assert!(check_wildcard_domain("a.*.com").is_err());
    assert!(check_wildcard_domain("10.0.0.1").is_err(), "a numeric top-level label is an IP, not a name");
    assert!(check_wildcard_domain(&"a".repeat(64)).is_err());
    assert!(check_fqdn("*.example.com").is_err());
}
