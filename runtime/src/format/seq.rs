//! `Seq`: a postcard sequence decoded lazily from the model bytes, so the runtime keeps no tables in RAM.

use core::marker::PhantomData;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeTuple, Serializer};

/// A sequence of `T` stored as an item count and the concatenated postcard encodings of the items.
///
/// Reading borrows the bytes and decodes items one at a time ([`Seq::iter`], [`Seq::get`]). Loading a
/// model decodes every sequence once to validate it; afterwards decoding cannot fail.
pub struct Seq<'a, T> {
    count: u32,
    bytes: &'a [u8],
    #[cfg(any(feature = "host", test))]
    items: Option<std::vec::Vec<T>>,
    _item: PhantomData<T>,
}

impl<'a, T> Seq<'a, T> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the sequence has no items.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded bytes of all items (empty for a sequence built from items on the host).
    pub fn encoded_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a, T: Deserialize<'a>> Seq<'a, T> {
    /// Decodes the items in order.
    pub fn iter(&self) -> SeqIter<'a, T> {
        SeqIter {
            remaining: self.count,
            bytes: self.bytes,
            _item: PhantomData,
        }
    }

    /// Decodes item `index` (walks the sequence: O(index)).
    pub fn get(&self, index: usize) -> Option<T> {
        self.iter().nth(index).and_then(Result::ok)
    }

    /// Decodes every item and checks that they use exactly the stored bytes.
    pub fn check(&self) -> Result<(), postcard::Error> {
        let mut it = self.iter();
        for item in &mut it {
            item?;
        }
        if it.bytes.is_empty() {
            Ok(())
        } else {
            Err(postcard::Error::DeserializeBadEncoding)
        }
    }
}

/// Iterator over a [`Seq`]'s items, decoding each as it goes.
pub struct SeqIter<'a, T> {
    remaining: u32,
    bytes: &'a [u8],
    _item: PhantomData<T>,
}

impl<'a, T> SeqIter<'a, T> {
    /// The encoded bytes not yet decoded (after an error: from the item that failed).
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<'a, T: Deserialize<'a>> Iterator for SeqIter<'a, T> {
    type Item = Result<T, postcard::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match postcard::take_from_bytes::<T>(self.bytes) {
            Ok((item, rest)) => {
                self.bytes = rest;
                Some(Ok(item))
            }
            Err(e) => {
                self.remaining = 0;
                Some(Err(e))
            }
        }
    }
}

impl<T> Clone for Seq<'_, T>
where
    T: Clone,
{
    fn clone(&self) -> Self {
        Seq {
            count: self.count,
            bytes: self.bytes,
            #[cfg(any(feature = "host", test))]
            items: self.items.clone(),
            _item: PhantomData,
        }
    }
}

impl<T> core::fmt::Debug for Seq<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Seq({} items)", self.count)
    }
}

impl<'de: 'a, 'a, T> Deserialize<'de> for Seq<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (count, bytes): (u32, &'de [u8]) = Deserialize::deserialize(deserializer)?;
        Ok(Seq {
            count,
            bytes,
            #[cfg(any(feature = "host", test))]
            items: None,
            _item: PhantomData,
        })
    }
}

impl<T: Serialize> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.count)?;
        #[cfg(any(feature = "host", test))]
        if let Some(items) = &self.items {
            let mut encoded = std::vec::Vec::new();
            for item in items {
                let bytes = postcard::to_allocvec(item).map_err(serde::ser::Error::custom)?;
                encoded.extend_from_slice(&bytes);
            }
            tuple.serialize_element(&serde_bytes_ref(&encoded))?;
            return tuple.end();
        }
        tuple.serialize_element(&serde_bytes_ref(self.bytes))?;
        tuple.end()
    }
}

/// Serializes a byte slice as postcard's length-prefixed bytes (what `&[u8]` deserializes from).
fn serde_bytes_ref(bytes: &[u8]) -> ByteSlice<'_> {
    ByteSlice(bytes)
}

struct ByteSlice<'b>(&'b [u8]);

impl Serialize for ByteSlice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

#[cfg(any(feature = "host", test))]
impl<T> Seq<'_, T> {
    /// The items of a sequence built on the host (`None` for one decoded from bytes).
    pub fn items(&self) -> Option<&[T]> {
        self.items.as_deref()
    }

    /// Mutable items of a sequence built on the host.
    pub fn items_mut(&mut self) -> Option<&mut std::vec::Vec<T>> {
        self.items.as_mut()
    }
}

#[cfg(any(feature = "host", test))]
impl<T> From<std::vec::Vec<T>> for Seq<'static, T> {
    fn from(items: std::vec::Vec<T>) -> Self {
        Seq {
            count: items.len() as u32,
            bytes: &[],
            items: Some(items),
            _item: PhantomData,
        }
    }
}
