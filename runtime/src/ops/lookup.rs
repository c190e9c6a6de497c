//! LOOKUP: an element-wise function by table. The quantizer fills the table with the function of
//! each dequantized input value, requantized to the int8 output (ELU, SELU, Softplus, Exp, Erf,
//! Abs and the other unary functions TFLite's int8 kernels also compute by table or that it lacks).
//!
//! - int8 input: `output = table[input + 128]`, 256 entries.
//! - int16 input (the wide output of an int8 convolution or fully connected layer, zero point 0):
//!   513 little-endian int16 entries, the output at inputs `-32768 + 128 k` in 1/256ths of an
//!   int8 step (zero point included), interpolated linearly between the two entries around the
//!   input (9 bits of index, 7 of fraction) and rounded to int8 (half up), saturating.

use serde::{Deserialize, Serialize};

use crate::format::{DType, Operand};
use crate::interpreter::{Views, CORRUPT};
use crate::validate::Check;
use crate::Error;

/// Entries of a table for an int8 input: one per int8 value.
pub const TABLE_LEN: usize = 256;

/// Entries of a table for an int16 input: 512 segments of 128 inputs, and their last end.
pub const TABLE16_LEN: usize = 513;

/// A function of one int8 (or int16) value, by table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lookup<'a> {
    /// Input, int8 or int16.
    pub input: Operand,
    /// Output, int8, with the input's number of elements.
    pub output: Operand,
    /// int8 input: the output for input `x` at `table[x + 128]` (int8 values as bytes). int16
    /// input: [`TABLE16_LEN`] little-endian int16 values (see the module).
    pub table: &'a [u8],
}

crate::format::decode_fields!(Lookup<'a> { input, output, table });

super::operand_fields!(Lookup<'_>: input => output);

pub(crate) fn validate(u: &Lookup<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    if cfg!(feature = "int16") && u.input.dtype == DType::I16 && u.output.dtype == DType::I8 {
        if u.input.shape.elements() != u.output.shape.elements() {
            return check.bad("input and output sizes differ");
        }
        if u.table.len() != 2 * TABLE16_LEN {
            return check.bad("int16 lookup table is not 513 int16 entries");
        }
        return Ok(());
    }
    // `true`: the table is the operator's int8 parameters (an f32 LOOKUP is refused).
    check.unary(&u.input, &u.output, true)?;
    if u.table.len() != TABLE_LEN {
        return check.bad("lookup table is not 256 entries");
    }
    Ok(())
}

pub(crate) fn run(u: &Lookup<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &u.output)?;
    #[cfg(feature = "int16")]
    if u.input.dtype == DType::I16 {
        let table: &[u8; 2 * TABLE16_LEN] = u.table.try_into().map_err(|_| CORRUPT)?;
        lookup_s16(table, v.i16(&u.input)?, v.out_i8());
        return Ok(());
    }
    let table: &[u8; TABLE_LEN] = u.table.try_into().map_err(|_| CORRUPT)?;
    lookup_s8(table, v.i8(&u.input)?, v.out_i8());
    Ok(())
}

/// `output[i] = table[input[i] + 128]`.
pub fn lookup_s8(table: &[u8; TABLE_LEN], input: &[i8], output: &mut [i8]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = table[(x as u8 ^ 0x80) as usize] as i8;
    }
}

/// The int16-input table (little-endian bytes) interpolated at each input and rounded to int8 (see
/// the module).
pub fn lookup_s16(table: &[u8; 2 * TABLE16_LEN], input: &[i16], output: &mut [i8]) {
    let entry = |k: usize| i16::from_le_bytes([table[2 * k], table[2 * k + 1]]) as i32;
    for (y, &x) in output.iter_mut().zip(input) {
        let u = (x as i32 + 32768) as usize;
        let (k, frac) = (u >> 7, (u & 127) as i32);
        let (a, b) = (entry(k), entry(k + 1));
        // In 1/32768ths of an int8 step: at most 2^22 in magnitude.
        let at = (a << 7) + (b - a) * frac;
        *y = ((at + (1 << 14)) >> 15).clamp(-128, 127) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{DType, Shape, Tensor};
    use crate::ops::testutil::{one_op_model, refusal};
    use crate::ops::Op;
    use crate::{Interpreter, Model};
    use std::vec::Vec;

    /// A model of one Lookup over a `[1, 2, 3]` tensor of `dtype`, the operator edited by `edit`.
    fn model(dtype: DType, table: &[u8], edit: impl FnOnce(&mut Lookup<'_>)) -> Vec<u8> {
        model_io(dtype, dtype, table, edit)
    }

    /// [`model`] from a `dtype` input to an `out` output.
    fn model_io(
        dtype: DType,
        out: DType,
        table: &[u8],
        edit: impl FnOnce(&mut Lookup<'_>),
    ) -> Vec<u8> {
        let shape = Shape::new(&[1, 2, 3]).unwrap();
        let size = 6 * dtype.size().max(out.size()) as u32;
        let tensor = |name, offset, dtype| Tensor {
            name,
            dtype,
            shape,
            scale: 0.5,
            zero_point: 0,
            offset,
            first: 0,
            last: 0,
            in_place: false,
        };
        let tensors = [tensor("x", 0, dtype), tensor("y", 32, out)];
        let mut op = Lookup {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            table,
        };
        edit(&mut op);
        one_op_model(
            &tensors,
            32 + size.max(16),
            dtype == DType::F32,
            Op::Lookup(op),
        )
    }

    #[test]
    fn each_input_reads_its_entry() {
        // The table of x -> -x / 2 (rounded toward zero), entry i for input i - 128.
        let table: Vec<u8> = (-128i32..128).map(|x| (-x / 2) as i8 as u8).collect();
        let bytes = model(DType::I8, &table, |_| {});
        let m = Model::from_bytes(&bytes).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        it.input_i8_mut(0)
            .unwrap()
            .copy_from_slice(&[-128, -1, 0, 1, 126, 127]);
        it.invoke().unwrap();
        assert_eq!(it.output_i8(0).unwrap(), [64, 0, 0, 0, -63, -63]);
    }

    /// The table of `x / 512`: interpolation is exact, so every int16 input gives `x / 512`
    /// rounded half up.
    #[cfg(feature = "int16")]
    #[test]
    fn int16_inputs_interpolate_between_entries() {
        let table: Vec<u8> = (0..TABLE16_LEN as i32)
            .flat_map(|k| ((-32768 + 128 * k) / 2).to_le_bytes()[..2].to_vec())
            .collect();
        let table: &[u8; 2 * TABLE16_LEN] = table.as_slice().try_into().unwrap();
        let input: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let mut output = std::vec![0i8; input.len()];
        lookup_s16(table, &input, &mut output);
        for (&x, &y) in input.iter().zip(&output) {
            assert_eq!(y as i32, (x as i32 + 256) >> 9, "input {x}");
        }
        // Through a model: an int16 input, an int8 output.
        let mut bytes = table.to_vec();
        bytes.truncate(2 * TABLE16_LEN);
        let m = model_io(DType::I16, DType::I8, &bytes, |_| {});
        let m = Model::from_bytes(&m).unwrap();
        let mut arena = std::vec![0u8; m.arena_size() + 16];
        let mut it = Interpreter::new(&m, &mut arena).unwrap();
        it.input_i16_mut(0)
            .unwrap()
            .copy_from_slice(&[-32768, -257, -256, 255, 256, 32767]);
        it.invoke().unwrap();
        assert_eq!(it.output_i8(0).unwrap(), [-64, -1, 0, 0, 1, 64]);
        assert_eq!(
            refusal(&model_io(DType::I16, DType::I8, &[0; 1024], |_| {})),
            "int16 lookup table is not 513 int16 entries"
        );
        // An int16 output is not a LOOKUP's.
        assert_eq!(
            refusal(&model(DType::I16, &[0; 1026], |_| {})),
            "unsupported element types"
        );
    }

    #[test]
    fn bad_tables_and_types_are_refused() {
        assert_eq!(
            refusal(&model(DType::I8, &[0; 255], |_| {})),
            "lookup table is not 256 entries"
        );
        assert_eq!(
            refusal(&model(DType::I8, &[0; 257], |_| {})),
            "lookup table is not 256 entries"
        );
        let shape = Shape::new(&[1, 7]).unwrap();
        let bytes = model(DType::I8, &[0; 256], |u| u.output.shape = shape);
        assert!(Model::from_bytes(&bytes).is_err());
        #[cfg(feature = "float")]
        assert_eq!(
            refusal(&model(DType::F32, &[0; 256], |_| {})),
            "f32 operator with int8 parameters"
        );
    }
}
