//! depthwise_conv2d (to be written).
