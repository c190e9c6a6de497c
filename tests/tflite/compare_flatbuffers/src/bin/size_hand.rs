//! Reads every field the importer needs with the hand-written reader.

fn main() -> std::process::ExitCode {
    compare_flatbuffers::size_main(compare_flatbuffers::walk_hand)
}
