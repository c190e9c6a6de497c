//! The compile-time check that a model fits a board: `const` functions that
//! compare the model file's length and its arena (read from the header) with
//! the board's flash and RAM, and spell the sizes in the panic message.

/// Flash kept for the firmware's code beside the model.
pub const CODE_RESERVE: usize = 64 * 1024;
/// RAM kept for the stack and the firmware's own statics beside the arena.
pub const STACK_RESERVE: usize = 16 * 1024;

const CAP: usize = 320;

/// The verdict of [`check`]: whether the model fits, and a message giving
/// both sizes of each memory.
pub struct Fit {
    pub ok: bool,
    buf: [u8; CAP],
    len: usize,
}

impl Fit {
    /// The message (`"fits"` when it does).
    pub const fn message(&self) -> &str {
        let (text, _) = self.buf.split_at(self.len);
        match core::str::from_utf8(text) {
            Ok(s) => s,
            Err(_) => "model does not fit the board",
        }
    }

    const fn push(mut self, s: &str) -> Self {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() && self.len < CAP {
            self.buf[self.len] = b[i];
            self.len += 1;
            i += 1;
        }
        self
    }

    const fn num(mut self, mut n: usize) -> Self {
        let mut digits = [0u8; 20];
        let mut k = 0;
        loop {
            digits[k] = b'0' + (n % 10) as u8;
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while k > 0 && self.len < CAP {
            k -= 1;
            self.buf[self.len] = digits[k];
            self.len += 1;
        }
        self
    }
}

/// Whether `model` (a `.ferrite` file) fits a board with `flash` and `ram`
/// bytes: model + [`CODE_RESERVE`] <= flash and arena + [`STACK_RESERVE`] <=
/// RAM. An invalid header (arena size 0) does not fit either.
pub const fn check(board: &str, model: &[u8], flash: usize, ram: usize) -> Fit {
    let arena = ferrite_runtime::arena_size(model);
    let fit = Fit {
        ok: false,
        buf: [0; CAP],
        len: 0,
    };
    if arena == 0 {
        return fit
            .push("the embedded model has no valid .ferrite header (")
            .num(model.len())
            .push(" B): nothing to size the arena from");
    }
    let flash_ok = model.len() + CODE_RESERVE <= flash;
    let ram_ok = arena + STACK_RESERVE <= ram;
    if flash_ok && ram_ok {
        return Fit { ok: true, ..fit }.push("fits");
    }
    fit.push("model too large for ")
        .push(board)
        .push(": flash needs model ")
        .num(model.len())
        .push(" B + code reserve ")
        .num(CODE_RESERVE)
        .push(" B, board has ")
        .num(flash)
        .push(" B")
        .push(if flash_ok { " (ok)" } else { " (TOO SMALL)" })
        .push("; RAM needs arena ")
        .num(arena)
        .push(" B + stack reserve ")
        .num(STACK_RESERVE)
        .push(" B, board has ")
        .num(ram)
        .push(" B")
        .push(if ram_ok { " (ok)" } else { " (TOO SMALL)" })
}
