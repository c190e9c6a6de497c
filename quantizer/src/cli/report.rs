//! `ferrite report R.json -o report.html|report.svg`: a quantization report (`ferrite quantize
//! --json=R.json`) drawn as one self-contained HTML page or one SVG document ([`crate::report`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::report::{self, Report};

#[derive(clap::Args)]
pub struct Args {
    /// Quantization report: the JSON document of `ferrite quantize --json=FILE`.
    pub report: PathBuf,
    /// Output: `.html` (or `.htm`), a page with the charts as inline SVG and the search as a table,
    /// or `.svg`, one picture of everything. Written in full or not at all.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
}

/// What the output's extension asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Html,
    Svg,
}

fn format(path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    Ok(match ext.as_str() {
        "html" | "htm" => Format::Html,
        "svg" => Format::Svg,
        _ => bail!(
            "{}: unsupported output type `.{ext}` (supported: .html, .htm, .svg)",
            path.display()
        ),
    })
}

/// Reads and checks the quantization report at `path`.
pub fn read(path: &Path) -> Result<Report> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8(text)
        .map_err(|_| anyhow::anyhow!("{}: not JSON (not UTF-8 text)", path.display()))?;
    Report::parse(&text).with_context(|| path.display().to_string())
}

pub fn run(args: &Args) -> Result<()> {
    let format = format(&args.output)?;
    crate::output::check(&[&args.output])?;
    let r = read(&args.report)?;
    let doc = match format {
        Format::Html => report::html(&r)?,
        Format::Svg => report::svg(&r)?,
    };
    crate::output::write(&args.output, doc.as_bytes())?;
    outln!(
        "{} -> {}: {} layers, {} histograms{}",
        args.report.display(),
        args.output.display(),
        r.layers.len(),
        r.values.iter().filter(|v| v.histogram.is_some()).count(),
        r.search.as_ref().map_or(String::new(), |s| format!(
            ", {} search steps",
            s.steps.len()
        ))
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_chooses_the_document() {
        assert_eq!(format(Path::new("a/r.HTML")).unwrap(), Format::Html);
        assert_eq!(format(Path::new("r.htm")).unwrap(), Format::Html);
        assert_eq!(format(Path::new("r.svg")).unwrap(), Format::Svg);
        for bad in ["r.png", "r", "r.json"] {
            let e = format(Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains(".html, .htm, .svg"), "{e}");
        }
    }
}
