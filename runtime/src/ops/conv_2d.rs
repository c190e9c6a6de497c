//! CONV_2D: a 2-D convolution with a fused activation; [`Conv`] is also DEPTHWISE_CONV_2D's wire struct.

use serde::{Deserialize, Serialize};

use crate::format::DType;
use crate::format::{Activation, Operand, Window};
use crate::in_place::{run_windowed, Rows};
#[cfg(feature = "float")]
use crate::interpreter::le_f32;
#[cfg(feature = "int16")]
use crate::interpreter::le_i64;
use crate::interpreter::{geometry, le_i32, output_quant, CORRUPT};
#[cfg(feature = "float")]
use crate::kernels::LeF32;
#[cfg(feature = "int16")]
use crate::kernels::LeI64;
use crate::kernels::{self, ConvGeometry, LeI32, OutputQuant};
use crate::validate::{clamp_range_of, window, Check, Kind};
use crate::Error;

/// Conv2D and DepthwiseConv2D.
///
/// int8: filter int8 (`[out_c, kh, kw, in_c]`, depthwise `[1, kh, kw, out_c]`), bias int32 per output
/// channel (or empty), `multiplier`/`shift` int32 per output channel or one per tensor, all little-endian.
/// int16x8 (int16 input and output): the same with an int64 bias. f32: filter and bias little-endian
/// f32, no multipliers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conv<'a> {
    /// Input, rank-4 NHWC.
    pub input: Operand,
    /// Output, rank-4 NHWC.
    pub output: Operand,
    /// Kernel height, at least 1.
    pub kernel_h: u16,
    /// Kernel width, at least 1.
    pub kernel_w: u16,
    /// Strides, dilations and padding.
    pub window: Window,
    /// Output channels per input channel (depthwise only; 1 for Conv2D).
    pub depth_multiplier: u16,
    /// Fused activation, applied by the f32 kernel.
    pub activation: Activation,
    /// The fused activation as a clamp in the output's integer domain (int8 or int16).
    pub act_min: i32,
    /// Upper end of that clamp (`act_min` is the lower).
    pub act_max: i32,
    /// Filter weights: int8, or little-endian f32, in the layout above.
    pub filter: &'a [u8],
    /// Bias per output channel: little-endian int32 (int8), int64 (int16x8) or f32; may be empty.
    pub bias: &'a [u8],
    /// int8: Q0.31 multiplier per output channel or one per tensor, little-endian int32; f32: empty.
    pub multiplier: &'a [u8],
    /// int8: each multiplier's shift ([`crate::quant::Requant::shift`]), little-endian int32; f32: empty.
    pub shift: &'a [u8],
}

impl Conv<'_> {
    /// The convolution's rows, as running it in place in bands sees them.
    pub fn rows(&self) -> Rows {
        let g = self.geometry();
        let span = g.kernel_h.saturating_sub(1) * g.dilation_h + 1;
        Rows::windowed(&g, span, self.input.dtype.size(), self.output.dtype.size())
    }

    /// Whether the convolution (`depthwise` or not) may write its output exactly over its input,
    /// at the same offset: int8, batch 1, and a geometry its over-input kernel takes
    /// ([`kernels::optimized::depthwise_conv2d::runs_over_input`]: depth multiplier 1, an output
    /// no larger than the input, no vertical dilation), or, not depthwise, a
    /// [`Conv::shifted_room`] of 0 (pointwise layers of no wider output among them).
    pub fn runs_over_input(&self, depthwise: bool) -> bool {
        if !depthwise {
            return self.shifted_room() == Some(0);
        }
        let g = self.geometry();
        cfg!(feature = "in-place")
            && self.input.dtype == DType::I8
            && self.output.dtype == DType::I8
            && self.input.shape.rank == 4
            && g.input.n == 1
            && self.depth_multiplier == 1
            && kernels::optimized::depthwise_conv2d::runs_over_input(&g)
    }

    /// Whether the convolution (not depthwise) may write its output shifted before its input in one
    /// pass of its kernel, by at least [`Conv::shifted_room`]: int8, batch 1, and a geometry that
    /// kernel takes ([`kernels::optimized::conv2d::runs_shifted`]: patches of at most 576 values,
    /// at most 64 output channels). Such a convolution never runs in bands.
    pub fn runs_shifted(&self) -> bool {
        cfg!(feature = "in-place")
            && self.input.dtype == DType::I8
            && self.output.dtype == DType::I8
            && self.input.shape.rank == 4
            && self.output.shape.rank == 4
            && kernels::optimized::conv2d::runs_shifted(&self.geometry())
    }

    /// The least room, in bytes, between the start of the output and the start of its input (the
    /// output before it) at which a convolution that [`Conv::runs_shifted`] may run so
    /// ([`kernels::optimized::conv2d::shifted_room`]); `None` for the others.
    pub fn shifted_room(&self) -> Option<usize> {
        self.runs_shifted()
            .then(|| kernels::optimized::conv2d::shifted_room(&self.geometry()))
    }

    /// The kernels' view of its shapes and window.
    pub(crate) fn geometry(&self) -> ConvGeometry {
        geometry(
            &self.input,
            &self.output,
            self.kernel_h,
            self.kernel_w,
            &self.window,
        )
    }

    /// Whether it is int8 with a wide (int16) output (`runtime/FORMAT.md`).
    pub fn is_wide(&self) -> bool {
        self.input.dtype == DType::I8 && self.output.dtype == DType::I16
    }

    /// Its integer output quantization (int8 or int16x8).
    pub(crate) fn quant(&self) -> Result<OutputQuant<'_>, Error> {
        output_quant(
            &self.input,
            &self.output,
            self.act_min,
            self.act_max,
            self.multiplier,
            self.shift,
        )
    }
}

crate::format::decode_fields!(#[inline(always)] Conv<'a> { input, output, kernel_h, kernel_w, window, depth_multiplier, activation, act_min, act_max, filter, bias, multiplier, shift });

super::operand_fields!(Conv<'_>: input => output);

pub(crate) fn validate(c: &Conv<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_conv(c, check, false)
}

pub(crate) fn run(c: &Conv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    if shifted(c) {
        return run_shifted(c, arena);
    }
    #[cfg(feature = "int16")]
    if c.is_wide() {
        return run_wide(c, arena, kernels::optimized::conv2d_s8);
    }
    run_conv(
        c,
        arena,
        kernels::optimized::conv2d_s8,
        #[cfg(feature = "int16")]
        kernels::optimized::conv2d_s16,
        #[cfg(feature = "float")]
        kernels::float::conv2d_f32,
    )
}

/// Whether the depthwise convolution's output sits at its input's offset: the loader accepts that
/// only for one that [`Conv::runs_over_input`] (`Op::bands_fit`), so `invoke` need not ask again.
#[inline(always)]
pub(crate) fn over_input(c: &Conv<'_>) -> bool {
    cfg!(feature = "in-place")
        && c.input.offset == c.output.offset
        && crate::in_place::overlaps(&c.input, &c.output)
}

/// Whether the convolution's output starts at or before its input and overlaps it, and it
/// [`Conv::runs_shifted`]: the loader has checked that the room is enough (`Op::bands_fit`).
#[inline(always)]
pub(crate) fn shifted(c: &Conv<'_>) -> bool {
    cfg!(feature = "in-place")
        && c.output.offset <= c.input.offset
        && crate::in_place::overlaps(&c.input, &c.output)
        && c.runs_shifted()
}

/// Runs a convolution that [`Conv::runs_shifted`] with its output before its input, in one pass.
#[inline(never)]
fn run_shifted(c: &Conv<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let (g, q) = (c.geometry(), c.quant()?);
    let (x, y) = (c.input.offset as usize, c.output.offset as usize);
    let end = (x + g.input.len()).max(y + g.output.len());
    let data = arena.get_mut(y..end).ok_or(CORRUPT)?;
    kernels::optimized::conv2d_s8_shifted(
        &g,
        &q,
        bytemuck::cast_slice_mut(data),
        x - y,
        bytemuck::cast_slice(c.filter),
        le_i32(c.bias)?,
    );
    Ok(())
}

/// Runs a depthwise convolution that [`Conv::runs_over_input`] with its output over its input,
/// through `kernel`.
#[inline(never)]
pub(crate) fn run_over_input(
    c: &Conv<'_>,
    arena: &mut [u8],
    kernel: fn(&ConvGeometry, &OutputQuant<'_>, &mut [i8], &[i8], LeI32<'_>),
) -> Result<(), Error> {
    let (g, q) = (c.geometry(), c.quant()?);
    let at = c.input.offset as usize;
    let data = arena.get_mut(at..at + g.input.len()).ok_or(CORRUPT)?;
    let filter = bytemuck::cast_slice(c.filter);
    kernel(
        &g,
        &q,
        bytemuck::cast_slice_mut(data),
        filter,
        le_i32(c.bias)?,
    );
    Ok(())
}

/// Runs an int8 convolution with a wide (int16) output through `kernel`, in bands when it runs in
/// place.
#[cfg(feature = "int16")]
pub(crate) fn run_wide(
    c: &Conv<'_>,
    arena: &mut [u8],
    mut kernel: impl FnMut(&ConvGeometry, &OutputQuant<'_>, &[i8], &[i8], LeI32<'_>, &mut [i16]),
) -> Result<(), Error> {
    let g = c.geometry();
    let q = c.quant()?;
    let filter = bytemuck::cast_slice::<u8, i8>(c.filter);
    let bias = le_i32(c.bias)?;
    run_windowed(
        arena,
        &c.input,
        &c.output,
        &g,
        || c.rows(),
        &mut |g, x, y| {
            let y = bytemuck::try_cast_slice_mut(y).map_err(|_| CORRUPT)?;
            kernel(g, &q, bytemuck::cast_slice(x), filter, bias, y);
            Ok(())
        },
    )
}

/// The checks of Conv2D (`depthwise` false) and DepthwiseConv2D.
pub(crate) fn validate_conv(
    c: &Conv<'_>,
    check: &Check<'_, '_, '_>,
    depthwise: bool,
) -> Result<(), Error> {
    let (kind, filter_elems, reduction) = validate_shapes(c, check, depthwise)?;
    validate_weights(c, check, kind, filter_elems, reduction)
}

/// The checks of a convolution's shapes, window and depth multiplier; returns its element kind,
/// its dense filter's weights and the products per accumulator.
pub(crate) fn validate_shapes(
    c: &Conv<'_>,
    check: &Check<'_, '_, '_>,
    depthwise: bool,
) -> Result<(Kind, usize, usize), Error> {
    let (kind, _) = check.kind_wide(&c.input, &c.output)?;
    if c.input.shape.rank != 4 || c.output.shape.rank != 4 {
        return check.bad("convolution needs rank-4 NHWC tensors");
    }
    let (i, o) = (c.input.shape.nhwc(), c.output.shape.nhwc());
    let (kh, kw) = (c.kernel_h as usize, c.kernel_w as usize);
    if i.n != o.n || kh == 0 || kw == 0 {
        return check.bad("batch differs or kernel is empty");
    }
    window(&c.window).map_err(|r| check.fail(r))?;
    let (filter_elems, reduction) = if depthwise {
        if c.depth_multiplier == 0 || o.c != i.c * c.depth_multiplier as usize {
            return check
                .bad("depthwise output channels must be input channels x depth multiplier");
        }
        (kh * kw * o.c, kh * kw)
    } else {
        if c.depth_multiplier != 1 {
            return check.bad("Conv2D has depth multiplier 1");
        }
        (o.c * kh * kw * i.c, kh * kw * i.c)
    };
    Ok((kind, filter_elems, reduction))
}

/// The checks of a convolution's weights (`c.filter` holding `filter_elems` values), quantization
/// and clamp.
pub(crate) fn validate_weights(
    c: &Conv<'_>,
    check: &Check<'_, '_, '_>,
    kind: Kind,
    filter_elems: usize,
    reduction: usize,
) -> Result<(), Error> {
    check.weights(
        kind,
        c.filter,
        c.bias,
        c.multiplier,
        c.shift,
        filter_elems,
        reduction,
        c.output.shape.nhwc().c,
    )?;
    if kind != Kind::Float {
        // A wide output's clamp lies in int16's range.
        let clamp_kind = if c.is_wide() { Kind::Int16 } else { kind };
        clamp_range_of(clamp_kind, c.act_min, c.act_max).map_err(|r| check.fail(r))?;
    }
    Ok(())
}

/// Runs a convolution with the int8, int16x8 or f32 kernel its operands' type selects, in bands
/// when it runs in place.
pub(crate) fn run_conv(
    c: &Conv<'_>,
    arena: &mut [u8],
    mut int8: impl FnMut(&ConvGeometry, &OutputQuant<'_>, &[i8], &[i8], LeI32<'_>, &mut [i8]),
    #[cfg(feature = "int16")] mut int16: impl FnMut(
        &ConvGeometry,
        &OutputQuant<'_>,
        &[i16],
        &[i8],
        LeI64<'_>,
        &mut [i16],
    ),
    #[cfg(feature = "float")] mut float: impl FnMut(
        &ConvGeometry,
        Activation,
        &[f32],
        LeF32<'_>,
        LeF32<'_>,
        &mut [f32],
    ),
) -> Result<(), Error> {
    let g = c.geometry();
    let rows = || c.rows();
    match c.input.dtype {
        DType::I8 => {
            let q = c.quant()?;
            let filter = bytemuck::cast_slice::<u8, i8>(c.filter);
            let bias = le_i32(c.bias)?;
            run_windowed(arena, &c.input, &c.output, &g, rows, &mut |g, x, y| {
                int8(
                    g,
                    &q,
                    bytemuck::cast_slice(x),
                    filter,
                    bias,
                    bytemuck::cast_slice_mut(y),
                );
                Ok(())
            })
        }
        #[cfg(feature = "int16")]
        DType::I16 => {
            let q = c.quant()?;
            let filter = bytemuck::cast_slice::<u8, i8>(c.filter);
            let bias = le_i64(c.bias)?;
            run_windowed(arena, &c.input, &c.output, &g, rows, &mut |g, x, y| {
                let x = bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)?;
                let y = bytemuck::try_cast_slice_mut(y).map_err(|_| CORRUPT)?;
                int16(g, &q, x, filter, bias, y);
                Ok(())
            })
        }
        #[cfg(feature = "float")]
        DType::F32 => {
            let (filter, bias) = (le_f32(c.filter)?, le_f32(c.bias)?);
            run_windowed(arena, &c.input, &c.output, &g, rows, &mut |g, x, y| {
                let x = bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)?;
                let y = bytemuck::try_cast_slice_mut(y).map_err(|_| CORRUPT)?;
                float(g, c.activation, x, filter, bias, y);
                Ok(())
            })
        }
        _ => Err(CORRUPT),
    }
}

#[cfg(all(test, feature = "in-place"))]
mod tests {
    use super::*;
    use crate::format::ARENA_ALIGN;
    use crate::in_place::Direction;
    use crate::ops::testutil::{int8_tensor, one_op_model, refusal, run_int8, values};
    use crate::ops::Op;
    use crate::Model;
    use proptest::prelude::*;
    use std::vec::Vec;

    /// A convolution's shapes and window, and the offsets of its input and output.
    #[derive(Clone, Debug)]
    struct Case {
        depthwise: bool,
        h: usize,
        w: usize,
        c_in: usize,
        c_out: usize,
        k: (usize, usize),
        stride: (usize, usize),
        dilation: (usize, usize),
        pad: (usize, usize),
        seed: u64,
    }

    impl Case {
        fn out_dims(&self) -> (usize, usize) {
            let out = |n: usize, k: usize, s: usize, d: usize, p: usize| {
                (n + 2 * p).saturating_sub((k - 1) * d + 1) / s + 1
            };
            (
                out(self.h, self.k.0, self.stride.0, self.dilation.0, self.pad.0),
                out(self.w, self.k.1, self.stride.1, self.dilation.1, self.pad.1),
            )
        }
    }

    /// The model's bytes with the input at `x` and the output at `y`, the output marked in place
    /// when `in_place`, and the input it runs on.
    fn model(case: &Case, x: u32, y: u32, in_place: bool) -> (Vec<u8>, Vec<i8>) {
        model_of(case, x, y, in_place, Output::Int8 { zero_point: -5 }, 0)
    }

    /// The output of the test models: int8, or wide (int16, zero point 0).
    #[derive(Clone, Copy, PartialEq)]
    enum Output {
        Int8 { zero_point: i32 },
        Wide,
    }

    /// [`model`] with `output`, each channel's shift lowered by `shift_down`.
    fn model_of(
        case: &Case,
        x: u32,
        y: u32,
        in_place: bool,
        output: Output,
        shift_down: i32,
    ) -> (Vec<u8>, Vec<i8>) {
        let (oh, ow) = case.out_dims();
        let (kh, kw) = case.k;
        let filter_len = if case.depthwise {
            kh * kw * case.c_out
        } else {
            case.c_out * kh * kw * case.c_in
        };
        let filter: Vec<u8> = values(case.seed, filter_len, -127, 127)
            .into_iter()
            .map(|v| v as i8 as u8)
            .collect();
        let bias: Vec<u8> = values(case.seed ^ 7, case.c_out, -3000, 3000)
            .into_iter()
            .flat_map(i32::to_le_bytes)
            .collect();
        let multiplier: Vec<u8> = values(case.seed ^ 9, case.c_out, 1 << 30, i32::MAX)
            .into_iter()
            .flat_map(i32::to_le_bytes)
            .collect();
        let shift: Vec<u8> = values(case.seed ^ 11, case.c_out, -9, -6)
            .into_iter()
            .flat_map(|s| (s - shift_down).to_le_bytes())
            .collect();
        let input: Vec<i8> = values(case.seed ^ 13, case.h * case.w * case.c_in, -128, 127)
            .into_iter()
            .map(|v| v as i8)
            .collect();
        let (out_zero_point, (act_min, act_max)) = match output {
            Output::Int8 { zero_point } => (zero_point, (-128, 127)),
            Output::Wide => (0, (-32768, 32767)),
        };
        let mut out = int8_tensor(
            "y",
            &[1, oh, ow, case.c_out],
            y,
            (0.5, out_zero_point),
            in_place,
        );
        if output == Output::Wide {
            out.dtype = crate::format::DType::I16;
        }
        let tensors = [
            int8_tensor("x", &[1, case.h, case.w, case.c_in], x, (0.5, 3), false),
            out,
        ];
        let conv = Conv {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            kernel_h: kh as u16,
            kernel_w: kw as u16,
            window: Window {
                stride_h: case.stride.0 as u16,
                stride_w: case.stride.1 as u16,
                dilation_h: case.dilation.0 as u16,
                dilation_w: case.dilation.1 as u16,
                pad_top: case.pad.0 as u16,
                pad_left: case.pad.1 as u16,
            },
            depth_multiplier: if case.depthwise {
                (case.c_out / case.c_in) as u16
            } else {
                1
            },
            activation: Activation::None,
            act_min,
            act_max,
            filter: &filter,
            bias: &bias,
            multiplier: &multiplier,
            shift: &shift,
        };
        let op = if case.depthwise {
            Op::DepthwiseConv2d(conv)
        } else {
            Op::Conv2d(conv)
        };
        let out_size = if output == Output::Wide { 2 } else { 1 };
        let arena = (x as usize + case.h * case.w * case.c_in)
            .max(y as usize + oh * ow * case.c_out * out_size);
        let arena = arena.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        (one_op_model(&tensors, arena as u32, false, op), input)
    }

    fn run(bytes: &[u8], input: &[i8]) -> Vec<i8> {
        run_int8(bytes, &[input])
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            any::<bool>(),
            (1usize..10, 1usize..8, 1usize..6, 1usize..4),
            (
                (1usize..4, 1usize..4),
                (1usize..3, 1usize..3),
                (1usize..3, 1usize..3),
            ),
            (0usize..3, 0usize..3, any::<u64>()),
        )
            .prop_map(
                |(depthwise, (h, w, c_in, m), (k, stride, dilation), (pt, pl, seed))| {
                    let c_out = if depthwise { c_in * m } else { m + c_in - 1 };
                    Case {
                        depthwise,
                        h,
                        w,
                        c_in,
                        c_out,
                        k,
                        stride,
                        dilation,
                        pad: (pt.min(k.0 - 1), pl.min(k.1 - 1)),
                        seed,
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(crate::proptest_config(256))]

        /// A convolution whose output overlaps its input, before it or after it by the smallest room
        /// its bands need, or before it by the room of its one pass (and by more), computes what
        /// it computes out of place; less room than one pass needs is refused.
        #[test]
        fn in_place_equals_out_of_place(case in case()) {
            let (rows, over_input, shifted_room) = {
                let (bytes, _) = model(&case, 0, 4096, false);
                let m = Model::from_bytes(&bytes).unwrap();
                let found = match m.ops().next() {
                    Some(Op::Conv2d(c)) => (c.rows(), c.runs_over_input(false), c.shifted_room()),
                    Some(Op::DepthwiseConv2d(c)) => (c.rows(), c.runs_over_input(true), None),
                    _ => unreachable!(),
                };
                found
            };
            let (bytes, input) = model(&case, 0, 4096, false);
            let expected = run(&bytes, &input);
            if over_input {
                let (bytes, _) = model(&case, 0, 0, true);
                prop_assert_eq!(&run(&bytes, &input), &expected, "over its input");
            }
            if let Some(room) = shifted_room {
                let s = room.next_multiple_of(ARENA_ALIGN);
                for extra in [0, ARENA_ALIGN * 3] {
                    let (bytes, _) = model(&case, (s + extra) as u32, 0, true);
                    prop_assert_eq!(&run(&bytes, &input), &expected, "one pass, before by {}", s + extra);
                }
                if s >= ARENA_ALIGN && !over_input {
                    let (bytes, _) = model(&case, (s - ARENA_ALIGN) as u32, 0, true);
                    prop_assert!(refusal(&bytes).contains("in-place operator"));
                }
            }
            for extra in [0, ARENA_ALIGN * 3] {
                if let Some(s) = rows.min_shift(Direction::Before, ARENA_ALIGN) {
                    let (bytes, _) = model(&case, (s + extra) as u32, 0, true);
                    prop_assert_eq!(&run(&bytes, &input), &expected, "before by {}", s + extra);
                }
                if let Some(s) = rows.min_shift(Direction::After, ARENA_ALIGN) {
                    let (bytes, _) = model(&case, 0, (s + extra) as u32, true);
                    prop_assert_eq!(&run(&bytes, &input), &expected, "after by {}", s + extra);
                }
            }
        }
    }

    /// The wide (int16) outputs of a model on `input`.
    #[cfg(feature = "int16")]
    fn run_wide(bytes: &[u8], input: &[i8]) -> Vec<i16> {
        let model = Model::from_bytes(bytes).unwrap();
        let mut arena = std::vec![0u8; model.arena_size() + ARENA_ALIGN];
        let mut it = crate::Interpreter::new(&model, &mut arena).unwrap();
        it.input_i8_mut(0).unwrap().copy_from_slice(input);
        it.invoke().unwrap();
        it.output_i16(0).unwrap().to_vec()
    }

    #[cfg(feature = "int16")]
    proptest! {
        #![proptest_config(crate::proptest_config(128))]

        /// A wide output is the int8 kernel's requantization without int8's clamp: clamped to
        /// int8 it equals the int8 output (zero point 0), and with each shift 8 lower the int8
        /// output is within one step of it divided by 256 (two roundings).
        #[test]
        fn wide_output_is_the_unclamped_int8_output(case in case()) {
            let zero = Output::Int8 { zero_point: 0 };
            let (wide, input) = model_of(&case, 0, 4096, false, Output::Wide, 0);
            let wide = run_wide(&wide, &input);
            let narrow = run(&model_of(&case, 0, 4096, false, zero, 0).0, &input);
            let clamped: Vec<i8> = wide.iter().map(|&v| v.clamp(-128, 127) as i8).collect();
            prop_assert_eq!(&clamped, &narrow);
            let scaled = run(&model_of(&case, 0, 4096, false, zero, 8).0, &input);
            for (&w, &n) in wide.iter().zip(&scaled) {
                let expected = (w as f64 / 256.0).round().clamp(-128.0, 127.0);
                prop_assert!((expected - n as f64).abs() <= 1.0, "{} against {}", w, n);
            }
        }
    }

    #[test]
    fn overlap_without_room_for_a_row_is_refused() {
        let case = Case {
            depthwise: true,
            h: 6,
            w: 4,
            c_in: 8,
            c_out: 8,
            k: (3, 3),
            stride: (1, 1),
            dilation: (1, 1),
            pad: (1, 1),
            seed: 1,
        };
        // Two rows of room are needed (64 bytes); 48 is not enough either way.
        let (bytes, _) = model(&case, 48, 0, true);
        assert!(refusal(&bytes).contains("in-place operator"));
        let (bytes, _) = model(&case, 0, 48, true);
        assert!(refusal(&bytes).contains("in-place operator"));
        // Overlapping without the in-place mark is a planning error.
        let (bytes, _) = model(&case, 64, 0, false);
        assert!(matches!(
            Model::from_bytes(&bytes),
            Err(Error::PlanOverlap { .. })
        ));
        let (bytes, input) = model(&case, 64, 0, true);
        let expected = run(&model(&case, 0, 4096, false).0, &input);
        assert_eq!(run(&bytes, &input), expected);
        // A depthwise convolution may also write exactly over its input; a 3x3
        // convolution may not, a pointwise one may.
        let (bytes, _) = model(&case, 0, 0, true);
        assert_eq!(run(&bytes, &input), expected);
        let conv = Case {
            depthwise: false,
            ..case
        };
        let (bytes, _) = model(&conv, 0, 0, true);
        assert!(refusal(&bytes).contains("in-place operator"));
        for c_out in [8, 5] {
            let pointwise = Case {
                depthwise: false,
                c_out,
                k: (1, 1),
                pad: (0, 0),
                ..case
            };
            let (bytes, input) = model(&pointwise, 0, 4096, false);
            let expected = run(&bytes, &input);
            let (bytes, _) = model(&pointwise, 0, 0, true);
            assert_eq!(run(&bytes, &input), expected, "{c_out} output channels");
        }
    }
}
