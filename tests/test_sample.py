"""sample.py: deterministic sampling, streaming, KV cache, end-of-text, HF GPT-2 export and reload
(tokenizer.json read by transformers and by --hf, bias-free models, the offline error)."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

import hf_testing
import sample
import train
from minigrad.training.checkpoint import CheckpointError


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny GPT-2-layout model (bias, learned positions, tied) trained a few steps with BPE."""
    shared = os.environ.get("MINIGRAD_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data"
    text = Path(shared) / "tinyshakespeare.txt"      # as conftest's shared_data (module scope here)
    if not text.is_file():
        pytest.skip(f"{text} not found")
    tmp = tmp_path_factory.mktemp("sample")
    small = tmp / "small.txt"
    small.write_text(text.read_text(encoding="utf-8")[:60_000], encoding="utf-8")
    train.main([f"--data={small}", f"--out_dir={tmp / 'out'}", f"--data_cache={tmp / 'cache'}",
                "--tokenizer=bpe", "--vocab_size=320", "--n_layer=1", "--n_head=2", "--n_embd=32",
                "--block_size=16", "--batch_size=4", "--max_iters=6", "--eval_interval=3",
                "--eval_iters=2", "--bias=true", "--learning_rate=1e-2", "--sample_tokens=0",
                "--plot=false", "--progress=false"])
    return tmp / "out"


def _sample(*args):
    buf = io.StringIO()
    texts = sample.main(list(args), out=buf)
    return texts, buf.getvalue()


def test_fixed_seed_is_deterministic_and_seeds_differ(run_dir):
    args = [f"--out_dir={run_dir}", "--max_new_tokens=24", "--num_samples=2", "--prompt=ROMEO:"]
    a, _ = _sample(*args, "--seed=7")
    b, _ = _sample(*args, "--seed=7")
    c, _ = _sample(*args, "--seed=8")
    assert a == b and a != c and len(a) == 2 and a[0] != a[1]


def test_streamed_output_is_prompt_plus_sample(run_dir):
    texts, printed = _sample(f"--out_dir={run_dir}", "--max_new_tokens=20", "--prompt=To be",
                             "--which=last")
    assert printed == "To be" + texts[0] + "\n---------------\n"
    _, quiet = _sample(f"--out_dir={run_dir}", "--max_new_tokens=20", "--prompt=To be",
                       "--which=last", "--stream=false")
    assert quiet == printed


def test_kv_cache_matches_no_cache_and_prompt_file(run_dir, tmp_path):
    prompt = tmp_path / "p.txt"
    prompt.write_text("First Citizen:\n")
    common = [f"--ckpt={run_dir / 'ckpt_last.safetensors'}", f"--prompt=FILE:{prompt}",
              "--max_new_tokens=30", "--temperature=0"]
    with_cache, _ = _sample(*common, "--use_cache=true")
    without, _ = _sample(*common, "--use_cache=false")
    assert with_cache == without


def test_stops_at_end_of_text(run_dir, monkeypatch):
    from minigrad.models.gpt import GPT
    model, tok = sample.load_model(sample.SampleConfig(out_dir=str(run_dir)), "cpu", "float32")
    a, b = tok.encode("ab")[0], tok.encode(" c")[0]

    def fake_stream(self, idx, n, **kw):
        assert kw["eos_token"] == tok.eot_token
        yield from [a, b, tok.eot_token, a]
    monkeypatch.setattr(GPT, "generate_stream", fake_stream)
    texts, _ = _sample(f"--out_dir={run_dir}")
    assert texts == [tok.decode([a, b])]


def test_hf_export_and_reload_give_the_same_samples(run_dir, tmp_path):
    hf = tmp_path / "hf"
    _sample(f"--out_dir={run_dir}", f"--export_hf={hf}")
    assert {"model.safetensors", "config.json", "minigrad_tokenizer.json", "vocab.json",
            "merges.txt", "tokenizer.json", "tokenizer_config.json"} <= {p.name for p in hf.iterdir()}
    assert json.loads((hf / "config.json").read_text())["model_type"] == "gpt2"
    args = ["--max_new_tokens=20", "--prompt=KING:", "--seed=3"]
    ours, _ = _sample(f"--out_dir={run_dir}", *args)
    back, _ = _sample(f"--hf={hf}", *args)
    assert ours == back
    st = pytest.importorskip("safetensors.numpy")
    keys = set(st.load_file(str(hf / "model.safetensors")))
    assert "h.0.attn.c_attn.weight" in keys and "wte.weight" in keys
    # transformers' AutoTokenizer reads the export's tokenizer.json and gives our ids
    _, tok = sample.load_model(sample.SampleConfig(out_dir=str(run_dir)), "cpu", "float32")
    auto = hf_testing.transformers().AutoTokenizer.from_pretrained(str(hf))
    lines = (run_dir.parent / "small.txt").read_text(encoding="utf-8").splitlines()[:300]
    assert all(auto(x, add_special_tokens=False)["input_ids"] == tok.encode(x) for x in lines)
    assert auto.eos_token_id == tok.eot_token


def test_hf_reads_the_exports_tokenizer_json(run_dir, tmp_path):
    """With only tokenizer.json beside the weights (no minigrad_tokenizer.json, no vocab.json /
    merges.txt), --hf uses it: our split pattern, the same samples."""
    hf = tmp_path / "hf"
    _sample(f"--out_dir={run_dir}", f"--export_hf={hf}")
    for name in ("minigrad_tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        (hf / name).unlink()
    args = ["--max_new_tokens=20", "--prompt=KING RICHARD: 1918 it's", "--seed=4"]
    ours, _ = _sample(f"--out_dir={run_dir}", *args)
    back, _ = _sample(f"--hf={hf}", *args)
    assert ours == back
    model, tok = sample.load_model(sample.SampleConfig(hf=str(hf)), "cpu", "float32")
    _, own = sample.load_model(sample.SampleConfig(out_dir=str(run_dir)), "cpu", "float32")
    assert (tok.vocab, tok.merges, tok.pattern, tok.special_tokens) == \
        (own.vocab, own.merges, own.pattern, own.special_tokens)


def test_hf_without_a_tokenizer_names_sample_py_gpt2_dir(run_dir, tmp_path, monkeypatch, shared_data):
    import urllib.error
    import urllib.request
    from minigrad.training.data import DataError
    hf = tmp_path / "hf"
    _sample(f"--out_dir={run_dir}", f"--export_hf={hf}")
    for name in ("minigrad_tokenizer.json", "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json"):
        (hf / name).unlink()

    def offline(*a, **k):
        raise urllib.error.URLError("no network here")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    monkeypatch.chdir(tmp_path)                         # GPT-2's files would be cached in ./data/gpt2
    with pytest.raises(DataError) as err:
        _sample(f"--hf={hf}", "--max_new_tokens=2")
    text = str(err.value)
    assert "give sample.py --gpt2_dir=DIR" in text and "train.py" not in text and "\n" not in text
    assert f"{hf} has no tokenizer" in text
    # GPT-2's files from --gpt2_dir: a tokenizer of another size than the model is refused
    with pytest.raises(ValueError, match=r"has 50257 tokens but the model's vocabulary has 320"):
        _sample(f"--hf={hf}", f"--gpt2_dir={shared_data / 'gpt2'}", "--max_new_tokens=2")


def test_bias_free_char_model_exports_and_samples_the_same(run_dir, tmp_path):
    """train.py's default model has no biases (nanoGPT's bias=False): the export writes zero
    biases and records it; --hf samples the same text; transformers reads the char tokenizer."""
    out = tmp_path / "o"
    train.main([f"--data={run_dir.parent / 'small.txt'}", f"--out_dir={out}", f"--data_cache={tmp_path / 'c'}",
                "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8", "--batch_size=2",
                "--max_iters=2", "--eval_iters=1", "--sample_tokens=0", "--plot=false", "--progress=false"])
    hf = tmp_path / "hf"
    _sample(f"--out_dir={out}", f"--export_hf={hf}")
    config = json.loads((hf / "config.json").read_text())
    assert config["minigrad"] == {"bias": False, "qkv_bias": False}
    assert not (hf / "vocab.json").exists()             # a char tokenizer has no BPE files
    args = ["--max_new_tokens=30", "--prompt=ROMEO:", "--seed=5"]
    ours, _ = _sample(f"--out_dir={out}", *args)
    (hf / "minigrad_tokenizer.json").unlink()           # the char form of tokenizer.json is read too
    back, _ = _sample(f"--hf={hf}", *args)
    assert ours == back
    model, tok = sample.load_model(sample.SampleConfig(hf=str(hf)), "cpu", "float32")
    assert model.config.bias is False
    auto = hf_testing.transformers().AutoTokenizer.from_pretrained(str(hf))
    text = "ROMEO:\nWhat, ho! apothecary!\n"
    assert auto(text, add_special_tokens=False)["input_ids"] == tok.encode(text)
    assert auto.decode(tok.encode(text)) == text


def test_export_refuses_what_gpt2_cannot_express(tmp_path, run_dir):
    train.main([f"--data={run_dir.parent / 'small.txt'}", f"--out_dir={tmp_path / 'o'}",
                f"--data_cache={tmp_path / 'c'}", "--n_layer=1", "--n_head=2", "--n_embd=16",
                "--block_size=8", "--batch_size=2", "--max_iters=1", "--eval_iters=1",
                "--norm=rmsnorm", "--sample_tokens=0", "--plot=false", "--progress=false"])
    with pytest.raises(ValueError, match="norm='rmsnorm'"):
        _sample(f"--out_dir={tmp_path / 'o'}", f"--export_hf={tmp_path / 'hf'}")


def test_bad_checkpoint_and_settings_errors(run_dir, tmp_path):
    bad = tmp_path / "ckpt_best.safetensors"
    bad.write_bytes((run_dir / "ckpt_best.safetensors").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="ckpt_best.safetensors: "):
        _sample(f"--ckpt={bad}")
    with pytest.raises(ValueError, match="did you mean --top_k"):
        _sample(f"--out_dir={run_dir}", "--topk=3")
