//! Gathers the files to lint: paths as given, directories walked (YAML,
//! Dockerfiles and `*entrypoint*.sh` scripts), `-` for stdin, and the
//! scripts a Dockerfile copies in and runs, read from next to it.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::dockerfile;
use crate::launch::Launch;
use crate::source::{FileKind, SourceFile};

/// An input that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A path that is neither a file, nor a directory, nor `-`.
    #[error("{0}: no such file or directory")]
    Missing(String),
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Files and directories; `-` is stdin (read as YAML).
    pub paths: Vec<PathBuf>,
    /// Files read as Dockerfiles whatever their name.
    pub dockerfiles: Vec<PathBuf>,
}

/// Reads every input; the scripts that Dockerfiles run are added after them.
pub fn read(inputs: &Inputs) -> Result<Vec<SourceFile>, InputError> {
    let mut files = Vec::new();
    for path in &inputs.paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| InputError::Read {
                    path: "<stdin>".into(),
                    source,
                })?;
            let kind = sniff(&text).unwrap_or(FileKind::Yaml);
            files.push(SourceFile::new("<stdin>", kind, text));
        } else if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            let kind = kind_by_name(path)
                .or_else(|| sniff(&read_text(path).ok()?))
                .unwrap_or(FileKind::Yaml);
            files.push(load(path, kind)?);
        } else {
            return Err(InputError::Missing(path.display().to_string()));
        }
    }
    for path in &inputs.dockerfiles {
        files.push(load(path, FileKind::Dockerfile)?);
    }
    add_entrypoint_scripts(&mut files);
    Ok(files)
}

fn read_text(path: &Path) -> Result<String, InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn load(path: &Path, kind: FileKind) -> Result<SourceFile, InputError> {
    Ok(SourceFile::new(
        path.display().to_string(),
        kind,
        read_text(path)?,
    ))
}

/// The kind a file's name says, if it says one.
pub fn kind_by_name(path: &Path) -> Option<FileKind> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    if name == "dockerfile"
        || name == "containerfile"
        || name.starts_with("dockerfile.")
        || name.ends_with(".dockerfile")
    {
        Some(FileKind::Dockerfile)
    } else if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") {
        Some(FileKind::Yaml)
    } else if name.ends_with(".sh") {
        Some(FileKind::Script)
    } else {
        None
    }
}

/// The kind the text says: a shebang is a script, a FROM line a Dockerfile.
fn sniff(text: &str) -> Option<FileKind> {
    if text.starts_with("#!") {
        return Some(FileKind::Script);
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    let word = first.split_whitespace().next()?;
    (word.eq_ignore_ascii_case("FROM") || word.eq_ignore_ascii_case("ARG"))
        .then_some(FileKind::Dockerfile)
}

fn walk(dir: &Path, files: &mut Vec<SourceFile>) -> Result<(), InputError> {
    let err = |source| InputError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.') || n == "target");
        if hidden {
            continue;
        }
        if path.is_dir() {
            // A chart's templates are Go templates, not YAML: lint the
            // output of `helm template` instead.
            let chart_templates = dir.join("Chart.yaml").is_file() && path.ends_with("templates");
            if !chart_templates {
                walk(&path, files)?;
            }
            continue;
        }
        // JSON is read when named, not when walked (package.json and the like).
        let kind = kind_by_name(&path).filter(|_| path.extension().is_none_or(|e| e != "json"));
        let entrypoint = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains("entrypoint"));
        match kind {
            Some(FileKind::Script) if !entrypoint => {}
            Some(kind) => files.push(load(&path, kind)?),
            None => {}
        }
    }
    Ok(())
}

/// For each Dockerfile: the script its final stage runs (ENTRYPOINT or CMD,
/// after an init or `lameduck run --`), if a COPY/ADD put it there from a
/// file next to the Dockerfile that is not in the input yet.
fn add_entrypoint_scripts(files: &mut Vec<SourceFile>) {
    let mut extra = Vec::new();
    for f in files
        .iter()
        .filter(|f| f.kind == FileKind::Dockerfile && f.path != "<stdin>")
    {
        let Some(script) = entrypoint_source(f) else {
            continue;
        };
        let known = files
            .iter()
            .chain(&extra)
            .any(|g: &SourceFile| same_path(Path::new(&g.path), &script));
        if !known {
            if let Ok(s) = load(&script, FileKind::Script) {
                extra.push(s);
            }
        }
    }
    files.extend(extra);
}

fn same_path(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The local path of the script a Dockerfile's final stage runs.
pub fn entrypoint_source(f: &SourceFile) -> Option<PathBuf> {
    let stages = dockerfile::parse(f);
    let stage = stages.last()?;
    let mut argv: Vec<String> = stage
        .last("ENTRYPOINT")
        .and_then(|i| i.exec_form())
        .unwrap_or_default();
    argv.extend(
        stage
            .last("CMD")
            .and_then(|i| i.exec_form())
            .unwrap_or_default(),
    );
    let launch = Launch::read(argv);
    let program = launch.app_argv().first()?.clone();
    let dir = Path::new(&f.path).parent().unwrap_or(Path::new("."));
    for inst in stage
        .instructions
        .iter()
        .filter(|i| (i.keyword == "COPY" || i.keyword == "ADD") && !i.args.contains("--from"))
    {
        let words: Vec<&str> = inst
            .args
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let [sources @ .., dest] = words.as_slice() else {
            continue;
        };
        for src in sources {
            let Some(base) = Path::new(src).file_name().and_then(|b| b.to_str()) else {
                continue;
            };
            let lands = *dest == program
                || (dest.ends_with('/') && format!("{dest}{base}") == program)
                || (program.ends_with(base) && program.starts_with(dest.trim_end_matches('/')));
            if lands {
                let path = dir.join(src);
                if path.is_file() {
                    return Some(path);
                }
            }
        }
    }
    None
}
