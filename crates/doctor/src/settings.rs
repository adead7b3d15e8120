//! The grace period and stop signal that apply to the process, and where
//! each came from: a manifest given with `--manifest` (a Pod, or a
//! workload's pod template), the pod's own applied manifest as the downward
//! API shows it (the `annotations` file of a downward API volume holds
//! `kubectl.kubernetes.io/last-applied-configuration` for a Pod applied with
//! kubectl), lameduck's `LAMEDUCK_GRACE_SECONDS` in the process's
//! environment, else Kubernetes' defaults (30 s, SIGTERM).

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// A value and where it was read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub source: String,
}

/// What the pod spec says about stopping a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PodStop {
    pub(crate) grace_s: Option<f64>,
    pub(crate) stop_signal: Option<String>,
    pub(crate) container: Option<String>,
    pub(crate) has_prestop: bool,
}

/// Reads the stop settings of `container` (else the first) from a YAML or
/// JSON manifest with one or more documents.
pub(crate) fn from_manifest(text: &str, container: Option<&str>) -> Result<PodStop, String> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| e.to_string())?;
    let spec = docs
        .iter()
        .find_map(pod_spec)
        .ok_or("no Pod or workload with a pod template in it")?;
    let containers = spec.get("containers").and_then(Value::as_array);
    let chosen = containers.and_then(|cs| {
        cs.iter().find(|c| match container {
            Some(name) => c.get("name").and_then(Value::as_str) == Some(name),
            None => true,
        })
    });
    if let (Some(name), None) = (container, chosen) {
        return Err(format!("no container named {name:?}"));
    }
    let lifecycle = chosen.and_then(|c| c.get("lifecycle"));
    Ok(PodStop {
        grace_s: spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_f64),
        stop_signal: lifecycle
            .and_then(|l| l.get("stopSignal"))
            .and_then(Value::as_str)
            .map(str::to_string),
        container: chosen
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .map(str::to_string),
        has_prestop: lifecycle.and_then(|l| l.get("preStop")).is_some(),
    })
}

/// The pod spec of a Pod, a CronJob, or any workload with `spec.template`.
fn pod_spec(doc: &Value) -> Option<&Value> {
    let spec = doc.get("spec")?;
    match doc.get("kind").and_then(Value::as_str)? {
        "Pod" => Some(spec),
        "CronJob" => spec.pointer("/jobTemplate/spec/template/spec"),
        _ => spec.pointer("/template/spec"),
    }
}

/// The applied manifest in a downward API `annotations` file, if any.
pub(crate) fn from_podinfo(dir: &Path, container: Option<&str>) -> Option<PodStop> {
    let text = std::fs::read_to_string(dir.join("annotations")).ok()?;
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("kubectl.kubernetes.io/last-applied-configuration="))?;
    from_manifest(&unquote(line)?, container).ok()
}

/// The value of a downward API line: a Go-quoted string.
fn unquote(quoted: &str) -> Option<String> {
    let inner = quoted.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            other => out.push(other),
        }
    }
    Some(out)
}

/// `30`, `30s`, `1500ms`, `2m` → seconds.
pub(crate) fn parse_seconds(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * scale)
}

/// Reads the manifest file at `path`.
pub(crate) fn read_manifest(path: &Path, container: Option<&str>) -> Result<PodStop, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Manifest {
        path: path.to_path_buf(),
        detail: source.to_string(),
    })?;
    from_manifest(&text, container).map_err(|detail| Error::Manifest {
        path: path.to_path_buf(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = "
apiVersion: v1
kind: Service
metadata: {name: web}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      terminationGracePeriodSeconds: 45
      containers:
        - name: sidecar
          image: envoy
        - name: app
          image: app
          lifecycle:
            stopSignal: SIGQUIT
            preStop: {exec: {command: [lameduck, prestop]}}
";

    #[test]
    fn reads_grace_and_stop_signal_of_the_named_container() {
        let stop = from_manifest(DEPLOYMENT, Some("app")).unwrap();
        assert_eq!(stop.grace_s, Some(45.0));
        assert_eq!(stop.stop_signal.as_deref(), Some("SIGQUIT"));
        assert!(stop.has_prestop);
        let first = from_manifest(DEPLOYMENT, None).unwrap();
        assert_eq!(
            (first.container.as_deref(), first.stop_signal),
            (Some("sidecar"), None)
        );
        assert!(from_manifest(DEPLOYMENT, Some("nope"))
            .unwrap_err()
            .contains("nope"));
    }

    #[test]
    fn reads_the_applied_pod_from_the_downward_api_annotations() {
        let dir =
            std::env::temp_dir().join(format!("lameduck-doctor-podinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pod = r#"{"apiVersion":"v1","kind":"Pod","spec":{"terminationGracePeriodSeconds":60,"containers":[{"name":"a"}]}}"#;
        let quoted = format!("\"{}\\n\"", pod.replace('"', "\\\""));
        let text =
            format!("team=\"web\"\nkubectl.kubernetes.io/last-applied-configuration={quoted}\n");
        std::fs::write(dir.join("annotations"), text).unwrap();
        let stop = from_podinfo(&dir, None);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(stop.unwrap().grace_s, Some(60.0));
    }

    #[test]
    fn durations_in_lameducks_forms() {
        assert_eq!(parse_seconds("30"), Some(30.0));
        assert_eq!(parse_seconds("45s"), Some(45.0));
        assert_eq!(parse_seconds("1500ms"), Some(1.5));
        assert_eq!(parse_seconds("2m"), Some(120.0));
        assert_eq!(parse_seconds("soon"), None);
    }
}
