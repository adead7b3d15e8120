//! The part of an `apps/v1` Deployment the engine plays, read from YAML as users
//! write it.
//!
//! Only the fields that change what happens to pods and requests during a
//! rollout are typed here; every other field (image, resources, volumes,
//! affinity, …) is accepted and ignored, so a real manifest reads as it is.
//! Defaults are Kubernetes' own (`replicas` 1, `RollingUpdate` 25 %/25 %,
//! `terminationGracePeriodSeconds` 30, probe period 10 s, …), applied where
//! the engine reads a field, so this file stays a faithful mirror of the YAML.
//! Types of our own rather than `k8s-openapi`'s: a few dozen fields do not
//! justify compiling the whole API, and our errors can name the field.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Why a manifest cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The YAML does not parse, or a field has the wrong type.
    #[error("{path}: not a valid Deployment: {message}")]
    Yaml { path: String, message: String },
    /// The input holds no Deployment.
    #[error("{path}: no apps/v1 Deployment found (kinds seen: {seen})")]
    NoDeployment { path: String, seen: String },
    /// A field's value cannot be played (named by its path in the manifest).
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: String,
        field: String,
        message: String,
    },
}

/// A Kubernetes `IntOrString` (`maxSurge: 1` or `maxSurge: "25%"`, a port by
/// number or by name).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    Str(String),
}

/// Any top-level object, to find the Deployment among other kinds.
#[derive(Debug, Deserialize)]
struct AnyObject {
    #[serde(default, rename = "apiVersion")]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// `apps/v1` Deployment.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub metadata: Metadata,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: Option<i64>,
    #[serde(default)]
    pub min_ready_seconds: i64,
    #[serde(default)]
    pub strategy: Strategy,
    pub template: PodTemplate,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    pub max_surge: Option<IntOrString>,
    pub max_unavailable: Option<IntOrString>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PodTemplate {
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub termination_grace_period_seconds: Option<i64>,
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    pub readiness_probe: Option<Probe>,
    pub lifecycle: Option<Lifecycle>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVarSource {
    pub field_ref: Option<FieldRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: i64,
    #[serde(default)]
    pub name: Option<String>,
}

/// A readiness probe; exactly one handler is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    pub http_get: Option<HttpGet>,
    pub tcp_socket: Option<TcpSocket>,
    pub exec: Option<Exec>,
    #[serde(default)]
    pub initial_delay_seconds: i64,
    pub period_seconds: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub success_threshold: Option<i64>,
    pub failure_threshold: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    #[serde(default)]
    pub path: Option<String>,
    pub port: IntOrString,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub http_headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TcpSocket {
    pub port: IntOrString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Exec {
    #[serde(default)]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub pre_stop: Option<Handler>,
    pub stop_signal: Option<String>,
}

/// A lifecycle handler (`preStop`); exactly one of its fields is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    pub exec: Option<Exec>,
    pub http_get: Option<HttpGet>,
    pub sleep: Option<SleepAction>,
    pub tcp_socket: Option<TcpSocket>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SleepAction {
    pub seconds: i64,
}

/// Finds the first `apps/v1` Deployment in `text` (multi-document YAML and
/// `List` kinds accepted). `path` only names the input in errors.
pub fn parse(path: &str, text: &str) -> Result<Deployment, ManifestError> {
    let yaml = |e: serde_saphyr::Error| ManifestError::Yaml {
        path: path.to_string(),
        message: e.to_string(),
    };
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).map_err(yaml)?;
    let mut seen = Vec::new();
    for doc in flatten(docs) {
        let head: AnyObject = serde_json::from_value(doc.clone()).unwrap_or(AnyObject {
            api_version: String::new(),
            kind: String::new(),
        });
        if head.kind == "Deployment" && head.api_version == "apps/v1" {
            let deployment: Deployment =
                serde_json::from_value(doc).map_err(|e| ManifestError::Yaml {
                    path: path.to_string(),
                    message: e.to_string(),
                })?;
            check(path, &deployment)?;
            return Ok(deployment);
        }
        seen.push(format!("{}/{}", head.api_version, head.kind));
    }
    Err(ManifestError::NoDeployment {
        path: path.to_string(),
        seen: if seen.is_empty() {
            "none".into()
        } else {
            seen.join(", ")
        },
    })
}

/// Documents, with the items of `kind: List` in their place.
fn flatten(docs: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for doc in docs {
        match doc.get("kind").and_then(|k| k.as_str()) {
            Some("List") => {
                if let Some(serde_json::Value::Array(items)) = doc.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            _ if doc.is_null() => {}
            _ => out.push(doc),
        }
    }
    out
}

/// What the API server would reject, or what the engine cannot play.
fn check(path: &str, d: &Deployment) -> Result<(), ManifestError> {
    let invalid = |field: &str, message: String| ManifestError::Invalid {
        path: path.to_string(),
        field: field.to_string(),
        message,
    };
    if d.spec.template.spec.containers.is_empty() {
        return Err(invalid(
            "spec.template.spec.containers",
            "a pod needs at least one container".into(),
        ));
    }
    if let Some(r) = d.spec.replicas {
        if !(0..=64).contains(&r) {
            return Err(invalid(
                "spec.replicas",
                format!("{r}: this engine plays 0 to 64 replicas on one machine"),
            ));
        }
    }
    if let Some(g) = d.spec.template.spec.termination_grace_period_seconds {
        if g < 0 {
            return Err(invalid(
                "spec.template.spec.terminationGracePeriodSeconds",
                format!("{g}: must be 0 or more"),
            ));
        }
    }
    if d.spec.min_ready_seconds < 0 {
        return Err(invalid("spec.minReadySeconds", "must be 0 or more".into()));
    }
    for (i, c) in d.spec.template.spec.containers.iter().enumerate() {
        let at = format!("spec.template.spec.containers[{i}]");
        if c.command.is_empty() && c.args.is_empty() {
            return Err(invalid(
                &format!("{at}.command"),
                format!(
                    "container {:?} has no command: without images the engine runs the \
                     command on this machine, so give `command` (or use --command)",
                    c.name
                ),
            ));
        }
        if let Some(p) = &c.readiness_probe {
            check_probe(p).map_err(|m| invalid(&format!("{at}.readinessProbe"), m))?;
        }
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()) {
            check_handler(h).map_err(|m| invalid(&format!("{at}.lifecycle.preStop"), m))?;
        }
    }
    Ok(())
}

fn check_probe(p: &Probe) -> Result<(), String> {
    let set = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err("exactly one of httpGet, tcpSocket, exec must be set".into());
    }
    for (name, v) in [
        ("periodSeconds", p.period_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v {
            if v < 1 {
                return Err(format!("{name}: {v}: must be 1 or more"));
            }
        }
    }
    if p.initial_delay_seconds < 0 {
        return Err("initialDelaySeconds: must be 0 or more".into());
    }
    Ok(())
}

fn check_handler(h: &Handler) -> Result<(), String> {
    let set = [
        h.exec.is_some(),
        h.http_get.is_some(),
        h.sleep.is_some(),
        h.tcp_socket.is_some(),
    ];
    if set.iter().filter(|s| **s).count() != 1 {
        return Err("exactly one of exec, httpGet, sleep, tcpSocket must be set".into());
    }
    if let Some(s) = &h.sleep {
        if s.seconds < 0 {
            return Err(format!("sleep.seconds: {}: must be 0 or more", s.seconds));
        }
    }
    if let Some(e) = &h.exec {
        if e.command.is_empty() {
            return Err("exec.command is empty".into());
        }
    }
    Ok(())
}

impl Deployment {
    /// `spec.replicas`, default 1.
    pub fn replicas(&self) -> u32 {
        self.spec.replicas.unwrap_or(1).clamp(0, 64) as u32
    }

    /// `terminationGracePeriodSeconds`, default 30.
    pub fn grace_seconds(&self) -> u64 {
        self.spec
            .template
            .spec
            .termination_grace_period_seconds
            .unwrap_or(30)
            .max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  strategy:
    rollingUpdate: {maxSurge: "25%", maxUnavailable: 0}
  template:
    spec:
      containers:
        - name: app
          image: example/app:1
          command: ["sleep", "60"]
          ports: [{containerPort: 8080, name: http}]
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 1
          lifecycle:
            preStop:
              exec: {command: ["sleep", "5"]}
"#;

    #[test]
    fn finds_the_deployment_among_other_documents() {
        let d = parse("small.yaml", SMALL).unwrap();
        assert_eq!(d.metadata.name, "web");
        assert_eq!(d.replicas(), 3);
        assert_eq!(d.grace_seconds(), 30);
        let ru = d.spec.strategy.rolling_update.unwrap();
        assert_eq!(ru.max_surge, Some(IntOrString::Str("25%".into())));
        assert_eq!(ru.max_unavailable, Some(IntOrString::Int(0)));
        let c = &d.spec.template.spec.containers[0];
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .http_get
                .as_ref()
                .unwrap()
                .port,
            IntOrString::Str("http".into())
        );
    }

    #[test]
    fn a_list_kind_is_searched() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata: {name: a}\n  spec:\n    template:\n      spec:\n        containers: [{name: c, command: [\"true\"]}]\n";
        assert_eq!(parse("l.yaml", text).unwrap().metadata.name, "a");
    }

    #[test]
    fn no_deployment_names_what_was_seen() {
        let e = parse("s.yaml", "apiVersion: v1\nkind: Service\n").unwrap_err();
        assert!(e.to_string().contains("v1/Service"), "{e}");
    }

    #[test]
    fn bad_input_is_an_error_naming_the_field() {
        let no_cmd = SMALL.replace("command: [\"sleep\", \"60\"]", "args: []");
        let e = parse("x.yaml", &no_cmd).unwrap_err();
        assert!(e.to_string().contains("containers[0].command"), "{e}");
        let two = SMALL.replace(
            "periodSeconds: 1",
            "periodSeconds: 1\n            tcpSocket: {port: 80}",
        );
        let e = parse("x.yaml", &two).unwrap_err();
        assert!(e.to_string().contains("readinessProbe"), "{e}");
        let e = parse("x.yaml", "a: [unclosed").unwrap_err();
        assert!(matches!(e, ManifestError::Yaml { .. }), "{e}");
        let e = parse(
            "x.yaml",
            &SMALL.replace("replicas: 3", "replicas: \"three\""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("x.yaml"), "{e}");
    }
}
