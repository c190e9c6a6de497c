//! f32 kernels (to be written).
