//! The checks the fuzz targets (`fuzz/`: `lint_yaml`, `lint_dockerfile`) and
//! the corpus replay test (`tests/fuzz_corpus.rs`) run: the lint reads
//! manifests, Helm output, Dockerfiles and scripts from any repository, so
//! every byte of them is untrusted.
//!
//! Why a public module: a fuzz target is a separate crate, and the replay test
//! must call exactly what the fuzz targets call; so the checks live here,
//! once, hidden from the docs.
//!
//! Each check panics when a property beyond "no panic" fails: every finding
//! and every edit lies inside its file's text (a caret under real text, a
//! SARIF region an editor can open), every printer renders, and YAML fixed by
//! `--fix` is still YAML the lint reads.

use crate::{fix, lint, output, Options, Report, SourceFile};
use crate::{FileKind, Finding};

/// A YAML stream, read as a manifest file.
pub fn yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let report = checked(vec![SourceFile::new("fuzz.yaml", FileKind::Yaml, text)]);
    if !report.errors.is_empty() {
        return;
    }
    for (_, fixed) in fix::apply(&report.files, &report.findings) {
        let again = checked(vec![SourceFile::new("fuzz.yaml", FileKind::Yaml, fixed)]);
        assert!(
            again.errors.is_empty(),
            "--fix made YAML the lint cannot read: {:?}\n{}",
            again.errors,
            again.files[0].text
        );
    }
}

/// A Dockerfile, and the same bytes as its entrypoint script (alone and
/// beside each other, as `lameduck lint` pairs them).
pub fn dockerfile(data: &[u8]) {
    let text = String::from_utf8_lossy(data).into_owned();
    let docker = SourceFile::new("Dockerfile", FileKind::Dockerfile, text.clone());
    let script = SourceFile::new("entrypoint.sh", FileKind::Script, text);
    checked(vec![docker.clone()]);
    checked(vec![script.clone()]);
    checked(vec![docker, script]);
}

/// Lints `files`, checks every finding's place, and renders every output.
fn checked(files: Vec<SourceFile>) -> Report {
    let report = lint(files, &Options::default());
    check_report(&report);
    report
}

/// Every finding of `report` lies inside its file, and every printer renders.
pub fn check_report(report: &Report) {
    for f in &report.findings {
        inside(report, f);
    }
    let _ = output::human(report);
    let _ = output::json(report);
    let _ = output::sarif(report);
}

/// The finding's span and its edit's span are ranges of whole characters of
/// their file's text, and its line and column name a place on a real line.
fn inside(report: &Report, f: &Finding) {
    let file = report
        .files
        .get(f.file)
        .unwrap_or_else(|| panic!("finding in no file: {f:?}"));
    span_inside(file, f.span.start, f.span.end, f);
    if let Some(edit) = &f.edit {
        let target = report
            .files
            .get(edit.file)
            .unwrap_or_else(|| panic!("edit of no file: {f:?}"));
        span_inside(target, edit.span.start, edit.span.end, f);
    }
    let at = file.line_col(f.span.start);
    let lines = file.text.split('\n').count();
    assert!(
        at.line >= 1 && at.line <= lines,
        "line {} of {lines}: {f:?}",
        at.line
    );
    let width = file
        .text
        .split('\n')
        .nth(at.line - 1)
        .unwrap_or("")
        .chars()
        .count();
    assert!(
        at.col >= 1 && at.col <= width + 1,
        "column {} of {width}: {f:?}",
        at.col
    );
}

fn span_inside(file: &SourceFile, start: usize, end: usize, f: &Finding) {
    let text = &file.text;
    assert!(
        start <= end && end <= text.len(),
        "span {start}..{end} outside {} bytes: {f:?}",
        text.len()
    );
    assert!(
        text.is_char_boundary(start) && text.is_char_boundary(end),
        "span {start}..{end} splits a character: {f:?}"
    );
}
