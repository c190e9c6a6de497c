//! The two documents `ferrite report` writes: one SVG picture of everything, or an HTML page with
//! a header, the charts as inline SVG and the search as an HTML table. Every text from the report
//! is escaped (plotters escapes what it draws; [`escape`] the rest).

use std::fmt::Write;

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{self, drawing, Area, Layout, Table};
use super::{Report, Score, Search};

/// Longest line of the settings in the header, and of a table cell, in characters.
const WRAP: usize = 100;
const CELL: usize = 48;

/// `text` with the characters that mean something in XML and HTML written as entities.
pub fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '&' => s.push_str("&amp;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

/// `items` joined by `sep` in lines of at most `width` characters (an item longer than that alone
/// on its line).
fn wrap(items: &[String], sep: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for item in items {
        match lines.last_mut() {
            Some(l) if l.chars().count() + sep.len() + item.chars().count() <= width => {
                l.push_str(sep);
                l.push_str(item);
            }
            Some(l) => {
                l.push_str(sep.trim_end());
                lines.push(item.clone());
            }
            None => lines.push(item.clone()),
        }
    }
    lines
}

/// Bytes with thousands separators.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

fn or_dash(v: Option<u64>) -> String {
    v.map_or("-".into(), thousands)
}

/// A model's scores: top-1 (when measured) and SQNR.
fn score(s: &Score) -> String {
    let top1 = s
        .top1
        .map_or(String::new(), |t| format!("top-1 {:.2}%, ", 100.0 * t));
    format!("{top1}SQNR {}", draw::db(s.sqnr_db))
}

/// The search's target and outcome in one line.
fn search_line(s: &Search) -> String {
    let target = match (s.metric.as_str(), s.target) {
        ("top1", Some(t)) => format!("a top-1 drop of at most {t} points"),
        ("sqnr", Some(t)) => format!("an output SQNR of at least {t} dB"),
        (m, t) => format!("{m} {}", t.map_or("?".into(), |t| t.to_string())),
    };
    let on = s
        .validation_samples
        .map_or(String::new(), |n| format!(" on {n} validation samples"));
    let float = s.float_top1.map_or(String::new(), |t| {
        format!(" (float model top-1 {:.2}%)", 100.0 * t)
    });
    let outcome = match s.met {
        Some(true) => "met",
        Some(false) => "not met",
        None => "outcome not recorded",
    };
    let wide = s.chosen_macs.map(|m| m.int16 + m.float).or(s.float_macs);
    let macs = match (wide, s.macs) {
        (Some(f), Some(m)) => format!(" ({} of {} MACs)", thousands(f), thousands(m)),
        _ => String::new(),
    };
    format!(
        "Accuracy control: {target}{on}{float}: {outcome}, {} layer(s) in int16x8 and {} in float{macs}",
        s.int16_layers.len(),
        s.float_layers.len()
    )
}

/// The header: a title line, then the model's facts and settings.
pub(super) fn header(r: &Report) -> Vec<String> {
    let mut lines = vec![format!(
        "Quantization report: {}",
        r.model.as_deref().unwrap_or("(model not named)")
    )];
    let mut facts = Vec::new();
    if let Some(o) = &r.output {
        facts.push(format!("output {o}"));
    }
    if let Some(b) = r.ferrite_bytes {
        facts.push(format!("{} bytes", thousands(b)));
    }
    if let Some(b) = r.arena_bytes {
        facts.push(format!("arena {} bytes", thousands(b)));
    }
    if let Some(n) = r.calibration_samples {
        facts.push(format!("{n} calibration samples"));
    }
    let counts: Vec<String> = r
        .precision_counts()
        .iter()
        .map(|(p, n)| format!("{n} {}", p.name()))
        .collect();
    facts.push(format!("{} layers ({})", r.layers.len(), counts.join(", ")));
    lines.push(facts.join(", "));
    let settings: Vec<String> = r
        .settings
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    if !settings.is_empty() {
        let mut wrapped = wrap(&settings, "; ", WRAP);
        wrapped[0].insert_str(0, "settings: ");
        lines.extend(wrapped);
    }
    if let Some(s) = &r.search {
        lines.push(search_line(s));
    }
    lines
}

/// The accuracy-control search as a table: one row per step.
pub(super) fn table(s: &Search) -> Table {
    let rows = s
        .rows()
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let st = row.step;
            let moved = st
                .moved
                .clone()
                .unwrap_or_else(|| "(none: the int8 model)".into());
            let layers: Vec<String> = row.moved_layers.iter().map(|l| l.to_string()).collect();
            let before = row.before.as_ref().map_or("-".into(), score);
            let result = if st.moved.is_none() && row.before.is_none() {
                "start"
            } else if st.kept {
                "kept"
            } else {
                "taken back"
            };
            let to = if st.moved.is_none() {
                "-".into()
            } else {
                st.to.clone().unwrap_or_else(|| "float32".into())
            };
            let flash = match (st.ferrite_bytes, row.before_bytes) {
                (Some(b), Some(a)) => {
                    let d = b as i64 - a as i64;
                    format!(
                        "{} ({}{})",
                        thousands(b),
                        if d < 0 { "-" } else { "+" },
                        thousands(d.unsigned_abs())
                    )
                }
                (b, _) => or_dash(b),
            };
            vec![
                vec![i.to_string()],
                vec![moved],
                if layers.is_empty() {
                    vec!["-".into()]
                } else {
                    wrap(&layers, ", ", CELL)
                },
                vec![to],
                vec![before],
                vec![score(&st.score)],
                vec![result.into()],
                vec![flash],
                vec![or_dash(st.arena_bytes)],
                vec![or_dash(st.wide_macs())],
                vec![or_dash(st.estimated_m4f_instructions)],
            ]
        })
        .collect();
    Table {
        header: vec![
            "step",
            "tensor moved",
            "layers moved",
            "to",
            "before",
            "after",
            "result",
            "flash bytes",
            "arena bytes",
            "MACs out of int8",
            "est. M4F instructions",
        ],
        rows,
    }
}

const SEARCH_TITLE: &str = "Accuracy-control search, step by step";

/// Draws `f` on an SVG picture of `size`: the SVG text.
fn picture(size: (u32, u32), f: impl FnOnce(&Area) -> Result<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        f(&root)?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

/// The whole report as one SVG document: header, SQNR chart, histograms and the search's table.
pub fn svg(r: &Report) -> Result<String> {
    let header = header(r);
    let table = r.search.as_ref().map(table);
    let l = Layout::new(r, &header, table.as_ref());
    let height = l.header + l.sqnr + l.histograms + l.table;
    picture((l.width, height), |root| {
        let (top, rest) = root.split_vertically(l.header);
        draw::draw_header(&top, &header)?;
        let (sqnr, rest) = rest.split_vertically(l.sqnr);
        draw::draw_sqnr(&sqnr, r, &l)?;
        let (hists, rest) = rest.split_vertically(l.histograms);
        draw::draw_histograms(&hists, r, &l)?;
        if let Some(t) = &table {
            draw::draw_table(&rest, SEARCH_TITLE, t)?;
        }
        Ok(())
    })
}

/// The page's look.
const CSS: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;font-size:0.85em}\
th,td{border:1px solid #ccc;padding:0.25em 0.5em;text-align:left;vertical-align:top}\
tr.back td{color:#888}svg{max-width:100%;height:auto}";

/// The whole report as one self-contained HTML page: the header, the charts as inline SVG, and the
/// search as an HTML table.
pub fn html(r: &Report) -> Result<String> {
    let header = header(r);
    let l = Layout::new(r, &header, None);
    let sqnr = picture((l.width, l.sqnr), |a| draw::draw_sqnr(a, r, &l))?;
    let hists = picture((l.width, l.histograms), |a| draw::draw_histograms(a, r, &l))?;
    let mut h = String::new();
    let title = escape(&header[0]);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    for line in &header[1..] {
        let _ = writeln!(h, "<p>{}</p>", escape(line));
    }
    let _ = writeln!(h, "{sqnr}\n{hists}");
    if let Some(s) = &r.search {
        let t = table(s);
        let _ = writeln!(h, "<h2>{}</h2>\n<table>\n<tr>", escape(SEARCH_TITLE));
        for c in &t.header {
            let _ = write!(h, "<th>{}</th>", escape(c));
        }
        h.push_str("</tr>\n");
        for (row, step) in t.rows.iter().zip(&s.steps) {
            let class = if step.kept { "" } else { " class=\"back\"" };
            let _ = write!(h, "<tr{class}>");
            for cell in row {
                let lines: Vec<String> = cell.iter().map(|l| escape(l)).collect();
                let _ = write!(h, "<td>{}</td>", lines.join("<br>"));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body>\n</html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_writes_entities() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn wrap_keeps_lines_short() {
        let items: Vec<String> = ["aaaa", "bbbb", "cccc"].map(String::from).to_vec();
        assert_eq!(wrap(&items, ", ", 10), ["aaaa, bbbb,", "cccc"]);
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
