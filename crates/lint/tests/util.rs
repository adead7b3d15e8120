//! Helpers shared by the tests: lint texts in memory and read findings back
//! as `(rule, line, column)`.

use lameduck_lint::{lint, FileKind, Options, Report, SourceFile};

/// Lints files given as (name, kind, text) together.
pub(crate) fn report(files: &[(&str, FileKind, &str)]) -> Report {
    let files = files
        .iter()
        .map(|(n, k, t)| SourceFile::new(*n, *k, *t))
        .collect();
    lint(files, &Options::default())
}

/// The findings of one YAML text, as (rule, line, column).
pub(crate) fn yaml(text: &str) -> Vec<(&'static str, usize, usize)> {
    places(&report(&[("t.yaml", FileKind::Yaml, text)]))
}

/// The findings of one Dockerfile.
pub(crate) fn dockerfile(text: &str) -> Vec<(&'static str, usize, usize)> {
    places(&report(&[("Dockerfile", FileKind::Dockerfile, text)]))
}

/// The findings of a report, as (rule, line, column).
pub(crate) fn places(r: &Report) -> Vec<(&'static str, usize, usize)> {
    assert!(r.errors.is_empty(), "parse errors: {:?}", r.errors);
    r.findings
        .iter()
        .map(|f| {
            let lc = r.files[f.file].line_col(f.span.start);
            (f.rule.id, lc.line, lc.col)
        })
        .collect()
}

/// Only the findings of `rule`.
pub(crate) fn only(found: Vec<(&'static str, usize, usize)>, rule: &str) -> Vec<(usize, usize)> {
    found
        .into_iter()
        .filter(|f| f.0 == rule)
        .map(|f| (f.1, f.2))
        .collect()
}

/// The message of the first finding of `rule`.
pub(crate) fn message(r: &Report, rule: &str) -> String {
    r.findings
        .iter()
        .find(|f| f.rule.id == rule)
        .map(|f| f.message.clone())
        .unwrap_or_default()
}

/// A Deployment with one container; `pod` and `container` are extra lines
/// at the pod spec's and the container's indentation.
pub(crate) fn deployment(pod: &str, container: &str) -> String {
    let indent = |s: &str, n: usize| {
        s.lines()
            .map(|l| format!("{}{l}\n", " ".repeat(n)))
            .collect::<String>()
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n{}      containers:\n        - name: web\n          image: example/web:1\n{}",
        indent(pod, 6),
        indent(container, 10)
    )
}
