//! `cargo xtask completions [--out DIR]` and `cargo xtask man [--out DIR]`: shell completions (bash,
//! zsh, fish) and manual pages (`ferrite.1`, one per subcommand) of the `ferrite` CLI, generated from
//! its clap definition.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap_complete::Shell;

/// Where to write.
#[derive(clap::Args)]
pub struct Options {
    /// Directory to write the files into, created if missing (default: `target/completions` or
    /// `target/man`).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// `cargo xtask completions`.
pub fn completions(root: &Path, options: &Options) -> Result<()> {
    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/completions"));
    for path in write_completions(&dir)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// `cargo xtask man`.
pub fn man(root: &Path, options: &Options) -> Result<()> {
    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/man"));
    for path in write_man(&dir)? {
        println!("{}", path.display());
    }
    Ok(())
}

/// Writes the bash, zsh and fish completions of `ferrite` into `dir`; returns the files written.
pub fn write_completions(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut cmd = ferrite_quantizer::cli::command();
            clap_complete::generate_to(shell, &mut cmd, "ferrite", dir)
                .with_context(|| format!("writing the {shell} completions into {}", dir.display()))
        })
        .collect()
}

/// Writes `ferrite.1` and a page per subcommand into `dir`; returns the files written.
pub fn write_man(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(ferrite_quantizer::cli::command(), dir)
        .with_context(|| format!("writing manual pages into {}", dir.display()))?;
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    pages.retain(|p| p.extension().is_some_and(|e| e == "1"));
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subcommands() -> Vec<String> {
        let names: Vec<String> = ferrite_quantizer::cli::command()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        assert!(names.len() >= 6, "{names:?}");
        names
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn completions_of_every_shell_name_every_subcommand() {
        let dir = scratch("completions");
        let files = write_completions(&dir).unwrap();
        assert_eq!(files.len(), 3);
        for file in &files {
            let text = std::fs::read_to_string(file).unwrap();
            assert!(!text.trim().is_empty(), "{} is empty", file.display());
            for sub in subcommands() {
                assert!(text.contains(&sub), "{} lacks {sub}", file.display());
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_manual_names_every_subcommand_and_each_has_a_page() {
        let dir = scratch("man");
        let pages = write_man(&dir).unwrap();
        let main = std::fs::read_to_string(dir.join("ferrite.1")).unwrap();
        for sub in subcommands() {
            assert!(main.contains(&sub), "ferrite.1 lacks {sub}");
            let page = dir.join(format!("ferrite-{sub}.1"));
            assert!(
                pages.contains(&page),
                "{} missing: {pages:?}",
                page.display()
            );
            let text = std::fs::read_to_string(&page).unwrap();
            assert!(
                text.contains(&sub) && text.contains(".SH"),
                "{}",
                page.display()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
