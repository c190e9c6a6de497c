//! fixedpoint (to be written).
