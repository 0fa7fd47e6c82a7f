//! Tidy checks: rules of the house style that a machine can hold us to.
//!
//! Every Rust file opens with a `//!` line saying what it is for, and no
//! file carries the markers of unfinished work.

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
    if !problems.is_empty() {
        bail!("tidy found {} problem(s):\n  {}", problems.len(), problems.join("\n  "));
    }
    Ok(())
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
    fn tidy_rejects_a_file_without_a_module_doc() {
        let dir = std::env::temp_dir().join(format!("xtask-tidy-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("bad.rs"), "fn main() {}\n").unwrap();

        let result = check(&dir);

        fs::remove_dir_all(&dir).unwrap();
        assert!(result.unwrap_err().to_string().contains("bad.rs"));
    }
}
