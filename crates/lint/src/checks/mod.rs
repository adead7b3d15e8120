//! The checks, by what they read: a pod's containers, its timing, its
//! rollout settings, the proxies in it (and Envoy Gateway's EnvoyProxy
//! resource, which stands for pods Envoy Gateway renders), and Dockerfiles
//! with their scripts.
//! Each check gets the whole input (`Ctx`), so that a Service, a ConfigMap or
//! a PodDisruptionBudget in another file still counts.

mod docker;
mod envoy_proxy;
mod pod;
mod proxy;
mod rollout;
mod timing;

use std::collections::HashMap;

use crate::k8s::{self, Object, SelectorIndex, Workload};
use crate::rules::{Edit, Finding};
use crate::source::{FileKind, SourceFile, Span};
use crate::yaml::Node;
use crate::Options;

/// Everything the checks may look at.
pub(crate) struct Ctx<'a> {
    pub(crate) files: &'a [SourceFile],
    pub(crate) objects: Vec<Object<'a>>,
    pub(crate) services: SelectorIndex<'a>,
    pub(crate) pdbs: SelectorIndex<'a>,
    config_maps: HashMap<&'a str, Vec<Object<'a>>>,
    pub(crate) options: &'a Options,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(
        files: &'a [SourceFile],
        docs: &'a [Vec<Node>],
        options: &'a Options,
    ) -> Ctx<'a> {
        let objects: Vec<Object<'a>> = docs
            .iter()
            .enumerate()
            .flat_map(|(i, d)| k8s::objects(i, d))
            .collect();
        let mut config_maps: HashMap<&'a str, Vec<Object<'a>>> = HashMap::new();
        for o in objects.iter().filter(|o| o.kind == "ConfigMap") {
            config_maps.entry(o.name).or_default().push(*o);
        }
        Ctx {
            files,
            services: SelectorIndex::new(k8s::services(&objects)),
            pdbs: SelectorIndex::new(k8s::disruption_budgets(&objects)),
            config_maps,
            objects,
            options,
        }
    }

    /// The ConfigMap `name` in the workload's namespace.
    pub(crate) fn config_map(&self, w: &Workload<'_>, name: &str) -> Option<Object<'a>> {
        self.config_maps.get(name)?.iter().copied().find(|o| {
            o.namespace.is_empty() || w.obj.namespace.is_empty() || o.namespace == w.obj.namespace
        })
    }

    /// Whether a Service in the input selects the workload's pods.
    pub(crate) fn has_service(&self, w: &Workload<'_>) -> bool {
        self.services.any_selects(w)
    }
}

/// Every finding of every check over the input.
pub(crate) fn run(ctx: &Ctx<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for obj in &ctx.objects {
        if envoy_proxy::is_envoy_proxy(obj) && !envoy_proxy::ignored(obj) {
            envoy_proxy::check(ctx, obj, &mut out);
        }
        let Some(w) = Workload::of(*obj) else {
            continue;
        };
        let mut found = Vec::new();
        timing::check(ctx, &w, &mut found);
        proxy::check(ctx, &w, &mut found);
        pod::check(ctx, &w, &mut found);
        rollout::check(ctx, &w, &mut found);
        let ignored = w.ignored();
        found.retain(|f| {
            !ignored
                .iter()
                .any(|i| i.eq_ignore_ascii_case(f.rule.id) || i.eq_ignore_ascii_case(f.rule.name))
        });
        out.extend(found);
    }
    for (i, file) in ctx.files.iter().enumerate() {
        match file.kind {
            FileKind::Dockerfile => docker::check_dockerfile(i, file, &mut out),
            FileKind::Script => docker::check_script(i, file, &mut out),
            FileKind::Yaml => {}
        }
    }
    out
}

/// An edit that puts `exec ` before the last occurrence of `command` in the
/// text of `node` (a YAML scalar or JSON string holding a shell script).
pub(crate) fn insert_exec(
    file: usize,
    source: &SourceFile,
    span: Span,
    command: &str,
) -> Option<Edit> {
    let raw = source.slice(span);
    let at = raw.rfind(command)?;
    Some(Edit {
        file,
        span: Span::new(span.start + at, span.start + at),
        text: "exec ".to_string(),
    })
}

/// The place to report a container at: its `name` value, else its first byte.
pub(crate) fn container_span(container: &Node) -> Span {
    container.get("name").map_or(container.span, |n| n.span)
}

/// A container's name for messages.
pub(crate) fn container_name(container: &Node) -> &str {
    container.get("name").and_then(Node::as_str).unwrap_or("?")
}
