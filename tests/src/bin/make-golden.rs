//! Regenerates `tests/golden/` (every case of `ferrite_tests::cases::all()`) and `tests/bench/` (the
//! benchmark models of `ferrite_tests::bench_models::all()`).

fn main() -> anyhow::Result<()> {
    let root = ferrite_tests::golden::dir();
    for case in ferrite_tests::cases::all()? {
        ferrite_tests::golden::write(&root, &case)?;
        // The frozen format-v1 file is written once and never regenerated.
        if case.name == "small_dscnn" && !root.join("format-v1").exists() {
            let mut frozen = ferrite_tests::cases::Case {
                name: "format-v1".into(),
                ..case.clone()
            };
            frozen.about = format!(
                "Frozen file of format version 1 (a copy of small_dscnn when it was made). {}",
                case.about
            );
            ferrite_tests::golden::write(&root, &frozen)?;
        }
        println!(
            "{:<28} model {:>6} B  arena {:>6} B",
            case.name,
            case.model.len(),
            case.arena
        );
    }
    let bench = ferrite_tests::bench_models::dir();
    for case in ferrite_tests::bench_models::all()? {
        ferrite_tests::golden::write(&bench, &case)?;
        println!(
            "bench/{:<22} model {:>6} B  arena {:>6} B",
            case.name,
            case.model.len(),
            case.arena
        );
    }
    Ok(())
}
