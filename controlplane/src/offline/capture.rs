//! Transparent capture of a workload's outbound TCP: the iptables rules that send it to the sidecar.
//!
//! ```text
//!   app ──connect(10.0.0.7:9080)──► nat OUTPUT ──► PILOTFISH_OUTPUT ──┬─ from the proxy's uid ─► RETURN (not captured)
//!                                                                    ├─ to loopback          ─► RETURN
//!                                                                    ├─ excluded port / CIDR ─► RETURN
//!                                                                    └─ anything else        ─► REDIRECT :15001
//! ```
//!
//! Envoy's virtual outbound listener on [`VIRTUAL_OUTBOUND_PORT`] (`use_original_dst`) then hands the connection
//! to the listener for its original destination port, or to the passthrough cluster when none matches. The same
//! rules serve `pilotfish inject`'s init container and the network-namespace tests, so what is tested is what is
//! deployed. Only outbound traffic is captured; inbound traffic reaches the application directly.
//!
//! This module only builds commands; it runs nothing.

use std::fmt;
use std::net::IpAddr;

pub use translator::proxy::VIRTUAL_OUTBOUND_PORT;

/// The uid the sidecar runs as (Istio's): its own connections, including those to the control plane and to the
/// upstreams it picked, must not be captured again.
pub const DEFAULT_PROXY_UID: u32 = 1337;

const OUTPUT_CHAIN: &str = "PILOTFISH_OUTPUT";
const REDIRECT_CHAIN: &str = "PILOTFISH_REDIRECT";

/// Which outbound connections are captured, and where they go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    /// Connections made by this uid (the sidecar's) pass untouched.
    pub proxy_uid: u32,
    /// The port captured connections are redirected to: the sidecar's virtual outbound listener.
    pub redirect_port: u16,
    /// Destination ports that are never captured (e.g. a database the mesh should not see).
    pub exclude_ports: Vec<u16>,
    /// Destination networks that are never captured.
    pub exclude_cidrs: Vec<Cidr>,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            proxy_uid: DEFAULT_PROXY_UID,
            redirect_port: VIRTUAL_OUTBOUND_PORT,
            exclude_ports: Vec::new(),
            exclude_cidrs: Vec::new(),
        }
    }
}

/// An IP network, `ADDRESS/PREFIX`; a bare address means a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("{text:?} is not an IP address or CIDR"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be a number from 0 to {max}"))?,
        };
        Ok(Cidr { address, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl CaptureSettings {
    /// The rules, each as the arguments of one `iptables` (IPv4) invocation, in the order they must run. They
    /// assume a fresh network namespace (a new pod); run twice, the chain creation fails, as an init container
    /// restarted into an already-configured pod should notice rather than stack duplicate rules.
    pub fn iptables_commands(&self) -> Vec<Vec<String>> {
        let (output, redirect) = (OUTPUT_CHAIN, REDIRECT_CHAIN);
        let mut rules = vec![
            format!("-N {redirect}"),
            format!("-A {redirect} -p tcp -j REDIRECT --to-ports {}", self.redirect_port),
            format!("-N {output}"),
            format!("-A OUTPUT -p tcp -j {output}"),
            format!("-A {output} -m owner --uid-owner {} -j RETURN", self.proxy_uid),
            format!("-A {output} -d 127.0.0.1/32 -j RETURN"),
            format!("-A {output} -o lo -j RETURN"),
        ];
        rules.extend(self.exclude_ports.iter().map(|port| format!("-A {output} -p tcp --dport {port} -j RETURN")));
        rules.extend(
            self.exclude_cidrs
                .iter()
                .filter(|c| c.address.is_ipv4())
                .map(|cidr| format!("-A {output} -d {cidr} -j RETURN")),
        );
        rules.push(format!("-A {output} -j {redirect}"));
        // Every piece is a fixed word, a number or a formatted address: splitting on whitespace is exact.
        rules
            .iter()
            .map(|rule| ["-t", "nat"].into_iter().chain(rule.split_whitespace()).map(str::to_owned).collect())
            .collect()
    }

    /// The rules as a POSIX shell script (`set -e`, one `iptables` line per rule, then the resulting table), for
    /// an init container's `sh -c`. Every argument is a number, a fixed word or a formatted address, so nothing
    /// needs quoting.
    pub fn shell_script(&self) -> String {
        let mut script = String::from("set -e\n");
        for args in self.iptables_commands() {
            script.push_str("iptables ");
            script.push_str(&args.join(" "));
            script.push('\n');
        }
        script.push_str("iptables -t nat -S\n");
        script
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxy_and_loopback_are_never_captured_and_everything_else_is_redirected_last() {
        let commands = CaptureSettings::default().iptables_commands();
        let rules: Vec<String> = commands.iter().map(|c| c.join(" ")).collect();
        let position = |needle: &str| rules.iter().position(|r| r.contains(needle)).expect(needle);
        assert!(position("--uid-owner 1337 -j RETURN") < position("-A PILOTFISH_OUTPUT -j PILOTFISH_REDIRECT"));
        assert!(position("-d 127.0.0.1/32 -j RETURN") < position("-A PILOTFISH_OUTPUT -j PILOTFISH_REDIRECT"));
        assert_eq!(rules.last().expect("rules"), "-t nat -A PILOTFISH_OUTPUT -j PILOTFISH_REDIRECT");
        assert!(rules.contains(&"-t nat -A PILOTFISH_REDIRECT -p tcp -j REDIRECT --to-ports 15001".to_owned()));
    }

    #[test]
    fn exclusions_come_before_the_redirect() {
        let settings = CaptureSettings {
            exclude_ports: vec![5432],
            exclude_cidrs: vec!["10.96.0.0/12".parse().expect("a CIDR"), "fd00::/8".parse().expect("a CIDR")],
            ..CaptureSettings::default()
        };
        let script = settings.shell_script();
        let port = script.find("--dport 5432 -j RETURN").expect("port exclusion");
        let cidr = script.find("-d 10.96.0.0/12 -j RETURN").expect("network exclusion");
        let redirect = script.find("-A PILOTFISH_OUTPUT -j PILOTFISH_REDIRECT").expect("redirect");
        assert!(port < redirect && cidr < redirect);
        assert!(!script.contains("fd00"), "IPv6 networks are not for iptables (IPv4):\n{script}");
        assert!(script.starts_with("set -e\n"));
    }

    #[test]
    fn cidrs_parse_and_reject_nonsense() {
        assert_eq!("10.0.0.1".parse::<Cidr>().expect("an address").to_string(), "10.0.0.1/32");
        assert_eq!("10.0.0.0/8".parse::<Cidr>().expect("a network").to_string(), "10.0.0.0/8");
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("ten/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/x; rm -rf /".parse::<Cidr>().is_err());
    }
}
