//! `pilotfish inject`: adds the Envoy sidecar to workloads in Kubernetes manifests.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::capture::DEFAULT_PROXY_UID;
use crate::inject::{DEFAULT_INIT_IMAGE, DEFAULT_PROXY_IMAGE, DEFAULT_XDS_ADDRESS, InjectOptions, inject};

/// Add pilotfish's Envoy sidecar to the workloads of a manifest (like `istioctl kube-inject`).
///
/// Every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and CronJob gets an init container that sends
/// the pod's outbound TCP to the sidecar (iptables), and Envoy as a native sidecar (Kubernetes 1.29 or later)
/// whose bootstrap carries the pod template's labels and namespace. Other documents are printed unchanged.
/// Pod templates annotated `sidecar.istio.io/inject: "false"`, host-network pods and templates injected already
/// are left as they are (a note on stderr says so). `traffic.sidecar.istio.io/excludeOutboundPorts` and
/// `excludeOutboundIPRanges` exclude destinations from capture.
///
/// Example:
///   pilotfish inject -f deployment.yaml | kubectl apply -f -
///   kubectl get deploy reviews -o yaml | pilotfish inject -f - | kubectl apply -f -
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// The manifest (multi-document YAML); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    file: PathBuf,
    /// The namespace of objects that do not name one (the sidecar's bootstrap needs it).
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,
    /// Envoy's image, for the sidecar.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_PROXY_IMAGE)]
    proxy_image: String,
    /// An image with `sh` and `iptables`, for the init container.
    #[arg(long, value_name = "IMAGE", default_value = DEFAULT_INIT_IMAGE)]
    init_image: String,
    /// Where the sidecars reach pilotfish.
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_XDS_ADDRESS)]
    xds_address: String,
    /// The uid Envoy runs as; its connections are not captured.
    #[arg(long, value_name = "UID", default_value_t = DEFAULT_PROXY_UID)]
    proxy_uid: u32,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let input = if args.file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("failed to read stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.file).with_context(|| format!("failed to read {}", args.file.display()))?
    };
    let options = InjectOptions {
        proxy_image: args.proxy_image,
        init_image: args.init_image,
        xds_address: args.xds_address,
        proxy_uid: args.proxy_uid,
        namespace: args.namespace,
    };
    let name = if args.file.as_os_str() == "-" { "<stdin>".to_owned() } else { args.file.display().to_string() };
    let injected = inject(&input, &options).with_context(|| name)?;
    for note in &injected.notes {
        eprintln!("pilotfish inject: {note}");
    }
    std::io::stdout().write_all(injected.yaml.as_bytes()).context("failed to write to stdout")
}
