//! Where each layer's instructions go (`cargo xtask bench --profile`): the qemu-insncount plugin's
//! per-block histogram (`hist=FILE`: block address, instructions, region, executions) summed per
//! function of the firmware's symbol table. Code inlined into a function counts as that function.

use anyhow::{anyhow, Context, Result};
use object::{Object, ObjectSymbol, SymbolKind};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The region of the histogram in which step `step` of the model runs: the firmware marks twice
/// for calibration, once before the invoke and before and after each operator, and a region is
/// the number of marks seen.
pub fn region_of_step(step: usize) -> usize {
    2 * step + 4
}

/// Regions the plugin tells apart: later marks all fall into the last one.
const REGIONS: usize = 128;

/// Instructions per function and region: `regions[r]` lists `(instructions, function)` for region
/// `r`, most first.
pub struct Profile {
    regions: BTreeMap<usize, Vec<(u64, String)>>,
}

impl Profile {
    /// Attributes the histogram `hist` to the functions of the ELF `elf` (addresses without the
    /// Thumb bit; an address outside every function is named by itself).
    pub fn attribute(hist: &str, elf: &[u8]) -> Result<Profile> {
        let file = object::File::parse(elf).context("parsing the ELF")?;
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .map(|s| {
                let name = crate::size_report::demangle(s.name().unwrap_or_default());
                (s.address() & !1, s.size(), name)
            })
            .collect();
        functions.sort();
        Self::of_functions(hist, &functions)
    }

    /// [`Profile::attribute`] with the functions given as `(start, size, name)`, sorted by start.
    fn of_functions(hist: &str, functions: &[(u64, u64, String)]) -> Result<Profile> {
        let mut sums: BTreeMap<usize, BTreeMap<String, u64>> = BTreeMap::new();
        for line in hist.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let parse = |i: usize, radix| {
                fields
                    .get(i)
                    .and_then(|f| u64::from_str_radix(f.trim_start_matches("0x"), radix).ok())
                    .ok_or_else(|| anyhow!("bad histogram line {line:?}"))
            };
            let (address, insns, region, count) =
                (parse(0, 16)?, parse(1, 10)?, parse(2, 10)?, parse(3, 10)?);
            let at = functions.partition_point(|f| f.0 <= address);
            let name = match at.checked_sub(1).map(|i| &functions[i]) {
                Some((start, size, name)) if address < start + size => name.clone(),
                _ => format!("{address:#x}"),
            };
            *sums
                .entry(region as usize)
                .or_default()
                .entry(name)
                .or_default() += insns * count;
        }
        let regions = sums
            .into_iter()
            .map(|(region, names)| {
                let mut list: Vec<(u64, String)> = names.into_iter().map(|(n, v)| (v, n)).collect();
                list.sort_by(|a, b| b.cmp(a));
                (region, list)
            })
            .collect();
        Ok(Profile { regions })
    }

    /// The functions of model step `step`, most instructions first (none past the plugin's regions).
    pub fn step(&self, step: usize) -> &[(u64, String)] {
        let region = region_of_step(step);
        if region >= REGIONS - 1 {
            return &[];
        }
        self.regions.get(&region).map_or(&[], Vec::as_slice)
    }
}

/// A Markdown table of the `top` functions of each layer (`(name, op)` per step).
pub fn table(profile: &Profile, layers: &[(String, &str)], top: usize) -> String {
    let mut s = String::from("| # | layer | op | function | instructions | share of the layer |\n");
    s.push_str("|---:|---|---|---|---:|---:|\n");
    for (step, (name, op)) in layers.iter().enumerate() {
        let functions = profile.step(step);
        if functions.is_empty() && region_of_step(step) >= REGIONS - 1 {
            let _ = writeln!(
                s,
                "| {step} | {name} | {op} | (past the plugin's {REGIONS} regions) | - | - |"
            );
            continue;
        }
        let total: u64 = functions.iter().map(|f| f.0).sum();
        for (k, (insns, function)) in functions.iter().take(top).enumerate() {
            let (step, name, op) = if k == 0 {
                (step.to_string(), name.as_str(), *op)
            } else {
                (String::new(), "", "")
            };
            let share = 100.0 * *insns as f64 / total.max(1) as f64;
            let _ = writeln!(
                s,
                "| {step} | {name} | {op} | `{function}` | {insns} | {share:.1}% |"
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_summed_per_function_and_region() {
        let functions = [
            (0x100, 0x20, "a".to_string()),
            (0x200, 0x10, "b".to_string()),
        ];
        // Region 4 is step 0, region 6 step 1; 0x1f0 lies between the two functions.
        let hist = "0x100 5 4 10\n0x110 2 4 3\n0x200 4 4 1\n0x204 3 6 7\n0x1f0 1 6 2\n";
        let p = Profile::of_functions(hist, &functions).unwrap();
        assert_eq!(p.step(0), [(56, "a".to_string()), (4, "b".to_string())]);
        assert_eq!(p.step(1), [(21, "b".to_string()), (2, "0x1f0".to_string())]);
        assert!(p.step(2).is_empty());
        assert!(Profile::of_functions("0x100 5", &functions).is_err());
    }
}
