//! Dockerfile and entrypoint-script checks: shell-form ENTRYPOINT/CMD
//! (LD005, the same test as hadolint's DL3025), an exec-form `sh -c` that
//! does not `exec` the app (LD006), nginx/openresty/php-fpm images whose
//! stop signal is SIGTERM (LD008), and entrypoint scripts whose last command
//! runs the app without `exec` (LD007).

use super::insert_exec;
use super::pod::{official_quit_image, wants_sigquit};
use crate::dockerfile::{self, Instruction, Stage};
use crate::launch::{rewrites_term_to_quit, Launch, Pid1};
use crate::rules::{self, Edit, Finding};
use crate::shell::{self, Tail};
use crate::source::{SourceFile, Span};

pub(super) fn check_dockerfile(file: usize, source: &SourceFile, out: &mut Vec<Finding>) {
    let stages = dockerfile::parse(source);
    for stage in &stages {
        for inst in stage.instructions.iter().filter(|i| is_run_instruction(i)) {
            if inst.exec_form().is_none() {
                out.push(shell_form(file, inst));
            }
        }
    }
    let Some(last) = stages.last() else { return };
    let entrypoint = last.last("ENTRYPOINT");
    let cmd = last.last("CMD");
    let argv = effective_argv(entrypoint, cmd);
    if let Some((inst, argv)) = argv {
        exec_form_shell(file, source, inst, &argv, out);
        stop_signal(file, &stages, inst, &argv, out);
    }
}

fn is_run_instruction(i: &Instruction) -> bool {
    i.keyword == "CMD" || i.keyword == "ENTRYPOINT"
}

fn shell_form(file: usize, inst: &Instruction) -> Finding {
    let words = shlex::split(&inst.args).filter(|_| {
        !inst
            .args
            .contains(['$', '|', '&', ';', '<', '>', '`', '*', '?', '('])
    });
    let json = words.as_ref().and_then(|w| serde_json::to_string(w).ok());
    let fix = match &json {
        Some(j) => format!("write {} {}", inst.keyword, j.replace("\",\"", "\", \"")),
        None => rules::SHELL_FORM.fix.to_string(),
    };
    let edit = json.map(|j| Edit {
        file,
        span: inst.args_span,
        text: j.replace("\",\"", "\", \""),
    });
    Finding::new(
        rules::SHELL_FORM,
        file,
        inst.args_span,
        format!(
            "shell-form {}: the container runs /bin/sh -c \"{}\", so PID 1 is the shell, which does not pass SIGTERM to the app",
            inst.keyword, inst.args
        ),
    )
    .with_fix(fix)
    .with_edit(edit)
}

/// The command line the final stage runs, and the instruction that holds
/// the program: exec-form ENTRYPOINT + CMD, or a lone exec-form CMD.
fn effective_argv<'a>(
    entrypoint: Option<&'a Instruction>,
    cmd: Option<&'a Instruction>,
) -> Option<(&'a Instruction, Vec<String>)> {
    match (entrypoint, cmd) {
        (Some(ep), cmd) => {
            let mut argv = ep.exec_form()?;
            let program_in_cmd = argv.is_empty();
            argv.extend(cmd.and_then(Instruction::exec_form).unwrap_or_default());
            let holder = if program_in_cmd { cmd? } else { ep };
            Some((holder, argv))
        }
        (None, Some(cmd)) => Some((cmd, cmd.exec_form()?)),
        (None, None) => None,
    }
}

fn exec_form_shell(
    file: usize,
    source: &SourceFile,
    inst: &Instruction,
    argv: &[String],
    out: &mut Vec<Finding>,
) {
    let launch = Launch::read(argv.to_vec());
    let Some(at) = launch.shell_script() else {
        return;
    };
    if launch.signals_group() {
        return;
    }
    let script = &argv[at];
    let shell_name = shell::base_name(&argv[launch.app]);
    let single = shell::commands(script).len() == 1;
    let (cmd, fixable) = match shell::tail(script) {
        Tail::NoExec(_) if single && shell_name == "bash" => return,
        Tail::NoExec(c) => (c, true),
        Tail::AppNotLast(c) => (c, false),
        Tail::Forwards | Tail::Unknown => return,
    };
    let edit = fixable
        .then(|| insert_exec(file, source, inst.args_span, &cmd.text))
        .flatten();
    out.push(
        Finding::new(
            rules::SHELL_NO_EXEC,
            file,
            inst.args_span,
            format!(
                "PID 1 is {shell_name} -c, which runs `{}` as its child and does not pass SIGTERM on: the app is SIGKILLed at the end of the grace period",
                cmd.text
            ),
        )
        .with_fix(format!("write `exec {}`", cmd.text))
        .with_edit(edit),
    );
}

/// The stop signal in effect for the final stage: its own STOPSIGNAL or an
/// earlier stage's it is built FROM; official nginx/openresty/php-fpm
/// images set SIGQUIT.
fn effective_stop_signal(stages: &[Stage]) -> Option<String> {
    let mut stage = stages.last()?;
    for _ in 0..stages.len() {
        if let Some(s) = stage.last("STOPSIGNAL") {
            return Some(s.args.trim().to_string());
        }
        let base = stage.base.to_ascii_lowercase();
        match stages
            .iter()
            .find(|s| s.name.as_deref() == Some(base.as_str()))
        {
            Some(parent) => stage = parent,
            None => return official_quit_image(&stage.base).then(|| "SIGQUIT".to_string()),
        }
    }
    None
}

fn stop_signal(
    file: usize,
    stages: &[Stage],
    inst: &Instruction,
    argv: &[String],
    out: &mut Vec<Finding>,
) {
    let launch = Launch::read(argv.to_vec());
    let Some(program) = launch.program() else {
        return;
    };
    if !wants_sigquit(program) {
        return;
    }
    let rewrites = matches!(launch.pid1, Pid1::LameduckRun { .. })
        && launch
            .flags("--rewrite")
            .iter()
            .any(|r| rewrites_term_to_quit(r));
    let signal = effective_stop_signal(stages).unwrap_or_else(|| "SIGTERM".into());
    let quit = matches!(signal.trim_start_matches("SIG"), "QUIT" | "3");
    if rewrites || (quit && !matches!(launch.pid1, Pid1::LameduckRun { .. })) {
        return;
    }
    let (how, fix, edit) = if matches!(launch.pid1, Pid1::LameduckRun { .. }) {
        (
            "lameduck run forwards SIGTERM as it is",
            "add `--rewrite TERM:QUIT` to lameduck run's flags".to_string(),
            None,
        )
    } else {
        let line_start = inst.span.start;
        let edit = Edit {
            file,
            span: Span::new(line_start, line_start),
            text: "STOPSIGNAL SIGQUIT\n".into(),
        };
        (
            "the image's stop signal is SIGTERM",
            "add `STOPSIGNAL SIGQUIT` to the final stage".to_string(),
            Some(edit),
        )
    };
    out.push(
        Finding::new(
            rules::STOP_SIGNAL,
            file,
            inst.args_span,
            format!("{program} is stopped with SIGTERM ({how}), its fast stop: in-flight requests are cut; its graceful stop is SIGQUIT"),
        )
        .with_fix(fix)
        .with_edit(edit),
    );
}

pub(super) fn check_script(file: usize, source: &SourceFile, out: &mut Vec<Finding>) {
    let (cmd, fixable) = match shell::tail(&source.text) {
        Tail::NoExec(c) => (c, true),
        Tail::AppNotLast(c) => (c, false),
        Tail::Forwards | Tail::Unknown => return,
    };
    let span = Span::new(
        cmd.start,
        cmd.start
            + source.text[cmd.start..]
                .find('\n')
                .unwrap_or(source.text.len() - cmd.start),
    );
    let edit = fixable.then(|| Edit {
        file,
        span: Span::new(cmd.start, cmd.start),
        text: "exec ".into(),
    });
    let how = if fixable {
        "as its last command"
    } else {
        "and then goes on"
    };
    out.push(
        Finding::new(
            rules::SCRIPT_NO_EXEC,
            file,
            span,
            format!(
                "the script runs `{}` without exec {how}: the shell stays PID 1, keeps SIGTERM to itself, and the app is SIGKILLed at the end of the grace period",
                cmd.text
            ),
        )
        .with_fix(format!("write `exec {}`{}", cmd.text, if fixable { "" } else { " as the last command" }))
        .with_edit(edit),
    );
}
