//! Static memory planning: tensor lifetimes, then greedy placement by decreasing size (TFLite Micro's
//! greedy strategy) of groups of tensors that keep fixed offsets between them (a tensor run in place
//! over its input), each tensor occupying its bytes only while it is live.

/// One tensor to place: its offset from its group's start, its size in bytes and the operator steps
/// during which it is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub rel: usize,
    pub size: usize,
    pub first: usize,
    pub last: usize,
}

impl Buffer {
    fn live_with(&self, other: &Buffer) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// Offsets of each group, the arena size they need, and the lower bound no plan can beat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub offsets: Vec<usize>,
    pub arena_size: usize,
    /// The largest total at one step of each group's largest live tensor.
    pub lower_bound: usize,
}

fn align_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// Places groups greedily, widest first (ties: earliest first), each at the lowest `align`ed offset
/// where none of its tensors overlaps a placed tensor live at the same time. Tensors of one group are
/// not checked against each other: their offsets were chosen together. Each `rel` must be a multiple
/// of `align`.
pub fn greedy(groups: &[Vec<Buffer>], align: usize) -> Plan {
    let span = |g: &[Buffer]| g.iter().map(|b| b.rel + b.size).max().unwrap_or(0);
    let first = |g: &[Buffer]| g.iter().map(|b| b.first).min().unwrap_or(0);
    let mut order: Vec<usize> = (0..groups.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(span(&groups[i])), first(&groups[i]), i));
    let mut offsets = vec![0usize; groups.len()];
    // Placed tensors: absolute offset and the tensor.
    let mut placed: Vec<(usize, Buffer)> = Vec::new();
    let mut arena_size = 0;
    for &i in &order {
        let mut base = 0;
        'search: loop {
            for b in &groups[i] {
                let start = base + b.rel;
                for (at, p) in &placed {
                    if b.live_with(p) && start < at + p.size && *at < start + b.size {
                        // Every base below this one overlaps `p` as well.
                        base =
                            align_up((at + p.size).saturating_sub(b.rel), align).max(base + align);
                        continue 'search;
                    }
                }
            }
            break;
        }
        offsets[i] = base;
        arena_size = arena_size.max(base + span(&groups[i]));
        placed.extend(groups[i].iter().map(|b| (base + b.rel, *b)));
    }
    let steps = groups
        .iter()
        .flatten()
        .map(|b| b.last + 1)
        .max()
        .unwrap_or(0);
    let lower_bound = (0..steps)
        .map(|s| {
            groups
                .iter()
                .map(|g| {
                    g.iter()
                        .filter(|b| b.first <= s && s <= b.last)
                        .map(|b| b.size)
                        .max()
                        .unwrap_or(0)
                })
                .sum()
        })
        .max()
        .unwrap_or(0);
    Plan {
        offsets,
        arena_size: align_up(arena_size, align),
        lower_bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn singletons(bufs: &[Buffer]) -> Vec<Vec<Buffer>> {
        bufs.iter().map(|&b| vec![b]).collect()
    }

    fn overlaps(p: &Plan, bufs: &[Buffer]) -> bool {
        for i in 0..bufs.len() {
            for j in i + 1..bufs.len() {
                let live = bufs[i].first <= bufs[j].last && bufs[j].first <= bufs[i].last;
                let (a0, a1) = (p.offsets[i], p.offsets[i] + bufs[i].size);
                let (b0, b1) = (p.offsets[j], p.offsets[j] + bufs[j].size);
                if live && a0 < b1 && b0 < a1 {
                    return true;
                }
            }
        }
        false
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c -> d: only two live at once.
        let bufs: Vec<Buffer> = (0..4)
            .map(|i| Buffer {
                rel: 0,
                size: 100,
                first: i,
                last: i + 1,
            })
            .collect();
        let p = greedy(&singletons(&bufs), 4);
        assert!(!overlaps(&p, &bufs));
        assert_eq!(p.arena_size, 200);
        assert_eq!(p.lower_bound, 200);
    }

    #[test]
    fn a_group_holds_only_the_bytes_of_its_live_tensors() {
        // A group of a tensor and its in-place successor 100 bytes further; a third tensor live with
        // the successor only takes the first one's bytes.
        let group = vec![
            Buffer {
                rel: 0,
                size: 100,
                first: 0,
                last: 1,
            },
            Buffer {
                rel: 100,
                size: 100,
                first: 1,
                last: 3,
            },
        ];
        let other = Buffer {
            rel: 0,
            size: 100,
            first: 2,
            last: 3,
        };
        let p = greedy(&[group, vec![other]], 4);
        assert_eq!(p.offsets, vec![0, 0]);
        assert_eq!(p.arena_size, 200);
        // Live with both: placed after the group.
        let p = greedy(
            &[
                vec![Buffer {
                    rel: 0,
                    size: 100,
                    first: 0,
                    last: 1,
                }],
                vec![Buffer {
                    rel: 8,
                    size: 50,
                    first: 1,
                    last: 1,
                }],
            ],
            4,
        );
        assert_eq!(p.offsets, vec![0, 92]);
        assert_eq!(p.arena_size, 152);
    }

    #[test]
    fn random_plans_never_overlap_and_respect_bounds() {
        let mut seed = 0x1234_5678_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let n = 1 + (next() % 30) as usize;
            let bufs: Vec<Buffer> = (0..n)
                .map(|_| {
                    let first = (next() % 20) as usize;
                    Buffer {
                        rel: 0,
                        size: 1 + (next() % 500) as usize,
                        first,
                        last: first + (next() % 5) as usize,
                    }
                })
                .collect();
            let p = greedy(&singletons(&bufs), 16);
            assert!(!overlaps(&p, &bufs));
            assert!(p.arena_size >= p.lower_bound);
            assert!(p.offsets.iter().all(|o| o % 16 == 0));
        }
    }
}
