//! `lameduck lint` black-box: the exit status a CI job gates on, stdin for
//! `helm template … | lameduck lint -`, `--diff` that changes nothing,
//! `--fix` whose output lints clean, SARIF a code-scanning upload accepts.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use crate::util::Scratch;

/// A preStop sleep of 40 s in a 30 s grace period (LD001, fixable), with a
/// comment that `--fix` must keep.
const TOO_LONG: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  strategy:
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      # the grace period the team agreed on
      terminationGracePeriodSeconds: 30
      containers:
        - name: app
          image: web:1
          ports: [{containerPort: 8080}]
          readinessProbe:
            httpGet: {path: /ready, port: 8080}
          lifecycle:
            preStop:
              exec:
                command: [\"sleep\", \"40\"]
";

fn lint(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lameduck"))
        .arg("lint")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lameduck lint");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().expect("lameduck lint ends")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn lint_exit_status_follows_fail_on() {
    let dir = Scratch::new("lint-exit");
    let file = dir.path("web.yaml");
    std::fs::write(&file, TOO_LONG).unwrap();
    let file = file.to_str().unwrap();

    let out = lint(&[file], None);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("error[LD001]"), "{shown}");
    assert!(shown.contains("web.yaml:"), "{shown}");

    // LD001 is an error: it fails even the loosest gate.
    let out = lint(&["--fail-on", "error", file], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // A clean input passes the strictest one.
    let clean = dir.path("clean.yaml");
    std::fs::write(&clean, TOO_LONG.replace("\"40\"", "\"5\"")).unwrap();
    let out = lint(&["--fail-on", "info", clean.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn lint_reads_stdin_and_names_it() {
    let out = lint(&["-"], Some(TOO_LONG));
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("LD001"), "{shown}");
    assert!(shown.contains("<stdin>"), "{shown}");
}

#[test]
fn lint_refuses_unreadable_input_with_exit_2_and_the_place() {
    let out = lint(&["-"], Some("kind: Deployment\nspec: [unclosed\n"));
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("<stdin>:3:1: not valid YAML"), "{shown}");
    assert!(!shown.contains("panicked"), "{shown}");
    // Nor does --diff let it pass silently.
    let out = lint(
        &["--diff", "-"],
        Some("kind: Deployment\nspec: [unclosed\n"),
    );
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("not valid YAML"), "{shown}");
}

#[test]
fn lint_diff_shows_the_fix_and_changes_nothing_then_fix_lints_clean() {
    let dir = Scratch::new("lint-fix");
    let file = dir.path("web.yaml");
    std::fs::write(&file, TOO_LONG).unwrap();
    let path = file.to_str().unwrap();

    let out = lint(&["--diff", path], None);
    let shown = text(&out);
    assert!(
        shown.contains("-      terminationGracePeriodSeconds: 30"),
        "{shown}"
    );
    assert!(
        shown.contains("+      terminationGracePeriodSeconds: "),
        "{shown}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), TOO_LONG);

    let out = lint(&["--fix", path], None);
    let fixed = std::fs::read_to_string(&file).unwrap();
    assert_ne!(fixed, TOO_LONG, "{}", text(&out));
    assert!(
        fixed.contains("# the grace period the team agreed on"),
        "{fixed}"
    );
    let out = lint(&["--fail-on", "error", path], None);
    assert_eq!(out.status.code(), Some(0), "{}\n{fixed}", text(&out));
}

#[test]
fn lint_sarif_has_the_rule_and_a_real_region() {
    let out = lint(&["--format", "sarif", "-"], Some(TOO_LONG));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("SARIF is JSON");
    assert_eq!(doc["version"], "2.1.0");
    let results = doc["runs"][0]["results"].as_array().expect("results");
    let ld001 = results
        .iter()
        .find(|r| r["ruleId"] == "LD001")
        .unwrap_or_else(|| panic!("no LD001 in {doc}"));
    let region = &ld001["locations"][0]["physicalLocation"]["region"];
    assert!(region["startLine"].as_u64().unwrap_or(0) > 1, "{region}");
    assert!(
        region["snippet"]["text"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{region}"
    );
}
