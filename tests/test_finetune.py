"""train.py --init_from (fine-tuning from pretrained weights) and --tokenizer=PATH / --bpe_pattern
(issue 19, items 4 and 5).

- --init_from=PATH starts from a Hugging Face GPT-2 folder saved by transformers (no download) or
  from a minigrad checkpoint: the model's shape and tokenizer come from there, the first eval sees
  exactly the pretrained model (its loss computed independently by transformers), a smaller
  --block_size crops the position table, a conflicting shape setting is one line; resuming the
  fine-tuning run continues it exactly.
- --tokenizer=PATH uses a tokenizer saved by `python -m tokenizer train`; --bpe_pattern picks the
  split rule of a BPE trained by train.py.
"""
from __future__ import annotations

import math

import numpy as np

import train
from minigrad.tokenizer import BPETokenizer
from minigrad.tokenizer.patterns import resolve_pattern
from minigrad.training.checkpoint import load_checkpoint, model_state
from test_pretrained import _save_hf_gpt2
from test_train_faults import TINY, tiny_text

QUIET = ["--sample_tokens=0", "--plot=false", "--progress=false", "--eval_iters=2", "--batch_size=2"]


def _text(tmp_path, shared_data):
    p = tmp_path / "text.txt"
    p.write_text((shared_data / "tinyshakespeare.txt").read_text(encoding="utf-8")[:20_000], encoding="utf-8")
    return p


def test_init_from_a_gpt2_folder_saved_by_transformers(tmp_path, shared_data):
    import torch
    hf = tmp_path / "gpt2-tiny"
    hf_model = _save_hf_gpt2(hf, shared_data)
    text = _text(tmp_path, shared_data)
    s = train.main([f"--data={text}", f"--out_dir={tmp_path / 'out'}", f"--data_cache={tmp_path / 'c'}",
                    f"--init_from={hf}", "--block_size=32", "--max_iters=2", "--eval_interval=2",
                    "--learning_rate=1e-3", "--warmup_iters=0", *QUIET])
    cfg = s["config"]
    assert (cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["bias"], cfg["block_size"]) == (2, 2, 32, True, 32)
    # step 0: the pretrained model itself; its val loss on the first fixed val batch, by transformers
    ck = load_checkpoint(tmp_path / "out" / "ckpt_last.safetensors")
    assert "GPT-2" in ck.meta["tokenizer"] or '"kind": "bpe"' in ck.meta["tokenizer"]
    first = s["evals"][0]
    from minigrad.training.data import fixed_batches, prepare_data
    from minigrad.training.pretrained import load_pretrained
    pre = load_pretrained(hf)
    data = prepare_data(str(text), pre.tokenizer, cache_dir=tmp_path / "c", seed=cfg["seed"])
    batches = fixed_batches(data.val, 2, 2, 32, cfg["seed"] + 2, "val")
    with torch.no_grad():
        ref = np.mean([hf_model(torch.tensor(x), labels=None).logits.log_softmax(-1)
                       .gather(-1, torch.tensor(y)[..., None]).neg().mean().item() for x, y in batches])
    assert math.isclose(first["val_loss"], ref, rel_tol=1e-5), (first["val_loss"], ref)
    assert s["evals"][-1]["train_loss"] < first["train_loss"]                 # and it trains
    # wpe cropped to the new context, the rest of the weights where training left them
    assert model_state(ck)["transformer.wpe.weight"].shape == (32, 32)


def test_init_from_a_checkpoint_keeps_its_weights_and_tokenizer_and_resumes_exactly(tmp_path):
    text = tiny_text(tmp_path)
    base = [f"--data={text}", f"--data_cache={tmp_path / 'c'}", *TINY]
    train.main([*base, f"--out_dir={tmp_path / 'pre'}", "--max_iters=4", "--eval_interval=4"])
    pre_ck = load_checkpoint(tmp_path / "pre" / "ckpt_last.safetensors")
    # learning rate 0: the fine-tuning run's weights stay exactly the pretrained ones
    s = train.main([*base, f"--out_dir={tmp_path / 'ft0'}", f"--init_from={tmp_path / 'pre' / 'ckpt_last.safetensors'}",
                    "--max_iters=1",
                    "--eval_interval=1", "--learning_rate=0", "--min_lr=0", "--dropout=0.1"])
    ft0 = load_checkpoint(tmp_path / "ft0" / "ckpt_last.safetensors")
    for name, arr in model_state(pre_ck).items():
        np.testing.assert_array_equal(model_state(ft0)[name], arr)
    assert ft0.meta["tokenizer"] == pre_ck.meta["tokenizer"]
    assert s["config"]["dropout"] == 0.1                                     # free when fine-tuning
    # a fine-tuning run stopped and resumed equals the uninterrupted one (one lr schedule for both)
    full = train.main([*base, f"--out_dir={tmp_path / 'ft'}", f"--init_from={tmp_path / 'pre'}", "--max_iters=6",
                       "--eval_interval=3", "--lr_decay_iters=6"])
    train.main([*base, f"--out_dir={tmp_path / 'ft2'}", f"--init_from={tmp_path / 'pre'}", "--max_iters=3",
                "--eval_interval=3", "--lr_decay_iters=6"])
    resumed = train.main([f"--out_dir={tmp_path / 'ft2'}", f"--data_cache={tmp_path / 'c'}", "--resume",
                          "--max_iters=6"])
    assert [full["losses"][k] for k in (3, 4, 5)] == [resumed["losses"][k] for k in (3, 4, 5)]


def test_init_from_resume_is_resume(tmp_path):
    text = tiny_text(tmp_path)
    base = [f"--data={text}", f"--data_cache={tmp_path / 'c'}", f"--out_dir={tmp_path / 'o'}", *TINY]
    train.main([*base, "--max_iters=2", "--eval_interval=2"])
    s = train.main([*base, "--init_from=resume", "--max_iters=3"])
    assert s["iters"] == 3 and sorted(s["losses"]) == [2]


def test_a_tokenizer_saved_by_the_cli_can_be_named_by_path(tmp_path):
    text = tiny_text(tmp_path)
    tok = BPETokenizer.train([text.read_text()], 300, special_tokens=["<|endoftext|>"], verbose=False)
    tok.save(tmp_path / "mine.model")
    s = train.main([f"--data={text}", f"--data_cache={tmp_path / 'c'}", f"--out_dir={tmp_path / 'o'}", *TINY,
                    f"--tokenizer={tmp_path / 'mine.model'}", "--max_iters=1", "--eval_interval=1"])
    ck = load_checkpoint(tmp_path / "o" / "ckpt_last.safetensors")
    assert ck.meta["model_config"]["vocab_size"] == 300 and s["iters"] == 1
    from minigrad.training.data import tokenizer_from_json
    back = tokenizer_from_json(ck.meta["tokenizer"])
    assert back.encode_ordinary(text.read_text()[:500]) == tok.encode_ordinary(text.read_text()[:500])


def test_bpe_pattern_decides_how_train_py_splits_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("".join("In 1918 there were 12345 cats, and they've said: 'it's 99!'\n" for _ in range(200)),
                    encoding="utf-8")
    from minigrad.training.data import prepare_data
    toks = {p: prepare_data(str(text), "bpe", vocab_size=300, cache_dir=tmp_path / "c", bpe_pattern=p).tokenizer
            for p in ("gpt2", "gpt4")}
    assert toks["gpt2"].pattern == resolve_pattern("gpt2") and toks["gpt4"].pattern == resolve_pattern("gpt4")
    # gpt4 splits numbers into groups of at most 3 digits; gpt2 keeps " 12345" one chunk, which its
    # merges (learned on 200 copies) join into longer tokens than gpt4 can ever have
    longest = {p: max(len(t.token_bytes(i)) for i in t.encode_ordinary(" 12345")) for p, t in toks.items()}
    assert longest["gpt4"] <= 3 < longest["gpt2"], longest
