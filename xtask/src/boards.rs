//! The boards `cargo xtask qemu-test` knows: QEMU machine, firmware crate
//! under `boards/` and Rust target.

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Machine {
    /// Arm MPS2 AN386 (Cortex-M4F), thumbv7em-none-eabihf.
    An386,
    /// TI Stellaris LM3S6965 (Cortex-M3), thumbv7m-none-eabi.
    Lm3s6965,
    /// BBC micro:bit, nRF51822 (Cortex-M0), thumbv6m-none-eabi.
    Microbit,
}

impl Machine {
    pub const ALL: [Machine; 3] = [Machine::An386, Machine::Lm3s6965, Machine::Microbit];

    /// Short name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Machine::An386 => "an386",
            Machine::Lm3s6965 => "lm3s6965",
            Machine::Microbit => "microbit",
        }
    }

    /// Argument of `qemu-system-arm -M`.
    pub fn qemu_machine(self) -> &'static str {
        match self {
            Machine::An386 => "mps2-an386",
            Machine::Lm3s6965 => "lm3s6965evb",
            Machine::Microbit => "microbit",
        }
    }

    /// Firmware crate (and binary) name, also its directory under `boards/`.
    pub fn krate(self) -> &'static str {
        match self {
            Machine::An386 => "qemu-mps2-an386",
            Machine::Lm3s6965 => "qemu-lm3s6965",
            Machine::Microbit => "qemu-microbit",
        }
    }

    pub fn target(self) -> &'static str {
        match self {
            Machine::An386 => "thumbv7em-none-eabihf",
            Machine::Lm3s6965 => "thumbv7m-none-eabi",
            Machine::Microbit => "thumbv6m-none-eabi",
        }
    }
}
