//! The results table (markdown), with the machine it ran on, written between markers in BENCHMARKS.md.

use std::fmt::Write;

use crate::driver::Results;
use crate::procfs::Machine;

pub const BEGIN: &str = "<!-- loadgen results: begin (written by scripts/bench) -->";
pub const END: &str = "<!-- loadgen results: end -->";

/// The peer whose numbers go beside pilotfish's.
pub const PEER: &str = "go-control-plane";

/// The markdown for some runs.
pub fn render(runs: &[Results], machine: &Machine, date: &str, command: &str, notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Measured {date} on {} × {} ({:.1} GiB, Linux {}), with `{command}`.\n",
        machine.cpus, machine.cpu_model, machine.memory_gib, machine.kernel
    );
    let pilotfish: Vec<&Results> = runs.iter().filter(|r| r.server == "pilotfish").collect();
    if let Some(first) = runs.first() {
        let debounces: Vec<String> = {
            let mut all: Vec<String> = runs.iter().map(|r| format!("{:.0} ms", r.debounce_ms)).collect();
            all.dedup();
            all
        };
        let _ = writeln!(
            out,
            "World: {} services (ServiceEntry with 3 endpoints, DestinationRule with 2 subsets, VirtualService with a \
             header match and a weighted split), one Gateway; {} proxy classes (1 gateway, {} sidecar); one HTTP/2 \
             connection per proxy; a change rewrites one service's file to shift its weights; servers debounce \
             changes by {} (subtracted in *less debounce*); {} changes per row.\n",
            first.services.map_or_else(|| "?".to_owned(), thousands),
            first.classes,
            first.classes.saturating_sub(1),
            debounces.join(" / "),
            first.changes,
        );
    }
    out.push_str(
        "| server | xDS | proxies | ready after | change → all ACKed p50 / p99 / max | p50 / p99 less debounce | \
         per proxy ACK p50 / p99 | CPU per change (net of idle) | idle CPU | CPU to connect all | \
         RSS 0 → classes → N | per extra proxy (marginal) | pushed per change |\n",
    );
    out.push_str("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2} s | {} / {} / {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | \
             {:.0} resp, {:.1} MB |",
            run.server,
            run.protocol.as_str(),
            thousands(run.proxies),
            run.initial_sync_seconds,
            millis(run.all_acked_ms.p50),
            millis(run.all_acked_ms.p99),
            millis(run.all_acked_ms.max),
            millis(run.all_acked_ms.p50 - run.debounce_ms),
            millis(run.all_acked_ms.p99 - run.debounce_ms),
            millis(run.acked_ms.p50),
            millis(run.acked_ms.p99),
            cpu_per_change(run),
            run.server_idle_cpu.map_or_else(dash, |c| format!("{c:.2} core")),
            run.server_cpu_connect_seconds.map_or_else(dash, |s| format!("{s:.2} s")),
            memory(run),
            per_proxy(run),
            run.responses_per_change,
            run.response_bytes_per_change / 1e6,
        );
    }
    let problems: Vec<String> = runs
        .iter()
        .filter(|r| r.missed > 0 || r.wrong_content > 0)
        .map(|r| {
            format!(
                "- {} {} N={}: {} proxy-changes without a response, {} wrong-content checks",
                r.server,
                r.protocol.as_str(),
                r.proxies,
                r.missed,
                r.wrong_content
            )
        })
        .collect();
    if !problems.is_empty() {
        out.push_str("\n**Problems:**\n");
        for problem in problems {
            let _ = writeln!(out, "{problem}");
        }
    }
    let translated: Vec<String> = pilotfish
        .iter()
        .filter_map(|r| {
            Some(format!(
                "{} N={}: {:.1} × {:.1} ms",
                r.protocol.as_str(),
                thousands(r.proxies),
                r.translations_per_change?,
                r.translation_mean_ms?
            ))
        })
        .collect();
    if !translated.is_empty() {
        let _ = writeln!(
            out,
            "\npilotfish's own translation per change (classes translated × mean ms per class, from \
             `pilotfish_translation_seconds`): {}.",
            translated.join("; ")
        );
    }
    out.push_str(&side_by_side(runs));
    for note in notes {
        let _ = writeln!(out, "\n{note}");
    }
    out
}

/// pilotfish against the peer, same protocol and N.
fn side_by_side(runs: &[Results]) -> String {
    if !runs.iter().any(|r| r.server == PEER) {
        return format!(
            "\nSide by side with {PEER}: pending (peer under tests/peer): not run in this invocation \
             (`BENCH_PEER=1`).\n"
        );
    }
    let mut out = format!(
        "\nSide by side with {PEER} (ratio = {PEER} / pilotfish; above 1 pilotfish is better):\n\n\
         | xDS | proxies | p99 all ACKed less debounce: pilotfish / {PEER} | ratio | CPU per change | ratio | RSS at N | ratio |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|\n"
    );
    for run in runs.iter().filter(|r| r.server == "pilotfish") {
        let peer = runs.iter().find(|p| p.server == PEER && p.protocol == run.protocol && p.proxies == run.proxies);
        let ours_rss = run.memory_loaded.map(|m| m.rss as f64);
        let (p99, p99_ratio, cpu, cpu_ratio, rss, rss_ratio) = match peer {
            None => {
                let pending = "pending (peer under tests/peer)".to_owned();
                (pending.clone(), dash(), pending.clone(), dash(), pending, dash())
            }
            Some(peer) => (
                format!("{} / {}", millis(net_p99(run)), millis(net_p99(peer))),
                ratio(Some(net_p99(peer)), Some(net_p99(run))),
                format!(
                    "{} / {}",
                    run.server_cpu_per_change_seconds.map_or_else(dash, |s| format!("{s:.3} s")),
                    peer.server_cpu_per_change_seconds.map_or_else(dash, |s| format!("{s:.3} s"))
                ),
                ratio(peer.server_cpu_per_change_seconds, run.server_cpu_per_change_seconds),
                format!(
                    "{} / {}",
                    ours_rss.map_or_else(dash, mb),
                    peer.memory_loaded.map_or_else(dash, |m| mb(m.rss as f64))
                ),
                ratio(peer.memory_loaded.map(|m| m.rss as f64), ours_rss),
            ),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {p99} | {p99_ratio} | {cpu} | {cpu_ratio} | {rss} | {rss_ratio} |",
            run.protocol.as_str(),
            thousands(run.proxies)
        );
    }
    out
}

/// Replaces what is between the markers in `document` (or appends the markers and `table`).
pub fn splice(document: &str, table: &str) -> String {
    splice_between(document, BEGIN, END, table)
}

/// Replaces what is between the markers `begin` and `end` in `document` (or appends the markers and `table`).
pub fn splice_between(document: &str, begin_marker: &str, end_marker: &str, table: &str) -> String {
    let block = format!("{begin_marker}\n{}\n{end_marker}", table.trim_end());
    match (document.find(begin_marker), document.find(end_marker)) {
        (Some(begin), Some(end)) if begin < end => {
            format!("{}{block}{}", &document[..begin], &document[end + end_marker.len()..])
        }
        _ => format!("{}\n\n{block}\n", document.trim_end()),
    }
}

/// CPU seconds per change, and the same less what the server burns idle over the change's window.
fn cpu_per_change(run: &Results) -> String {
    let Some(raw) = run.server_cpu_per_change_seconds else { return dash() };
    match run.server_idle_cpu {
        Some(idle) if run.changes > 0 => {
            let net = raw - idle * run.change_window_seconds / run.changes as f64;
            format!("{raw:.3} s ({:.3} s)", net.max(0.0))
        }
        _ => format!("{raw:.3} s"),
    }
}

/// p99 of change → all ACKed less the server's debounce.
fn net_p99(run: &Results) -> f64 {
    run.all_acked_ms.p99 - run.debounce_ms
}

fn dash() -> String {
    "–".to_owned()
}

fn ratio(peer: Option<f64>, ours: Option<f64>) -> String {
    match (peer, ours) {
        (Some(peer), Some(ours)) if ours > 0.0 => format!("{:.2}×", peer / ours),
        _ => dash(),
    }
}

fn millis(ms: f64) -> String {
    if ms >= 1000.0 { format!("{:.2} s", ms / 1000.0) } else { format!("{ms:.1} ms") }
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / (1024.0 * 1024.0))
}

fn memory(run: &Results) -> String {
    match (run.memory_idle, run.memory_classes, run.memory_loaded) {
        (Some(idle), Some(classes), Some(loaded)) => {
            format!("{} → {} → {}", mb(idle.rss as f64), mb(classes.rss as f64), mb(loaded.rss as f64))
        }
        _ => dash(),
    }
}

fn per_proxy(run: &Results) -> String {
    let kb = |b: f64| format!("{:.1} KB", b / 1024.0);
    match (run.bytes_per_proxy, run.marginal_bytes_per_proxy) {
        (Some(all), Some(marginal)) => format!("{} ({})", kb(all), kb(marginal)),
        (Some(all), None) => kb(all),
        _ => dash(),
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_between_the_markers_or_appends() {
        let document = format!("# B\n\nbefore\n{BEGIN}\nold\n{END}\nafter\n");
        let spliced = splice(&document, "new\n");
        assert_eq!(spliced, format!("# B\n\nbefore\n{BEGIN}\nnew\n{END}\nafter\n"));
        assert_eq!(splice(&spliced, "new\n"), spliced);
        assert_eq!(splice("# B\n", "t"), format!("# B\n\n{BEGIN}\nt\n{END}\n"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!((thousands(10), thousands(1000), thousands(10000)), ("10".into(), "1,000".into(), "10,000".into()));
    }
}
