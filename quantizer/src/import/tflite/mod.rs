//! TFLite int8 models: a bounds-checked FlatBuffer reader, accessors written from the TFLite schema's
//! field ids, and the converter to `.ferrite`, which prepares every parameter as TFLite Micro does.

mod convert;
pub mod flatbuf;
pub mod schema;

pub use convert::{convert, SUPPORTED};
pub use schema::Model;
