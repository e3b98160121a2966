//! The bootstraps `pilotfish bootstrap` prints, checked by a real Envoy.
//!
//! `envoy --mode validate` loads a bootstrap the way Envoy does at start-up (YAML parsing, proto validation, every
//! extension and cluster constructed) and exits without connecting anywhere, so a field or value the pinned Envoy
//! refuses fails here rather than on a user's machine. The unit tests beside `controlplane::bootstrap` check the
//! same output against Envoy's descriptors; only Envoy itself checks its constraints and its YAML reader.

use std::{path::Path, process::Command};

use anyhow::{Context, Result, ensure};
use controlplane::bootstrap::{BootstrapOptions, Role, render, render_yaml};
use e2e::{Envoy, free_port};

/// A gateway selected by its labels, in its own namespace.
fn gateway(delta: bool) -> BootstrapOptions {
    BootstrapOptions {
        labels: [("istio", "ingressgateway"), ("app", "edge")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        namespace: "istio-system".to_owned(),
        delta,
        ..BootstrapOptions::new("ingress-1", Role::Gateway)
    }
}

/// A sidecar without traffic capture, binding its outbound listeners on a loopback alias.
fn sidecar(delta: bool) -> BootstrapOptions {
    BootstrapOptions {
        namespace: "bookinfo".to_owned(),
        outbound_bind: Some("127.0.0.2".to_owned()),
        delta,
        ..BootstrapOptions::new("reviews-v1", Role::Sidecar)
    }
}

/// Runs `envoy --mode validate` on the printed YAML of `options`; the error carries Envoy's output and the
/// bootstrap. Envoy missing is an error too, never a skip.
fn validate(options: &BootstrapOptions) -> Result<()> {
    let envoy = e2e::envoy_binary()?;
    let yaml = render_yaml(options)?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    // Envoy picks its parser from the extension.
    let path = dir.path().join("bootstrap.yaml");
    std::fs::write(&path, &yaml).with_context(|| format!("writing {}", path.display()))?;

    let output = run_validate(&envoy, &path)?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    ensure!(
        output.status.success(),
        "envoy --mode validate refused the bootstrap ({}):\n{said}\n--- bootstrap ---\n{yaml}",
        output.status
    );
    // A deprecated field validates today and breaks on a later Envoy; say so while the fix is easy.
    ensure!(
        !said.to_ascii_lowercase().contains("deprecated"),
        "envoy accepted the bootstrap but warned about a deprecated field:\n{said}\n--- bootstrap ---\n{yaml}"
    );
    Ok(())
}

fn run_validate(envoy: &Path, config: &Path) -> Result<std::process::Output> {
    Command::new(envoy)
        .args(["--mode", "validate", "-c"])
        .arg(config)
        .output()
        .with_context(|| format!("running {} --mode validate", envoy.display()))
}

#[test]
fn envoy_accepts_a_gateway_bootstrap_with_labels_over_sotw() -> Result<()> {
    validate(&gateway(false))
}

#[test]
fn envoy_accepts_a_gateway_bootstrap_with_labels_over_delta() -> Result<()> {
    validate(&gateway(true))
}

#[test]
fn envoy_accepts_a_sidecar_bootstrap_with_outbound_bind_over_sotw() -> Result<()> {
    validate(&sidecar(false))
}

#[test]
fn envoy_accepts_a_sidecar_bootstrap_with_outbound_bind_over_delta() -> Result<()> {
    validate(&sidecar(true))
}

#[test]
fn envoy_accepts_an_xds_address_given_as_a_hostname() -> Result<()> {
    for delta in [false, true] {
        validate(&BootstrapOptions { xds_address: "localhost:15010".to_owned(), ..gateway(delta) })?;
    }
    Ok(())
}

#[test]
fn envoy_accepts_an_ipv6_xds_address_and_an_ephemeral_admin_port() -> Result<()> {
    validate(&BootstrapOptions {
        xds_address: "[::1]:15010".to_owned(),
        admin_address: "::1".to_owned(),
        admin_port: 0,
        ..sidecar(false)
    })
}

/// Envoy's YAML reader takes unquoted `yes`, `on` or `012` for a boolean or a number; a label value read that way
/// would be invisible to the server and put the proxy in another class. A running Envoy reports the node it read
/// on `/server_info`, which must hold the metadata exactly as rendered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_reads_the_node_metadata_as_written() -> Result<()> {
    let mut options = gateway(false);
    options.labels.extend(
        [("enabled", "yes"), ("canary", "on"), ("zone", "012"), ("rev", "0x1f"), ("empty", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    // Nothing listens there: Envoy keeps retrying ADS, which does not keep its admin interface from answering.
    options.xds_address = format!("127.0.0.1:{}", free_port());
    // The harness has Envoy pick its admin port and report it.
    options.admin_port = 0;

    let envoy = Envoy::start("bootstrap-metadata", &render_yaml(&options)?).await?;
    let server_info: serde_json::Value =
        serde_json::from_str(&envoy.get_admin("/server_info").await?).context("/server_info is not JSON")?;
    let expected = render(&options)?;
    assert_eq!(
        server_info["node"]["metadata"], expected["node"]["metadata"],
        "the node Envoy read: {:#}",
        server_info["node"]
    );
    assert_eq!(server_info["node"]["id"], "ingress-1");
    Ok(())
}
