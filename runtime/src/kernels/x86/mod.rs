//! x86-64 SIMD paths of the int8 matrix kernels (Conv2D, FullyConnected) and same-shape Add, chosen
//! at run time from the CPU's extensions and bit-exact with the reference kernels (property-tested
//! below against them and the portable optimized kernels).
//!
//! Conv2D and FullyConnected are one product: each output position's receptive field (the patch,
//! gathered with padding as the input zero point, or an input row) times each output channel's
//! filter row, plus the channel's bias with the input offset folded in (`sum w * (x + off) =
//! sum w * x + off * sum w`). The filter is repacked on the stack, eight output channels per
//! 256-bit register: for each group of four patch values, the eight channels' four weights. One
//! group's four patch values are broadcast to the eight lanes and multiplied with that word:
//! - AVX2: both split into their even and odd bytes sign-extended to 16 bits, two `vpmaddwd`
//!   (`_mm256_madd_epi16`), exact since every pair sum fits in 16 x 16 -> 32 bits;
//! - AVX-VNNI or AVX512-VNNI (256-bit): one `vpdpbusd`, unsigned patch bytes by signed weights,
//!   with the patch stored as `x + 128` (`x ^ 0x80`) and `128 * sum w` taken off the bias.
//!
//! Four output positions and two blocks of eight channels are computed together. Every sum is
//! the same set of exact products added in wrapping `i32` arithmetic, as the reference does, so
//! the order does not change the bits; requantization is the optimized kernels' exact
//! `ChannelQuant` / `RightShiftQuant` arithmetic, eight channels per vector (`requantize8`), one value
//! at a time where a multiplier has no vector form.
//!
//! DepthwiseConv2D has no SIMD path yet: it runs the portable optimized kernel.
//!
//! Detection reads CPUID and XCR0 directly (`core` has no `is_x86_feature_detected!`), once.
//!
//! This module and the Arm assembly of `optimized/` are the crate's only `unsafe`: the
//! `#[target_feature]` functions (called only after detection) and the unaligned vector loads
//! from slices whose lengths are checked where they are made.
#![allow(unsafe_code)]

use super::optimized::conv2d::{gather_at, weight_sum};
use super::optimized::{ChannelQuant, RightShiftQuant};
use super::{ConvGeometry, LeI32, OutputQuant};
use core::arch::x86_64::*;
use core::sync::atomic::{AtomicU8, Ordering};

/// The SIMD extensions a kernel can use, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// None usable: the portable kernels run.
    Portable,
    /// AVX2: `vpmaddwd` on sign-extended bytes.
    Avx2,
    /// AVX512-VNNI with AVX512-VL: 256-bit `vpdpbusd` (EVEX).
    Avx512Vnni,
    /// AVX-VNNI: 256-bit `vpdpbusd` (VEX).
    AvxVnni,
}

/// What this CPU can run, detected once: bit 0 once detected, then one bit per level from
/// [`Level::Avx2`] (bit 1) up.
static AVAILABLE: AtomicU8 = AtomicU8::new(0);

/// Bit of `level` in [`AVAILABLE`].
fn level_bit(level: Level) -> u8 {
    1 << level as u8
}

/// The [`AVAILABLE`] mask.
fn mask() -> u8 {
    // Miri runs neither CPUID nor XGETBV (inline assembly) nor most AVX2 intrinsics: the portable
    // kernels only.
    if cfg!(miri) {
        return 1;
    }
    let m = AVAILABLE.load(Ordering::Relaxed);
    if m != 0 {
        return m;
    }
    let mut m = 1;
    if has_avx2() {
        m |= level_bit(Level::Avx2);
        if has_avx512_vnni() {
            m |= level_bit(Level::Avx512Vnni);
        }
        if bit(leaf7(1).0, 4) {
            m |= level_bit(Level::AvxVnni);
        }
    }
    AVAILABLE.store(m, Ordering::Relaxed);
    m
}

/// The best [`Level`] of this CPU (detected once).
pub fn level() -> Level {
    available().last().unwrap_or(Level::Portable)
}

/// The levels this CPU can run, from [`Level::Avx2`] up (for tests and comparisons).
pub fn available() -> impl Iterator<Item = Level> {
    let m = mask();
    [Level::Avx2, Level::Avx512Vnni, Level::AvxVnni]
        .into_iter()
        .filter(move |&l| m & level_bit(l) != 0)
}

/// Whether this CPU can run `level`'s kernels.
pub fn supported(level: Level) -> bool {
    level != Level::Portable && mask() & level_bit(level) != 0
}

/// Whether bit `bit` of `word` is set.
fn bit(word: u32, bit: u32) -> bool {
    word >> bit & 1 == 1
}

/// XCR0 (the register state the OS saves), 0 without OSXSAVE.
fn xcr0() -> u64 {
    let l1 = __cpuid(1);
    if !bit(l1.ecx, 27) {
        return 0;
    }
    // SAFETY: OSXSAVE (CPUID.1:ECX[27]) is set, so XGETBV is enabled and XCR0 readable.
    unsafe { read_xcr0() }
}

/// # Safety
///
/// The CPU must report OSXSAVE (CPUID.1:ECX bit 27).
#[target_feature(enable = "xsave")]
unsafe fn read_xcr0() -> u64 {
    _xgetbv(0)
}

/// CPUID leaf 7 subleaf `sub` as (eax, ebx, ecx), zeros where leaf 7 does not exist.
fn leaf7(sub: u32) -> (u32, u32, u32) {
    let max = __cpuid(0).eax;
    if max < 7 {
        return (0, 0, 0);
    }
    // Leaf 7 exists (checked above); an unknown subleaf returns zeros.
    let r = __cpuid_count(7, sub);
    (r.eax, r.ebx, r.ecx)
}

/// AVX2 with the OS saving YMM state.
fn has_avx2() -> bool {
    let l1 = __cpuid(1);
    bit(l1.ecx, 28) && xcr0() & 0b110 == 0b110 && bit(leaf7(0).1, 5)
}

/// AVX512F, AVX512VL and AVX512-VNNI with the OS saving the AVX-512 state.
fn has_avx512_vnni() -> bool {
    let (_, ebx, ecx) = leaf7(0);
    has_avx2() && xcr0() & 0xe6 == 0xe6 && bit(ebx, 16) && bit(ebx, 31) && bit(ecx, 11)
}

/// Largest patch (`kernel_h * kernel_w * in_c`, or `in_features`) the packed path takes.
const LEN_MAX: usize = 4096;
/// Bytes of repacked filter held at once (stack).
const PACKED_MAX: usize = 32768;
/// The smaller buffers' patch length and repacked filter bytes (3x3x56 patches, 32 channels of
/// 3x3x16 at once).
const SMALL_LEN: usize = 512;
/// See [`SMALL_LEN`].
const SMALL_PACKED: usize = 12288;
/// Most output channels prepared at once (stack).
const CHUNK_MAX: usize = 256;
/// Output positions computed together.
const NP: usize = 4;

/// One instruction set's dot-product step on a group of four patch values by eight channels.
trait Isa {
    /// Added to every patch value before it is stored (`x ^ 0x80` for 128).
    const X_BIAS: i32;
    /// A group's weights for eight channels, prepared once for all positions.
    type W: Copy;
    /// A group's four patch values, prepared once for all channel blocks.
    type X: Copy;
    /// # Safety
    ///
    /// The CPU must have this instruction set.
    unsafe fn weights(w: __m256i) -> Self::W;
    /// # Safety
    ///
    /// As [`Isa::weights`].
    unsafe fn input(x: i32) -> Self::X;
    /// `acc + ` the eight lanes' sums of four products.
    ///
    /// # Safety
    ///
    /// As [`Isa::weights`].
    unsafe fn dot(acc: __m256i, x: Self::X, w: Self::W) -> __m256i;
}

/// AVX2: `vpmaddwd` on even and odd bytes sign-extended to 16 bits.
struct Avx2;

/// Even and odd bytes of each 16-bit half, sign-extended to 16 bits.
#[target_feature(enable = "avx2")]
#[inline]
fn split(v: __m256i) -> (__m256i, __m256i) {
    (
        _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(v)),
        _mm256_srai_epi16::<8>(v),
    )
}

impl Isa for Avx2 {
    const X_BIAS: i32 = 0;
    type W = (__m256i, __m256i);
    type X = (__m256i, __m256i);
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn weights(w: __m256i) -> Self::W {
        split(w)
    }
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn input(x: i32) -> Self::X {
        split(_mm256_set1_epi32(x))
    }
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn dot(acc: __m256i, x: Self::X, w: Self::W) -> __m256i {
        // (x0 w0 + x2 w2) + (x1 w1 + x3 w3) per lane: |each pair sum| <= 2 * 128 * 128.
        let even = _mm256_madd_epi16(x.0, w.0);
        let odd = _mm256_madd_epi16(x.1, w.1);
        _mm256_add_epi32(acc, _mm256_add_epi32(even, odd))
    }
}

/// A 256-bit `vpdpbusd` instruction set: `$name`, its features and intrinsic.
macro_rules! vnni_isa {
    ($(#[$doc:meta])* $name:ident, $features:literal, $dpbusd:ident) => {
        $(#[$doc])*
        struct $name;

        impl Isa for $name {
            const X_BIAS: i32 = 128;
            type W = __m256i;
            type X = __m256i;
            #[target_feature(enable = "avx2")]
            #[inline]
            unsafe fn weights(w: __m256i) -> Self::W {
                w
            }
            #[target_feature(enable = "avx2")]
            #[inline]
            unsafe fn input(x: i32) -> Self::X {
                _mm256_set1_epi32(x)
            }
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn dot(acc: __m256i, x: Self::X, w: Self::W) -> __m256i {
                // Non-saturating: acc + sum of four u8 * i8 products, wrapping.
                $dpbusd(acc, x, w)
            }
        }
    };
}

vnni_isa!(
    /// AVX-VNNI: VEX `vpdpbusd`.
    AvxVnni,
    "avx2,avxvnni",
    _mm256_dpbusd_avx_epi32
);
vnni_isa!(
    /// AVX512-VNNI (256-bit, AVX512-VL): EVEX `vpdpbusd`.
    Avx512Vnni,
    "avx2,avx512f,avx512vl,avx512vnni",
    _mm256_dpbusd_epi32
);

/// 32 bytes as a vector.
///
/// # Safety
///
/// The CPU must support AVX2 (the callers run only after detection).
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load32(b: &[u8; 32]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes and the load is unaligned; AVX2 is enabled here.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// The matrix product shared by Conv2D and FullyConnected, at `level` (not `Portable`).
struct Product<'a, 'q> {
    /// Output positions (rows of the output).
    positions: usize,
    /// Patch length.
    len: usize,
    out_c: usize,
    q: &'a OutputQuant<'q>,
    /// `[out_c, len]`.
    filter: &'a [i8],
    bias: LeI32<'a>,
    /// `[positions, out_c]`.
    output: &'a mut [i8],
}

/// Requantization of one output channel: the short right-shift form where it applies.
#[derive(Clone, Copy)]
struct Requant {
    channel: ChannelQuant,
    fast: Option<RightShiftQuant>,
}

impl Requant {
    #[inline(always)]
    fn new(q: &OutputQuant<'_>, c: usize) -> Self {
        let channel = ChannelQuant::new(q, c);
        Self {
            channel,
            fast: RightShiftQuant::new(channel, q),
        }
    }

    #[inline(always)]
    fn apply(self, q: &OutputQuant<'_>, acc: i32) -> i8 {
        match self.fast {
            Some(f) => f.requantize(q, acc),
            None => self.channel.requantize(q, acc),
        }
    }
}

/// [`ChannelQuant::scale`] for a block of eight channels in vector form (see [`requantize8`]):
/// per lane the left shift and multiplier, and per 64-bit product (even lanes, then odd lanes)
/// the constants of the rounding shift.
#[derive(Clone, Copy, Default)]
struct BlockQuant {
    /// Whether no multiplier of the block is `i32::MIN` (the one case whose scaled value
    /// saturates); otherwise the block is requantized one value at a time.
    vector: bool,
    left: [i32; 8],
    multiplier: [i32; 8],
    /// `2^63 + 2^30`, plus `2^(30 + right)` when `right > 0` (wrapping).
    add: [[i64; 4]; 2],
    /// `-2^31` when `right > 0` (added for a negative product), else 0.
    neg_add: [[i64; 4]; 2],
    /// `31 + right`.
    shift: [[i64; 4]; 2],
    /// `2^(63 - shift)`.
    sub: [[i64; 4]; 2],
}

impl BlockQuant {
    /// Lane `k`'s constants from its multiplier and shift.
    fn set(&mut self, k: usize, multiplier: i32, shift: i32) {
        let left = shift.max(0) & 31;
        let right = shift.min(0).wrapping_neg() & 31;
        let (h, i) = (k % 2, k / 2);
        self.left[k] = left;
        self.multiplier[k] = multiplier;
        let round = if right > 0 { 1i64 << (30 + right) } else { 0 };
        self.add[h][i] = i64::MIN.wrapping_add(1 << 30).wrapping_add(round);
        self.neg_add[h][i] = if right > 0 { -(1 << 31) } else { 0 };
        self.shift[h][i] = 31 + right as i64;
        self.sub[h][i] = 1 << (32 - right);
    }
}

/// The block's eight values `clamp(scale(acc) +sat output_offset, act_min, act_max)`, bit for
/// bit [`ChannelQuant::requantize`] when `bq.vector`; with `SATURATE` false the offset is added
/// wrapping (as Add does).
///
/// With `p = (acc << left) * multiplier` in 64 bits (`vpmuldq` on even and odd lanes, `|p| <
/// 2^62`), `scale` is `floor(x / 2^(31 + right))` with `x = p + 2^30` when `right = 0`, else
/// `x = p + 2^30 + 2^(30 + right)`, less `2^31` when `p < 0` (`|x| < 2^63`). AVX2 shifts 64-bit
/// lanes only logically, so the floor is taken of `x + 2^63` (non-negative), less
/// `2^(63 - shift)`: exact, and its low word is the scaled value. The output offset is added with
/// saturation, then the clamp.
///
/// # Safety
///
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn requantize8<const SATURATE: bool>(
    acc: &[i32; 8],
    bq: &BlockQuant,
    offset: __m256i,
    lo: __m256i,
    hi: __m256i,
) -> [i32; 8] {
    let v = |a: &[i32; 8]| {
        // SAFETY: `a` is 32 readable bytes (unaligned load).
        unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
    };
    let w = |a: &[i64; 4]| {
        // SAFETY: `a` is 32 readable bytes (unaligned load).
        unsafe { _mm256_loadu_si256(a.as_ptr().cast()) }
    };
    let a = _mm256_sllv_epi32(v(acc), v(&bq.left));
    let m = v(&bq.multiplier);
    let p = [
        _mm256_mul_epi32(a, m),
        _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), _mm256_srli_epi64::<32>(m)),
    ];
    let zero = _mm256_setzero_si256();
    let y: [__m256i; 2] = core::array::from_fn(|h| {
        let neg = _mm256_cmpgt_epi64(zero, p[h]);
        let x = _mm256_add_epi64(
            p[h],
            _mm256_add_epi64(w(&bq.add[h]), _mm256_and_si256(neg, w(&bq.neg_add[h]))),
        );
        _mm256_sub_epi64(_mm256_srlv_epi64(x, w(&bq.shift[h])), w(&bq.sub[h]))
    });
    let scaled = _mm256_blend_epi32::<0b1010_1010>(y[0], _mm256_slli_epi64::<32>(y[1]));
    // Saturating add: on overflow (both operands' signs differ from the sum's) the bound of the
    // offset's sign.
    let sum = _mm256_add_epi32(scaled, offset);
    let overflow = _mm256_and_si256(_mm256_xor_si256(scaled, sum), _mm256_xor_si256(offset, sum));
    let bound = _mm256_xor_si256(_mm256_set1_epi32(i32::MAX), _mm256_srai_epi32::<31>(offset));
    let sum = if SATURATE {
        _mm256_blendv_epi8(sum, bound, _mm256_srai_epi32::<31>(overflow))
    } else {
        sum
    };
    let r = _mm256_min_epi32(_mm256_max_epi32(sum, lo), hi);
    let mut out = [0i32; 8];
    // SAFETY: `out` is 32 writable bytes (unaligned store).
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), r) };
    out
}

impl Product<'_, '_> {
    /// Runs the product; `fill(p, patch)` writes position `p`'s `len` patch values.
    ///
    /// # Safety
    ///
    /// The CPU must have `I`'s instructions.
    #[inline(always)]
    unsafe fn run<I: Isa, const L: usize, const P: usize>(
        &mut self,
        mut fill: impl FnMut(usize, &mut [i8]),
    ) {
        let (len, out_c, q) = (self.len, self.out_c, self.q);
        let lp = len.next_multiple_of(4);
        let groups = lp / 4;
        let block = groups * 32;
        // Channels per chunk: a multiple of 8 whose repacked filter fits (`lp <= L`, `P >= 8 L`).
        let chunk = (P / block * 8)
            .min(CHUNK_MAX)
            .min(out_c.next_multiple_of(8));
        let mut packed = [0u8; P];
        let mut patches = [[0u8; L]; NP];
        let mut raw = [0i8; L];
        let mut starts = [0i32; CHUNK_MAX];
        let mut requant = [Requant {
            channel: ChannelQuant::default(),
            fast: None,
        }; CHUNK_MAX];
        let mut block_quant = [BlockQuant::default(); CHUNK_MAX / 8];
        let flip = I::X_BIAS as u8;
        let offset = _mm256_set1_epi32(q.output_offset);
        let (lo, hi) = (_mm256_set1_epi32(q.act_min), _mm256_set1_epi32(q.act_max));
        for c0 in (0..out_c).step_by(chunk) {
            let n = (out_c - c0).min(chunk);
            let blocks = n.div_ceil(8);
            // Repack: block b, group gi, lane j, byte k <- filter[c0 + 8b + j][4 gi + k], zeros
            // past the row and past the last channel.
            let packed = &mut packed[..blocks * block];
            packed.fill(0);
            for j in 0..n {
                let row = &self.filter[(c0 + j) * len..][..len];
                let (b, lane) = (j / 8, j % 8);
                for (gi, w) in row.chunks(4).enumerate() {
                    let at = b * block + gi * 32 + lane * 4;
                    for (d, &s) in packed[at..at + w.len()].iter_mut().zip(w) {
                        *d = s as u8;
                    }
                }
                let b0 = if self.bias.is_empty() {
                    0
                } else {
                    self.bias.get(c0 + j)
                };
                // sum w * (x + off) = sum w * (x + X_BIAS) + (off - X_BIAS) * sum w.
                let off = q.input_offset.wrapping_sub(I::X_BIAS);
                starts[j] = b0.wrapping_add(off.wrapping_mul(weight_sum(row)));
                requant[j] = Requant::new(q, c0 + j);
            }
            starts[n..blocks * 8].fill(0);
            for (b, bq) in block_quant.iter_mut().enumerate().take(blocks) {
                let lanes = b * 8..(b * 8 + 8).min(n);
                bq.vector = true;
                for (k, c) in lanes.map(|j| c0 + j).enumerate() {
                    let m = q.multiplier.get_or_first(c);
                    bq.vector &= m != i32::MIN;
                    bq.set(k, m, q.shift.get_or_first(c));
                }
            }
            let mut p0 = 0;
            while p0 < self.positions {
                let np = (self.positions - p0).min(NP);
                // Missing positions of a last short tile keep stale patches, computed and dropped.
                for (k, patch) in patches.iter_mut().enumerate().take(np) {
                    fill(p0 + k, &mut raw[..len]);
                    for (d, &s) in patch.iter_mut().zip(&raw[..len]) {
                        *d = s as u8 ^ flip;
                    }
                    patch[len..lp].fill(0);
                }
                let mut b = 0;
                while b < blocks {
                    let nb = if b + 1 < blocks { 2 } else { 1 };
                    let w = &packed[b * block..(b + nb) * block];
                    let mut acc = [[0i32; 8]; NP * 2];
                    // SAFETY: the CPU has `I`'s instructions (this function's contract).
                    unsafe {
                        if nb == 2 {
                            tile::<I, 2, L>(&patches, groups, w, &starts[b * 8..], &mut acc);
                        } else {
                            tile::<I, 1, L>(&patches, groups, w, &starts[b * 8..], &mut acc);
                        }
                    }
                    for p in 0..np {
                        let out = &mut self.output[(p0 + p) * out_c..][..out_c];
                        for bb in 0..nb {
                            let first = (b + bb) * 8;
                            let last = (first + 8).min(n);
                            let bq = &block_quant[b + bb];
                            let a = &acc[p * 2 + bb];
                            if bq.vector {
                                // SAFETY: the CPU has `I`'s instructions, AVX2 among them.
                                let r = unsafe { requantize8::<true>(a, bq, offset, lo, hi) };
                                for (o, &r) in out[c0 + first..c0 + last].iter_mut().zip(&r) {
                                    *o = r as i8;
                                }
                            } else {
                                for (j, &a) in (first..last).zip(a) {
                                    out[c0 + j] = requant[j].apply(q, a);
                                }
                            }
                        }
                    }
                    b += nb;
                }
                p0 += np;
            }
        }
    }

    /// [`Self::run`] at `level`; false (nothing written) at `Portable` or a level this CPU lacks.
    fn run_at(&mut self, level: Level, fill: impl FnMut(usize, &mut [i8])) -> bool {
        if !supported(level) || self.len == 0 || self.len > LEN_MAX {
            return false;
        }
        // The smaller buffers (less stack to clear per call) for patches up to `SMALL_LEN`.
        let small = self.len <= SMALL_LEN;
        // SAFETY: `supported` checked the CPU's extensions for `level`.
        unsafe {
            match (level, small) {
                (Level::Portable, _) => return false,
                (Level::Avx2, true) => run_avx2::<SMALL_LEN, SMALL_PACKED>(self, fill),
                (Level::Avx2, false) => run_avx2::<LEN_MAX, PACKED_MAX>(self, fill),
                (Level::Avx512Vnni, true) => run_avx512_vnni::<SMALL_LEN, SMALL_PACKED>(self, fill),
                (Level::Avx512Vnni, false) => run_avx512_vnni::<LEN_MAX, PACKED_MAX>(self, fill),
                (Level::AvxVnni, true) => run_avx_vnni::<SMALL_LEN, SMALL_PACKED>(self, fill),
                (Level::AvxVnni, false) => run_avx_vnni::<LEN_MAX, PACKED_MAX>(self, fill),
            }
        }
        true
    }
}

/// [`Product::run`] compiled for AVX2.
///
/// # Safety
///
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn run_avx2<const L: usize, const P: usize>(
    p: &mut Product<'_, '_>,
    fill: impl FnMut(usize, &mut [i8]),
) {
    p.run::<Avx2, L, P>(fill)
}

/// [`Product::run`] compiled for AVX-VNNI.
///
/// # Safety
///
/// The CPU must have AVX2 and AVX-VNNI.
#[target_feature(enable = "avx2,avxvnni")]
unsafe fn run_avx_vnni<const L: usize, const P: usize>(
    p: &mut Product<'_, '_>,
    fill: impl FnMut(usize, &mut [i8]),
) {
    p.run::<AvxVnni, L, P>(fill)
}

/// [`Product::run`] compiled for AVX512-VNNI on 256-bit vectors.
///
/// # Safety
///
/// The CPU must have AVX2, AVX512F, AVX512VL and AVX512-VNNI.
#[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
unsafe fn run_avx512_vnni<const L: usize, const P: usize>(
    p: &mut Product<'_, '_>,
    fill: impl FnMut(usize, &mut [i8]),
) {
    p.run::<Avx512Vnni, L, P>(fill)
}

/// Int8 Conv2D at the best level (same contract and result as
/// [`crate::kernels::conv2d::conv2d_s8`]); false, writing nothing, when this path does not apply
/// (no AVX2, or a patch over `LEN_MAX` values).
pub fn conv2d_s8(
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
) -> bool {
    conv2d_s8_at(level(), g, q, input, filter, bias, output)
}

/// [`conv2d_s8`] at `level` (false if this CPU lacks it).
pub fn conv2d_s8_at(
    level: Level,
    g: &ConvGeometry,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
) -> bool {
    let zero_point = (-q.input_offset) as i8;
    Product {
        positions: g.output.n * g.output.h * g.output.w,
        len: g.kernel_h * g.kernel_w * g.input.c,
        out_c: g.output.c,
        q,
        filter,
        bias,
        output,
    }
    .run_at(level, |p, raw| gather_at(g, input, p, zero_point, raw))
}

/// Int8 FullyConnected at the best level (same contract and result as
/// [`crate::kernels::fully_connected::fully_connected_s8`]); false, writing nothing, when this path
/// does not apply.
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s8(
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
) -> bool {
    fully_connected_s8_at(
        level(),
        batches,
        in_features,
        out_features,
        q,
        input,
        filter,
        bias,
        output,
    )
}

/// [`fully_connected_s8`] at `level` (false if this CPU lacks it).
#[allow(clippy::too_many_arguments)]
pub fn fully_connected_s8_at(
    level: Level,
    batches: usize,
    in_features: usize,
    out_features: usize,
    q: &OutputQuant<'_>,
    input: &[i8],
    filter: &[i8],
    bias: LeI32<'_>,
    output: &mut [i8],
) -> bool {
    Product {
        positions: batches,
        len: in_features,
        out_c: out_features,
        q,
        filter,
        bias,
        output,
    }
    .run_at(level, |p, raw| {
        raw.copy_from_slice(&input[p * in_features..][..in_features])
    })
}

/// Accumulators of `NP` positions by `NB` blocks of eight channels (`acc[p * 2 + b]`), from
/// `starts` (per channel) plus the dot products of `groups` groups.
///
/// # Safety
///
/// The CPU must have `I`'s instructions.
#[inline(always)]
unsafe fn tile<I: Isa, const NB: usize, const L: usize>(
    patches: &[[u8; L]; NP],
    groups: usize,
    w: &[u8],
    starts: &[i32],
    acc: &mut [[i32; 8]; NP * 2],
) {
    let block = groups * 32;
    assert!(w.len() >= NB * block && starts.len() >= NB * 8 && groups * 4 <= L);
    let init: [__m256i; NB] = core::array::from_fn(|b| {
        let s: &[i32; 8] = starts[b * 8..][..8].try_into().unwrap_or(&[0; 8]);
        // SAFETY: `s` is 32 readable bytes (unaligned load).
        unsafe { _mm256_loadu_si256(s.as_ptr().cast()) }
    });
    let mut a = [init; NP];
    let ws: [&[u8]; NB] = core::array::from_fn(|b| &w[b * block..][..block]);
    for gi in 0..groups {
        let wv: [I::W; NB] = core::array::from_fn(|b| {
            let bytes: &[u8; 32] = ws[b][gi * 32..][..32].try_into().unwrap_or(&[0; 32]);
            // SAFETY: the CPU has `I` (this function's contract).
            unsafe { I::weights(load32(bytes)) }
        });
        for (p, ap) in a.iter_mut().enumerate() {
            let x = &patches[p][gi * 4..][..4];
            // SAFETY: as above.
            let xv = unsafe { I::input(i32::from_le_bytes([x[0], x[1], x[2], x[3]])) };
            for (ab, &wb) in ap.iter_mut().zip(&wv) {
                // SAFETY: as above.
                *ab = unsafe { I::dot(*ab, xv, wb) };
            }
        }
    }
    for (p, ap) in a.iter().enumerate() {
        for (b, v) in ap.iter().enumerate() {
            // SAFETY: `acc[..]` is 32 writable bytes (unaligned store).
            unsafe { _mm256_storeu_si256(acc[p * 2 + b].as_mut_ptr().cast(), *v) };
        }
    }
}

/// The element loop of Add of same-shape tensors (see `optimized::elementwise`):
/// `out = clamp(scale(t1[a] + t2[b]) + output_offset, act_min, act_max)`, the offset added
/// wrapping, with `scale` the output's `ChannelQuant::scale` (`multiplier`, `shift`), eight
/// values at a time; false, writing nothing, without AVX2 or with a multiplier of `i32::MIN`.
#[allow(clippy::too_many_arguments)]
pub fn add_tables(
    tables: &[i32; 512],
    multiplier: i32,
    shift: i32,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) -> bool {
    if !supported(Level::Avx2)
        || multiplier == i32::MIN
        || a.len() < out.len()
        || b.len() < out.len()
    {
        return false;
    }
    let mut bq = BlockQuant::default();
    for k in 0..8 {
        bq.set(k, multiplier, shift);
    }
    // SAFETY: AVX2 is present (checked above).
    unsafe { add_avx2(tables, &bq, [output_offset, act_min, act_max], a, b, out) };
    true
}

/// [`add_tables`]' loop.
///
/// # Safety
///
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn add_avx2(
    tables: &[i32; 512],
    bq: &BlockQuant,
    [offset, lo, hi]: [i32; 3],
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
) {
    let (t1, t2) = tables.split_at(256);
    let (offset, lo, hi) = (
        _mm256_set1_epi32(offset),
        _mm256_set1_epi32(lo),
        _mm256_set1_epi32(hi),
    );
    for ((o, x), y) in out.chunks_mut(8).zip(a.chunks(8)).zip(b.chunks(8)) {
        let mut sums = [0i32; 8];
        for ((s, &x), &y) in sums.iter_mut().zip(x).zip(y) {
            *s = t1[x as u8 as usize].wrapping_add(t2[y as u8 as usize]);
        }
        // SAFETY: AVX2 is present (this function's contract).
        let r = unsafe { requantize8::<false>(&sums, bq, offset, lo, hi) };
        for (o, &r) in o.iter_mut().zip(&r) {
            *o = r as i8;
        }
    }
}

// Not under Miri: it runs neither CPUID nor the AVX2 intrinsics, so no level is available and these
// tests would only compute their references.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::super::optimized::conv2d::tests::pointwise;
    use super::super::optimized::testgen::{problems, Problem};
    use super::*;
    use crate::kernels::conv2d::conv2d_s8 as reference_conv;
    use crate::kernels::fully_connected::fully_connected_s8 as reference_fc;
    use proptest::prelude::*;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn detection_is_stable_and_ordered() {
        let best = level();
        assert_eq!(level(), best);
        for l in available() {
            assert!(l <= best && supported(l));
        }
        assert!(!supported(Level::Portable));
        std::println!(
            "x86 level: {best:?}, available: {:?}",
            available().collect::<Vec<_>>()
        );
    }

    fn check_conv(p: &Problem) -> Result<(), TestCaseError> {
        let q = p.quant();
        let bias = LeI32::new(&p.bias).unwrap();
        let mut want = vec![0i8; p.g.output.len()];
        reference_conv(&p.g, &q, &p.input, &p.filter, bias, &mut want);
        for l in available() {
            let mut got = vec![0i8; p.g.output.len()];
            prop_assert!(conv2d_s8_at(
                l, &p.g, &q, &p.input, &p.filter, bias, &mut got
            ));
            prop_assert_eq!(&got, &want, "level {:?}", l);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        #[test]
        fn vector_requantization_is_channel_requantize(
            acc in prop::array::uniform8(prop_oneof![
                any::<i32>(),
                -70_000..70_000i32,
                prop::sample::select(std::vec![i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX]),
            ]),
            channels in prop::array::uniform8((
                prop_oneof![
                    Just(1 << 30), Just(i32::MAX), Just(i32::MIN + 1), Just(-1), Just(0),
                    1..(1 << 24), any::<i32>(),
                ],
                prop_oneof![-33..=33i32, -3..=1i32],
            )),
            output_offset in prop_oneof![
                -128..128i32,
                any::<i32>(),
                prop::sample::select(std::vec![i32::MIN, i32::MAX]),
            ],
            a in -128..=127i32, b in -128..=127i32,
        ) {
            prop_assume!(supported(Level::Avx2));
            let (act_min, act_max) = (a.min(b), a.max(b));
            let mut bq = BlockQuant::default();
            let mut want = [0i32; 8];
            for (k, &(m, shift)) in channels.iter().enumerate() {
                let m = if m == i32::MIN { i32::MIN + 1 } else { m };
                let (mb, sb) = (m.to_le_bytes(), shift.to_le_bytes());
                let q = OutputQuant {
                    input_offset: 0,
                    output_offset,
                    act_min,
                    act_max,
                    multiplier: LeI32::new(&mb).unwrap(),
                    shift: LeI32::new(&sb).unwrap(),
                };
                bq.set(k, m, shift);
                want[k] = ChannelQuant::new(&q, 0).requantize(&q, acc[k]) as i32;
            }
            // SAFETY: AVX2 is present (assumed above).
            let got = unsafe {
                requantize8::<true>(
                    &acc,
                    &bq,
                    _mm256_set1_epi32(output_offset),
                    _mm256_set1_epi32(act_min),
                    _mm256_set1_epi32(act_max),
                )
            };
            prop_assert_eq!(got, want);
        }
    }

    proptest! {
        #![proptest_config(crate::proptest_config(400))]

        #[test]
        fn conv_matches_reference(p in problems(11, false)) {
            check_conv(&p)?;
        }
    }

    proptest! {
        // Channel counts past two blocks of eight and odd tails, patches past one group.
        #![proptest_config(crate::proptest_config(64))]

        #[test]
        fn wide_conv_matches_reference(p in problems(80, false)) {
            check_conv(&p)?;
        }

        #[test]
        fn pointwise_conv_matches_reference(p in problems(70, false)) {
            check_conv(&pointwise(p))?;
        }

        #[test]
        fn fully_connected_matches_reference(
            batches in 1..7usize, inf in 1..700usize, outf in 1..300usize, seed: u64,
            per_channel: bool, has_bias: bool, extreme: bool,
        ) {
            let mut rng = super::super::testutil::Rng::new(seed);
            let channels = if per_channel { outf } else { 1 };
            let le = |v: Vec<i32>| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
            let multiplier = le((0..channels).map(|_| rng.range(1 << 30, i32::MAX)).collect());
            let shift = le((0..channels).map(|_| rng.range(-14, 2)).collect());
            let bias = if has_bias {
                le((0..outf).map(|_| rng.range(-100_000, 100_000)).collect())
            } else {
                Vec::new()
            };
            let (input, filter) = if extreme {
                // Every product at its largest magnitude: the wrapping sums must still agree.
                (vec![-128i8; batches * inf], vec![-128i8; outf * inf])
            } else {
                (rng.i8_vec(batches * inf), rng.i8_vec(outf * inf))
            };
            let (a, b) = (rng.range(-128, 127), rng.range(-128, 127));
            let q = OutputQuant {
                input_offset: -rng.range(-128, 127),
                output_offset: rng.range(-128, 127),
                act_min: a.min(b),
                act_max: a.max(b),
                multiplier: LeI32::new(&multiplier).unwrap(),
                shift: LeI32::new(&shift).unwrap(),
            };
            let bias = LeI32::new(&bias).unwrap();
            let mut want = vec![0i8; batches * outf];
            reference_fc(batches, inf, outf, &q, &input, &filter, bias, &mut want);
            for l in available() {
                let mut got = vec![0i8; batches * outf];
                prop_assert!(fully_connected_s8_at(l, batches, inf, outf, &q, &input, &filter, bias, &mut got));
                prop_assert_eq!(&got, &want, "level {:?}", l);
            }
        }
    }
}
