//! Rules and matches of a VirtualService no request can reach, as istiod's validation finds them
//! (`analyzeUnreachableHTTPRules` and its TCP and TLS twins): IST0130 for a rule that is never used (after a rule
//! without matches, or all of whose matches an earlier rule has), IST0131 for a match that is never used (an earlier
//! rule has the same match, or an earlier URI prefix match covers it with the same other conditions).

use std::collections::BTreeMap;

use super::Report;
use crate::diagnostics::Diagnostic;
use crate::input::istio::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};

/// istioctl's code for a rule no request can reach.
const UNREACHABLE_RULE: &str = "IST0130";
/// istioctl's code for a match an earlier one makes useless.
const INEFFECTIVE_MATCH: &str = "IST0131";

pub fn check(report: &mut Report, spec: &VirtualService) {
    let http: Vec<Rule<'_, HttpMatchRequest>> = spec
        .http
        .iter()
        .map(|route| Rule { name: route.name.as_str(), matches: route.matches.iter().collect() })
        .collect();
    check_rules(report, "http", &http, |m| HttpMatchRequest { name: String::new(), ..(*m).clone() });
    check_overlapping_prefixes(report, &spec.http);
    for (kind, rules) in [("tcp", &spec.tcp), ("tls", &spec.tls)] {
        let rules: Vec<Rule<'_, serde_json::Value>> = rules
            .iter()
            .map(|rule| Rule {
                name: "",
                matches: rule.get("match").and_then(serde_json::Value::as_array).into_iter().flatten().collect(),
            })
            .collect();
        check_rules(report, kind, &rules, |m| (*m).clone());
    }
}

/// A rule as this check sees it: its name (HTTP rules may have one) and its matches.
struct Rule<'a, M> {
    name: &'a str,
    matches: Vec<&'a M>,
}

/// How istiod names a rule or match in these messages: `"name"`, or `#index`.
fn named(name: &str, index: usize) -> String {
    if name.is_empty() { format!("#{index}") } else { format!("{name:?}") }
}

fn unreachable(report: &mut Report, field: String, message: String) {
    report.push(Diagnostic::warning(message).code(UNREACHABLE_RULE), field);
}

fn ineffective(report: &mut Report, field: String, message: String) {
    report.push(Diagnostic::info(message).code(INEFFECTIVE_MATCH), field);
}

/// Rules after one without matches, and matches an earlier rule has already (`key` is what makes two matches the
/// same: everything but their names).
fn check_rules<M, K: PartialEq>(report: &mut Report, kind: &str, rules: &[Rule<'_, M>], key: impl Fn(&M) -> K) {
    // Each match seen so far (by its key) and the rule it is in.
    let mut seen: Vec<(K, usize)> = Vec::new();
    let mut catch_all: Option<usize> = None;
    for (index, rule) in rules.iter().enumerate() {
        let field = format!("spec.{kind}[{index}]");
        let name = named(rule.name, index);
        if rule.matches.is_empty() {
            if let Some(first) = catch_all {
                unreachable(
                    report,
                    field,
                    format!(
                        "rule {name} is never used: {kind}[{first}] before it has no match and takes every request \
                         (only the last rule may have no match)"
                    ),
                );
            }
            catch_all = Some(index);
            continue;
        }
        let mut duplicates = 0;
        for (match_index, m) in rule.matches.iter().enumerate() {
            let match_field = format!("{field}.match[{match_index}]");
            if let Some(first) = catch_all {
                unreachable(
                    report,
                    match_field,
                    format!(
                        "rule {name} is never used: {kind}[{first}] before it has no match and takes every request"
                    ),
                );
                continue;
            }
            let key = key(m);
            match seen.iter().find(|(seen, _)| *seen == key) {
                Some((_, earlier)) => {
                    duplicates += 1;
                    ineffective(
                        report,
                        match_field,
                        format!(
                            "match {} of rule {name} is never used: rule {} before it has the same match",
                            named("", match_index),
                            named(rules[*earlier].name, *earlier)
                        ),
                    );
                }
                None => seen.push((key, index)),
            }
        }
        if duplicates == rule.matches.len() {
            unreachable(
                report,
                field,
                format!("rule {name} is never used: every one of its matches is a match of a rule before it"),
            );
        }
    }
}

/// An HTTP match with a URI prefix, reduced to what tells whether an earlier one covers it (istiod's
/// `OverlappingMatchValidationForHTTPRoute`): `exact:`/`prefix:` strings, regexes left out.
struct PrefixMatch {
    rule: String,
    field: String,
    name: String,
    prefix: String,
    port: i64,
    method: String,
    authority: String,
    headers: BTreeMap<String, String>,
    query_params: BTreeMap<String, String>,
    without_headers: BTreeMap<String, String>,
}

fn exact_or_prefix(m: Option<&StringMatch>) -> String {
    match m {
        Some(StringMatch { exact: Some(exact), .. }) if !exact.is_empty() => format!("exact:{exact}"),
        Some(StringMatch { prefix: Some(prefix), .. }) if !prefix.is_empty() => format!("prefix:{prefix}"),
        _ => String::new(),
    }
}

fn exact_or_prefix_map(map: &BTreeMap<String, StringMatch>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), exact_or_prefix(Some(v)))).collect()
}

/// Whether a condition of an earlier match takes every value the later one does: the same, or (as istiod compares
/// them) one the earlier starts with.
fn covers(earlier: &str, later: &str) -> bool {
    earlier == later || earlier.starts_with(later)
}

fn covers_all(earlier: &BTreeMap<String, String>, later: &BTreeMap<String, String>) -> bool {
    earlier.len() == later.len()
        && earlier.iter().all(|(key, value)| later.get(key).is_some_and(|other| covers(value, other)))
}

impl PrefixMatch {
    /// istiod's `coveredValidation`: `self` (earlier) leaves `later` nothing to match.
    fn covers(&self, later: &PrefixMatch) -> bool {
        later.prefix.starts_with(&self.prefix)
            && self.port == later.port
            && covers(&self.method, &later.method)
            && covers(&self.authority, &later.authority)
            && covers_all(&self.headers, &later.headers)
            && covers_all(&self.query_params, &later.query_params)
            && covers_all(&self.without_headers, &later.without_headers)
    }
}

/// IST0131 for URI prefix matches an earlier prefix match covers, with the same port, method (GET when none is
/// given), authority, headers and query parameters. Matches that are plain duplicates are reported above.
fn check_overlapping_prefixes(report: &mut Report, routes: &[HttpRoute]) {
    let mut prefixes = Vec::new();
    let mut seen: Vec<HttpMatchRequest> = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        if route.matches.is_empty() {
            break; // what follows a rule without matches is unreachable, reported above
        }
        for (match_index, m) in route.matches.iter().enumerate() {
            let unnamed = HttpMatchRequest { name: String::new(), ..m.clone() };
            if seen.contains(&unnamed) {
                continue;
            }
            seen.push(unnamed);
            let Some(prefix) = m.uri.as_ref().and_then(|u| u.prefix.as_ref()).filter(|p| !p.is_empty()) else {
                continue;
            };
            let method = exact_or_prefix(m.method.as_ref());
            prefixes.push(PrefixMatch {
                rule: named(&route.name, index),
                field: format!("spec.http[{index}].match[{match_index}]"),
                name: named(&m.name, match_index),
                prefix: prefix.clone(),
                port: m.port.unwrap_or(0),
                method: if method.is_empty() { "exact:GET".to_owned() } else { method },
                authority: exact_or_prefix(m.authority.as_ref()),
                headers: exact_or_prefix_map(&m.headers),
                query_params: exact_or_prefix_map(&m.query_params),
                without_headers: exact_or_prefix_map(&m.without_headers),
            });
        }
    }
    for (position, earlier) in prefixes.iter().enumerate() {
        for later in &prefixes[position + 1..] {
            if later.prefix != earlier.prefix && earlier.covers(later) {
                ineffective(
                    report,
                    later.field.clone(),
                    format!(
                        "match {} (prefix {}) of rule {} is never used: match {} (prefix {}) of rule {} before it \
                         takes every request it would",
                        later.name, later.prefix, later.rule, earlier.name, earlier.prefix, earlier.rule
                    ),
                );
            }
        }
    }
}
