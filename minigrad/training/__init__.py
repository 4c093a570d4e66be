"""minigrad.training: the run-time machinery train.py and sample.py stand on.

    settings.py     TrainConfig/SampleConfig parsing (--name=value, presets) and one rule per setting
    presets.py      the named presets (--preset=NAME)
    data.py         text -> documents -> train/val split -> tokenizer -> cached token memmaps -> batches
    download.py     pinned, checked, atomic downloads (Tiny Shakespeare, TinyStories, GPT-2's files)
    checkpoint.py   the checkpoint file (atomic, checksummed) and a run's saved state
    run_dir.py      the run folder: checked before work, cleaned after a crash, logs and plots;
                    start_run, train.py's first step (settings, run folder, a resume's checkpoint)
    stops.py        Ctrl-C and NaN stops that leave a checkpoint you can trust
    loss_readback.py  training losses read from the device a batch of steps at a time
    progress.py     the progress line
    distributed.py  data-parallel training on torch.distributed (torchrun)

None of it is the engine (minigrad's Tensor, autograd, nn, optim) or the model (models/gpt.py),
and neither imports it: this is what a training *run* needs around them.
"""
