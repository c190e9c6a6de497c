//! Sets `cfg(ferrite_dsp)` on targets whose cores all have the Armv7E-M DSP extension (SMLAD,
//! SXTB16), and `cfg(ferrite_armv7m)` on Armv7-M and Armv7E-M targets (the Thumb-2 instructions of
//! the kernels' assembly): stable Rust does not expose `target_feature = "dsp"` to `cfg`, so
//! the target name decides.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferrite_dsp)");
    println!("cargo::rustc-check-cfg=cfg(ferrite_armv7m)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em-") {
        println!("cargo::rustc-cfg=ferrite_dsp");
    }
    if target.starts_with("thumbv7em-") || target.starts_with("thumbv7m-") {
        println!("cargo::rustc-cfg=ferrite_armv7m");
    }
}
