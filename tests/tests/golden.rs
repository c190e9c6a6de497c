//! The committed golden cases are exactly what the generator makes, and the runtime reproduces them.

use ferrite_tests::{cases, golden};

#[test]
fn committed_cases_match_the_generator_and_the_runtime() {
    for case in cases::all().expect("generating cases") {
        let (model, input, expected) =
            golden::read(&case.name).expect("committed case missing: run make-golden");
        assert_eq!(
            model, case.model,
            "{}: committed model differs from the generator's",
            case.name
        );
        assert_eq!(input, case.input, "{}: committed input differs", case.name);
        assert_eq!(
            expected, case.expected,
            "{}: committed expected output differs",
            case.name
        );
        assert_eq!(
            cases::run(&model, &input).unwrap(),
            expected,
            "{}",
            case.name
        );
    }
}

/// A file of format version 1, frozen: every later runtime loads it and computes the same output
/// (appending operators or fields keeps old files loading; see `runtime/FORMAT.md`).
#[test]
fn format_v1_file_still_loads_and_runs() {
    let (model, input, expected) = golden::read("format-v1").unwrap();
    ferrite_runtime::Model::from_bytes(&model).expect("the version-1 file loads");
    assert_eq!(cases::run(&model, &input).unwrap(), expected);
}
