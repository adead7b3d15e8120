//! LD002 for Envoy Gateway's own resource, `kind: EnvoyProxy`
//! (`gateway.envoyproxy.io/v1alpha1`): its `spec.shutdown.drainTimeout`
//! against the terminationGracePeriodSeconds the Envoy pods will get.
//!
//! Envoy Gateway renders the Envoy Deployment (or DaemonSet) itself, so the
//! input often holds only the EnvoyProxy. What Envoy Gateway does with it:
//! - the shutdown manager drains until the connections are gone (not before
//!   `minDrainDuration`, 10 s by default) or `drainTimeout` (60 s by default)
//!   has passed, whichever comes first: `drainTimeout` is the longest drain,
//!   `minDrainDuration` never extends it;
//! - the pod's terminationGracePeriodSeconds is `drainTimeout + 300` (360
//!   when drainTimeout is not set). The EnvoyProxy API has no field for it;
//!   only a patch of the Deployment or DaemonSet
//!   (`spec.provider.kubernetes.envoyDeployment.patch`) overrides it, and
//!   that is where a grace shorter than the drain comes from.

use super::Ctx;
use crate::k8s::Object;
use crate::rules::{self, Edit, Finding};
use crate::shell::{parse_seconds, show};
use crate::yaml::{Node, Style};

/// Envoy Gateway's default `spec.shutdown.drainTimeout`, in seconds.
const DEFAULT_DRAIN_TIMEOUT: f64 = 60.0;
/// What Envoy Gateway adds to the drain timeout for the pod's grace period.
const GRACE_OVER_DRAIN: f64 = 300.0;
/// Where a StrategicMerge or JSONMerge patch of the Deployment or
/// DaemonSet sets the grace period.
const GRACE_PATH: [&str; 4] = ["spec", "template", "spec", "terminationGracePeriodSeconds"];

/// The grace period the Envoy pods get, and where it comes from.
struct Grace<'a> {
    seconds: f64,
    /// The value in the EnvoyProxy's patch, when a patch sets it.
    node: Option<&'a Node>,
    source: String,
}

/// Whether `obj` is an Envoy Gateway EnvoyProxy.
pub(super) fn is_envoy_proxy(obj: &Object<'_>) -> bool {
    obj.kind == "EnvoyProxy"
        && obj
            .node
            .get("apiVersion")
            .and_then(Node::as_str)
            .is_some_and(|v| v.starts_with("gateway.envoyproxy.io/"))
}

pub(super) fn check(ctx: &Ctx<'_>, obj: &Object<'_>, out: &mut Vec<Finding>) {
    let drain_node = obj.node.at(&["spec", "shutdown", "drainTimeout"]);
    let drain = match drain_node {
        Some(n) => match n.as_str().and_then(parse_seconds) {
            Some(s) => s,
            None => return,
        },
        None => DEFAULT_DRAIN_TIMEOUT,
    };
    let grace = grace(obj, drain);
    if drain <= grace.seconds {
        return;
    }
    let Some(span) = drain_node.or(grace.node).map(|n| n.span) else {
        return;
    };
    let needed = (drain + ctx.options.margin).ceil() as i64;
    let edit = grace
        .node
        .filter(|n| n.style() == Some(Style::Plain))
        .map(|n| Edit {
            file: obj.file,
            span: n.span,
            text: needed.to_string(),
        });
    let what = if drain_node.is_some() {
        "Envoy Gateway EnvoyProxy shutdown.drainTimeout"
    } else {
        "Envoy Gateway EnvoyProxy shutdown.drainTimeout (its default)"
    };
    out.push(
        Finding::new(
            rules::PROXY_DRAIN,
            obj.file,
            span,
            format!(
                "{what} {} > terminationGracePeriodSeconds {} ({}) of {}: the kubelet SIGKILLs Envoy while it still drains connections",
                show(drain),
                show(grace.seconds),
                grace.source,
                obj.title()
            ),
        )
        .with_fix(format!(
            "raise terminationGracePeriodSeconds in the patch to {needed} (the drain plus a margin), drop it from the patch (Envoy Gateway then gives drainTimeout + 300 s), or shorten drainTimeout"
        ))
        .with_edit(edit),
    );
}

/// The grace period: set by a patch of the Envoy Deployment or DaemonSet,
/// else Envoy Gateway's `drainTimeout + 300 s`.
fn grace<'a>(obj: &Object<'a>, drain: f64) -> Grace<'a> {
    for workload in ["envoyDeployment", "envoyDaemonSet"] {
        let patch = obj
            .node
            .at(&["spec", "provider", "kubernetes", workload, "patch", "value"]);
        if let Some(node) = patch.and_then(|v| v.at(&GRACE_PATH)) {
            if let Some(n) = node.as_i64() {
                return Grace {
                    seconds: n as f64,
                    node: Some(node),
                    source: format!("set by spec.provider.kubernetes.{workload}.patch"),
                };
            }
        }
    }
    Grace {
        seconds: drain + GRACE_OVER_DRAIN,
        node: None,
        source: "Envoy Gateway's default, drainTimeout + 300 s".into(),
    }
}

/// Whether the EnvoyProxy's `lameduck.dev/ignore` annotation lists LD002.
pub(super) fn ignored(obj: &Object<'_>) -> bool {
    obj.node
        .at(&["metadata", "annotations", "lameduck.dev/ignore"])
        .and_then(Node::as_str)
        .is_some_and(|v| {
            v.split(',').map(str::trim).any(|i| {
                i.eq_ignore_ascii_case(rules::PROXY_DRAIN.id)
                    || i.eq_ignore_ascii_case(rules::PROXY_DRAIN.name)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{FileKind, SourceFile};
    use crate::yaml;

    fn grace_of(text: &str) -> f64 {
        let file = SourceFile::new("t.yaml", FileKind::Yaml, text);
        let docs = yaml::load(&file).expect("parses");
        let objs = crate::k8s::objects(0, &docs);
        grace(&objs[0], 90.0).seconds
    }

    #[test]
    fn grace_is_drain_plus_300_without_a_patch_and_the_patch_value_with_one() {
        let head =
            "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyProxy\nmetadata: {name: eg}\n";
        assert_eq!(grace_of(&format!("{head}spec: {{}}\n")), 390.0);
        let daemon_set = format!(
            "{head}spec:\n  provider:\n    kubernetes:\n      envoyDaemonSet:\n        patch:\n          type: JSONMerge\n          value: {{spec: {{template: {{spec: {{terminationGracePeriodSeconds: 45}}}}}}}}\n"
        );
        assert_eq!(grace_of(&daemon_set), 45.0);
    }
}
