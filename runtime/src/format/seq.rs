//! `Seq`: a postcard sequence decoded lazily from the model bytes, so the runtime keeps no tables in RAM.

use core::marker::PhantomData;
use serde::de::{Deserialize, Deserializer};
use serde::ser::{Serialize, SerializeTuple, Serializer};

use super::{Decode, Reader};

/// A sequence of `T` stored as an item count and the concatenated postcard encodings of the items.
///
/// Reading borrows the bytes and decodes items one at a time with [`Decode`] ([`Seq::iter`],
/// [`Seq::get`]). Loading a model decodes every sequence once to validate it; afterwards decoding
/// cannot fail. A host builds one from items through `SeqBuf` (with the `host` feature), which owns
/// the encoded bytes.
pub struct Seq<'a, T> {
    count: u32,
    bytes: &'a [u8],
    _item: PhantomData<T>,
}

impl<'a, T> Seq<'a, T> {
    /// The empty sequence.
    pub const EMPTY: Self = Seq {
        count: 0,
        bytes: &[],
        _item: PhantomData,
    };

    /// Number of items.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether the sequence has no items.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded bytes of all items.
    pub fn encoded_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub(crate) fn from_parts(count: u32, bytes: &'a [u8]) -> Self {
        Seq {
            count,
            bytes,
            _item: PhantomData,
        }
    }
}

impl<'a, T: Decode<'a>> Seq<'a, T> {
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

impl<'a, T: Decode<'a>> Iterator for SeqIter<'a, T> {
    type Item = Result<T, postcard::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut r = Reader::new(self.bytes);
        match T::decode(&mut r) {
            Some(item) => {
                self.bytes = r.rest();
                Some(Ok(item))
            }
            None => {
                self.remaining = 0;
                Some(Err(postcard::Error::DeserializeBadEncoding))
            }
        }
    }
}

impl<T> Clone for Seq<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Seq<'_, T> {}

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
            _item: PhantomData,
        })
    }
}

impl<T: Serialize> Serialize for Seq<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.count)?;
        tuple.serialize_element(&ByteSlice(self.bytes))?;
        tuple.end()
    }
}

/// A byte slice serialized as postcard's length-prefixed bytes (what `&[u8]` deserializes from).
struct ByteSlice<'b>(&'b [u8]);

impl Serialize for ByteSlice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A sequence encoded on the host: owns the items' encodings, lends them out as a [`Seq`].
#[cfg(any(feature = "host", test))]
#[derive(Clone, Debug, Default)]
pub struct SeqBuf<T> {
    count: u32,
    bytes: std::vec::Vec<u8>,
    _item: PhantomData<T>,
}

#[cfg(any(feature = "host", test))]
impl<T: Serialize> SeqBuf<T> {
    /// Encodes `items` in order.
    pub fn new(items: &[T]) -> Result<Self, postcard::Error> {
        let count = u32::try_from(items.len()).map_err(|_| postcard::Error::SerializeBufferFull)?;
        let mut bytes = std::vec::Vec::new();
        for item in items {
            bytes.extend_from_slice(&postcard::to_allocvec(item)?);
        }
        Ok(SeqBuf {
            count,
            bytes,
            _item: PhantomData,
        })
    }

    /// The sequence, borrowing the encoded bytes.
    pub fn seq(&self) -> Seq<'_, T> {
        Seq {
            count: self.count,
            bytes: &self.bytes,
            _item: PhantomData,
        }
    }
}
