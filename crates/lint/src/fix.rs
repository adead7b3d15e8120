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

/// Line operations: equal lines are walked in step; at a difference, the
/// nearest point where both texts agree again (for 3 lines, or to their
/// ends) is searched within a small window. Fixes change a line or insert
/// one, so this finds the minimal diff without an O(n·m) table, even for a
/// stream of thousands of objects with an edit in each.
fn line_ops<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Op<'a>> {
    const WINDOW: usize = 40;
    let agree = |i: usize, j: usize| (0..3).all(|k| a.get(i + k) == b.get(j + k));
    let mut ops = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push(Op::Same(a[i]));
            i += 1;
            j += 1;
            continue;
        }
        let resync = (1..=WINDOW)
            .flat_map(|k| (0..=k).map(move |di| (di, k - di)))
            .find(|&(di, dj)| i + di <= a.len() && j + dj <= b.len() && agree(i + di, j + dj));
        let (di, dj) = resync.unwrap_or((a.len() - i, b.len() - j));
        ops.extend(a[i..i + di].iter().map(|l| Op::Del(l)));
        ops.extend(b[j..j + dj].iter().map(|l| Op::Add(l)));
        i += di;
        j += dj;
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_of_an_inserted_line_and_a_big_file_stays_small() {
        let old: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
        let new = old.replace("line 10000\n", "line 10000\ninserted\n");
        let d = diff("f", &old, &new);
        assert_eq!(
            d.lines()
                .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
                .count(),
            1
        );
        assert!(d.contains("@@ -9999,6 +9999,7 @@"), "{d}");
    }

    #[test]
    fn diff_shows_the_changed_line_with_context() {
        let d = diff("f", "a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    }
}
