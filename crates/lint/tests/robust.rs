//! Bad input gets an error or nothing, never a panic: arbitrary text and
//! every truncation of the corpus files, as YAML, Dockerfile and script.

use lameduck_lint::{fix, lint, FileKind, Options, SourceFile};
use proptest::prelude::*;

fn lint_as_everything(text: &str) {
    for kind in [FileKind::Yaml, FileKind::Dockerfile, FileKind::Script] {
        let r = lint(vec![SourceFile::new("x", kind, text)], &Options::default());
        let _ = lameduck_lint::output::human(&r);
        let _ = lameduck_lint::output::sarif(&r);
        let _ = fix::apply(&r.files, &r.findings);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arbitrary_text_never_panics(text in "(?s).{0,400}") {
        lint_as_everything(&text);
    }

    #[test]
    fn yamlish_text_never_panics(text in "([a-z:\\-\\[\\]{}&*<>|'\" #\\n]|  |sh|-c|sleep 5|exec|CMD|FROM){0,120}") {
        lint_as_everything(&text);
    }
}

#[test]
fn every_truncation_of_the_corpus_lints_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for sub in ["helm", "docker"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("corpus") {
            let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
            for cut in (0..text.len())
                .step_by(7)
                .filter(|&c| text.is_char_boundary(c))
            {
                lint_as_everything(&text[..cut]);
            }
        }
    }
}
