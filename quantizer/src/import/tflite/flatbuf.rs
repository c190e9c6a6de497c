//! A bounds-checked reader of FlatBuffers tables and vectors, enough for the TFLite schema.
//!
//! Every access checks offsets and lengths against the file; a truncated or corrupt file gives an error
//! naming the table and field that points outside it, never a panic.

use anyhow::{bail, Result};

fn read<const N: usize>(buf: &[u8], pos: usize, what: &dyn Fn() -> String) -> Result<[u8; N]> {
    match pos
        .checked_add(N)
        .and_then(|end| buf.get(pos..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
    {
        Some(b) => Ok(b),
        None => bail!(
            "corrupt or truncated file: {} at byte {pos} lies past the end ({} bytes)",
            what(),
            buf.len()
        ),
    }
}

fn u32_at(buf: &[u8], pos: usize, what: &dyn Fn() -> String) -> Result<u32> {
    Ok(u32::from_le_bytes(read(buf, pos, what)?))
}

/// Follows the unsigned offset stored at `pos` (relative to `pos`).
fn follow(buf: &[u8], pos: usize, what: &dyn Fn() -> String) -> Result<usize> {
    let rel = u32_at(buf, pos, what)? as usize;
    match pos.checked_add(rel) {
        Some(target) if target < buf.len() => Ok(target),
        _ => bail!(
            "corrupt or truncated file: {} points to byte {}, past the end ({} bytes)",
            what(),
            pos as u64 + rel as u64,
            buf.len()
        ),
    }
}

/// A table: its position and its vtable, both checked to lie inside the buffer.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
    object_len: usize,
    name: &'static str,
}

impl<'a> Table<'a> {
    /// The root table of a FlatBuffer.
    pub fn root(buf: &'a [u8], name: &'static str) -> Result<Self> {
        let pos = follow(buf, 0, &|| format!("the root {name} offset"))?;
        Self::at(buf, pos, name)
    }

    fn at(buf: &'a [u8], pos: usize, name: &'static str) -> Result<Self> {
        let what = || format!("{name} table");
        let soffset = i32::from_le_bytes(read(buf, pos, &what)?) as i64;
        let vtable = pos as i64 - soffset;
        if vtable < 0 || vtable as usize >= buf.len() {
            bail!("corrupt or truncated file: the {name} table at byte {pos} has its vtable outside the file");
        }
        let vtable = vtable as usize;
        let vt_what = || format!("{name} vtable");
        let vtable_len = u16::from_le_bytes(read(buf, vtable, &vt_what)?) as usize;
        let object_len = u16::from_le_bytes(read(buf, vtable + 2, &vt_what)?) as usize;
        if vtable_len < 4 || !vtable_len.is_multiple_of(2) || vtable + vtable_len > buf.len() {
            bail!("corrupt or truncated file: the {name} vtable at byte {vtable} has an invalid length {vtable_len}");
        }
        if object_len < 4 || pos + object_len > buf.len() {
            bail!("corrupt or truncated file: the {name} table at byte {pos} ({object_len} bytes) runs past the end");
        }
        Ok(Self {
            buf,
            pos,
            vtable,
            vtable_len,
            object_len,
            name,
        })
    }

    /// Position of field `id`'s value, `None` if absent (default).
    fn field(&self, id: usize, size: usize, field: &str) -> Result<Option<usize>> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = u16::from_le_bytes([
            self.buf[self.vtable + slot],
            self.buf[self.vtable + slot + 1],
        ]) as usize;
        if off == 0 {
            return Ok(None);
        }
        if off + size > self.object_len {
            bail!(
                "corrupt file: field {}.{field} lies outside its table",
                self.name
            );
        }
        Ok(Some(self.pos + off))
    }

    fn scalar<const N: usize>(&self, id: usize, field: &str) -> Result<Option<[u8; N]>> {
        match self.field(id, N, field)? {
            Some(p) => Ok(Some(read(self.buf, p, &|| {
                format!("{}.{field}", self.name)
            })?)),
            None => Ok(None),
        }
    }

    pub fn u8(&self, id: usize, field: &str, default: u8) -> Result<u8> {
        Ok(self.scalar::<1>(id, field)?.map_or(default, |b| b[0]))
    }

    pub fn i8(&self, id: usize, field: &str, default: i8) -> Result<i8> {
        Ok(self.scalar::<1>(id, field)?.map_or(default, |b| b[0] as i8))
    }

    pub fn bool(&self, id: usize, field: &str) -> Result<bool> {
        Ok(self.u8(id, field, 0)? != 0)
    }

    pub fn i32(&self, id: usize, field: &str, default: i32) -> Result<i32> {
        Ok(self
            .scalar::<4>(id, field)?
            .map_or(default, i32::from_le_bytes))
    }

    pub fn u32(&self, id: usize, field: &str, default: u32) -> Result<u32> {
        Ok(self
            .scalar::<4>(id, field)?
            .map_or(default, u32::from_le_bytes))
    }

    pub fn f32(&self, id: usize, field: &str, default: f32) -> Result<f32> {
        Ok(self
            .scalar::<4>(id, field)?
            .map_or(default, f32::from_le_bytes))
    }

    pub fn u64(&self, id: usize, field: &str, default: u64) -> Result<u64> {
        Ok(self
            .scalar::<8>(id, field)?
            .map_or(default, u64::from_le_bytes))
    }

    /// A sub-table, `None` if absent.
    pub fn table(&self, id: usize, field: &str, name: &'static str) -> Result<Option<Table<'a>>> {
        match self.field(id, 4, field)? {
            Some(p) => {
                let target = follow(self.buf, p, &|| format!("{}.{field}", self.name))?;
                Ok(Some(Table::at(self.buf, target, name)?))
            }
            None => Ok(None),
        }
    }

    /// A vector of `elem_size`-byte elements, `None` if absent.
    pub fn vector(&self, id: usize, field: &str, elem_size: usize) -> Result<Option<Vector<'a>>> {
        let Some(p) = self.field(id, 4, field)? else {
            return Ok(None);
        };
        let what = || format!("{}.{field}", self.name);
        let start = follow(self.buf, p, &what)?;
        let len = u32_at(self.buf, start, &what)? as usize;
        let data = start + 4;
        match len
            .checked_mul(elem_size)
            .and_then(|n| n.checked_add(data))
        {
            Some(end) if end <= self.buf.len() => Ok(Some(Vector {
                buf: self.buf,
                data,
                len,
                elem_size,
            })),
            _ => bail!(
                "corrupt or truncated file: {} claims {len} elements of {elem_size} bytes at byte {data}, past the end ({} bytes)",
                what(),
                self.buf.len()
            ),
        }
    }

    /// A string (lossy UTF-8), empty if absent.
    pub fn string(&self, id: usize, field: &str) -> Result<String> {
        Ok(self
            .vector(id, field, 1)?
            .map(|v| String::from_utf8_lossy(v.bytes()).into_owned())
            .unwrap_or_default())
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A vector whose elements are known to lie inside the buffer.
#[derive(Clone, Copy)]
pub struct Vector<'a> {
    buf: &'a [u8],
    data: usize,
    len: usize,
    elem_size: usize,
}

impl<'a> Vector<'a> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements' bytes.
    pub fn bytes(&self) -> &'a [u8] {
        &self.buf[self.data..self.data + self.len * self.elem_size]
    }

    fn elem<const N: usize>(&self, i: usize) -> [u8; N] {
        let p = self.data + i * self.elem_size;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[p..p + N]);
        out
    }

    pub fn i32s(&self) -> Vec<i32> {
        (0..self.len)
            .map(|i| i32::from_le_bytes(self.elem(i)))
            .collect()
    }

    pub fn f32s(&self) -> Vec<f32> {
        (0..self.len)
            .map(|i| f32::from_le_bytes(self.elem(i)))
            .collect()
    }

    pub fn i64s(&self) -> Vec<i64> {
        (0..self.len)
            .map(|i| i64::from_le_bytes(self.elem(i)))
            .collect()
    }

    /// Element `i` of a vector of tables.
    pub fn table(&self, i: usize, name: &'static str) -> Result<Table<'a>> {
        let p = self.data + i * 4;
        let target = follow(self.buf, p, &|| format!("{name} {i}"))?;
        Table::at(self.buf, target, name)
    }
}
