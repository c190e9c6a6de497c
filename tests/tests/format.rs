//! Format round trips and malformed files: every corruption is an `Err` naming what is wrong, never a panic.

use ferrite_runtime::format::{self, Graph, SeqBuf, Tensor, HEADER_LEN, VERSION};
use ferrite_runtime::{Arena, Error, Interpreter, Model};
use ferrite_tests::{cases, golden};

fn dscnn() -> Vec<u8> {
    golden::read("small_dscnn").unwrap().0
}

/// Re-encodes a decoded graph and checks the bytes are identical.
#[test]
fn decode_then_encode_gives_the_same_bytes() {
    for case in cases::all().unwrap() {
        let model = Model::from_bytes(&case.model).unwrap();
        let h = model.header();
        let bytes = format::write::to_bytes(
            model.graph(),
            h.arena_size,
            h.flags & format::FLAG_FLOAT != 0,
        )
        .unwrap();
        assert_eq!(bytes, case.model, "{}", case.name);
    }
}

#[test]
fn every_truncation_is_refused() {
    let bytes = dscnn();
    for len in 0..bytes.len() {
        let err = Model::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. }),
            "length {len}: {err:?}"
        );
    }
    // Bytes after the file (a flash partition) are ignored.
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0xFF; 64]);
    assert!(Model::from_bytes(&padded).is_ok());
    assert_eq!(ferrite_runtime::file_len(&padded), bytes.len());
}

#[test]
fn header_errors_name_the_problem() {
    let good = dscnn();
    let mut b = good.clone();
    b[0] = b'X';
    assert_eq!(Model::from_bytes(&b).unwrap_err(), Error::BadMagic);
    let mut b = good.clone();
    b[4..6].copy_from_slice(&2u16.to_le_bytes());
    assert_eq!(
        Model::from_bytes(&b).unwrap_err(),
        Error::UnsupportedVersion {
            found: 2,
            supported: VERSION
        }
    );
    let mut b = good.clone();
    b[6] |= 0x80;
    let e = Model::from_bytes(&b).unwrap_err();
    assert_eq!(e, Error::UnknownFlags { flags: 0x0080 });
    assert!(e.to_string().contains("bits 0x0080"), "{e}");
    let mut b = good.clone();
    b[20..24].copy_from_slice(&7u32.to_le_bytes());
    let e = Model::from_bytes(&b).unwrap_err();
    assert_eq!(e, Error::ReservedNotZero { value: 7 });
    assert!(e.to_string().contains("reserved field"), "{e}");
    assert_eq!(ferrite_runtime::arena_size(&b), 0);
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] ^= 1;
    assert!(matches!(
        Model::from_bytes(&b).unwrap_err(),
        Error::ChecksumMismatch { .. }
    ));
    assert_eq!(ferrite_runtime::arena_size(&b[..10]), 0);
}

/// `good` with its header's flags and arena size replaced (the checksum covers the payload only).
fn with_header(good: &[u8], flags: u16, arena_size: u32) -> Vec<u8> {
    let mut b = good.to_vec();
    b[6..8].copy_from_slice(&flags.to_le_bytes());
    b[8..12].copy_from_slice(&arena_size.to_le_bytes());
    b
}

/// A header that disagrees with the payload it describes is refused: an arena larger than the plan,
/// the f32 flag on a model without f32 tensors.
#[test]
fn inconsistent_headers_are_refused() {
    let good = dscnn();
    let model = Model::from_bytes(&good).unwrap();
    let arena = model.header().arena_size;
    for absurd in [arena + 16, 0xFFFF_FFF0] {
        let e = Model::from_bytes(&with_header(&good, 0, absurd)).unwrap_err();
        assert_eq!(
            e,
            Error::ArenaLargerThanPlan {
                header: absurd,
                plan: arena
            }
        );
    }
    let e = Model::from_bytes(&with_header(&good, format::FLAG_FLOAT, arena)).unwrap_err();
    assert!(e.to_string().contains("flag 0x0001"), "{e}");
    // Every golden case's header agrees with its payload.
    for case in cases::all().unwrap() {
        assert!(Model::from_bytes(&case.model).is_ok(), "{}", case.name);
    }
}

/// Flips every bit of the payload, repairs the checksum, and loads and runs the result: each must be
/// `Ok` or `Err`, and a model that loads must run without panicking.
#[test]
fn every_bit_flip_is_handled() {
    let good = dscnn();
    let mut refused = 0;
    for i in HEADER_LEN * 8..good.len() * 8 {
        let mut b = good.clone();
        b[i / 8] ^= 1 << (i % 8);
        let crc = format::crc32(&b[HEADER_LEN..]);
        b[16..20].copy_from_slice(&crc.to_le_bytes());
        match Model::from_bytes(&b) {
            Err(_) => refused += 1,
            Ok(m) => {
                let mut arena = vec![0u8; m.arena_size() + 16];
                if let Ok(mut it) = Interpreter::new(&m, &mut arena) {
                    let _ = it.invoke();
                }
            }
        }
    }
    assert!(refused > 0);
}

#[test]
fn short_arena_reports_the_size_needed() {
    let bytes = dscnn();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = Arena::<4096>::new();
    let short = &mut arena.as_mut_slice()[..model.arena_size() - 1];
    match Interpreter::new(&model, short) {
        Err(Error::ArenaTooSmall { needed, available }) => {
            assert_eq!(needed as usize, model.arena_size());
            assert_eq!(available as usize, model.arena_size() - 1);
        }
        other => panic!("expected ArenaTooSmall, got {:?}", other.err()),
    }
    // A misaligned buffer needs the alignment slack, and says so.
    let mut arena = Arena::<4096>::new();
    let misaligned = &mut arena.as_mut_slice()[1..1 + model.arena_size()];
    match Interpreter::new(&model, misaligned) {
        Err(Error::ArenaTooSmall { needed, .. }) => {
            assert_eq!(needed as usize, model.arena_size() + 15)
        }
        other => panic!("expected ArenaTooSmall, got {:?}", other.err()),
    }
}

/// Rewrites the tensor table with `edit` and returns the re-encoded file.
fn with_tensors(bytes: &[u8], edit: impl FnOnce(&mut Vec<Tensor<'_>>)) -> Vec<u8> {
    let model = Model::from_bytes(bytes).unwrap();
    let g = model.graph();
    let mut tensors: Vec<Tensor<'_>> = g.tensors.iter().map(Result::unwrap).collect();
    edit(&mut tensors);
    let tensors = SeqBuf::new(&tensors).unwrap();
    let graph = Graph {
        tensors: tensors.seq(),
        ops: g.ops,
        inputs: g.inputs,
        outputs: g.outputs,
        metadata: g.metadata.clone(),
        preprocessing: g.preprocessing,
    };
    format::write::to_bytes(&graph, model.header().arena_size, false).unwrap()
}

#[test]
fn overlapping_live_tensors_are_refused() {
    let bytes = dscnn();
    // Keep the input alive to the end: it then overlaps a later tensor planned into its bytes.
    let last = Model::from_bytes(&bytes).unwrap().graph().ops.len() as u16 - 1;
    let bad = with_tensors(&bytes, |t| t[0].last = last);
    assert!(matches!(
        Model::from_bytes(&bad).unwrap_err(),
        Error::PlanOverlap { .. }
    ));
}

#[test]
fn tensor_and_operand_mismatches_are_refused() {
    let bytes = dscnn();
    let bad = with_tensors(&bytes, |t| t[1].zero_point += 1);
    assert!(matches!(
        Model::from_bytes(&bad).unwrap_err(),
        Error::InvalidOperator { op: 0, .. }
    ));
    let bad = with_tensors(&bytes, |t| t[1].offset = 1 << 20);
    assert!(matches!(
        Model::from_bytes(&bad).unwrap_err(),
        Error::InvalidTensor { tensor: 1, .. }
    ));
    let bad = with_tensors(&bytes, |t| t[2].shape.dims[3] = 0);
    assert!(matches!(
        Model::from_bytes(&bad).unwrap_err(),
        Error::InvalidTensor { tensor: 2, .. }
    ));
    let bad = with_tensors(&bytes, |t| t[3].scale = f32::NAN);
    assert!(matches!(
        Model::from_bytes(&bad).unwrap_err(),
        Error::InvalidTensor { tensor: 3, .. }
    ));
}

#[test]
fn typed_io_checks_types_and_lengths() {
    let bytes = dscnn();
    let model = Model::from_bytes(&bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    assert_eq!(
        it.input_f32_mut(0).unwrap_err(),
        Error::WrongType { index: 0 }
    );
    assert_eq!(
        it.set_input_f32(0, &[0.0; 3]).unwrap_err(),
        Error::WrongLength {
            expected: 80,
            found: 3
        }
    );
    assert_eq!(
        it.input_bytes_mut(1).unwrap_err(),
        Error::NoSuchTensor { index: 1 }
    );
    it.set_input_f32(0, &[0.5; 80]).unwrap();
    // 0.5 / 0.05 = 10 steps above the zero point -5.
    assert!(it.input_i8_mut(0).unwrap().iter().all(|&q| q == 5));
    it.invoke().unwrap();
    let mut probs = [0f32; 4];
    it.output_to_f32(0, &mut probs).unwrap();
    let sum: f32 = probs.iter().sum();
    assert!((sum - 1.0).abs() < 0.02, "softmax output sums to {sum}");
    // top-k agrees with a full sort (stable: ties keep the lower position first).
    let out = it.output_i8(0).unwrap().to_vec();
    let mut sorted: Vec<(usize, i8)> = out.iter().copied().enumerate().collect();
    sorted.sort_by_key(|&(i, v)| (std::cmp::Reverse(v), i));
    let top = it.output_top_k::<3>(0).unwrap();
    assert_eq!(top.as_slice(), &sorted[..3]);
}

/// The bytes of `bytes` with the payload edited by `edit` and the header's checksum made right again.
fn with_payload(bytes: &[u8], edit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut out = bytes.to_vec();
    edit(&mut out[HEADER_LEN..]);
    let crc = format::crc32(&out[HEADER_LEN..]);
    out[16..20].copy_from_slice(&crc.to_le_bytes());
    out
}

/// An operator appended to the format after this runtime (a tag past its table) is refused with its
/// step and tag, never decoded as something else.
#[test]
fn an_operator_newer_than_the_runtime_is_refused_by_tag() {
    let good = dscnn();
    let model = Model::from_bytes(&good).unwrap();
    let ops = model.graph().ops.encoded_bytes();
    // Offset of the second operator's tag in the payload: after the first operator's encoding.
    let first_len = {
        let mut it = model.graph().ops.iter();
        it.next().unwrap().unwrap();
        ops.len() - it.rest().len()
    };
    let at = ops.as_ptr() as usize - good[HEADER_LEN..].as_ptr() as usize + first_len;
    let known = ferrite_runtime::ops::OPERATORS.len();
    assert!(known < 128, "a one-byte varint tag");
    let newer = with_payload(&good, |p| p[at] = known as u8);
    assert_eq!(
        Model::from_bytes(&newer).unwrap_err(),
        Error::UnknownOperator {
            op: 1,
            tag: known as u32,
            known: known as u32
        }
    );
    let message = Model::from_bytes(&newer).unwrap_err().to_string();
    assert!(message.contains("operator 1") && message.contains(&format!("tag {known}")));
}

/// Tags are append-only: the table's first 17 entries are version 1's operators, in their order.
#[test]
fn version_1_operator_tags_are_unchanged() {
    let names: Vec<&str> = ferrite_runtime::ops::OPERATORS
        .iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(
        names[..17],
        [
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "FULLY_CONNECTED",
            "ADD",
            "MUL",
            "AVERAGE_POOL_2D",
            "MAX_POOL_2D",
            "MEAN",
            "SOFTMAX",
            "LOGISTIC",
            "TANH",
            "RELU",
            "RESHAPE",
            "CONCATENATION",
            "PAD",
            "QUANTIZE",
            "DEQUANTIZE",
        ]
    );
}

/// The DS-CNN golden with every Conv2D's weights zeroed in every other block of four along its
/// rows: the file with those filters dense (CONV_2D) and the one with them sparse (CONV_2D_SPARSE).
fn pruned_dscnn() -> (Vec<u8>, Vec<u8>) {
    use ferrite_runtime::kernels::sparse::{encode, Encoded};
    use ferrite_runtime::ops::{Op, SparseConv};
    let bytes = dscnn();
    let model = Model::from_bytes(&bytes).unwrap();
    let g = model.graph();
    let ops: Vec<Op<'_>> = g.ops.iter().map(Result::unwrap).collect();
    let pruned: Vec<Option<Vec<u8>>> = ops
        .iter()
        .map(|op| match op {
            Op::Conv2d(c) => {
                let row = c.filter.len() / c.output.shape.last();
                let mut f = c.filter.to_vec();
                for (i, w) in f.iter_mut().enumerate() {
                    if (i % row) / 4 % 2 == 1 {
                        *w = 0;
                    }
                }
                Some(f)
            }
            _ => None,
        })
        .collect();
    let encoded: Vec<Option<Encoded>> = ops
        .iter()
        .zip(&pruned)
        .map(|(op, f)| {
            let (Op::Conv2d(c), Some(f)) = (op, f) else {
                return None;
            };
            let dense: Vec<i8> = f.iter().map(|&b| b as i8).collect();
            encode(&dense, dense.len() / c.output.shape.last(), &[4])
        })
        .collect();
    let build = |sparse: bool| {
        let values: Vec<Option<Vec<u8>>> = encoded
            .iter()
            .map(|e| {
                e.as_ref()
                    .map(|e| e.values.iter().map(|&w| w as u8).collect())
            })
            .collect();
        let new_ops: Vec<Op<'_>> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| match (op, &pruned[i], &encoded[i], &values[i]) {
                (Op::Conv2d(c), Some(f), Some(e), Some(v)) => {
                    let mut c = c.clone();
                    if sparse {
                        c.filter = v;
                        Op::Conv2dSparse(SparseConv {
                            conv: c,
                            block: e.block as u16,
                            mask: &e.mask,
                        })
                    } else {
                        c.filter = f;
                        Op::Conv2d(c)
                    }
                }
                _ => op.clone(),
            })
            .collect();
        let ops = SeqBuf::new(&new_ops).unwrap();
        let graph = Graph {
            tensors: g.tensors,
            ops: ops.seq(),
            inputs: g.inputs,
            outputs: g.outputs,
            metadata: g.metadata.clone(),
            preprocessing: g.preprocessing,
        };
        format::write::to_bytes(&graph, model.header().arena_size, false).unwrap()
    };
    assert!(
        encoded.iter().any(Option::is_some),
        "the DS-CNN has a Conv2D"
    );
    (build(false), build(true))
}

/// Runs `bytes` on a fixed input and returns its output.
fn output_of(bytes: &[u8]) -> Vec<u8> {
    let model = Model::from_bytes(bytes).unwrap();
    let mut arena = vec![0u8; model.arena_size() + 16];
    let mut it = Interpreter::new(&model, &mut arena).unwrap();
    let input = it.input_bytes_mut(0).unwrap();
    for (i, b) in input.iter_mut().enumerate() {
        *b = (i * 37 % 251) as u8;
    }
    it.invoke().unwrap();
    it.output_bytes(0).unwrap().to_vec()
}

#[test]
fn a_sparse_filter_gives_the_dense_result_in_fewer_bytes() {
    let (dense, sparse) = pruned_dscnn();
    assert!(
        sparse.len() < dense.len(),
        "{} !< {}",
        sparse.len(),
        dense.len()
    );
    assert_eq!(output_of(&sparse), output_of(&dense));
    // And it survives the same round trip as every other file.
    let model = Model::from_bytes(&sparse).unwrap();
    let h = model.header();
    let again = format::write::to_bytes(model.graph(), h.arena_size, false).unwrap();
    assert_eq!(again, sparse);
}

#[test]
fn malformed_sparse_filters_are_refused_with_their_step() {
    use ferrite_runtime::ops::Op;
    let (_, sparse) = pruned_dscnn();
    let model = Model::from_bytes(&sparse).unwrap();
    let (step, op) = model
        .graph()
        .ops
        .iter()
        .map(Result::unwrap)
        .enumerate()
        .find(|(_, op)| matches!(op, Op::Conv2dSparse(_)))
        .unwrap();
    let Op::Conv2dSparse(s) = op else {
        unreachable!()
    };
    // The mask's first byte, found in the payload by its position among the operator's bytes.
    let payload = &sparse[HEADER_LEN..];
    let mask_at = s.mask.as_ptr() as usize - payload.as_ptr() as usize;
    assert_eq!(
        payload[mask_at - 2],
        4,
        "block, then the mask's one-byte length"
    );
    assert_eq!(payload[mask_at] & 0x03, 0x01, "block 0 stored, block 1 not");
    type Edit = fn(&mut [u8], usize);
    let edits: [(&str, Edit); 3] = [
        // One more stored block than the values hold.
        ("a mask bit set", |p, at| p[at] |= 0x02),
        ("a mask bit cleared", |p, at| p[at] &= !0x01),
        // The block size (the byte before the mask's length) as 0.
        ("block 0", |p, at| p[at - 2] = 0),
    ];
    for (what, edit) in edits {
        let bad = with_payload(&sparse, |p| edit(p, mask_at));
        match Model::from_bytes(&bad) {
            Err(Error::InvalidOperator { op, .. }) => assert_eq!(op as usize, step, "{what}"),
            other => panic!(
                "{what}: expected InvalidOperator at {step}, got {:?}",
                other.err()
            ),
        }
    }
}

/// `bytes` re-encoded with the graph's optional `preprocessing` field set to `text`.
fn with_preprocessing(bytes: &[u8], text: Option<&str>) -> Vec<u8> {
    let model = Model::from_bytes(bytes).unwrap();
    let mut graph = model.graph().clone();
    graph.preprocessing = text;
    let h = model.header();
    format::write::to_bytes(&graph, h.arena_size, h.flags & format::FLAG_FLOAT != 0).unwrap()
}

/// `bytes` with its payload replaced by `payload` (length and checksum made right).
fn with_whole_payload(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = bytes[..HEADER_LEN].to_vec();
    out[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[16..20].copy_from_slice(&format::crc32(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Files written without the optional field (the frozen version-1 file, every golden case) load with
/// none and re-encode to the same bytes.
#[test]
fn a_model_without_preprocessing_is_unchanged() {
    let (v1, _, _) = golden::read("format-v1").unwrap();
    assert_eq!(Model::from_bytes(&v1).unwrap().preprocessing(), None);
    assert_eq!(with_preprocessing(&v1, None), v1);
    for case in cases::all().unwrap() {
        let model = Model::from_bytes(&case.model).unwrap();
        assert_eq!(model.preprocessing(), None, "{}", case.name);
        // An empty text is no field at all.
        assert_eq!(
            with_preprocessing(&case.model, Some("")),
            case.model,
            "{}",
            case.name
        );
    }
}

/// The field is the graph's other bytes followed by the text as a postcard string, and reads back.
#[test]
fn preprocessing_round_trips() {
    let good = dscnn();
    let text = "image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw";
    let bytes = with_preprocessing(&good, Some(text));
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.preprocessing(), Some(text));
    // The older payload is a prefix; the field adds a length byte and the text.
    assert_eq!(bytes.len(), good.len() + 1 + text.len());
    assert_eq!(bytes[HEADER_LEN..good.len()], good[HEADER_LEN..]);
    assert_eq!(bytes[good.len()] as usize, text.len());
    assert_eq!(&bytes[good.len() + 1..], text.as_bytes());
    // Decode then encode gives the same bytes; the model runs as before.
    assert_eq!(with_preprocessing(&bytes, Some(text)), bytes);
    assert_eq!(output_of(&bytes), output_of(&good));
    // Removing it gives the original file back.
    assert_eq!(with_preprocessing(&bytes, None), good);
}

/// A cut, undecodable or over-long field is refused as malformed (the header made consistent, so
/// only the field is wrong), never a panic; every truncation of the file is refused.
#[test]
fn a_bad_preprocessing_field_is_refused() {
    let good = dscnn();
    let text = "audio samples=16000 rate=16000 scale=1 mean=0 std=1";
    let bytes = with_preprocessing(&good, Some(text));
    let payload = &bytes[HEADER_LEN..];
    let graph_end = good.len() - HEADER_LEN;
    // Every cut inside the field (its length byte kept) leaves a string shorter than it says.
    for cut in graph_end + 1..payload.len() {
        let e = Model::from_bytes(&with_whole_payload(&bytes, &payload[..cut])).unwrap_err();
        assert_eq!(
            e,
            Error::Malformed {
                reason: "the graph's preprocessing field does not decode"
            },
            "payload cut at {cut}"
        );
    }
    // Not UTF-8.
    let mut bad = payload.to_vec();
    bad[graph_end + 1] = 0xFF;
    let e = Model::from_bytes(&with_whole_payload(&bytes, &bad)).unwrap_err();
    assert!(e.to_string().contains("preprocessing"), "{e}");
    // Bytes after the field.
    let mut long = payload.to_vec();
    long.push(0);
    let e = Model::from_bytes(&with_whole_payload(&bytes, &long)).unwrap_err();
    assert_eq!(
        e,
        Error::Malformed {
            reason: "trailing bytes after the payload's graph"
        }
    );
    for len in 0..bytes.len() {
        let err = Model::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, Error::Truncated { .. }),
            "length {len}: {err:?}"
        );
    }
}
