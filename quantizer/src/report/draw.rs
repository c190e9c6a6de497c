//! The report's pictures on plotters' SVG backend: the per-layer SQNR bars, the activation
//! histograms with their clipping range, the header and the search table as SVG text. Every size is
//! in pixels; text widths are estimated (an SVG has no font metrics until a viewer draws it).

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Precision, Report, Value};

/// The area drawn on.
pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// Plotters' errors as `anyhow` ones.
pub(super) fn drawing<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the report: {e:?}")
}

/// The narrowest picture.
const MIN_WIDTH: u32 = 960;
/// Height of one layer's bar row.
const ROW: u32 = 20;
/// One histogram panel.
const PANEL: (u32, u32) = (320, 180);
/// Text sizes.
const TEXT: u32 = 13;
const TITLE: u32 = 16;
/// The estimated width of a character of sans-serif text, as a fraction of its size.
const CHAR: f64 = 0.6;
/// Table text: monospace characters' width and the rows' height.
const MONO: f64 = 12.0 * 0.6;
const LINE: u32 = 16;

/// Estimated width of `text` at `size`.
fn text_width(text: &str, size: u32) -> u32 {
    (text.chars().count() as f64 * size as f64 * CHAR).ceil() as u32
}

fn colour(p: &Precision) -> RGBColor {
    match p {
        Precision::Int8 => RGBColor(0x33, 0x66, 0xaa),
        Precision::Int16 => RGBColor(0x22, 0x99, 0x55),
        Precision::Float => RGBColor(0xee, 0x77, 0x33),
        Precision::Other(_) => RGBColor(0x88, 0x88, 0x88),
    }
}

fn style(size: u32) -> TextStyle<'static> {
    TextStyle::from(("sans-serif", size).into_font()).color(&BLACK)
}

fn mono() -> TextStyle<'static> {
    TextStyle::from(("monospace", 12).into_font()).color(&BLACK)
}

/// A number short enough for an axis.
fn short(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if !(0.01..10_000.0).contains(&a) {
        format!("{v:.1e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// An SQNR as text: `null` is an output identical to the float model's.
pub(super) fn db(sqnr: Option<f64>) -> String {
    match sqnr {
        None => "identical".into(),
        Some(v) if v.is_infinite() => format!("{v} dB"),
        Some(v) => format!("{v:.1} dB"),
    }
}

/// Sizes of every part, decided before drawing.
pub(super) struct Layout {
    pub width: u32,
    /// Width of the layer names' column of the SQNR chart.
    label_width: u32,
    pub header: u32,
    pub sqnr: u32,
    pub histograms: u32,
    pub table: u32,
    columns: u32,
}

impl Layout {
    pub fn new(r: &Report, header: &[String], table: Option<&Table>) -> Self {
        let label_width = r
            .layers
            .iter()
            .map(|l| text_width(&l.name, TEXT))
            .max()
            .unwrap_or(0)
            .max(60)
            + 12;
        let header_width = header
            .iter()
            .map(|h| text_width(h, TEXT) + 20)
            .max()
            .unwrap_or(0);
        let table_width = table.map_or(0, |t| t.width() + 20);
        let width = MIN_WIDTH
            .max(label_width + 560)
            .max(header_width)
            .max(table_width);
        let columns = (width / PANEL.0).max(1);
        let panels = r.values.iter().filter(|v| v.histogram.is_some()).count() as u32;
        Layout {
            width,
            label_width,
            header: 16 + TITLE + 8 + LINE * header.len().saturating_sub(1) as u32,
            sqnr: 90 + ROW * r.layers.len().max(1) as u32,
            histograms: 36 + PANEL.1 * panels.div_ceil(columns).max(1),
            table: table.map_or(0, |t| 40 + LINE * (t.lines() + 1) as u32),
            columns,
        }
    }
}

/// The header: a title, then a line each.
pub(super) fn draw_header(area: &Area, lines: &[String]) -> Result<()> {
    for (i, line) in lines.iter().enumerate() {
        let (s, y) = if i == 0 {
            (style(TITLE), 10)
        } else {
            (style(TEXT), (18 + TITLE + LINE * (i as u32 - 1)) as i32)
        };
        area.draw_text(line, &s, (10, y)).map_err(drawing)?;
    }
    Ok(())
}

/// Per-layer SQNR: a horizontal bar per layer, in execution order from the top, coloured by its
/// precision and labelled with its SQNR and precision; an output identical to the float model's
/// is drawn full length, labelled `identical`.
pub(super) fn draw_sqnr(area: &Area, r: &Report, layout: &Layout) -> Result<()> {
    let samples = r.layer_sqnr_samples.map_or(String::new(), |n| {
        format!(", first {n} calibration samples")
    });
    let title = format!("Per-layer SQNR (runtime output against the float model{samples})");
    area.draw_text(&title, &style(TITLE), (10, 8))
        .map_err(drawing)?;
    // The legend, right-aligned on the title's line.
    let legend: Vec<(RGBColor, String)> = r
        .precision_counts()
        .into_iter()
        .map(|(p, n)| (colour(&p), format!("{} ({n})", p.name())))
        .collect();
    let mut x = layout.width as i32 - 10;
    for (c, text) in legend.iter().rev() {
        x -= text_width(text, TEXT) as i32;
        area.draw_text(text, &style(TEXT), (x, 10))
            .map_err(drawing)?;
        x -= 18;
        area.draw(&Rectangle::new([(x, 10), (x + 12, 22)], c.filled()))
            .map_err(drawing)?;
        x -= 14;
    }
    let n = r.layers.len();
    if n == 0 {
        area.draw_text("the report has no layers", &style(TEXT), (10, 40))
            .map_err(drawing)?;
        return Ok(());
    }
    let finite = r
        .layers
        .iter()
        .filter_map(|l| l.sqnr_db)
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((0f64, 1f64), |(a, b), v| (a.min(v), b.max(v)));
    // Room right of the longest bar for its label.
    let hi = hi + (hi - lo) * 0.25;
    let lo = if lo < 0.0 { lo - (hi - lo) * 0.05 } else { 0.0 };
    let body = area.margin(34, 0, 0, 0);
    let (labels, plot) = body.split_horizontally(layout.label_width);
    let mut chart = ChartBuilder::on(&plot)
        .margin_right(16)
        .margin_top(4)
        .x_label_area_size(40)
        .build_cartesian_2d(lo..hi, 0f64..n as f64)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_max_light_lines(1)
        .x_desc("SQNR (dB)")
        .x_label_formatter(&|v| short(*v))
        .label_style(style(TEXT))
        .draw()
        .map_err(drawing)?;
    // Layer `k` is the `k`th row from the top.
    let row = |k: usize| (n - k) as f64;
    chart
        .draw_series(r.layers.iter().enumerate().map(|(k, l)| {
            let end = l.sqnr_db.map_or(hi, |v| v.clamp(lo, hi));
            let (a, b) = if end < 0.0 { (end, 0.0) } else { (0.0, end) };
            Rectangle::new(
                [(a, row(k) - 0.85), (b, row(k) - 0.15)],
                colour(&l.precision).filled(),
            )
        }))
        .map_err(drawing)?;
    let at_end = style(TEXT - 2).pos(Pos::new(HPos::Left, VPos::Center));
    chart
        .draw_series(r.layers.iter().enumerate().map(|(k, l)| {
            let end = l.sqnr_db.map_or(hi, |v| v.clamp(lo, hi).max(0.0));
            let text = format!("{} · {}", db(l.sqnr_db), l.precision.name());
            // Labels of full-length bars go inside them.
            let (dx, s) = if l.sqnr_db.is_none() {
                let w = text_width(&text, TEXT - 2) as i32;
                (-w - 6, at_end.color(&WHITE))
            } else {
                (4, at_end.clone())
            };
            EmptyElement::at((end, row(k) - 0.5)) + Text::new(text, (dx, 0), s)
        }))
        .map_err(drawing)?;
    let name = style(TEXT).pos(Pos::new(HPos::Right, VPos::Center));
    let top = labels.get_base_pixel().1;
    for (k, l) in r.layers.iter().enumerate() {
        let y = chart.backend_coord(&(lo, row(k) - 0.5)).1 - top;
        labels
            .draw_text(&l.name, &name, (layout.label_width as i32 - 6, y))
            .map_err(drawing)?;
    }
    Ok(())
}

/// The name of a panel: its tail when too long for the panel.
fn panel_name(name: &str) -> String {
    const MAX: usize = 44;
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= MAX {
        return name.to_string();
    }
    let tail: String = chars[chars.len() - (MAX - 1)..].iter().collect();
    format!("…{tail}")
}

/// One value's histogram (counts on a log scale, so that the tails a range clips show), with its
/// clipping range as two red lines.
fn draw_panel(area: &Area, v: &Value) -> Result<()> {
    let Some(h) = &v.histogram else {
        return Ok(());
    };
    let clip = v.clip();
    let (mut lo, mut hi) = (h.min, h.max);
    if let Some((a, b)) = clip {
        (lo, hi) = (lo.min(a), hi.max(b));
    }
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        (lo, hi) = (lo - 1.0, hi + 1.0);
    }
    let pad = (hi - lo) * 0.03;
    let centre = Pos::new(HPos::Center, VPos::Top);
    let middle = PANEL.0 as i32 / 2;
    area.draw_text(
        &panel_name(&v.name),
        &style(TEXT - 1).pos(centre),
        (middle, 4),
    )
    .map_err(drawing)?;
    if let Some((a, b)) = clip {
        let note = format!("{} range [{}, {}]", v.precision.name(), short(a), short(b));
        area.draw_text(
            &note,
            &style(TEXT - 3).color(&RED).pos(centre),
            (middle, 20),
        )
        .map_err(drawing)?;
    }
    // Counts of 1 stand above the axis's base.
    let (base, top) = (
        0.5,
        h.counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 2.0,
    );
    let mut chart = ChartBuilder::on(&area.margin(34, 4, 4, 10))
        .x_label_area_size(20)
        .y_label_area_size(40)
        .build_cartesian_2d((lo - pad)..(hi + pad), (base..top).log_scale())
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(5)
        .y_labels(4)
        .x_label_formatter(&|x| short(*x))
        .y_label_formatter(&|y| short(*y))
        .label_style(style(TEXT - 3))
        .draw()
        .map_err(drawing)?;
    let width = (h.max - h.min) / h.counts.len() as f64;
    let bar = RGBColor(0x55, 0x77, 0x99).filled();
    chart
        .draw_series(
            h.counts
                .iter()
                .enumerate()
                .filter(|(_, &c)| c > 0)
                .map(|(i, &c)| {
                    let x = h.min + width * i as f64;
                    Rectangle::new([(x, base), (x + width, c as f64)], bar)
                }),
        )
        .map_err(drawing)?;
    if let Some((a, b)) = clip {
        let line = RED.stroke_width(2);
        chart
            .draw_series([a, b].map(|x| PathElement::new(vec![(x, base), (x, top)], line)))
            .map_err(drawing)?;
    }
    Ok(())
}

/// Every value's histogram with its range, in panels.
pub(super) fn draw_histograms(area: &Area, r: &Report, layout: &Layout) -> Result<()> {
    area.draw_text(
        "Activation histograms (calibration values, counts on a log scale; red: the range values are clipped to)",
        &style(TITLE),
        (10, 8),
    )
    .map_err(drawing)?;
    let values: Vec<&Value> = r.values.iter().filter(|v| v.histogram.is_some()).collect();
    if values.is_empty() {
        let why =
            "the report has no histograms (written by an older ferrite quantize: quantize again)";
        area.draw_text(why, &style(TEXT), (10, 40))
            .map_err(drawing)?;
        return Ok(());
    }
    let body = area.margin(32, 0, 0, 0);
    for (i, v) in values.iter().enumerate() {
        let (row, col) = (i as u32 / layout.columns, i as u32 % layout.columns);
        let (x, y) = ((col * PANEL.0) as i32, (row * PANEL.1) as i32);
        let panel = body.clone().shrink((x, y), PANEL);
        draw_panel(&panel, v)?;
    }
    Ok(())
}

/// A table as text: a header, and rows of cells of one or more lines.
pub(super) struct Table {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<Vec<String>>>,
}

impl Table {
    /// Each column's width in characters.
    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (c, cell) in row.iter().enumerate() {
                let longest = cell.iter().map(|l| l.chars().count()).max().unwrap_or(0);
                w[c] = w[c].max(longest);
            }
        }
        w
    }

    /// Estimated width in pixels.
    fn width(&self) -> u32 {
        let chars: usize = self.widths().iter().map(|w| w + 2).sum();
        (chars as f64 * MONO).ceil() as u32
    }

    /// Text lines of the body.
    fn lines(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.iter().map(Vec::len).max().unwrap_or(1).max(1))
            .sum()
    }
}

/// The search table as SVG text under `title`, each cell at its column's place.
pub(super) fn draw_table(area: &Area, title: &str, t: &Table) -> Result<()> {
    area.draw_text(title, &style(TITLE), (10, 8))
        .map_err(drawing)?;
    let mut x = Vec::new();
    let mut at = 10.0;
    for w in t.widths() {
        x.push(at as i32);
        at += (w + 2) as f64 * MONO;
    }
    let mut y = 36;
    let head = mono().color(&RGBColor(0x44, 0x44, 0x44));
    for (c, h) in t.header.iter().enumerate() {
        area.draw_text(h, &head, (x[c], y)).map_err(drawing)?;
    }
    y += LINE as i32;
    area.draw(&PathElement::new(
        vec![(10, y - 3), (at as i32, y - 3)],
        BLACK.stroke_width(1),
    ))
    .map_err(drawing)?;
    for row in &t.rows {
        let mut lines = 1;
        for (c, cell) in row.iter().enumerate() {
            for (i, line) in cell.iter().enumerate() {
                area.draw_text(line, &mono(), (x[c], y + (i as u32 * LINE) as i32))
                    .map_err(drawing)?;
            }
            lines = lines.max(cell.len());
        }
        y += (lines as u32 * LINE) as i32;
    }
    Ok(())
}
