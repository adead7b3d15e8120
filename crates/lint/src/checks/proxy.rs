//! LD002: proxies and mesh sidecars with a drain longer than their pod's
//! grace period, so the kubelet SIGKILLs them mid-drain: ingress-nginx
//! `worker-shutdown-timeout` (240 s by default), HAProxy `hard-stop-after`,
//! Istio's `terminationDrainDuration`, Envoy Gateway's shutdown
//! `--drain-timeout`/`--min-drain-duration`, Envoy's `--drain-time-s`, and
//! lameduck proxy's own `grace`.

use super::{container_span, Ctx};
use crate::k8s::{self, Workload};
use crate::rules::{self, Edit, Finding};
use crate::shell::{parse_seconds, show};
use crate::source::{SourceFile, Span};
use crate::yaml::{Node, Style};

/// One drain setting found: what, how long, where (file and span).
struct Setting {
    what: String,
    seconds: f64,
    file: usize,
    span: Span,
}

pub(super) fn check(ctx: &Ctx<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let mut found = Vec::new();
    config_maps(ctx, w, &mut found);
    istio(ctx, w, &mut found);
    flags(w, &mut found);
    let (grace_node, grace) = w.grace();
    for s in found.into_iter().filter(|s| s.seconds > grace) {
        let needed = (s.seconds + ctx.options.margin).ceil() as i64;
        let edit = grace_node
            .filter(|n| n.style() == Some(Style::Plain))
            .map(|n| Edit {
                file: w.obj.file,
                span: n.span,
                text: needed.to_string(),
            });
        out.push(
            Finding::new(
                rules::PROXY_DRAIN,
                s.file,
                s.span,
                format!(
                    "{} {} > terminationGracePeriodSeconds {} of {}: the kubelet SIGKILLs the proxy while it still drains connections",
                    s.what,
                    show(s.seconds),
                    show(grace),
                    w.obj.title()
                ),
            )
            .with_fix(format!("raise terminationGracePeriodSeconds to {needed} (the drain plus a margin), or shorten the drain"))
            .with_edit(edit),
        );
    }
}

/// Settings in the ConfigMaps the pod uses.
fn config_maps(ctx: &Ctx<'_>, w: &Workload<'_>, found: &mut Vec<Setting>) {
    let is_ingress_nginx = w.containers().iter().any(|c| {
        let image = c.get("image").and_then(Node::as_str).unwrap_or("");
        image.contains("ingress-nginx/controller")
            || k8s::argv(c)
                .first()
                .is_some_and(|a| a.text.ends_with("nginx-ingress-controller"))
    });
    let mut nginx_timeout_set = false;
    for name in k8s::config_maps_used(w) {
        let Some(cm) = ctx.config_map(w, &name) else {
            continue;
        };
        let source = &ctx.files[cm.file];
        for (k, v) in cm.node.get("data").map(Node::entries).unwrap_or_default() {
            let (Some(key), Some(text)) = (k.as_str(), v.as_str()) else {
                continue;
            };
            let mut push = |what: &str, seconds: Option<f64>, span: Span| {
                if let Some(seconds) = seconds {
                    found.push(Setting {
                        what: what.to_string(),
                        seconds,
                        file: cm.file,
                        span,
                    });
                }
            };
            match key {
                "worker-shutdown-timeout" => {
                    nginx_timeout_set = true;
                    push(
                        "ingress-nginx worker-shutdown-timeout",
                        parse_seconds(text),
                        v.span,
                    );
                }
                "hard-stop-after" => push("HAProxy hard-stop-after", parse_seconds(text), v.span),
                _ => {
                    if let Some((span, val)) =
                        value_after(source, v.span, "hard-stop-after", &[' ', '\t'])
                    {
                        push("HAProxy hard-stop-after", parse_seconds(&val), span);
                    }
                    if key.ends_with(".toml") && text.contains("[proxy]") {
                        if let Some((span, val)) = value_after(source, v.span, "grace", &['=']) {
                            push("lameduck proxy grace", parse_seconds(&val), span);
                        }
                    }
                }
            }
        }
    }
    if is_ingress_nginx && !nginx_timeout_set {
        if let Some(c) = w.containers().first() {
            found.push(Setting {
                what: "ingress-nginx worker-shutdown-timeout (its default)".into(),
                seconds: 240.0,
                file: w.obj.file,
                span: container_span(c),
            });
        }
    }
}

/// `proxy.istio.io/config: {terminationDrainDuration: …}` and the
/// TERMINATION_DRAIN_DURATION_SECONDS env of an istio-proxy container.
fn istio(ctx: &Ctx<'_>, w: &Workload<'_>, found: &mut Vec<Setting>) {
    let file = w.obj.file;
    if let Some(node) = w.annotation("proxy.istio.io/config") {
        if let Some((span, val)) = value_after(
            &ctx.files[file],
            node.span,
            "terminationDrainDuration",
            &[':'],
        ) {
            if let Some(seconds) = parse_seconds(&val) {
                found.push(Setting {
                    what: "Istio terminationDrainDuration".into(),
                    seconds,
                    file,
                    span,
                });
            }
        }
    }
    for c in w.containers() {
        if let Some(v) = k8s::env_value(c, "TERMINATION_DRAIN_DURATION_SECONDS") {
            if let Some(seconds) = v.as_str().and_then(parse_seconds) {
                found.push(Setting {
                    what: "Istio TERMINATION_DRAIN_DURATION_SECONDS".into(),
                    seconds,
                    file,
                    span: v.span,
                });
            }
        }
    }
}

/// Envoy and Envoy Gateway drain flags, in a container's command line or in
/// its preStop hook (Envoy Gateway's shutdown manager).
fn flags(w: &Workload<'_>, found: &mut Vec<Setting>) {
    const FLAGS: &[(&str, &str)] = &[
        ("--drain-timeout", "Envoy Gateway shutdown --drain-timeout"),
        (
            "--min-drain-duration",
            "Envoy Gateway shutdown --min-drain-duration",
        ),
        ("--drain-time-s", "Envoy --drain-time-s"),
    ];
    for c in w.containers() {
        let mut words: Vec<&Node> = k8s::argv(c).into_iter().map(|a| a.node).collect();
        if let Some(cmd) = c.at(&["lifecycle", "preStop", "exec", "command"]) {
            words.extend(cmd.items());
        }
        for (i, word) in words.iter().enumerate() {
            let Some(text) = word.as_str() else { continue };
            for (flag, what) in FLAGS {
                let (value, node) = match text.strip_prefix(flag) {
                    Some(v) if v.starts_with('=') => (v[1..].to_string(), *word),
                    Some("") => match words
                        .get(i + 1)
                        .and_then(|n| n.as_str().map(|s| (s.to_string(), *n)))
                    {
                        Some(p) => p,
                        None => continue,
                    },
                    _ => continue,
                };
                let seconds = if *flag == "--drain-time-s" {
                    value.parse().ok()
                } else {
                    parse_seconds(&value)
                };
                if let Some(seconds) = seconds {
                    found.push(Setting {
                        what: what.to_string(),
                        seconds,
                        file: w.obj.file,
                        span: node.span,
                    });
                }
            }
        }
    }
}

/// Inside the text of a node (a block scalar, say): the value written after
/// `key` and one of `separators`, and its span in the file.
fn value_after(
    source: &SourceFile,
    span: Span,
    key: &str,
    separators: &[char],
) -> Option<(Span, String)> {
    let raw = source.slice(span);
    let mut from = 0;
    while let Some(at) = raw[from..].find(key).map(|a| a + from) {
        from = at + key.len();
        let line_start = raw[..at].rfind('\n').map_or(0, |i| i + 1);
        let before = raw[line_start..at].trim_start_matches([' ', '\t', '{', ',']);
        if !before.is_empty() && !before.ends_with([' ', '{', ',']) {
            continue;
        }
        let rest = &raw[from..];
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let Some(after_sep) = trimmed
            .strip_prefix(separators)
            .or((separators.contains(&' ') && trimmed.len() < rest.len()).then_some(trimmed))
        else {
            continue;
        };
        let value = after_sep.trim_start_matches([' ', '\t', '"', '\'']);
        let len = value
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | '#'))
            .unwrap_or(value.len());
        if len == 0 {
            continue;
        }
        let start = span.start + (raw.len() - value.len());
        return Some((Span::new(start, start + len), value[..len].to_string()));
    }
    None
}
