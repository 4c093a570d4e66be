"""minigrad/training/pretrained.py: one loader (what train.py's --init_from calls, and sample.py
--hf) for a Hugging Face GPT-2 folder (a tiny GPT-2 saved here by transformers' save_pretrained:
no download) and for a minigrad checkpoint written by train.main; the tokenizer found beside the
weights; conflicts and bad input as one-line errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import hf_testing
import minigrad
import train
from minigrad.models import GPT, GPTConfig
from minigrad.models.hf_export import HFFormatError
from minigrad.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from minigrad.training.data import CharTokenizer
from minigrad.training.pretrained import finetune_config, load_pretrained

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _save_hf_gpt2(folder: Path, shared: Path, with_tokenizer: bool = True):
    """A tiny GPT-2 (2 layers, 2 heads, 32 dims, 64 positions, GPT-2's 50257 tokens) with every
    parameter perturbed (biases too), saved by transformers; GPT-2's tokenizer.json beside it as
    HF's `tokenizers` writes it. Returns the transformers model."""
    import torch
    tf = hf_testing.transformers()
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=64,
                                             vocab_size=50257, activation_function="gelu_new"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    model.eval().save_pretrained(str(folder))
    if with_tokenizer:
        hf_testing.save_hf_gpt2_tokenizer(shared / "gpt2", folder / "tokenizer.json")
    return model


def test_hf_gpt2_folder_saved_by_transformers(tmp_path, shared_data):
    import torch
    hf_model = _save_hf_gpt2(tmp_path, shared_data)
    assert (tmp_path / "model.safetensors").is_file()
    config, state, tok = pre = load_pretrained(tmp_path)
    assert pre.source == tmp_path / "model.safetensors"
    assert (config.n_layer, config.n_head, config.n_embd, config.block_size, config.vocab_size) == (2, 2, 32, 64, 50257)
    assert (config.bias, config.activation, config.norm, config.pos, config.tie_weights) == \
        (True, "gelu", "layernorm", "learned", True)
    assert all(isinstance(v, np.ndarray) for v in state.values())
    model = GPT(config, dtype="float32")
    model.load_state_dict(state)
    model.eval()
    ids = np.random.default_rng(0).integers(0, 50257, (2, 12))
    with torch.no_grad():
        theirs = hf_model(torch.tensor(ids)).logits.numpy()
    ours = model(minigrad.tensor(ids))[0].numpy()
    assert np.abs(ours).max() > 1
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=5e-5)
    # the tokenizer is GPT-2's, from the tokenizer.json HF wrote
    assert tok.encode("Hello world<|endoftext|>", allowed_special="all") == [15496, 995, 50256]
    # the .safetensors file itself works too (config.json beside it)
    again = load_pretrained(tmp_path / "model.safetensors")
    assert again.config == config and again.tokenizer.vocab == tok.vocab


def test_tokenizer_beside_the_weights_in_order(tmp_path, shared_data):
    _save_hf_gpt2(tmp_path, shared_data, with_tokenizer=False)
    assert load_pretrained(tmp_path, gpt2_fallback=False).tokenizer is None
    from_dir = load_pretrained(tmp_path, gpt2_dir=str(shared_data / "gpt2"))
    assert from_dir.tokenizer.encode("Hello world") == [15496, 995]
    for name in ("vocab.json", "merges.txt"):                   # vocab.json + merges.txt in the folder
        shutil.copy(shared_data / "gpt2" / name, tmp_path / name)
    assert load_pretrained(tmp_path, gpt2_fallback=False).tokenizer.eot_token == 50256
    # minigrad_tokenizer.json comes first; one of another size is refused in one line
    (tmp_path / "minigrad_tokenizer.json").write_text(json.dumps({"kind": "char", "chars": "abc"}))
    with pytest.raises(ValueError) as err:
        load_pretrained(tmp_path, name="--hf=X")
    assert str(err.value).startswith("--hf=X: the tokenizer from ") and "\n" not in str(err.value)
    assert "minigrad_tokenizer.json has 3 tokens but the model's vocabulary has 50257" in str(err.value)


def test_finetune_config_takes_the_shape_from_the_weights(tmp_path, shared_data):
    _save_hf_gpt2(tmp_path, shared_data)
    pre = load_pretrained(tmp_path)
    settings = dict(n_layer=2, n_head=4, n_embd=32, dropout=0.1, bias=False)
    cfg = finetune_config(pre, settings, given={"dropout", "n_layer"})      # n_head, bias not typed
    assert cfg == GPTConfig(**{**pre.config.to_dict(), "dropout": 0.1})
    assert finetune_config(pre, settings, given=set()) == pre.config
    for key, value, have in (("n_head", 4, 2), ("bias", False, True), ("block_size", 128, 64)):
        with pytest.raises(ValueError) as err:
            finetune_config(pre, {**settings, key: value}, given={key})
        text = str(err.value)
        assert text == (f"--{key}={value} conflicts with the pretrained model in {pre.source} "
                        f"({key}={have!r}); leave --{key} out: the model's shape comes from its weights"
                        + (" (a smaller block_size is allowed)" if key == "block_size" else ""))
    assert finetune_config(pre, {**settings, "block_size": 16}, given={"block_size"}).block_size == 16


@pytest.fixture
def trained(tmp_path, shared_data) -> tuple[Path, str]:
    """A minigrad checkpoint written by train.main: 2 iterations of a tiny char model on Tiny
    Shakespeare. Returns (out_dir, the text)."""
    text_file = shared_data / "tinyshakespeare.txt"
    out = tmp_path / "out"
    train.main([f"--data={text_file}", f"--out_dir={out}", f"--data_cache={tmp_path / 'cache'}",
                "--device=cpu", "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=8",
                "--batch_size=2", "--max_iters=2", "--eval_interval=1", "--eval_iters=1",
                "--sample_tokens=0", "--plot=false", "--progress=false"])
    return out, text_file.read_text(encoding="utf-8")


def test_minigrad_checkpoint_from_train(trained):
    out, text = trained
    chars = sorted(set(text))
    expected = GPTConfig(vocab_size=len(chars), n_layer=1, n_head=2, n_embd=16, block_size=8, dropout=0.0,
                         bias=False, qkv_bias=False, activation="gelu", norm="layernorm", pos="learned",
                         tie_weights=True, pad_vocab_multiple=1)
    for path, which, file in ((out, "best", "ckpt_best"), (out, "last", "ckpt_last"),
                              (out / "ckpt_last.safetensors", "best", "ckpt_last")):
        config, state, tok = pre = load_pretrained(path, which=which)
        assert pre.source == out / f"{file}.safetensors"
        assert config == expected
        assert isinstance(tok, CharTokenizer) and tok.chars == chars
        stored = safetensors_numpy.load_file(str(pre.source))            # the reference reader
        # the tied lm_head is stored once, as transformer.wte.weight, and comes back under both names
        assert set(state) == {k[len("model."):] for k in stored if k.startswith("model.")} | {"lm_head.weight"}
        assert state["lm_head.weight"] is state["transformer.wte.weight"]
        for name, arr in state.items():
            np.testing.assert_array_equal(arr, stored[f"model.{name}" if name != "lm_head.weight"
                                                     else "model.transformer.wte.weight"])
        GPT(config).load_state_dict(state)                               # it fits the model


def test_damaged_checkpoint_is_a_checkpoint_error(trained, tmp_path):
    out, _ = trained
    c = load_checkpoint(out / "ckpt_last.safetensors")
    tensors = dict(c.tensors)
    tensors["model.transformer.h.0.mlp.c_fc.weight"] = np.zeros((8, 16), np.float32)
    save_checkpoint(tmp_path / "bad.safetensors", tensors, c.meta)
    with pytest.raises(CheckpointError, match=r"^bad.safetensors: does not match the model configuration: "
                                              r"shape mismatch transformer.h.0.mlp.c_fc.weight"):
        load_pretrained(tmp_path / "bad.safetensors")


def test_bad_paths_and_files(tmp_path, shared_data):
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or folder"):
        load_pretrained(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"neither a Hugging Face GPT-2 folder .* nor a train.py out_dir"):
        load_pretrained(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"expected a folder or a .safetensors file"):
        load_pretrained(tmp_path / "notes.txt")
    hf = tmp_path / "hf"
    _save_hf_gpt2(hf, shared_data)
    good = (hf / "config.json").read_text()
    for content, message in (("[]", r"expected a JSON object of GPT2Config fields, got a list"),
                             ("{bad", r"not valid JSON \(Expecting property name"),
                             (json.dumps({**json.loads(good), "n_layer": 5}), r"n_layer=5 conflicts")):
        (hf / "config.json").write_text(content)
        with pytest.raises(HFFormatError) as err:
            load_pretrained(hf)
        assert str(err.value).startswith(f"{hf / 'config.json'}: ") and "\n" not in str(err.value)
        assert __import__("re").search(message, str(err.value)), str(err.value)
    (hf / "config.json").write_text(good)
    tensors = safetensors_numpy.load_file(str(hf / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("h.1.ln_2.weight"))
    tensors[key] = tensors[key].astype(np.int32)
    safetensors_numpy.save_file(tensors, str(hf / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(HFFormatError, match=rf"model.safetensors: '{key}' has dtype int32; expected floating"):
        load_pretrained(hf)
