//! activation (to be written).
