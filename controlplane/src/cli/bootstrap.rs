//! `pilotfish bootstrap`: prints an Envoy bootstrap that connects to pilotfish.

use translator::Role;

use crate::bootstrap::{BootstrapOptions, parse_labels, render_yaml};

/// Print an Envoy bootstrap (YAML) that fetches everything from pilotfish over ADS.
///
/// The node's role, labels and namespace decide which configuration the proxy gets.
///
/// Example:
///   pilotfish bootstrap --node-id ingress-1 --role gateway --labels istio=ingressgateway \
///     --namespace istio-system --admin-port 15000 > envoy.yaml
///   envoy -c envoy.yaml
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The proxy's node id (unique per Envoy).
    #[arg(long, value_name = "ID")]
    node_id: String,
    /// What the proxy does.
    #[arg(long, value_parser = parse_role)]
    role: Role,
    /// The workload's labels, as k=v,k2=v2 (a gateway is selected by them).
    #[arg(long, value_name = "K=V,…", default_value = "")]
    labels: String,
    /// The workload's namespace.
    #[arg(long, value_name = "NS", default_value = "default")]
    namespace: String,
    /// For sidecars without traffic capture: the address outbound listeners bind. Without it a sidecar is
    /// captured (iptables, see `pilotfish inject`): it listens on 0.0.0.0:15001 and its per-port listeners do
    /// not bind.
    #[arg(long, value_name = "ADDR")]
    outbound_bind: Option<String>,
    /// Where pilotfish serves xDS.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:15010")]
    xds_address: String,
    /// Envoy's admin port (0: any free port), on 127.0.0.1.
    #[arg(long, value_name = "N", default_value_t = 15000)]
    admin_port: u16,
    /// Use incremental (Delta) xDS instead of state-of-the-world.
    #[arg(long)]
    delta: bool,
    /// The node's cluster name (defaults to one derived from the role).
    #[arg(long, value_name = "NAME")]
    node_cluster: Option<String>,
    /// Answer GET /healthz/ready on 0.0.0.0:N, 200 once Envoy has its first configuration (Istio's 15021, for
    /// Kubernetes probes); Envoy then waits for that configuration without a time limit.
    #[arg(long, value_name = "N")]
    readiness_port: Option<u16>,
    /// Serve Envoy's Prometheus stats at GET /stats/prometheus on 0.0.0.0:N (Istio's 15090).
    #[arg(long, value_name = "N")]
    prometheus_port: Option<u16>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: expected gateway or sidecar"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let options = BootstrapOptions {
        node_id: args.node_id,
        node_cluster: args.node_cluster,
        role: args.role,
        labels: parse_labels(&args.labels)?,
        namespace: args.namespace,
        outbound_bind: args.outbound_bind,
        xds_address: args.xds_address,
        admin_port: args.admin_port,
        delta: args.delta,
        readiness_port: args.readiness_port,
        prometheus_port: args.prometheus_port,
        ..BootstrapOptions::default()
    };
    print!("{}", render_yaml(&options)?);
    Ok(())
}
