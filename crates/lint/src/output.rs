//! The three ways findings are printed: human (like rustc: `file:line:col`,
//! the line with a caret under the offending text, the fix), JSON (one
//! object with every field), and SARIF 2.1.0 as GitHub code scanning reads
//! it (real regions, the offending line as the snippet).

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::rules::{self, Finding};
use crate::{Report, SourceFile};

/// Where docs/lint.md is published, for SARIF's helpUri.
pub const DOCS_URL: &str = "https://example.invalid/lameduck/docs/lint.md";

/// Findings as a person reads them.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    for e in &report.errors {
        let _ = writeln!(out, "error: {e}\n");
    }
    for f in &report.findings {
        render(&report.files[f.file], f, &mut out);
    }
    let count = |s| {
        report
            .findings
            .iter()
            .filter(|f| f.rule.severity == s)
            .count()
    };
    let _ = writeln!(
        out,
        "{}, {}, {} in {}{}",
        counted(count(crate::Severity::Error), "error"),
        counted(count(crate::Severity::Warning), "warning"),
        counted(count(crate::Severity::Info), "info"),
        counted(report.files.len(), "file"),
        match report.findings.iter().filter(|f| f.edit.is_some()).count() {
            0 => String::new(),
            n => format!(" ({n} fixable with --fix)"),
        }
    );
    out
}

fn render(file: &SourceFile, f: &Finding, out: &mut String) {
    let start = file.line_col(f.span.start);
    let end = file.line_col(f.span.end.max(f.span.start));
    let line = file.line_text(start.line);
    let gutter = start.line.to_string().len();
    let width = if end.line == start.line {
        (end.col - start.col).max(1)
    } else {
        line.chars().count().saturating_sub(start.col - 1).max(1)
    };
    let pad = " ".repeat(gutter);
    let _ = writeln!(out, "{}[{}]: {}", f.rule.severity, f.rule.id, f.message);
    let _ = writeln!(out, "{pad}--> {}:{}:{}", file.path, start.line, start.col);
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{} | {}", start.line, line);
    let caret_pad: String = line
        .chars()
        .take(start.col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let _ = writeln!(out, "{pad} | {caret_pad}{}", "^".repeat(width));
    let _ = writeln!(out, "{pad} = fix: {}", f.fix);
    let _ = writeln!(
        out,
        "{pad} = see: docs/lint.md#{}\n",
        f.rule.id.to_ascii_lowercase()
    );
}

fn region(file: &SourceFile, f: &Finding) -> Value {
    let start = file.line_col(f.span.start);
    let end = file.line_col(f.span.end.max(f.span.start));
    let end_col = if end == start { end.col + 1 } else { end.col };
    json!({
        "startLine": start.line,
        "startColumn": start.col,
        "endLine": end.line,
        "endColumn": end_col,
        "snippet": { "text": file.line_text(start.line) },
    })
}

/// Findings as one JSON object: `{"findings": […], "errors": […], "summary": {…}}`.
pub fn json(report: &Report) -> String {
    let findings: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let file = &report.files[f.file];
            let r = region(file, f);
            json!({
                "rule": f.rule.id,
                "name": f.rule.name,
                "severity": f.rule.severity,
                "file": file.path,
                "line": r["startLine"],
                "column": r["startColumn"],
                "end_line": r["endLine"],
                "end_column": r["endColumn"],
                "snippet": file.slice(f.span),
                "message": f.message,
                "fix": f.fix,
                "fixable": f.edit.is_some(),
            })
        })
        .collect();
    let errors: Vec<Value> = report
        .errors
        .iter()
        .map(|e| json!({"file": e.path, "line": e.error.line, "column": e.error.col, "message": e.error.message}))
        .collect();
    let count = |s| {
        report
            .findings
            .iter()
            .filter(|f| f.rule.severity == s)
            .count()
    };
    let doc = json!({
        "findings": findings,
        "errors": errors,
        "summary": {
            "files": report.files.len(),
            "error": count(crate::Severity::Error),
            "warning": count(crate::Severity::Warning),
            "info": count(crate::Severity::Info),
        },
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Findings as a SARIF 2.1.0 log.
pub fn sarif(report: &Report) -> String {
    let driver_rules: Vec<Value> = rules::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "shortDescription": { "text": r.summary },
                "fullDescription": { "text": format!("{} Fix: {}.", r.summary, r.fix) },
                "help": { "text": r.fix, "markdown": format!("{}\n\nFix: {}", r.summary, r.fix) },
                "helpUri": format!("{DOCS_URL}#{}", r.id.to_ascii_lowercase()),
                "defaultConfiguration": { "level": r.severity.sarif_level() },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let file = &report.files[f.file];
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": rules::ALL.iter().position(|r| r.id == f.rule.id),
                "level": f.rule.severity.sarif_level(),
                "message": { "text": format!("{} Fix: {}.", f.message, f.fix) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&file.path) },
                        "region": region(file, f),
                    }
                }],
            })
        })
        .collect();
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "lameduck-lint",
                "informationUri": DOCS_URL,
                "version": env!("CARGO_PKG_VERSION"),
                "rules": driver_rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// A URI for a path: relative ones stay relative (`./a b.yaml` →
/// `a%20b.yaml`), absolute ones become `file://` URIs.
fn uri(path: &str) -> String {
    let path = path.strip_prefix("./").unwrap_or(path);
    let scheme = if path.starts_with('/') { "file://" } else { "" };
    let encoded: String = path
        .chars()
        .map(|c| match c {
            ' ' => "%20".to_string(),
            '#' => "%23".to_string(),
            '%' => "%25".to_string(),
            '\\' => "/".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("{scheme}{encoded}")
}

/// `1 file`, `2 files`.
fn counted(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    }
}
