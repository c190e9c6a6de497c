//! Data as users keep it: a folder of PNG or JPEG images or of mono WAV files (or one such file),
//! given where a `.npy` array is taken (`--data`, `--val-data`...). Files are read in sorted order; a
//! folder of class folders gives labels (the classes sorted by name, the index is the label).
//!
//! The files become the model's input by a preprocessing stated with flags ([`PrepArgs`]), the
//! model's input shape and layout filling in the rest. It has a short canonical text
//! ([`Preprocessing::text`]), e.g. `image resize=28x28 channels=1 scale=1/255 mean=0 std=1
//! layout=nchw`, that `ferrite quantize|train` record in the `.ferrite` file and that `ferrite
//! run|eval` apply when the flags are not given.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

use crate::ir::{self, Graph};
use crate::npy::Array;

/// The preprocessing flags, the same in every command that reads data.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(
    next_help_heading = "Image and WAV folders as data (defaults: the preprocessing the model records, else its input's)"
)]
pub struct PrepArgs {
    /// Resize every image to H rows by W columns (bilinear; images of that size are not resampled)
    /// [default: the model input's size].
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    pub resize: Option<(usize, usize)>,
    /// Convert every image to one channel (luma) [default: the model input's channel count; an
    /// image of another count is refused].
    #[arg(long, conflicts_with = "rgb")]
    pub grayscale: bool,
    /// Convert every image to three channels (RGB; alpha dropped).
    #[arg(long)]
    pub rgb: bool,
    /// Factor applied to each 8-bit pixel or WAV sample before mean and std, as `1/D` or a number
    /// [default: 1/255 for images, 1 for WAV samples, read as values in [-1, 1)].
    #[arg(long, value_name = "F", value_parser = parse_scale, allow_hyphen_values = true)]
    pub scale: Option<Scale>,
    /// Subtracted after scaling: one value, or one per channel (`a,b,c`) [default: 0].
    #[arg(
        long,
        value_name = "A[,B,C]",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub mean: Option<Vec<f32>>,
    /// Divides after the mean: one value, or one per channel [default: 1].
    #[arg(long, value_name = "A[,B,C]", value_delimiter = ',')]
    pub std: Option<Vec<f32>>,
    /// Order of each image's values [default: the model input's layout, NCHW for ONNX].
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,
    /// Samples per WAV clip: shorter clips are padded with zeros, longer ones cut [default: the
    /// model input's size].
    #[arg(long, value_name = "N")]
    pub audio_samples: Option<usize>,
    /// The sample rate every WAV file must have, in Hz [default: the first file's].
    #[arg(long, value_name = "HZ")]
    pub sample_rate: Option<u32>,
}

impl PrepArgs {
    /// The flags given, as they are spelled (for messages).
    fn given(&self) -> Vec<&'static str> {
        let flags = [
            (self.resize.is_some(), "--resize"),
            (self.grayscale, "--grayscale"),
            (self.rgb, "--rgb"),
            (self.scale.is_some(), "--scale"),
            (self.mean.is_some(), "--mean"),
            (self.std.is_some(), "--std"),
            (self.layout.is_some(), "--layout"),
            (self.audio_samples.is_some(), "--audio-samples"),
            (self.sample_rate.is_some(), "--sample-rate"),
        ];
        flags.iter().filter(|f| f.0).map(|f| f.1).collect()
    }
}

/// Order of an image's values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Channels, rows, columns.
    Nchw,
    /// Rows, columns, channels.
    Nhwc,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::Nchw => "nchw",
            Layout::Nhwc => "nhwc",
        }
    }
}

/// A factor `num / den` (`den` 1 for a plain number): `1/255` divides by 255 exactly as written.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub num: f32,
    pub den: f32,
}

impl Scale {
    fn apply(self, v: f32) -> f32 {
        if self.den == 1.0 {
            v * self.num
        } else {
            v * self.num / self.den
        }
    }

    fn text(self) -> String {
        if self.den == 1.0 {
            format!("{}", self.num)
        } else {
            format!("{}/{}", self.num, self.den)
        }
    }
}

fn parse_size(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}`: give the size as HxW, e.g. 28x28");
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let h: usize = h.trim().parse().map_err(|_| bad())?;
    let w: usize = w.trim().parse().map_err(|_| bad())?;
    if h == 0 || w == 0 || h > 65535 || w > 65535 {
        return Err(format!("`{s}`: each side must be 1 to 65535"));
    }
    Ok((h, w))
}

fn parse_scale(s: &str) -> Result<Scale, String> {
    let number = |t: &str| -> Result<f32, String> {
        let v: f32 = t
            .trim()
            .parse()
            .map_err(|_| format!("`{s}`: give a number or 1/D, e.g. 1/255"))?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("`{s}`: the scale must be finite"))
        }
    };
    let scale = match s.split_once('/') {
        Some((n, d)) => Scale {
            num: number(n)?,
            den: number(d)?,
        },
        None => Scale {
            num: number(s)?,
            den: 1.0,
        },
    };
    if scale.den == 0.0 || scale.num == 0.0 {
        return Err(format!("`{s}`: the scale must not be 0"));
    }
    Ok(scale)
}

/// What the files are and how each becomes a sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// Images resized to `h` x `w` with `channels` (1 or 3), in `layout`.
    Image {
        h: usize,
        w: usize,
        channels: usize,
        layout: Layout,
    },
    /// WAV clips of `samples` samples at `rate` Hz.
    Audio { samples: usize, rate: u32 },
}

/// How files become the model's input: `value = (raw * scale - mean[c]) / std[c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocessing {
    pub kind: Kind,
    pub scale: Scale,
    /// One value, or one per channel.
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

fn list(values: &[f32]) -> String {
    values
        .iter()
        .map(|v| format!("{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl Preprocessing {
    /// The canonical text recorded in the model, e.g.
    /// `image resize=28x28 channels=1 scale=1/255 mean=0 std=1 layout=nchw` or
    /// `audio samples=16000 rate=16000 scale=1 mean=0 std=1`.
    pub fn text(&self) -> String {
        let tail = format!(
            "scale={} mean={} std={}",
            self.scale.text(),
            list(&self.mean),
            list(&self.std)
        );
        match &self.kind {
            Kind::Image {
                h,
                w,
                channels,
                layout,
            } => format!(
                "image resize={h}x{w} channels={channels} {tail} layout={}",
                layout.name()
            ),
            Kind::Audio { samples, rate } => format!("audio samples={samples} rate={rate} {tail}"),
        }
    }

    /// Reads a text written by [`Preprocessing::text`].
    pub fn parse(text: &str) -> Result<Preprocessing> {
        let bad = |what: &str| anyhow::anyhow!("preprocessing `{text}`: {what}");
        let mut words = text.split_whitespace();
        let kind = words.next().ok_or_else(|| bad("empty"))?;
        let mut fields = std::collections::BTreeMap::new();
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| bad(&format!("`{w}` is not key=value")))?;
            fields.insert(k, v);
        }
        let mut take = |k: &str| fields.remove(k).ok_or_else(|| bad(&format!("no `{k}`")));
        let floats = |v: &str| -> Result<Vec<f32>> {
            v.split(',')
                .map(|x| {
                    x.parse()
                        .map_err(|_| bad(&format!("`{x}` is not a number")))
                })
                .collect()
        };
        let int = |v: &str| -> Result<usize> {
            v.parse()
                .map_err(|_| bad(&format!("`{v}` is not a whole number")))
        };
        let kind = match kind {
            "image" => {
                let (h, w) = parse_size(take("resize")?).map_err(|e| bad(&e))?;
                let layout = match take("layout")? {
                    "nchw" => Layout::Nchw,
                    "nhwc" => Layout::Nhwc,
                    l => bail!(bad(&format!("unknown layout `{l}`"))),
                };
                Kind::Image {
                    h,
                    w,
                    channels: int(take("channels")?)?,
                    layout,
                }
            }
            "audio" => Kind::Audio {
                samples: int(take("samples")?)?,
                rate: int(take("rate")?)? as u32,
            },
            k => bail!(bad(&format!("unknown kind `{k}` (image or audio)"))),
        };
        let p = Preprocessing {
            kind,
            scale: parse_scale(take("scale")?).map_err(|e| bad(&e))?,
            mean: floats(take("mean")?)?,
            std: floats(take("std")?)?,
        };
        if let Some(k) = fields.keys().next() {
            bail!(bad(&format!("unknown key `{k}`")));
        }
        p.check().map_err(|e| bad(&e.to_string()))?;
        Ok(p)
    }

    /// Channels the values are per.
    fn channels(&self) -> usize {
        match self.kind {
            Kind::Image { channels, .. } => channels,
            Kind::Audio { .. } => 1,
        }
    }

    fn check(&self) -> Result<()> {
        let c = self.channels();
        ensure!(c == 1 || c == 3, "images give 1 or 3 channels, not {c}");
        for (name, v) in [("--mean", &self.mean), ("--std", &self.std)] {
            ensure!(
                v.len() == 1 || v.len() == c,
                "{name} has {} values; give 1 or one per channel ({c})",
                v.len()
            );
            ensure!(
                v.iter().all(|x| x.is_finite()),
                "{name} values must be finite"
            );
        }
        ensure!(
            self.std.iter().all(|&s| s != 0.0),
            "--std values must not be 0"
        );
        if let Kind::Image { h, w, .. } = self.kind {
            ensure!(h > 0 && w > 0, "the image size must not be 0");
        }
        Ok(())
    }

    /// Per-channel `(scale, mean, std)` of channel `c`.
    fn value(&self, raw: f32, c: usize) -> f32 {
        let pick = |v: &[f32]| if v.len() == 1 { v[0] } else { v[c] };
        (self.scale.apply(raw) - pick(&self.mean)) / pick(&self.std)
    }

    /// Dims of one sample as this preprocessing gives it.
    fn sample_dims(&self) -> Vec<usize> {
        match self.kind {
            Kind::Image {
                h,
                w,
                channels,
                layout: Layout::Nchw,
            } => vec![channels, h, w],
            Kind::Image { h, w, channels, .. } => vec![h, w, channels],
            Kind::Audio { samples, .. } => vec![samples],
        }
    }
}

/// What the model takes: one sample's dims in its source layout (batch dropped), the layout, and
/// the preprocessing the model file records, if any.
#[derive(Clone, Debug, Default)]
pub struct InputSpec {
    pub dims: Vec<usize>,
    pub nchw: bool,
    pub recorded: Option<String>,
}

impl InputSpec {
    /// The first input of a float graph.
    pub fn of_graph(g: &Graph) -> InputSpec {
        let v = g.inputs[0];
        let dims = ir::io::source_dims(g, v);
        InputSpec {
            dims: dims.get(1..).unwrap_or_default().to_vec(),
            nchw: g.values[v].source == ir::SourceLayout::Nchw,
            recorded: None,
        }
    }

    /// The first input of a `.ferrite` model (`path` names it in errors).
    pub fn of_ferrite(bytes: &[u8], path: &Path) -> Result<InputSpec> {
        let model = ferrite_runtime::Model::from_bytes(bytes)
            .map_err(crate::runtime_exec::invalid_model)
            .with_context(|| path.display().to_string())?;
        let t = model
            .input(0)
            .map_err(crate::runtime_exec::invalid_model)
            .with_context(|| path.display().to_string())?;
        let nchw = crate::runtime_exec::Order::of(&model)?.0.first()
            == Some(&crate::runtime_exec::Order::Nchw);
        let d: Vec<usize> = t.shape.dims().iter().map(|&x| x as usize).collect();
        let d = if nchw && d.len() == 4 {
            vec![d[3], d[1], d[2]]
        } else {
            d.get(1..).unwrap_or_default().to_vec()
        };
        Ok(InputSpec {
            dims: d,
            nchw,
            recorded: model.preprocessing().map(str::to_string),
        })
    }

    /// Elements per sample.
    fn elements(&self) -> usize {
        self.dims.iter().product()
    }
}

/// Image file extensions read (lower case).
const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_image(path: &Path) -> bool {
    IMAGE_EXTENSIONS.contains(&extension(path).as_str())
}

fn is_wav(path: &Path) -> bool {
    extension(path) == "wav"
}

/// Whether `path` is read here (a folder, an image or a WAV file) rather than as a `.npy` array.
pub fn is_folder_data(path: &Path) -> bool {
    path.is_dir() || is_image(path) || is_wav(path)
}

/// The entries of `dir` sorted by name, hidden ones (`.name`) left out.
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))? {
        let e = e.with_context(|| format!("reading folder {}", dir.display()))?;
        if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The files of a folder (or the one file) and their class indices, with the class names.
struct Listing {
    files: Vec<PathBuf>,
    labels: Option<Vec<usize>>,
    classes: Vec<String>,
}

fn list_files(path: &Path) -> Result<Listing> {
    if !path.is_dir() {
        ensure!(path.is_file(), "{}: no such file or folder", path.display());
        return Ok(Listing {
            files: vec![path.to_path_buf()],
            labels: None,
            classes: Vec::new(),
        });
    }
    let top = entries(path)?;
    let data_file = |p: &Path| -> Result<()> {
        ensure!(
            is_image(p) || is_wav(p),
            "{}: not a PNG, JPEG or WAV file (told by the extension: .png, .jpg, .jpeg, .wav)",
            p.display()
        );
        Ok(())
    };
    if !top.iter().any(|p| p.is_dir()) {
        ensure!(
            !top.is_empty(),
            "{}: the folder is empty (no PNG, JPEG or WAV files)",
            path.display()
        );
        for p in &top {
            data_file(p)?;
        }
        return Ok(Listing {
            files: top,
            labels: None,
            classes: Vec::new(),
        });
    }
    // Class folders: every entry must be one.
    let mut files = Vec::new();
    let mut labels = Vec::new();
    let mut classes = Vec::new();
    for (label, dir) in top.iter().enumerate() {
        ensure!(
            dir.is_dir(),
            "{}: a file beside class folders; put every file in its class's folder",
            dir.display()
        );
        let inside = entries(dir)?;
        ensure!(
            !inside.is_empty(),
            "{}: the class folder holds no files",
            dir.display()
        );
        for p in inside {
            ensure!(
                !p.is_dir(),
                "{}: a folder inside a class folder (classes are one level deep)",
                p.display()
            );
            data_file(&p)?;
            files.push(p);
            labels.push(label);
        }
        classes.push(
            dir.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(Listing {
        files,
        labels: Some(labels),
        classes,
    })
}

/// Samples read from a folder or file.
pub struct FolderData {
    /// float32, `[files, sample dims...]` in the model's source layout.
    pub array: Array,
    /// Each file's class index, when the folder holds class folders.
    pub labels: Option<Vec<usize>>,
    /// The class names, in label order.
    pub classes: Vec<String>,
    /// The preprocessing applied.
    pub preprocessing: Preprocessing,
}

impl FolderData {
    /// One line saying what was read, e.g. `DIR: 500 images, 10 classes: 0 cat, 1 dog`.
    pub fn summary(&self, path: &Path) -> String {
        let n = self.array.shape.first().copied().unwrap_or(0);
        let what = match self.preprocessing.kind {
            Kind::Image { .. } => "image",
            Kind::Audio { .. } => "WAV file",
        };
        let mut s = format!(
            "{}: {n} {what}{}",
            path.display(),
            if n == 1 { "" } else { "s" }
        );
        if !self.classes.is_empty() {
            let _ = write!(s, ", {} classes:", self.classes.len());
            for (i, c) in self.classes.iter().enumerate() {
                let _ = write!(
                    s,
                    " {i} {c}{}",
                    if i + 1 < self.classes.len() { "," } else { "" }
                );
            }
        }
        let _ = write!(s, " ({})", self.preprocessing.text());
        s
    }
}

/// The preprocessing for images (or WAV files with `audio`): the recorded text (if of that kind), then the
/// model's input, filled in under the flags; a flag that changes the recorded value is warned about.
fn resolve(args: &PrepArgs, spec: &InputSpec, audio: bool) -> Result<Preprocessing> {
    let recorded = match &spec.recorded {
        Some(t) => {
            let p = Preprocessing::parse(t).context("the model's recorded preprocessing")?;
            Some(p).filter(|p| matches!(p.kind, Kind::Audio { .. }) == audio)
        }
        None => None,
    };
    let warn = |flag: &str, given: String, was: String| {
        if given != was {
            eprintln!(
                "warning: {flag} {given} overrides the model's recorded preprocessing ({was})"
            );
        }
    };
    let mut p = match &recorded {
        Some(p) => p.clone(),
        None if audio => Preprocessing {
            kind: Kind::Audio {
                samples: spec.elements(),
                rate: 0,
            },
            scale: Scale { num: 1.0, den: 1.0 },
            mean: vec![0.0],
            std: vec![1.0],
        },
        None => {
            ensure!(
                spec.dims.len() == 3,
                "images need a model input of one image per sample, [C, H, W] or [H, W, C]; the model takes {:?}",
                spec.dims
            );
            let (c, h, w) = if spec.nchw {
                (spec.dims[0], spec.dims[1], spec.dims[2])
            } else {
                (spec.dims[2], spec.dims[0], spec.dims[1])
            };
            Preprocessing {
                kind: Kind::Image {
                    h,
                    w,
                    channels: c,
                    layout: if spec.nchw {
                        Layout::Nchw
                    } else {
                        Layout::Nhwc
                    },
                },
                scale: Scale {
                    num: 1.0,
                    den: 255.0,
                },
                mean: vec![0.0],
                std: vec![1.0],
            }
        }
    };
    let recorded = recorded.is_some();
    let over = |flag: &str, given: String, was: String| {
        if recorded {
            warn(flag, given, was);
        }
    };
    if let Some(s) = args.scale {
        over("--scale", s.text(), p.scale.text());
        p.scale = s;
    }
    if let Some(m) = &args.mean {
        over("--mean", list(m), list(&p.mean));
        p.mean = m.clone();
    }
    if let Some(s) = &args.std {
        over("--std", list(s), list(&p.std));
        p.std = s.clone();
    }
    match &mut p.kind {
        Kind::Image {
            h,
            w,
            channels,
            layout,
        } => {
            for (flag, given) in [
                ("--audio-samples", args.audio_samples.is_some()),
                ("--sample-rate", args.sample_rate.is_some()),
            ] {
                ensure!(!given, "{flag} is for WAV files, not images");
            }
            if let Some((rh, rw)) = args.resize {
                over("--resize", format!("{rh}x{rw}"), format!("{h}x{w}"));
                (*h, *w) = (rh, rw);
            }
            let asked = if args.grayscale {
                Some(1)
            } else if args.rgb {
                Some(3)
            } else {
                None
            };
            if let Some(c) = asked {
                over(
                    if c == 1 { "--grayscale" } else { "--rgb" },
                    format!("(channels={c})"),
                    format!("(channels={channels})"),
                );
                *channels = c;
            }
            if let Some(l) = args.layout {
                over("--layout", l.name().into(), layout.name().into());
                *layout = l;
            }
        }
        Kind::Audio { samples, rate } => {
            for (flag, given) in [
                ("--resize", args.resize.is_some()),
                ("--grayscale", args.grayscale),
                ("--rgb", args.rgb),
                ("--layout", args.layout.is_some()),
            ] {
                ensure!(!given, "{flag} is for images, not WAV files");
            }
            if let Some(n) = args.audio_samples {
                over("--audio-samples", n.to_string(), samples.to_string());
                *samples = n;
            }
            if let Some(r) = args.sample_rate {
                over("--sample-rate", r.to_string(), rate.to_string());
                *rate = r;
            }
            ensure!(*samples > 0, "--audio-samples must be at least 1");
        }
    }
    p.check()?;
    Ok(p)
}

/// Reads a folder or file through the preprocessing the flags, the model's record and its input
/// give; checks the samples fit the model's input (`spec`).
pub fn read(path: &Path, args: &PrepArgs, spec: &InputSpec) -> Result<FolderData> {
    let listing = list_files(path)?;
    let audio = is_wav(&listing.files[0]);
    if let Some(other) = listing.files.iter().find(|f| is_wav(f) != audio) {
        bail!(
            "{}: {} beside {} ({}); give one kind of file",
            other.display(),
            if audio { "an image" } else { "a WAV file" },
            if audio { "WAV files" } else { "images" },
            listing.files[0].display()
        );
    }
    let mut p = resolve(args, spec, audio).with_context(|| path.display().to_string())?;
    let per: usize = p.sample_dims().iter().product();
    // Clips take the model's layout as they are: their dims are the model's when the counts agree.
    let sample_dims = match p.kind {
        Kind::Audio { samples, .. } if samples == spec.elements() => spec.dims.clone(),
        _ => p.sample_dims(),
    };
    ensure!(
        sample_dims == spec.dims,
        "{}: the preprocessing ({}) gives samples of {:?}, but the model takes {:?} ({})",
        path.display(),
        p.text(),
        sample_dims,
        spec.dims,
        if spec.nchw { "NCHW" } else { "NHWC" }
    );
    let mut values = Vec::with_capacity(per * listing.files.len());
    // Channels stated by a flag or the model's record convert; the model input's default must match.
    let convert = args.grayscale || args.rgb || spec.recorded.is_some();
    // Where the expected sample rate comes from, for messages.
    let mut rate_source = if args.sample_rate.is_some() {
        "--sample-rate".to_string()
    } else {
        "the model's recorded preprocessing".to_string()
    };
    for f in &listing.files {
        match p.kind.clone() {
            Kind::Image {
                h,
                w,
                channels,
                layout,
            } => {
                let pixels = decode_image(f, h, w, channels, convert)?;
                push_image(&mut values, &pixels, (h, w, channels), layout, &p);
            }
            Kind::Audio { samples, rate } => {
                let (clip, file_rate) = decode_wav(f)?;
                if rate == 0 {
                    p.kind = Kind::Audio {
                        samples,
                        rate: file_rate,
                    };
                    rate_source = format!("the first file's, {}", f.display());
                } else {
                    ensure!(
                        file_rate == rate,
                        "{}: sample rate {file_rate} Hz, but {rate} Hz expected ({rate_source})",
                        f.display()
                    );
                }
                let padded = clip.into_iter().chain(std::iter::repeat(0.0)).take(samples);
                values.extend(padded.map(|v| p.value(v, 0)));
            }
        }
    }
    let mut shape = vec![listing.files.len()];
    shape.extend_from_slice(&sample_dims);
    Ok(FolderData {
        array: Array::from_f32(shape, &values),
        labels: listing.labels,
        classes: listing.classes,
        preprocessing: p,
    })
}

/// Appends one image's values (`pixels` row by row, `channels` per pixel) in `layout`.
fn push_image(
    values: &mut Vec<f32>,
    pixels: &[u8],
    (h, w, channels): (usize, usize, usize),
    layout: Layout,
    p: &Preprocessing,
) {
    match layout {
        Layout::Nhwc => values.extend(
            pixels
                .iter()
                .enumerate()
                .map(|(i, &v)| p.value(f32::from(v), i % channels)),
        ),
        Layout::Nchw => {
            for c in 0..channels {
                values.extend((0..h * w).map(|i| p.value(f32::from(pixels[i * channels + c]), c)));
            }
        }
    }
}

/// An image's 8-bit pixels, `h` x `w` with `channels` each, row by row. Without `convert`, the
/// image's own channel count (1 for gray, 3 for color; alpha left out) must be `channels`.
fn decode_image(f: &Path, h: usize, w: usize, channels: usize, convert: bool) -> Result<Vec<u8>> {
    use image::imageops::{resize, FilterType};
    let at = || f.display().to_string();
    let img = image::ImageReader::open(f)
        .with_context(|| format!("reading {}", at()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", at()))?
        .decode()
        .map_err(|e| anyhow::anyhow!("{}: cannot decode the image: {e}", at()))?;
    let own = if img.color().has_color() { 3 } else { 1 };
    if !convert && own != channels {
        bail!(
            "{}: a {} image ({own} channel{}), but the model's input takes {channels}; give {} to convert",
            at(),
            if own == 3 { "color" } else { "grayscale" },
            if own == 1 { "" } else { "s" },
            if channels == 1 { "--grayscale" } else { "--rgb" }
        );
    }
    let (w32, h32) = (w as u32, h as u32);
    Ok(if channels == 1 {
        let g = img.to_luma8();
        if g.dimensions() == (w32, h32) {
            g.into_raw()
        } else {
            resize(&g, w32, h32, FilterType::Triangle).into_raw()
        }
    } else {
        let c = img.to_rgb8();
        if c.dimensions() == (w32, h32) {
            c.into_raw()
        } else {
            resize(&c, w32, h32, FilterType::Triangle).into_raw()
        }
    })
}

/// A mono WAV file's samples as values in [-1, 1) (integers divided by 2^(bits - 1), floats as
/// they are) and its sample rate.
fn decode_wav(f: &Path) -> Result<(Vec<f32>, u32)> {
    let at = || f.display().to_string();
    let reader = hound::WavReader::open(f)
        .map_err(|e| anyhow::anyhow!("{}: cannot read the WAV file: {e}", at()))?;
    let spec = reader.spec();
    ensure!(
        spec.channels == 1,
        "{}: {} channels; only mono WAV files are read",
        at(),
        spec.channels
    );
    let bad = |e: hound::Error| anyhow::anyhow!("{}: cannot read the WAV file: {e}", at());
    let samples = match spec.sample_format {
        hound::SampleFormat::Float => reader
            .into_samples::<f32>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?,
        hound::SampleFormat::Int => {
            let full = (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 / full))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bad)?
        }
    };
    Ok((samples, spec.sample_rate))
}

/// Samples given where a `.npy` is taken: the array, with the labels, class names and preprocessing
/// when they came from a folder or file read here.
pub struct Data {
    pub array: Array,
    pub labels: Option<Vec<usize>>,
    pub classes: Vec<String>,
    pub preprocessing: Option<Preprocessing>,
}

/// Reads `path`: a folder, image or WAV file through [`read`] (saying what was read on stderr), or
/// a `.npy` array, which the preprocessing flags do not apply to.
pub fn read_data(path: &Path, args: &PrepArgs, spec: &InputSpec) -> Result<Data> {
    if is_folder_data(path) {
        let d = read(path, args, spec)?;
        eprintln!("{}", d.summary(path));
        return Ok(Data {
            array: d.array,
            labels: d.labels,
            classes: d.classes,
            preprocessing: Some(d.preprocessing),
        });
    }
    refuse_flags(args, path)?;
    Ok(Data {
        array: Array::read(path)?,
        labels: None,
        classes: Vec::new(),
        preprocessing: None,
    })
}

/// Preprocessing flags given with `.npy` data are refused (they would change nothing).
pub fn refuse_flags(args: &PrepArgs, path: &Path) -> Result<()> {
    let given = args.given();
    ensure!(
        given.is_empty(),
        "{}: {} appl{} to image and WAV folders, not to a .npy array",
        path.display(),
        given.join(", "),
        if given.len() == 1 { "ies" } else { "y" }
    );
    Ok(())
}

/// The labels of `samples` samples: from `explicit` (a `.npy`) when given, else the folder's classes.
pub fn labels(
    explicit: Option<&Path>,
    from_folder: Option<Vec<usize>>,
    samples: usize,
) -> Result<Option<Vec<usize>>> {
    match explicit {
        Some(p) => {
            if from_folder.is_some() {
                eprintln!(
                    "warning: {} gives the labels, not the class folders",
                    p.display()
                );
            }
            super::read_labels(p, samples).map(Some)
        }
        None => Ok(from_folder),
    }
}

/// A `.ferrite` file's bytes with the graph's preprocessing field set to `text`.
pub fn record(bytes: &[u8], text: &str) -> Result<Vec<u8>> {
    let model =
        ferrite_runtime::Model::from_bytes(bytes).map_err(crate::runtime_exec::invalid_model)?;
    let mut graph = model.graph().clone();
    graph.preprocessing = Some(text);
    let h = model.header();
    ferrite_runtime::format::write::to_bytes(
        &graph,
        h.arena_size,
        h.flags & ferrite_runtime::format::FLAG_FLOAT != 0,
    )
    .context("encoding the model")
}
