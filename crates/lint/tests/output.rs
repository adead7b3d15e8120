//! The printed forms: human like rustc, JSON, and SARIF 2.1.0 with real
//! regions and snippets.

use lameduck_lint::{output, FileKind};

use crate::util::{deployment, report};

fn sample() -> lameduck_lint::Report {
    let text = deployment(
        "terminationGracePeriodSeconds: 45",
        "ports: [{containerPort: 8080}]\nreadinessProbe: {httpGet: {path: /readyz, port: 8080}}\ncommand: [lameduck, run, --grace, 30s, --, /app]\nlifecycle: {preStop: {sleep: {seconds: 20}}}",
    );
    report(&[("k8s/web.yaml", FileKind::Yaml, &text)])
}

#[test]
fn human_output_names_the_place_quotes_the_line_and_gives_the_fix() {
    let out = output::human(&sample());
    let expected = "error[LD001]: preStop sleep 20 s + lameduck run --grace 30 s = 50 s > terminationGracePeriodSeconds 45 s: the kubelet SIGKILLs container \"web\" before its drain ends
  --> k8s/web.yaml:13:38
   |
13 |       terminationGracePeriodSeconds: 45
   |                                      ^^
   = fix: raise terminationGracePeriodSeconds to 50, or shorten the preStop wait or the app's shutdown
";
    assert!(out.starts_with(expected), "{out}");
    assert!(
        out.trim_end()
            .ends_with("1 error, 0 warnings, 0 infos in 1 file (1 fixable with --fix)"),
        "{out}"
    );
}

#[test]
fn json_output_has_every_field() {
    let v: serde_json::Value = serde_json::from_str(&output::json(&sample())).expect("json");
    let f = &v["findings"][0];
    assert_eq!(f["rule"], "LD001");
    assert_eq!(f["severity"], "error");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(13), Some(38))
    );
    assert_eq!(f["snippet"], "45");
    assert_eq!(f["fixable"], true);
    assert_eq!(v["summary"]["error"], 1);
}

#[test]
fn sarif_has_real_regions_snippets_and_rule_metadata() {
    let v: serde_json::Value = serde_json::from_str(&output::sarif(&sample())).expect("json");
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), lameduck_lint::rules::ALL.len());
    let result = &run["results"][0];
    let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
    assert_eq!(rules[index]["id"], result["ruleId"]);
    assert_eq!(result["level"], "error");
    let loc = &result["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "k8s/web.yaml");
    let region = &loc["region"];
    assert_eq!(region["startLine"], 13);
    assert_eq!(region["startColumn"], 38);
    assert_eq!(region["endColumn"], 40);
    assert_eq!(
        region["snippet"]["text"],
        "      terminationGracePeriodSeconds: 45"
    );
}
