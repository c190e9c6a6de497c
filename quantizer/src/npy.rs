//! NumPy arrays: `.npy` files and the arrays of `.npz` archives, parsed and written by the
//! `ndarray-npy` crate (format 1.0-3.0, either byte order, C or Fortran order) and the `zip` crate,
//! held here as dense little-endian bytes in C order.
//!
//! Wherever a `.npy` file is read, `FILE.npz` (an archive of one array) or `FILE.npz:NAME` (its array
//! `NAME`) may stand instead.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use ndarray::ArrayD;
use ndarray_npy::npy::header::{Header as NpyHeader, Layout, ParseHeaderError, ReadHeaderError};
use ndarray_npy::{ReadNpyExt, ReadableElement};
use py_literal::Value as PyValue;

/// What `--help` says of array arguments.
pub const ARRAY_FILES_HELP: &str = "Arrays are read from .npy files (C or Fortran order; float32, \
float64, int8, uint8, int16, int32, int64 or bool) or from .npz archives: FILE.npz when it holds a \
single array, FILE.npz:NAME for its array NAME.";

/// Element type of an array (`bool` arrays are read as `U8`, 0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    I8,
    U8,
    I16,
    I32,
    I64,
    F32,
    F64,
}

impl Dtype {
    /// The type descriptor written for this type.
    fn descr(self) -> &'static str {
        match self {
            Dtype::I8 => "|i1",
            Dtype::U8 => "|u1",
            Dtype::I16 => "<i2",
            Dtype::I32 => "<i4",
            Dtype::I64 => "<i8",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::I8 | Dtype::U8 => 1,
            Dtype::I16 => 2,
            Dtype::I32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::F64 => 8,
        }
    }
}

impl std::fmt::Display for Dtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dtype::I8 => "int8",
            Dtype::U8 => "uint8",
            Dtype::I16 => "int16",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        })
    }
}

/// A dense array: shape, element type and raw little-endian bytes in C order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub dtype: Dtype,
    pub data: Vec<u8>,
}

impl Array {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn from_f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Array {
            shape,
            dtype: Dtype::F32,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn from_i8(shape: Vec<usize>, values: &[i8]) -> Self {
        Array {
            shape,
            dtype: Dtype::I8,
            data: values.iter().map(|&v| v as u8).collect(),
        }
    }

    /// The first `at` rows (first dimension) and the rest; `at` at most the row count.
    pub fn split_rows(mut self, at: usize) -> (Array, Array) {
        let rows = self.shape.first().copied().unwrap_or(1);
        let at = at.min(rows);
        let row_bytes = self.data.len() / rows.max(1);
        let rest = self.data.split_off(at * row_bytes);
        let mut shape = self.shape.clone();
        if let Some(r) = shape.first_mut() {
            *r = rows - at;
        }
        if let Some(r) = self.shape.first_mut() {
            *r = at;
        }
        let tail = Array {
            shape,
            dtype: self.dtype,
            data: rest,
        };
        (self, tail)
    }

    /// The values as f32 (integers converted exactly where they fit).
    pub fn to_f32(&self) -> Vec<f32> {
        let n = self.len();
        (0..n).map(|i| self.get_f64(i) as f32).collect()
    }

    /// Element `i` as f64.
    pub fn get_f64(&self, i: usize) -> f64 {
        let s = self.dtype.size();
        let b = &self.data[i * s..(i + 1) * s];
        match self.dtype {
            Dtype::I8 => b[0] as i8 as f64,
            Dtype::U8 => b[0] as f64,
            Dtype::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            Dtype::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Dtype::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f64,
            Dtype::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            Dtype::F64 => f64::from_le_bytes(b.try_into().unwrap()),
        }
    }

    /// Parses `.npy` bytes.
    pub fn parse(bytes: &[u8]) -> Result<Array> {
        let mut at = std::io::Cursor::new(bytes);
        let h = Header::read(&mut at)?;
        let data = &bytes[at.position() as usize..];
        h.check_data_len(data.len() as u64)?;
        if !h.plain {
            return h.decode(bytes);
        }
        Ok(Array {
            shape: h.shape,
            dtype: h.dtype,
            data: data.to_vec(),
        })
    }

    /// Reads a `.npy` file, or an array of a `.npz` archive (`FILE.npz`, `FILE.npz:NAME`).
    pub fn read(path: &Path) -> Result<Array> {
        if let Some((archive, name)) = npz_path(path) {
            return read_npz(&archive, name.as_deref());
        }
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Array::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// Encodes as `.npy` (version 1.0, or 2.0 for a header too long for 1.0).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut out = header_bytes(&self.shape, self.dtype)?;
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// Writes the file as [`crate::output::write`] does: no half-written file is left.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::output::write(path, &self.to_bytes()?)
    }
}

/// The `.npy` header of a C-order array of `shape` and `dtype`: the file up to its data, padded so
/// that the data starts on a 64-byte boundary.
pub fn header_bytes(shape: &[usize], dtype: Dtype) -> Result<Vec<u8>> {
    let header = NpyHeader {
        type_descriptor: PyValue::String(dtype.descr().into()),
        layout: Layout::Standard,
        shape: shape.to_vec(),
    };
    header
        .to_bytes()
        .with_context(|| format!("a .npy header for shape {shape:?}"))
}

/// A `.npy` header as read: what the array is and how its data is laid out.
#[derive(Clone, Debug)]
struct Header {
    shape: Vec<usize>,
    dtype: Dtype,
    /// `bool` elements (read as 0 and 1 into `U8`).
    boolean: bool,
    /// The data is the array's bytes in C order, little-endian: it is taken as it is.
    plain: bool,
    /// Bytes of data the shape and type need (checked: no overflow).
    data_len: usize,
}

impl Header {
    /// Reads the header from the start of `r`, leaving `r` at the data.
    fn read(r: &mut impl Read) -> Result<Header> {
        let h = NpyHeader::from_reader(r).map_err(|e| match e {
            ReadHeaderError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                anyhow::anyhow!("truncated .npy header (or not a .npy file: bad magic)")
            }
            ReadHeaderError::Parse(ParseHeaderError::MagicString) => {
                anyhow::anyhow!("not a .npy file (bad magic)")
            }
            e => anyhow::anyhow!("bad .npy header: {e}"),
        })?;
        let PyValue::String(descr) = &h.type_descriptor else {
            bail!(
                "unsupported .npy dtype {} (structured arrays are not supported)",
                h.type_descriptor
            );
        };
        let (dtype, boolean) = match descr.trim_start_matches(['<', '>', '|', '=']) {
            "i1" | "b" => (Dtype::I8, false),
            "u1" | "B" => (Dtype::U8, false),
            "b1" | "?" => (Dtype::U8, true),
            "i2" => (Dtype::I16, false),
            "i4" => (Dtype::I32, false),
            "i8" => (Dtype::I64, false),
            "f4" => (Dtype::F32, false),
            "f8" => (Dtype::F64, false),
            _ => bail!(
                "unsupported .npy dtype {descr} (supported: float32, float64, int8, uint8, int16, \
                 int32, int64, bool)"
            ),
        };
        let big_endian = descr.starts_with('>') && dtype.size() > 1;
        // Checked: a header may claim any shape, and a wrapped product would pass the size check.
        let data_len = h
            .shape
            .iter()
            .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
            .with_context(|| {
                format!(
                    ".npy shape {:?} of {descr} is too large to address",
                    h.shape
                )
            })?;
        Ok(Header {
            plain: !h.layout.is_fortran() && !big_endian && !boolean,
            shape: h.shape,
            dtype,
            boolean,
            data_len,
        })
    }

    /// Refuses data of `len` bytes that is not exactly what the shape needs.
    fn check_data_len(&self, len: u64) -> Result<()> {
        ensure!(
            len == self.data_len as u64,
            ".npy data holds {} bytes, shape {:?} of {} needs {}",
            len,
            self.shape,
            self.dtype,
            self.data_len
        );
        Ok(())
    }

    /// The array of the whole `.npy` file `r` (header included) whose header this is.
    fn decode(&self, r: impl Read) -> Result<Array> {
        fn values<T: ReadableElement + Copy, const N: usize>(
            r: impl Read,
            le: fn(T) -> [u8; N],
        ) -> Result<Vec<u8>> {
            let a = ArrayD::<T>::read_npy(r).map_err(|e| anyhow::anyhow!("bad .npy file: {e}"))?;
            // Logical (C) order, whatever the file's order.
            Ok(a.iter().flat_map(|&v| le(v)).collect())
        }
        let data = match self.dtype {
            Dtype::U8 if self.boolean => values(r, |v: bool| [u8::from(v)])?,
            Dtype::I8 => values(r, i8::to_le_bytes)?,
            Dtype::U8 => values(r, u8::to_le_bytes)?,
            Dtype::I16 => values(r, i16::to_le_bytes)?,
            Dtype::I32 => values(r, i32::to_le_bytes)?,
            Dtype::I64 => values(r, i64::to_le_bytes)?,
            Dtype::F32 => values(r, f32::to_le_bytes)?,
            Dtype::F64 => values(r, f64::to_le_bytes)?,
        };
        Ok(Array {
            shape: self.shape.clone(),
            dtype: self.dtype,
            data,
        })
    }
}

/// The archive and array name of a `.npz` path: `FILE.npz` (no name) or `FILE.npz:NAME`.
fn npz_path(path: &Path) -> Option<(PathBuf, Option<String>)> {
    if path.extension().is_some_and(|e| e == "npz") {
        return Some((path.to_path_buf(), None));
    }
    let text = path.to_str()?;
    let at = text.rfind(".npz:")?;
    Some((
        PathBuf::from(&text[..at + 4]),
        Some(text[at + 5..].to_string()),
    ))
}

/// Array `name` of the `.npz` archive at `path`, or its only array.
fn read_npz(path: &Path, name: Option<&str>) -> Result<Array> {
    let at = || match name {
        Some(n) => format!("{}:{n}", path.display()),
        None => path.display().to_string(),
    };
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .with_context(|| format!("{}: not a .npz archive", path.display()))?;
    let arrays: Vec<String> = zip
        .file_names()
        .filter_map(|n| n.strip_suffix(".npy"))
        .map(str::to_string)
        .collect();
    let name = match name {
        Some(n) => {
            ensure!(
                arrays.iter().any(|a| a == n),
                "{}: no array {n:?} in the archive (it holds {})",
                path.display(),
                list(&arrays)
            );
            n.to_string()
        }
        None => match arrays.as_slice() {
            [only] => only.clone(),
            _ => bail!(
                "{}: the archive holds {}; name the array as {}:NAME",
                path.display(),
                list(&arrays),
                path.display()
            ),
        },
    };
    let mut bytes = Vec::new();
    zip.by_name(&format!("{name}.npy"))
        .and_then(|mut f| Ok(f.read_to_end(&mut bytes)?))
        .with_context(|| format!("reading {}", at()))?;
    Array::parse(&bytes).with_context(at)
}

/// `a, b, c` or `no arrays`, for messages.
fn list(arrays: &[String]) -> String {
    if arrays.is_empty() {
        "no arrays".into()
    } else {
        format!("arrays {}", arrays.join(", "))
    }
}

/// Where the rows of a [`Reader`] come from.
enum Rows {
    /// The file itself, positioned at the next row (C order, little-endian).
    File(std::io::BufReader<std::fs::File>),
    /// The whole array, decoded (Fortran order, big-endian, `bool`, `.npz`).
    Memory(Vec<u8>),
}

/// A `.npy` file read a batch of rows (entries of the first dimension) at a time: memory bounded by
/// the batch, whatever the file's size, when the file is in C order and little-endian; other files
/// and `.npz` arrays are read whole. The header and the file's size are checked when it is opened.
pub struct Reader {
    path: PathBuf,
    rows: Rows,
    shape: Vec<usize>,
    dtype: Dtype,
    data_len: usize,
    /// Rows already read.
    done: usize,
}

impl Reader {
    /// Opens `path` (see [`Array::read`]) and checks its header against its size; errors name the
    /// file.
    pub fn open(path: &Path) -> Result<Reader> {
        let whole = |a: Array| Reader {
            path: path.to_path_buf(),
            data_len: a.data.len(),
            shape: a.shape,
            dtype: a.dtype,
            rows: Rows::Memory(a.data),
            done: 0,
        };
        if npz_path(path).is_some() {
            return Ok(whole(Array::read(path)?));
        }
        let at = || path.display().to_string();
        let file = std::fs::File::open(path).with_context(|| format!("reading {}", at()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading {}", at()))?
            .len();
        let mut file = std::io::BufReader::new(file);
        let header = Header::read(&mut file).with_context(at)?;
        let offset = file
            .stream_position()
            .with_context(|| format!("reading {}", at()))?;
        header
            .check_data_len(size.saturating_sub(offset))
            .with_context(at)?;
        if !header.plain {
            file.rewind().with_context(|| format!("reading {}", at()))?;
            return Ok(whole(header.decode(file).with_context(at)?));
        }
        Ok(Reader {
            path: path.to_path_buf(),
            rows: Rows::File(file),
            shape: header.shape,
            dtype: header.dtype,
            data_len: header.data_len,
            done: 0,
        })
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Rows of the array (its first dimension; 1 for a scalar, read whole).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.data_len / self.rows().max(1)
    }

    /// The next `n` rows (fewer at the end) as an array of shape `[k, shape[1..]...]`; `None` once
    /// every row was read. A scalar array comes whole, with its own shape.
    pub fn next_rows(&mut self, n: usize) -> Result<Option<Array>> {
        let k = n.min(self.rows() - self.done);
        if k == 0 {
            return Ok(None);
        }
        let (from, len) = (self.done * self.row_bytes(), k * self.row_bytes());
        let data = match &mut self.rows {
            Rows::File(file) => {
                let mut data = vec![0; len];
                file.read_exact(&mut data)
                    .with_context(|| format!("reading {}", self.path.display()))?;
                data
            }
            Rows::Memory(all) => all[from..from + len].to_vec(),
        };
        self.done += k;
        let shape = match self.shape.split_first() {
            Some((_, rest)) => [&[k][..], rest].concat(),
            None => Vec::new(),
        };
        Ok(Some(Array {
            shape,
            dtype: self.dtype,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for shape in [vec![3], vec![2, 3], vec![1, 2, 2, 1], vec![]] {
            let n: usize = shape.iter().product();
            let a = Array::from_f32(
                shape.clone(),
                &(0..n).map(|i| i as f32 * 0.5).collect::<Vec<_>>(),
            );
            let b = Array::parse(&a.to_bytes().unwrap()).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.to_bytes().unwrap().len() % 64, (n * 4) % 64);
        }
        let a = Array::from_i8(vec![2, 2], &[-1, 2, -128, 127]);
        assert_eq!(Array::parse(&a.to_bytes().unwrap()).unwrap(), a);
    }

    /// A header longer than version 1.0's 16-bit length (a shape of 30,000 dimensions) is written as
    /// version 2.0, not with a truncated length.
    #[test]
    fn long_header_is_written_as_version_2() {
        let a = Array::from_i8(vec![1; 30_000], &[7]);
        let bytes = a.to_bytes().unwrap();
        assert_eq!(bytes[6], 2);
        assert_eq!(bytes.len() % 64, 1);
        assert_eq!(Array::parse(&bytes).unwrap(), a);
    }

    /// Bytes written by NumPy 1.26 (`np.save` of `np.arange(6, dtype='<f4').reshape(2, 3)`), header
    /// reproduced from the format specification.
    #[test]
    fn reads_numpy_header() {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let mut h = h.to_string();
        h.push_str(&" ".repeat(128 - 10 - h.len() - 1));
        h.push('\n');
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        for i in 0..6 {
            b.extend_from_slice(&(i as f32).to_le_bytes());
        }
        let a = Array::parse(&b).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.to_f32(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert!(Array::parse(b"hello")
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let a = Array::from_f32(vec![4], &[1.0; 4]);
        let mut b = a.to_bytes().unwrap();
        b.truncate(b.len() - 1);
        assert!(Array::parse(&b)
            .unwrap_err()
            .to_string()
            .contains("needs 16"));
    }

    /// Shapes whose element count or byte size overflows `usize` are refused, not wrapped to a small
    /// size that the data would match.
    #[test]
    fn overflowing_shapes_are_refused() {
        for shape in [
            "(288230376151711744, 1, 28, 28)",
            "(4294967296, 4294967296, 1, 1)",
        ] {
            let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}\n");
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(h.len() as u16).to_le_bytes());
            b.extend_from_slice(h.as_bytes());
            b.extend_from_slice(&[0; 64]);
            let e = Array::parse(&b).unwrap_err().to_string();
            assert!(e.contains("too large"), "{e}");
        }
    }

    /// Read in batches of rows, a file gives the rows `Array::read` gives, and is refused where it is.
    #[test]
    fn the_reader_gives_the_same_rows_in_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let a = Array::from_f32(
            vec![7, 2, 3],
            &(0..42).map(|i| i as f32).collect::<Vec<_>>(),
        );
        a.write(&path).unwrap();
        for n in [1, 3, 7, 100] {
            let mut r = Reader::open(&path).unwrap();
            assert_eq!(
                (r.rows(), r.row_bytes(), r.shape()),
                (7, 24, &[7, 2, 3][..])
            );
            let mut data = Vec::new();
            while let Some(b) = r.next_rows(n).unwrap() {
                assert_eq!(b.shape, [b.shape[0].min(n), 2, 3]);
                data.extend(b.data);
            }
            assert_eq!(data, a.data);
        }
        let mut bytes = a.to_bytes().unwrap();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&path, &bytes).unwrap();
        let e = format!("{:#}", Reader::open(&path).err().unwrap());
        assert!(e.contains("a.npy") && e.contains("needs 168"), "{e}");
        std::fs::write(&path, b"\x93NUMPY").unwrap();
        let e = format!("{:#}", Reader::open(&path).err().unwrap());
        assert!(e.contains("bad magic"), "{e}");
    }

    /// A `.npy` file with header dict `dict` (padded as NumPy pads) and `data`.
    fn npy(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut h = dict.to_string();
        h.push_str(&" ".repeat(63 - (10 + h.len()) % 64));
        h.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
        b.extend_from_slice(h.as_bytes());
        b.extend_from_slice(data);
        b
    }

    /// A Fortran-ordered array (`np.asfortranarray(np.arange(6).reshape(2, 3))`: the data runs down
    /// the columns) comes back in C order; so does a big-endian one, and `bool` becomes 0 and 1.
    #[test]
    fn fortran_order_big_endian_and_bool_are_read_in_c_order() {
        let column_major: Vec<u8> = [0f32, 3.0, 1.0, 4.0, 2.0, 5.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let f = npy(
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            &column_major,
        );
        let a = Array::parse(&f).unwrap();
        assert_eq!(a.shape, [2, 3]);
        assert_eq!(a.to_f32(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);

        let big: Vec<u8> = [1i16, -2, 300]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let b = npy(
            "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }",
            &big,
        );
        let b = Array::parse(&b).unwrap();
        assert_eq!((b.dtype, b.to_f32()), (Dtype::I16, vec![1.0, -2.0, 300.0]));

        let t = npy(
            "{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
            &[1, 0, 1],
        );
        assert_eq!(Array::parse(&t).unwrap().data, [1, 0, 1]);

        // The reader gives a Fortran-ordered file's rows in C order too.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.npy");
        std::fs::write(&path, &f).unwrap();
        let mut r = Reader::open(&path).unwrap();
        assert_eq!(r.next_rows(1).unwrap().unwrap().to_f32(), [0.0, 1.0, 2.0]);
        assert_eq!(r.next_rows(5).unwrap().unwrap().to_f32(), [3.0, 4.0, 5.0]);
        assert!(r.next_rows(1).unwrap().is_none());
    }

    #[test]
    fn other_dtypes_are_refused_by_name() {
        for (descr, size) in [("<c8", 8), ("<u2", 2), ("<M8[s]", 8)] {
            let b = npy(
                &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"),
                &vec![0; size],
            );
            let e = Array::parse(&b).unwrap_err().to_string();
            assert!(
                e.contains("unsupported .npy dtype") && e.contains(descr),
                "{e}"
            );
        }
    }

    /// Writes a `.npz` archive (stored, as `np.savez` writes) of `arrays`.
    fn npz(path: &Path, arrays: &[(&str, &Array)]) {
        let mut w = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        for (name, a) in arrays {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file(format!("{name}.npy"), options).unwrap();
            std::io::Write::write_all(&mut w, &a.to_bytes().unwrap()).unwrap();
        }
        w.finish().unwrap();
    }

    #[test]
    fn npz_arrays_are_read_by_name_or_alone() {
        let dir = tempfile::tempdir().unwrap();
        let x = Array::from_f32(vec![3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let y = Array::from_i8(vec![3], &[0, 1, 2]);
        let one = dir.path().join("one.npz");
        npz(&one, &[("x", &x)]);
        assert_eq!(Array::read(&one).unwrap(), x);
        let mut r = Reader::open(&one).unwrap();
        assert_eq!(
            r.next_rows(2).unwrap().unwrap().to_f32(),
            [1.0, 2.0, 3.0, 4.0]
        );

        let two = dir.path().join("two.npz");
        npz(&two, &[("x", &x), ("y", &y)]);
        let named = |n: &str| PathBuf::from(format!("{}:{n}", two.display()));
        assert_eq!(Array::read(&named("y")).unwrap(), y);
        assert_eq!(Reader::open(&named("x")).unwrap().shape(), [3, 2]);
        let e = format!("{:#}", Array::read(&two).unwrap_err());
        assert!(
            e.contains("two.npz") && e.contains("arrays x, y") && e.contains(":NAME"),
            "{e}"
        );
        let e = format!("{:#}", Array::read(&named("z")).unwrap_err());
        assert!(
            e.contains("no array \"z\"") && e.contains("arrays x, y"),
            "{e}"
        );

        // A bad array inside is named with its archive.
        let bad = dir.path().join("bad.npz");
        let mut w = zip::ZipWriter::new(std::fs::File::create(&bad).unwrap());
        w.start_file("x.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, b"hello").unwrap();
        w.finish().unwrap();
        let e = format!("{:#}", Array::read(&bad).unwrap_err());
        assert!(e.contains("bad.npz") && e.contains("magic"), "{e}");
        std::fs::write(&bad, b"not a zip").unwrap();
        let e = format!("{:#}", Array::read(&bad).unwrap_err());
        assert!(e.contains("bad.npz: not a .npz archive"), "{e}");
    }
}
