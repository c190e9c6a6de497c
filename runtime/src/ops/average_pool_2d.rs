//! AVERAGE_POOL_2D: the mean of each window; [`Pool`] is also MAX_POOL_2D's wire struct. int8, int16
//! (TFLite's 16x8: the same arithmetic on int16 values) and f32.

use serde::{Deserialize, Serialize};

use crate::format::{Activation, DType, Operand, Window};
use crate::in_place::{run_windowed, Rows};
use crate::interpreter::{geometry, CORRUPT};
use crate::kernels::{self, ConvGeometry};
use crate::validate::{clamp_range_of, window, Check, Kind, MAX_REDUCTION};
use crate::Error;

/// AveragePool2D and MaxPool2D (input and output share quantization).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    /// Input, rank-4 NHWC.
    pub input: Operand,
    /// Output, rank-4 NHWC: same batch and channels as the input.
    pub output: Operand,
    /// Window height, at least 1.
    pub filter_h: u16,
    /// Window width, at least 1.
    pub filter_w: u16,
    /// Strides and padding (dilation is ignored).
    pub window: Window,
    /// Fused activation, applied by the f32 kernel.
    pub activation: Activation,
    /// Lower end of the fused activation clamp in the output's integer domain (int8 or int16).
    pub act_min: i32,
    /// Upper end of that clamp.
    pub act_max: i32,
}

crate::format::decode_fields!(Pool {
    input,
    output,
    filter_h,
    filter_w,
    window,
    activation,
    act_min,
    act_max
});

super::operand_fields!(Pool: input => output);

pub(crate) fn validate(p: &Pool, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    validate_pool(p, check)
}

pub(crate) fn run(p: &Pool, arena: &mut [u8]) -> Result<(), Error> {
    run_pool(
        p,
        arena,
        kernels::optimized::average_pool2d_s8,
        #[cfg(feature = "int16")]
        kernels::int16::pooling::average_pool2d_s16,
        #[cfg(feature = "float")]
        kernels::float::average_pool2d_f32,
    )
}

/// The checks of both pooling operators.
pub(crate) fn validate_pool(p: &Pool, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    let (tin, tout) = (check.tensor(&p.input)?, check.tensor(&p.output)?);
    let k = check.kind16(&p.input, &p.output)?;
    let (i, o) = (p.input.shape.nhwc(), p.output.shape.nhwc());
    if p.input.shape.rank != 4 || p.output.shape.rank != 4 {
        return check.bad("pooling needs rank-4 NHWC tensors");
    }
    if i.n != o.n || i.c != o.c || p.filter_h == 0 || p.filter_w == 0 {
        return check.bad("pooling shapes or filter size inconsistent");
    }
    window(&p.window).map_err(|r| check.fail(r))?;
    if k != Kind::Float {
        if tin.scale != tout.scale || tin.zero_point != tout.zero_point {
            return check.bad("integer pooling needs equal input and output quantization");
        }
        clamp_range_of(k, p.act_min, p.act_max).map_err(|r| check.fail(r))?;
        if (p.filter_h as usize) * (p.filter_w as usize) > MAX_REDUCTION {
            return check.bad("pooling window too large");
        }
    }
    Ok(())
}

/// Runs a pooling operator with the int8, int16 or f32 kernel its operands' type selects.
pub(crate) fn run_pool(
    p: &Pool,
    arena: &mut [u8],
    mut int8: impl FnMut(&ConvGeometry, i32, i32, &[i8], &mut [i8]),
    #[cfg(feature = "int16")] mut int16: impl FnMut(&ConvGeometry, i32, i32, &[i16], &mut [i16]),
    #[cfg(feature = "float")] mut float: impl FnMut(&ConvGeometry, Activation, &[f32], &mut [f32]),
) -> Result<(), Error> {
    fn cast<T: bytemuck::Pod>(x: &[u8]) -> Result<&[T], Error> {
        bytemuck::try_cast_slice(x).map_err(|_| CORRUPT)
    }
    fn cast_mut<T: bytemuck::Pod>(x: &mut [u8]) -> Result<&mut [T], Error> {
        bytemuck::try_cast_slice_mut(x).map_err(|_| CORRUPT)
    }
    let g = geometry(&p.input, &p.output, p.filter_h, p.filter_w, &p.window);
    run_windowed(
        arena,
        &p.input,
        &p.output,
        &g,
        || p.rows(),
        &mut |g, x, y| {
            match p.input.dtype {
                DType::I8 => int8(g, p.act_min, p.act_max, cast(x)?, cast_mut(y)?),
                #[cfg(feature = "int16")]
                DType::I16 => int16(g, p.act_min, p.act_max, cast(x)?, cast_mut(y)?),
                #[cfg(feature = "float")]
                DType::F32 => float(g, p.activation, cast(x)?, cast_mut(y)?),
                _ => return Err(CORRUPT),
            }
            Ok(())
        },
    )
}

impl Pool {
    /// The pooling's rows, as running it in place in bands sees them.
    pub fn rows(&self) -> Rows {
        let g = geometry(
            &self.input,
            &self.output,
            self.filter_h,
            self.filter_w,
            &self.window,
        );
        Rows::windowed(
            &g,
            g.kernel_h,
            self.input.dtype.size(),
            self.output.dtype.size(),
        )
    }
}

#[cfg(all(test, feature = "int16"))]
mod tests {
    use super::*;
    use crate::format::{Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use std::vec::Vec;

    /// A model of one int16 pooling (`max` or average) of a `[1, 4, 4, 2]` tensor with a 2x2 window,
    /// stride 2, into `[1, 2, 2, 2]`; `edit` changes the output tensor and the operator.
    fn model(max: bool, edit: impl FnOnce(&mut Tensor<'_>, &mut Pool)) -> Vec<u8> {
        let tensor = |name, dims: &[usize], offset| Tensor {
            name,
            dtype: DType::I16,
            shape: Shape::new(dims).unwrap(),
            scale: 0.25,
            zero_point: 0,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let mut tensors = [
            tensor("x", &[1, 4, 4, 2], 0),
            tensor("y", &[1, 2, 2, 2], 64),
        ];
        let mut pool = Pool {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            filter_h: 2,
            filter_w: 2,
            window: Window {
                stride_h: 2,
                stride_w: 2,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: 0,
                pad_left: 0,
            },
            activation: Activation::None,
            act_min: -32768,
            act_max: 32767,
        };
        edit(&mut tensors[1], &mut pool);
        pool.output = tensors[1].operand(1);
        let op = if max {
            Op::MaxPool2d(pool)
        } else {
            Op::AveragePool2d(pool)
        };
        one_op_model(&tensors, 80, false, op)
    }

    fn run(bytes: &[u8], input: &[i16]) -> Vec<i16> {
        let m = Model::from_bytes(bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        it.input_i16_mut(0).unwrap().copy_from_slice(input);
        it.invoke().unwrap();
        it.output_i16(0).unwrap().to_vec()
    }

    #[test]
    fn int16_pools_run_their_kernels() {
        // Channel 0 counts up by 1000 from -8000, channel 1 is its negation.
        let input: Vec<i16> = (0..16)
            .flat_map(|k| [k * 1000 - 8000, 8000 - k * 1000])
            .collect();
        // Window (0, 0) holds pixels 0, 1, 4, 5: channel 0 -8000, -7000, -4000, -3000.
        let avg = run(&model(false, |_, _| {}), &input);
        assert_eq!(avg[..2], [-5500, 5500]);
        let max = run(&model(true, |_, _| {}), &input);
        assert_eq!(max[..2], [-3000, 8000]);
        let clamped = run(
            &model(true, |_, p| (p.act_min, p.act_max) = (0, 6000)),
            &input,
        );
        assert_eq!(clamped[..2], [0, 6000]);
    }

    #[test]
    fn bad_int16_pools_are_refused() {
        for max in [false, true] {
            let clamp = model(max, |_, p| p.act_max = 32768);
            assert_eq!(
                refusal(&clamp),
                "activation clamp outside -32768..=32767 or empty"
            );
            let empty = model(max, |_, p| (p.act_min, p.act_max) = (5, 4));
            assert_eq!(
                refusal(&empty),
                "activation clamp outside -32768..=32767 or empty"
            );
            let rescaled = model(max, |t, _| t.scale = 0.5);
            assert_eq!(
                refusal(&rescaled),
                "integer pooling needs equal input and output quantization"
            );
            let wide = model(max, |_, p| (p.filter_h, p.filter_w) = (256, 129));
            assert_eq!(refusal(&wide), "pooling window too large");
            let int8_out = model(max, |t, _| t.dtype = DType::I8);
            assert!(Model::from_bytes(&int8_out).is_err());
        }
    }
}
