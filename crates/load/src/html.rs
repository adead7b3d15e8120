//! `--html`: the report as one self-contained page, a chart a browser shows
//! without network access (inline SVG and CSS, no script, no fonts to fetch).
//!
//! Failures are usually a handful among thousands of successes, so stacking
//! them on top of the successes would hide them. The chart has three panels on
//! one time axis: all requests per bucket (stacked by outcome), failures only
//! (stacked by outcome, their own scale), and p50/p99 latency. Events (the
//! `--during` command, marks) are vertical lines across all three.

use std::fmt::Write as _;

use crate::{Report, TimelineBucket};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const PANEL: f64 = 170.0;
const GAP: f64 = 40.0;
const TOP: f64 = 40.0;

/// The page.
pub(crate) fn render(report: &Report) -> String {
    let mut page = String::new();
    page.push_str(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<title>lameduck load report</title><style>",
        "body{font-family:sans-serif;margin:1.5em;color:#222}",
        "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:right}",
        "th{border-bottom:1px solid #999}td:first-child,th:first-child{text-align:left}",
        ".fail{color:#b71c1c;font-weight:bold}.pass{color:#2e7d32;font-weight:bold}",
        "svg text{font-size:11px}</style></head><body>\n",
    ));
    summary(&mut page, report);
    chart(&mut page, report);
    page.push_str("</body></html>\n");
    page
}

fn summary(page: &mut String, report: &Report) {
    let s = &report.summary;
    let _ = writeln!(
        page,
        "<h1>lameduck load</h1><p>{}</p>",
        escape(&s.urls.join(" "))
    );
    let verdict = match report.verdict.pass {
        true => "<span class=\"pass\">PASS</span>".to_string(),
        false => format!(
            "<span class=\"fail\">FAIL</span>: {}",
            escape(&report.verdict.reasons.join("; "))
        ),
    };
    let _ = writeln!(
        page,
        "<p>{verdict}</p><p>{} requests in {:.2}s ({:.1} req/s, {} connections, {} loop), \
         <b>{} failed</b>. Latency p50 {} · p90 {} · p99 {} · max {}.</p>",
        s.requests,
        s.elapsed_s,
        s.throughput_rps,
        s.connections,
        s.mode,
        s.failures,
        ms(s.latency.p50_us),
        ms(s.latency.p90_us),
        ms(s.latency.p99_us),
        ms(s.latency.max_us)
    );
    page.push_str("<table><tr><th>outcome</th><th>count</th><th>%</th></tr>\n");
    for (name, count) in &s.outcomes {
        let pct = 100.0 * *count as f64 / s.requests.max(1) as f64;
        let _ = writeln!(
            page,
            "<tr><td><span style=\"color:{}\">■</span> {name}</td><td>{count}</td><td>{pct:.3}</td></tr>",
            color(name)
        );
    }
    page.push_str("</table>\n");
    if !s.per_url.is_empty() {
        page.push_str("<table><tr><th>URL</th><th>requests</th><th>failed</th></tr>\n");
        for (url, outcomes) in &s.per_url {
            let total: u64 = outcomes.values().sum();
            let failed = total - outcomes.get("success").copied().unwrap_or(0);
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{total}</td><td>{failed}</td></tr>",
                escape(url)
            );
        }
        page.push_str("</table>\n");
    }
}

/// The scales every panel shares.
struct Axis {
    buckets: usize,
    bucket_s: f64,
}

impl Axis {
    fn bar_width(&self) -> f64 {
        (WIDTH - LEFT - RIGHT) / self.buckets.max(1) as f64
    }

    fn x_of_bucket(&self, i: usize) -> f64 {
        LEFT + i as f64 * self.bar_width()
    }

    fn x_of_time(&self, at_s: f64) -> f64 {
        LEFT + at_s / self.bucket_s * self.bar_width()
    }
}

fn chart(page: &mut String, report: &Report) {
    let timeline = &report.timeline;
    let axis = Axis {
        buckets: timeline.len(),
        bucket_s: report.summary.bucket_s,
    };
    let height = TOP + 3.0 * PANEL + 2.0 * GAP + 40.0;
    let _ = writeln!(
        page,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline\">"
    );
    let all = names(timeline, |_| true);
    let failures = names(timeline, |n| n != "success");
    stacked(
        page,
        &axis,
        timeline,
        &all,
        TOP,
        "requests per bucket, by outcome",
    );
    let y = TOP + PANEL + GAP;
    stacked(
        page,
        &axis,
        timeline,
        &failures,
        y,
        "failures per bucket, by outcome",
    );
    latency(page, &axis, timeline, TOP + 2.0 * (PANEL + GAP));
    time_ticks(page, &axis, TOP + 3.0 * PANEL + 2.0 * GAP);
    events(
        page,
        &axis,
        report,
        TOP - 25.0,
        TOP + 3.0 * PANEL + 2.0 * GAP,
    );
    page.push_str("</svg>\n");
}

/// Outcome names that appear in the timeline, success first.
fn names(timeline: &[TimelineBucket], keep: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names: Vec<String> = timeline
        .iter()
        .flat_map(|b| b.outcomes.keys())
        .filter(|n| keep(n))
        .cloned()
        .collect();
    names.sort_by_key(|n| (n != "success", n.clone()));
    names.dedup();
    names
}

fn stacked(
    page: &mut String,
    axis: &Axis,
    timeline: &[TimelineBucket],
    names: &[String],
    y0: f64,
    title: &str,
) {
    let total = |b: &TimelineBucket| names.iter().filter_map(|n| b.outcomes.get(n)).sum::<u64>();
    let max = timeline.iter().map(total).max().unwrap_or(0).max(1) as f64;
    frame(page, y0, title, &format!("{max:.0}"));
    let w = axis.bar_width();
    for (i, b) in timeline.iter().enumerate() {
        let mut y = y0 + PANEL;
        for name in names {
            let Some(&n) = b.outcomes.get(name) else {
                continue;
            };
            let h = n as f64 / max * PANEL;
            y -= h;
            let _ = writeln!(
                page,
                "<rect x=\"{:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{h:.2}\" fill=\"{}\">\
                 <title>{:.1}s {name}: {n}</title></rect>",
                axis.x_of_bucket(i),
                (w - 0.5).max(0.5),
                color(name),
                b.start_s
            );
        }
    }
}

fn latency(page: &mut String, axis: &Axis, timeline: &[TimelineBucket], y0: f64) {
    let max_us = timeline
        .iter()
        .filter_map(|b| b.p99_us)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    frame(
        page,
        y0,
        "latency per bucket: p50 (blue), p99 (red)",
        &ms(Some(max_us as u64)),
    );
    let line = |pick: fn(&TimelineBucket) -> Option<u64>| {
        timeline
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let x = axis.x_of_bucket(i) + axis.bar_width() / 2.0;
                pick(b).map(|us| format!("{x:.2},{:.2}", y0 + PANEL - us as f64 / max_us * PANEL))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (pick, color) in [
        (
            (|b: &TimelineBucket| b.p50_us) as fn(&TimelineBucket) -> Option<u64>,
            "#1565c0",
        ),
        (|b: &TimelineBucket| b.p99_us, "#c62828"),
    ] {
        let _ = writeln!(
            page,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            line(pick)
        );
    }
}

/// A panel's title, axes and top value.
fn frame(page: &mut String, y0: f64, title: &str, top: &str) {
    let (x1, y1) = (WIDTH - RIGHT, y0 + PANEL);
    let _ = writeln!(
        page,
        "<text x=\"{LEFT}\" y=\"{:.0}\" font-weight=\"bold\">{}</text>\
         <line x1=\"{LEFT}\" y1=\"{y0}\" x2=\"{LEFT}\" y2=\"{y1}\" stroke=\"#999\"/>\
         <line x1=\"{LEFT}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"#999\"/>\
         <text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\">{}</text>\
         <text x=\"{:.0}\" y=\"{y1}\" text-anchor=\"end\">0</text>",
        y0 - 6.0,
        escape(title),
        LEFT - 4.0,
        y0 + 10.0,
        escape(top),
        LEFT - 4.0
    );
}

fn time_ticks(page: &mut String, axis: &Axis, y: f64) {
    let step = (axis.buckets / 10).max(1);
    for i in (0..=axis.buckets).step_by(step) {
        let _ = writeln!(
            page,
            "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\">{}s</text>",
            axis.x_of_bucket(i),
            y + 16.0,
            trim(i as f64 * axis.bucket_s)
        );
    }
}

fn events(page: &mut String, axis: &Axis, report: &Report, y_label: f64, y_end: f64) {
    for (k, e) in report.events.iter().enumerate() {
        let x = axis.x_of_time(e.at_s);
        let y = y_label + (k % 2) as f64 * 12.0;
        let label = format!("{} {}", e.kind, e.label);
        let _ = writeln!(
            page,
            "<line x1=\"{x:.1}\" y1=\"{y:.0}\" x2=\"{x:.1}\" y2=\"{y_end:.0}\" stroke=\"#000\" \
             stroke-dasharray=\"4 3\"><title>{at:.3}s {label}</title></line>\
             <text x=\"{:.1}\" y=\"{y:.0}\">{}</text>",
            x + 3.0,
            escape(&shorten(&label, 40)),
            at = e.at_s,
            label = escape(&label),
        );
    }
}

/// A stable color per outcome: green for success, warm for responses with a
/// bad status, others from a fixed palette.
fn color(name: &str) -> &'static str {
    match name {
        "success" => "#43a047",
        "connect_refused" => "#8e24aa",
        "connect_timeout" => "#5e35b1",
        "connect_error" => "#3949ab",
        "closed_before_response" => "#e53935",
        "reset_before_response" => "#1565c0",
        "reset_during_response" => "#880e4f",
        "truncated_body" => "#6d4c41",
        "request_timeout" => "#546e7a",
        "protocol_error" => "#212121",
        "other_error" => "#9e9e9e",
        n if n.starts_with("status_5") => "#fb8c00",
        n if n.starts_with("status_4") => "#fdd835",
        _ => "#00897b",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn trim(secs: f64) -> String {
    let s = format!("{secs:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn ms(us: Option<u64>) -> String {
    match us {
        None => "-".into(),
        Some(us) => format!("{:.2}ms", us as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::{report::Event, Latency, Summary, TimelineBucket, Verdict};

    use super::*;

    fn report() -> Report {
        let bucket = |start_s, ok, failed| TimelineBucket {
            start_s,
            requests: ok + failed,
            failures: failed,
            outcomes: BTreeMap::from([
                ("success".to_string(), ok),
                ("closed_before_response".to_string(), failed),
            ]),
            p50_us: Some(900),
            p99_us: Some(4_000),
        };
        Report {
            summary: Summary {
                urls: vec!["http://127.0.0.1:1/".into()],
                mode: "closed",
                connections: 2,
                rate: None,
                elapsed_s: 3.0,
                bucket_s: 1.0,
                requests: 30,
                failures: 3,
                throughput_rps: 10.0,
                outcomes: BTreeMap::from([
                    ("success".to_string(), 27),
                    ("closed_before_response".to_string(), 3),
                ]),
                per_url: BTreeMap::new(),
                retried: BTreeMap::new(),
                saved_by_retry: 0,
                ws_clean_closes: 0,
                sent_late: 0,
                latency: Latency::default(),
            },
            timeline: vec![bucket(0.0, 10, 0), bucket(1.0, 7, 3), bucket(2.0, 10, 0)],
            events: vec![Event {
                at_s: 1.2,
                kind: "during_start",
                label: "nginx -s reload <&> \"x\"".into(),
            }],
            verdict: Verdict {
                pass: false,
                reasons: vec!["3 requests failed".into()],
            },
        }
    }

    #[test]
    fn the_page_needs_no_network_and_escapes_labels() {
        let page = report().to_html();
        for fetch in ["src=", "href=", "<script", "@import", "url("] {
            assert!(
                !page.contains(fetch),
                "the page would fetch something: {fetch}"
            );
        }
        assert!(page.contains("nginx -s reload &lt;&amp;&gt; &quot;x&quot;"));
        assert!(!page.contains("<&>"));
    }

    #[test]
    fn failures_get_their_own_panel_and_events_a_line() {
        let page = report().to_html();
        // One bar per bucket and outcome in the first panel, one in the second.
        assert_eq!(page.matches("closed_before_response: 3</title>").count(), 2);
        assert_eq!(page.matches("success: 10</title>").count(), 2);
        assert!(page.contains("stroke-dasharray"), "the event marker");
        assert_eq!(page.matches("<polyline").count(), 2, "p50 and p99");
        assert!(page.contains("FAIL"));
    }
}
