//! requantize (to be written).
