//! Models run over sample files batch by batch (`ferrite eval`, `ferrite run`): memory bounded by a
//! batch, whatever the number of samples.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use super::folder_data::{self, InputSpec, PrepArgs};
use crate::ir::Graph;
use crate::npy::{Array, Reader};
use crate::runtime_exec::Runner;

/// Input bytes aimed at per batch; a batch is a whole number of the float executor's pieces.
const BATCH_BYTES: usize = 4 << 20;

/// Samples per piece of the float executor ([`crate::ir::float_exec::run`]): batches of a multiple
/// of it are cut into the same pieces as the whole set, so outputs do not depend on the batching.
const PIECE: usize = 64;

/// A model file read for running: a float ONNX graph (the float executor) or `.ferrite` bytes
/// (converted in memory from TFLite or ONNX Q/DQ; the int8 runtime).
pub enum Loaded {
    Float(Graph),
    Int8(Vec<u8>),
}

impl Loaded {
    pub fn read(path: &Path) -> Result<Loaded> {
        Ok(if super::float_onnx::is_onnx(path) {
            Loaded::Float(super::float_onnx::load(path)?)
        } else {
            Loaded::Int8(super::load_model(path)?)
        })
    }

    /// What the model's first input takes, for reading image and WAV folders (errors name `path`).
    pub fn input_spec(&self, path: &Path) -> Result<InputSpec> {
        match self {
            Loaded::Float(g) => Ok(InputSpec::of_graph(g)),
            Loaded::Int8(bytes) => InputSpec::of_ferrite(bytes, path),
        }
    }

    /// The model validated and ready to run (errors name `path`).
    pub fn executor(&self, path: &Path) -> Result<Executor<'_>> {
        Ok(match self {
            Loaded::Float(g) => Executor::Float(g),
            Loaded::Int8(bytes) => {
                Executor::Int8(Runner::new(bytes).with_context(|| path.display().to_string())?)
            }
        })
    }
}

/// A model ready to run batches.
pub enum Executor<'a> {
    Float(&'a Graph),
    Int8(Runner<'a>),
}

impl Executor<'_> {
    pub fn outputs(&self) -> usize {
        match self {
            Executor::Float(g) => g.outputs.len(),
            Executor::Int8(r) => r.outputs(),
        }
    }

    /// Runs one batch (one array per model input), whose first sample is sample `first` of the
    /// files (errors count samples from there).
    pub fn run(&self, inputs: &[Array], threads: usize, first: usize) -> Result<Vec<Array>> {
        match self {
            Executor::Float(g) => crate::ir::io::run_arrays(g, inputs, threads),
            Executor::Int8(r) => r.run_from(inputs, threads, first),
        }
    }
}

/// Where one input's samples come from: a `.npy` file read a batch at a time, or an array in memory
/// (a folder of images or WAV files, read whole).
enum Source {
    File(Reader),
    Memory { array: Array, done: usize },
}

impl Source {
    fn shape(&self) -> &[usize] {
        match self {
            Source::File(r) => r.shape(),
            Source::Memory { array, .. } => &array.shape,
        }
    }

    fn dtype(&self) -> crate::npy::Dtype {
        match self {
            Source::File(r) => r.dtype(),
            Source::Memory { array, .. } => array.dtype,
        }
    }

    fn rows(&self) -> usize {
        self.shape().first().copied().unwrap_or(1)
    }

    fn row_bytes(&self) -> usize {
        match self {
            Source::File(r) => r.row_bytes(),
            Source::Memory { array, .. } => array.data.len() / self.rows().max(1),
        }
    }

    fn next_rows(&mut self, n: usize) -> Result<Option<Array>> {
        let (rows, row_bytes) = (self.rows(), self.row_bytes());
        match self {
            Source::File(r) => r.next_rows(n),
            Source::Memory { array, done } => {
                let k = n.min(rows - *done);
                if k == 0 {
                    return Ok(None);
                }
                let data = array.data[*done * row_bytes..(*done + k) * row_bytes].to_vec();
                *done += k;
                let mut shape = array.shape.clone();
                if let Some(first) = shape.first_mut() {
                    *first = k;
                }
                Ok(Some(Array {
                    shape,
                    dtype: array.dtype,
                    data,
                }))
            }
        }
    }
}

/// Opens the samples `paths` for `model` (read from `model_path`): `.npy` files, one per input, or
/// an image or WAV folder (or file) for a model's only input, read through the preprocessing of
/// `prep`, the model's record and its input; such a folder's class folders give labels.
pub fn open_samples(
    paths: &[PathBuf],
    prep: &PrepArgs,
    model: &Loaded,
    model_path: &Path,
) -> Result<(Samples, Option<Vec<usize>>)> {
    match paths.iter().find(|p| folder_data::is_folder_data(p)) {
        Some(p) => {
            ensure!(
                paths.len() == 1,
                "{}: an image or WAV folder feeds a model with one input; give it as the only data",
                p.display()
            );
            let spec = model.input_spec(model_path)?;
            let data = folder_data::read_data(p, prep, &spec)?;
            Ok((Samples::from_array(data.array), data.labels))
        }
        None => {
            if let Some(p) = paths.first() {
                folder_data::refuse_flags(prep, p)?;
            }
            Ok((Samples::open(paths)?, None))
        }
    }
}

/// Sample files read in step, one per model input, a batch at a time.
pub struct Samples {
    readers: Vec<Source>,
    /// Samples per batch.
    batch: usize,
    /// Samples already read.
    done: usize,
    /// Whether a batch was given: a file without samples gives one empty batch, which the model's
    /// checks refuse with the shape it takes.
    started: bool,
    /// Samples read so far with a NaN or infinite float32 value in any file, and the first of them.
    non_finite: (usize, Option<usize>),
}

impl Samples {
    /// Opens every file; they must hold the same number of samples.
    pub fn open<P: AsRef<Path>>(paths: &[P]) -> Result<Samples> {
        let readers: Vec<Source> = paths
            .iter()
            .map(|p| Reader::open(p.as_ref()).map(Source::File))
            .collect::<Result<_>>()?;
        let rows = readers.first().map_or(0, Source::rows);
        if let Some((i, r)) = readers.iter().enumerate().find(|(_, r)| r.rows() != rows) {
            anyhow::bail!(
                "inputs have different batch sizes: {} holds {rows} samples, {} holds {}",
                paths[0].as_ref().display(),
                paths[i].as_ref().display(),
                r.rows()
            );
        }
        Ok(Samples::new(readers))
    }

    /// Samples of one input already in memory (`[batch, sample...]`).
    pub fn from_array(array: Array) -> Samples {
        Samples::new(vec![Source::Memory { array, done: 0 }])
    }

    fn new(readers: Vec<Source>) -> Samples {
        let row_bytes: usize = readers.iter().map(Source::row_bytes).sum();
        let batch = (BATCH_BYTES / row_bytes.max(1) / PIECE).max(1) * PIECE;
        Samples {
            readers,
            batch,
            done: 0,
            started: false,
            non_finite: (0, None),
        }
    }

    /// Samples in the files (the first dimension; 1 for a scalar array).
    pub fn len(&self) -> usize {
        self.readers.first().map_or(0, Source::rows)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The files' shapes.
    pub fn shapes(&self) -> Vec<Vec<usize>> {
        self.readers.iter().map(|r| r.shape().to_vec()).collect()
    }

    /// Batches in the files.
    pub fn batches(&self) -> usize {
        self.len().div_ceil(self.batch).max(1)
    }

    /// The next batch, one array per file, and the index of its first sample; `None` at the end.
    pub fn next_batch(&mut self) -> Result<Option<(Vec<Array>, usize)>> {
        let first = self.done;
        let mut arrays = Vec::with_capacity(self.readers.len());
        for r in &mut self.readers {
            match r.next_rows(self.batch)? {
                Some(a) => arrays.push(a),
                None if !self.started => arrays.push(Array {
                    shape: r.shape().to_vec(),
                    dtype: r.dtype(),
                    data: Vec::new(),
                }),
                None => return Ok(None),
            }
        }
        self.started = true;
        ensure!(!arrays.is_empty(), "no input files");
        let rows = arrays[0].shape.first().copied().unwrap_or(1);
        for i in 0..rows {
            if arrays.iter().any(|a| row_is_non_finite(a, i, rows)) {
                self.non_finite.0 += 1;
                self.non_finite.1.get_or_insert(first + i);
            }
        }
        self.done += rows;
        Ok(Some((arrays, first)))
    }

    /// A warning when samples read so far hold NaN or infinite values: the model runs on them, but
    /// their outputs mean nothing.
    pub fn non_finite_warning(&self) -> Option<String> {
        let (count, first) = self.non_finite;
        first.map(|first| {
            format!(
                "warning: {count} sample(s) hold NaN or infinite values (the first is sample \
                 {first}); their outputs mean nothing"
            )
        })
    }
}

/// Whether sample `i` of a float32 batch of `rows` samples holds a NaN or an infinity.
fn row_is_non_finite(a: &Array, i: usize, rows: usize) -> bool {
    if a.dtype != crate::npy::Dtype::F32 || rows == 0 || a.data.is_empty() {
        return false;
    }
    let per = a.data.len() / rows;
    a.data[i * per..(i + 1) * per]
        .chunks_exact(4)
        .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
}
