//! `.npy` files (NumPy format 1.0-3.0): read and write dense little-endian arrays, C order.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

/// Element type of an array.
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

    fn from_descr(d: &str) -> Option<Dtype> {
        Some(match d {
            "|i1" | "<i1" | "i1" => Dtype::I8,
            "|u1" | "<u1" | "u1" | "|b1" => Dtype::U8,
            "<i2" => Dtype::I16,
            "<i4" => Dtype::I32,
            "<i8" => Dtype::I64,
            "<f4" => Dtype::F32,
            "<f8" => Dtype::F64,
            _ => return None,
        })
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
        let h = Header::parse(bytes)?;
        let data = bytes.get(h.data_offset..).unwrap_or_default();
        h.check_data_len(data.len() as u64)?;
        Ok(Array {
            shape: h.shape,
            dtype: h.dtype,
            data: data.to_vec(),
        })
    }

    pub fn read(path: &Path) -> Result<Array> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Array::parse(&bytes).with_context(|| format!("{}", path.display()))
    }

    /// Encodes as `.npy` version 1.0.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header_bytes(&self.shape, self.dtype);
        out.extend_from_slice(&self.data);
        out
    }

    /// Writes the file as [`crate::output::write`] does: no half-written file is left.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::output::write(path, &self.to_bytes())
    }
}

/// The `.npy` version 1.0 header of an array of `shape` and `dtype`: the file up to its data.
pub fn header_bytes(shape: &[usize], dtype: Dtype) -> Vec<u8> {
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        dtype.descr(),
        shape
    );
    // Version 1.0 has a 16-bit header length; a longer header (a shape of thousands of dimensions)
    // needs version 2.0 and its 32-bit length.
    let v1 = 10 + header.len() + 1 + 63 <= usize::from(u16::MAX);
    let prefix = if v1 { 10 } else { 12 };
    // Pad so that the data starts on a 64-byte boundary; the header ends with a newline.
    let unpadded = prefix + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(prefix + header.len());
    if v1 {
        out.extend_from_slice(b"\x93NUMPY\x01\x00");
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(b"\x93NUMPY\x02\x00");
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out
}

/// A `.npy` header: what the array is and where its data starts.
#[derive(Clone, Debug)]
struct Header {
    shape: Vec<usize>,
    dtype: Dtype,
    /// Offset of the data in the file.
    data_offset: usize,
    /// Bytes of data the shape and type need (checked: no overflow).
    data_len: usize,
}

impl Header {
    /// Bytes that say how long the header is (magic, version, length).
    const PREFIX: usize = 12;

    /// Where the header text starts and ends, from the first bytes of the file (at least
    /// [`Self::PREFIX`] of them when the file is that long).
    fn extent(bytes: &[u8]) -> Result<(usize, usize)> {
        ensure!(
            bytes.len() >= 10 && &bytes[..6] == b"\x93NUMPY",
            "not a .npy file (bad magic)"
        );
        let (header_len, start): (usize, usize) = match bytes[6] {
            1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
            2 | 3 => {
                ensure!(bytes.len() >= 12, "truncated .npy header");
                (
                    u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                    12,
                )
            }
            v => bail!("unsupported .npy version {v}"),
        };
        let end = start
            .checked_add(header_len)
            .context("truncated .npy header")?;
        Ok((start, end))
    }

    /// Parses the header at the start of `bytes` (the data may follow or not).
    fn parse(bytes: &[u8]) -> Result<Header> {
        let (start, end) = Self::extent(bytes)?;
        let header = bytes.get(start..end).context("truncated .npy header")?;
        let header = std::str::from_utf8(header).context(".npy header is not text")?;
        let descr = dict_value(header, "descr").context(".npy header has no 'descr'")?;
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        let dtype =
            Dtype::from_descr(descr).with_context(|| format!("unsupported .npy dtype {descr}"))?;
        let fortran =
            dict_value(header, "fortran_order").context(".npy header has no 'fortran_order'")?;
        ensure!(
            fortran.trim() == "False",
            "Fortran-ordered .npy arrays are not supported"
        );
        let shape_text = dict_value(header, "shape").context(".npy header has no 'shape'")?;
        let shape: Vec<usize> = shape_text
            .trim_matches(|c| c == '(' || c == ')')
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<usize>()
                    .with_context(|| format!("bad .npy shape entry {s:?}"))
            })
            .collect::<Result<_>>()?;
        // Checked: a header may claim any shape, and a wrapped product would pass the size check.
        let data_len = shape
            .iter()
            .try_fold(dtype.size(), |n, &d| n.checked_mul(d))
            .with_context(|| format!(".npy shape {shape:?} of {descr} is too large to address"))?;
        Ok(Header {
            shape,
            dtype,
            data_offset: end,
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
            self.dtype.descr(),
            self.data_len
        );
        Ok(())
    }
}

/// A `.npy` file read a batch of rows (entries of the first dimension) at a time: memory bounded by
/// the batch, whatever the file's size. The header and the file's size are checked when it is opened.
pub struct Reader {
    path: std::path::PathBuf,
    file: std::io::BufReader<std::fs::File>,
    header: Header,
    /// Rows already read.
    done: usize,
}

impl Reader {
    /// Opens `path` and checks its header against its size; errors name the file.
    pub fn open(path: &Path) -> Result<Reader> {
        use std::io::Read;
        let at = || path.display().to_string();
        let file = std::fs::File::open(path).with_context(|| format!("reading {}", at()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading {}", at()))?
            .len();
        let mut file = std::io::BufReader::new(file);
        // The prefix says how long the header is; then the whole header.
        let mut bytes = Vec::new();
        let mut read = |bytes: &mut Vec<u8>, upto: usize| {
            (&mut file)
                .take(upto.saturating_sub(bytes.len()) as u64)
                .read_to_end(bytes)
                .with_context(|| format!("reading {}", at()))
        };
        read(&mut bytes, Header::PREFIX)?;
        let (_, end) = Header::extent(&bytes).with_context(at)?;
        read(&mut bytes, end)?;
        let header = Header::parse(&bytes).with_context(at)?;
        header
            .check_data_len(size.saturating_sub(header.data_offset as u64))
            .with_context(at)?;
        // A version 1.0 header shorter than the prefix (never written by NumPy, which pads to 64
        // bytes) would have its first data bytes read with it.
        ensure!(
            bytes.len() == header.data_offset,
            "{}: .npy header shorter than {} bytes",
            at(),
            Header::PREFIX
        );
        Ok(Reader {
            path: path.to_path_buf(),
            file,
            header,
            done: 0,
        })
    }

    /// The array's shape.
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    pub fn dtype(&self) -> Dtype {
        self.header.dtype
    }

    /// Rows of the array (its first dimension; 1 for a scalar, read whole).
    pub fn rows(&self) -> usize {
        self.header.shape.first().copied().unwrap_or(1)
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> usize {
        self.header.data_len / self.rows().max(1)
    }

    /// The next `n` rows (fewer at the end) as an array of shape `[k, shape[1..]...]`; `None` once
    /// every row was read. A scalar array comes whole, with its own shape.
    pub fn next_rows(&mut self, n: usize) -> Result<Option<Array>> {
        use std::io::Read;
        let k = n.min(self.rows() - self.done);
        if k == 0 {
            return Ok(None);
        }
        let mut data = vec![0; k * self.row_bytes()];
        self.file
            .read_exact(&mut data)
            .with_context(|| format!("reading {}", self.path.display()))?;
        self.done += k;
        let shape = match self.header.shape.split_first() {
            Some((_, rest)) => [&[k][..], rest].concat(),
            None => Vec::new(),
        };
        Ok(Some(Array {
            shape,
            dtype: self.header.dtype,
            data,
        }))
    }
}

/// The text of `key`'s value in a Python dict literal (up to the next top-level comma).
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let mut depth = 0;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
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
            let b = Array::parse(&a.to_bytes()).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.to_bytes().len() % 64, (n * 4) % 64);
        }
        let a = Array::from_i8(vec![2, 2], &[-1, 2, -128, 127]);
        assert_eq!(Array::parse(&a.to_bytes()).unwrap(), a);
    }

    /// A header longer than version 1.0's 16-bit length (a shape of 30,000 dimensions) is written as
    /// version 2.0, not with a truncated length.
    #[test]
    fn long_header_is_written_as_version_2() {
        let a = Array::from_i8(vec![1; 30_000], &[7]);
        let bytes = a.to_bytes();
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
        let mut b = a.to_bytes();
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
        let mut bytes = a.to_bytes();
        bytes.truncate(bytes.len() - 1);
        std::fs::write(&path, &bytes).unwrap();
        let e = format!("{:#}", Reader::open(&path).err().unwrap());
        assert!(e.contains("a.npy") && e.contains("needs 168"), "{e}");
        std::fs::write(&path, b"\x93NUMPY").unwrap();
        let e = format!("{:#}", Reader::open(&path).err().unwrap());
        assert!(e.contains("bad magic"), "{e}");
    }
}
