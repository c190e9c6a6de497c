//! Output files of the `ferrite` commands: checked before the work starts, written all or none, and
//! never a device, FIFO or symlink replaced by a regular file.
//!
//! A path that is a symlink is written through to the file it points to (the link stays). A regular
//! file (or a new one) is written to a temporary file beside it, then renamed into place, so a failure
//! never leaves a half-written file; with several outputs, every temporary file (and every device) is
//! written before the first rename. An existing device or FIFO (`-o /dev/null`) is opened and written
//! directly.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Symlinks followed before giving up (as Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// Where writing `path` goes: the end of its symlink chain.
fn resolve(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let target =
                    fs::read_link(&p).with_context(|| format!("reading link {}", p.display()))?;
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            _ => return Ok(p),
        }
    }
    bail!("{}: too many levels of symbolic links", path.display())
}

/// How an output is written.
enum Kind {
    /// A new or regular file: a temporary file in the same folder, then a rename.
    Replace { dir: PathBuf, name: String },
    /// An existing device or FIFO: opened and written as it is.
    Direct,
}

/// One output path, resolved and classified.
struct Target<'p> {
    given: &'p Path,
    path: PathBuf,
    kind: Kind,
}

impl<'p> Target<'p> {
    fn new(given: &'p Path) -> Result<Self> {
        let path = resolve(given)?;
        if let Ok(m) = fs::metadata(&path) {
            if m.is_dir() {
                bail!("{}: is a folder; give a file path", given.display());
            }
            if !m.is_file() {
                return Ok(Target {
                    given,
                    path,
                    kind: Kind::Direct,
                });
            }
        }
        let name = path
            .file_name()
            .with_context(|| format!("{} is not a file path", given.display()))?
            .to_string_lossy()
            .into_owned();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        if !dir.is_dir() {
            bail!(
                "{}: the folder {} does not exist",
                given.display(),
                dir.display()
            );
        }
        Ok(Target {
            given,
            path,
            kind: Kind::Replace { dir, name },
        })
    }

    /// The temporary file a replaced output is first written to.
    fn temporary(&self, dir: &Path, name: &str) -> PathBuf {
        dir.join(format!(".{name}.tmp{}", std::process::id()))
    }

    /// Creates (and removes) the temporary file: proof that the folder takes the output, without
    /// changing it. A device or FIFO is opened only to write it (opening a FIFO waits for a reader).
    fn probe(&self) -> Result<()> {
        let Kind::Replace { dir, name } = &self.kind else {
            return Ok(());
        };
        let tmp = self.temporary(dir, name);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map(|_| {
                let _ = fs::remove_file(&tmp);
            })
            .with_context(|| {
                format!(
                    "{}: cannot write in {}",
                    self.given.display(),
                    dir.display()
                )
            })
    }
}

/// Checks that every path in `paths` can be written, before the work that produces them starts: its
/// folder exists and accepts a new file, and it is not a folder.
pub fn check(paths: &[&Path]) -> Result<()> {
    for p in paths {
        Target::new(p)?.probe()?;
    }
    Ok(())
}

/// An output being written piece by piece ([`create`]): a temporary file beside it, or a device or
/// FIFO written directly. [`finish_all`] puts the temporary files in place; dropped unfinished, the
/// temporary file is removed and nothing is replaced.
pub struct Pending<'p> {
    target: Target<'p>,
    /// The temporary file, until it is renamed into place.
    tmp: Option<PathBuf>,
    file: std::io::BufWriter<fs::File>,
}

/// Starts writing `path` (see [`Pending`]).
pub fn create(path: &Path) -> Result<Pending<'_>> {
    let target = Target::new(path)?;
    let (open, tmp) = match &target.kind {
        Kind::Replace { dir, name } => {
            let tmp = target.temporary(dir, name);
            (fs::File::create(&tmp), Some(tmp))
        }
        Kind::Direct => (OpenOptions::new().write(true).open(&target.path), None),
    };
    let file = open.with_context(|| format!("writing {}", path.display()))?;
    Ok(Pending {
        target,
        tmp,
        file: std::io::BufWriter::new(file),
    })
}

impl Pending<'_> {
    /// Appends `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .with_context(|| format!("writing {}", self.target.given.display()))
    }

    fn flush(&mut self) -> Result<()> {
        self.file
            .flush()
            .with_context(|| format!("writing {}", self.target.given.display()))
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = fs::remove_file(tmp);
        }
    }
}

/// Puts every output of `files` in place once every one is written in full: all or none of the
/// regular files (see the module documentation).
pub fn finish_all(mut files: Vec<Pending<'_>>) -> Result<()> {
    for f in &mut files {
        f.flush()?;
    }
    for f in &mut files {
        if let Some(tmp) = &f.tmp {
            fs::rename(tmp, &f.target.path)
                .with_context(|| format!("writing {}", f.target.given.display()))?;
            f.tmp = None;
        }
    }
    Ok(())
}

/// Writes `files` (path, bytes): all or none of the regular files (see the module documentation).
pub fn write_all<P: AsRef<Path>, B: AsRef<[u8]>>(files: &[(P, B)]) -> Result<()> {
    let mut pending = Vec::new();
    for (path, bytes) in files {
        let mut p = create(path.as_ref())?;
        p.write(bytes.as_ref())?;
        pending.push(p);
    }
    finish_all(pending)
}

/// Writes one file (see [`write_all`]).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_all(&[(path, bytes)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.bin");
        fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.bin");
        std::os::unix::fs::symlink("real.bin", &link).unwrap();
        write(&link, b"new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read(&target).unwrap(), b"new");
    }

    #[test]
    fn a_device_is_written_directly() {
        let null = Path::new("/dev/null");
        check(&[null]).unwrap();
        write(null, b"bytes").unwrap();
        assert!(!fs::metadata(null).unwrap().is_file());
    }

    #[test]
    fn nothing_is_written_when_one_output_fails() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.bin");
        let bad = dir.path().join("missing/b.bin");
        let e = check(&[&good, &bad]).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        assert!(write_all(&[(&good, b"a"), (&bad, b"b")]).is_err());
        assert!(!good.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
        // A device that fails when written (`/dev/full`: no space left) after a regular file.
        let full = Path::new("/dev/full");
        let e = write_all(&[(good.as_path(), &b"a"[..]), (full, b"b")]).unwrap_err();
        assert!(format!("{e:#}").contains("/dev/full"), "{e:#}");
        assert!(!good.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
