//! `--fix` and `--diff`: the findings' edits applied as text edits at their
//! spans, so comments, quoting and layout stay as they were; and a unified
//! diff of the result.

use std::collections::BTreeMap;

use crate::rules::{Edit, Finding};
use crate::SourceFile;

/// The new text of each file that changes, by file index.
pub fn apply(files: &[SourceFile], findings: &[Finding]) -> BTreeMap<usize, String> {
    let mut by_file: BTreeMap<usize, Vec<&Edit>> = BTreeMap::new();
    for edit in findings.iter().filter_map(|f| f.edit.as_ref()) {
        by_file.entry(edit.file).or_default().push(edit);
    }
    by_file
        .into_iter()
        .map(|(i, edits)| (i, apply_one(&files[i].text, edits)))
        .collect()
}

/// Applies edits back to front. Two edits of the same span keep the larger
/// number (two rules raising one grace period) or the first; an edit that
/// overlaps one already taken is skipped.
fn apply_one(text: &str, mut edits: Vec<&Edit>) -> String {
    edits.sort_by(|a, b| {
        b.span
            .start
            .cmp(&a.span.start)
            .then(b.span.end.cmp(&a.span.end))
    });
    let mut chosen: Vec<&Edit> = Vec::new();
    for e in edits {
        match chosen.last_mut() {
            Some(last) if last.span == e.span => {
                if let (Ok(a), Ok(b)) = (last.text.parse::<i64>(), e.text.parse::<i64>()) {
                    if b > a {
                        *last = e;
                    }
                }
            }
            Some(last) if e.span.end > last.span.start => {}
            _ => chosen.push(e),
        }
    }
    let mut out = text.to_string();
    for e in chosen {
        if e.span.end <= out.len()
            && out.is_char_boundary(e.span.start)
            && out.is_char_boundary(e.span.end)
        {
            out.replace_range(e.span.start..e.span.end, &e.text);
        }
    }
    out
}

/// A unified diff (3 lines of context) from `old` to `new`.
pub fn diff(path: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = line_ops(&a, &b);
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| !matches!(o, Op::Same(..)))
        .map(|(i, _)| i)
        .collect();
    let mut i = 0;
    while i < changed.len() {
        let first = changed[i].saturating_sub(3);
        let mut last = changed[i];
        while i + 1 < changed.len() && changed[i + 1] <= last + 7 {
            i += 1;
            last = changed[i];
        }
        let last = (last + 3).min(ops.len() - 1);
        let (a0, b0) = position(&ops[..first]);
        let (alen, blen) = position(&ops[first..=last]);
        out.push_str(&format!("@@ -{},{alen} +{},{blen} @@\n", a0 + 1, b0 + 1));
        for op in &ops[first..=last] {
            match op {
                Op::Same(l) => out.push_str(&format!(" {l}\n")),
                Op::Del(l) => out.push_str(&format!("-{l}\n")),
                Op::Add(l) => out.push_str(&format!("+{l}\n")),
            }
        }
        i += 1;
    }
    out
}

enum Op<'a> {
    Same(&'a str),
    Del(&'a str),
    Add(&'a str),
}

fn position(ops: &[Op<'_>]) -> (usize, usize) {
    ops.iter().fold((0, 0), |(a, b), op| match op {
        Op::Same(_) => (a + 1, b + 1),
        Op::Del(_) => (a + 1, b),
        Op::Add(_) => (a, b + 1),
    })
}

/// Line operations by longest common subsequence, after trimming the common
/// head and tail (fixes change few lines, so the middle stays small).
fn line_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (ma, mb) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut lcs = vec![vec![0u32; mb.len() + 1]; ma.len() + 1];
    for i in (0..ma.len()).rev() {
        for j in (0..mb.len()).rev() {
            lcs[i][j] = if ma[i] == mb[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<Op<'a>> = a[..head].iter().map(|l| Op::Same(l)).collect();
    let (mut i, mut j) = (0, 0);
    while i < ma.len() || j < mb.len() {
        if i < ma.len() && j < mb.len() && ma[i] == mb[j] {
            ops.push(Op::Same(ma[i]));
            i += 1;
            j += 1;
        } else if i < ma.len() && (j == mb.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(Op::Del(ma[i]));
            i += 1;
        } else {
            ops.push(Op::Add(mb[j]));
            j += 1;
        }
    }
    ops.extend(a[a.len() - tail..].iter().map(|l| Op::Same(l)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_shows_the_changed_line_with_context() {
        let d = diff("f", "a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    }
}
