//! The report: one table row per supervisor, then ratios to the reference and
//! the verdict against the goals.

use crate::{args::Config, args::Supervisor, latency::Samples, memory::Memory};

/// What was measured for one supervisor, over all rounds.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) name: String,
    /// One reading per round.
    pub(crate) idle: Vec<Memory>,
    pub(crate) signals: Samples,
}

impl Row {
    pub(crate) fn new(sup: &Supervisor) -> Row {
        Row {
            name: sup.name.clone(),
            idle: Vec::new(),
            signals: Samples::default(),
        }
    }

    /// The round with the largest idle VmRSS: the goal is a ceiling.
    fn worst_idle(&self) -> Memory {
        self.idle
            .iter()
            .copied()
            .max_by_key(|m| m.rss)
            .unwrap_or_default()
    }
}

const PERCENTILES: [f64; 4] = [50.0, 90.0, 99.0, 100.0];

/// Prints the table, what each supervisor adds to the direct signal, the ratios
/// to the reference, and the verdict against the goals.
pub(crate) fn print(config: &Config, direct: &Samples, rows: &[Row]) {
    println!(
        "{} SIGUSR1 per supervisor in {} rounds (after {} untimed in each), one at a time",
        direct.count(),
        config.rounds,
        config.warmup
    );
    println!("memory in KiB (the round with the largest VmRSS), latency in µs");
    println!();
    print_table(direct, rows);
    println!();
    print_overhead(direct, rows);
    if let Some(reference) = rows.iter().find(|r| r.name == config.reference) {
        print_ratios(reference, rows);
    }
    print_goals(config, rows);
}

fn print_table(direct: &Samples, rows: &[Row]) {
    let memory_head = ["VmRSS", "RssAnon", "RssFile", "Pss", "thr", "RSS after"];
    let [rss, anon, file, pss, thr, after] = memory_head;
    println!(
        "{:<12} {rss:>7} {anon:>7} {file:>7} {pss:>7} {thr:>4} {after:>9} │ {:>8} {:>8} {:>8} {:>8}",
        "supervisor", "p50", "p90", "p99", "max"
    );
    println!("{:<12} {:>46} │ {}", "direct", "", latencies(direct));
    for row in rows {
        let (name, memory, signals) = (&row.name, memory(row), latencies(&row.signals));
        println!("{name:<12} {memory} │ {signals}");
    }
    println!("(RSS after: the largest VmRSS once a round's signals had been forwarded)");
}

fn memory(row: &Row) -> String {
    let m = row.worst_idle();
    let pss = m.pss.map_or("-".into(), |p| p.to_string());
    let after = row.signals.rss_after.map_or("-".into(), |a| a.to_string());
    format!(
        "{:>7} {:>7} {:>7} {:>7} {:>4} {:>9}",
        m.rss, m.anon, m.file, pss, m.threads, after
    )
}

fn latencies(l: &Samples) -> String {
    PERCENTILES
        .map(|p| format!("{:>8.1}", l.percentile_us(p)))
        .join(" ")
}

/// What each supervisor adds to the direct signal, at the median and p99.
fn print_overhead(direct: &Samples, rows: &[Row]) {
    for row in rows {
        println!(
            "{} adds {:+.1} µs at p50, {:+.1} µs at p99 to the direct signal",
            row.name,
            row.signals.percentile_us(50.0) - direct.percentile_us(50.0),
            row.signals.percentile_us(99.0) - direct.percentile_us(99.0),
        );
    }
}

fn print_ratios(reference: &Row, rows: &[Row]) {
    for row in rows.iter().filter(|r| r.name != reference.name) {
        let (a, b) = (row.worst_idle(), reference.worst_idle());
        let (la, lb) = (&row.signals, &reference.signals);
        println!(
            "{}/{}: VmRSS {:.2}x, RssAnon {:.2}x, RssFile {:.2}x; latency p50 {:.2}x, p99 {:.2}x",
            row.name,
            reference.name,
            ratio(a.rss as f64, b.rss as f64),
            ratio(a.anon as f64, b.anon as f64),
            ratio(a.file as f64, b.file as f64),
            ratio(la.percentile_us(50.0), lb.percentile_us(50.0)),
            ratio(la.percentile_us(99.0), lb.percentile_us(99.0)),
        );
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 {
        f64::NAN
    } else {
        a / b
    }
}

fn print_goals(config: &Config, rows: &[Row]) {
    println!();
    for row in rows.iter().filter(|r| r.name != config.reference) {
        let (rss, p99) = (row.worst_idle().rss, row.signals.percentile_us(99.0));
        println!(
            "{}: idle VmRSS {} KiB ≤ {} KiB: {}; p99 {:.1} µs < {} µs: {}",
            row.name,
            rss,
            config.rss_goal_kib,
            verdict(rss <= config.rss_goal_kib),
            p99,
            config.p99_goal_us,
            verdict(p99 < config.p99_goal_us),
        );
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "PASS"
    } else {
        "FAIL"
    }
}
