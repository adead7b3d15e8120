//! Reads a Dockerfile into its instructions, each with the span of its
//! arguments, grouped by build stage. Line continuations, comments inside
//! them and heredocs (`RUN <<EOF`) are handled; nothing is executed.

use crate::source::{SourceFile, Span};

/// One instruction: `CMD ["app"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// The keyword, upper-case.
    pub keyword: String,
    /// The arguments, continuations joined by a space.
    pub args: String,
    /// Where the arguments are in the file (from the first line's first
    /// argument byte to the end of the last line).
    pub args_span: Span,
    /// The span of the whole instruction.
    pub span: Span,
}

impl Instruction {
    /// The exec-form argument list, if the arguments are a JSON array of strings.
    pub fn exec_form(&self) -> Option<Vec<String>> {
        let trimmed = self.args.trim();
        if !trimmed.starts_with('[') {
            return None;
        }
        serde_json::from_str(trimmed).ok()
    }
}

/// One build stage: its FROM and what follows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stage {
    /// The base image or stage (FROM's first non-flag argument).
    pub base: String,
    /// The `AS` name, lower-case.
    pub name: Option<String>,
    /// The instructions after FROM.
    pub instructions: Vec<Instruction>,
}

impl Stage {
    /// The last instruction with `keyword` in this stage.
    pub fn last(&self, keyword: &str) -> Option<&Instruction> {
        self.instructions
            .iter()
            .rev()
            .find(|i| i.keyword == keyword)
    }
}

/// Every stage of a Dockerfile, in order.
pub fn parse(file: &SourceFile) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for inst in instructions(file) {
        if inst.keyword == "FROM" {
            stages.push(stage_of(&inst));
        } else if let Some(stage) = stages.last_mut() {
            stage.instructions.push(inst);
        }
    }
    stages
}

fn stage_of(from: &Instruction) -> Stage {
    let words: Vec<&str> = from.args.split_whitespace().collect();
    let plain: Vec<&str> = words
        .iter()
        .copied()
        .filter(|w| !w.starts_with("--"))
        .collect();
    let name = match plain.as_slice() {
        [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
        _ => None,
    };
    Stage {
        base: plain.first().unwrap_or(&"").to_string(),
        name,
        instructions: Vec::new(),
    }
}

/// Every instruction, FROM included, in order.
pub fn instructions(file: &SourceFile) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut line = 1;
    let total = file.text.lines().count();
    while line <= total {
        let text = file.line_text(line);
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            line += 1;
            continue;
        }
        let first = line;
        let mut args = String::new();
        let mut last = line;
        let mut current = trimmed.to_string();
        loop {
            let continued = current.trim_end().ends_with('\\');
            let piece = if continued {
                current.trim_end().trim_end_matches('\\')
            } else {
                current.as_str()
            };
            if !args.is_empty() {
                args.push(' ');
            }
            args.push_str(piece.trim());
            if !continued || last >= total {
                break;
            }
            last += 1;
            // Comment lines inside a continuation are dropped, as Docker does.
            while last < total && file.line_text(last).trim_start().starts_with('#') {
                last += 1;
            }
            current = file.line_text(last).to_string();
        }
        let (keyword, rest) = split_keyword(&args);
        let start = file.line_start(first) + (text.len() - trimmed.len());
        // The keyword is on the first line, unless that line is only a `\`.
        let after_keyword = trimmed
            .get(keyword.len()..)
            .filter(|_| trimmed.starts_with(&keyword));
        let args_start =
            after_keyword.map_or(start, |a| start + trimmed.len() - a.trim_start().len());
        let end = file.line_start(last) + file.line_text(last).len();
        last = skip_heredocs(file, &rest, last, total);
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: rest,
            args_span: Span::new(args_start.min(end), end),
            span: Span::new(start, end),
        });
        line = last + 1;
    }
    out
}

fn split_keyword(line: &str) -> (String, String) {
    match line.split_once(char::is_whitespace) {
        Some((k, rest)) => (k.to_string(), rest.trim().to_string()),
        None => (line.to_string(), String::new()),
    }
}

/// After `RUN <<EOF …`, the lines up to `EOF` belong to the instruction.
fn skip_heredocs(file: &SourceFile, args: &str, mut last: usize, total: usize) -> usize {
    for word in args.split_whitespace() {
        let Some(tag) = word.strip_prefix("<<") else {
            continue;
        };
        let tag = tag
            .trim_start_matches('-')
            .trim_matches(|c| c == '"' || c == '\'');
        if tag.is_empty() || !tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        while last < total {
            last += 1;
            if file.line_text(last).trim() == tag {
                break;
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::FileKind;

    #[test]
    fn stages_instructions_and_spans() {
        let text = "# syntax\nFROM rust AS build\nRUN cargo \\\n  # note\n  build\nFROM debian\nRUN <<EOF\nCMD not an instruction\nEOF\nCMD [\"app\", \"x\"]\nENTRYPOINT app run\n";
        let f = SourceFile::new("Dockerfile", FileKind::Dockerfile, text);
        let stages = parse(&f);
        assert_eq!(stages.len(), 2);
        assert_eq!(stages[0].name.as_deref(), Some("build"));
        assert_eq!(stages[0].instructions[0].args, "cargo build");
        let cmd = stages[1].last("CMD").unwrap();
        assert_eq!(cmd.exec_form().unwrap(), ["app", "x"]);
        assert_eq!(f.line_col(cmd.args_span.start).line, 10);
        let ep = stages[1].last("ENTRYPOINT").unwrap();
        assert_eq!(f.slice(ep.args_span), "app run");
        assert_eq!(f.line_col(ep.args_span.start).col, 12);
        assert_eq!(
            stages[1].instructions.len(),
            3,
            "the heredoc body is not an instruction"
        );
    }
}
