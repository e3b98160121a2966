//! Benchmarks of pilotfish as a server: `loadgen` plays many Envoy proxies over ADS and measures how fast a change
//! reaches all of them, and what they cost the control plane in CPU time and memory.
//!
//! ```text
//!   world (Istio YAML in a directory) ──► pilotfish serve (child process, loopback) ◄──ADS── N × proxy (tonic)
//!        ▲                                       │ /proc/<pid>: CPU time, RSS                │ events
//!        └─── driver: a change = one file rewritten ─────────────────────────────────────────┘
//!                         │
//!                         └──► results (JSON) ──► report (markdown table in BENCHMARKS.md)
//! ```
//!
//! Benchmarks, not tests: nothing here asserts a duration. `scripts/bench` runs the suite.

#![forbid(unsafe_code)]

pub mod converge;
pub mod driver;
pub mod envoy_report;
pub mod hitless;
pub mod http;
pub mod peer;
pub mod procfs;
pub mod proxy;
pub mod real;
pub mod report;
pub mod selfhost;
pub mod stats;
pub mod world;

/// The soft limit on open files of this process, from `/proc/self/limits`.
pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}
