//! Robustness and speed of the three readers (hand-written, generated + verifier, generated without
//! verifier) over `.tflite` files, every truncation of the small ones and random single-bit flips.
//!
//! Each case is read in a worker process (this program with `worker` as its first argument) from a
//! buffer whose end abuts an unmapped page, so a read past the end faults instead of passing
//! unnoticed; the parent restarts a worker that dies and records the case as a crash.
//!
//! Exits with failure when the readers disagree on an unmodified file or the hand-written reader
//! panics or crashes on any case.
//!
//! Usage: `compare-flatbuffers [--flips N] [--seed S] [--small BYTES] [--show N] FILE.tflite...` (`--show`: print
//! the first N cases where only one of the two checked readers accepts, with the other's error).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use compare_flatbuffers::{walk_hand, walk_unchecked, walk_verified, Summary};

const MODES: [&str; 3] = ["hand", "verified", "unchecked"];

/// The cases: every file, every truncation of the files up to `small` bytes, then `flips` copies of a
/// random file with one random bit flipped.
struct Cases {
    files: Vec<Vec<u8>>,
    truncations: Vec<(usize, usize)>,
    flips: usize,
    seed: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Cases {
    fn new(files: Vec<Vec<u8>>, small: usize, flips: usize, seed: u64) -> Self {
        let mut truncations = Vec::new();
        for (f, b) in files.iter().enumerate() {
            if b.len() <= small {
                truncations.extend((0..b.len()).map(|n| (f, n)));
            }
        }
        Self {
            files,
            truncations,
            flips,
            seed,
        }
    }

    fn len(&self) -> usize {
        self.files.len() + self.truncations.len() + self.flips
    }

    /// Case `k`'s kind and the file it derives from (as [`Cases::case`], without the bytes).
    fn case_kind(&self, k: usize) -> (&'static str, usize) {
        let n = self.files.len();
        if k < n {
            ("original", k)
        } else if let Some(&(f, _)) = self.truncations.get(k - n) {
            ("truncation", f)
        } else {
            ("bit flip", (self.flip_rng(k - n) % n as u64) as usize)
        }
    }

    fn flip_rng(&self, j: usize) -> u64 {
        splitmix(self.seed ^ (j as u64).wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    /// Case `k`: its kind, the file it derives from and its bytes.
    fn case(&self, k: usize) -> (&'static str, usize, Vec<u8>) {
        let n = self.files.len();
        if k < n {
            return ("original", k, self.files[k].clone());
        }
        let k = k - n;
        if let Some(&(f, len)) = self.truncations.get(k) {
            return ("truncation", f, self.files[f][..len].to_vec());
        }
        let r = self.flip_rng(k);
        let f = (r % n as u64) as usize;
        let mut b = self.files[f].clone();
        let bit = (splitmix(r) % (b.len() as u64 * 8)) as usize;
        b[bit / 8] ^= 1 << (bit % 8);
        ("bit flip", f, b)
    }
}

/// `data` copied to the end of a fresh mapping, with unmapped pages before the mapping and after the data.
struct Guarded {
    map: *mut libc::c_void,
    size: usize,
    data: *const u8,
    len: usize,
}

impl Guarded {
    fn new(data: &[u8]) -> Self {
        let page = 4096;
        let body = data.len().div_ceil(page).max(1) * page;
        let size = body + 2 * page;
        // SAFETY: an anonymous private mapping; the guard pages are made inaccessible, the data is
        // copied inside the body.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(map != libc::MAP_FAILED, "mmap failed");
            let base = map as *mut u8;
            assert_eq!(libc::mprotect(map, page, libc::PROT_NONE), 0);
            assert_eq!(
                libc::mprotect(base.add(page + body) as *mut _, page, libc::PROT_NONE),
                0
            );
            let dst = base.add(page + body - data.len());
            std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len());
            Self {
                map,
                size,
                data: dst,
                len: data.len(),
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes at `data` lie inside the mapping, which lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`.
        unsafe { libc::munmap(self.map, self.size) };
    }
}

fn read(mode: &str, bytes: &[u8]) -> Result<Summary> {
    match mode {
        "hand" => walk_hand(bytes),
        "verified" => walk_verified(bytes),
        // SAFETY: not sound on corrupt input; the worker process exists to observe what happens.
        "unchecked" => unsafe { walk_unchecked(bytes) },
        m => bail!("unknown reader {m}"),
    }
}

static PANIC_AT: Mutex<String> = Mutex::new(String::new());

/// Reads cases `start..end` with `mode`, printing one line per case: `k ok DIGEST`, `k err` or
/// `k panic WHERE: MESSAGE`.
fn worker(mode: &str, start: usize, end: usize, cases: &Cases) {
    // A wild length must not make the unchecked reader allocate the machine's memory.
    let limit = libc::rlimit {
        rlim_cur: 4 << 30,
        rlim_max: 4 << 30,
    };
    // SAFETY: plain system call on a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) };
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }));
    for k in start..end {
        let (_, _, bytes) = cases.case(k);
        let buf = Guarded::new(&bytes);
        match catch_unwind(AssertUnwindSafe(|| read(mode, buf.bytes()))) {
            Ok(Ok(s)) => println!("{k} ok {:016x}", s.digest()),
            Ok(Err(_)) => println!("{k} err"),
            Err(p) => {
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = PANIC_AT.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let msg: String = msg.chars().take(80).filter(|c| *c != '\n').collect();
                println!("{k} panic {at}: {msg}");
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Ok(u64),
    Rejected,
    Panic(String),
    Crash(String),
}

/// Runs `mode` over every case in worker processes, restarting after a crash.
fn run_mode(mode: &str, args: &[String], n: usize) -> Result<Vec<Outcome>> {
    let exe = std::env::current_exe()?;
    let mut out: Vec<Option<Outcome>> = vec![None; n];
    let mut start = 0;
    while start < n {
        let mut child = Command::new(&exe)
            .arg("worker")
            .arg(mode)
            .arg(start.to_string())
            .arg(n.to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut next = start;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let mut it = line.splitn(3, ' ');
            let k: usize = it.next().unwrap_or_default().parse()?;
            let outcome = match it.next() {
                Some("ok") => Outcome::Ok(u64::from_str_radix(it.next().unwrap_or_default(), 16)?),
                Some("err") => Outcome::Rejected,
                Some("panic") => Outcome::Panic(it.next().unwrap_or_default().to_string()),
                _ => bail!("bad worker line {line:?}"),
            };
            out[k] = Some(outcome);
            next = k + 1;
        }
        let status = child.wait()?;
        if next < n {
            let why = match status.signal() {
                Some(libc::SIGSEGV) => "SIGSEGV".to_string(),
                Some(libc::SIGBUS) => "SIGBUS".to_string(),
                Some(libc::SIGABRT) => "SIGABRT (abort, e.g. allocation failure)".to_string(),
                Some(s) => format!("signal {s}"),
                None => format!("exit status {:?}", status.code()),
            };
            out[next] = Some(Outcome::Crash(why));
            next += 1;
        }
        start = next;
    }
    Ok(out
        .into_iter()
        .map(|o| o.expect("every case ran"))
        .collect())
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `[--flips N] [--seed S] [--small BYTES] [--show N] FILE...` into the cases, the file names
/// and `--show`.
fn parse_cases(args: &[String]) -> Result<(Cases, Vec<String>, usize)> {
    let (mut flips, mut seed, mut small) = (100_000usize, 1u64, 4096usize);
    let mut show = 0;
    let mut paths = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--flips" => flips = value()?.parse().context("--flips")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            "--small" => small = value()?.parse().context("--small")?,
            "--show" => show = value()?.parse().context("--show")?,
            p => paths.push(p.to_string()),
        }
    }
    if paths.is_empty() {
        bail!("usage: compare-flatbuffers [--flips N] [--seed S] [--small BYTES] [--show N] FILE.tflite...");
    }
    let files = paths
        .iter()
        .map(|p| std::fs::read(p).with_context(|| format!("reading {p}")))
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = paths.iter().zip(&files).find(|(_, b)| b.is_empty()) {
        bail!("{} is empty", p.0);
    }
    Ok((Cases::new(files, small, flips, seed), paths, show))
}

fn run() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("worker") {
        let [_, mode, start, end, rest @ ..] = &args[..] else {
            bail!("usage: compare-flatbuffers worker MODE START END ARGS...");
        };
        let (cases, _, _) = parse_cases(rest)?;
        worker(mode, start.parse()?, end.parse()?, &cases);
        return Ok(true);
    }
    if args.first().map(String::as_str) == Some("diff") {
        return diff(&args[1..]);
    }
    let (cases, paths, show) = parse_cases(&args)?;
    let n = cases.len();
    println!(
        "{} files, {} truncations, {} single-bit flips: {n} cases",
        cases.files.len(),
        cases.truncations.len(),
        cases.flips
    );
    let mut results = Vec::new();
    for mode in MODES {
        let t = Instant::now();
        results.push(run_mode(mode, &args, n)?);
        println!("  {mode}: {:.1} s", t.elapsed().as_secs_f64());
    }
    let nf = cases.files.len();
    let mut good = true;
    for (f, path) in paths.iter().enumerate() {
        let r: Vec<&Outcome> = results.iter().map(|r| &r[f]).collect();
        if !matches!(r[0], Outcome::Ok(_)) || r.iter().any(|o| *o != r[0]) {
            println!("MISMATCH on the unmodified {path}: {r:?}");
            good = false;
        }
    }

    println!("\nper reader: accepted (same as the unmodified file) / accepted (different) / rejected / panicked / crashed");
    for (m, mode) in MODES.iter().enumerate() {
        for kind in ["truncation", "bit flip"] {
            let mut c = [0usize; 5];
            for k in nf..n {
                let (kd, f) = cases.case_kind(k);
                if kd != kind {
                    continue;
                }
                let i = match &results[m][k] {
                    Outcome::Ok(d) if results[m][f] == Outcome::Ok(*d) => 0,
                    Outcome::Ok(_) => 1,
                    Outcome::Rejected => 2,
                    Outcome::Panic(_) => 3,
                    Outcome::Crash(_) => 4,
                };
                c[i] += 1;
            }
            println!(
                "  {mode:<9} {kind:<10}: {:>7} / {:>6} / {:>6} / {:>6} / {:>6}",
                c[0], c[1], c[2], c[3], c[4]
            );
        }
        let mut why: BTreeMap<String, usize> = BTreeMap::new();
        for o in &results[m] {
            match o {
                Outcome::Panic(s) => {
                    *why.entry(format!("panic at {}", general(s))).or_default() += 1
                }
                Outcome::Crash(s) => *why.entry(format!("crash: {s}")).or_default() += 1,
                _ => {}
            }
        }
        for (w, count) in why {
            println!("      {count:>6} x {w}");
        }
    }

    println!("\nagreement over the modified cases: same result / both accept, different / only first accepts / only second accepts / neither accepts");
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let mut c = [0usize; 5];
        for (ra, rb) in results[a][nf..].iter().zip(&results[b][nf..]) {
            let i = match (ra, rb) {
                (Outcome::Ok(x), Outcome::Ok(y)) if x == y => 0,
                (Outcome::Ok(_), Outcome::Ok(_)) => 1,
                (Outcome::Ok(_), _) => 2,
                (_, Outcome::Ok(_)) => 3,
                _ => 4,
            };
            c[i] += 1;
        }
        println!(
            "  {} vs {}: {} / {} / {} / {} / {}",
            MODES[a], MODES[b], c[0], c[1], c[2], c[3], c[4]
        );
    }

    // The first `show` cases where the two safe readers disagree on accepting, with their errors.
    let disagree = (nf..n)
        .filter(|&k| {
            matches!(results[0][k], Outcome::Ok(_)) != matches!(results[1][k], Outcome::Ok(_))
        })
        .take(show);
    for k in disagree {
        let (kind, f, bytes) = cases.case(k);
        let msg =
            |r: Result<Summary>| r.map_or_else(|e| format!("rejects: {e:#}"), |_| "accepts".into());
        println!(
            "case {k} ({kind} of {}): hand {}; verified {}",
            paths[f],
            msg(walk_hand(&bytes)),
            msg(walk_verified(&bytes))
        );
    }

    let hand_failures = results[0]
        .iter()
        .filter(|o| matches!(o, Outcome::Panic(_) | Outcome::Crash(_)))
        .count();
    if hand_failures > 0 {
        println!("FAILURE: the hand-written reader panicked or crashed on {hand_failures} cases");
        good = false;
    }

    let (big, path) = cases
        .files
        .iter()
        .zip(&paths)
        .max_by_key(|(b, _)| b.len())
        .context("no files")?;
    println!(
        "\nparse time of the largest file ({path}, {} bytes), median of 201 runs:",
        big.len()
    );
    for mode in MODES {
        let mut times = Vec::new();
        for _ in 0..201 {
            let t = Instant::now();
            let s = read(mode, big)?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            std::hint::black_box(s);
        }
        times.sort_by(f64::total_cmp);
        println!("  {mode:<9}: {:.1} us", times[times.len() / 2]);
    }
    Ok(good)
}

/// `compare-flatbuffers diff FILE...`: the first field where the hand-written and the generated reader disagree.
fn diff(paths: &[String]) -> Result<bool> {
    let mut same = true;
    for p in paths {
        let b = std::fs::read(p).with_context(|| format!("reading {p}"))?;
        let (h, g) = (walk_hand(&b)?, walk_verified(&b)?);
        let (h, g) = (format!("{h:#?}"), format!("{g:#?}"));
        if let Some((i, (x, y))) = h
            .lines()
            .zip(g.lines())
            .enumerate()
            .find(|(_, (x, y))| x != y)
        {
            println!("{p}: line {i} of the summaries: hand {x:?}, generated {y:?}");
            same = false;
        } else if h != g {
            println!("{p}: the summaries differ in length");
            same = false;
        }
    }
    Ok(same)
}

/// A panic `LOCATION: MESSAGE` with the location from the crate name on (the registry path is noise)
/// and runs of digits in the message as `N`: one line per kind of failure, not per offset.
fn general(s: &str) -> String {
    let s = s.find("flatbuffers-").map_or(s, |i| &s[i..]);
    let (at, msg) = s.split_once(": ").unwrap_or((s, ""));
    let mut out = format!("{at}: ");
    for c in msg.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('N') {
            out.push('N');
        }
    }
    out
}
