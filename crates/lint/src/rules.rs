//! The rule catalogue (ID, name, severity, what it catches, the usual fix) and
//! the finding every check produces. docs/lint.md has one section per rule,
//! anchored by its lower-case ID.

use std::fmt;

use serde::Serialize;

use crate::source::Span;

/// How bad a finding is; `--fail-on` compares against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; loses requests only in some situations.
    Info,
    /// Loses requests in common situations.
    Warning,
    /// Loses requests on every rollout.
    Error,
}

impl Severity {
    /// The lower-case name (`error`, `warning`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// The SARIF level.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable ID, e.g. `LD001`.
    pub id: &'static str,
    /// Short kebab-case name.
    pub name: &'static str,
    /// Default severity.
    pub severity: Severity,
    /// One line: what goes wrong.
    pub summary: &'static str,
    /// One line: the usual fix.
    pub fix: &'static str,
}

macro_rules! rules {
    ($($konst:ident = $id:literal, $name:literal, $sev:ident, $summary:literal, $fix:literal;)*) => {
        $(
            #[doc = $summary]
            pub const $konst: Rule = Rule { id: $id, name: $name, severity: Severity::$sev, summary: $summary, fix: $fix };
        )*
        /// Every rule, in ID order.
        pub const ALL: &[Rule] = &[$($konst),*];
    };
}

rules! {
    GRACE_BUDGET = "LD001", "grace-budget", Error,
        "preStop time plus the app's shutdown time does not fit in terminationGracePeriodSeconds",
        "raise terminationGracePeriodSeconds to the sum, or shorten the preStop wait";
    PROXY_DRAIN = "LD002", "proxy-drain-exceeds-grace", Error,
        "a proxy's or mesh sidecar's drain setting is longer than its pod's grace period",
        "raise terminationGracePeriodSeconds above the drain setting, or shorten the drain";
    NO_READINESS = "LD003", "no-readiness-probe", Warning,
        "a serving container has no readinessProbe",
        "add a readinessProbe that fails while the container drains (lameduck run --admin serves /readyz)";
    READINESS_IS_LIVENESS = "LD004", "readiness-is-liveness", Warning,
        "the readinessProbe is identical to the livenessProbe",
        "point readiness at a check that turns 503 on drain (/readyz), liveness at /healthz";
    SHELL_FORM = "LD005", "shell-form-entrypoint", Error,
        "shell-form ENTRYPOINT or CMD: PID 1 is /bin/sh, which does not forward SIGTERM",
        "use the exec (JSON) form: CMD [\"app\", \"--flag\"]";
    SHELL_NO_EXEC = "LD006", "shell-without-exec", Error,
        "`sh -c` runs the app as a child of a shell that does not forward SIGTERM",
        "put `exec` before the command that starts the app";
    SCRIPT_NO_EXEC = "LD007", "entrypoint-script-without-exec", Error,
        "the entrypoint script runs the app without `exec`, so the shell stays PID 1 and keeps SIGTERM",
        "start the app with `exec` on the script's last line";
    STOP_SIGNAL = "LD008", "stop-signal", Warning,
        "nginx, openresty or php-fpm stopped with SIGTERM, which is their fast (non-graceful) stop",
        "stop it with SIGQUIT: STOPSIGNAL SIGQUIT, lifecycle.stopSignal: SIGQUIT, or lameduck run --rewrite TERM:QUIT";
    RECREATE = "LD009", "recreate-strategy", Warning,
        "strategy Recreate stops every pod of a Service-backed Deployment before new ones are ready",
        "use strategy RollingUpdate with maxUnavailable: 0";
    NO_READY_POD = "LD010", "rollout-leaves-no-ready-pod", Warning,
        "maxUnavailable lets a rolling update stop every ready pod at once",
        "set maxUnavailable below the replica count (0 with maxSurge: 1 is the safe choice)";
    SINGLE_NO_SURGE = "LD011", "single-replica-no-surge", Warning,
        "one replica with maxSurge: 0: the only pod stops before its replacement is ready",
        "set maxSurge: 1 and maxUnavailable: 0";
    NO_PDB = "LD012", "no-disruption-budget", Info,
        "a multi-replica workload has no PodDisruptionBudget: a node drain may evict every replica at once",
        "add a PodDisruptionBudget with maxUnavailable: 1 selecting the pods";
    EUREKA = "LD013", "eureka-no-deregistration", Warning,
        "a Eureka client is not marked DOWN before it stops: clients' caches keep sending it traffic",
        "mark it DOWN and wait before the stop (lameduck run --eureka URL --eureka-app NAME --until-quiet 2s)";
    NO_LAME_DUCK = "LD014", "no-lame-duck-phase", Warning,
        "a serving container gets SIGTERM while routers still send it traffic (no preStop, no lame-duck phase)",
        "run the app under `lameduck run --until-quiet 2s --port PORT --`, or add a preStop wait";
}

/// Looks a rule up by ID or name (case-insensitive).
pub fn find(key: &str) -> Option<Rule> {
    ALL.iter()
        .copied()
        .find(|r| r.id.eq_ignore_ascii_case(key) || r.name.eq_ignore_ascii_case(key))
}

/// A text change that fixes a finding: replace `span` of `file` with `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Index of the file in the linted inputs.
    pub file: usize,
    /// What to replace (empty to insert).
    pub span: Span,
    /// The new text.
    pub text: String,
}

/// One problem, at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule broken.
    pub rule: Rule,
    /// Index of the file in the linted inputs.
    pub file: usize,
    /// The offending text.
    pub span: Span,
    /// What is wrong here, with the numbers.
    pub message: String,
    /// The fix for this place (one line).
    pub fix: String,
    /// The automatic fix, where it is unambiguous.
    pub edit: Option<Edit>,
}

impl Finding {
    /// A finding of `rule` at `span` in `file`, with the rule's own fix text.
    pub fn new(rule: Rule, file: usize, span: Span, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            file,
            span,
            message: message.into(),
            fix: rule.fix.to_string(),
            edit: None,
        }
    }

    /// The same finding with a fix text of its own.
    pub fn with_fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }

    /// The same finding with an automatic fix.
    pub fn with_edit(mut self, edit: Option<Edit>) -> Finding {
        self.edit = edit;
        self
    }
}
