//! One positive and one negative case per rule, with the line and column a
//! user's editor would jump to.

use lameduck_lint::FileKind;

use crate::util::{deployment, dockerfile, message, only, report, yaml};

const PORTS: &str =
    "ports: [{containerPort: 8080}]\nreadinessProbe: {httpGet: {path: /readyz, port: 8080}}";

fn with_ports(extra: &str) -> String {
    format!("{PORTS}\n{extra}")
}

#[test]
fn ld001_prestop_sleep_plus_lameduck_grace_over_the_grace_period() {
    let text = deployment(
        "terminationGracePeriodSeconds: 45",
        &with_ports("command: [lameduck, run, --grace, 30s, --, /app]\nlifecycle:\n  preStop:\n    exec: {command: [sleep, \"20\"]}"),
    );
    // terminationGracePeriodSeconds is on line 13, its value at column 38.
    assert_eq!(only(yaml(&text), "LD001"), [(13, 38)]);
    let r = report(&[("t.yaml", FileKind::Yaml, &text)]);
    assert!(
        message(&r, "LD001").starts_with("preStop sleep 20 s + lameduck run --grace 30 s = 50 s > terminationGracePeriodSeconds 45 s"),
        "{}",
        message(&r, "LD001")
    );
}

#[test]
fn ld001_spring_timeout_and_margin_over_the_default_grace() {
    let text = deployment(
        "",
        &with_ports("env: [{name: SPRING_LIFECYCLE_TIMEOUT_PER_SHUTDOWN_PHASE, value: 20s}]\nlifecycle:\n  preStop:\n    sleep: {seconds: 10}"),
    );
    let r = report(&[("t.yaml", FileKind::Yaml, &text)]);
    assert_eq!(
        message(&r, "LD001").split(':').next().unwrap(),
        "preStop sleep 10 s + spring.lifecycle.timeout-per-shutdown-phase 20 s + margin 5 s = 35 s > terminationGracePeriodSeconds 30 s (the default)"
    );
    // No grace period written: the finding points at the preStop hook.
    assert_eq!(only(yaml(&text), "LD001"), [(21, 15)]);
}

#[test]
fn ld001_not_when_it_fits_or_lameduck_prestop_is_inside_run() {
    let fits = deployment(
        "terminationGracePeriodSeconds: 60",
        &with_ports("lifecycle:\n  preStop:\n    exec: {command: [sh, -c, \"curl -s localhost/down && sleep 20\"]}"),
    );
    assert_eq!(only(yaml(&fits), "LD001"), []);
    let inside = deployment(
        "terminationGracePeriodSeconds: 30",
        &with_ports("command: [lameduck, run, --until-quiet, 2s, --port, \"8080\", --, /app]\nlifecycle:\n  preStop:\n    exec: {command: [lameduck, prestop]}"),
    );
    assert_eq!(only(yaml(&inside), "LD001"), []);
}

#[test]
fn ld002_istio_drain_longer_than_grace_points_inside_the_annotation() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    proxy.istio.io/config: |\n      holdApplicationUntilProxyStarts: true\n      terminationDrainDuration: 40s\nspec:\n  containers:\n    - name: c\n      image: x\n      command: [lameduck, run, --, /app]\n";
    assert_eq!(only(yaml(text), "LD002"), [(8, 33)]);
    let fits = text.replace("40s", "20s");
    assert_eq!(only(yaml(&fits), "LD002"), []);
}

#[test]
fn ld003_serving_container_without_readiness() {
    let text = deployment(
        "",
        "ports: [{containerPort: 8080}]\ncommand: [lameduck, run, --, /app]",
    );
    assert_eq!(only(yaml(&text), "LD003"), [(14, 17)]);
    let worker = deployment("", "command: [lameduck, run, --, /worker]");
    assert_eq!(
        only(yaml(&worker), "LD003"),
        [],
        "no ports and no Service: not serving"
    );
}

#[test]
fn ld003_selected_by_a_service_in_another_file_counts_as_serving() {
    let svc =
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n";
    let dep = deployment("", "command: [lameduck, run, --, /app]");
    let r = report(&[
        ("svc.yaml", FileKind::Yaml, svc),
        ("dep.yaml", FileKind::Yaml, &dep),
    ]);
    let f: Vec<_> = r.findings.iter().filter(|f| f.rule.id == "LD003").collect();
    assert_eq!(f.len(), 1);
    assert_eq!(r.files[f[0].file].path, "dep.yaml");
}

#[test]
fn ld004_readiness_identical_to_liveness() {
    let probe = "{httpGet: {path: /health, port: 8080}}";
    let text = deployment(
        "",
        &format!(
            "ports: [{{containerPort: 8080}}]\nreadinessProbe: {probe}\nlivenessProbe: {probe}"
        ),
    );
    assert_eq!(only(yaml(&text), "LD004"), [(17, 11)]);
    let differ = text.replace(
        "livenessProbe: {httpGet: {path: /health",
        "livenessProbe: {httpGet: {path: /healthz",
    );
    assert_eq!(only(yaml(&differ), "LD004"), []);
}

#[test]
fn ld005_shell_form_cmd_and_entrypoint_not_exec_form() {
    let found = dockerfile("FROM alpine\nENTRYPOINT /app serve\nCMD [\"--port\", \"80\"]\n");
    assert_eq!(only(found, "LD005"), [(2, 12)]);
    assert_eq!(
        only(
            dockerfile("FROM alpine\nENTRYPOINT [\"/app\", \"serve\"]\n"),
            "LD005"
        ),
        []
    );
}

#[test]
fn ld006_sh_c_without_exec_in_a_manifest_and_a_dockerfile() {
    let text = deployment("", &with_ports("command: [sh, -c, \"./migrate; /app\"]"));
    assert_eq!(only(yaml(&text), "LD006"), [(18, 29)]);
    let ok = deployment(
        "",
        &with_ports("command: [sh, -c, \"./migrate; exec /app\"]"),
    );
    assert_eq!(only(yaml(&ok), "LD006"), []);
    let found = dockerfile("FROM alpine\nENTRYPOINT [\"sh\", \"-c\", \"/app\"]\n");
    assert_eq!(
        only(found, "LD006"),
        [(2, 12)],
        "dash does not exec even a lone command"
    );
    assert_eq!(
        only(
            dockerfile("FROM alpine\nENTRYPOINT [\"bash\", \"-c\", \"/app\"]\n"),
            "LD006"
        ),
        [],
        "bash does"
    );
}

#[test]
fn ld007_entrypoint_script_without_exec() {
    let bad = report(&[(
        "entrypoint.sh",
        FileKind::Script,
        "#!/bin/sh\nset -e\n\njava -jar /app.jar \"$@\"\n",
    )]);
    assert_eq!(crate::util::places(&bad), [("LD007", 4, 1)]);
    let good = report(&[(
        "entrypoint.sh",
        FileKind::Script,
        "#!/bin/sh\nset -e\nexec java -jar /app.jar \"$@\"\n",
    )]);
    assert_eq!(crate::util::places(&good), []);
}

#[test]
fn ld008_nginx_under_lameduck_run_without_rewrite() {
    let text = deployment(
        "",
        &with_ports("command: [lameduck, run, --, nginx, -g, \"daemon off;\"]"),
    );
    assert_eq!(only(yaml(&text), "LD008"), [(18, 40)]);
    let rewritten = text.replace("run, --,", "run, --rewrite, \"TERM:QUIT\", --,");
    assert_eq!(only(yaml(&rewritten), "LD008"), []);
    let found = dockerfile(
        "FROM debian\nRUN apt-get install -y nginx\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n",
    );
    assert_eq!(only(found, "LD008"), [(3, 5)]);
    let official = dockerfile("FROM nginx:1.27\nCMD [\"nginx\", \"-g\", \"daemon off;\"]\n");
    assert_eq!(
        only(official, "LD008"),
        [],
        "the official image sets STOPSIGNAL SIGQUIT"
    );
}

fn with_service(dep: &str) -> String {
    format!("{dep}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n")
}

#[test]
fn ld009_recreate_for_a_service_backed_deployment() {
    let text = with_service(&deployment("", PORTS).replace(
        "  replicas: 1\n",
        "  replicas: 1\n  strategy: {type: Recreate}\n",
    ));
    assert_eq!(only(yaml(&text), "LD009"), [(7, 20)]);
    let no_service = deployment("", "command: [/worker]").replace(
        "  replicas: 1\n",
        "  replicas: 1\n  strategy: {type: Recreate}\n",
    );
    assert_eq!(only(yaml(&no_service), "LD009"), []);
}

#[test]
fn ld010_and_ld011_rollouts_that_drop_every_ready_pod() {
    let strategy = |s: &str| {
        deployment("", PORTS).replace(
            "  replicas: 1\n",
            &format!("  replicas: 2\n  strategy:\n    rollingUpdate: {s}\n"),
        )
    };
    assert_eq!(
        only(yaml(&strategy("{maxSurge: 1, maxUnavailable: 2}")), "LD010"),
        [(8, 50)]
    );
    assert_eq!(
        only(
            yaml(&strategy("{maxSurge: 1, maxUnavailable: 50%}")),
            "LD010"
        ),
        []
    );
    let single = deployment("", PORTS).replace(
        "  replicas: 1\n",
        "  replicas: 1\n  strategy:\n    rollingUpdate: {maxSurge: 0}\n",
    );
    assert_eq!(only(yaml(&single), "LD011"), [(8, 31)]);
    // The defaults (25 %) surge one pod for a single replica.
    assert_eq!(only(yaml(&deployment("", PORTS)), "LD011"), []);
}

#[test]
fn ld012_multi_replica_without_a_disruption_budget() {
    let text = deployment("", PORTS).replace("replicas: 1", "replicas: 3");
    assert_eq!(only(yaml(&text), "LD012"), [(6, 13)]);
    let pdb = format!("{text}---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: web}}\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels: {{app: web}}\n");
    assert_eq!(only(yaml(&pdb), "LD012"), []);
}

#[test]
fn ld013_eureka_client_not_marked_down() {
    let text = deployment("", &with_ports("env: [{name: EUREKA_CLIENT_SERVICEURL_DEFAULTZONE, value: \"http://eureka/eureka/\"}]\nlifecycle: {preStop: {sleep: {seconds: 5}}}"));
    assert_eq!(only(yaml(&text), "LD013"), [(18, 69)]);
    let marked = text.replace("{preStop: {sleep: {seconds: 5}}}", "{preStop: {exec: {command: [sh, -c, \"curl -X PUT $EUREKA/apps/WEB/$HOSTNAME/status?value=OUT_OF_SERVICE; sleep 5\"]}}}");
    assert_eq!(only(yaml(&marked), "LD013"), []);
    let server = text.replace(
        "value: \"http://eureka/eureka/\"}]",
        "value: \"http://eureka/eureka/\"}, {name: EUREKA_CLIENT_REGISTER_WITH_EUREKA, value: \"false\"}]",
    );
    assert_ne!(server, text);
    assert_eq!(
        only(yaml(&server), "LD013"),
        [],
        "a Eureka server that does not register itself"
    );
}

#[test]
fn ld014_serving_container_with_no_lame_duck_phase() {
    let text = deployment("", &with_ports("command: [/app]"));
    assert_eq!(only(yaml(&text), "LD014"), [(14, 17)]);
    let run = deployment(
        "",
        &with_ports("command: [lameduck, run, --until-quiet, 2s, --port, \"8080\", --, /app]"),
    );
    assert_eq!(only(yaml(&run), "LD014"), []);
}

#[test]
fn ignores_by_annotation_and_by_comment() {
    let text = deployment("", &with_ports("command: [/app]"));
    let annotated = text.replace("      labels: {app: web}\n", "      labels: {app: web}\n      annotations: {lameduck.dev/ignore: \"LD014, no-readiness-probe\"}\n");
    assert_eq!(only(yaml(&annotated), "LD014"), []);
    let commented = text.replace(
        "        - name: web\n",
        "        # lameduck:ignore LD014 (drains by itself)\n        - name: web\n",
    );
    assert_eq!(only(yaml(&commented), "LD014"), []);
    let other_rule = text.replace(
        "        - name: web\n",
        "        # lameduck:ignore LD003\n        - name: web\n",
    );
    assert_eq!(
        only(yaml(&other_rule), "LD014").len(),
        1,
        "an ignore names its rules"
    );
}

#[test]
fn list_kinds_anchors_and_aliases_are_followed() {
    let text = "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: v1\n    kind: Pod\n    metadata: {name: p}\n    spec:\n      containers:\n        - &c\n          name: a\n          image: x\n          ports: [{containerPort: 80}]\n        - <<: *c\n          name: b\n";
    // Both containers lack readiness; the second one is reported at its own name.
    assert_eq!(only(yaml(text), "LD003"), [(10, 17), (14, 17)]);
}

#[test]
fn every_rule_has_a_section_in_docs_lint_md() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/lint.md"))
        .expect("docs/lint.md");
    for r in lameduck_lint::rules::ALL {
        let section = format!("### {}\n\n**{}** ({})", r.id, r.name, r.severity);
        assert!(docs.contains(&section), "docs/lint.md lacks {section:?}");
    }
}

/// An Envoy Gateway EnvoyProxy; `spec` is its spec's lines.
fn envoy_proxy(spec: &str) -> String {
    format!("apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyProxy\nmetadata:\n  name: eg\nspec:\n{spec}")
}

const GRACE_PATCH: &str = "  provider:\n    type: Kubernetes\n    kubernetes:\n      envoyDeployment:\n        patch:\n          type: StrategicMerge\n          value:\n            spec:\n              template:\n                spec:\n                  terminationGracePeriodSeconds: 60\n";

#[test]
fn ld002_envoy_proxy_drain_timeout_longer_than_the_patched_grace() {
    let text = envoy_proxy(&format!(
        "  shutdown:\n    drainTimeout: 90s\n    minDrainDuration: 15s\n{GRACE_PATCH}"
    ));
    // drainTimeout's value: line 7, column 19.
    assert_eq!(only(yaml(&text), "LD002"), [(7, 19)]);
    let r = report(&[("t.yaml", FileKind::Yaml, &text)]);
    assert_eq!(
        message(&r, "LD002").split(':').next().unwrap(),
        "Envoy Gateway EnvoyProxy shutdown.drainTimeout 90 s > terminationGracePeriodSeconds 60 s (set by spec.provider.kubernetes.envoyDeployment.patch) of EnvoyProxy/eg"
    );
}

#[test]
fn ld002_envoy_proxy_default_drain_points_at_the_patched_grace() {
    // No drainTimeout: Envoy Gateway drains up to 60 s; a 30 s grace is short.
    let text = envoy_proxy(&GRACE_PATCH.replace(": 60", ": 30"));
    assert_eq!(only(yaml(&text), "LD002"), [(16, 50)]);
    let r = report(&[("t.yaml", FileKind::Yaml, &text)]);
    assert!(
        message(&r, "LD002").starts_with("Envoy Gateway EnvoyProxy shutdown.drainTimeout (its default) 60 s > terminationGracePeriodSeconds 30 s"),
        "{}",
        message(&r, "LD002")
    );
}

#[test]
fn ld002_envoy_proxy_not_with_envoy_gateways_own_grace_or_a_longer_patch() {
    // Envoy Gateway gives the pods drainTimeout + 300 s: 600 s here.
    let own = envoy_proxy("  shutdown:\n    drainTimeout: 300s\n    minDrainDuration: 15s\n");
    assert_eq!(only(yaml(&own), "LD002"), []);
    let longer = envoy_proxy(&format!(
        "  shutdown:\n    drainTimeout: 45s\n{GRACE_PATCH}"
    ));
    assert_eq!(only(yaml(&longer), "LD002"), []);
    // minDrainDuration never extends the drain past drainTimeout.
    let min_only = envoy_proxy(&format!(
        "  shutdown:\n    drainTimeout: 50s\n    minDrainDuration: 90s\n{GRACE_PATCH}"
    ));
    assert_eq!(only(yaml(&min_only), "LD002"), []);
    // The ignore annotation on the EnvoyProxy silences it.
    let long = envoy_proxy(&format!(
        "  shutdown:\n    drainTimeout: 90s\n{GRACE_PATCH}"
    ));
    let ignored = long.replace(
        "  name: eg\n",
        "  name: eg\n  annotations: {lameduck.dev/ignore: proxy-drain-exceeds-grace}\n",
    );
    assert_eq!(only(yaml(&ignored), "LD002"), []);
    // Another API group's EnvoyProxy is not Envoy Gateway's.
    let other = envoy_proxy(&format!(
        "  shutdown:\n    drainTimeout: 90s\n{GRACE_PATCH}"
    ))
    .replace("gateway.envoyproxy.io/v1alpha1", "example.com/v1");
    assert_eq!(only(yaml(&other), "LD002"), []);
}
