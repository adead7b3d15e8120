//! One HTML page for one or more runs, readable in seconds and offline: a
//! table (requests, lost, rollout time) and, per run, a picture on one time
//! axis — requests per second, lost requests on a strip of their own (so a
//! handful shows next to thousands of successes), and a lane per pod: starting,
//! serving, terminating while the router still sends it traffic, draining,
//! with the stop signal, the exit and any SIGKILL marked.
//!
//! Plain SVG written here, no script: nothing to load, nothing to break.

use std::{collections::BTreeMap, fmt::Write};

use crate::{
    timeline::{Event, Kind},
    Report,
};

const W: f64 = 1000.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const RATE_H: f64 = 90.0;
const LOST_H: f64 = 40.0;
const LANE_H: f64 = 16.0;

/// The page for `runs` (a title and a report each).
pub fn page(title: &str, runs: &[(String, &Report)]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>{STYLE}</style></head><body>\n<h1>{t}</h1>",
        t = esc(title)
    );
    out.push_str(&table(runs));
    out.push_str(LEGEND);
    // One time scale for every run, so durations compare at a glance.
    let span = runs
        .iter()
        .map(|(_, r)| bounds(r))
        .map(|(a, b)| b - a)
        .fold(1.0, f64::max);
    for (name, r) in runs {
        out.push_str(&section(name, r, span));
    }
    out.push_str("</body></html>\n");
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222}\
table{border-collapse:collapse;margin:12px 0}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}\
td:first-child,th:first-child{text-align:left}.lost{color:#c0392b;font-weight:700}.ok{color:#1e8449;font-weight:700}\
.bar{display:inline-block;height:10px;background:#5d6d7e;vertical-align:middle}\
section{margin:28px 0}h2{font-size:17px;margin:4px 0}.sub{color:#555;margin:2px 0 8px}\
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle}\
svg text{font:11px system-ui,sans-serif;fill:#333}";

const LEGEND: &str = "<p class=\"legend\"><span><i class=\"sw\" style=\"background:#bbb\"></i>starting</span>\
<span><i class=\"sw\" style=\"background:#27ae60\"></i>serving</span>\
<span><i class=\"sw\" style=\"background:#e67e22\"></i>deleted, router still sends traffic</span>\
<span><i class=\"sw\" style=\"background:#f4d03f\"></i>out of the router, draining</span>\
<span><i class=\"sw\" style=\"background:#f5b7b1\"></i>exited, router still sends traffic</span>\
<span>&#9660; stop signal</span><span style=\"color:#c0392b\">&#10006; SIGKILL</span><span>| exit</span>\
<span><i class=\"sw\" style=\"background:#c0392b\"></i>lost requests</span></p>\n";

fn table(runs: &[(String, &Report)]) -> String {
    let longest = runs
        .iter()
        .filter_map(|(_, r)| r.rollout_seconds)
        .fold(1.0f64, f64::max);
    let mut t = String::from("<table id=\"summary\"><tr><th>run</th><th>requests</th><th>lost</th><th>lost by outcome</th><th>rollout</th><th></th></tr>\n");
    for (name, r) in runs {
        let lost = r.failed();
        let class = if lost == 0 { "ok" } else { "lost" };
        let secs = r
            .rollout_seconds
            .map_or("did not finish".into(), |s| format!("{s:.1} s"));
        let width = r.rollout_seconds.map_or(0.0, |s| 200.0 * s / longest);
        let _ = writeln!(
            t,
            "<tr><td><a href=\"#{id}\">{n}</a></td><td>{req}</td><td class=\"{class}\">{lost}</td><td>{by}</td><td>{secs}</td><td><span class=\"bar\" style=\"width:{width:.0}px\"></span></td></tr>",
            id = anchor(name),
            n = esc(name),
            req = r.requests(),
            by = esc(&crate::summary::outcomes(&r.failed_by_outcome())),
        );
    }
    t.push_str("</table>\n");
    t
}

/// The first and last second a run's picture shows.
fn bounds(r: &Report) -> (f64, f64) {
    let buckets = merged_buckets(r);
    let end = buckets
        .last()
        .map(|b| b.0 + b.3)
        .unwrap_or(0.0)
        .max(r.events.last().map_or(0.0, |e| e.at_s));
    (r.traffic_started_s.min(r.rollout_started_s), end)
}

fn section(name: &str, r: &Report, span: f64) -> String {
    let buckets = merged_buckets(r);
    let (start, end) = bounds(r);
    let lanes = lanes(&r.events);
    let x = |t: f64| LEFT + (t - start).max(0.0) / span * (W - LEFT - RIGHT);
    let h = RATE_H + LOST_H + 30.0 + lanes.len() as f64 * LANE_H + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<section id=\"{id}\"><h2>{n}</h2><p class=\"sub\">{sub}</p>\n<svg class=\"timeline\" viewBox=\"0 0 {W} {h}\" width=\"{W}\" height=\"{h}\">",
        id = anchor(name),
        n = esc(name),
        sub = esc(&subtitle(r)),
    );
    rate_chart(&mut s, &buckets, &x);
    lost_strip(&mut s, &buckets, &x);
    let top = RATE_H + LOST_H + 30.0;
    for (i, (pod, events)) in lanes.iter().enumerate() {
        lane(&mut s, pod, events, top + i as f64 * LANE_H, end, &x);
    }
    for e in &r.events {
        if matches!(e.kind, Kind::RolloutStarted | Kind::RolloutComplete) {
            let px = x(e.at_s);
            let ty = if e.kind == Kind::RolloutStarted {
                10
            } else {
                22
            };
            let label = if e.kind == Kind::RolloutStarted {
                "update starts"
            } else {
                "rollout complete"
            };
            let _ = writeln!(s, "<line class=\"mark\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"0\" y2=\"{h}\" stroke=\"#34495e\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{ty}\">{label}</text>", px + 3.0);
        }
    }
    axis(&mut s, start, end, h - 12.0, &x);
    s.push_str("</svg></section>\n");
    s
}

fn subtitle(r: &Report) -> String {
    let roll = r.rollout_seconds.map_or("did not finish".into(), |s| {
        format!("{s:.1} s to the last old pod's exit")
    });
    format!(
        "{} replicas, {}; {} requests, {} lost; update {roll}",
        r.replicas,
        r.strategy,
        r.requests(),
        r.failed()
    )
}

/// (start s on the run's clock, requests, failures, width s), all protocols summed.
fn merged_buckets(r: &Report) -> Vec<(f64, u64, u64, f64)> {
    let mut m: BTreeMap<i64, (u64, u64, f64)> = BTreeMap::new();
    for rep in r.traffic.iter().filter_map(|t| t.report.as_ref()) {
        let w = rep.summary.bucket_s.max(0.001);
        for b in &rep.timeline {
            let key = ((r.traffic_started_s + b.start_s) / w).round() as i64;
            let e = m.entry(key).or_insert((0, 0, w));
            e.0 += b.requests;
            e.1 += b.failures;
        }
    }
    m.into_iter()
        .map(|(k, (req, fail, w))| (k as f64 * w, req, fail, w))
        .collect()
}

fn rate_chart(s: &mut String, buckets: &[(f64, u64, u64, f64)], x: &dyn Fn(f64) -> f64) {
    let max = buckets.iter().map(|b| b.1 as f64 / b.3).fold(1.0, f64::max);
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{}\">requests/s</text><text x=\"4\" y=\"{}\">max {max:.0}</text>",
        RATE_H / 2.0,
        RATE_H / 2.0 + 14.0
    );
    let mut path = format!("M{:.1},{RATE_H}", x(buckets.first().map_or(0.0, |b| b.0)));
    for b in buckets {
        let y = RATE_H - (b.1 as f64 / b.3) / max * (RATE_H - 14.0);
        let _ = write!(path, " L{:.1},{y:.1} L{:.1},{y:.1}", x(b.0), x(b.0 + b.3));
    }
    let _ = write!(
        path,
        " L{:.1},{RATE_H} Z",
        x(buckets.last().map_or(0.0, |b| b.0 + b.3))
    );
    let _ = writeln!(
        s,
        "<path class=\"rate\" d=\"{path}\" fill=\"#aed6f1\" stroke=\"#2e86c1\"/>"
    );
}

fn lost_strip(s: &mut String, buckets: &[(f64, u64, u64, f64)], x: &dyn Fn(f64) -> f64) {
    let top = RATE_H + 8.0;
    let total: u64 = buckets.iter().map(|b| b.2).sum();
    let max = buckets.iter().map(|b| b.2).max().unwrap_or(0).max(1) as f64;
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{}\">lost: {total}</text>",
        top + LOST_H / 2.0 + 4.0
    );
    let _ = writeln!(s, "<rect x=\"{LEFT}\" y=\"{top}\" width=\"{}\" height=\"{LOST_H}\" fill=\"#fbfcfc\" stroke=\"#eee\"/>", W - LEFT - RIGHT);
    for b in buckets.iter().filter(|b| b.2 > 0) {
        // At least a third of the strip for any loss, so one lost request shows.
        let hh = (LOST_H / 3.0).max(b.2 as f64 / max * LOST_H);
        let _ = writeln!(
            s,
            "<rect class=\"lost\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{hh:.1}\" fill=\"#c0392b\"><title>{} lost at {:.2} s</title></rect>",
            x(b.0),
            top + LOST_H - hh,
            (x(b.0 + b.3) - x(b.0)).max(2.0),
            b.2,
            b.0
        );
    }
}

/// Each pod's events, pods in order of creation.
fn lanes(events: &[Event]) -> Vec<(String, Vec<&Event>)> {
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in events {
        if let Some(p) = &e.pod {
            if !by.contains_key(p) {
                order.push(p.clone());
            }
            by.entry(p.clone()).or_default().push(e);
        }
    }
    order
        .into_iter()
        .map(|p| {
            let ev = by.remove(&p).unwrap_or_default();
            (p, ev)
        })
        .collect()
}

fn lane(s: &mut String, pod: &str, events: &[&Event], y: f64, end: f64, x: &dyn Fn(f64) -> f64) {
    let at = |k: Kind| events.iter().find(|e| e.kind == k).map(|e| e.at_s);
    let rev = events.first().and_then(|e| e.revision).unwrap_or(0);
    let created = at(Kind::Created).unwrap_or(0.0);
    let gone = at(Kind::Gone).unwrap_or(end);
    let ready = at(Kind::Ready);
    let deleted = at(Kind::Deleted);
    let removed = events
        .iter()
        .rev()
        .find(|e| e.kind == Kind::RouterRemoved)
        .map(|e| e.at_s);
    let _ = writeln!(
        s,
        "<text x=\"4\" y=\"{:.1}\">{} (rev {rev})</text>",
        y + 11.0,
        esc(&short(pod))
    );
    let mut seg = |from: f64, to: f64, color: &str, what: &str| {
        if to > from {
            let _ = writeln!(
                s,
                "<rect class=\"pod\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{} {what} {from:.2}–{to:.2} s</title></rect>",
                x(from),
                y + 2.0,
                (x(to) - x(from)).max(1.0),
                LANE_H - 4.0,
                esc(pod)
            );
        }
    };
    let serving_from = ready.unwrap_or(gone);
    seg(
        created,
        serving_from.min(deleted.unwrap_or(gone)),
        "#bbb",
        "starting",
    );
    let serving_to = deleted.unwrap_or(gone);
    if ready.is_some() {
        seg(serving_from, serving_to, "#27ae60", "serving");
    }
    if let Some(d) = deleted {
        let r = removed.filter(|r| *r >= d).unwrap_or(d).min(gone);
        seg(d, r, "#e67e22", "deleted, still routed");
        seg(r, gone, "#f4d03f", "draining");
        // Exited while the router still sends it requests: the race lost.
        if let Some(late) = removed.filter(|r| *r > gone) {
            seg(gone, late, "#f5b7b1", "exited, router still sends traffic");
        }
    }
    for e in events {
        let px = x(e.at_s);
        let mark = match e.kind {
            Kind::StopSignal => format!("<text class=\"sig\" x=\"{:.1}\" y=\"{:.1}\">&#9660;</text>", px - 4.0, y + 6.0),
            Kind::Killed => format!("<text class=\"kill\" x=\"{:.1}\" y=\"{:.1}\" style=\"fill:#c0392b;font-weight:700\">&#10006;</text>", px - 4.0, y + 12.0),
            Kind::Exited => format!("<line class=\"exit\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#111\" stroke-width=\"2\"/>", y + 1.0, y + LANE_H - 1.0),
            _ => continue,
        };
        let _ = writeln!(
            s,
            "<g><title>{} {:?} at {:.2} s {}</title>{mark}</g>",
            esc(pod),
            e.kind,
            e.at_s,
            esc(&e.detail)
        );
    }
}

fn axis(s: &mut String, start: f64, end: f64, y: f64, x: &dyn Fn(f64) -> f64) {
    let span = (end - start).max(1.0);
    let step = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0]
        .into_iter()
        .find(|st| span / st <= 12.0)
        .unwrap_or(120.0);
    let mut t = (start / step).ceil() * step;
    while t <= end {
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{y:.1}\">{:.0} s</text>",
            x(t) - 8.0,
            t
        );
        t += step;
    }
}

/// `web-7d9c8b6f5-x2k9q` → `web-…-x2k9q` when long.
fn short(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if pod.len() > 18 && parts.len() == 3 {
        format!("{}-{}", &parts[1][..parts[1].len().min(4)], parts[0])
    } else {
        pod.to_string()
    }
}

fn anchor(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
