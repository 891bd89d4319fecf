//! The in-process all-MiniLM-L6-v2 against sentence-transformers' own vectors.
//!
//! The reference (`tests/data/minilm_reference.json`) was computed once with sentence-transformers
//! 6.2.0 from the reference checkpoint: 16 texts from short ops messages to one past the
//! 256-token limit, with unicode and odd whitespace. The model files come from
//! `bash scripts/fetch-model.sh` (run by `scripts/test.sh`); without them these tests fail.

use aiops_ai::{default_model_dir, Embedder, LocalEmbedder, LocalEmbedderOptions, LocalRuntime, MINILM_DIMENSIONS};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    sentences: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    serde_json::from_str(include_str!("../data/minilm_reference.json")).unwrap()
}

fn options() -> LocalEmbedderOptions {
    options_for(LocalRuntime::Auto)
}

fn options_for(runtime: LocalRuntime) -> LocalEmbedderOptions {
    let options = LocalEmbedderOptions { runtime, ..LocalEmbedderOptions::new(default_model_dir()) };
    assert!(
        options.files_present(),
        "the local model is not in {}: run `bash scripts/fetch-model.sh`",
        options.model_dir.display()
    );
    options
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

/// The engines this CPU runs: ONNX Runtime always, the native one with AVX512-FP16.
fn engines() -> Vec<LocalRuntime> {
    let engines: Vec<LocalRuntime> =
        [LocalRuntime::Onnx, LocalRuntime::Native].into_iter().filter(|r| r.available()).collect();
    if engines.len() < 2 {
        eprintln!("the native engine is not tested: this CPU has no AVX512-FP16");
    }
    engines
}

#[tokio::test]
async fn vectors_match_sentence_transformers_in_a_batch_and_one_by_one() {
    let reference = reference();
    for (runtime, sessions) in engines().into_iter().flat_map(|r| [(r, 1), (r, 2)]) {
        let options = LocalEmbedderOptions { sessions, cache_entries: 0, ..options_for(runtime) };
        let embedder = LocalEmbedder::load(&options).unwrap();
        assert_eq!(embedder.dimensions(), MINILM_DIMENSIONS);
        let batch = embedder.embed(&reference.sentences).await.unwrap();
        let mut worst = 1f32;
        for (i, (ours, theirs)) in batch.iter().zip(&reference.vectors).enumerate() {
            let similarity = cosine(ours, theirs);
            worst = worst.min(similarity);
            // Float32 weights give sentence-transformers' vectors up to rounding, and so do
            // half-precision products with float32 sums; int8 weights drift to about 0.998 and
            // fail here.
            assert!(
                similarity >= 0.99999,
                "{runtime:?}: sentence {i} ({:?}): cosine {similarity}",
                reference.sentences[i]
            );
            let norm: f32 = ours.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-4);
        }
        for (sentence, theirs) in reference.sentences.iter().zip(&reference.vectors).take(4) {
            let alone = embedder.embed(std::slice::from_ref(sentence)).await.unwrap().remove(0);
            assert!(cosine(&alone, theirs) >= 0.99999, "{runtime:?}: a batch's other texts must not change a vector");
        }
        eprintln!("{runtime:?}, {sessions} thread(s): lowest cosine {worst:.7}");
    }
}

#[tokio::test]
async fn repeats_come_from_the_cache_and_empty_or_huge_inputs_are_bounded() {
    let embedder =
        LocalEmbedder::load(&LocalEmbedderOptions { cache_entries: 2, max_input_chars: 200, ..options() }).unwrap();
    let texts = ["pool timed out", "disk full", "pool timed out"].map(String::from);
    let vectors = embedder.embed(&texts).await.unwrap();
    assert_eq!(vectors[0], vectors[2]);
    assert_eq!(embedder.cached_texts(), 2, "each distinct text is embedded and cached once");
    let again = embedder.embed(&texts[..1]).await.unwrap();
    assert_eq!(again[0], vectors[0]);
    embedder.embed(&["a third text".to_owned()]).await.unwrap();
    assert_eq!(embedder.cached_texts(), 2, "the cache is bounded");

    let empty = embedder.embed(&["   ".to_owned()]).await.unwrap();
    assert!(empty[0].iter().all(|v| *v == 0.0), "nothing to embed gives the zero vector");

    let huge = format!("{}{}", "database connection pool exhausted ".repeat(5), "x".repeat(1_000_000));
    let first_200: String = huge.chars().take(200).collect();
    let vectors = embedder.embed(&[huge, first_200]).await.unwrap();
    assert!(vectors[0] == vectors[1], "only the first max_input_chars characters count");
}

#[test]
fn missing_files_name_the_command_that_fetches_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
    for (runtime, file) in [(LocalRuntime::Onnx, "model.onnx"), (LocalRuntime::Native, "model.safetensors")] {
        if !runtime.available() {
            continue;
        }
        let options = LocalEmbedderOptions { runtime, ..LocalEmbedderOptions::new(dir.path()) };
        assert!(!options.files_present());
        let err = LocalEmbedder::load(&options).unwrap_err().to_string();
        assert!(err.contains(file) && err.contains("scripts/fetch-model.sh"), "{runtime:?}: {err}");
    }
}

#[test]
fn a_damaged_checkpoint_is_refused_with_its_name() {
    if !LocalRuntime::Native.available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = default_model_dir();
    std::fs::copy(model.join("tokenizer.json"), dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), b"not a checkpoint").unwrap();
    let options = LocalEmbedderOptions { runtime: LocalRuntime::Native, ..LocalEmbedderOptions::new(dir.path()) };
    let err = LocalEmbedder::load(&options).unwrap_err().to_string();
    assert!(err.contains("model.safetensors") && err.contains("not a safetensors file"), "{err}");
}
