//! Structured (filter) pruning (`ferrite train --prune-filters R`): removes whole output channels of
//! convolutions and fully connected layers from the float graph, before post-training quantization
//! and fine-tuning, so that the result is a smaller dense model (fewer MACs, smaller arena).
//!
//! Channels are followed through the graph as *atoms*, one per output channel of a Conv2d or
//! FullyConnected node. Operators that keep channels apart (activations, pooling, Mean, depthwise
//! convolution, Pad, Reshape that keeps or flattens the channel axis, Concatenation) pass a value's
//! atoms on; Add, Sub, Mul, Maximum, Minimum and Concatenation along another axis tie the atoms of
//! their operands together
//! (a channel of a residual sum goes from every producer at once, or from none). Atoms that reach a
//! graph output, a Softmax or any operator that mixes channels otherwise are pinned. The tied atoms
//! form the units of pruning; the units owned by the same set of layers are pruned together at the
//! ratio, the lowest-ranked first by the criterion ([`Criterion`]).
//!
//! Removing a channel removes the producer's filter row and bias, the per-channel weights of the
//! depthwise and BatchNorm nodes it passes, and the input columns of every Conv2d and
//! FullyConnected that reads it. A removed channel's mean over the calibration samples (a ReLU's
//! output is not zero on average) is folded into those readers' biases, so that fine-tuning starts
//! from a model close to the original.

use std::collections::BTreeMap;

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;

use crate::ir::float_exec::{self, Tensor};
use crate::ir::{Graph, Op, Param};
use crate::ops::Channels;
use crate::train::sensitivity::{allocate, curve, OutputError};

/// How the output channels of a layer are ranked: the lowest go first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Criterion {
    /// Sum of the absolute weights of the channel's filter (Li et al. 2017).
    L1,
    /// Euclidean norm of the filter.
    L2,
    /// Sum of the Euclidean distances to the layer's other filters: the filters nearest the
    /// geometric median are the most replaceable by the rest (He et al. 2019, FPGM).
    GeometricMedian,
}

/// How many channels each layer loses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Allocation {
    /// Every layer loses the ratio of its channels.
    Uniform,
    /// As many channels in all, each taken from the layer where it moves the float model's
    /// outputs least (measured one layer at a time on calibration samples; Li et al. 2017's
    /// sensitivity analysis). No layer loses more than twice the ratio.
    Sensitivity,
}

/// Filter pruning settings.
#[derive(Clone, Debug, Serialize)]
pub struct FilterPruning {
    /// Fraction of the output channels to remove, in [0, 1).
    pub ratio: f64,
    pub criterion: Criterion,
    pub allocation: Allocation,
    /// Nodes whose output channels stay (their inputs follow their producers).
    pub skip: Vec<String>,
    /// Epochs of quantization-aware training once the channels are removed.
    pub recovery_epochs: usize,
}

/// One layer's channels before and after.
#[derive(Clone, Debug, Serialize)]
pub struct LayerChannels {
    pub name: String,
    pub op: &'static str,
    pub channels: usize,
    pub kept: usize,
    /// Why every channel stays, when every one must (`--prune-filters-skip`, the graph output, or the
    /// operator that needs them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
}

/// The pruned graph and what changed.
pub struct Pruned {
    pub graph: Graph,
    pub layers: Vec<LayerChannels>,
    pub macs_before: usize,
    pub macs_after: usize,
}

/// Multiply-accumulates per sample of the graph.
pub fn macs(g: &Graph) -> usize {
    g.nodes
        .iter()
        .map(|n| n.op.macs(g.values[n.output].elements()))
        .sum()
}

/// A value's last axis in atoms: element `k` of the axis carries `atoms[k % atoms.len()]` (`tile` is
/// 1, or the number of positions a flattened `[h, w, c]` tensor repeats its channels).
#[derive(Clone, Debug)]
struct Layout {
    atoms: Vec<usize>,
    tile: usize,
}

/// The atoms (union-find) and what owns them.
#[derive(Default)]
struct Atoms {
    parent: Vec<usize>,
    /// Why an atom's channel must stay (at the root of its set), if it must.
    pinned: Vec<Option<String>>,
    /// The (node, output channel) an atom is; none for the channels of inputs and constants.
    owner: Vec<Option<(usize, usize)>>,
}

impl Atoms {
    fn add(&mut self, owner: Option<(usize, usize)>, pinned: Option<String>) -> usize {
        self.parent.push(self.parent.len());
        self.pinned.push(pinned);
        self.owner.push(owner);
        self.parent.len() - 1
    }

    fn find(&mut self, a: usize) -> usize {
        let mut r = a;
        while self.parent[r] != r {
            r = self.parent[r];
        }
        let mut x = a;
        while self.parent[x] != r {
            let next = self.parent[x];
            self.parent[x] = r;
            x = next;
        }
        r
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[rb] = ra;
            if self.pinned[ra].is_none() {
                self.pinned[ra] = self.pinned[rb].take();
            }
        }
    }

    /// The root of `a`, without shortening the path.
    fn root(&self, mut a: usize) -> usize {
        while self.parent[a] != a {
            a = self.parent[a];
        }
        a
    }

    fn pin(&mut self, a: usize, why: &str) {
        let r = self.find(a);
        if self.pinned[r].is_none() {
            self.pinned[r] = Some(why.to_string());
        }
    }

    /// Why `a`'s channel must stay, if it must.
    fn pinned(&mut self, a: usize) -> Option<&str> {
        let r = self.find(a);
        self.pinned[r].as_deref()
    }
}

/// Follows the channels through `g`: every value's layout (none where channels are not followed).
fn trace(g: &Graph, skip: &[String]) -> (Atoms, Vec<Option<Layout>>) {
    let mut atoms = Atoms::default();
    let mut layout: Vec<Option<Layout>> = vec![None; g.values.len()];
    let last = |v: usize| g.values[v].shape.last().copied().unwrap_or(1);
    // A layout for a value whose channels are not followed: fresh pinned atoms.
    let fixed = |atoms: &mut Atoms, v: usize| Layout {
        atoms: (0..last(v))
            .map(|_| {
                let why = format!("joined to `{}`, whose channels stay", g.values[v].name);
                atoms.add(None, Some(why))
            })
            .collect(),
        tile: 1,
    };
    let pin_all = |atoms: &mut Atoms, l: &Option<Layout>, why: &str| {
        for &a in l.iter().flat_map(|l| &l.atoms) {
            atoms.pin(a, why);
        }
    };
    for (i, n) in g.nodes.iter().enumerate() {
        let input = n.inputs.first().map(|&v| layout[v].clone()).unwrap_or(None);
        let by = |what: &str| format!("{what} `{}` ({})", n.name, n.op.name());
        let out = match n.op.channels() {
            Channels::New { count } => {
                let pinned = skip
                    .contains(&n.name)
                    .then(|| "--prune-filters-skip".to_string());
                Some(Layout {
                    atoms: (0..count)
                        .map(|c| atoms.add(Some((i, c)), pinned.clone()))
                        .collect(),
                    tile: 1,
                })
            }
            Channels::Depthwise { depth_multiplier } => match input {
                Some(l) if depth_multiplier == 1 && l.tile == 1 => Some(l),
                other => {
                    let why = by(&format!("read with depth multiplier {depth_multiplier} by"));
                    pin_all(&mut atoms, &other, &why);
                    None
                }
            },
            Channels::Kept { .. } => input,
            Channels::Padded { channels } => {
                if channels {
                    pin_all(&mut atoms, &input, &by("padded along the channels by"));
                    None
                } else {
                    input
                }
            }
            Channels::Reshaped { shape } => {
                let s_in = &g.values[n.inputs[0]].shape;
                match input {
                    Some(l) if s_in.last() == shape.last() => Some(l),
                    Some(l)
                        if l.tile == 1
                            && shape.len() == 2
                            && shape[1] == s_in[1..].iter().product::<usize>() =>
                    {
                        let tile = s_in[1..s_in.len() - 1].iter().product();
                        Some(Layout {
                            atoms: l.atoms,
                            tile,
                        })
                    }
                    other => {
                        let why = by(&format!("reshaped to {shape:?}, across the channels, by"));
                        pin_all(&mut atoms, &other, &why);
                        None
                    }
                }
            }
            Channels::Joined { axis } => {
                let rank = g.values[n.output].shape.len();
                let on_channels = axis.is_some_and(|axis| axis + 1 == rank);
                // An operand broadcast across the channels keeps its one channel.
                for &v in &n.inputs {
                    if !on_channels && last(v) != last(n.output) {
                        let why = by("broadcast across the channels by");
                        pin_all(&mut atoms, &layout[v].clone(), &why);
                    }
                }
                let operands: Vec<Layout> = n
                    .inputs
                    .iter()
                    .filter(|&&v| on_channels || last(v) == last(n.output))
                    .map(|&v| layout[v].clone().unwrap_or_else(|| fixed(&mut atoms, v)))
                    .collect();
                let mixed = by("joined to operands of another layout by");
                if on_channels {
                    if operands.iter().all(|l| l.tile == 1) {
                        Some(Layout {
                            atoms: operands.into_iter().flat_map(|l| l.atoms).collect(),
                            tile: 1,
                        })
                    } else {
                        for l in operands {
                            pin_all(&mut atoms, &Some(l), &mixed);
                        }
                        None
                    }
                } else {
                    let first = operands[0].clone();
                    let aligned = operands
                        .iter()
                        .all(|l| l.atoms.len() == first.atoms.len() && l.tile == first.tile);
                    for l in &operands[1..] {
                        if aligned {
                            for (&a, &b) in first.atoms.iter().zip(&l.atoms) {
                                atoms.union(a, b);
                            }
                        } else {
                            pin_all(&mut atoms, &Some(l.clone()), &mixed);
                        }
                    }
                    if aligned {
                        Some(first)
                    } else {
                        pin_all(&mut atoms, &Some(first), &mixed);
                        None
                    }
                }
            }
            Channels::Mixed => {
                pin_all(&mut atoms, &input, &by("normalized across the channels by"));
                None
            }
        };
        layout[n.output] = out;
    }
    for &o in &g.outputs {
        let why = format!("the graph output `{}`", g.values[o].name);
        pin_all(&mut atoms, &layout[o].clone(), &why);
    }
    (atoms, layout)
}

/// The rows of `filter` (first axis) as vectors.
fn rows(filter: &Param) -> Vec<&[f32]> {
    let per: usize = filter.shape[1..].iter().product();
    filter.data.chunks(per.max(1)).collect()
}

/// Each output channel's criterion value, divided by the layer's mean (layers tied by an Add are
/// ranked by the sum of their channels' values).
fn scores(filter: &Param, criterion: Criterion) -> Vec<f64> {
    let rows = rows(filter);
    let l2 = |r: &[f32]| r.iter().map(|&w| (w as f64).powi(2)).sum::<f64>().sqrt();
    let raw: Vec<f64> = match criterion {
        Criterion::L1 => rows
            .iter()
            .map(|r| r.iter().map(|&w| (w as f64).abs()).sum())
            .collect(),
        Criterion::L2 => rows.iter().map(|r| l2(r)).collect(),
        Criterion::GeometricMedian => rows
            .iter()
            .map(|a| {
                rows.iter()
                    .map(|b| {
                        a.iter()
                            .zip(b.iter())
                            .map(|(&x, &y)| ((x - y) as f64).powi(2))
                            .sum::<f64>()
                            .sqrt()
                    })
                    .sum()
            })
            .collect(),
    };
    let mean = raw.iter().sum::<f64>() / raw.len().max(1) as f64;
    raw.iter()
        .map(|&s| if mean > 0.0 { s / mean } else { 0.0 })
        .collect()
}

/// Per value, the mean over `x`'s samples of each element of its last axis (node outputs only).
fn last_axis_means(g: &Graph, x: &Tensor) -> Result<Vec<Vec<f64>>> {
    let mut means = vec![Vec::new(); g.values.len()];
    float_exec::run_observed(g, std::slice::from_ref(x), false, |_, n, out| {
        let last = out.shape.last().copied().unwrap_or(1).max(1);
        let mut sum = vec![0f64; last];
        for row in out.data.chunks(last) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += v as f64;
            }
        }
        let count = (out.data.len() / last).max(1) as f64;
        means[n.output] = sum.into_iter().map(|s| s / count).collect();
    })?;
    Ok(means)
}

/// Keeps the entries of `p` along `axis` where `keep` is true.
fn retain_axis(p: &mut Param, axis: usize, keep: &[bool]) {
    let outer: usize = p.shape[..axis].iter().product();
    let inner: usize = p.shape[axis + 1..].iter().product();
    let len = p.shape[axis];
    let mut data = Vec::with_capacity(p.data.len());
    for o in 0..outer {
        for (k, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
            let at = (o * len + k) * inner;
            data.extend_from_slice(&p.data[at..at + inner]);
        }
    }
    p.shape[axis] = keep.iter().filter(|&&k| k).count();
    p.data = data;
}

/// The units of pruning of a graph: channels tied across layers, grouped by the layers that own
/// them, with how many of each group go at the ratio.
pub struct Plan {
    atoms: Atoms,
    layout: Vec<Option<Layout>>,
    /// Each unit (by its root atom): the (node, output channel) pairs it removes.
    members: BTreeMap<usize, Vec<(usize, usize)>>,
    groups: Vec<Group>,
    /// Layers whose channels all stay, and why.
    fixed: BTreeMap<usize, String>,
}

struct Group {
    /// Units in all.
    units: usize,
    /// Units that may go (not pinned).
    free: Vec<usize>,
    /// How many go.
    remove: usize,
}

/// The units of `g` (a graph after [`crate::ir::passes::optimize`]) at `config`'s ratio. A ratio
/// that would remove every channel of a layer, or an unknown name to skip, is an error.
pub fn plan(g: &Graph, config: &FilterPruning) -> Result<Plan> {
    ensure!(
        (0.0..1.0).contains(&config.ratio),
        "the filter pruning ratio {} is not in [0, 1)",
        config.ratio
    );
    for name in &config.skip {
        if !g.nodes.iter().any(|n| &n.name == name) {
            bail!("--prune-filters-skip: the model has no node `{name}`");
        }
    }
    let (mut atoms, layout) = trace(g, &config.skip);
    let mut members: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for a in 0..atoms.owner.len() {
        if let Some(owner) = atoms.owner[a] {
            let root = atoms.find(a);
            members.entry(root).or_default().push(owner);
        }
    }
    let mut by_owners: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    for (&root, m) in &members {
        let mut owners: Vec<usize> = m.iter().map(|&(node, _)| node).collect();
        owners.sort_unstable();
        owners.dedup();
        by_owners.entry(owners).or_default().push(root);
    }
    let mut groups = Vec::new();
    let mut fixed = BTreeMap::new();
    for (owners, units) in by_owners {
        let free: Vec<usize> = units
            .iter()
            .copied()
            .filter(|&u| atoms.pinned(u).is_none())
            .collect();
        if free.is_empty() {
            let why = atoms.pinned(units[0]).unwrap_or_default().to_string();
            for &o in &owners {
                fixed.insert(o, why.clone());
            }
            continue;
        }
        let remove = ((config.ratio * units.len() as f64).round() as usize).min(free.len());
        if remove >= units.len() {
            let names: Vec<&str> = owners.iter().map(|&o| g.nodes[o].name.as_str()).collect();
            bail!(
                "--prune-filters {} would remove all {} output channel(s) of `{}`; lower the ratio \
                 or keep the layer with --prune-filters-skip",
                config.ratio,
                units.len(),
                names.join("`, `")
            );
        }
        groups.push(Group {
            units: units.len(),
            free,
            remove,
        });
    }
    Ok(Plan {
        atoms,
        layout,
        members,
        groups,
        fixed,
    })
}

/// Filter rows of Conv2d and FullyConnected nodes.
fn filter(op: &Op) -> Option<&Param> {
    match op {
        Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => Some(filter),
        _ => None,
    }
}

impl Plan {
    /// Every unit's summed criterion value over its layers, on `g`'s current weights.
    fn unit_scores(&self, g: &Graph, criterion: Criterion) -> BTreeMap<usize, f64> {
        let mut per_node: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
        let mut out = BTreeMap::new();
        for (&root, m) in &self.members {
            let mut sum = 0.0;
            for &(node, c) in m {
                let s = per_node.entry(node).or_insert_with(|| {
                    filter(&g.nodes[node].op).map_or(Vec::new(), |f| scores(f, criterion))
                });
                sum += s.get(c).copied().unwrap_or(0.0);
            }
            out.insert(root, sum);
        }
        out
    }

    /// The free units of `group`, lowest-ranked first.
    fn ranked(&self, group: &Group, scores: &BTreeMap<usize, f64>) -> Vec<usize> {
        let mut ranked = group.free.clone();
        ranked.sort_by(|a, b| scores[a].total_cmp(&scores[b]).then(a.cmp(b)));
        ranked
    }

    /// The `count(group)` lowest-ranked free units of each group not in `already`, added to it.
    fn pick(
        &self,
        g: &Graph,
        criterion: Criterion,
        count: impl Fn(&Group) -> usize,
        already: &mut Vec<usize>,
    ) {
        let scores = self.unit_scores(g, criterion);
        for group in &self.groups {
            let have = group.free.iter().filter(|u| already.contains(u)).count();
            let more: Vec<usize> = self
                .ranked(group, &scores)
                .into_iter()
                .filter(|u| !already.contains(u))
                .take(count(group).saturating_sub(have))
                .collect();
            already.extend(more);
        }
    }

    /// Moves the channels to remove between layers by sensitivity (see [`Allocation`]): the same
    /// total, each unit taken from the group whose measured output error grows least by it. The
    /// error is the float model's output mean squared error over its mean square, on up to
    /// [`SENSITIVITY_SAMPLES`](crate::train::sensitivity::SENSITIVITY_SAMPLES) of `x`, with one
    /// group pruned at a time.
    pub fn allocate_by_sensitivity(
        &mut self,
        g: &Graph,
        x: &Tensor,
        criterion: Criterion,
        ratio: f64,
    ) -> Result<()> {
        let error = OutputError::new(g, x)?;
        let scores = self.unit_scores(g, criterion);
        // Each group's error at a few counts, from 0 to its cap.
        let mut curves: Vec<Vec<(usize, f64)>> = Vec::new();
        let mut caps = Vec::new();
        for group in &self.groups {
            let cap = (((2.0 * ratio).min(1.0) * group.units as f64).round() as usize)
                .min(group.free.len())
                .min(group.units - 1);
            let ranked = self.ranked(group, &scores);
            curves.push(curve(cap, |k| {
                error.of(&remove(g, error.samples(), self, &ranked[..k])?.graph)
            })?);
            caps.push(cap);
        }
        let total: usize = self.groups.iter().map(|gr| gr.remove).sum();
        let counts = allocate(&curves, &caps, total);
        for (group, c) in self.groups.iter_mut().zip(counts) {
            group.remove = c;
        }
        Ok(())
    }

    /// The units to remove at the ratio, ranked by `criterion` on `g`'s weights.
    pub fn by_criterion(&self, g: &Graph, criterion: Criterion) -> Vec<usize> {
        let mut units = Vec::new();
        self.pick(g, criterion, |group| group.remove, &mut units);
        units
    }

    /// The units whose filter rows are all zero in every layer that owns them (those
    /// [`Self::zero_towards`] zeroed during training), all but one at most of each group.
    pub fn zeroed(&self, g: &Graph) -> Vec<usize> {
        let zero_row = |node: usize, c: usize| {
            filter(&g.nodes[node].op).is_some_and(|f| {
                let per = f.data.len() / f.shape[0].max(1);
                f.data[c * per..(c + 1) * per].iter().all(|&w| w == 0.0)
            })
        };
        // A layer keeps one channel even if all its filters are zero.
        self.groups
            .iter()
            .flat_map(|group| {
                group
                    .free
                    .iter()
                    .copied()
                    .filter(|u| self.members[u].iter().all(|&(n, c)| zero_row(n, c)))
                    .take(group.units - 1)
            })
            .collect()
    }

    /// Gradual pruning during training: sets the filter rows and biases of `zeroed` back to zero
    /// (a step moved them), then zeroes the lowest-ranked further units until each group has
    /// `progress` (0 to 1) of the units it loses. A zeroed channel is zero wherever its producer
    /// is followed by a ReLU or a sum of zeroed channels, so that removing it changes nothing.
    pub fn zero_towards(
        &self,
        g: &mut Graph,
        criterion: Criterion,
        progress: f64,
        zeroed: &mut Vec<usize>,
    ) {
        let progress = progress.clamp(0.0, 1.0);
        self.pick(
            g,
            criterion,
            |group| (progress * group.remove as f64).round() as usize,
            zeroed,
        );
        for u in zeroed.iter() {
            for &(node, c) in &self.members[u] {
                if let Op::Conv2d { filter, bias, .. } | Op::FullyConnected { filter, bias, .. } =
                    &mut g.nodes[node].op
                {
                    let per = filter.data.len() / filter.shape[0].max(1);
                    filter.data[c * per..(c + 1) * per].fill(0.0);
                    bias.data[c] = 0.0;
                }
            }
        }
    }
}

/// Removes `ratio` of the output channels of the Conv2d and FullyConnected layers of `g` (a graph
/// after [`crate::ir::passes::optimize`]) at once, allocated and ranked as `config` says; `x`
/// (calibration samples, batch first) gives the sensitivities and the means folded into the
/// readers' biases.
pub fn prune(g: &Graph, x: &Tensor, config: &FilterPruning) -> Result<Pruned> {
    let mut plan = plan(g, config)?;
    if config.allocation == Allocation::Sensitivity {
        plan.allocate_by_sensitivity(g, x, config.criterion, config.ratio)?;
    }
    let units = plan.by_criterion(g, config.criterion);
    remove(g, x, &plan, &units)
}

/// Removes the channels of `units` (of `plan`, made on `g`) from `g`.
pub fn remove(g: &Graph, x: &Tensor, plan: &Plan, units: &[usize]) -> Result<Pruned> {
    let units: std::collections::BTreeSet<usize> = units.iter().copied().collect();
    let removed: Vec<bool> = (0..plan.atoms.parent.len())
        .map(|a| units.contains(&plan.atoms.root(a)))
        .collect();
    let layout = &plan.layout;
    let fixed_reason = &plan.fixed;
    // Which elements of each value's last axis stay.
    let keep: Vec<Option<Vec<bool>>> = layout
        .iter()
        .zip(&g.values)
        .map(|(l, v)| {
            l.as_ref().map(|l| {
                let n = v.shape.last().copied().unwrap_or(1);
                (0..n)
                    .map(|k| !removed[l.atoms[k % l.atoms.len()]])
                    .collect()
            })
        })
        .collect();
    let any_removed = |k: &Option<Vec<bool>>| k.as_ref().is_some_and(|k| k.contains(&false));
    let needs_means = g
        .nodes
        .iter()
        .any(|n| n.op.macs(1) > 0 && any_removed(&keep[n.inputs[0]]));
    let means = if needs_means {
        last_axis_means(g, x).context("measuring the removed channels' means")?
    } else {
        vec![Vec::new(); g.values.len()]
    };

    let mut out = g.clone();
    for (i, n) in out.nodes.iter_mut().enumerate() {
        let input = n.inputs.first().copied();
        let in_keep = input.and_then(|v| keep[v].clone());
        let out_keep = keep[n.output].clone();
        let in_means = input.map(|v| &means[v]);
        match &mut n.op {
            Op::Conv2d { filter, bias, .. } | Op::FullyConnected { filter, bias, .. } => {
                if let (Some(k), Some(m)) = (&in_keep, in_means) {
                    if k.contains(&false) {
                        ensure!(
                            m.len() == k.len(),
                            "node `{}`: no means for its removed inputs",
                            g.nodes[i].name
                        );
                        let last = filter.shape.last().copied().unwrap_or(1).max(1);
                        let per = filter.data.len() / bias.data.len().max(1);
                        for (o, row) in filter.data.chunks(per.max(1)).enumerate() {
                            let mut shift = 0f64;
                            for (j, &w) in row.iter().enumerate() {
                                let c = j % last;
                                if !k[c] {
                                    shift += w as f64 * m[c];
                                }
                            }
                            bias.data[o] += shift as f32;
                        }
                        let axis = filter.shape.len() - 1;
                        retain_axis(filter, axis, k);
                    }
                }
                if let Some(k) = &out_keep {
                    retain_axis(filter, 0, k);
                    retain_axis(bias, 0, k);
                }
            }
            Op::Reshape { shape } => {
                if let Some(k) = &out_keep {
                    *shape.last_mut().unwrap() = k.iter().filter(|&&k| k).count();
                }
            }
            op => {
                if let Some(k) = &out_keep {
                    for (p, axis) in op.channel_params_mut() {
                        retain_axis(p, axis, k);
                    }
                }
            }
        }
    }
    for n in 0..out.nodes.len() {
        let node = &out.nodes[n];
        let shapes: Vec<&[usize]> = node
            .inputs
            .iter()
            .map(|&v| &out.values[v].shape[..])
            .collect();
        let s = node
            .op
            .output_shape(&shapes)
            .with_context(|| format!("node `{}` after filter pruning", node.name))?;
        let o = node.output;
        out.values[o].shape = s;
    }
    out.check().context("the graph after filter pruning")?;
    let layers = g
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match &n.op {
            Op::Conv2d { filter, .. } | Op::FullyConnected { filter, .. } => {
                let kept = keep[n.output]
                    .as_ref()
                    .map_or(filter.shape[0], |k| k.iter().filter(|&&k| k).count());
                Some(LayerChannels {
                    name: n.name.clone(),
                    op: n.op.name(),
                    channels: filter.shape[0],
                    kept,
                    // Only a layer that keeps every channel says why (a layer may own
                    // pinned and free channels both).
                    fixed: fixed_reason
                        .get(&i)
                        .filter(|_| kept == filter.shape[0])
                        .cloned(),
                })
            }
            _ => None,
        })
        .collect();
    Ok(Pruned {
        macs_before: macs(g),
        macs_after: macs(&out),
        graph: out,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Clamp, Window2d};
    use crate::rng::Rng;

    /// L2-ranked settings without recovery epochs.
    fn settings(ratio: f64, allocation: Allocation, skip: &[&str]) -> FilterPruning {
        FilterPruning {
            ratio,
            criterion: Criterion::L2,
            allocation,
            skip: skip.iter().map(|s| s.to_string()).collect(),
            recovery_epochs: 0,
        }
    }

    fn window(k: usize) -> Window2d {
        Window2d {
            kernel: [k, k],
            stride: [1, 1],
            dilation: [1, 1],
            pads: [k / 2; 4],
        }
    }

    fn param(rng: &mut Rng, shape: Vec<usize>) -> Param {
        let n = shape.iter().product();
        Param::new(shape, rng.values(n, -1.0, 1.0))
    }

    fn conv(rng: &mut Rng, k: usize, cin: usize, cout: usize) -> Op {
        Op::Conv2d {
            window: window(k),
            filter: param(rng, vec![cout, k, k, cin]),
            bias: param(rng, vec![cout]),
            clamp: Clamp::RELU,
        }
    }

    fn fc(rng: &mut Rng, cin: usize, cout: usize) -> Op {
        Op::FullyConnected {
            filter: param(rng, vec![cout, cin]),
            bias: param(rng, vec![cout]),
            clamp: Clamp::NONE,
        }
    }

    /// Conv `a` (3x3, 4 channels) -> depthwise -> conv `c` (1x1, 4), `d = a + c`, conv `e` (1x1, 3),
    /// `f = concat(d, e)` on the channels; two heads, mean -> FC and flatten -> FC, summed.
    fn branchy(rng: &mut Rng) -> Graph {
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 5, 5, 2]);
        g.inputs = vec![x];
        let a = g
            .add_node("a", "Conv", conv(rng, 3, 2, 4), vec![x], "a")
            .unwrap();
        let dw = Op::DepthwiseConv2d {
            window: window(3),
            depth_multiplier: 1,
            filter: param(rng, vec![1, 3, 3, 4]),
            bias: param(rng, vec![4]),
            clamp: Clamp::RELU,
        };
        let b = g.add_node("b", "Conv", dw, vec![a], "b").unwrap();
        let c = g
            .add_node("c", "Conv", conv(rng, 1, 4, 4), vec![b], "c")
            .unwrap();
        let add = Op::Add { clamp: Clamp::NONE };
        let d = g
            .add_node("d", "Add", add.clone(), vec![a, c], "d")
            .unwrap();
        let e = g
            .add_node("e", "Conv", conv(rng, 1, 4, 3), vec![d], "e")
            .unwrap();
        let cat = Op::Concatenation { axis: 3 };
        let f = g.add_node("f", "Concat", cat, vec![d, e], "f").unwrap();
        let mean = Op::Mean { keep_dims: false };
        let m = g.add_node("m", "Mean", mean, vec![f], "m").unwrap();
        let h1 = g
            .add_node("h1", "Gemm", fc(rng, 7, 5), vec![m], "h1")
            .unwrap();
        let flat = Op::Reshape {
            shape: vec![1, 5 * 5 * 7],
        };
        let r = g.add_node("r", "Flatten", flat, vec![f], "r").unwrap();
        let h2 = g
            .add_node("h2", "Gemm", fc(rng, 175, 5), vec![r], "h2")
            .unwrap();
        let y = g.add_node("y", "Add", add, vec![h1, h2], "y").unwrap();
        g.outputs = vec![y];
        g.check().unwrap();
        g
    }

    fn node<'g>(g: &'g mut Graph, name: &str) -> &'g mut Op {
        &mut g.nodes.iter_mut().find(|n| n.name == name).unwrap().op
    }

    /// Zeroes output channel `c` of a Conv2d or DepthwiseConv2d: its filter and its bias.
    fn kill(op: &mut Op, c: usize) {
        match op {
            Op::Conv2d { filter, bias, .. } => {
                let per = filter.data.len() / filter.shape[0];
                filter.data[c * per..(c + 1) * per].fill(0.0);
                bias.data[c] = 0.0;
            }
            Op::DepthwiseConv2d { filter, bias, .. } => {
                let n = filter.shape[3];
                for w in filter.data.iter_mut().skip(c).step_by(n) {
                    *w = 0.0;
                }
                bias.data[c] = 0.0;
            }
            _ => unreachable!(),
        }
    }

    fn input(rng: &mut Rng, shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::new(shape, rng.values(n, -1.0, 1.0))
    }

    fn max_diff(a: &Graph, b: &Graph, x: &Tensor) -> f32 {
        let ya = float_exec::run(a, std::slice::from_ref(x), 1).unwrap();
        let yb = float_exec::run(b, std::slice::from_ref(x), 1).unwrap();
        assert_eq!(ya[0].shape, yb[0].shape);
        ya[0]
            .data
            .iter()
            .zip(&yb[0].data)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()))
    }

    #[test]
    fn dead_channels_go_and_the_outputs_stay() {
        let mut rng = Rng::new(7);
        let mut g = branchy(&mut rng);
        // Channel 1 of the residual sum (a, its depthwise, c) and channel 2 of e are all zero.
        kill(node(&mut g, "a"), 1);
        kill(node(&mut g, "b"), 1);
        kill(node(&mut g, "c"), 1);
        kill(node(&mut g, "e"), 2);
        let x = input(&mut rng, vec![8, 5, 5, 2]);
        for criterion in [Criterion::L1, Criterion::L2] {
            let config = FilterPruning {
                criterion,
                ..settings(0.3, Allocation::Uniform, &[])
            };
            let p = prune(&g, &x, &config).unwrap();
            let kept: Vec<(&str, usize, usize)> = p
                .layers
                .iter()
                .map(|l| (l.name.as_str(), l.channels, l.kept))
                .collect();
            assert_eq!(
                kept,
                [
                    ("a", 4, 3),
                    ("c", 4, 3),
                    ("e", 3, 2),
                    ("h1", 5, 5),
                    ("h2", 5, 5)
                ]
            );
            let why = p.layers[3].fixed.as_deref();
            assert_eq!(why, Some("the graph output `y`"), "{:?}", p.layers[3]);
            let r = p.graph.nodes.iter().find(|n| n.name == "r").unwrap();
            assert_eq!(p.graph.values[r.output].shape, [1, 125]);
            assert!(p.macs_after < p.macs_before);
            let diff = max_diff(&g, &p.graph, &x);
            assert!(diff < 1e-5, "{criterion:?}: outputs moved by {diff}");
        }
    }

    #[test]
    fn a_per_channel_prelu_slope_follows_the_pruned_channels() {
        let mut rng = Rng::new(11);
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 5, 5, 2]);
        g.inputs = vec![x];
        let a = g
            .add_node("a", "Conv", conv(&mut rng, 3, 2, 4), vec![x], "a")
            .unwrap();
        let slope = Param::new(vec![4], vec![0.25, -0.5, 0.1, 1.5]);
        let p = g
            .add_node("p", "PRelu", Op::PRelu { slope }, vec![a], "p")
            .unwrap();
        let e = g
            .add_node("e", "Conv", conv(&mut rng, 1, 4, 3), vec![p], "e")
            .unwrap();
        g.outputs = vec![e];
        g.check().unwrap();
        kill(node(&mut g, "a"), 1);
        let x = input(&mut rng, vec![8, 5, 5, 2]);
        let pruned = prune(&g, &x, &settings(0.25, Allocation::Uniform, &[])).unwrap();
        let Op::PRelu { slope } = &pruned.graph.nodes[1].op else {
            panic!("{:?}", pruned.graph.nodes[1].op)
        };
        assert_eq!(slope.data, [0.25, 0.1, 1.5]);
        let diff = max_diff(&g, &pruned.graph, &x);
        assert!(diff < 1e-5, "outputs moved by {diff}");
    }

    #[test]
    fn zeroed_units_grow_with_the_schedule_and_are_the_ones_found_after() {
        let mut rng = Rng::new(9);
        let mut g = branchy(&mut rng);
        let config = settings(0.5, Allocation::Uniform, &[]);
        let plan = plan(&g, &config).unwrap();
        let mut zeroed = Vec::new();
        let mut counts = Vec::new();
        for progress in [0.0, 0.3, 0.7, 1.0] {
            plan.zero_towards(&mut g, Criterion::L2, progress, &mut zeroed);
            counts.push(zeroed.len());
        }
        // Each group reaches round(progress * 2) of its 2: half the residual sum's 4 channels, and
        // of e's 3 (rounded).
        assert_eq!(counts, [0, 2, 2, 4]);
        let mut found = plan.zeroed(&g);
        found.sort_unstable();
        zeroed.sort_unstable();
        assert_eq!(found, zeroed);
        // With every filter of the residual sum's producers zero, one of its channels stays.
        for name in ["a", "c"] {
            if let Op::Conv2d { filter, .. } = node(&mut g, name) {
                filter.data.fill(0.0);
            }
        }
        assert_eq!(plan.zeroed(&g).len(), 3 + 2);
    }

    #[test]
    fn a_removed_constant_channel_moves_into_the_readers_biases() {
        let mut rng = Rng::new(11);
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 2]);
        g.inputs = vec![x];
        let mut op = conv(&mut rng, 1, 2, 3);
        kill(&mut op, 0);
        if let Op::Conv2d { bias, .. } = &mut op {
            bias.data[0] = 0.7;
        }
        let a = g.add_node("a", "Conv", op, vec![x], "a").unwrap();
        let c = g
            .add_node("c", "Conv", conv(&mut rng, 1, 3, 2), vec![a], "c")
            .unwrap();
        let m = g
            .add_node("m", "Mean", Op::Mean { keep_dims: false }, vec![c], "m")
            .unwrap();
        let flat = Op::Reshape { shape: vec![1, 48] };
        let r = g.add_node("r", "Flatten", flat, vec![a], "r").unwrap();
        let h = g
            .add_node("h", "Gemm", fc(&mut rng, 48, 2), vec![r], "h")
            .unwrap();
        let add = Op::Add { clamp: Clamp::NONE };
        let y = g.add_node("y", "Add", add, vec![m, h], "y").unwrap();
        g.outputs = vec![y];
        let x = input(&mut rng, vec![4, 4, 4, 2]);
        let config = settings(0.34, Allocation::Uniform, &["c"]);
        let p = prune(&g, &x, &config).unwrap();
        assert_eq!(p.layers[0].kept, 2);
        assert_eq!(p.layers[1].fixed.as_deref(), Some("--prune-filters-skip"));
        let diff = max_diff(&g, &p.graph, &x);
        assert!(diff < 1e-5, "outputs moved by {diff}");
    }

    #[test]
    fn sensitivity_takes_the_channels_where_the_outputs_move_least() {
        let mut rng = Rng::new(5);
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 4, 4, 3]);
        g.inputs = vec![x];
        // `a`'s channels are nearly constant (tiny weights): removing them, with their means moved
        // into `h`'s bias, changes almost nothing; every channel of `b` matters.
        let mut op = conv(&mut rng, 1, 3, 8);
        if let Op::Conv2d { filter, bias, .. } = &mut op {
            filter.data.iter_mut().for_each(|w| *w *= 1e-3);
            bias.data.iter_mut().for_each(|b| *b = b.abs() + 0.1);
        }
        let a = g.add_node("a", "Conv", op, vec![x], "a").unwrap();
        let b = g
            .add_node("b", "Conv", conv(&mut rng, 1, 3, 8), vec![x], "b")
            .unwrap();
        let cat = Op::Concatenation { axis: 3 };
        let f = g.add_node("f", "Concat", cat, vec![a, b], "f").unwrap();
        let m = g
            .add_node("m", "Mean", Op::Mean { keep_dims: false }, vec![f], "m")
            .unwrap();
        let h = g
            .add_node("h", "Gemm", fc(&mut rng, 16, 3), vec![m], "h")
            .unwrap();
        g.outputs = vec![h];
        let x = input(&mut rng, vec![16, 4, 4, 3]);
        let mut config = settings(0.25, Allocation::Uniform, &[]);
        let kept = |config: &FilterPruning| -> Vec<usize> {
            let p = prune(&g, &x, config).unwrap();
            p.layers.iter().map(|l| l.kept).collect()
        };
        assert_eq!(kept(&config), [6, 6, 3]);
        config.allocation = Allocation::Sensitivity;
        // The same four channels, all from `a`, at most twice the ratio of its eight.
        assert_eq!(kept(&config), [4, 8, 3]);
    }

    #[test]
    fn a_gate_broadcast_across_the_channels_keeps_its_channel() {
        let mut rng = Rng::new(13);
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 3, 3, 2]);
        g.inputs = vec![x];
        let a = g
            .add_node("a", "Conv", conv(&mut rng, 1, 2, 4), vec![x], "a")
            .unwrap();
        let gate = g
            .add_node("gate", "Conv", conv(&mut rng, 1, 2, 1), vec![x], "gate")
            .unwrap();
        let mul = Op::Mul { clamp: Clamp::NONE };
        let m = g.add_node("m", "Mul", mul, vec![a, gate], "m").unwrap();
        let c = g
            .add_node("c", "Conv", conv(&mut rng, 1, 4, 3), vec![m], "c")
            .unwrap();
        let mean = Op::Mean { keep_dims: false };
        let r = g.add_node("r", "Mean", mean, vec![c], "r").unwrap();
        let h = g
            .add_node("h", "Gemm", fc(&mut rng, 3, 2), vec![r], "h")
            .unwrap();
        g.outputs = vec![h];
        let x = input(&mut rng, vec![2, 3, 3, 2]);
        let config = settings(0.5, Allocation::Uniform, &[]);
        let p = prune(&g, &x, &config).unwrap();
        let kept: Vec<(usize, Option<&str>)> = p
            .layers
            .iter()
            .map(|l| (l.kept, l.fixed.as_deref()))
            .collect();
        let why = "broadcast across the channels by `m` (MUL)";
        assert_eq!(
            kept,
            [
                (2, None),
                (1, Some(why)),
                (1, None),
                (2, Some("the graph output `h`"))
            ]
        );
    }

    #[test]
    fn the_criteria_rank_as_their_definitions_say() {
        let filter = Param::new(vec![3, 2], vec![3.0, 0.0, 0.0, 3.0, 2.5, 2.5]);
        let lowest = |c| {
            let s = scores(&filter, c);
            (0..3).min_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap()
        };
        // The third filter has the largest norms but lies nearest the other two.
        assert_eq!(lowest(Criterion::L1), 0);
        assert_eq!(lowest(Criterion::L2), 0);
        assert_eq!(lowest(Criterion::GeometricMedian), 2);
    }

    #[test]
    fn bad_ratios_and_names_are_refused() {
        let mut rng = Rng::new(3);
        let mut g = Graph::default();
        let x = g.add_value("x", vec![1, 3, 3, 2]);
        g.inputs = vec![x];
        let a = g
            .add_node("a", "Conv", conv(&mut rng, 1, 2, 1), vec![x], "a")
            .unwrap();
        let m = g
            .add_node("m", "Mean", Op::Mean { keep_dims: false }, vec![a], "m")
            .unwrap();
        let h = g
            .add_node("h", "Gemm", fc(&mut rng, 1, 2), vec![m], "h")
            .unwrap();
        g.outputs = vec![h];
        let x = input(&mut rng, vec![2, 3, 3, 2]);
        let refuse = |ratio: f64, skip: &[&str]| {
            let config = settings(ratio, Allocation::Uniform, skip);
            format!("{:#}", prune(&g, &x, &config).err().unwrap())
        };
        let all = refuse(0.6, &[]);
        assert!(
            all.contains("remove all 1 output channel(s) of `a`"),
            "{all}"
        );
        assert!(refuse(1.0, &[]).contains("not in [0, 1)"));
        assert!(refuse(0.2, &["nope"]).contains("no node `nope`"));
        // Skipping the layer makes the same ratio valid, and nothing changes.
        let config = settings(0.6, Allocation::Uniform, &["a"]);
        assert_eq!(prune(&g, &x, &config).unwrap().graph, g);
    }
}
