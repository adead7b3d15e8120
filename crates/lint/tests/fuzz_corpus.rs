//! The fuzz corpora of the lint (`fuzz/corpus/lint_yaml/`,
//! `fuzz/corpus/lint_dockerfile/`), replayed through the checks the fuzz
//! targets run, on stable.

use lameduck_lint::fuzzing;
use lameduck_testkit::corpus::replay;

#[test]
fn lint_yaml_corpus() {
    replay("lint_yaml", fuzzing::yaml);
}

#[test]
fn lint_dockerfile_corpus() {
    replay("lint_dockerfile", fuzzing::dockerfile);
}

/// The check can fail: a finding placed past the end of its text is caught.
#[test]
#[should_panic(expected = "outside")]
fn a_finding_outside_the_text_fails_the_check() {
    use lameduck_lint::{rules, FileKind, Finding, Report, SourceFile, Span};
    let file = SourceFile::new("f.yaml", FileKind::Yaml, "a: 1\n");
    let rule = rules::find("LD001").expect("rule LD001");
    let report = Report {
        files: vec![file],
        findings: vec![Finding::new(rule, 0, Span::new(3, 99), "x")],
        errors: vec![],
    };
    fuzzing::check_report(&report);
}

/// The `--fix` half of the YAML check has work to do: a seed has findings
/// with edits, and the edits change its text.
#[test]
fn a_yaml_seed_exercises_fix() {
    use lameduck_lint::{fix, lint, FileKind, Options, SourceFile};
    let path = lameduck_testkit::corpus::dir("lint_yaml").join("web-spring.yaml");
    let text = std::fs::read_to_string(&path).expect("seed web-spring.yaml");
    let report = lint(
        vec![SourceFile::new(
            "web-spring.yaml",
            FileKind::Yaml,
            text.clone(),
        )],
        &Options::default(),
    );
    let fixed = fix::apply(&report.files, &report.findings);
    assert!(
        fixed.get(&0).is_some_and(|t| *t != text),
        "no edit: {:?}",
        report.findings
    );
}
