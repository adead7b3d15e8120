//! The per-container checks of a pod: readiness (LD003, LD004), a shell as
//! PID 1 (LD006), the stop signal of servers whose graceful stop is SIGQUIT
//! (LD008), Eureka clients that are not marked DOWN first (LD013), and
//! serving containers with no lame-duck phase at all (LD014).

use super::{container_name, container_span, insert_exec, Ctx};
use crate::k8s::{self, Workload};
use crate::launch::{rewrites_term_to_quit, Launch, Pid1};
use crate::rules::{self, Finding};
use crate::shell::{self, Tail};
use crate::yaml::Node;

pub(super) fn check(ctx: &Ctx<'_>, w: &Workload<'_>, out: &mut Vec<Finding>) {
    let containers = w.containers();
    let any_ports = containers.iter().any(k8s::has_ports);
    let selected = ctx.has_service(w);
    for (i, c) in containers.iter().enumerate() {
        let args = k8s::argv(c);
        let launch = Launch::read(args.iter().map(|a| a.text.clone()).collect());
        let serving = !w.is_batch() && (k8s::has_ports(c) || (selected && !any_ports && i == 0));
        if serving {
            readiness(w, c, out);
            no_lame_duck(w, c, &launch, out);
        }
        if !w.is_batch() {
            shell_pid1(ctx, w, &args, &launch, out);
        }
        stop_signal(w, c, &args, &launch, out);
        if !w.is_batch() {
            eureka(w, c, &launch, out);
        }
    }
}

fn readiness(w: &Workload<'_>, c: &Node, out: &mut Vec<Finding>) {
    let file = w.obj.file;
    let name = container_name(c);
    match (c.entry("readinessProbe"), c.get("livenessProbe")) {
        (None, _) => out.push(Finding::new(
            rules::NO_READINESS,
            file,
            container_span(c),
            format!(
                "container {name:?} of {} serves traffic but has no readinessProbe: it gets requests before it is ready and until it is gone",
                w.obj.title()
            ),
        )),
        (Some((key, ready)), Some(live)) if ready.same_value(live) => out.push(Finding::new(
            rules::READINESS_IS_LIVENESS,
            file,
            key.span,
            format!(
                "container {name:?}: readinessProbe is the same check as livenessProbe, so a drain that fails readiness also fails liveness and restarts the container"
            ),
        )),
        _ => {}
    }
}

fn no_lame_duck(w: &Workload<'_>, c: &Node, launch: &Launch, out: &mut Vec<Finding>) {
    if c.at(&["lifecycle", "preStop"]).is_some() || launch.lameduck_drains() {
        return;
    }
    out.push(Finding::new(
        rules::NO_LAME_DUCK,
        w.obj.file,
        container_span(c),
        format!(
            "container {:?} of {} gets SIGTERM at the moment its endpoint removal starts: routers keep sending requests for seconds after it stops listening",
            container_name(c),
            w.obj.title()
        ),
    ));
}

fn shell_pid1(
    ctx: &Ctx<'_>,
    w: &Workload<'_>,
    args: &[k8s::Arg<'_>],
    launch: &Launch,
    out: &mut Vec<Finding>,
) {
    let Some(at) = launch.shell_script() else {
        return;
    };
    if launch.signals_group() {
        return;
    }
    let node = args[at].node;
    // The script as written ($(VAR) not expanded), so that a fix edits it.
    let script = node.as_str().unwrap_or(&launch.argv[at]);
    let shell_name = shell::base_name(&launch.argv[launch.app]);
    let single = shell::commands(script).len() == 1;
    let file = w.obj.file;
    let source = &ctx.files[file];
    match shell::tail(script) {
        // bash replaces itself with a lone command; sh (dash) does not.
        Tail::NoExec(_) if single && shell_name == "bash" => {}
        Tail::NoExec(cmd) => out.push(
            Finding::new(
                rules::SHELL_NO_EXEC,
                file,
                node.span,
                format!(
                    "PID 1 is {shell_name} -c, which runs `{}` as its child and does not pass SIGTERM on: the app is SIGKILLed at the end of the grace period",
                    cmd.text
                ),
            )
            .with_fix(format!("write `exec {}`", cmd.text))
            .with_edit(insert_exec(file, source, node.span, &cmd.text)),
        ),
        Tail::AppNotLast(cmd) => out.push(
            Finding::new(
                rules::SHELL_NO_EXEC,
                file,
                node.span,
                format!(
                    "PID 1 is {shell_name} -c, which runs `{}` as its child and then goes on: SIGTERM never reaches the app, which is SIGKILLed at the end of the grace period",
                    cmd.text
                ),
            )
            .with_fix(format!("make `exec {}` the script's last command", cmd.text)),
        ),
        Tail::Forwards | Tail::Unknown => {}
    }
}

/// Servers whose SIGTERM is a fast stop.
pub(crate) fn wants_sigquit(program: &str) -> bool {
    let p = shell::base_name(program);
    p == "nginx" || p == "openresty" || p.starts_with("php-fpm")
}

/// Official images of those servers set STOPSIGNAL SIGQUIT themselves.
pub(crate) fn official_quit_image(image: &str) -> bool {
    let name = image.split(['@', ':']).next().unwrap_or(image);
    let name = name.strip_prefix("docker.io/").unwrap_or(name);
    let name = name.strip_prefix("library/").unwrap_or(name);
    let tag = image.split_once(':').map_or("", |(_, t)| t);
    name == "nginx" || name == "openresty/openresty" || (name == "php" && tag.contains("fpm"))
}

fn stop_signal(
    w: &Workload<'_>,
    c: &Node,
    args: &[k8s::Arg<'_>],
    launch: &Launch,
    out: &mut Vec<Finding>,
) {
    let image = c.get("image").and_then(Node::as_str).unwrap_or("");
    let program = launch.program().map(str::to_string);
    let is_server = program
        .as_deref()
        .map_or_else(|| official_quit_image(image), wants_sigquit);
    if !is_server || quits_in_pre_stop(c) {
        return;
    }
    let server = program.unwrap_or_else(|| server_of_image(image));
    let file = w.obj.file;
    let finding = |span, how: String| {
        Finding::new(rules::STOP_SIGNAL, file, span, format!("{server} gets SIGTERM ({how}), its fast stop: in-flight requests are cut; its graceful stop is SIGQUIT"))
    };
    if let Some(sig) = c.at(&["lifecycle", "stopSignal"]) {
        if !sig
            .as_str()
            .is_some_and(|s| matches!(s.trim_start_matches("SIG"), "QUIT"))
        {
            out.push(finding(sig.span, "lifecycle.stopSignal".into()));
        }
        return;
    }
    let at = args
        .get(launch.app)
        .map_or_else(|| container_span(c), |a| a.node.span);
    match &launch.pid1 {
        Pid1::LameduckRun { .. }
            if !launch
                .flags("--rewrite")
                .iter()
                .any(|r| rewrites_term_to_quit(r)) =>
        {
            out.push(
                finding(at, "lameduck run forwards it as it is".into())
                    .with_fix("add `--rewrite TERM:QUIT` to lameduck run's flags"),
            );
        }
        Pid1::Init(init) if !launch.argv[..launch.app].iter().any(|a| a.contains("15:3")) => {
            out.push(finding(at, format!("{init} forwards it as it is")));
        }
        _ => {}
    }
}

/// `php-fpm` for `php:8.3-fpm`, else the image's repository name.
fn server_of_image(image: &str) -> String {
    let name = image.split(['@', ':']).next().unwrap_or(image);
    let name = shell::base_name(name);
    if name == "php" {
        "php-fpm".into()
    } else {
        name.to_string()
    }
}

fn quits_in_pre_stop(c: &Node) -> bool {
    let words: Vec<&str> = c
        .at(&["lifecycle", "preStop", "exec", "command"])
        .map(Node::items)
        .unwrap_or_default()
        .iter()
        .filter_map(Node::as_str)
        .collect();
    let joined = words.join(" ");
    joined.contains("-s quit") || joined.contains("-QUIT") || joined.contains("-s QUIT")
}

fn eureka(w: &Workload<'_>, c: &Node, launch: &Launch, out: &mut Vec<Finding>) {
    let env = k8s::env(c);
    // A Eureka server, or a client told not to register, has nothing to mark DOWN.
    let registers = !env.iter().any(|(name, v)| {
        let name = name.to_ascii_uppercase();
        name.starts_with("EUREKA_SERVER")
            || (name.replace('_', "").ends_with("REGISTERWITHEUREKA")
                && v.as_str() == Some("false"))
    });
    let env_hit = env
        .into_iter()
        .find(|(name, _)| name.to_ascii_uppercase().contains("EUREKA"));
    let arg_hit = launch
        .app_argv()
        .iter()
        .any(|a| a.to_ascii_lowercase().contains("eureka"));
    if !registers || (env_hit.is_none() && !arg_hit) {
        return;
    }
    let run_marks_down =
        matches!(launch.pid1, Pid1::LameduckRun { .. }) && launch.flag("--eureka").is_some();
    if run_marks_down || pre_stop_deregisters(c) {
        return;
    }
    let span = env_hit.map_or_else(|| container_span(c), |(_, v)| v.span);
    out.push(Finding::new(
        rules::EUREKA,
        w.obj.file,
        span,
        format!(
            "container {:?} is a Eureka client and is not marked DOWN before it stops: the registry and every client's cache keep routing to it for up to ~90 s",
            container_name(c)
        ),
    ));
}

fn pre_stop_deregisters(c: &Node) -> bool {
    let Some(hook) = c.at(&["lifecycle", "preStop"]) else {
        return false;
    };
    let mut text = String::new();
    collect_text(hook, &mut text);
    let t = text.to_ascii_lowercase();
    [
        "eureka",
        "out_of_service",
        "service-registry",
        "deregister",
        "status=down",
        "value=down",
    ]
    .iter()
    .any(|k| t.contains(k))
}

fn collect_text(node: &Node, out: &mut String) {
    match &node.value {
        crate::yaml::Value::Scalar(s, _) => {
            out.push_str(s);
            out.push(' ');
        }
        crate::yaml::Value::Seq(items) => items.iter().for_each(|n| collect_text(n, out)),
        crate::yaml::Value::Map(entries) => entries.iter().for_each(|(k, v)| {
            collect_text(k, out);
            collect_text(v, out);
        }),
    }
}
