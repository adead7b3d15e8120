//! The run's summary as text: what a user reads on the terminal when the run
//! ends. One line per protocol, lost requests by outcome, the rollout times,
//! and a last line that says it plainly.

use std::fmt::Write;

use crate::Report;

/// The summary of `r`.
pub fn to_text(r: &Report) -> String {
    let mut out = String::new();
    let ns = if r.pid_namespaces {
        "own PID namespaces"
    } else {
        "plain processes"
    };
    let _ = writeln!(
        out,
        "\n{} ({} replicas, {}; {ns})",
        r.deployment, r.replicas, r.strategy
    );
    match r.rollout_seconds {
        Some(s) => {
            let _ = write!(out, "update: {s:.1} s until the last old pod exited");
            if let Some(c) = r.complete_seconds {
                let _ = write!(out, " (kubectl rollout status: {c:.1} s)");
            }
            out.push('\n');
        }
        None => out.push_str("update: did not finish\n"),
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:>9} {:>7}  lost by outcome",
        "traffic", "requests", "lost"
    );
    for t in &r.traffic {
        match &t.report {
            Some(rep) => {
                let s = &rep.summary;
                let _ = writeln!(
                    out,
                    "{:<8} {:>9} {:>7}  {}",
                    t.protocol.name(),
                    s.requests,
                    s.failures,
                    outcomes(&s.outcomes)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "{:<8} {:>9} {:>7}  {}",
                    t.protocol.name(),
                    "-",
                    "-",
                    t.error.as_deref().unwrap_or("")
                );
            }
        }
    }
    let (sent, lost) = (r.requests(), r.failed());
    if r.traffic.len() > 1 {
        let _ = writeln!(
            out,
            "{:<8} {:>9} {:>7}  {}",
            "total",
            sent,
            lost,
            outcomes(&r.failed_by_outcome())
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if r.traffic.is_empty() {
        out.push_str("\nno traffic was sent (--no-load): your own tool has the counts\n");
    } else if r.traffic.iter().any(|t| t.report.is_none()) {
        out.push_str("\nFAILED: some traffic could not be measured (see above)\n");
    } else if lost == 0 {
        let _ = writeln!(out, "\nPASS: 0 of {sent} requests lost");
    } else {
        let _ = writeln!(out, "\nLOST: {lost} of {sent} requests");
    }
    out
}

/// `connect_refused 3, status_502 12` (successes left out).
pub fn outcomes(map: &std::collections::BTreeMap<String, u64>) -> String {
    map.iter()
        .filter(|(k, v)| k.as_str() != "success" && **v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
