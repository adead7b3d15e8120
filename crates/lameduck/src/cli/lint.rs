//! `lameduck lint [OPTIONS] FILES…`

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use lameduck_drain::parse_duration;
use lameduck_lint::{fix, inputs, output, Options, Severity};

/// Find the graceful-shutdown mistakes in Kubernetes manifests, Helm output,
/// Dockerfiles and entrypoint scripts: a preStop wait plus the app's drain
/// longer than terminationGracePeriodSeconds (with the arithmetic), a shell
/// as PID 1, nginx stopped with SIGTERM, a proxy drain longer than its pod's
/// grace, no readinessProbe, rollouts that drop every ready pod.
///
/// Every rule has an ID (LD001…), a severity and a fix; --list-rules prints
/// them, docs/lint.md explains each. Ignore one with the annotation `lameduck.dev/ignore: LD003,LD012` on
/// the object or its pod template, or a `# lameduck:ignore LD005` comment on
/// or above the line.
///
/// Exit status: 0 when nothing reaches --fail-on, 1 when a finding does, 2
/// when an input cannot be read or is not valid YAML.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lameduck lint deploy/\n  helm template my-release ./chart | lameduck lint -\n  lameduck lint --format sarif k8s/ > lint.sarif"
)]
pub(crate) struct LintArgs {
    /// Files and directories to lint; `-` reads YAML from stdin. Directories
    /// are walked for *.yaml, *.yml, Dockerfiles and *entrypoint*.sh
    /// (a Helm chart's templates/ is skipped: lint `helm template` output).
    #[arg(value_name = "PATH", required_unless_present_any = ["dockerfile", "list_rules"])]
    paths: Vec<PathBuf>,

    /// Read this file as a Dockerfile whatever its name (repeatable).
    #[arg(long, value_name = "PATH")]
    dockerfile: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,

    /// Exit 1 when a finding has this severity or a worse one.
    #[arg(long, value_enum, default_value_t = FailOn::Warning)]
    fail_on: FailOn,

    /// Rewrite the files where the fix is unambiguous (grace period raised
    /// to fit, `exec` added, exec form, STOPSIGNAL): text edits only, so
    /// comments and layout stay. Then lint the result.
    #[arg(long, conflicts_with = "diff")]
    fix: bool,

    /// Print the --fix edits as a unified diff; change nothing.
    #[arg(long)]
    diff: bool,

    /// Time kept free before the kubelet's SIGKILL for an app whose drain is
    /// a timeout it may use up (Spring's timeout-per-shutdown-phase).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    margin: std::time::Duration,

    /// Print every rule (ID, severity, name, what it catches, the fix) and exit.
    #[arg(long)]
    list_rules: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// file:line:column, the line, a caret under the offending text, the fix.
    Human,
    /// One JSON object: findings, errors, summary.
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF viewers.
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FailOn {
    Error,
    Warning,
    Info,
    /// Always exit 0 (unless an input is unreadable).
    Never,
}

pub(crate) fn main(args: LintArgs) -> i32 {
    if args.list_rules {
        for r in lameduck_lint::rules::ALL {
            println!(
                "{} {:<7} {}: {}\n        fix: {}",
                r.id,
                r.severity.as_str(),
                r.name,
                r.summary,
                r.fix
            );
        }
        return 0;
    }
    let inputs = inputs::Inputs {
        paths: args.paths.clone(),
        dockerfiles: args.dockerfile.clone(),
    };
    let files = match inputs::read(&inputs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let options = Options {
        margin: args.margin.as_secs_f64(),
    };
    let mut report = lameduck_lint::lint(files, &options);
    if args.fix || args.diff {
        let fixed = fix::apply(&report.files, &report.findings);
        if args.diff {
            for (i, text) in &fixed {
                let f = &report.files[*i];
                print!("{}", fix::diff(&f.path, &f.text, text));
            }
            // An input that did not read has no diff, but must not pass.
            for e in &report.errors {
                eprintln!("error: {e}");
            }
            return if report.errors.is_empty() { 0 } else { 2 };
        }
        if let Err(code) = write_fixes(&report.files, &fixed) {
            return code;
        }
        let files = report
            .files
            .into_iter()
            .enumerate()
            .map(|(i, f)| match fixed.get(&i) {
                Some(text) => lameduck_lint::SourceFile::new(f.path, f.kind, text.clone()),
                None => f,
            })
            .collect();
        report = lameduck_lint::lint(files, &options);
    }
    let text = match args.format {
        Format::Human => output::human(&report),
        Format::Json => output::json(&report),
        Format::Sarif => output::sarif(&report),
    };
    let _ = writeln!(std::io::stdout(), "{}", text.trim_end());
    exit_code(&report, args.fail_on)
}

fn write_fixes(
    files: &[lameduck_lint::SourceFile],
    fixed: &std::collections::BTreeMap<usize, String>,
) -> Result<(), i32> {
    for (i, text) in fixed {
        let f = &files[*i];
        if f.path == "<stdin>" {
            eprintln!("error: --fix cannot rewrite stdin; use --diff, or pass the file");
            return Err(2);
        }
        if let Err(e) = std::fs::write(&f.path, text) {
            eprintln!("error: cannot write {}: {e}", f.path);
            return Err(2);
        }
        eprintln!("fixed {}", f.path);
    }
    Ok(())
}

fn exit_code(report: &lameduck_lint::Report, fail_on: FailOn) -> i32 {
    if !report.errors.is_empty() {
        return 2;
    }
    let threshold = match fail_on {
        FailOn::Error => Severity::Error,
        FailOn::Warning => Severity::Warning,
        FailOn::Info => Severity::Info,
        FailOn::Never => return 0,
    };
    i32::from(report.worst().is_some_and(|w| w >= threshold))
}
