//! Per-object validation of Gateways, VirtualServices, DestinationRules and ServiceEntries.
//!
//! The rules follow istiod's admission checks (`pkg/config/validation` in istio/istio), so what istiod rejects is an
//! error here, plus warnings for what pilotfish does not translate. An object with an error is listed in
//! [`Validation::invalid`]: translation skips it and keeps serving everything else. Warnings never invalidate.
//! Every diagnostic names the object, where it was read, and the field (`spec.http[0].route[1].weight`).
//!
//! This module looks at one object at a time. Checks across objects (a VirtualService naming a Gateway that does
//! not exist, two Gateways on one port, a route to a subset no DestinationRule defines) belong to
//! [`crate::analyze`] and translation, which see the whole [`World`].
//!
//! Codes: errors carry `IST0106` (istioctl's SchemaValidationError); deprecated fields `IST0002` (Deprecated);
//! rules and matches no request reaches `IST0130` and `IST0131` (VirtualServiceUnreachableRule, a warning, and
//! VirtualServiceIneffectiveMatch, an info). Warnings about what pilotfish does not support carry no code: istioctl
//! has none for them.

mod destination_rule;
mod gateway;
mod service_entry;
mod unreachable;
mod virtual_service;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::diagnostics::{Diagnostic, ObjectRef, Severity};
use crate::duration::parse_duration;
use crate::input::istio::{HeaderOperations, Headers, StringMatch};
use crate::input::{Input, Kind, Labels, Object, Source, World};

pub use destination_rule::validate_destination_rule;
pub use gateway::validate_gateway;
pub use service_entry::validate_service_entry;
pub use virtual_service::validate_virtual_service;

/// istioctl's code for a resource that fails schema validation.
const SCHEMA_ERROR: &str = "IST0106";
/// istioctl's code for a deprecated field.
const DEPRECATED: &str = "IST0002";

/// What validation found: diagnostics for every object, and the objects translation must skip.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validation {
    pub diagnostics: Vec<Diagnostic>,
    /// Objects with at least one error.
    pub invalid: BTreeSet<ObjectRef>,
}

impl Validation {
    /// Whether translation may use `object`.
    pub fn is_valid(&self, object: &ObjectRef) -> bool {
        !self.invalid.contains(object)
    }
}

/// Validates every Gateway, VirtualService, DestinationRule and ServiceEntry of `world`, in the world's order.
pub fn validate(world: &World) -> Validation {
    let checks = Checks::new(world, None);
    Validation { diagnostics: checks.diagnostics().cloned().collect(), invalid: checks.invalid(world) }
}

/// Validates one object; Services, EndpointSlices and Pods are not validated (always valid).
pub fn check_input(input: &Input) -> Check {
    Check::new(match input {
        Input::Gateway(o) => validate_gateway(o),
        Input::VirtualService(o) => validate_virtual_service(o),
        Input::DestinationRule(o) => validate_destination_rule(o),
        Input::ServiceEntry(o) => validate_service_entry(o),
        Input::Service(_) | Input::EndpointSlice(_) | Input::Pod(_) => Vec::new(),
    })
}

/// What validation found for one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Check {
    pub diagnostics: Vec<Diagnostic>,
    /// No diagnostic is an error.
    pub valid: bool,
}

impl Check {
    fn new(diagnostics: Vec<Diagnostic>) -> Check {
        let valid = !diagnostics.iter().any(|d| d.severity == Severity::Error);
        Check { diagnostics, valid }
    }
}

/// The [`Check`] of every validated object of a World, per kind in the World's order. Validation looks at one
/// object at a time, so the checks of a changed World reuse those of the objects it shares with the previous one
/// (the same `Arc`) and validate only the others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    pub gateways: Arc<Vec<Check>>,
    pub virtual_services: Arc<Vec<Check>>,
    pub destination_rules: Arc<Vec<Check>>,
    pub service_entries: Arc<Vec<Check>>,
}

impl Checks {
    /// Validates `world`; with `previous` (an earlier World and its checks), only what is not in it.
    pub fn new(world: &World, previous: Option<(&World, &Checks)>) -> Checks {
        let (before, checks) = match previous {
            Some((before, checks)) => (before, checks),
            None => (&World::default(), &Checks::default()),
        };
        Checks {
            gateways: check_each(&world.gateways, &before.gateways, &checks.gateways, validate_gateway),
            virtual_services: check_each(
                &world.virtual_services,
                &before.virtual_services,
                &checks.virtual_services,
                validate_virtual_service,
            ),
            destination_rules: check_each(
                &world.destination_rules,
                &before.destination_rules,
                &checks.destination_rules,
                validate_destination_rule,
            ),
            service_entries: check_each(
                &world.service_entries,
                &before.service_entries,
                &checks.service_entries,
                validate_service_entry,
            ),
        }
    }

    /// Every diagnostic, in the World's order (as [`validate`] lists them).
    pub fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        [&self.gateways, &self.virtual_services, &self.destination_rules, &self.service_entries]
            .into_iter()
            .flat_map(|checks| checks.iter())
            .flat_map(|check| &check.diagnostics)
    }

    /// The objects of `world` (the World these checks are of) with at least one error.
    pub fn invalid(&self, world: &World) -> BTreeSet<ObjectRef> {
        fn invalid<T>(objects: &[Arc<Object<T>>], checks: &[Check], kind: Kind) -> Vec<ObjectRef> {
            objects.iter().zip(checks).filter(|(_, check)| !check.valid).map(|(o, _)| o.reference(kind)).collect()
        }
        let mut all = invalid(&world.gateways, &self.gateways, Kind::Gateway);
        all.extend(invalid(&world.virtual_services, &self.virtual_services, Kind::VirtualService));
        all.extend(invalid(&world.destination_rules, &self.destination_rules, Kind::DestinationRule));
        all.extend(invalid(&world.service_entries, &self.service_entries, Kind::ServiceEntry));
        all.into_iter().collect()
    }
}

/// The checks of `objects`, reusing `checks` (of `before`) for the objects `before` has too: all of them when
/// `objects` are `before`'s.
fn check_each<T>(
    objects: &[Arc<Object<T>>],
    before: &[Arc<Object<T>>],
    checks: &Arc<Vec<Check>>,
    validate: fn(&Object<T>) -> Vec<Diagnostic>,
) -> Arc<Vec<Check>> {
    if objects.len() == before.len() && objects.iter().zip(before).all(|(a, b)| Arc::ptr_eq(a, b)) {
        return Arc::clone(checks);
    }
    let checked = objects
        .iter()
        .enumerate()
        .map(|(index, object)| match crate::input::position_in(before, object, index) {
            Some(found) => checks[found].clone(),
            None => Check::new(validate(object)),
        })
        .collect();
    Arc::new(checked)
}

// === Report ===

/// Collects the diagnostics of one object.
struct Report {
    object: ObjectRef,
    source: Option<Source>,
    diagnostics: Vec<Diagnostic>,
}

impl Report {
    fn new<T>(object: &Object<T>, kind: Kind) -> Report {
        Report { object: object.reference(kind), source: object.meta.source.clone(), diagnostics: Vec::new() }
    }

    fn push(&mut self, diagnostic: Diagnostic, field: impl Into<String>) {
        let diagnostic = diagnostic.object(self.object.clone(), self.source.clone()).field(field);
        self.diagnostics.push(diagnostic);
    }

    /// Something istiod rejects: the object is invalid.
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Diagnostic::error(message).code(SCHEMA_ERROR), field);
    }

    /// Something istiod accepts with a warning, or that pilotfish does not support.
    fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Diagnostic::warning(message), field);
    }

    fn deprecated(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(Diagnostic::warning(message).code(DEPRECATED), field);
    }

    fn finish(self) -> Vec<Diagnostic> {
        self.diagnostics
    }
}

// === Names and addresses ===

/// A DNS-1123 label as Istio checks it (`pkg/config/labels`): 1 to 63 letters, digits and `-`, starting and
/// ending with a letter or digit. Istio accepts upper case; so does pilotfish.
fn is_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// A label that may start with a wildcard: `*`, `*foo`, `*-foo`, or a plain label.
fn is_wildcard_dns1123_label(value: &str) -> bool {
    if value == "*" {
        return true;
    }
    let rest = value.strip_prefix("*-").or_else(|| value.strip_prefix('*')).unwrap_or(value);
    value.len() <= 63 && is_dns1123_label(rest)
}

fn check_dns_length(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > 255 {
        return Err(format!("{name:?} is too long for a domain name (at most 255 characters)"));
    }
    Ok(())
}

/// Labels of a domain name, the last of which may be empty (`istio.io.`); the top-level one not all digits.
fn check_dns_labels(name: &str, domain: &str) -> Result<(), String> {
    let labels: Vec<&str> = domain.split('.').collect();
    let top = labels[labels.len() - 1];
    if !top.is_empty() && top.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{name:?} is not a valid domain name: the top-level label {top:?} is all digits"));
    }
    for (index, label) in labels.iter().enumerate() {
        if index == labels.len() - 1 && label.is_empty() && index > 0 {
            break;
        }
        if !is_dns1123_label(label) {
            return Err(format!(
                "{name:?} is not a valid domain name: label {label:?} is not a DNS-1123 label (1 to 63 letters, \
                 digits and '-')"
            ));
        }
    }
    Ok(())
}

/// A fully qualified (or short) domain name without wildcards, as Istio's `ValidateFQDN`. The error follows the
/// name of the field: `host "a_b" is not a valid domain name: …`.
fn check_fqdn(name: &str) -> Result<(), String> {
    check_dns_length(name)?;
    check_dns_labels(name, name)
}

/// A domain name whose first label may be a wildcard (`*`, `*.example.com`), as Istio's `ValidateWildcardDomain`.
fn check_wildcard_domain(name: &str) -> Result<(), String> {
    check_dns_length(name)?;
    let (first, rest) = match name.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    if !is_wildcard_dns1123_label(first) {
        return Err(format!(
            "{name:?} is not a valid domain name: label {first:?} is not a DNS-1123 label (1 to 63 letters, digits \
             and '-'; only the first label may be '*' or start with '*')"
        ));
    }
    match rest {
        Some(rest) => check_dns_labels(name, rest),
        None => Ok(()),
    }
}

/// `*foo.com`: a wildcard that is not a whole label.
fn is_partial_wildcard(host: &str) -> bool {
    host.contains('*') && host != "*" && !host.starts_with("*.")
}

fn is_ip(value: &str) -> bool {
    value.parse::<IpAddr>().is_ok()
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
fn is_ip_or_cidr(value: &str) -> bool {
    let Some((ip, bits)) = value.split_once('/') else { return is_ip(value) };
    let Ok(ip) = ip.parse::<IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (1..=3).contains(&bits.len())
        && bits.bytes().all(|b| b.is_ascii_digit())
        && bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// Whether two hosts of one object overlap: equal, or one's wildcard covers the other (`*.com` and `a.com`).
pub(crate) fn hosts_overlap(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let covers = |wildcard: &str, host: &str| {
        wildcard.strip_prefix('*').is_some_and(|suffix| {
            let suffix = suffix.to_ascii_lowercase();
            match host.strip_prefix('*') {
                Some(other) => other.to_ascii_lowercase().ends_with(&suffix),
                None => host.to_ascii_lowercase().ends_with(&suffix),
            }
        })
    };
    covers(a, b) || covers(b, a)
}

/// A port number in 1..65535.
fn check_port(report: &mut Report, field: impl Into<String>, what: &str, number: i64) {
    if !(1..=65535).contains(&number) {
        report.error(field, format!("{what} must be in 1..65535, got {number}"));
    }
}

/// A Kubernetes label map, as Istio checks `sourceLabels` and subset labels.
fn check_labels(report: &mut Report, field: &str, labels: &Labels) {
    for (key, value) in labels {
        if !is_label_key(key) {
            report.error(
                format!("{field}.{key}"),
                format!(
                    "label key {key:?} is invalid: expected an optional DNS prefix and '/', then 1 to 63 letters, \
                     digits, '-', '_' or '.', starting and ending with a letter or digit"
                ),
            );
        }
        if !value.is_empty() && !is_qualified_name(value) {
            report.error(
                format!("{field}.{key}"),
                format!(
                    "label value {value:?} is invalid: expected letters, digits, '-', '_' or '.', starting and ending \
                     with a letter or digit"
                ),
            );
        }
    }
}

fn is_qualified_name(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(|p| p.len() <= 253 && !p.is_empty() && p.split('.').all(is_dns1123_label));
    prefix_ok && name.len() <= 63 && is_qualified_name(name)
}

// === Durations and numbers ===

/// How small a duration may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Minimum {
    /// Istio's rule: at least 1ms, whole milliseconds.
    Millisecond,
    /// `0s` also allowed (it turns the thing off); otherwise as [`Minimum::Millisecond`].
    ZeroOrMillisecond,
}

/// Parses a duration field and checks Istio's rules: at least 1ms, whole milliseconds.
fn check_duration(report: &mut Report, field: impl Into<String>, what: &str, text: &str, minimum: Minimum) {
    let field = field.into();
    match parse_duration(text) {
        Err(err) => report.error(field, format!("{what} is not a valid duration: {err}")),
        Ok(Duration::ZERO) if minimum == Minimum::ZeroOrMillisecond => {}
        Ok(d) if d < Duration::from_millis(1) => {
            let allowed = if minimum == Minimum::ZeroOrMillisecond { "0s or at least 1ms" } else { "at least 1ms" };
            report.error(field, format!("{what} must be {allowed}, got {text:?}"));
        }
        Ok(d) if !d.subsec_nanos().is_multiple_of(1_000_000) => {
            report.error(field, format!("{what} must be whole milliseconds (e.g. 1.5s, 250ms), got {text:?}"));
        }
        Ok(_) => {}
    }
}

/// A percentage as Istio's `Percent` message: 0, or 0.0001 to 100.
fn check_percentage(report: &mut Report, field: impl Into<String>, what: &str, value: f64) {
    if !(0.0..=100.0).contains(&value) || (value > 0.0 && value < 0.0001) {
        report.error(field, format!("{what} must be 0 or between 0.0001 and 100, got {value}"));
    }
}

/// A mirror percentage: istiod checks only the range.
fn check_mirror_percentage(report: &mut Report, field: impl Into<String>, what: &str, value: f64) {
    if !(0.0..=100.0).contains(&value) {
        report.error(field, format!("{what} must be between 0 and 100, got {value}"));
    }
}

/// A whole percentage (deprecated fields, outlier detection): 0 to 100.
fn check_whole_percent(report: &mut Report, field: impl Into<String>, what: &str, value: i64) {
    if !(0..=100).contains(&value) {
        report.error(field, format!("{what} must be between 0 and 100, got {value}"));
    }
}

fn check_non_negative(report: &mut Report, field: impl Into<String>, what: &str, value: i64) {
    if value < 0 {
        report.error(field, format!("{what} must be 0 or more, got {value}"));
    }
}

// === exportTo ===

/// Istio checks `exportTo` entries; pilotfish does not enforce visibility at all, which it says once.
fn check_export_to(report: &mut Report, namespace: &str, export_to: &[String], service_entry: bool) {
    let mut seen = BTreeSet::new();
    let mut restricted = false;
    for (index, entry) in export_to.iter().enumerate() {
        let field = format!("spec.exportTo[{index}]");
        let key = if entry == "." { namespace } else { entry.as_str() };
        if !seen.insert(key.to_owned()) {
            report.error(field, format!("exportTo lists {entry:?} more than once (\".\" is this namespace)"));
            continue;
        }
        match entry.as_str() {
            "*" | "." => {}
            "~" if service_entry => restricted = true,
            other if is_dns1123_label(other) => restricted = true,
            other => report.error(
                field,
                format!("exportTo entry {other:?} is invalid: expected \"*\", \".\", or a namespace name"),
            ),
        }
    }
    if seen.contains("*") && export_to.len() > 1 {
        report.error("spec.exportTo", "exportTo cannot list \"*\" together with other entries");
    }
    if seen.contains("~") && export_to.len() > 1 {
        report.error("spec.exportTo", "exportTo cannot list \"~\" (no one) together with other entries");
    }
    if restricted {
        report.warning("spec.exportTo", "exportTo is not enforced by pilotfish: the object is visible everywhere");
    }
}

// === Matches, regexes and headers ===

/// Where a [`StringMatch`] is used: what may be empty differs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MatchUse {
    /// `uri`: an empty prefix matches every path.
    Uri,
    /// `scheme`, `method`, `authority`, `corsPolicy.allowOrigins`: one non-empty kind.
    Value,
    /// `headers`, `queryParams`: `{}` means "present".
    Presence,
    /// `withoutHeaders`: as [`MatchUse::Presence`], and `regex: "*"` also means "present".
    Absence,
}

/// Exactly one of `exact`, `prefix`, `regex` (none only where `{}` means "present"); prefixes and regexes
/// non-empty; regexes plausible RE2.
fn check_string_match(report: &mut Report, field: &str, what: &str, m: &StringMatch, usage: MatchUse) {
    let set: Vec<&str> = [("exact", &m.exact), ("prefix", &m.prefix), ("regex", &m.regex)]
        .into_iter()
        .filter_map(|(name, value)| value.as_ref().map(|_| name))
        .collect();
    if set.len() > 1 {
        report.error(field, format!("{what} must set exactly one of exact, prefix, regex; got {}", set.join(" and ")));
        return;
    }
    if set.is_empty() {
        if matches!(usage, MatchUse::Uri | MatchUse::Value) {
            report.error(field, format!("{what} is empty: set exactly one of exact, prefix, regex"));
        }
        return;
    }
    if let Some(prefix) = &m.prefix
        && prefix.is_empty()
        && usage != MatchUse::Uri
    {
        report.error(format!("{field}.prefix"), format!("{what} prefix must not be empty"));
    }
    if let Some(exact) = &m.exact
        && exact.is_empty()
        && usage == MatchUse::Value
    {
        report.error(format!("{field}.exact"), format!("{what} exact value must not be empty"));
    }
    if let Some(regex) = &m.regex {
        if usage == MatchUse::Absence && regex == "*" {
            return;
        }
        if let Err(err) = check_regex(regex) {
            report.error(format!("{field}.regex"), format!("{what} regex {regex:?} is invalid: {err}"));
        }
    }
}

/// A light check that `pattern` is RE2 Envoy will accept: non-empty, at most 1024 bytes, balanced groups and
/// classes, no escape at the very end, no look-around or back-references (RE2 has neither), and no repetition
/// operator with nothing to repeat. Not a full parser: pilotfish keeps no regex engine.
fn check_regex(pattern: &str) -> Result<(), String> {
    const RE2: &str = "Istio and Envoy use RE2 syntax (https://github.com/google/re2/wiki/Syntax)";
    if pattern.is_empty() {
        return Err("a regex must not be empty".to_owned());
    }
    if pattern.len() > 1024 {
        return Err(format!("a regex may be at most 1024 bytes, this one has {}", pattern.len()));
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut depth = 0usize;
    let mut index = 0;
    // Whether the previous token can take a repetition operator.
    let mut repeatable = false;
    while index < chars.len() {
        match chars[index] {
            '\\' => {
                let Some(next) = chars.get(index + 1) else {
                    return Err("trailing backslash: escape something or write \\\\".to_owned());
                };
                if next.is_ascii_digit() && *next != '0' {
                    return Err(format!("back-reference \\{next} is not supported; {RE2}"));
                }
                index += 2;
                repeatable = true;
                continue;
            }
            '[' => {
                // A class ends at the first `]` that is not its first member; escapes inside are skipped.
                let mut end = index + 1;
                if chars.get(end) == Some(&'^') {
                    end += 1;
                }
                if chars.get(end) == Some(&']') {
                    end += 1;
                }
                loop {
                    match chars.get(end) {
                        None => return Err("missing closing ]".to_owned()),
                        Some('\\') => end += 2,
                        Some(']') => break,
                        Some(_) => end += 1,
                    }
                }
                index = end + 1;
                repeatable = true;
                continue;
            }
            '(' => {
                if chars.get(index + 1) == Some(&'?') {
                    let after: String = chars[index + 2..].iter().take(2).collect();
                    if after.starts_with('=') || after.starts_with('!') || after == "<=" || after == "<!" {
                        return Err(format!("look-around (?{after}…) is not supported; {RE2}"));
                    }
                    index += 2;
                } else {
                    index += 1;
                }
                depth += 1;
                repeatable = false;
                continue;
            }
            ')' => {
                if depth == 0 {
                    return Err("unexpected ): no group is open".to_owned());
                }
                depth -= 1;
                repeatable = true;
            }
            '|' => repeatable = false,
            '*' | '+' | '?' => {
                if !repeatable {
                    return Err(format!("missing argument to repetition operator {}", chars[index]));
                }
                // A lazy or possessive suffix (`*?`) repeats nothing new; the next token starts afresh.
                if chars.get(index + 1) == Some(&'?') {
                    index += 1;
                }
                repeatable = false;
            }
            _ => repeatable = true,
        }
        index += 1;
    }
    if depth > 0 {
        return Err("missing closing )".to_owned());
    }
    Ok(())
}

/// A header name in a match, as Istio's `ValidateHTTPHeaderName`: letters, digits, `-` and `_`.
fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Which side of a request a header operation applies to: Istio lets only request `set`/`add` touch the
/// authority.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeaderSide {
    Request,
    Response,
}

/// Header operations (`headers.request.set` and friends) of a route or a destination.
fn check_headers(report: &mut Report, field: &str, headers: &Headers) {
    if let Some(request) = &headers.request {
        check_header_operations(report, &format!("{field}.request"), request, HeaderSide::Request);
    }
    if let Some(response) = &headers.response {
        check_header_operations(report, &format!("{field}.response"), response, HeaderSide::Response);
    }
}

fn check_header_operations(report: &mut Report, field: &str, ops: &HeaderOperations, side: HeaderSide) {
    for (verb, values) in [("set", &ops.set), ("add", &ops.add)] {
        for (name, value) in values {
            let at = format!("{field}.{verb}.{name}");
            check_header_operation_name(report, &at, name, side == HeaderSide::Request);
            if let Err(err) = check_header_value(value) {
                report.error(at, format!("header value {value:?} is invalid: {err}"));
            }
        }
    }
    for (index, name) in ops.remove.iter().enumerate() {
        check_header_operation_name(report, &format!("{field}.remove[{index}]"), name, false);
    }
}

/// Envoy cannot modify pseudo-headers; Istio lets request `set`/`add` rewrite the authority (`:authority` or
/// `host`) and nothing else.
fn check_header_operation_name(report: &mut Report, field: &str, name: &str, may_set_authority: bool) {
    let authority = name.eq_ignore_ascii_case(":authority") || name.eq_ignore_ascii_case("host");
    if name.is_empty() {
        report.error(field, "header name must not be empty");
    } else if authority && !may_set_authority {
        report.error(
            field,
            format!("header {name:?} cannot be changed here: only request set/add may rewrite the authority"),
        );
    } else if name.starts_with(':') && !authority {
        report.error(
            field,
            format!("header {name:?} cannot be changed: pseudo-headers other than :authority are off limits"),
        );
    }
}

/// A header value for Envoy: no control characters, and `%` either doubled or around a variable
/// (`%HOSTNAME%`, `%START_TIME(%s)%`), as Envoy's header parser reads it.
fn check_header_value(value: &str) -> Result<(), String> {
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("control characters are not allowed".to_owned());
    }
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum State {
        Literal,
        Name,
        ExpectArray,
        ExpectString,
        InString,
        ExpectDelimiterOrEnd,
        ExpectArgsEnd,
        ExpectVariableEnd,
    }
    let bytes = value.as_bytes();
    let mut state = State::Literal;
    let mut index = 0;
    while index < bytes.len() {
        let b = bytes[index];
        state = match state {
            State::Literal if b == b'%' => match bytes.get(index + 1) {
                None => return Err("a lone % at the end: write %% for a literal percent sign".to_owned()),
                Some(b'%') => {
                    index += 1;
                    State::Literal
                }
                Some(_) => State::Name,
            },
            State::Literal => State::Literal,
            State::Name => match b {
                b'%' => State::Literal,
                b'(' => State::ExpectArray,
                _ => State::Name,
            },
            State::ExpectArray => match b {
                b'[' => State::ExpectString,
                b' ' => State::ExpectArray,
                _ => State::InString,
            },
            State::ExpectString => match b {
                b'"' => State::InString,
                b' ' => State::ExpectString,
                _ => return Err("expected '\"' to start an argument".to_owned()),
            },
            State::InString => match b {
                b'\\' if index + 1 == bytes.len() => return Err("unterminated backslash".to_owned()),
                b'\\' => {
                    index += 1;
                    State::InString
                }
                b')' => State::ExpectVariableEnd,
                b'"' => State::ExpectDelimiterOrEnd,
                _ => State::InString,
            },
            State::ExpectDelimiterOrEnd => match b {
                b',' => State::ExpectString,
                b']' => State::ExpectArgsEnd,
                b' ' => State::ExpectDelimiterOrEnd,
                _ => return Err("expected ',' or ']' between arguments".to_owned()),
            },
            State::ExpectArgsEnd => match b {
                b')' => State::ExpectVariableEnd,
                b' ' => State::ExpectArgsEnd,
                _ => return Err("expected ')' to close the arguments".to_owned()),
            },
            State::ExpectVariableEnd => match b {
                b'%' => State::Literal,
                b' ' => State::ExpectVariableEnd,
                _ => return Err("expected '%' to end the variable".to_owned()),
            },
        };
        index += 1;
    }
    if state != State::Literal {
        return Err("unterminated %VARIABLE%: write %% for a literal percent sign".to_owned());
    }
    Ok(())
}

/// Protocols Istio knows (`pkg/config/protocol`), upper case.
const ISTIO_PROTOCOLS: [&str; 12] =
    ["HTTP", "HTTPS", "GRPC", "GRPC-WEB", "HTTP2", "HTTP_PROXY", "MONGO", "REDIS", "MYSQL", "TCP", "TLS", "UDP"];

fn is_istio_protocol(protocol: &str) -> bool {
    ISTIO_PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(protocol))
}

#[cfg(test)]
mod tests;
