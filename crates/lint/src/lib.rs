//! `lameduck lint`: finds the mistakes in Kubernetes manifests, Helm output,
//! Dockerfiles and entrypoint scripts that lose requests on a rollout — a
//! preStop wait longer than the grace period, a shell as PID 1, nginx stopped
//! with its fast-stop signal, a rollout that drops every ready pod — at the
//! exact line and column, with the fix.
//!
//! The steps: [`inputs::read`] gathers the files (directories walked,
//! Dockerfiles' entrypoint scripts added), [`lint`] parses them (YAML with
//! positions) and runs every check over the whole input at once (a Service
//! in one file selects a Deployment in another), drops ignored findings, and
//! [`output`] prints them; [`fix`] applies the unambiguous edits.

pub mod dockerfile;
pub mod fix;
#[doc(hidden)]
pub mod fuzzing;
pub mod inputs;
pub mod k8s;
pub mod launch;
pub mod output;
pub mod rules;
pub mod shell;
pub mod source;
pub mod yaml;

mod checks;

pub use rules::{Edit, Finding, Rule, Severity};
pub use source::{FileKind, LineCol, SourceFile, Span};

/// Tuning of the checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Seconds kept free before the kubelet's SIGKILL for an app whose
    /// shutdown time is a timeout it may use up (Spring's, an annotation's).
    pub margin: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options { margin: 5.0 }
    }
}

/// A file that could not be read as what it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{}:{}: not valid YAML: {}", .error.line, .error.col, .error.message)]
pub struct ParseError {
    /// The file.
    pub path: String,
    /// What is wrong, and where.
    pub error: yaml::YamlError,
}

/// The result of linting: the files (for printing), the findings in file
/// and position order, and the files that could not be parsed.
#[derive(Debug, Clone)]
pub struct Report {
    /// The inputs, as read.
    pub files: Vec<SourceFile>,
    /// Every finding not ignored.
    pub findings: Vec<Finding>,
    /// YAML files that are not valid YAML (their other checks are skipped).
    pub errors: Vec<ParseError>,
}

impl Report {
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.rule.severity).max()
    }
}

/// Lints `files` together.
pub fn lint(files: Vec<SourceFile>, options: &Options) -> Report {
    let mut errors = Vec::new();
    let docs: Vec<Vec<yaml::Node>> = files
        .iter()
        .map(|f| match f.kind {
            FileKind::Yaml => yaml::load(f).unwrap_or_else(|error| {
                errors.push(ParseError {
                    path: f.path.clone(),
                    error,
                });
                Vec::new()
            }),
            _ => Vec::new(),
        })
        .collect();
    let ctx = checks::Ctx::new(&files, &docs, options);
    let mut findings = checks::run(&ctx);
    findings.retain(|f| !ignored_by_comment(&files[f.file], f));
    findings.sort_by_key(|f| (f.file, f.span.start, f.rule.id));
    findings.dedup_by(|a, b| a.file == b.file && a.span == b.span && a.rule == b.rule);
    Report {
        files,
        findings,
        errors,
    }
}

/// `# lameduck:ignore [RULE[,RULE]]` on the finding's line or on the
/// comment lines right above it (no rule listed: every rule).
fn ignored_by_comment(file: &SourceFile, f: &Finding) -> bool {
    let mut line = file.line_col(f.span.start).line;
    let mut own_line = true;
    loop {
        let text = file.line_text(line);
        if let Some(at) = text.find("lameduck:ignore") {
            let list = &text[at + "lameduck:ignore".len()..];
            let rules: Vec<&str> = list
                .split(|c: char| c == ',' || c.is_whitespace() || c == '=')
                .filter(|s| !s.is_empty())
                .collect();
            let named = rules.iter().any(|r| rules::find(r).is_some());
            if !named
                || rules.iter().any(|r| {
                    r.eq_ignore_ascii_case(f.rule.id) || r.eq_ignore_ascii_case(f.rule.name)
                })
            {
                return true;
            }
        }
        if line <= 1 {
            return false;
        }
        line -= 1;
        let above = file.line_text(line).trim_start();
        if !(above.starts_with('#') || (own_line && above.is_empty())) {
            return false;
        }
        own_line = false;
    }
}
