//! Static memory planning: tensor lifetimes, then greedy placement by decreasing size (TFLite Micro's
//! greedy strategy), with in-place tensors sharing their source's buffer.

/// One buffer to place: its size in bytes and the operator steps during which it is live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub size: usize,
    pub first: usize,
    pub last: usize,
}

/// Offsets of each buffer, the arena size they need, and the lower bound no plan can beat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub offsets: Vec<usize>,
    pub arena_size: usize,
    /// The largest total size of buffers live at one step.
    pub lower_bound: usize,
}

fn align_up(x: usize, align: usize) -> usize {
    x.div_ceil(align) * align
}

/// Places buffers greedily, largest first (ties: earliest first), each at the lowest `align`ed offset
/// that does not overlap a placed buffer with an overlapping lifetime.
pub fn greedy(buffers: &[Buffer], align: usize) -> Plan {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(buffers[i].size), buffers[i].first, i));
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut arena_size = 0;
    for &i in &order {
        let b = buffers[i];
        // Live neighbours, by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].first <= b.last && b.first <= buffers[j].last)
            .map(|&j| (offsets[j], offsets[j] + buffers[j].size))
            .collect();
        busy.sort_unstable();
        let mut offset = 0;
        for (start, end) in busy {
            if offset + b.size <= start {
                break;
            }
            offset = offset.max(align_up(end, align));
        }
        offsets[i] = offset;
        arena_size = arena_size.max(offset + b.size);
        placed.push(i);
    }
    let steps = buffers.iter().map(|b| b.last + 1).max().unwrap_or(0);
    let lower_bound = (0..steps)
        .map(|s| {
            buffers
                .iter()
                .filter(|b| b.first <= s && s <= b.last)
                .map(|b| b.size)
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
                size: 100,
                first: i,
                last: i + 1,
            })
            .collect();
        let p = greedy(&bufs, 4);
        assert!(!overlaps(&p, &bufs));
        assert_eq!(p.arena_size, 200);
        assert_eq!(p.lower_bound, 200);
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
                        size: 1 + (next() % 500) as usize,
                        first,
                        last: first + (next() % 5) as usize,
                    }
                })
                .collect();
            let p = greedy(&bufs, 16);
            assert!(!overlaps(&p, &bufs));
            assert!(p.arena_size >= p.lower_bound);
            assert!(p.offsets.iter().all(|o| o % 16 == 0));
        }
    }
}
