//! The `ferrite` Python module: `quantize`, `convert` and `Model` over the same library functions as
//! the `ferrite` CLI (`ferrite_quantizer::cli`), with NumPy arrays in place of `.npy` files. Errors
//! are raised as `ferrite.FerriteError` (a `ValueError`) with the CLI's messages.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{ArgAction, Args as _, FromArgMatches as _};
use ferrite_quantizer::cli::{self, batches::Loaded};
use ferrite_quantizer::inspect::Source;
use ferrite_quantizer::npy::{Array, Dtype};
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{Element, IntoPyArray, PyReadonlyArrayDyn};
use pyo3::create_exception;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

create_exception!(
    ferrite,
    FerriteError,
    PyValueError,
    "A model, an array or an option that Ferrite refuses; the message says what and where."
);

/// An error of the library as a `FerriteError`, worded as the CLI words it.
fn err(e: anyhow::Error) -> PyErr {
    FerriteError::new_err(format!("{e:#}"))
}

/// The name that stands for the calibration array in `quantize`'s messages.
const CALIB_NAME: &str = "calib";

/// The name that stands for a model given as bytes in messages.
const BYTES_NAME: &str = "<bytes>";

/// Options of `ferrite quantize` that the Python function takes otherwise or not at all.
const NOT_KEYWORDS: [&str; 5] = ["data", "output", "json", "report", "help"];

/// A NumPy array of element type `T` as an [`Array`], if `x` is one.
fn try_array<T: Element + Copy>(
    x: &Bound<'_, PyAny>,
    dtype: Dtype,
    le: impl Fn(T) -> Vec<u8>,
) -> Option<Array> {
    let a = x.extract::<PyReadonlyArrayDyn<'_, T>>().ok()?;
    let view = a.as_array();
    Some(Array {
        shape: view.shape().to_vec(),
        dtype,
        data: view.iter().flat_map(|&v| le(v)).collect(),
    })
}

/// A NumPy array (any layout) as an [`Array`] in C order; the element types of `.npy` files only.
fn to_array(x: &Bound<'_, PyAny>) -> PyResult<Array> {
    try_array::<f32>(x, Dtype::F32, |v| v.to_le_bytes().to_vec())
        .or_else(|| try_array::<i8>(x, Dtype::I8, |v| v.to_le_bytes().to_vec()))
        .or_else(|| try_array::<u8>(x, Dtype::U8, |v| vec![v]))
        .or_else(|| try_array::<i16>(x, Dtype::I16, |v| v.to_le_bytes().to_vec()))
        .or_else(|| try_array::<i32>(x, Dtype::I32, |v| v.to_le_bytes().to_vec()))
        .or_else(|| try_array::<i64>(x, Dtype::I64, |v| v.to_le_bytes().to_vec()))
        .or_else(|| try_array::<f64>(x, Dtype::F64, |v| v.to_le_bytes().to_vec()))
        .ok_or_else(|| {
            let what = match x.getattr("dtype") {
                Ok(d) => format!("a numpy array of {d}"),
                Err(_) => format!("a {}", x.get_type()),
            };
            PyTypeError::new_err(format!(
                "expected a numpy array of float32, int8, uint8, int16, int32, int64 or float64, got {what}"
            ))
        })
}

/// An output [`Array`] as a NumPy array of its type and shape.
fn to_numpy<'py>(py: Python<'py>, a: &Array) -> PyResult<Bound<'py, PyAny>> {
    let shape = IxDyn(&a.shape);
    let bad = |e: numpy::ndarray::ShapeError| FerriteError::new_err(format!("output: {e}"));
    Ok(match a.dtype {
        Dtype::I8 => {
            let v: Vec<i8> = a.data.iter().map(|&b| b as i8).collect();
            ArrayD::from_shape_vec(shape, v)
                .map_err(bad)?
                .into_pyarray(py)
                .into_any()
        }
        _ => ArrayD::from_shape_vec(shape, a.to_f32())
            .map_err(bad)?
            .into_pyarray(py)
            .into_any(),
    })
}

/// The `--long-flag` arguments that `options` stand for (`subset_size=100` is `--subset-size 100`),
/// parsed by the CLI's own parser. Unknown keywords are a `TypeError`; values the CLI refuses, a
/// `FerriteError` with its message.
fn quantize_args(
    model: &Path,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<cli::quantize::Args> {
    let cmd =
        cli::quantize::Args::augment_args(clap::Command::new("quantize").no_binary_name(true));
    let known = |name: &str| {
        cmd.get_arguments().find(|a| {
            !a.is_hide_set()
                && a.get_long() == Some(name)
                && !NOT_KEYWORDS.contains(&a.get_id().as_str())
        })
    };
    let mut argv: Vec<String> = vec![
        model.display().to_string(),
        "--data".into(),
        CALIB_NAME.into(),
        "--output".into(),
        BYTES_NAME.into(),
    ];
    for (key, value) in options.into_iter().flat_map(|d| d.iter()) {
        let key: String = key.extract()?;
        let long = key.replace('_', "-");
        let Some(arg) = known(&long) else {
            let mut names: Vec<String> = cmd
                .get_arguments()
                .filter(|a| !a.is_hide_set() && !NOT_KEYWORDS.contains(&a.get_id().as_str()))
                .filter_map(|a| a.get_long().map(|l| l.replace('-', "_")))
                .collect();
            names.sort();
            return Err(PyTypeError::new_err(format!(
                "quantize() got an unexpected keyword argument '{key}'; the options are: {}",
                names.join(", ")
            )));
        };
        if value.is_none() {
            continue;
        }
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            let on: bool = value.extract().map_err(|_| {
                PyTypeError::new_err(format!("{key}: expected True or False, got {value}"))
            })?;
            if on {
                argv.push(format!("--{long}"));
            }
            continue;
        }
        argv.push(format!("--{long}"));
        if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            for v in value.try_iter()? {
                argv.push(v?.str()?.to_string());
            }
        } else {
            argv.push(value.str()?.to_string());
        }
    }
    let matches = cmd.try_get_matches_from(&argv).map_err(|e| {
        let text = e.render().to_string();
        let text = text.split("\n\nFor more information").next().unwrap_or("");
        FerriteError::new_err(text.trim_start_matches("error: ").trim_end().to_string())
    })?;
    cli::quantize::Args::from_arg_matches(&matches)
        .map_err(|e| FerriteError::new_err(e.to_string()))
}

/// Quantizes the float ONNX model at `onnx_path` to int8 with the calibration samples `calib`
/// (batch first, in the model's layout) and returns the `.ferrite` bytes. The keyword options are
/// `ferrite quantize`'s, named as its long flags with `_` for `-` (`subset_size=100`,
/// `bias_correction="fast"`, `no_cle=True`, `ignore=["Softmax"]`, `max_drop=0.5, val_data="x.npy",
/// val_labels="y.npy"`).
#[pyfunction]
#[pyo3(signature = (onnx_path, calib, **options))]
fn quantize<'py>(
    py: Python<'py>,
    onnx_path: PathBuf,
    calib: &Bound<'py, PyAny>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let start = Instant::now();
    let args = quantize_args(&onnx_path, options)?;
    let calib = to_array(calib)?;
    let q = cli::quantize::quantize(&args, Some(calib), start).map_err(err)?;
    if let Some(s) = q.search.as_ref().filter(|s| !s.met && !args.best_effort) {
        return Err(FerriteError::new_err(format!(
            "{}: no model met the target, even with {} layer(s) in float (best_effort=True returns the best one found)",
            onnx_path.display(),
            s.float_layers.len()
        )));
    }
    Ok(PyBytes::new(py, &q.quantized.built.bytes))
}

/// Converts a model quantized elsewhere (int8 TFLite, ONNX Q/DQ) to `.ferrite` bytes, as
/// `ferrite convert` does.
#[pyfunction]
fn convert<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyBytes>> {
    let bytes = std::fs::read(&path)
        .map_err(|e| err(anyhow::Error::new(e).context(format!("reading {}", path.display()))))?;
    let built = cli::convert::convert_bytes(
        &path,
        &bytes,
        ferrite_quantizer::builder::ArenaLayout::Separate,
    )
    .map_err(err)?;
    Ok(PyBytes::new(py, &built.bytes))
}

/// A model loaded for running on the host: a `.ferrite`, int8 `.tflite` or ONNX Q/DQ file (run by the
/// int8 runtime, converted in memory), a float `.onnx` file (run by the float executor), or
/// `.ferrite` bytes (as `quantize` and `convert` return; TFLite and ONNX Q/DQ bytes are converted).
#[pyclass(module = "ferrite", frozen)]
struct Model {
    /// The file's path, or `<bytes>`.
    name: String,
    loaded: Loaded,
    /// What the `.ferrite` bytes were converted from in memory.
    source: Option<Source>,
}

impl Model {
    fn path(&self) -> &Path {
        Path::new(&self.name)
    }

    /// The `.ferrite` bytes, `None` for a float ONNX model.
    fn ferrite(&self) -> Option<&[u8]> {
        match &self.loaded {
            Loaded::Int8(b) => Some(b),
            Loaded::Float(_) => None,
        }
    }
}

#[pymethods]
impl Model {
    #[new]
    fn new(model: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (name, loaded, source) = if let Ok(b) = model.cast::<PyBytes>() {
            let bytes = b.as_bytes().to_vec();
            let name = BYTES_NAME.to_string();
            let foreign = !bytes.starts_with(&ferrite_runtime::format::MAGIC)
                && (ferrite_quantizer::import::is_tflite(&bytes)
                    || ferrite_quantizer::import::onnx_qdq::is_qdq(&bytes));
            if foreign {
                let built = cli::convert::convert_bytes(
                    Path::new(&name),
                    &bytes,
                    ferrite_quantizer::builder::ArenaLayout::Separate,
                )
                .map_err(err)?;
                let format = if ferrite_quantizer::import::is_tflite(&bytes) {
                    "TFLite"
                } else {
                    "ONNX Q/DQ"
                };
                let source = Source {
                    format,
                    bytes: bytes.len(),
                };
                (name, Loaded::Int8(built.bytes), Some(source))
            } else {
                (name, Loaded::Int8(bytes), None)
            }
        } else {
            let path: PathBuf = model.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "Model() takes a path or bytes, got a {}",
                    model.get_type()
                ))
            })?;
            let name = path.display().to_string();
            if cli::float_onnx::is_onnx(&path) {
                let graph = cli::float_onnx::load(&path).map_err(err)?;
                (name, Loaded::Float(graph), None)
            } else {
                let (bytes, source) = cli::load_model_source(&path).map_err(err)?;
                (name, Loaded::Int8(bytes), source)
            }
        };
        let model = Model {
            name,
            loaded,
            source,
        };
        // Validated once here: a broken model fails to load, not to run.
        model.loaded.executor(model.path()).map_err(err)?;
        Ok(model)
    }

    /// Runs the model over a batch (an array, or a list with one array per model input; float32 or
    /// int8, batch first, in the source model's layout), as `ferrite run` does. Returns the output
    /// array, or a list of them when the model has several.
    #[pyo3(signature = (x, threads=None))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        x: &Bound<'py, PyAny>,
        threads: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let inputs: Vec<Array> = if x.is_instance_of::<PyList>() || x.is_instance_of::<PyTuple>() {
            x.try_iter()?
                .map(|a| to_array(&a?))
                .collect::<PyResult<_>>()?
        } else {
            vec![to_array(x)?]
        };
        let threads = threads.unwrap_or_else(ferrite_quantizer::runtime_exec::available_threads);
        if threads == 0 {
            return Err(FerriteError::new_err("threads must be at least 1"));
        }
        let exec = self.loaded.executor(self.path()).map_err(err)?;
        let outputs = exec
            .run(&inputs, threads, 0)
            .map_err(|e| err(e.context(format!("running {}", self.name))))?;
        let mut arrays = outputs
            .iter()
            .map(|o| to_numpy(py, o))
            .collect::<PyResult<Vec<_>>>()?;
        if arrays.len() == 1 {
            return Ok(arrays.remove(0));
        }
        Ok(PyList::new(py, arrays)?.into_any())
    }

    /// What `ferrite inspect --json` shows: operators, shapes, quantization, MACs, weight bytes,
    /// arena, sizes.
    fn inspect<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let (_, doc) = self.inspect_both()?;
        py.import("json")?.call_method1("loads", (doc,))
    }

    /// What `ferrite inspect` prints.
    fn summary(&self) -> PyResult<String> {
        Ok(self.inspect_both()?.0)
    }

    /// The arena the runtime needs, in bytes (`None` for a float ONNX model).
    #[getter]
    fn arena_size(&self) -> PyResult<Option<usize>> {
        self.ferrite()
            .map(|b| {
                ferrite_runtime::Model::from_bytes(b)
                    .map(|m| m.arena_size())
                    .map_err(|e| err(ferrite_quantizer::runtime_exec::invalid_model(e)))
            })
            .transpose()
    }

    /// The `.ferrite` bytes (`None` for a float ONNX model): what `cargo xtask flash-model` takes
    /// once written to a file.
    #[getter]
    fn ferrite_bytes<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.ferrite().map(|b| PyBytes::new(py, b))
    }

    /// The size of the `.ferrite` bytes (`None` for a float ONNX model).
    #[getter]
    fn size(&self) -> Option<usize> {
        self.ferrite().map(<[u8]>::len)
    }

    /// How many arrays `run` takes.
    #[getter]
    fn inputs(&self) -> PyResult<usize> {
        Ok(match &self.loaded {
            Loaded::Float(g) => g.inputs.len(),
            Loaded::Int8(b) => ferrite_runtime::Model::from_bytes(b)
                .map_err(|e| err(ferrite_quantizer::runtime_exec::invalid_model(e)))?
                .inputs(),
        })
    }

    /// How many arrays `run` returns.
    #[getter]
    fn outputs(&self) -> PyResult<usize> {
        Ok(self.loaded.executor(self.path()).map_err(err)?.outputs())
    }

    fn __repr__(&self) -> String {
        match self.ferrite() {
            Some(b) => format!("ferrite.Model({:?}, {} bytes)", self.name, b.len()),
            None => format!("ferrite.Model({:?}, float ONNX)", self.name),
        }
    }
}

impl Model {
    fn inspect_both(&self) -> PyResult<(String, String)> {
        match &self.loaded {
            Loaded::Float(_) => cli::float_onnx::inspect(self.path()),
            Loaded::Int8(b) => cli::inspect::inspect_ferrite(&self.name, b, self.source),
        }
        .map_err(err)
    }
}

#[pymodule]
fn ferrite(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("FerriteError", m.py().get_type::<FerriteError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_class::<Model>()?;
    Ok(())
}
