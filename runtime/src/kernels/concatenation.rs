//! concatenation (to be written).
