//! Flash and RAM use of a firmware ELF, and the board's capacity from its
//! `memory.x`.

use anyhow::{anyhow, bail, Context, Result};
use object::{elf, Object, ObjectSection, SectionFlags, SectionKind};
use std::{fmt, path::Path};

/// What an image takes: flash = text + rodata + data (its load image),
/// RAM = data + bss (+ uninit). The stack is not counted.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub flash: u64,
    pub ram: u64,
}

/// Sums the allocated sections of an ELF: the sections placed in RAM (by
/// address, at or above `ram_origin` and below 256 MiB past it, or flagged
/// writable) take RAM; every section with contents takes flash (for .data,
/// its initial values).
pub fn usage(elf_bytes: &[u8], ram_origin: u64) -> Result<Usage> {
    let file = object::File::parse(elf_bytes).context("parsing the ELF")?;
    let mut usage = Usage::default();
    for section in file.sections() {
        let SectionFlags::Elf { sh_flags } = section.flags() else {
            bail!("not an ELF file");
        };
        if sh_flags & u64::from(elf::SHF_ALLOC) == 0 {
            continue;
        }
        let writable = sh_flags & u64::from(elf::SHF_WRITE) != 0;
        let in_ram = writable
            || (section.address() >= ram_origin && section.address() - ram_origin < 1 << 28);
        let nobits = matches!(
            section.kind(),
            SectionKind::UninitializedData | SectionKind::UninitializedTls
        );
        if in_ram {
            usage.ram += section.size();
        }
        if !nobits {
            usage.flash += section.size();
        }
    }
    Ok(usage)
}

/// Address of a symbol, e.g. `ferrite_bench_mark`.
pub fn symbol_address(elf_bytes: &[u8], name: &str) -> Result<Option<u64>> {
    use object::ObjectSymbol;
    let file = object::File::parse(elf_bytes).context("parsing the ELF")?;
    Ok(file
        .symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address()))
}

/// A board's memory, from the FLASH and RAM regions of its `memory.x`.
#[derive(Clone, Copy, Debug)]
pub struct Capacity {
    pub flash: u64,
    pub ram: u64,
    pub ram_origin: u64,
}

pub fn capacity(memory_x: &Path) -> Result<Capacity> {
    let text = std::fs::read_to_string(memory_x)
        .with_context(|| format!("reading {}", memory_x.display()))?;
    let region = |name: &str, field: &str| -> Result<u64> {
        text.lines()
            .map(strip_comment)
            .find(|line| line.trim_start().starts_with(name) && line.contains(field))
            .ok_or_else(|| anyhow!("no {name} {field} in {}", memory_x.display()))
            .and_then(|line| {
                parse_field(line, field)
                    .with_context(|| format!("{name} in {}", memory_x.display()))
            })
    };
    Ok(Capacity {
        flash: region("FLASH", "LENGTH")?,
        ram: region("RAM", "LENGTH")?,
        ram_origin: region("RAM", "ORIGIN")?,
    })
}

fn strip_comment(line: &str) -> &str {
    line.split("/*").next().unwrap_or(line)
}

/// The value after `FIELD =` (ORIGIN or LENGTH): decimal or 0x hex,
/// optionally with K or M.
pub fn parse_field(line: &str, field: &str) -> Result<u64> {
    let after = line
        .split(field)
        .nth(1)
        .ok_or_else(|| anyhow!("no {field}"))?;
    let value = after.trim_start().trim_start_matches('=').trim();
    let value = value.split([',', ' ', '}']).next().unwrap_or(value);
    let (digits, scale) = match value.chars().last() {
        Some('K' | 'k') => (&value[..value.len() - 1], 1024),
        Some('M' | 'm') => (&value[..value.len() - 1], 1024 * 1024),
        _ => (value, 1),
    };
    let number = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => digits.parse(),
    }
    .with_context(|| format!("bad LENGTH {value:?}"))?;
    Ok(number * scale)
}

/// Bytes as KiB with one decimal.
pub struct Kib(pub u64);

impl fmt::Display for Kib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} KiB", self.0 as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_field;

    fn parse_length(line: &str) -> anyhow::Result<u64> {
        parse_field(line, "LENGTH")
    }

    #[test]
    fn lengths() {
        assert_eq!(
            parse_length("  FLASH : ORIGIN = 0x00000000, LENGTH = 256K").unwrap(),
            256 * 1024
        );
        assert_eq!(
            parse_length("RAM : ORIGIN = 0x20000000, LENGTH = 4M").unwrap(),
            4 << 20
        );
        assert_eq!(
            parse_length("RAM : ORIGIN = 0x20000000, LENGTH = 0x4000 }").unwrap(),
            0x4000
        );
        assert_eq!(
            parse_length("RAM (rwx) : ORIGIN = 0, LENGTH = 16384").unwrap(),
            16384
        );
        assert_eq!(
            parse_field("RAM : ORIGIN = 0x20000000, LENGTH = 4M", "ORIGIN").unwrap(),
            0x2000_0000
        );
    }
}
