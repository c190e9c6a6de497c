//! Decoding the firmware's defmt frames with the defmt table of its ELF.

use anyhow::{anyhow, Context, Result};
use defmt_decoder::{DecodeError, Table};

/// Decodes `stream` (rzCOBS or raw defmt frames) into log lines
/// `LEVEL message (file:line)`. Bytes that do not decode become a note.
pub fn decode(elf_bytes: &[u8], stream: &[u8]) -> Result<Vec<String>> {
    let table = Table::parse(elf_bytes)
        .context("reading the defmt table")?
        .ok_or_else(|| anyhow!("the ELF has no defmt table (.defmt section)"))?;
    let locations = table.get_locations(elf_bytes).unwrap_or_default();
    let mut decoder = table.new_stream_decoder();
    decoder.received(stream);
    let mut lines = Vec::new();
    let mut malformed = 0usize;
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let level = frame
                    .level()
                    .map(|l| l.as_str().to_uppercase())
                    .unwrap_or_else(|| "PRINT".into());
                let mut line = format!("{level:<5} {}", frame.display_message());
                if let Some(at) = locations.get(&frame.index()) {
                    let file = at
                        .file
                        .file_name()
                        .map(|f| f.to_string_lossy())
                        .unwrap_or_default();
                    line.push_str(&format!("  ({file}:{})", at.line));
                }
                lines.push(line);
            }
            Err(DecodeError::UnexpectedEof) => break,
            Err(DecodeError::Malformed) => malformed += 1,
        }
    }
    if malformed > 0 {
        lines.push(format!(
            "(xtask: {malformed} malformed defmt frame(s) skipped)"
        ));
    }
    Ok(lines)
}
