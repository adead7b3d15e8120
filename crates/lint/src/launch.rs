//! What PID 1 of a container is, read from its command line: an init such
//! as tini or dumb-init, `lameduck run` (with its flags), another lameduck
//! part, a shell with `-c`, or the app itself. The rules ask it who gets the
//! stop signal and what the drain budget is.

use crate::shell::{base_name, dash_c_script};

/// A command line, split into the wrapper (if any) and the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    /// The whole command line.
    pub argv: Vec<String>,
    /// What PID 1 is.
    pub pid1: Pid1,
    /// Index in `argv` where the app's own command starts.
    pub app: usize,
}

/// The kind of PID 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pid1 {
    /// `lameduck run … -- app`: flags are `argv[flags]`.
    LameduckRun {
        /// Range of lameduck's own flags in argv.
        flags: std::ops::Range<usize>,
    },
    /// Another lameduck part (`proxy`, `registry`, …), which drains itself.
    LameduckPart(String),
    /// tini or dumb-init: forwards the stop signal as it is (unless
    /// told to rewrite it).
    Init(String),
    /// The app (possibly a shell: see [`Launch::shell_script`]).
    App,
}

/// Subcommands of lameduck that follow the drain model on SIGTERM.
const DRAINING_PARTS: &[&str] = &["run", "proxy", "registry"];

impl Launch {
    /// Reads a command line (an empty one is `App` with no words).
    pub fn read(argv: Vec<String>) -> Launch {
        let mut i = 0;
        let mut pid1 = Pid1::App;
        if let Some(first) = argv.first() {
            let name = base_name(first);
            if matches!(name, "tini" | "dumb-init" | "tini-static") {
                pid1 = Pid1::Init(name.to_string());
                i = 1;
                while i < argv.len() && argv[i].starts_with('-') {
                    i += 1;
                    if argv[i - 1] == "--" {
                        break;
                    }
                }
            }
        }
        if argv.get(i).is_some_and(|a| base_name(a) == "lameduck") {
            let sub = argv.get(i + 1).cloned().unwrap_or_default();
            if sub == "run" {
                let start = i + 2;
                let end = argv[start.min(argv.len())..]
                    .iter()
                    .position(|a| a == "--")
                    .map_or(argv.len(), |p| start + p);
                return Launch {
                    app: (end + 1).min(argv.len()),
                    pid1: Pid1::LameduckRun {
                        flags: start.min(end)..end,
                    },
                    argv,
                };
            }
            if DRAINING_PARTS.contains(&sub.as_str()) {
                return Launch {
                    app: i,
                    pid1: Pid1::LameduckPart(sub),
                    argv,
                };
            }
        }
        Launch { app: i, pid1, argv }
    }

    /// The app's command line.
    pub fn app_argv(&self) -> &[String] {
        &self.argv[self.app.min(self.argv.len())..]
    }

    /// The app's program name (`nginx` for `/usr/sbin/nginx`).
    pub fn program(&self) -> Option<&str> {
        self.app_argv().first().map(|p| base_name(p))
    }

    /// The value of lameduck's (or the init's) flag `--name`, with its index.
    pub fn flag(&self, name: &str) -> Option<(usize, &str)> {
        let range = match &self.pid1 {
            Pid1::LameduckRun { flags } => flags.clone(),
            _ => 0..self.app,
        };
        flag_in(&self.argv, range, name)
    }

    /// Every value of a repeatable flag.
    pub fn flags(&self, name: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut range = match &self.pid1 {
            Pid1::LameduckRun { flags } => flags.clone(),
            _ => 0..self.app,
        };
        while let Some((i, v)) = flag_in(&self.argv, range.clone(), name) {
            out.push(v);
            range.start = i + 1;
        }
        out
    }

    /// Whether lameduck itself (run or a part) drains this container.
    pub fn lameduck_drains(&self) -> bool {
        matches!(self.pid1, Pid1::LameduckRun { .. } | Pid1::LameduckPart(_))
    }

    /// For a `sh -c SCRIPT` app: the index of SCRIPT in `argv`.
    pub fn shell_script(&self) -> Option<usize> {
        dash_c_script(self.app_argv()).map(|i| i + self.app)
    }

    /// Whether the wrapper signals the app's whole process group, so that a
    /// shell's children get the stop signal too.
    pub fn signals_group(&self) -> bool {
        match &self.pid1 {
            Pid1::LameduckRun { .. } => self.flag("--signal-group").is_some(),
            Pid1::Init(name) if name.starts_with("tini") => {
                self.argv[..self.app].iter().any(|a| a == "-g")
            }
            Pid1::Init(_) => !self.argv[..self.app]
                .iter()
                .any(|a| a == "--single-child" || a == "-c"),
            _ => false,
        }
    }
}

/// `--name VALUE` or `--name=VALUE` within `range` of `argv`; a flag without
/// a value (`--signal-group`) is found with an empty value.
fn flag_in<'a>(
    argv: &'a [String],
    range: std::ops::Range<usize>,
    name: &str,
) -> Option<(usize, &'a str)> {
    let end = range.end.min(argv.len());
    for i in range.start.min(end)..end {
        let a = &argv[i];
        if a == name {
            let v = argv.get(i + 1).filter(|_| i + 1 < end).map_or("", |v| {
                if v.starts_with("--") {
                    ""
                } else {
                    v.as_str()
                }
            });
            return Some((i, v));
        }
        if let Some(v) = a.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            return Some((i, v));
        }
    }
    None
}

/// Whether a stop-signal rewrite turns SIGTERM into SIGQUIT
/// (`TERM:QUIT`, `SIGTERM:SIGQUIT`, `15:3`).
pub fn rewrites_term_to_quit(rewrite: &str) -> bool {
    let Some((from, to)) = rewrite.split_once(':') else {
        return false;
    };
    let norm = |s: &str| s.trim().trim_start_matches("SIG").to_ascii_uppercase();
    matches!(norm(from).as_str(), "TERM" | "15") && matches!(norm(to).as_str(), "QUIT" | "3")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(words: &[&str]) -> Launch {
        Launch::read(words.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn lameduck_run_flags_and_app() {
        let l = read(&[
            "lameduck",
            "run",
            "--grace=40s",
            "--rewrite",
            "TERM:QUIT",
            "--",
            "nginx",
            "-g",
            "daemon off;",
        ]);
        assert!(matches!(l.pid1, Pid1::LameduckRun { .. }));
        assert_eq!(l.flag("--grace").map(|f| f.1), Some("40s"));
        assert_eq!(l.flags("--rewrite"), ["TERM:QUIT"]);
        assert_eq!(l.program(), Some("nginx"));
        assert!(rewrites_term_to_quit("SIGTERM:SIGQUIT"));
    }

    #[test]
    fn init_then_shell() {
        let l = read(&["/sbin/tini", "--", "sh", "-c", "app"]);
        assert_eq!(l.pid1, Pid1::Init("tini".into()));
        assert_eq!(l.shell_script(), Some(4));
        assert!(!l.signals_group());
    }
}
