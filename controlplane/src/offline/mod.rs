//! What the control plane computes without any I/O: Envoy bootstraps, sidecar injection into manifests, the traffic
//! capture rules, the CRDs, and `explain`'s walk of a request through a snapshot. Pure functions of their input; the
//! commands and servers that use them do the reading and writing.

pub mod bootstrap;
pub mod capture;
pub mod crds;
pub mod explain;
pub mod inject;
