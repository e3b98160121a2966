//! `pilotfish crds`: prints CustomResourceDefinitions for the Istio kinds pilotfish reads.

use std::io::Write;

use anyhow::Context;

/// Print CustomResourceDefinitions (YAML) for Gateway, VirtualService, DestinationRule and ServiceEntry.
///
/// For clusters without Istio: install them, then `pilotfish serve --kubernetes` reads these kinds from the
/// cluster. They serve networking.istio.io v1, v1beta1 and v1alpha3 (stored as v1) and accept any spec: pilotfish
/// reports invalid objects itself (`/debug/inputs`, `pilotfish analyze`).
///
/// Example:
///   pilotfish crds | kubectl apply -f -
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    let yaml = crate::crds::yaml().context("failed to render the CustomResourceDefinitions")?;
    std::io::stdout().write_all(yaml.as_bytes()).context("failed to write to stdout")
}
