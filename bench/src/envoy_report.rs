//! The real-Envoy results (convergence and hitless changes) as markdown, between markers of their own in
//! BENCHMARKS.md.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::procfs::Machine;
use crate::{converge, hitless};

pub const BEGIN: &str = "<!-- envoy results: begin (written by scripts/bench) -->";
pub const END: &str = "<!-- envoy results: end -->";

/// What one `loadgen envoy-converge` or `loadgen hitless` run writes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "bench", rename_all = "kebab-case")]
pub enum Run {
    Converge { results: Vec<converge::Results> },
    Hitless { results: hitless::Results },
}

pub fn render(runs: &[Run], machine: &Machine, date: &str, command: &str, notes: &[String]) -> String {
    let mut out = format!(
        "Run {date} with `{command}` on {} × {} ({:.1} GiB, Linux {}); Envoy {}, pilotfish in-process (release \
         build unless the command says `--tiny`).\n",
        machine.cpus,
        machine.cpu_model,
        machine.memory_gib,
        machine.kernel,
        e2e::ENVOY_VERSION
    );
    let converge: Vec<&converge::Results> = runs
        .iter()
        .filter_map(|r| match r {
            Run::Converge { results } => Some(results),
            Run::Hitless { .. } => None,
        })
        .flatten()
        .collect();
    if !converge.is_empty() {
        let load = match (converge.first(), converge.last()) {
            (Some(first), Some(last)) => format!("{} → {}", first.load_before, last.load_after),
            _ => String::new(),
        };
        let _ = write!(
            out,
            "\n**Change → real Envoy serving it** (ms; p50 / p99 / max; load average during the runs: {}):\n\n\
             | xDS | Envoys | clusters | change | changes | serving, all Envoys | serving, each Envoy | Envoy apply: first \
             response → last ACK | Σ response → ACK | all ACKed | serving − apply (p50) | missed |\n\
             |---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
            load
        );
        for r in &converge {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:+.2} | {} |",
                r.protocol.as_str(),
                r.envoys,
                r.clusters,
                r.kind.as_str(),
                r.changes,
                triple(&r.all_serving_ms),
                triple(&r.serving_ms),
                triple(&r.apply_span_ms),
                triple(&r.apply_sum_ms),
                triple(&r.all_acked_ms),
                r.serving_ms.p50 - r.apply_span_ms.p50,
                r.missed
            );
        }
    }
    for run in runs {
        let Run::Hitless { results: r } = run else { continue };
        let _ = write!(
            out,
            "\n**Hitless changes, {}** ({} keep-alive connections through one Envoy with {} worker(s); {} requests in \
             {:.1} s = {:.0} requests/s; each change under load {:.0} ms after its ACK; removed endpoints' backends keep \
             serving {:.1} s; load average {} → {}):\n\n\
             | phase | changes | requests | requests/s | non-2xx | connection errors |\n|---|--:|--:|--:|--:|--:|\n",
            r.protocol.as_str(),
            r.connections,
            r.envoy_concurrency,
            r.requests,
            r.seconds,
            r.requests as f64 / r.seconds.max(f64::EPSILON),
            r.dwell_seconds * 1000.0,
            r.drain_seconds,
            r.load_before,
            r.load_after
        );
        for phase in &r.phases {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.0} | {} | {} |",
                phase.name,
                phase.changes,
                phase.requests,
                phase.requests as f64 / phase.seconds.max(f64::EPSILON),
                phase.non_2xx,
                phase.connection_errors
            );
        }
        if !r.pushes.is_empty() {
            let pushes: Vec<String> = r.pushes.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
            let _ = writeln!(out, "\nResponses pilotfish sent the Envoy over the run: {}.", pushes.join(", "));
        }
        if !r.failures.is_empty() {
            out.push_str("\nFirst failures:\n");
            for failure in &r.failures {
                let _ = writeln!(out, "- {:.3} s, {}, `{}`: {}", failure.at, failure.phase, failure.path, failure.what);
            }
        }
    }
    for note in notes {
        let _ = writeln!(out, "\n{note}");
    }
    out
}

fn triple(summary: &crate::stats::Summary) -> String {
    if summary.samples == 0 {
        return "–".to_owned();
    }
    format!("{:.2} / {:.2} / {:.2}", summary.p50, summary.p99, summary.max)
}

/// Replaces what is between this section's markers in `document` (or appends them with `table`).
pub fn splice(document: &str, table: &str) -> String {
    crate::report::splice_between(document, BEGIN, END, table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_leaves_the_loadgen_section_alone() {
        let document = format!("{}\nold\n{}\n\n{BEGIN}\nx\n{END}\n", crate::report::BEGIN, crate::report::END);
        let spliced = splice(&document, "new");
        assert!(spliced.contains(&format!("{BEGIN}\nnew\n{END}")), "{spliced}");
        assert!(spliced.contains("old"), "{spliced}");
    }
}
