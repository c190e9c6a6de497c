//! The test models with bytes changed (and their checksum repaired, so the payload's decoder and the
//! checks see them): each loads or is refused, and one that loads runs, without a panic. What the
//! fuzz target `load_and_run` does, on a fixed budget without cargo-fuzz.
#![cfg(all(feature = "all-ops", feature = "float", feature = "int16"))]

use ferrite_runtime::format::{crc32, HEADER_LEN};
use ferrite_runtime::{Interpreter, Model};
use proptest::prelude::*;
use std::sync::OnceLock;

fn models() -> &'static [Vec<u8>] {
    static MODELS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/golden");
        let mut models: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| std::fs::read(e.unwrap().path().join("model.ferrite")).ok())
            .collect();
        models.sort();
        assert!(models.len() > 20);
        models
    })
}

fn load_and_run(bytes: &[u8]) {
    let Ok(model) = Model::from_bytes(bytes) else {
        return;
    };
    let mut arena = vec![0u8; 1 << 20];
    let Ok(mut interpreter) = Interpreter::new(&model, &mut arena) else {
        return;
    };
    let _ = interpreter.invoke();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 3 } else { 3000 }))]

    #[test]
    #[cfg_attr(miri, ignore = "reads the models from disk; Miri has no file system")]
    fn mutated_models_load_or_are_refused_and_run_without_panic(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = models()[which.index(models().len())].clone();
        for (at, b) in edits {
            let at = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
            bytes[at] = b;
        }
        let crc = crc32(&bytes[HEADER_LEN..]);
        bytes[16..20].copy_from_slice(&crc.to_le_bytes());
        load_and_run(&bytes);
    }
}
