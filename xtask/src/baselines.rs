//! The figures of `../shared/BASELINES.md` that `bench` and `models` print beside Ferrite's, read from
//! `xtask/baselines.json`, where each group names the BASELINES.md table its rows come from.

use serde::Deserialize;
use std::sync::OnceLock;

/// Per-layer instruction counts: MACs (`None` where the table gives none per MAC), CMSIS-NN on M4
/// with DSP, CMSIS-NN pure C on M3, naive C (TFLM-reference style) on M4.
#[derive(Deserialize)]
pub struct Baseline {
    pub label: String,
    pub macs: Option<u64>,
    pub cmsis_m4: u64,
    pub cmsis_m3: u64,
    pub naive_m4: Option<u64>,
}

/// TFLite Micro + CMSIS-NN, whole invoke (interpreter included): instructions on the M4F and M3, and
/// the arena on the M4F where the code prints it.
#[derive(Deserialize)]
pub struct WholeStack {
    pub model: String,
    pub m4f: u64,
    pub m3: u64,
    pub arena_m4f: Option<u64>,
}

/// TFLite Micro's arena for a model (file stem): total, head (planned activations) and tail
/// (persistent data), in bytes.
#[derive(Deserialize)]
pub struct TflmArena {
    pub model: String,
    pub total: u64,
    pub head: u64,
    pub tail: u64,
}

#[derive(Deserialize)]
struct File {
    layers: Vec<ModelLayers>,
    tflm_whole_stack: Rows<WholeStack>,
    tflm_arena: Rows<TflmArena>,
}

/// One model's per-layer table and its whole-network row.
#[derive(Deserialize)]
struct ModelLayers {
    model: String,
    rows: Vec<Row>,
    whole_network: Baseline,
}

/// A per-layer row and the tests/bench/ layer names (trailing digits removed) it stands for.
#[derive(Deserialize)]
struct Row {
    layers: Vec<String>,
    #[serde(flatten)]
    figures: Baseline,
}

#[derive(Deserialize)]
struct Rows<T> {
    rows: Vec<T>,
}

const JSON: &str = include_str!("../baselines.json");

fn parse(text: &str) -> serde_json::Result<File> {
    serde_json::from_str(text)
}

fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| parse(JSON).expect("xtask/baselines.json does not parse"))
}

fn model_layers(model: &str) -> Option<&'static ModelLayers> {
    file().layers.iter().find(|m| m.model == model)
}

/// The row of layer `layer` (trailing digits removed) of `model` (`kws_dscnn`, `ic_resnet8`).
pub fn layer(model: &str, layer: &str) -> Option<&'static Baseline> {
    model_layers(model)?
        .rows
        .iter()
        .find(|r| r.layers.iter().any(|l| l == layer))
        .map(|r| &r.figures)
}

/// The whole-network row of `model`.
pub fn whole_network(model: &str) -> Option<&'static Baseline> {
    model_layers(model).map(|m| &m.whole_network)
}

/// TFLite Micro + CMSIS-NN's whole invoke on `model`.
pub fn tflm_whole_stack(model: &str) -> Option<&'static WholeStack> {
    file()
        .tflm_whole_stack
        .rows
        .iter()
        .find(|r| r.model == model)
}

/// TFLite Micro's arenas, in the order of the BASELINES.md table.
pub fn tflm_arenas() -> &'static [TflmArena] {
    &file().tflm_arena.rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn every_group_names_its_table() {
        let value: Value = serde_json::from_str(JSON).unwrap();
        let mut groups: Vec<&Value> = value["layers"].as_array().unwrap().iter().collect();
        groups.push(&value["tflm_whole_stack"]);
        groups.push(&value["tflm_arena"]);
        for group in groups {
            let table = group["table"].as_str().unwrap_or_default();
            assert!(!table.is_empty(), "a group without its table: {group}");
        }
    }

    #[test]
    fn every_looked_up_figure_is_present() {
        parse(JSON).unwrap();
        // The layer names of the tests/bench/ models and of the MLPerf models' matched layers
        // (`crate::bench`), trailing digits removed; `reshape` has no row.
        let kws = ["conv", "dw", "pw", "avgpool", "fc", "softmax"];
        let resnet = [
            "conv",
            "s1_conv_a",
            "s1_conv_b",
            "s1_add",
            "s2_conv_a",
            "s2_conv_b",
            "s2_shortcut",
            "s2_add",
            "s3_conv_a",
            "s3_conv_b",
            "s3_shortcut",
            "s3_add",
            "avgpool",
            "fc",
            "softmax",
        ];
        for (model, layers) in [("kws_dscnn", &kws[..]), ("ic_resnet8", &resnet[..])] {
            for name in layers {
                assert!(layer(model, name).is_some(), "{model} {name}");
            }
            assert!(layer(model, "reshape").is_none());
            assert!(whole_network(model).is_some(), "{model}");
            assert!(tflm_whole_stack(model).is_some(), "{model}");
        }
        assert!(tflm_whole_stack("kws_dscnn")
            .and_then(|s| s.arena_m4f)
            .is_some());
        let arenas: Vec<_> = tflm_arenas().iter().map(|a| a.model.as_str()).collect();
        assert_eq!(
            arenas,
            [
                "kws_dscnn_int8",
                "ic_resnet8_int8",
                "vww_mobilenet_int8",
                "ad_autoencoder_int8",
                "sww_int8"
            ]
        );
        for a in tflm_arenas() {
            assert_eq!(a.head + a.tail, a.total, "{}", a.model);
        }
    }
}
