//! Rollout settings that drop serving capacity (LD009, LD010, LD011) and
//! multi-replica workloads a node drain can empty (LD012). The surge and
//! unavailable arithmetic is Kubernetes': surge rounds up, unavailable rounds
//! down, and both 0 means one unavailable.

use super::Ctx;
use crate::k8s::{self, Workload};
use crate::rules::{self, Finding};
use crate::yaml::Node;

pub(super) fn check(ctx: &Ctx<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let serving = ctx.has_service(w) || w.containers().iter().any(k8s::has_ports);
    if w.obj.kind == "Deployment" && serving {
        strategy(ctx, w, out);
    }
    if matches!(w.obj.kind, "Deployment" | "StatefulSet" | "ReplicaSet") {
        disruption_budget(ctx, w, out);
    }
}

fn strategy(ctx: &Ctx<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let spec = w.obj.node.at(&["spec", "strategy"]);
    let file = w.obj.file;
    if let Some(t) = spec
        .and_then(|s| s.get("type"))
        .filter(|t| t.as_str() == Some("Recreate"))
    {
        if ctx.has_service(w) {
            out.push(Finding::new(
                rules::RECREATE,
                file,
                t.span,
                format!(
                    "{} uses strategy Recreate: every pod stops before the new ones start, and its Service has no endpoint in between",
                    w.obj.title()
                ),
            ));
        }
        return;
    }
    let replicas = w.replicas();
    if replicas < 1 {
        return;
    }
    let rolling = spec.and_then(|s| s.get("rollingUpdate"));
    let surge_node = rolling.and_then(|r| r.get("maxSurge"));
    let unavailable_node = rolling.and_then(|r| r.get("maxUnavailable"));
    let surge = resolve(surge_node, replicas, true);
    let mut unavailable = resolve(unavailable_node, replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    let at = |n: Option<&Node>| n.or(rolling).or(spec).map_or(w.obj.node.span, |n| n.span);
    if replicas == 1 && surge == 0 {
        out.push(Finding::new(
            rules::SINGLE_NO_SURGE,
            file,
            at(surge_node),
            format!("{} has one replica and maxSurge 0: its only pod stops before the replacement is ready", w.obj.title()),
        ));
    } else if unavailable >= replicas {
        out.push(Finding::new(
            rules::NO_READY_POD,
            file,
            at(unavailable_node),
            format!(
                "maxUnavailable resolves to {unavailable} of {replicas} replicas: a rolling update may stop every ready pod of {} at once",
                w.obj.title()
            ),
        ));
    }
}

/// An int-or-percent of `replicas`, with Kubernetes' defaults (25%).
fn resolve(node: Option<&Node>, replicas: i64, round_up: bool) -> i64 {
    let text = node.and_then(Node::as_str).unwrap_or("25%").trim();
    match text.strip_suffix('%').map(|p| p.trim().parse::<f64>()) {
        Some(Ok(pct)) => {
            let exact = pct / 100.0 * replicas as f64;
            (if round_up {
                exact.ceil()
            } else {
                exact.floor()
            }) as i64
        }
        Some(Err(_)) => 0,
        None => text.parse().unwrap_or(0),
    }
}

fn disruption_budget(ctx: &Ctx<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let replicas = w.replicas();
    if replicas < 2 || ctx.pdbs.any_selects(w) {
        return;
    }
    let span = w
        .obj
        .node
        .at(&["spec", "replicas"])
        .map_or(w.obj.node.span, |n| n.span);
    out.push(Finding::new(
        rules::NO_PDB,
        w.obj.file,
        span,
        format!(
            "{} has {replicas} replicas and no PodDisruptionBudget in the input: a node drain may evict them all at once",
            w.obj.title()
        ),
    ));
}
