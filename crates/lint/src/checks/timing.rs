//! LD001: the drain must fit in terminationGracePeriodSeconds. The kubelet
//! counts the grace period from the start of preStop; whatever the app still
//! does at its end is SIGKILLed. So the preStop time plus the app's own
//! shutdown time (plus a margin, for an app whose time is a timeout it will
//! use up) must fit. `lameduck run` counts its `--grace` from the first
//! trigger and SIGKILLs at grace − margin itself, so its grace needs no
//! further margin, and a `lameduck prestop` it answers adds nothing.

use super::{container_name, Ctx};
use crate::k8s::{self, Workload};
use crate::launch::Launch;
use crate::rules::{self, Edit, Finding};
use crate::shell::{self, parse_seconds, show};
use crate::source::Span;
use crate::yaml::Node;

/// One term of the sum, e.g. `preStop sleep 20 s`.
struct Term {
    what: String,
    seconds: f64,
}

pub(super) fn check(ctx: &Ctx<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    if w.is_batch() {
        return;
    }
    let (grace_node, grace) = w.grace();
    let worst = w
        .containers()
        .iter()
        .filter_map(|c| sum(ctx, w, c).map(|terms| (c, terms)))
        .map(|(c, terms)| (c, terms.iter().map(|t| t.seconds).sum::<f64>(), terms))
        .filter(|(_, total, _)| *total > grace)
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let Some((container, total, terms)) = worst else {
        return;
    };
    let file = w.obj.file;
    let sum = terms
        .iter()
        .map(|t| t.what.as_str())
        .collect::<Vec<_>>()
        .join(" + ");
    let written = if grace_node.is_some() {
        ""
    } else {
        " (the default)"
    };
    let message = format!(
        "{sum} = {} > terminationGracePeriodSeconds {}{written}: the kubelet SIGKILLs container {:?} before its drain ends",
        show(total),
        show(grace),
        container_name(container),
    );
    let needed = total.ceil() as i64;
    let span = grace_node.map_or_else(|| report_span(w, container), |n| n.span);
    let edit = match grace_node {
        Some(n) if n.style() == Some(crate::yaml::Style::Plain) => Some(Edit {
            file,
            span: n.span,
            text: needed.to_string(),
        }),
        Some(_) => None,
        None => insert_grace(ctx, w, needed),
    };
    out.push(
        Finding::new(rules::GRACE_BUDGET, file, span, message)
            .with_fix(format!(
                "raise terminationGracePeriodSeconds to {needed}, or shorten the preStop wait or the app's shutdown"
            ))
            .with_edit(edit),
    );
}

fn report_span(w: &Workload<'_>, container: &Node) -> Span {
    container
        .at(&["lifecycle", "preStop"])
        .map(|n| n.span)
        .or_else(|| w.pod.entries().first().map(|(k, _)| k.span))
        .unwrap_or(w.pod.span)
}

/// Adds `terminationGracePeriodSeconds: N` as the pod spec's first key, at
/// its indentation, when the spec is a block mapping.
fn insert_grace(ctx: &Ctx<'_>, w: &Workload<'_>, needed: i64) -> Option<Edit> {
    let file = &ctx.files[w.obj.file];
    let (first_key, _) = w.pod.entries().first()?;
    let lc = file.line_col(first_key.span.start);
    let line_start = file.line_start(lc.line);
    let indent = &file.text[line_start..first_key.span.start];
    if !indent.chars().all(|c| c == ' ') {
        return None;
    }
    Some(Edit {
        file: w.obj.file,
        span: Span::new(line_start, line_start),
        text: format!("{indent}terminationGracePeriodSeconds: {needed}\n"),
    })
}

/// The terms of one container's drain, or `None` if nothing is known.
fn sum(ctx: &Ctx<'_>, w: &Workload<'_>, c: &Node) -> Option<Vec<Term>> {
    let launch = Launch::read(k8s::argv(c).into_iter().map(|a| a.text).collect());
    let mut terms = Vec::new();
    if let Some(t) = pre_stop(c, &launch) {
        terms.push(t);
    }
    if let Some(t) = lameduck_budget(c, &launch) {
        terms.push(t);
    } else if let Some(t) = app_timeout(ctx, w, c, &launch) {
        terms.push(t);
    }
    let app_margin = !launch.lameduck_drains() && terms.iter().any(|t| t.seconds > 0.0);
    if app_margin {
        terms.push(Term {
            what: format!("margin {}", show(ctx.options.margin)),
            seconds: ctx.options.margin,
        });
    }
    (!terms.is_empty()).then_some(terms)
}

/// The preStop hook's time, if it is a wait lint can read.
fn pre_stop(c: &Node, launch: &Launch) -> Option<Term> {
    let hook = c.at(&["lifecycle", "preStop"])?;
    if let Some(n) = hook.at(&["sleep", "seconds"]).and_then(Node::as_i64) {
        return Some(Term {
            what: format!("preStop sleep {}", show(n as f64)),
            seconds: n as f64,
        });
    }
    let argv: Vec<String> = hook
        .at(&["exec", "command"])?
        .items()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    let first = shell::base_name(argv.first()?);
    if first == "sleep" {
        let n = argv.get(1).and_then(|a| parse_seconds(a))?;
        return Some(Term {
            what: format!("preStop sleep {}", show(n)),
            seconds: n,
        });
    }
    if first == "lameduck" && argv.get(1).is_some_and(|s| s == "prestop") {
        return prestop_alone(&argv, launch);
    }
    let script = shell::dash_c_script(&argv).map(|i| argv[i].as_str())?;
    let n = shell::sleep_seconds(script)?;
    Some(Term {
        what: format!("preStop sleep {}", show(n)),
        seconds: n,
    })
}

/// `lameduck prestop`: inside `lameduck run`'s budget when run is PID 1;
/// alone, it waits --drain-delay (or at most its budget share with
/// --until-quiet).
fn prestop_alone(argv: &[String], launch: &Launch) -> Option<Term> {
    if matches!(launch.pid1, crate::launch::Pid1::LameduckRun { .. }) {
        return None;
    }
    let hook = Launch::read(
        ["lameduck", "run"]
            .iter()
            .map(|s| s.to_string())
            .chain(argv[2..].iter().cloned())
            .collect(),
    );
    let seconds_of = |flag: &str, default: f64| {
        hook.flag(flag)
            .and_then(|(_, v)| parse_seconds(v))
            .unwrap_or(default)
    };
    let share = seconds_of("--grace", 30.0)
        - seconds_of("--margin", 2.0)
        - seconds_of("--stop-reserve", 5.0);
    let (what, seconds) = match (hook.flag("--drain-delay"), hook.flag("--until-quiet")) {
        (Some((_, d)), _) => ("--drain-delay", parse_seconds(d)?.min(share.max(0.0))),
        (None, Some(_)) => ("--until-quiet at most", share.max(0.0)),
        (None, None) => return None,
    };
    Some(Term {
        what: format!("preStop lameduck prestop {what} {}", show(seconds)),
        seconds,
    })
}

/// `lameduck run` / `registry`: the whole budget is --grace (from the flag,
/// LAMEDUCK_GRACE_SECONDS, or 30 s).
fn lameduck_budget(c: &Node, launch: &Launch) -> Option<Term> {
    let name = match &launch.pid1 {
        crate::launch::Pid1::LameduckRun { .. } => "run",
        crate::launch::Pid1::LameduckPart(p) if p == "registry" => "registry",
        _ => return None,
    };
    if let Some(v) = launch.flag("--grace").and_then(|(_, v)| parse_seconds(v)) {
        return Some(Term {
            what: format!("lameduck {name} --grace {}", show(v)),
            seconds: v,
        });
    }
    if let Some(v) = k8s::env_value(c, "LAMEDUCK_GRACE_SECONDS")
        .and_then(|n| n.as_str())
        .and_then(parse_seconds)
    {
        return Some(Term {
            what: format!("lameduck {name} grace {} (LAMEDUCK_GRACE_SECONDS)", show(v)),
            seconds: v,
        });
    }
    Some(Term {
        what: format!("lameduck {name} grace 30 s (its default)"),
        seconds: 30.0,
    })
}

const SPRING_KEY: &str = "timeout-per-shutdown-phase";
const SPRING_ENV: &str = "SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE";

/// The app's own shutdown time: the `lameduck.dev/shutdown-seconds`
/// annotation, or Spring's timeout-per-shutdown-phase (env, arguments, JVM
/// options, or a ConfigMap the pod uses); Spring's 30 s default when it has
/// graceful shutdown on but no timeout.
fn app_timeout(ctx: &Ctx<'_>, w: &Workload<'_>, c: &Node, launch: &Launch) -> Option<Term> {
    if let Some(v) = w
        .annotation("lameduck.dev/shutdown-seconds")
        .and_then(Node::as_str)
        .and_then(parse_seconds)
    {
        return Some(Term {
            what: format!("app shutdown {} (lameduck.dev/shutdown-seconds)", show(v)),
            seconds: v,
        });
    }
    let mut texts: Vec<String> = launch.argv.clone();
    let mut graceful = false;
    for (name, value) in k8s::env(c) {
        let Some(v) = value.as_str() else { continue };
        if name == SPRING_ENV {
            texts.push(format!("{SPRING_KEY}={v}"));
        } else if name == "SERVER_SHUTDOWN" {
            graceful |= v.eq_ignore_ascii_case("graceful");
        } else {
            texts.push(v.to_string());
        }
    }
    for name in k8s::config_maps_used(w) {
        let Some(cm) = ctx.config_map(w, &name) else {
            continue;
        };
        for (k, v) in cm.node.get("data").map(Node::entries).unwrap_or_default() {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                continue;
            };
            match k {
                SPRING_ENV => texts.push(format!("{SPRING_KEY}={v}")),
                "SERVER_SHUTDOWN" => graceful |= v.eq_ignore_ascii_case("graceful"),
                _ => texts.push(v.to_string()),
            }
        }
    }
    graceful |= texts
        .iter()
        .any(|t| spring_value(t, "shutdown").is_some_and(|v| v == "graceful"));
    let timeout = texts
        .iter()
        .find_map(|t| spring_value(t, SPRING_KEY))
        .and_then(|v| parse_seconds(&v));
    match timeout {
        Some(v) => Some(Term {
            what: format!("spring.lifecycle.{SPRING_KEY} {}", show(v)),
            seconds: v,
        }),
        None if graceful => Some(Term {
            what: format!(
                "spring.lifecycle.{SPRING_KEY} 30 s (its default with server.shutdown=graceful)"
            ),
            seconds: 30.0,
        }),
        None => None,
    }
}

/// The value after `KEY` `=`/`:` in a properties, YAML or `-D` text.
fn spring_value(text: &str, key: &str) -> Option<String> {
    let mut rest = text;
    while let Some(at) = rest.find(key) {
        let after = rest[at + key.len()..].trim_start();
        let before_ok = at == 0 || rest[..at].ends_with(['.', ' ', '\n', '-', '\t']);
        if let (true, Some(v)) = (before_ok, after.strip_prefix(['=', ':'])) {
            let v = v.trim_start().trim_start_matches(['"', '\'']);
            let end = v
                .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
                .unwrap_or(v.len());
            return Some(v[..end].to_string());
        }
        rest = &rest[at + key.len()..];
    }
    None
}
