//! Tidy checks: rules of the house style that a machine can hold us to.
//!
//! Every Rust file opens with a `//!` line saying what it is for, no file
//! carries the markers of unfinished work, and no crate takes a dependency
//! that `docs/ARCHITECTURE.md` forbids it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// The markers that mean unfinished work, built so that this file does not
/// trip over its own list.
fn markers() -> [String; 4] {
    [
        ["todo", "!("].concat(),
        ["unimplemented", "!("].concat(),
        ["dbg", "!("].concat(),
        ["#[", "ignore]"].concat(),
    ]
}

/// Checks every tracked Rust file below `root`.
///
/// # Errors
/// One error listing every file that breaks a rule.
pub(crate) fn check(root: &Path) -> anyhow::Result<()> {
    let mut problems = file_problems(root)?;
    problems.extend(forbidden_dependencies(root)?);
    if !problems.is_empty() {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
}

/// Returns a problem for each Rust file below `root` that breaks a rule.
fn file_problems(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for path in rust_files(root)? {
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let shown = path.strip_prefix(root).unwrap_or(&path).display().to_string();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{shown}: does not open with a `//!` doc line"));
        }
        for marker in markers() {
            if text.contains(&marker) {
                problems.push(format!("{shown}: holds `{marker}`"));
            }
        }
    }
    Ok(problems)
}

/// For each crate, the dependencies its architecture invariants forbid.
const FORBIDDEN: &[(&str, &[&str])] = &[
    (
        "crates/domain",
        &["tokio", "reqwest", "mongodb", "rusqlite", "tracing-subscriber", "ports", "app"],
    ),
    ("crates/ports", &["tokio", "reqwest", "mongodb", "bson", "rusqlite", "app", "adapters-"]),
    (
        "crates/adapters-authentik",
        &["mongodb", "rusqlite", "tracing-subscriber", "app", "adapters-"],
    ),
    ("crates/adapters-sqlite", &["reqwest", "mongodb", "tracing-subscriber", "app", "adapters-"]),
    ("crates/adapters-mongo", &["reqwest", "rusqlite", "tracing-subscriber", "app", "adapters-"]),
    ("xtask", &["domain", "ports", "app", "adapters-"]),
];

/// Returns a problem for each forbidden dependency a crate's manifest names
/// outside its dev-dependencies.
fn forbidden_dependencies(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    for (krate, forbidden) in FORBIDDEN {
        let manifest = root.join(krate).join("Cargo.toml");
        let text = fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        for name in dependency_names(&text) {
            let hit = forbidden
                .iter()
                .any(|bad| if bad.ends_with('-') { name.starts_with(bad) } else { name == *bad });
            if hit {
                problems.push(format!(
                    "{krate}: depends on `{name}`, which docs/ARCHITECTURE.md forbids"
                ));
            }
        }
    }
    Ok(problems)
}

/// The names in a manifest's `[dependencies]` and `[build-dependencies]`.
fn dependency_names(manifest: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = matches!(line, "[dependencies]" | "[build-dependencies]");
        } else if in_dependencies && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            names.push(name);
        }
    }
    names
}

fn rust_files(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_passes_tidy() {
        check(&crate::root()).unwrap();
    }

    #[test]
    fn dependency_names_skip_dev_dependencies() {
        let manifest = "[package]\nname = \"x\"\n[dependencies]\ntokio.workspace = true\nserde = \"1\"\n[dev-dependencies]\nwiremock = \"0.6\"\n";

        assert_eq!(dependency_names(manifest), ["tokio", "serde"]);
    }

    #[test]
    fn tidy_rejects_a_file_without_a_module_doc() {
        let dir = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("bad.rs"), "fn main() {}\n").unwrap();

        let problems = file_problems(&dir).unwrap();

        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("bad.rs"), "{problems:?}");
    }
}
