"""kernels/adamw.py against torch.optim.AdamW over several steps with the same gradients."""
import pytest
import torch

from kernel_testing import DEVICE, gpu  # first: it sets up the interpreter
from minigrad.kernels import adamw as K

# Per-dtype tolerances (atol, rtol) for parameters/state after STEPS steps. float64 is looser
# than its precision because the hyper-parameters reach the kernel as float32 scalars.
TOL = {
    torch.float64: (1e-7, 1e-7),
    torch.float32: (2e-6, 2e-6),
}
STEPS = 4
HP = dict(lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)


def _grads(shape, dtype, steps=STEPS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).to(DEVICE, dtype) for _ in range(steps)]


def _torch_run(p0, grads):
    """torch.optim.AdamW (single-tensor path) on a copy of p0; returns (param, exp_avg, exp_avg_sq)."""
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], foreach=False, **HP)
    for g in grads:
        p.grad = g.to(p.dtype)
        opt.step()
    st = opt.state[p]
    return p.detach(), st["exp_avg"], st["exp_avg_sq"]


def _our_step(p, g, m, v, step, master=None):
    K.adamw_step_(p, g, m, v, HP["lr"], HP["betas"][0], HP["betas"][1], HP["eps"],
                  HP["weight_decay"], step, master=master)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1,), (3, 5), (1000,), (2, 1500)])   # tails of BLOCK = 1024
def test_matches_torch(shape, dtype):
    torch.manual_seed(0)
    p0 = torch.randn(shape, device=DEVICE, dtype=dtype)
    grads = _grads(shape, dtype)
    p_ref, m_ref, v_ref = _torch_run(p0, grads)
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for step, g in enumerate(grads, start=1):
        _our_step(p, g, m, v, step)
    atol, rtol = TOL[dtype]
    torch.testing.assert_close(m, m_ref, atol=atol, rtol=rtol)
    torch.testing.assert_close(v, v_ref, atol=atol, rtol=rtol)
    torch.testing.assert_close(p, p_ref, atol=atol, rtol=rtol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_master_weights(dtype):
    """16-bit param with float32 master: master follows torch on float32, param = round(master)."""
    torch.manual_seed(1)
    master0 = torch.randn(700, device=DEVICE)
    grads = _grads(700, dtype, seed=1)                       # 16-bit gradients
    p_ref, m_ref, v_ref = _torch_run(master0, [g.float() for g in grads])
    master = master0.clone()
    p = master0.to(dtype)
    m, v = torch.zeros_like(master), torch.zeros_like(master)
    for step, g in enumerate(grads, start=1):
        _our_step(p, g, m, v, step, master=master)
    torch.testing.assert_close(master, p_ref, atol=2e-6, rtol=2e-6)
    torch.testing.assert_close(v, v_ref, atol=2e-6, rtol=2e-6)
    if torch.cuda.is_available():
        assert torch.equal(p, master.to(dtype))              # round-to-nearest-even copy
    else:   # the interpreter's float32 -> bfloat16 cast truncates: allow one 16-bit ulp
        ulp = torch.finfo(dtype).eps * master.abs().clamp_min(torch.finfo(dtype).tiny)
        assert ((p.float() - master).abs() <= ulp).all()


def test_16bit_param_without_master():
    """bf16 param, no master: every step reads the bf16 value, updates in float32 and rounds
    back to bf16. The reference is torch's AdamW with its param rounded to bf16 after every
    step, so the only freedom is that rounding: one bf16 ulp per step (the interpreter's cast
    may truncate where a GPU rounds to nearest). Weights of ~0.1 make each step (~lr) several
    ulps wide, so a kernel that skipped or lost a step cannot pass (a fixed 3e-2 bound could)."""
    torch.manual_seed(2)
    p0 = (torch.randn(300, device=DEVICE) * 0.1).to(torch.bfloat16).float()   # exact in bf16
    grads = _grads(300, torch.float32, seed=2)
    ref = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([ref], foreach=False, **HP)
    for g in grads:
        ref.grad = g
        opt.step()
        with torch.no_grad():
            ref.copy_(ref.to(torch.bfloat16).float())
    p = p0.to(torch.bfloat16)
    m, v = torch.zeros_like(p0), torch.zeros_like(p0)
    for step, g in enumerate(grads, start=1):
        _our_step(p, g, m, v, step)
    ref = ref.detach()
    ulp = torch.finfo(torch.bfloat16).eps * ref.abs().clamp_min(torch.finfo(torch.bfloat16).tiny)
    err = (p.float() - ref).abs()
    assert (err <= STEPS * ulp).all(), f"off by up to {(err / ulp).max().item():.1f} bf16 ulps"


def test_multi_tensor_matches_single():
    torch.manual_seed(3)
    shapes = [(5,), (3, 700), (1,), (2100,), (0,)]
    dtypes = [torch.float32, torch.float32, torch.bfloat16, torch.float32, torch.float32]
    params, masters, ms, vs, grads = [], [], [], [], []
    for i, (shape, dtype) in enumerate(zip(shapes, dtypes)):
        master = torch.randn(shape, device=DEVICE)
        params.append(master.to(dtype))
        masters.append(master if dtype != torch.float32 else None)
        ms.append(torch.zeros(shape, device=DEVICE))
        vs.append(torch.zeros(shape, device=DEVICE))
        grads.append(_grads(shape, dtype, steps=1, seed=i)[0])
    # the same updates one tensor at a time
    expected = []
    for p, mst, m, v, g in zip(params, masters, ms, vs, grads):
        p2, m2, v2 = p.clone(), m.clone(), v.clone()
        mst2 = None if mst is None else mst.clone()
        for step in (1, 2):
            _our_step(p2, g, m2, v2, step, master=mst2)
        expected.append((p2, m2, v2, mst2))
    for step in (1, 2):
        K.adamw_step_multi_(params, grads, ms, vs, HP["lr"], HP["betas"][0], HP["betas"][1],
                            HP["eps"], HP["weight_decay"], step, masters=masters,
                            multi_chunk=2 * K.BLOCK)           # 2100 elements -> 2 chunks
    for (p2, m2, v2, mst2), p, m, v, mst in zip(expected, params, ms, vs, masters):
        assert torch.equal(p, p2) and torch.equal(m, m2) and torch.equal(v, v2)
        if mst is not None:
            assert torch.equal(mst, mst2)


def test_errors():
    p = torch.zeros(4, device=DEVICE)
    with pytest.raises(ValueError):
        _our_step(p, torch.zeros(5, device=DEVICE), torch.zeros(4, device=DEVICE),
                  torch.zeros(4, device=DEVICE), 1)
    with pytest.raises(ValueError):
        _our_step(p, p.clone(), p.clone(), p.clone(), 0)                     # step counts from 1
    with pytest.raises(TypeError):
        _our_step(p.to(torch.bfloat16), p.clone(), p.to(torch.bfloat16), p.clone(), 1)
    with pytest.raises(ValueError):
        q = torch.zeros(4, 2, device=DEVICE).t()
        _our_step(q, q.clone(), torch.zeros(2, 4, device=DEVICE), torch.zeros(2, 4, device=DEVICE), 1)
    with pytest.raises(ValueError):
        K.adamw_step_multi_([p], [], [p], [p], 1e-3, 0.9, 0.99, 1e-8, 0.0, 1)


@gpu
def test_gpu_realistic():
    torch.manual_seed(0)
    p0 = torch.randn(50304 * 768, device="cuda")
    grads = [torch.randn_like(p0) for _ in range(3)]
    p_ref, m_ref, v_ref = _torch_run(p0, grads)
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for step, g in enumerate(grads, start=1):
        _our_step(p, g, m, v, step)
    torch.testing.assert_close(p, p_ref, atol=1e-5, rtol=1e-5)
