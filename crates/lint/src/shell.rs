//! Just enough shell and duration reading for the rules: split a script into
//! its commands (quotes respected), find the last one, tell whether it is
//! `exec`ed, and read `30s` / `1m30s` / `500ms` / `20` durations.

/// A duration in seconds from `20`, `20s`, `1m30s`, `500ms`, `2h`, `1.5s`
/// (Go, Kubernetes, lameduck and sleep(1) spellings). `None` if it is not one.
pub fn parse_seconds(text: &str) -> Option<f64> {
    let text = text.trim().trim_matches('"').trim_matches('\'');
    if text.is_empty() {
        return None;
    }
    if let Ok(n) = text.parse::<f64>() {
        return (n >= 0.0 && n.is_finite()).then_some(n);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match rest[..unit_len].trim() {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Seconds for a message: `20 s`, `1.5 s`.
pub fn show(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{seconds} s")
    }
}

/// One command of a script: its text and where it starts in the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Byte offset of its first character in the script.
    pub start: usize,
    /// Its text, trimmed.
    pub text: String,
    /// It ends with `&` (runs in the background).
    pub background: bool,
    /// It is a pipeline (`a | b`).
    pub pipeline: bool,
}

impl Command {
    /// The first word (the program or keyword), unquoted.
    pub fn program(&self) -> String {
        self.words().into_iter().next().unwrap_or_default()
    }

    /// The words, split like a shell line (the text itself where it is not).
    pub fn words(&self) -> Vec<String> {
        shlex::split(&self.text)
            .unwrap_or_else(|| self.text.split_whitespace().map(str::to_string).collect())
    }
}

/// The commands of `script`, split at newlines, `;`, `&&`, `||` and `&`
/// outside quotes; comments and line continuations are removed.
pub fn commands(script: &str) -> Vec<Command> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = None;
    let (mut single, mut double, mut pipeline) = (false, false, false);
    let mut chars = script.char_indices().peekable();
    let mut push = |cur: &mut String, start: &mut Option<usize>, bg: bool, pipe: &mut bool| {
        let text = cur.trim().to_string();
        if let (false, Some(s)) = (text.is_empty(), *start) {
            out.push(Command {
                start: s,
                text,
                background: bg,
                pipeline: *pipe,
            });
        }
        cur.clear();
        *start = None;
        *pipe = false;
    };
    while let Some((i, c)) = chars.next() {
        if single {
            single = c != '\'';
        } else if double {
            if c == '\\' {
                cur.push(c);
                if let Some((_, n)) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            double = c != '"';
        } else {
            match c {
                '\'' => single = true,
                '"' => double = true,
                '\\' if chars.peek().map(|&(_, n)| n) == Some('\n') => {
                    chars.next();
                    cur.push(' ');
                    continue;
                }
                '#' if cur.is_empty() || cur.ends_with(char::is_whitespace) => {
                    while chars.peek().is_some_and(|&(_, n)| n != '\n') {
                        chars.next();
                    }
                    continue;
                }
                '\n' | ';' => {
                    push(&mut cur, &mut start, false, &mut pipeline);
                    continue;
                }
                '&' | '|' => {
                    let doubled = chars.peek().map(|&(_, n)| n) == Some(c);
                    if doubled {
                        chars.next();
                    } else if c == '|' {
                        pipeline = true;
                        cur.push(c);
                        continue;
                    }
                    push(&mut cur, &mut start, c == '&' && !doubled, &mut pipeline);
                    continue;
                }
                _ => {}
            }
        }
        if start.is_none() && !c.is_whitespace() {
            start = Some(i);
        }
        cur.push(c);
    }
    push(&mut cur, &mut start, false, &mut pipeline);
    out
}

/// Builtins and keywords that cannot be the app itself.
const NOT_THE_APP: &[&str] = &[
    "echo", "printf", "exit", "true", "false", ":", "set", "export", "cd", "source", ".", "trap",
    "wait", "unset", "shift", "sleep", "fi", "done", "esac", "}", "then", "else", "do", "if",
    "for", "while", "case", "local", "read", "test", "[", "[[", "umask", "ulimit", "return",
];

/// What the end of a script does with the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// The app replaces the shell (`exec app`), or the script forwards
    /// signals itself (`trap … TERM` and `wait`): fine.
    Forwards,
    /// The last command starts the app without `exec`: `exec ` can be put
    /// before it.
    NoExec(Command),
    /// The app runs earlier, then the script goes on (`app; echo done`): the
    /// app is a child; which line to change is for the user.
    AppNotLast(Command),
    /// Nothing to say (ends in a control structure, or no command).
    Unknown,
}

/// Reads how `script` ends.
pub fn tail(script: &str) -> Tail {
    let cmds = commands(script);
    let forwards_itself = cmds
        .iter()
        .any(|c| c.program() == "trap" && (c.text.contains("TERM") || c.text.contains("15")))
        && cmds.iter().any(|c| c.program() == "wait");
    if forwards_itself {
        return Tail::Forwards;
    }
    let Some(last) = cmds.last() else {
        return Tail::Unknown;
    };
    let program = last.program();
    if program == "exec" {
        return Tail::Forwards;
    }
    if matches!(program.as_str(), "fi" | "done" | "esac" | "}" | ")") {
        return Tail::Unknown;
    }
    if !NOT_THE_APP.contains(&program.as_str()) && !is_assignment(&program) {
        return if last.background || last.pipeline {
            Tail::Unknown
        } else {
            Tail::NoExec(last.clone())
        };
    }
    match cmds.iter().rev().find(|c| is_app(c)) {
        Some(app) => Tail::AppNotLast(app.clone()),
        None => Tail::Unknown,
    }
}

fn is_app(c: &Command) -> bool {
    let p = c.program();
    !c.background && !NOT_THE_APP.contains(&p.as_str()) && !is_assignment(&p) && p != "exec"
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The sum of every `sleep N` in a script, if there is one.
pub fn sleep_seconds(script: &str) -> Option<f64> {
    let mut total = None;
    for c in commands(script) {
        let words = c.words();
        if words.first().is_some_and(|p| base_name(p) == "sleep") {
            let n: f64 = words[1..].iter().filter_map(|w| parse_seconds(w)).sum();
            *total.get_or_insert(0.0) += n;
        }
    }
    total
}

/// `/usr/bin/sleep` → `sleep`.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether `program` is a POSIX-ish shell.
pub fn is_shell(program: &str) -> bool {
    matches!(
        base_name(program),
        "sh" | "bash" | "ash" | "dash" | "zsh" | "ksh"
    )
}

/// For `sh -c SCRIPT …` (flags such as `-ec` allowed): the index of SCRIPT.
pub fn dash_c_script(argv: &[String]) -> Option<usize> {
    if !is_shell(argv.first()?) {
        return None;
    }
    let flags = argv[1..].iter().take_while(|a| a.starts_with('-'));
    let mut c_seen = false;
    let mut n = 1;
    for f in flags {
        n += 1;
        if f.len() > 1 && !f.starts_with("--") && f.contains('c') {
            c_seen = true;
            break;
        }
    }
    (c_seen && n < argv.len()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("20"), Some(20.0));
        assert_eq!(parse_seconds("1m30s"), Some(90.0));
        assert_eq!(parse_seconds("500ms"), Some(0.5));
        assert_eq!(parse_seconds("\"240s\""), Some(240.0));
        assert_eq!(parse_seconds("soon"), None);
    }

    #[test]
    fn commands_respect_quotes_and_operators() {
        let c = commands("echo 'a; b' && app --x \"y;z\" # note\nnext &\n");
        let texts: Vec<_> = c.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["echo 'a; b'", "app --x \"y;z\"", "next"]);
        assert!(c[2].background);
        assert_eq!(c[1].start, 15);
    }

    #[test]
    fn tails() {
        assert_eq!(tail("set -e\nexec \"$@\"\n"), Tail::Forwards);
        assert!(
            matches!(tail("cd /app\njava -jar app.jar\n"), Tail::NoExec(c) if c.text == "java -jar app.jar")
        );
        assert!(matches!(tail("echo hi; app; echo bye"), Tail::AppNotLast(c) if c.text == "app"));
        assert_eq!(
            tail("trap 'kill -TERM $p' TERM\napp & p=$!\nwait $p\n"),
            Tail::Forwards
        );
        assert_eq!(tail("if x; then\n exec a\nfi\n"), Tail::Unknown);
    }

    #[test]
    fn sleeps_and_dash_c() {
        assert_eq!(sleep_seconds("curl -X PUT x && sleep 15"), Some(15.0));
        assert_eq!(sleep_seconds("true"), None);
        let argv: Vec<String> = ["/bin/sh", "-ec", "app"].map(String::from).to_vec();
        assert_eq!(dash_c_script(&argv), Some(2));
    }
}
