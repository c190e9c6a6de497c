//! A text summary of an IR graph: operators, shapes, clamps, MACs and weight counts.

use std::fmt::Write;

use super::Graph;

/// One line per node, then totals.
pub fn render(title: &str, g: &Graph) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{title}: float model, {} operators", g.nodes.len());
    for &i in &g.inputs {
        let v = &g.values[i];
        let _ = writeln!(
            s,
            "  input  `{}` {:?} (IR NHWC, source {:?})",
            v.name, v.shape, v.source
        );
    }
    for &o in &g.outputs {
        let v = &g.values[o];
        let _ = writeln!(s, "  output `{}` {:?}", v.name, v.shape);
    }
    let (mut macs, mut weights) = (0usize, 0usize);
    for (i, n) in g.nodes.iter().enumerate() {
        let out = &g.values[n.output];
        let m = n.op.macs(out.elements());
        let w: usize = n.op.clone().params_mut().iter().map(|p| p.data.len()).sum();
        macs += m;
        weights += w;
        let clamp =
            n.op.clone()
                .clamp_mut()
                .filter(|c| !c.is_none())
                .map(|c| format!(" +{c}"))
                .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {i:>3} {:<18}{clamp:<10} {:<30} {:>10} MACs {:>8} weights  ({} `{}`)",
            n.op.name(),
            format!("{:?}", out.shape),
            m,
            w,
            n.source_op,
            n.name
        );
    }
    let _ = writeln!(
        s,
        "  total: {macs} MACs, {weights} weights ({} KiB as f32)",
        weights * 4 / 1024
    );
    s
}
