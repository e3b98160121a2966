//! Generated configuration for pilotfish's fuzz and property tests.
//!
//! [`world`] turns bytes (from a fuzzer, or a seeded generator: [`Seeded`]) into a YAML stream of Istio and
//! Kubernetes objects drawn from small pools of names, hosts, ports and labels, so that objects refer to each other
//! as real configuration does (a VirtualService routing to a ServiceEntry's host and a DestinationRule's subset,
//! through a Gateway that selects a proxy). [`Flavor`] says how much goes wrong: nothing (every object as Istio
//! accepts it), nearly (values just out of range, a misspelled field or kind, a dangling reference), or anything
//! (wrong types, broken YAML, random bytes spliced in).
//!
//! The output is text, so that what is tested is what a user writes; the generator knows nothing of pilotfish's
//! types.

use std::fmt::Write;

use arbitrary::{Result, Unstructured};

/// How much of the generated configuration is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Every object is one Istio accepts, and every reference resolves.
    Valid,
    /// Valid YAML, objects of known kinds; some values out of range, misspelled fields or kinds, dangling
    /// references, duplicates.
    Nearly,
    /// Nearly, plus wrong types and damaged text.
    Wrong,
}

/// A generated configuration: YAML text, and the proxy classes worth translating it for.
#[derive(Clone, Debug)]
pub struct World {
    pub yaml: String,
    pub flavor: Flavor,
    /// Gateway workload labels (`istio=...`) that generated Gateways select, and namespaces with sidecars.
    pub gateway_labels: Vec<(String, String)>,
    pub namespaces: Vec<String>,
    /// Requests worth explaining: `(host, port, path, headers)`.
    pub requests: Vec<Request>,
}

#[derive(Clone, Debug)]
pub struct Request {
    pub host: String,
    pub port: u16,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

const NAMESPACES: [&str; 3] = ["default", "shop", "istio-system"];
const SERVICES: [&str; 5] = ["reviews", "ratings", "details", "productpage", "web"];
const VERSIONS: [&str; 3] = ["v1", "v2", "v3"];
const GATEWAY_LABELS: [&str; 2] = ["ingressgateway", "egressgateway"];
const PATHS: [&str; 6] = ["/", "/api", "/productpage", "/static/app.js", "/login", "/reviews/1"];
const USERS: [&str; 3] = ["jason", "alice", "bob"];
const DURATIONS: [&str; 5] = ["1s", "0.5s", "250ms", "10s", "1m"];
const BAD_DURATIONS: [&str; 5] = ["0s", "0.0001s", "-1s", "soon", "1.5"];
const REGEXES: [&str; 4] = ["/api/v[0-9]+/.*", "^/static/.*", "/(a|b)", ".*"];
const BAD_REGEXES: [&str; 3] = ["/x[z-a]", "/(unclosed", "(?=look)"];
const RETRY_ON: [&str; 3] = ["5xx", "gateway-error,connect-failure", "503,retriable-4xx"];
const TYPOS: [(&str, &str); 8] = [
    ("timeout", "timout"),
    ("hosts", "host"),
    ("destination", "destinaton"),
    ("subsets", "subset"),
    ("match", "matches"),
    ("weight", "wieght"),
    ("gateways", "gateway"),
    ("selector", "selectr"),
];
const KIND_TYPOS: [(&str, &str); 3] =
    [("VirtualService", "VirtualSerivce"), ("DestinationRule", "DestinationRules"), ("Gateway", "GateWay")];

/// A configuration of `flavor`, drawn from `u`.
pub fn world(u: &mut Unstructured<'_>, flavor: Flavor) -> Result<World> {
    let mut g = Generator { u, flavor, docs: Vec::new(), services: Vec::new(), gateways: Vec::new() };
    let services = g.u.int_in_range(1..=4)?;
    for _ in 0..services {
        g.service()?;
    }
    let gateways = g.u.int_in_range(0..=2)?;
    for index in 0..gateways {
        g.gateway(index)?;
    }
    let routes = g.u.int_in_range(1..=4)?;
    for index in 0..routes {
        g.virtual_service(index)?;
    }
    if flavor != Flavor::Valid && g.u.ratio(1, 4)? {
        g.unsupported_kind()?;
    }
    let mut docs = std::mem::take(&mut g.docs);
    if flavor != Flavor::Valid {
        for doc in &mut docs {
            if g.u.ratio(1, 6)? {
                *doc = g.misspell(doc)?;
            }
        }
        if g.u.ratio(1, 8)? && !docs.is_empty() {
            let again = docs[g.u.choose_index(docs.len())?].clone();
            docs.push(again);
        }
    }
    let mut yaml = docs.join("---\n");
    if flavor == Flavor::Wrong {
        yaml = g.damage(yaml)?;
    }
    let requests = g.requests()?;
    let gateway_labels = GATEWAY_LABELS.iter().map(|l| ("istio".to_owned(), (*l).to_owned())).collect();
    let namespaces = NAMESPACES.iter().map(|n| (*n).to_owned()).collect();
    Ok(World { yaml, flavor, gateway_labels, namespaces, requests })
}

struct Generator<'u, 'b> {
    u: &'u mut Unstructured<'b>,
    flavor: Flavor,
    docs: Vec<String>,
    /// `(name, namespace, host, port, subsets)` of the services made so far (subsets: the versions a
    /// DestinationRule defines, none without one).
    services: Vec<(String, String, String, u16, Vec<&'static str>)>,
    /// `namespace/name` of the Gateways made so far, with their hosts.
    gateways: Vec<(String, String)>,
}

impl Generator<'_, '_> {
    fn pick<T: Copy>(&mut self, from: &[T]) -> Result<T> {
        Ok(*self.u.choose(from)?)
    }

    /// Now and then, when something may go wrong: `wrong`, else `right`.
    fn maybe<'a>(&mut self, right: &'a str, wrong: &'a str) -> Result<&'a str> {
        Ok(if self.flavor != Flavor::Valid && self.u.ratio(1, 8)? { wrong } else { right })
    }

    /// A ServiceEntry with STATIC endpoints (or a Kubernetes Service with Pods), and often a DestinationRule with
    /// subsets by version.
    fn service(&mut self) -> Result<()> {
        let name = self.pick(&SERVICES)?;
        let namespace = self.pick(&NAMESPACES)?;
        if self.services.iter().any(|s| s.0 == name && s.1 == namespace) {
            return Ok(());
        }
        let port: u16 = self.pick(&[80, 9080, 8080, 443])?;
        let versions: Vec<&'static str> =
            VERSIONS.iter().copied().filter(|_| self.u.ratio(2, 3).unwrap_or(true)).collect();
        let host = format!("{name}.{namespace}.svc.cluster.local");
        if self.u.ratio(1, 3)? {
            self.kubernetes_service(name, namespace, port, &versions)?;
        } else {
            let mut endpoints = String::new();
            for (i, version) in versions.iter().enumerate() {
                let _ = writeln!(
                    endpoints,
                    "  - {{address: 10.{}.{}.{}, labels: {{app: {name}, version: {version}}}}}",
                    self.services.len(),
                    i,
                    self.u.int_in_range(1..=250)?
                );
            }
            let resolution = self.maybe("STATIC", "STATIK")?;
            let protocol = self.pick(&["HTTP", "HTTP", "HTTP2", "GRPC", "TCP"])?;
            let endpoints = if endpoints.is_empty() { " []\n".to_owned() } else { format!("\n{endpoints}") };
            self.docs.push(format!(
                "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  ports: [{{number: {port}, name: http, protocol: {protocol}}}]\n  resolution: {resolution}\n  endpoints:{endpoints}"
            ));
        }
        let subsets = if self.u.ratio(2, 3)? {
            self.destination_rule(name, namespace, &host, &versions)?;
            versions
        } else {
            Vec::new()
        };
        self.services.push((name.to_owned(), namespace.to_owned(), host, port, subsets));
        Ok(())
    }

    fn kubernetes_service(&mut self, name: &str, namespace: &str, port: u16, versions: &[&str]) -> Result<()> {
        let target = self.u.int_in_range(8000..=9999)?;
        self.docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  selector: {{app: {name}}}\n  clusterIP: 10.96.{}.{}\n  ports: [{{name: http, port: {port}, targetPort: {target}}}]\n",
            self.services.len(),
            self.u.int_in_range(1..=250)?
        ));
        for (i, version) in versions.iter().enumerate() {
            let ready = if self.u.ratio(5, 6)? { "True" } else { "False" };
            self.docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}-{version}-{i}, namespace: {namespace}, labels: {{app: {name}, version: {version}}}}}\nspec:\n  containers: [{{name: app, image: app, ports: [{{containerPort: {target}, name: http}}]}}]\nstatus:\n  podIP: 10.1.{}.{}\n  phase: Running\n  conditions: [{{type: Ready, status: \"{ready}\"}}]\n",
                self.services.len(),
                i + 10
            ));
        }
        Ok(())
    }

    fn destination_rule(&mut self, name: &str, namespace: &str, host: &str, versions: &[&str]) -> Result<()> {
        let mut subsets = String::new();
        for version in versions {
            let subset = self.maybe(version, "V_1")?;
            let _ = writeln!(subsets, "  - {{name: {subset}, labels: {{version: {version}}}}}");
        }
        let mut policy = String::new();
        if self.u.ratio(1, 2)? {
            let lb = self.pick(&["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"])?;
            let lb = self.maybe(lb, "FASTEST")?;
            let _ = write!(policy, "  trafficPolicy:\n    loadBalancer: {{simple: {lb}}}\n");
            if self.u.ratio(1, 2)? {
                let connect = self.pick(&DURATIONS)?;
                let bad = self.pick(&BAD_DURATIONS)?;
                let connect = self.maybe(connect, bad)?;
                let max = self.u.int_in_range(1..=1000)?;
                let _ = writeln!(
                    policy,
                    "    connectionPool: {{tcp: {{maxConnections: {max}, connectTimeout: {connect}}}, http: {{http1MaxPendingRequests: {max}}}}}"
                );
            }
            if self.u.ratio(1, 3)? {
                let errors = self.u.int_in_range(1..=10)?;
                let _ = writeln!(
                    policy,
                    "    outlierDetection: {{consecutive5xxErrors: {errors}, interval: 10s, baseEjectionTime: 30s}}"
                );
            }
        }
        let subsets = if subsets.is_empty() { " []\n".to_owned() } else { format!("\n{subsets}") };
        self.docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  host: {host}\n{policy}  subsets:{subsets}"
        ));
        Ok(())
    }

    fn gateway(&mut self, index: u32) -> Result<()> {
        let namespace = self.pick(&NAMESPACES)?;
        let name = format!("gw-{index}");
        let label = self.pick(&GATEWAY_LABELS)?;
        let port = self.pick(&[80u16, 8080, 8081])?;
        let protocol = self.pick(&["HTTP", "HTTP", "HTTP2", "HTTPS"])?;
        let protocol = self.maybe(protocol, "HTTP/1.1")?;
        let hosts = self.pick(&["\"*\"", "bookinfo.example.com", "\"*.example.com\"", "./bookinfo.example.com"])?;
        let tls = if protocol == "HTTPS" { "\n    tls: {mode: SIMPLE, credentialName: bookinfo-cert}" } else { "" };
        self.docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  selector: {{istio: {label}}}\n  servers:\n  - port: {{number: {port}, name: http-{index}, protocol: {protocol}}}\n    hosts: [{hosts}]{tls}\n"
        ));
        self.gateways
            .push((format!("{namespace}/{name}"), hosts.trim_matches('"').trim_start_matches("./").to_owned()));
        Ok(())
    }

    fn virtual_service(&mut self, index: u32) -> Result<()> {
        if self.services.is_empty() {
            return Ok(());
        }
        let namespace = self.pick(&NAMESPACES)?;
        let name = format!("route-{index}");
        let (gateways, hosts) = if !self.gateways.is_empty() && self.u.ratio(1, 2)? {
            let (gateway, host) = self.u.choose(&self.gateways)?.clone();
            let host = if host == "*" || host.starts_with('*') { "bookinfo.example.com".to_owned() } else { host };
            (format!("  gateways: [{gateway}]\n"), host)
        } else {
            let service = self.u.choose_index(self.services.len())?;
            (String::new(), self.services[service].2.clone())
        };
        let mut http = String::new();
        let routes = self.u.int_in_range(1..=3)?;
        for route in 0..routes {
            http.push_str(&self.http_route(route == routes - 1)?);
        }
        self.docs.push(format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  hosts: [{hosts}]\n{gateways}  http:\n{http}"
        ));
        Ok(())
    }

    /// One `http[]` entry; the last one has no match (a catch-all), as most real routes do.
    fn http_route(&mut self, last: bool) -> Result<String> {
        let mut out = String::from("  - ");
        if !last {
            let condition = match self.u.int_in_range(0..=3)? {
                0 => format!("{{uri: {{prefix: {}}}}}", self.pick(&PATHS)?),
                1 => format!("{{uri: {{exact: {}}}}}", self.pick(&PATHS)?),
                2 => {
                    let regex = self.pick(&REGEXES)?;
                    let bad = self.pick(&BAD_REGEXES)?;
                    format!("{{uri: {{regex: \"{}\"}}}}", self.maybe(regex, bad)?)
                }
                _ => format!("{{headers: {{end-user: {{exact: {}}}}}}}", self.pick(&USERS)?),
            };
            let _ = write!(out, "match: [{condition}]\n    ");
        }
        match self.u.int_in_range(0..=9)? {
            0 => {
                let code = self.pick(&[301u16, 302, 308])?;
                let code = if self.flavor != Flavor::Valid && self.u.ratio(1, 6)? { 200 } else { code };
                let _ = writeln!(out, "redirect: {{uri: /moved, redirectCode: {code}}}");
                return Ok(out);
            }
            1 => {
                let status = self.pick(&[200u16, 404, 503])?;
                let _ = writeln!(out, "directResponse: {{status: {status}, body: {{string: \"generated\"}}}}");
                return Ok(out);
            }
            _ => {}
        }
        out.push_str("route:\n");
        let destinations = self.u.int_in_range(1..=3)?;
        for _ in 0..destinations {
            let service = self.u.choose_index(self.services.len())?;
            let (host, versions) = (self.services[service].2.clone(), self.services[service].4.clone());
            let host = self.maybe(&host, "nowhere.default.svc.cluster.local")?.to_owned();
            let subset = match versions.first() {
                Some(_) if self.u.ratio(1, 2)? => {
                    let version = self.u.choose(&versions)?;
                    format!(", subset: {}", self.maybe(version, "v9")?)
                }
                _ => String::new(),
            };
            let weight = if destinations > 1 {
                let weight = self.u.int_in_range(0..=100)?;
                let weight = if self.flavor != Flavor::Valid && self.u.ratio(1, 10)? { -5 } else { weight };
                format!(", weight: {weight}")
            } else {
                String::new()
            };
            let _ = writeln!(out, "    - {{destination: {{host: {host}{subset}}}{weight}}}");
        }
        if self.u.ratio(1, 3)? {
            let timeout = self.pick(&DURATIONS)?;
            let bad = self.pick(&BAD_DURATIONS)?;
            let _ = writeln!(out, "    timeout: {}", self.maybe(timeout, bad)?);
        }
        if self.u.ratio(1, 3)? {
            let attempts = self.u.int_in_range(1..=5)?;
            let attempts = if self.flavor != Flavor::Valid && self.u.ratio(1, 6)? { 0 } else { attempts };
            let retry_on = self.pick(&RETRY_ON)?;
            let _ = writeln!(out, "    retries: {{attempts: {attempts}, perTryTimeout: 2s, retryOn: \"{retry_on}\"}}");
        }
        if self.u.ratio(1, 4)? {
            let percent = self.u.int_in_range(0..=100)?;
            let percent = if self.flavor != Flavor::Valid && self.u.ratio(1, 6)? { 150 } else { percent };
            let status = self.pick(&[500u16, 503, 418])?;
            let _ = writeln!(
                out,
                "    fault: {{abort: {{httpStatus: {status}, percentage: {{value: {percent}}}}}, delay: {{fixedDelay: 1s, percentage: {{value: 10}}}}}}"
            );
        }
        if self.u.ratio(1, 4)? {
            let _ = writeln!(
                out,
                "    headers: {{request: {{set: {{x-generated: \"yes\"}}}}, response: {{remove: [server]}}}}"
            );
        }
        Ok(out)
    }

    fn unsupported_kind(&mut self) -> Result<()> {
        let doc = match self.u.int_in_range(0..=3)? {
            0 => "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-all}\nspec: {}\n",
            1 => "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: lua}\nspec: {}\n",
            2 => "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec: {}\n",
            _ => "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec: {replicas: 1}\n",
        };
        self.docs.push(doc.to_owned());
        Ok(())
    }

    /// A misspelled field or kind somewhere in `doc`.
    fn misspell(&mut self, doc: &str) -> Result<String> {
        if self.u.ratio(1, 4)? {
            let (right, wrong) = self.pick(&KIND_TYPOS)?;
            return Ok(doc.replacen(&format!("kind: {right}\n"), &format!("kind: {wrong}\n"), 1));
        }
        let (right, wrong) = self.pick(&TYPOS)?;
        Ok(doc.replacen(&format!("{right}:"), &format!("{wrong}:"), 1))
    }

    /// Wrong types and damaged text: a list where a string belongs, a truncated stream, bytes spliced in.
    fn damage(&mut self, mut yaml: String) -> Result<String> {
        match self.u.int_in_range(0..=4)? {
            0 => yaml = yaml.replacen("hosts: [", "hosts: ", 1).replacen("]\n", "\n", 1),
            1 => yaml = yaml.replacen("weight: ", "weight: \"lots\" #", 1),
            2 if !yaml.is_empty() => {
                let cut = self.u.int_in_range(0..=yaml.len() - 1)?;
                let cut = (0..=cut).rev().find(|i| yaml.is_char_boundary(*i)).unwrap_or(0);
                yaml.truncate(cut);
            }
            3 if !yaml.is_empty() => {
                let at = self.u.int_in_range(0..=yaml.len() - 1)?;
                let at = (0..=at).rev().find(|i| yaml.is_char_boundary(*i)).unwrap_or(0);
                let junk = self.pick(&["{", "]", ": :", "\t", "- - -", "&a *b", "!!binary", "\u{0}", "\"", "{{}}"])?;
                yaml.insert_str(at, junk);
            }
            _ => yaml = yaml.replacen("metadata: {name: ", "metadata: {nam: ", 1),
        }
        Ok(yaml)
    }

    fn requests(&mut self) -> Result<Vec<Request>> {
        let mut requests = Vec::new();
        for (_, _, host, port, _) in &self.services {
            requests.push(Request { host: host.clone(), port: *port, path: "/".to_owned(), headers: Vec::new() });
        }
        for _ in 0..self.u.int_in_range(1..=3)? {
            let host = self.pick(&["bookinfo.example.com", "unknown.example.com"])?.to_owned();
            let path = self.pick(&PATHS)?.to_owned();
            let headers = if self.u.ratio(1, 2)? {
                vec![("end-user".to_owned(), self.pick(&USERS)?.to_owned())]
            } else {
                Vec::new()
            };
            let port = self.pick(&[80u16, 8080, 8081])?;
            requests.push(Request { host, port, path, headers });
        }
        Ok(requests)
    }
}

/// Bytes from a seed, for generating without a fuzzer (xorshift64*: the same seed, the same bytes everywhere).
pub struct Seeded {
    state: u64,
}

impl Seeded {
    pub fn new(seed: u64) -> Seeded {
        Seeded { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1 }
    }

    pub fn bytes(&mut self, length: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(length + 8);
        while out.len() < length {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            out.extend_from_slice(&self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(length);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_world_and_flavors_differ() {
        let make = |seed, flavor| {
            let bytes = Seeded::new(seed).bytes(4096);
            world(&mut Unstructured::new(&bytes), flavor).expect("generates").yaml
        };
        assert_eq!(make(7, Flavor::Valid), make(7, Flavor::Valid));
        let valid = make(7, Flavor::Valid);
        assert!(valid.contains("kind: ServiceEntry") || valid.contains("kind: Service\n"), "{valid}");
        let differing = (0..20).filter(|seed| make(*seed, Flavor::Wrong) != make(*seed, Flavor::Valid)).count();
        assert!(differing > 10, "wrong worlds differ from valid ones");
    }
}
