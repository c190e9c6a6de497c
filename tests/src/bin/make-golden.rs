//! Regenerates `tests/golden/`: every case of `ferrite_tests::cases::all()`.

fn main() -> anyhow::Result<()> {
    let root = ferrite_tests::golden::dir();
    for case in ferrite_tests::cases::all()? {
        ferrite_tests::golden::write(&root, &case)?;
        println!("{:<28} model {:>6} B  arena {:>6} B", case.name, case.model.len(), case.arena);
    }
    Ok(())
}
