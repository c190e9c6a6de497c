//! Int8 depthwise 2-D convolution (depth multiplier 1), optimized: a ring of expanded input rows.
//!
//! Channels go in blocks (four on Armv7E-M, one elsewhere). For a block, each input row an output
//! row needs is expanded once into a ring of row buffers: the input offset is added to every
//! value and it is widened (to the halfword pairs `SXTB16` makes, `(x0, x2)` and `(x1, x3)`, on
//! Armv7E-M; to four `i32` elsewhere), and the padding columns and rows are zeros. An output value is
//! then a plain multiply-accumulate over its taps with no border cases, since a padded tap
//! multiplies zero, exactly as in the reference kernel. Output rows that share input rows (stride
//! below the kernel height) reuse them from the ring.

use super::dsp::{sadd16, smlabb, smlatt, sxtb16, sxtb16_ror8};
use super::{Apart, ChannelQuant, Io, RightShiftQuant, Shared};
use crate::kernels::{ConvGeometry, Int8Output, LeI32, OutputQuant};

/// Words of the ring buffer (on the stack).
const RING_WORDS: usize = 384;
/// Most taps of a kernel (5x5).
const MAX_TAPS: usize = 25;
/// Accumulators of a batch of output rows (on the stack).
const ACC_WORDS: usize = 128;
/// Most ring slots: the kernel's height span (`(kernel_h - 1) * dilation_h + 1`) plus a zero row.
const MAX_SLOTS: usize = 16;

/// Channels of a block (and accumulators per output position).
const LANES: usize = 4;

/// 32-bit words per expanded input column of a block: two `SXTB16` halfword pairs with `DSP`,
/// else four `i32`.
const fn column_words(dsp: bool) -> usize {
    if dsp {
        2
    } else {
        4
    }
}

/// Columns of an expanded row: from the first window's first column to the last window's last.
fn padded_width(g: &ConvGeometry) -> usize {
    g.output.w.saturating_sub(1) * g.stride_w + (g.kernel_w.saturating_sub(1)) * g.dilation_w + 1
}

/// Whether [`depthwise_conv2d_s8_fast`] takes this geometry: the kernel fits the weight table and
/// the ring holds its height span of rows for at least one output column.
pub fn fits<const DSP: bool>(g: &ConvGeometry) -> bool {
    let span_h = g.kernel_h.saturating_sub(1) * g.dilation_h + 1;
    g.kernel_h * g.kernel_w <= MAX_TAPS
        && g.kernel_h >= 1
        && g.kernel_w >= 1
        && span_h < MAX_SLOTS
        && g.output.w >= 1
        && tile_width::<DSP>(g) >= 1
}

/// Same contract and bit-exact result as [`crate::kernels::depthwise_conv2d::depthwise_conv2d_s8`]
/// with a depth multiplier of 1 (`g.output.c == g.input.c`) for a geometry that [`fits`]. `DSP`
/// selects `SXTB16`/`SMLABB`/`SMLATT` on halfword pairs (exact pure-Rust equivalents off
/// Armv7E-M), else `i32` lanes.
pub fn depthwise_conv2d_s8_fast<const DSP: bool, T: Int8Output>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [T],
) {
    if !fits::<DSP>(g) {
        return;
    }
    let mut io = Apart { input, output };
    let mut ring = [0u32; RING_WORDS];
    for c0 in (0..g.output.c).step_by(LANES) {
        block::<DSP>(g, q, &mut io, filter, bias, c0, &mut ring);
    }
}

/// Whether [`depthwise_conv2d_s8_over_input`] takes this geometry, with or without `DSP`: the
/// input's channels, rows and columns no fewer than the output's, no vertical dilation, padding
/// above less than the kernel's height, and every row of the kernel's height in the ring at once
/// (one tile of columns). Then output row `r` covers bytes of input rows up to `r` only, which
/// its window has read; and the rows a later output row reads up to `r` are in that window, so
/// still in the ring.
pub fn runs_over_input(g: &ConvGeometry) -> bool {
    g.dilation_h == 1
        && g.input.n == g.output.n
        && g.input.c == g.output.c
        && g.output.h <= g.input.h
        && g.output.w <= g.input.w
        && g.pad_top < g.kernel_h
        && fits::<false>(g)
        && tile_width::<false>(g) >= g.output.w
}

/// [`depthwise_conv2d_s8_fast`] with the output written over its input (`data`, the input's
/// bytes before the call and the output's after), for a geometry that [`runs_over_input`]. Each
/// block of channels reads an input row into its ring before it writes the output row over it, and
/// rows it still needs are held in the ring, so no byte is overwritten before its last read.
pub fn depthwise_conv2d_s8_over_input<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    data: &mut [i8],
    filter: &[i8],
    bias: LeI32<'_>,
) {
    if !runs_over_input(g) || data.len() < g.input.len() {
        return;
    }
    let mut io = Shared { data, shift: 0 };
    let mut ring = [0u32; RING_WORDS];
    for c0 in (0..g.output.c).step_by(LANES) {
        block::<DSP>(g, q, &mut io, filter, bias, c0, &mut ring);
    }
}

/// The weights of one block, per tap: the `SXTB16` pairs `(w0, w2)`, `(w1, w3)` with `DSP`, else
/// `w0..w3` as `i32`.
type Weights = [[u32; 4]; MAX_TAPS];

/// Channels `c0..` (one block) at every output position.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn block<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    filter: &[i8],
    bias: LeI32<'_>,
    c0: usize,
    ring: &mut [u32; RING_WORDS],
) {
    let c = g.output.c;
    let real = (c - c0).min(LANES);
    let n_taps = g.kernel_h * g.kernel_w;
    let mut weights: Weights = [[0; 4]; MAX_TAPS];
    for (t, w) in weights.iter_mut().enumerate().take(n_taps) {
        let v = word(&filter[t * c + c0..][..real]);
        *w = if DSP {
            [sxtb16(v), sxtb16_ror8(v), 0, 0]
        } else {
            v.to_le_bytes().map(|b| b as i8 as i32 as u32)
        };
    }
    let mut acc0 = [0i32; 4];
    let mut cq = [ColumnQuant::General(ChannelQuant::default()); 4];
    for j in 0..real {
        acc0[j] = if bias.is_empty() { 0 } else { bias.get(c0 + j) };
        let channel = ChannelQuant::new(q, c0 + j);
        // The taps multiply input values plus the input offset (at most 255 in magnitude) by
        // weights of at most 128.
        let doubles = (acc0[j] as i64).abs() + 255 * 128 * (n_taps as i64) < 1 << 30;
        cq[j] = match RightShiftQuant::new(channel, q) {
            Some(short) => ColumnQuant::Short(short, doubles),
            None => ColumnQuant::General(channel),
        };
    }
    if narrow_3x3::<DSP>(g) {
        let table = narrow_table::<DSP>(&weights, acc0);
        let cq = &cq[..real];
        narrow_block::<DSP>(g, q, io, c0, real, cq, &table, ring);
        return;
    }
    general_block::<DSP>(g, q, io, c0, real, &cq[..real], &weights, acc0, ring);
}

/// [`block`] in the general layout: a ring slot per row of the kernel's height span, and a zero row.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn general_block<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    c0: usize,
    real: usize,
    cq: &[ColumnQuant],
    weights: &Weights,
    acc0: [i32; 4],
    ring: &mut [u32; RING_WORDS],
) {
    let words = column_words(DSP);
    let c = g.output.c;
    let slots = (g.kernel_h - 1) * g.dilation_h + 1;
    // Output columns are processed in tiles whose input columns fit a ring slot.
    let tile = tile_width::<DSP>(g);
    let mut accs = [0i32; ACC_WORDS];
    for ox0 in (0..g.output.w).step_by(tile) {
        let count = tile.min(g.output.w - ox0);
        let slot_len = ((count - 1) * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1) * words;
        let start = (ox0 * g.stride_w) as isize - g.pad_left as isize;
        if tile < g.output.w {
            // Another tile's columns may be left where this tile has padding.
            ring.fill(0);
        }
        let zero_row = slots * slot_len;
        // Accumulators of up to `batch` output rows, four per position, requantized together a
        // channel at a time: the positions of consecutive rows are evenly spaced in the tensor when
        // one tile spans the row.
        let row_words = count * LANES;
        let batch = if count == g.output.w {
            (ACC_WORDS / row_words).max(1)
        } else {
            1
        };
        for n in 0..g.input.n {
            // Input row held by each slot.
            let mut held = [usize::MAX; MAX_SLOTS];
            let mut first = 0;
            for oy in 0..g.output.h {
                let mut rows = [0usize; MAX_SLOTS];
                for (ky, row) in rows.iter_mut().enumerate().take(g.kernel_h) {
                    let y = oy * g.stride_h + ky * g.dilation_h;
                    *row = match y.checked_sub(g.pad_top) {
                        Some(iy) if iy < g.input.h => {
                            let s = iy % slots;
                            if held[s] != iy {
                                let src = io.input(g.input.index(n, iy, 0, c0));
                                let dst = &mut ring[s * slot_len..][..slot_len];
                                let off = q.input_offset;
                                expand::<DSP, false>(
                                    src,
                                    c,
                                    g.input.w,
                                    real,
                                    start,
                                    off,
                                    dst,
                                    &mut [],
                                );
                                held[s] = iy;
                            }
                            s * slot_len
                        }
                        _ => zero_row,
                    };
                }
                let row_accs = &mut accs[(oy - first) * row_words..][..row_words];
                if g.kernel_h == 3 && g.kernel_w == 3 && g.dilation_w == 1 {
                    let row = |ky: usize| &ring[rows[ky]..][..slot_len];
                    let rows3 = [row(0), row(1), row(2)];
                    if DSP {
                        taps_row_3x3(rows3, weights, g.stride_w, acc0, row_accs, taps_3x3_dsp);
                    } else {
                        taps_row_3x3(rows3, weights, g.stride_w, acc0, row_accs, taps_3x3);
                    }
                } else {
                    let rows = &rows[..g.kernel_h];
                    taps_row_any::<DSP>(&ring[..], rows, slot_len, weights, g, acc0, row_accs);
                }
                if oy + 1 - first == batch || oy + 1 == g.output.h {
                    let out = io.output(g.output.index(n, first, ox0, c0));
                    let done = &accs[..(oy + 1 - first) * row_words];
                    requantize_row(q, cq, done, out, c);
                    first = oy + 1;
                }
            }
        }
    }
}

/// Output columns per tile of [`general_block`]: as many as the ring's slots (one per row of the
/// kernel's height span, and a zero row) and the accumulators hold; 0 if not even one does.
fn tile_width<const DSP: bool>(g: &ConvGeometry) -> usize {
    let words = column_words(DSP);
    let slots = g.kernel_h.saturating_sub(1) * g.dilation_h + 2;
    let span_w = g.kernel_w.saturating_sub(1) * g.dilation_w + 1;
    let columns = RING_WORDS / (slots * words);
    match columns.checked_sub(span_w) {
        Some(room) => (room / g.stride_w.max(1) + 1)
            .min(ACC_WORDS / LANES)
            .min(g.output.w),
        None => 0,
    }
}

/// Words from one slot of the narrow layout to the next (256 bytes, so that every tap of a window
/// is an immediate offset from its first word).
const SLOT_WORDS: usize = 64;
/// Words of the narrow layout's table: the block's biases, then each tap's weights.
const TABLE_WORDS: usize = 4 + 9 * 4;
// The narrow layout's six slots fit the ring.
const _: () = assert!(6 * SLOT_WORDS <= RING_WORDS);

/// Whether the block takes the narrow layout: a 3x3 undilated kernel, horizontal stride 1 or 2,
/// and expanded rows of at most [`SLOT_WORDS`]. Its ring holds the three rows of a window in
/// consecutive slots (each row is stored twice, at slots `iy % 3` and `iy % 3 + 3`), so one pointer
/// reaches all nine taps of a position.
fn narrow_3x3<const DSP: bool>(g: &ConvGeometry) -> bool {
    let words = column_words(DSP);
    g.kernel_h == 3
        && g.kernel_w == 3
        && g.dilation_h == 1
        && g.dilation_w == 1
        && matches!(g.stride_w, 1 | 2)
        && g.pad_top <= 2
        && padded_width(g) * words <= SLOT_WORDS
}

/// The narrow layout's table: biases, then per tap the `SXTB16` weight pairs (`DSP`, two words)
/// or the four weights (four words).
fn narrow_table<const DSP: bool>(weights: &Weights, acc0: [i32; 4]) -> [u32; TABLE_WORDS] {
    let mut table = [0u32; TABLE_WORDS];
    for (t, v) in table[..4].iter_mut().zip(acc0) {
        *t = v as u32;
    }
    let per_tap = if DSP { 2 } else { 4 };
    for (t, w) in weights.iter().take(9).enumerate() {
        table[4 + t * per_tap..][..per_tap].copy_from_slice(&w[..per_tap]);
    }
    table
}

/// [`block`] in the narrow layout (see [`narrow_3x3`]).
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn narrow_block<const DSP: bool>(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    io: &mut impl Io,
    c0: usize,
    real: usize,
    cq: &[ColumnQuant],
    table: &[u32; TABLE_WORDS],
    ring: &mut [u32; RING_WORDS],
) {
    let words = column_words(DSP);
    let c = g.output.c;
    let slot_len = padded_width(g) * words;
    let mut accs = [0i32; ACC_WORDS];
    let row_words = g.output.w * LANES;
    let batch = (ACC_WORDS / row_words).max(1);
    for n in 0..g.input.n {
        // Input row held by each slot (rows outside the input are zeros).
        let mut held = [isize::MIN; 3];
        let mut first = 0;
        for oy in 0..g.output.h {
            let top = (oy * g.stride_h) as isize - g.pad_top as isize;
            for iy in top..top + 3 {
                let s = iy.rem_euclid(3) as usize;
                if held[s] != iy {
                    // The row goes to slot `s` and to its mirror `s + 3`, so that every
                    // window's three rows lie one after the other.
                    let (head, tail) = ring.split_at_mut((s + 3) * SLOT_WORDS);
                    let dst = &mut head[s * SLOT_WORDS..][..slot_len];
                    let mirror = &mut tail[..slot_len];
                    match usize::try_from(iy) {
                        Ok(iy) if iy < g.input.h => {
                            let src = io.input(g.input.index(n, iy, 0, c0));
                            expand::<DSP, true>(
                                src,
                                c,
                                g.input.w,
                                real,
                                -(g.pad_left as isize),
                                q.input_offset,
                                dst,
                                mirror,
                            );
                        }
                        _ => {
                            dst.fill(0);
                            mirror.fill(0);
                        }
                    }
                    held[s] = iy;
                }
            }
            let window = &ring[top.rem_euclid(3) as usize * SLOT_WORDS..][..3 * SLOT_WORDS];
            let row_accs = &mut accs[(oy - first) * row_words..][..row_words];
            if g.stride_w == 1 {
                taps_row_narrow::<DSP, 1>(window, table, row_accs);
            } else {
                taps_row_narrow::<DSP, 2>(window, table, row_accs);
            }
            if oy + 1 - first == batch || oy + 1 == g.output.h {
                let out = io.output(g.output.index(n, first, 0, c0));
                let done = &accs[..(oy + 1 - first) * row_words];
                requantize_row(q, cq, done, out, c);
                first = oy + 1;
            }
        }
    }
}

/// Accumulators (four per position) of one output row in the narrow layout: `window` starts at the
/// first word of the window's top row, positions every `STRIDE` columns.
#[inline(never)]
fn taps_row_narrow<const DSP: bool, const STRIDE: usize>(
    window: &[u32],
    table: &[u32; TABLE_WORDS],
    accs: &mut [i32],
) {
    let words = column_words(DSP);
    let count = accs.len() / 4;
    // Last word read: the last position's bottom-right tap.
    let reach = 2 * SLOT_WORDS + ((count.max(1) - 1) * STRIDE + 2) * words + words;
    if count == 0 || window.len() < reach {
        return;
    }
    // The assembly for this target's layout; the plain loop on other targets (and for the other
    // layout, which this target's dispatch never selects).
    #[cfg(ferrite_dsp)]
    #[allow(unsafe_code)]
    if DSP {
        // SAFETY: `count >= 1`, `accs` holds `4 * count` words and `window` the reach (above).
        return unsafe { narrow_asm(window, table, accs, count, STRIDE) };
    }
    #[cfg(all(ferrite_armv7m, not(ferrite_dsp)))]
    #[allow(unsafe_code)]
    if !DSP {
        // SAFETY: `count >= 1`, `accs` holds `4 * count` words and `window` the reach (above).
        return unsafe { narrow_asm(window, table, accs, count, STRIDE) };
    }
    for (ox, acc) in accs.chunks_exact_mut(4).enumerate() {
        let base = ox * STRIDE * words;
        let mut a = [table[0], table[1], table[2], table[3]].map(|v| v as i32);
        for t in 0..9 {
            let x = &window[(t / 3) * SLOT_WORDS + base + (t % 3) * words..];
            if DSP {
                let w = &table[4 + 2 * t..];
                a[0] = smlabb(x[0], w[0], a[0]);
                a[2] = smlatt(x[0], w[0], a[2]);
                a[1] = smlabb(x[1], w[1], a[1]);
                a[3] = smlatt(x[1], w[1], a[3]);
            } else {
                let w = &table[4 + 4 * t..];
                for j in 0..4 {
                    let p = (x[j] as i32).wrapping_mul(w[j] as i32);
                    a[j] = a[j].wrapping_add(p);
                }
            }
        }
        acc.copy_from_slice(&a);
    }
}

/// The assembly loop of [`taps_row_narrow`]: per position, the biases are loaded with one `LDM`,
/// the nine taps read at immediate offsets, and the accumulators stored with one `STM`.
///
/// # Safety
///
/// `count >= 1`, `accs.len() >= 4 * count`, and `window` holds every word the last position reads:
/// `window.len() >= 2 * SLOT_WORDS + ((count - 1) * stride + 2) * words + words` for this target's
/// layout's column width `words`. The loop reads and writes through raw pointers without checks.
#[cfg(ferrite_armv7m)]
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn narrow_asm(
    window: &[u32],
    table: &[u32; TABLE_WORDS],
    accs: &mut [i32],
    count: usize,
    stride: usize,
) {
    let end = accs[4 * count..].as_ptr();
    #[cfg(ferrite_dsp)]
    macro_rules! tap {
        ($x:literal, $w:literal) => {
            concat!(
                "ldrd {x0}, {x1}, [{p}, #",
                $x,
                "]\n",
                "ldrd {w0}, {w1}, [{wt}, #",
                $w,
                "]\n",
                "smlabb r0, {x0}, {w0}, r0\n",
                "smlatt r2, {x0}, {w0}, r2\n",
                "smlabb r1, {x1}, {w1}, r1\n",
                "smlatt r3, {x1}, {w1}, r3\n",
            )
        };
    }
    #[cfg(ferrite_dsp)]
    macro_rules! taps {
        () => {
            concat!(
                tap!("0", "16"),
                tap!("8", "24"),
                tap!("16", "32"),
                tap!("256", "40"),
                tap!("264", "48"),
                tap!("272", "56"),
                tap!("512", "64"),
                tap!("520", "72"),
                tap!("528", "80"),
            )
        };
    }
    #[cfg(all(ferrite_armv7m, not(ferrite_dsp)))]
    macro_rules! tap {
        ($x:literal, $x8:literal, $w:literal, $w8:literal) => {
            concat!(
                "ldrd {x0}, {x1}, [{p}, #",
                $x,
                "]\n",
                "ldrd {w0}, {w1}, [{wt}, #",
                $w,
                "]\n",
                "mla r0, {x0}, {w0}, r0\n",
                "mla r1, {x1}, {w1}, r1\n",
                "ldrd {x0}, {x1}, [{p}, #",
                $x8,
                "]\n",
                "ldrd {w0}, {w1}, [{wt}, #",
                $w8,
                "]\n",
                "mla r2, {x0}, {w0}, r2\n",
                "mla r3, {x1}, {w1}, r3\n",
            )
        };
    }
    #[cfg(all(ferrite_armv7m, not(ferrite_dsp)))]
    macro_rules! taps {
        () => {
            concat!(
                tap!("0", "8", "16", "24"),
                tap!("16", "24", "32", "40"),
                tap!("32", "40", "48", "56"),
                tap!("256", "264", "64", "72"),
                tap!("272", "280", "80", "88"),
                tap!("288", "296", "96", "104"),
                tap!("512", "520", "112", "120"),
                tap!("528", "536", "128", "136"),
                tap!("544", "552", "144", "152"),
            )
        };
    }
    macro_rules! row_loop {
        ($step:literal) => {
            // SAFETY: for each of the `count` positions, reads the nine taps of the window (within
            // the reach the caller guarantees, see `# Safety`), words 0..TABLE_WORDS of `table`,
            // and writes four words of `accs` (`end` is one past `4 * count` words). All are
            // word-aligned `u32`/`i32` arrays. No stack use; SMLAxy may set the Q flag, which
            // nothing reads.
            unsafe {
                core::arch::asm!(
                    "2:",
                    "ldm {wt}, {{r0, r1, r2, r3}}",
                    taps!(),
                    "stm {acc}!, {{r0, r1, r2, r3}}",
                    concat!("add {p}, {p}, #", $step),
                    "cmp {acc}, {end}",
                    "bne 2b",
                    p = inout(reg) window.as_ptr() => _,
                    wt = in(reg) table.as_ptr(),
                    acc = inout(reg) accs.as_mut_ptr() => _,
                    end = in(reg) end,
                    x0 = out(reg) _,
                    x1 = out(reg) _,
                    w0 = out(reg) _,
                    w1 = out(reg) _,
                    out("r0") _,
                    out("r1") _,
                    out("r2") _,
                    out("r3") _,
                    options(nostack),
                )
            }
        };
    }
    // One column is 8 bytes with the DSP layout, 16 without.
    match (cfg!(ferrite_dsp), stride) {
        (true, 1) => {
            row_loop!("8");
        }
        (true, _) => {
            row_loop!("16");
        }
        (false, 1) => {
            row_loop!("16");
        }
        (false, _) => {
            row_loop!("32");
        }
    }
}

/// `out[k * out_step + j] = requantize_j(accs[4 * k + j])` for every output position `k` of
/// the batch and channel `j` of the block, a channel at a time (its quantization stays in registers).
#[inline(never)]
fn requantize_row<T: Int8Output>(
    q: &OutputQuant<'_>,
    cq: &[ColumnQuant],
    accs: &[i32],
    out: &mut [T],
    out_step: usize,
) {
    let count = accs.len() / LANES;
    if count == 0 || out.len() < (count - 1) * out_step + cq.len() {
        return;
    }
    for (j, &cq) in cq.iter().enumerate() {
        match cq {
            ColumnQuant::Short(fast, doubles) => {
                let (accs, out) = (&accs[j..], &mut out[j..]);
                let by_asm = COLUMN_ASM
                    && T::narrow(out)
                        .is_some_and(|out| column_asm(fast, doubles, accs, count, out, out_step));
                if !by_asm {
                    // The short form's clamp lies within int8: exact in a wide output too.
                    for k in 0..count {
                        let v = fast.requantize(q, accs[k * LANES]);
                        out[k * out_step] = T::from_clamped(v as i32);
                    }
                }
            }
            ColumnQuant::General(cq) => {
                for k in 0..count {
                    out[k * out_step + j] = cq.requantize_to(q, accs[k * LANES + j]);
                }
            }
        }
    }
}

/// A channel's output quantization, in [`RightShiftQuant`]'s short form where it applies (decided
/// once per block), with whether every accumulator's double fits in 32 bits (from the bias and
/// the number of taps).
#[derive(Clone, Copy)]
enum ColumnQuant {
    Short(RightShiftQuant, bool),
    General(ChannelQuant),
}

/// Whether [`column_asm`] is an assembly loop.
const COLUMN_ASM: bool = cfg!(ferrite_armv7m);

/// The loop of `column_asm` for accumulators whose doubles fit in 32 bits: each doubled by a
/// shift, `$mul` leaves the rounded high word of its product with the multiplier in `{h}`, then
/// the rounding term (with the output offset) and the shift, `SSAT` to int8 and `$clamp`.
#[cfg(ferrite_armv7m)]
macro_rules! doubled_column {
    (
        $fast:expr, $accs:expr, $count:expr, $out:expr, $step:expr, [$($mul:literal),*];
        $($clamp:literal),*; $($operands:tt)*
    ) => {{
        // SAFETY (the callers'): reads `accs[4 * k]` and writes `out[out_step * k]` for
        // k < count, both checked in bounds; no stack use. `SSAT` may set the Q flag, which the
        // overflow-checking loop clears before it reads it.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                "2:",
                "ldr {v}, [{acc}], #16",
                "lsl {v}, {v}, #1",
                $($mul,)*
                "add {v}, {h}, {round}",
                "add {v}, {v}, {h}, asr #31",
                "asr {v}, {v}, {right}",
                "ssat {v}, #8, {v}",
                $($clamp,)*
                "strb {v}, [{out}]",
                "add {out}, {out}, {step}",
                "subs {n}, {n}, #1",
                "bne 2b",
                acc = inout(reg) $accs.as_ptr() => _,
                out = inout(reg) $out.as_mut_ptr() => _,
                n = inout(reg) $count => _,
                step = in(reg) $step,
                m = in(reg) $fast.multiplier,
                round = in(reg) $fast.round,
                right = in(reg) $fast.right,
                $($operands)*
                v = out(reg) _,
                h = out(reg) _,
                options(nostack),
            );
        }
    }};
}

/// `out[k * out_step] = fast.requantize(accs[4 * k])` for `k < count` as one loop of Armv7E-M
/// assembly. When every double is known to fit in 32 bits (`doubles`), the accumulators are
/// doubled by a shift and `SSAT` clamps to int8 (then the activation's lower bound, if above
/// -128); otherwise `false` (outputs to be redone) if an accumulator's double did not fit, which
/// the saturating `QADD` reports in the sticky Q flag.
#[cfg(ferrite_dsp)]
#[inline(always)]
fn column_asm(
    fast: RightShiftQuant,
    doubles: bool,
    accs: &[i32],
    count: usize,
    out: &mut [i8],
    out_step: usize,
) -> bool {
    if count == 0 || accs.len() < 4 * (count - 1) + 1 || out.len() < out_step * (count - 1) + 1 {
        return false;
    }
    if doubles {
        match fast.act_min {
            ..=-128 => {
                doubled_column!(fast, accs, count, out, out_step, ["smmulr {h}, {v}, {m}"]; ;)
            }
            _ => doubled_column!(
                fast, accs, count, out, out_step, ["smmulr {h}, {v}, {m}"];
                "cmp {v}, {min}", "it lt", "movlt {v}, {min}"; min = in(reg) fast.act_min,
            ),
        }
        return true;
    }
    let apsr: u32;
    // SAFETY: reads `accs[4 * k]` and writes `out[out_step * k]` for k < count, both checked in
    // bounds above; no stack use. Clears the Q flag first, then reads the flags (APSR) back.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "msr APSR_nzcvq, {zero}",
            "2:",
            "ldr {v}, [{acc}], #16",
            "qadd {v}, {v}, {v}",
            "smmulr {h}, {v}, {m}",
            "add {v}, {h}, {round}",
            "add {v}, {v}, {h}, asr #31",
            "asr {v}, {v}, {right}",
            "cmp {v}, {min}",
            "it lt",
            "movlt {v}, {min}",
            "cmp {v}, #127",
            "it gt",
            "movgt {v}, #127",
            "strb {v}, [{out}]",
            "add {out}, {out}, {step}",
            "subs {n}, {n}, #1",
            "bne 2b",
            "mrs {apsr}, APSR",
            zero = in(reg) 0u32,
            acc = inout(reg) accs.as_ptr() => _,
            out = inout(reg) out.as_mut_ptr() => _,
            n = inout(reg) count => _,
            step = in(reg) out_step,
            m = in(reg) fast.multiplier,
            round = in(reg) fast.round,
            right = in(reg) fast.right,
            min = in(reg) fast.act_min,
            v = out(reg) _,
            h = out(reg) _,
            apsr = lateout(reg) apsr,
            options(nostack),
        );
    }
    apsr & (1 << 27) == 0
}

/// [`column_asm`] for Armv7-M without the DSP extension: `SMULL` and a 64-bit rounding add
/// stand for `SMMULR`, and an overflowing double sets a flag (unless `doubles`: then `SSAT`
/// clamps, as there).
#[cfg(all(ferrite_armv7m, not(ferrite_dsp)))]
#[inline(always)]
fn column_asm(
    fast: RightShiftQuant,
    doubles: bool,
    accs: &[i32],
    count: usize,
    out: &mut [i8],
    out_step: usize,
) -> bool {
    if count == 0 || accs.len() < 4 * (count - 1) + 1 || out.len() < out_step * (count - 1) + 1 {
        return false;
    }
    if doubles {
        match fast.act_min {
            ..=-128 => doubled_column!(
                fast, accs, count, out, out_step,
                ["smull {lo}, {h}, {v}, {m}", "adds {lo}, {lo}, #0x80000000", "adc {h}, {h}, #0"];
                ; lo = out(reg) _,
            ),
            _ => doubled_column!(
                fast, accs, count, out, out_step,
                ["smull {lo}, {h}, {v}, {m}", "adds {lo}, {lo}, #0x80000000", "adc {h}, {h}, #0"];
                "cmp {v}, {min}", "it lt", "movlt {v}, {min}";
                min = in(reg) fast.act_min, lo = out(reg) _,
            ),
        }
        return true;
    }
    let overflow: u32;
    // SAFETY: reads `accs[4 * k]` and writes `out[out_step * k]` for k < count, both checked in
    // bounds above; no stack use.
    #[allow(unsafe_code)]
    unsafe {
        core::arch::asm!(
            "movs {flag}, #0",
            "2:",
            "ldr {v}, [{acc}], #16",
            "adds {v}, {v}, {v}",
            "it vs",
            "movvs {flag}, #1",
            "smull {lo}, {h}, {v}, {m}",
            "adds {lo}, {lo}, #0x80000000",
            "adc {h}, {h}, #0",
            "add {v}, {h}, {round}",
            "add {v}, {v}, {h}, asr #31",
            "asr {v}, {v}, {right}",
            "cmp {v}, {min}",
            "it lt",
            "movlt {v}, {min}",
            "cmp {v}, #127",
            "it gt",
            "movgt {v}, #127",
            "strb {v}, [{out}]",
            "add {out}, {out}, {step}",
            "subs {n}, {n}, #1",
            "bne 2b",
            acc = inout(reg) accs.as_ptr() => _,
            out = inout(reg) out.as_mut_ptr() => _,
            n = inout(reg) count => _,
            step = in(reg) out_step,
            m = in(reg) fast.multiplier,
            round = in(reg) fast.round,
            right = in(reg) fast.right,
            min = in(reg) fast.act_min,
            v = out(reg) _,
            lo = out(reg) _,
            h = out(reg) _,
            flag = out(reg) overflow,
            options(nostack),
        );
    }
    overflow == 0
}

#[cfg(not(ferrite_armv7m))]
#[inline(always)]
fn column_asm(_: RightShiftQuant, _: bool, _: &[i32], _: usize, _: &mut [i8], _: usize) -> bool {
    false
}

/// Little-endian word of up to four bytes (missing ones zero).
#[inline(always)]
fn word(b: &[i8]) -> u32 {
    let mut v = [0u8; 4];
    for (d, &s) in v.iter_mut().zip(b) {
        *d = s as u8;
    }
    u32::from_le_bytes(v)
}

/// Expands one input row (`src` starts at its first column's channel `c0`, columns every `c`
/// bytes, `real` channels used) into `dst`, whose column `j` is input column `start + j`, widened
/// with `off` added, and with `MIRROR` into `mirror` too (as long as `dst`): the same words stored
/// twice instead of copied after. Columns outside the input are left as they are: the callers keep
/// them zero.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn expand<const DSP: bool, const MIRROR: bool>(
    src: &[i8],
    c: usize,
    width: usize,
    real: usize,
    start: isize,
    off: i32,
    dst: &mut [u32],
    mirror: &mut [u32],
) {
    let words = column_words(DSP);
    let columns = dst.len() / words;
    // Destination columns first..last hold input columns start + first..start + last.
    let first = (-start).clamp(0, columns as isize) as usize;
    let last = (width as isize - start).clamp(first as isize, columns as isize) as usize;
    if first == last {
        return;
    }
    let src = &src[(start + first as isize) as usize * c..];
    let inside = &mut dst[first * words..last * words];
    let mut mirrored = mirror
        .get_mut(first * words..)
        .unwrap_or_default()
        .chunks_exact_mut(words);
    if DSP {
        let off2 = (off as u32 & 0xffff) * 0x1_0001;
        for (k, d) in inside.chunks_exact_mut(2).enumerate() {
            let v = match src.get(k * c..k * c + 4) {
                Some(&[a, b, c, d]) if real == 4 => {
                    u32::from_le_bytes([a, b, c, d].map(|x| x as u8))
                }
                _ => word(&src[k * c..][..real]),
            };
            // Lanes stay within -255..=255: the halfword adds never wrap.
            d[0] = sadd16(sxtb16(v), off2);
            d[1] = sadd16(sxtb16_ror8(v), off2);
            if let (true, Some(m)) = (MIRROR, mirrored.next()) {
                m.copy_from_slice(d);
            }
        }
    } else {
        for (k, d) in inside.chunks_exact_mut(4).enumerate() {
            match src.get(k * c..k * c + 4) {
                Some(&[a, b, c, e]) if real == 4 => {
                    d[0] = (a as i32 + off) as u32;
                    d[1] = (b as i32 + off) as u32;
                    d[2] = (c as i32 + off) as u32;
                    d[3] = (e as i32 + off) as u32;
                }
                _ => {
                    let x = &src[k * c..][..real];
                    for (j, d) in d.iter_mut().enumerate() {
                        *d = x.get(j).map_or(0, |&v| (v as i32 + off) as u32);
                    }
                }
            }
            if let (true, Some(m)) = (MIRROR, mirrored.next()) {
                m.copy_from_slice(d);
            }
        }
    }
}

/// The nine taps of one position, four channels: `acc[j] += sum x * w` over the expanded input
/// `rows[ky][2 * kx..][..2]` and weights `w[3 * ky + kx]`.
#[inline(always)]
fn taps_3x3_dsp(rows: [&[u32; 6]; 3], w: &[[u32; 4]; 9], acc: [i32; 4]) -> [i32; 4] {
    #[cfg(ferrite_dsp)]
    {
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        macro_rules! tap {
            ($row:literal, $x:literal, $w:literal) => {
                concat!(
                    "ldrd {x0}, {x1}, [{",
                    $row,
                    "}, #",
                    $x,
                    "]\n",
                    "ldrd {w0}, {w1}, [{wt}, #",
                    $w,
                    "]\n",
                    "smlabb {a0}, {x0}, {w0}, {a0}\n",
                    "smlatt {a2}, {x0}, {w0}, {a2}\n",
                    "smlabb {a1}, {x1}, {w1}, {a1}\n",
                    "smlatt {a3}, {x1}, {w1}, {a3}\n",
                )
            };
        }
        // SAFETY: reads words 0..6 of each of the three rows and words 0..34 of the weights, all
        // inside the arrays the references point to (LDRD needs word alignment: both are `u32`
        // arrays). No stores, no stack use; SMLAxy may set the Q flag, which nothing reads.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                tap!("r0", "0", "0"),
                tap!("r0", "8", "16"),
                tap!("r0", "16", "32"),
                tap!("r1", "0", "48"),
                tap!("r1", "8", "64"),
                tap!("r1", "16", "80"),
                tap!("r2", "0", "96"),
                tap!("r2", "8", "112"),
                tap!("r2", "16", "128"),
                r0 = in(reg) rows[0].as_ptr(),
                r1 = in(reg) rows[1].as_ptr(),
                r2 = in(reg) rows[2].as_ptr(),
                wt = in(reg) w.as_ptr(),
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x0 = out(reg) _,
                x1 = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                options(pure, readonly, nostack),
            );
        }
        [a0, a1, a2, a3]
    }
    #[cfg(not(ferrite_dsp))]
    {
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        for (ky, x) in rows.iter().enumerate() {
            for kx in 0..3 {
                let (e, o) = (x[2 * kx], x[2 * kx + 1]);
                let [we, wo, _, _] = w[ky * 3 + kx];
                a0 = smlabb(e, we, a0);
                a2 = smlatt(e, we, a2);
                a1 = smlabb(o, wo, a1);
                a3 = smlatt(o, wo, a3);
            }
        }
        [a0, a1, a2, a3]
    }
}

/// Accumulators of one output row of a 3x3, horizontally undilated kernel, four channels per
/// position (`accs[4 * ox..][..4]`): `taps` computes a position from the three rows' `N` words of
/// its window (`N / 3` words per column).
#[inline(always)]
fn taps_row_3x3<const N: usize>(
    rows: [&[u32]; 3],
    w: &Weights,
    stride: usize,
    acc0: [i32; 4],
    accs: &mut [i32],
    taps: impl Fn([&[u32; N]; 3], &[[u32; 4]; 9], [i32; 4]) -> [i32; 4],
) {
    let Ok(w) = <&[[u32; 4]; 9]>::try_from(&w[..9]) else {
        return;
    };
    fn window<const N: usize>(row: &[u32], base: usize) -> Option<&[u32; N]> {
        row.get(base..base + N)?.try_into().ok()
    }
    for (ox, acc) in accs.chunks_exact_mut(4).enumerate() {
        let base = ox * stride * (N / 3);
        let (Some(x0), Some(x1), Some(x2)) = (
            window(rows[0], base),
            window(rows[1], base),
            window(rows[2], base),
        ) else {
            return;
        };
        acc.copy_from_slice(&taps([x0, x1, x2], w, acc0));
    }
}

/// The nine taps of one position, four `i32` lanes: `acc[j] += sum x * w` over the expanded input
/// `rows[ky][4 * kx + j]` and weights `w[3 * ky + kx][j]`.
#[inline(always)]
fn taps_3x3(rows: [&[u32; 12]; 3], w: &[[u32; 4]; 9], acc: [i32; 4]) -> [i32; 4] {
    #[cfg(all(ferrite_armv7m, not(ferrite_dsp)))]
    {
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        macro_rules! tap {
            ($row:literal, $x:literal, $x8:literal, $w:literal, $w8:literal) => {
                concat!(
                    "ldrd {x0}, {x1}, [{",
                    $row,
                    "}, #",
                    $x,
                    "]\n",
                    "ldrd {w0}, {w1}, [{wt}, #",
                    $w,
                    "]\n",
                    "mla {a0}, {x0}, {w0}, {a0}\n",
                    "mla {a1}, {x1}, {w1}, {a1}\n",
                    "ldrd {x0}, {x1}, [{",
                    $row,
                    "}, #",
                    $x8,
                    "]\n",
                    "ldrd {w0}, {w1}, [{wt}, #",
                    $w8,
                    "]\n",
                    "mla {a2}, {x0}, {w0}, {a2}\n",
                    "mla {a3}, {x1}, {w1}, {a3}\n",
                )
            };
        }
        // SAFETY: reads words 0..12 of each of the three rows and words 0..36 of the weights, all
        // inside the arrays the references point to (LDRD needs word alignment: both are `u32`
        // arrays). No stores, no stack use, flags untouched.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::asm!(
                tap!("r0", "0", "8", "0", "8"),
                tap!("r0", "16", "24", "16", "24"),
                tap!("r0", "32", "40", "32", "40"),
                tap!("r1", "0", "8", "48", "56"),
                tap!("r1", "16", "24", "64", "72"),
                tap!("r1", "32", "40", "80", "88"),
                tap!("r2", "0", "8", "96", "104"),
                tap!("r2", "16", "24", "112", "120"),
                tap!("r2", "32", "40", "128", "136"),
                r0 = in(reg) rows[0].as_ptr(),
                r1 = in(reg) rows[1].as_ptr(),
                r2 = in(reg) rows[2].as_ptr(),
                wt = in(reg) w.as_ptr(),
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x0 = out(reg) _,
                x1 = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        [a0, a1, a2, a3]
    }
    #[cfg(not(all(ferrite_armv7m, not(ferrite_dsp))))]
    taps_3x3_portable(rows, w, acc)
}

/// [`taps_3x3`] in plain Rust.
#[cfg_attr(all(ferrite_armv7m, not(ferrite_dsp)), allow(dead_code))]
#[inline(always)]
fn taps_3x3_portable(rows: [&[u32; 12]; 3], w: &[[u32; 4]; 9], acc: [i32; 4]) -> [i32; 4] {
    let mut a = acc;
    for (ky, x) in rows.iter().enumerate() {
        for kx in 0..3 {
            let wt = &w[ky * 3 + kx];
            for j in 0..4 {
                a[j] = a[j].wrapping_add((x[4 * kx + j] as i32).wrapping_mul(wt[j] as i32));
            }
        }
    }
    a
}

/// Accumulators of one output row of any kernel (four per position): `rows[ky]` is where row
/// `ky`'s expanded input starts in `ring`.
#[inline(never)]
fn taps_row_any<const DSP: bool>(
    ring: &[u32],
    rows: &[usize],
    slot_len: usize,
    w: &Weights,
    g: &ConvGeometry,
    acc0: [i32; 4],
    accs: &mut [i32],
) {
    let words = column_words(DSP);
    for (ox, acc) in accs.chunks_exact_mut(LANES).enumerate() {
        let [mut a0, mut a1, mut a2, mut a3] = acc0;
        for (ky, &start) in rows.iter().enumerate() {
            let row = &ring[start..][..slot_len];
            for kx in 0..g.kernel_w {
                let col = (ox * g.stride_w + kx * g.dilation_w) * words;
                let wt = w[ky * g.kernel_w + kx];
                if DSP {
                    let (e, o) = (row[col], row[col + 1]);
                    a0 = smlabb(e, wt[0], a0);
                    a2 = smlatt(e, wt[0], a2);
                    a1 = smlabb(o, wt[1], a1);
                    a3 = smlatt(o, wt[1], a3);
                } else {
                    let x = |j: usize| row[col + j] as i32;
                    a0 = a0.wrapping_add(x(0).wrapping_mul(wt[0] as i32));
                    a1 = a1.wrapping_add(x(1).wrapping_mul(wt[1] as i32));
                    a2 = a2.wrapping_add(x(2).wrapping_mul(wt[2] as i32));
                    a3 = a3.wrapping_add(x(3).wrapping_mul(wt[3] as i32));
                }
            }
        }
        acc.copy_from_slice(&[a0, a1, a2, a3]);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testgen::{problems, Problem};
    use super::*;
    use crate::kernels::depthwise_conv2d::depthwise_conv2d_s8;
    use proptest::prelude::*;
    use std::vec;

    fn check<const DSP: bool>(p: &Problem) -> Result<(), TestCaseError> {
        prop_assume!(fits::<DSP>(&p.g));
        let q = p.quant();
        let bias = LeI32::new(&p.bias).unwrap();
        let mut want = vec![0i8; p.g.output.len()];
        depthwise_conv2d_s8(&p.g, 1, &q, &p.input, &p.filter, bias, &mut want);
        let mut got = vec![0i8; p.g.output.len()];
        depthwise_conv2d_s8_fast::<DSP, _>(&p.g, &q, &p.input, &p.filter, bias, &mut got);
        prop_assert_eq!(got, want);
        // A wide (int16) output.
        for q in p.wide_quants() {
            let mut want = vec![0i16; p.g.output.len()];
            depthwise_conv2d_s8(&p.g, 1, &q, &p.input, &p.filter, bias, &mut want);
            let mut got = want.iter().map(|v| !v).collect::<std::vec::Vec<i16>>();
            depthwise_conv2d_s8_fast::<DSP, _>(&p.g, &q, &p.input, &p.filter, bias, &mut got);
            prop_assert_eq!(got, want);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(600))]

        #[test]
        fn portable_matches_reference(p in problems(11, true)) {
            check::<false>(&p)?;
        }

        #[test]
        fn dsp_matches_reference(p in problems(11, true)) {
            check::<true>(&p)?;
        }
    }

    /// A random problem for `g` (quantization per channel, a bias) and the reference kernel's
    /// output on it.
    fn random(g: ConvGeometry, seed: u64) -> (Problem, std::vec::Vec<i8>) {
        let p = Problem::random(g, true, true, true, seed);
        let mut want = vec![0i8; g.output.len()];
        let bias = LeI32::new(&p.bias).unwrap();
        depthwise_conv2d_s8(&g, 1, &p.quant(), &p.input, &p.filter, bias, &mut want);
        (p, want)
    }

    proptest! {
        #![proptest_config(crate::proptest_config(300))]

        /// Written over its input, the kernel computes what the reference computes out of place,
        /// with and without `DSP`, on every geometry that runs over its input (strided and
        /// unpadded ones among them).
        #[test]
        fn over_input_matches_reference(
            (h, w, ch) in (1usize..16, 1usize..24, 1usize..20),
            (kh, kw, dw) in (1usize..6, 1usize..6, 1usize..3),
            (sh, sw) in (1usize..4, 1usize..4),
            (pads, seed) in ((0usize..9, 0usize..9, 0usize..9, 0usize..9), any::<u64>()),
        ) {
            // No vertical dilation, and padding that leaves the output no larger than the input.
            let dh = 1;
            let (span_h, span_w) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
            let (pt, pl) = (pads.0 % span_h, pads.1 % span_w);
            let (pb, pr) = (pads.2 % (span_h - pt), pads.3 % (span_w - pl));
            prop_assume!(h + pt + pb >= span_h && w + pl + pr >= span_w);
            let out_h = (h + pt + pb - span_h) / sh + 1;
            let out_w = (w + pl + pr - span_w) / sw + 1;
            let g = ConvGeometry {
                input: crate::kernels::Nhwc::new(1, h, w, ch),
                output: crate::kernels::Nhwc::new(1, out_h, out_w, ch),
                kernel_h: kh,
                kernel_w: kw,
                stride_h: sh,
                stride_w: sw,
                dilation_h: dh,
                dilation_w: dw,
                pad_top: pt,
                pad_left: pl,
            };
            prop_assume!(runs_over_input(&g));
            let (p, want) = random(g, seed);
            let bias = LeI32::new(&p.bias).unwrap();
            let n = want.len();
            let mut got = p.input.clone();
            depthwise_conv2d_s8_over_input::<false>(&g, &p.quant(), &mut got, &p.filter, bias);
            prop_assert_eq!(&got[..n], &want[..]);
            let mut got = p.input.clone();
            depthwise_conv2d_s8_over_input::<true>(&g, &p.quant(), &mut got, &p.filter, bias);
            prop_assert_eq!(&got[..n], &want[..]);
        }
    }

    #[test]
    fn over_input_needs_no_larger_output_and_whole_rows() {
        let g = |w, stride| ConvGeometry {
            input: crate::kernels::Nhwc::new(1, 5, w, 64),
            output: crate::kernels::Nhwc::new(1, 5 / stride, w / stride, 64),
            kernel_h: 3,
            kernel_w: 3,
            stride_h: stride,
            stride_w: stride,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
        };
        assert!(runs_over_input(&g(5, 1)));
        assert!(runs_over_input(&g(20, 1)));
        assert!(runs_over_input(&g(10, 2)));
        // Rows wider than one tile would have a later tile read columns an earlier one wrote.
        assert!(!runs_over_input(&g(100, 1)));
        // An output wider than its input would run past input rows not yet read.
        let wider = ConvGeometry {
            output: crate::kernels::Nhwc::new(1, 5, 7, 64),
            pad_left: 2,
            ..g(5, 1)
        };
        assert!(!runs_over_input(&wider));
    }

    #[test]
    fn tiled_rows_match_reference() {
        // Rows wider than a ring slot, in every combination the tiles must get right.
        let mut rng = crate::kernels::testutil::Rng::new(7);
        for case in (0..60).take(crate::MIRI_CASES) {
            let k = [1, 3, 5][case % 3];
            let (stride, dilation) = (1 + case % 2, 1 + (case / 2) % 2);
            let span = (k - 1) * dilation + 1;
            let w = rng.range(40, 140) as usize;
            let (pad_left, pad_top) = (rng.range(0, span as i32 - 1) as usize, (span - 1) / 2);
            let out_w = (w + 2 * pad_left).saturating_sub(span) / stride + 1;
            let h = rng.range(span as i32, span as i32 + 3) as usize;
            let out_h = (h + 2 * pad_top - span) / stride + 1;
            let ch = rng.range(1, 9) as usize;
            let g = ConvGeometry {
                input: crate::kernels::Nhwc::new(1, h, w, ch),
                output: crate::kernels::Nhwc::new(1, out_h, out_w, ch),
                kernel_h: k,
                kernel_w: k,
                stride_h: stride,
                stride_w: stride,
                dilation_h: dilation,
                dilation_w: dilation,
                pad_top,
                pad_left,
            };
            let (p, want) = random(g, rng.range(0, i32::MAX) as u64);
            let (q, bias) = (p.quant(), LeI32::new(&p.bias).unwrap());
            let (input, filter) = (&p.input, &p.filter);
            for dsp in [false, true] {
                let mut got = vec![0i8; g.output.len()];
                if dsp {
                    assert!(fits::<true>(&g));
                    depthwise_conv2d_s8_fast::<true, _>(&g, &q, input, filter, bias, &mut got);
                } else {
                    assert!(fits::<false>(&g));
                    depthwise_conv2d_s8_fast::<false, _>(&g, &q, input, filter, bias, &mut got);
                }
                assert_eq!(got, want, "case {case}, dsp {dsp}, {g:?}");
            }
        }
    }

    #[test]
    fn wide_rows_are_tiled() {
        let g = |w| ConvGeometry {
            input: crate::kernels::Nhwc::new(1, 3, w, 8),
            output: crate::kernels::Nhwc::new(1, 3, w, 8),
            kernel_h: 3,
            kernel_w: 3,
            stride_h: 1,
            stride_w: 1,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
        };
        // Wide rows are processed in tiles of output columns.
        for w in [20, 40, 100, 300] {
            assert!(fits::<true>(&g(w)) && fits::<false>(&g(w)));
        }
        assert_eq!(tile_width::<true>(&g(20)), 20);
        assert!(tile_width::<false>(&g(100)) < 100);
    }
}
