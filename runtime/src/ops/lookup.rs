//! LOOKUP: an int8 element-wise function by table, `output = table[input + 128]`. The quantizer
//! fills the 256 entries with the function of each dequantized input value, requantized to the
//! output (ELU, SELU, Softplus, Exp, Erf, Abs and the other unary functions TFLite's int8 kernels
//! also compute by table or that it lacks). int8 only.

use serde::{Deserialize, Serialize};

use crate::format::Operand;
use crate::interpreter::Views;
use crate::validate::Check;
use crate::Error;

/// Entries of a table: one per int8 value.
pub const TABLE_LEN: usize = 256;

/// A function of one int8 value, by table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lookup<'a> {
    /// Input, int8.
    pub input: Operand,
    /// Output, int8, with the input's number of elements.
    pub output: Operand,
    /// The output for input `x` at `table[x + 128]` (int8 values as bytes).
    pub table: &'a [u8],
}

crate::format::decode_fields!(Lookup<'a> { input, output, table });

super::operand_fields!(Lookup<'_>: input => output);

pub(crate) fn validate(u: &Lookup<'_>, check: &Check<'_, '_, '_>) -> Result<(), Error> {
    // `true`: the table is the operator's int8 parameters (an f32 LOOKUP is refused).
    check.unary(&u.input, &u.output, true)?;
    if u.table.len() != TABLE_LEN {
        return check.bad("lookup table is not 256 entries");
    }
    Ok(())
}

pub(crate) fn run(u: &Lookup<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let mut v = Views::new(arena, &u.output)?;
    let table: &[u8; TABLE_LEN] = u
        .table
        .try_into()
        .map_err(|_| crate::interpreter::CORRUPT)?;
    lookup_s8(table, v.i8(&u.input)?, v.out_i8());
    Ok(())
}

/// `output[i] = table[input[i] + 128]`.
pub fn lookup_s8(table: &[u8; TABLE_LEN], input: &[i8], output: &mut [i8]) {
    for (y, &x) in output.iter_mut().zip(input) {
        *y = table[(x as u8 ^ 0x80) as usize] as i8;
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
        let shape = Shape::new(&[1, 2, 3]).unwrap();
        let size = if dtype == DType::F32 { 24 } else { 6 };
        let tensor = |name, offset| Tensor {
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
        let tensors = [tensor("x", 0), tensor("y", 16)];
        let mut op = Lookup {
            input: tensors[0].operand(0),
            output: tensors[1].operand(1),
            table,
        };
        edit(&mut op);
        one_op_model(
            &tensors,
            16 + size.max(16),
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
