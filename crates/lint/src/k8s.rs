//! The Kubernetes objects the rules read, found in YAML documents: workloads
//! with their pod template, Services, PodDisruptionBudgets and ConfigMaps.
//! `List` kinds are unpacked; everything else is skipped.

use std::collections::HashMap;

use crate::yaml::Node;

/// An object with the file it came from.
#[derive(Debug, Clone, Copy)]
pub struct Object<'a> {
    /// Index of the file in the inputs.
    pub file: usize,
    /// The object's mapping.
    pub node: &'a Node,
    /// `kind`.
    pub kind: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.namespace` (empty if none).
    pub namespace: &'a str,
}

impl<'a> Object<'a> {
    fn read(file: usize, node: &'a Node) -> Option<Object<'a>> {
        let kind = node.get("kind")?.as_str()?;
        Some(Object {
            file,
            node,
            kind,
            name: node
                .at(&["metadata", "name"])
                .and_then(Node::as_str)
                .unwrap_or(""),
            namespace: node
                .at(&["metadata", "namespace"])
                .and_then(Node::as_str)
                .unwrap_or(""),
        })
    }

    /// `Kind/name`, as messages name it.
    pub fn title(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    fn same_namespace(&self, other: &Object<'_>) -> bool {
        self.namespace.is_empty() || other.namespace.is_empty() || self.namespace == other.namespace
    }
}

/// Every object of the documents (items of `List` kinds included).
pub fn objects<'a>(file: usize, docs: &'a [Node]) -> Vec<Object<'a>> {
    let mut out = Vec::new();
    for doc in docs {
        push_object(file, doc, &mut out);
    }
    out
}

fn push_object<'a>(file: usize, node: &'a Node, out: &mut Vec<Object<'a>>) {
    let Some(obj) = Object::read(file, node) else {
        return;
    };
    if obj.kind.ends_with("List") {
        for item in node.get("items").map(Node::items).unwrap_or_default() {
            push_object(file, item, out);
        }
    } else {
        out.push(obj);
    }
}

/// A workload: an object that owns a pod template.
#[derive(Debug, Clone, Copy)]
pub struct Workload<'a> {
    /// The object.
    pub obj: Object<'a>,
    /// The pod spec (`spec.template.spec`, or a Pod's `spec`).
    pub pod: &'a Node,
    /// The pod template's metadata, if any (a Pod's own metadata).
    pub pod_meta: Option<&'a Node>,
}

impl<'a> Workload<'a> {
    /// The workload of `obj`, if it has a pod template.
    pub fn of(obj: Object<'a>) -> Option<Workload<'a>> {
        let template = match obj.kind {
            "Deployment"
            | "StatefulSet"
            | "DaemonSet"
            | "ReplicaSet"
            | "ReplicationController"
            | "Job" => obj.node.at(&["spec", "template"])?,
            "CronJob" => obj.node.at(&["spec", "jobTemplate", "spec", "template"])?,
            "Pod" => obj.node,
            _ => return None,
        };
        Some(Workload {
            obj,
            pod: template.get("spec").filter(|s| s.is_map())?,
            pod_meta: template.get("metadata"),
        })
    }

    /// Whether its pods run to completion (no serving, no rollout).
    pub fn is_batch(&self) -> bool {
        matches!(self.obj.kind, "Job" | "CronJob")
            || self
                .pod
                .get("restartPolicy")
                .and_then(Node::as_str)
                .is_some_and(|p| p != "Always")
    }

    /// The pod template's labels.
    pub fn labels(&self) -> Vec<(&'a str, &'a str)> {
        pairs(self.pod_meta.and_then(|m| m.get("labels")))
    }

    /// An annotation on the object or on its pod template.
    pub fn annotation(&self, key: &str) -> Option<&'a Node> {
        self.pod_meta
            .and_then(|m| m.at(&["annotations", key]))
            .or_else(|| self.obj.node.at(&["metadata", "annotations", key]))
    }

    /// The rule IDs or names listed in `lameduck.dev/ignore`.
    pub fn ignored(&self) -> Vec<String> {
        let mut out = Vec::new();
        for meta in [self.pod_meta, self.obj.node.get("metadata")]
            .into_iter()
            .flatten()
        {
            if let Some(v) = meta
                .at(&["annotations", "lameduck.dev/ignore"])
                .and_then(Node::as_str)
            {
                out.extend(v.split(',').map(|s| s.trim().to_string()));
            }
        }
        out
    }

    /// `spec.replicas` (1 when absent, as Kubernetes defaults it).
    pub fn replicas(&self) -> i64 {
        self.obj
            .node
            .at(&["spec", "replicas"])
            .and_then(Node::as_i64)
            .unwrap_or(1)
    }

    /// The containers (not the init containers).
    pub fn containers(&self) -> &'a [Node] {
        self.pod
            .get("containers")
            .map(Node::items)
            .unwrap_or_default()
    }

    /// terminationGracePeriodSeconds: its node if written, and its value
    /// (30, the default, when not).
    pub fn grace(&self) -> (Option<&'a Node>, f64) {
        let node = self.pod.get("terminationGracePeriodSeconds");
        let value = node.and_then(Node::as_i64).map_or(30.0, |n| n as f64);
        (node, value)
    }
}

/// A Service's selector.
#[derive(Debug, Clone)]
pub struct Selector<'a> {
    /// The object that selects (Service or PodDisruptionBudget).
    pub obj: Object<'a>,
    /// Label pairs that must all match.
    pub labels: Vec<(&'a str, &'a str)>,
}

impl Selector<'_> {
    /// Whether it selects pods of `w` that carry `labels`.
    pub fn selects(&self, w: &Workload<'_>, labels: &[(&str, &str)]) -> bool {
        !self.labels.is_empty()
            && self.obj.same_namespace(&w.obj)
            && self.labels.iter().all(|p| labels.contains(p))
    }
}

/// Selectors indexed by their first label pair, so that matching a
/// workload costs a few lookups, not a scan of every Service (a
/// 5,000-object stream has a thousand of them).
#[derive(Debug, Default)]
pub struct SelectorIndex<'a> {
    by_pair: HashMap<(&'a str, &'a str), Vec<Selector<'a>>>,
}

impl<'a> SelectorIndex<'a> {
    /// Indexes `selectors` (one with no labels selects nothing, as in
    /// Kubernetes for a Service).
    pub fn new(selectors: Vec<Selector<'a>>) -> SelectorIndex<'a> {
        let mut by_pair: HashMap<(&'a str, &'a str), Vec<Selector<'a>>> = HashMap::new();
        for s in selectors {
            if let Some(first) = s.labels.first().copied() {
                by_pair.entry(first).or_default().push(s);
            }
        }
        SelectorIndex { by_pair }
    }

    /// Whether any selector selects the workload's pods.
    pub fn any_selects(&self, w: &Workload<'_>) -> bool {
        let labels = w.labels();
        labels.iter().any(|pair| {
            self.by_pair
                .get(pair)
                .is_some_and(|candidates| candidates.iter().any(|s| s.selects(w, &labels)))
        })
    }
}

/// The Services' selectors among `objects`.
pub fn services<'a>(objects: &[Object<'a>]) -> Vec<Selector<'a>> {
    objects
        .iter()
        .filter(|o| o.kind == "Service")
        .map(|o| Selector {
            obj: *o,
            labels: pairs(o.node.at(&["spec", "selector"])),
        })
        .collect()
}

/// The PodDisruptionBudgets' selectors (matchLabels) among `objects`.
pub fn disruption_budgets<'a>(objects: &[Object<'a>]) -> Vec<Selector<'a>> {
    objects
        .iter()
        .filter(|o| o.kind == "PodDisruptionBudget")
        .map(|o| Selector {
            obj: *o,
            labels: pairs(o.node.at(&["spec", "selector", "matchLabels"])),
        })
        .collect()
}

/// String pairs of a mapping.
fn pairs(node: Option<&Node>) -> Vec<(&str, &str)> {
    node.map(Node::entries)
        .unwrap_or_default()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?, v.as_str()?)))
        .collect()
}

/// The names of the ConfigMaps a pod uses: volumes, envFrom, env, and
/// `--configmap=NS/NAME` arguments (ingress controllers).
pub fn config_maps_used(w: &Workload<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for v in w.pod.get("volumes").map(Node::items).unwrap_or_default() {
        if let Some(n) = v.at(&["configMap", "name"]).and_then(Node::as_str) {
            out.push(n.to_string());
        }
    }
    for c in w.containers() {
        for e in c.get("envFrom").map(Node::items).unwrap_or_default() {
            if let Some(n) = e.at(&["configMapRef", "name"]).and_then(Node::as_str) {
                out.push(n.to_string());
            }
        }
        let argv = argv(c);
        for (i, a) in argv.iter().enumerate() {
            let value = match a.text.strip_prefix("--configmap") {
                Some(v) if v.starts_with('=') => Some(v[1..].to_string()),
                Some("") => argv.get(i + 1).map(|n| n.text.clone()),
                _ => None,
            };
            if let Some(v) = value {
                out.push(v.rsplit('/').next().unwrap_or(&v).to_string());
            }
        }
    }
    out
}

/// One word of a container's command line, with its node.
#[derive(Debug, Clone)]
pub struct Arg<'a> {
    /// The word, `$(VAR)` references replaced from the container's env.
    pub text: String,
    /// Where it is written.
    pub node: &'a Node,
}

/// `command` followed by `args`, `$(VAR)` expanded from the container's env.
pub fn argv(container: &Node) -> Vec<Arg<'_>> {
    let env = env(container);
    ["command", "args"]
        .iter()
        .filter_map(|k| container.get(k))
        .flat_map(Node::items)
        .filter_map(|n| {
            Some(Arg {
                text: expand(n.as_str()?, &env),
                node: n,
            })
        })
        .collect()
}

/// The container's literal env values, by name.
pub fn env(container: &Node) -> Vec<(&str, &Node)> {
    container
        .get("env")
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| Some((e.get("name")?.as_str()?, e.get("value")?)))
        .collect()
}

/// The value of env var `name` in the container, if literal.
pub fn env_value<'a>(container: &'a Node, name: &str) -> Option<&'a Node> {
    env(container)
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn expand(text: &str, env: &[(&str, &Node)]) -> String {
    if !text.contains("$(") {
        return text.to_string();
    }
    let mut out = text.to_string();
    for (name, value) in env {
        if let Some(v) = value.as_str() {
            out = out.replace(&format!("$({name})"), v);
        }
    }
    out
}

/// Whether the container listens (declares a containerPort).
pub fn has_ports(container: &Node) -> bool {
    container
        .get("ports")
        .is_some_and(|p| !p.items().is_empty())
}
