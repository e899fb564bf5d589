"""The CPU compatibility layer (harness/run/inject/cpu_compat*.py), exercised in a separate process it patches."""

import json
import subprocess
import sys
import textwrap

import pytest

from harness.run.probe_workspace import INJECT_DIR

CHECKS = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, sys.argv[1])
    if len(sys.argv) > 2:
        sys.path.insert(0, sys.argv[2])  # a folder holding a "real" flash_attn_interface
    import torch
    import torch.nn.functional as F
    import cpu_compat
    import cpu_compat_flash
    import cpu_compat_usage

    cpu_compat.install()
    out = {}
    d = torch.device("cuda", 1)
    x = torch.zeros(2, device="cuda:0").cuda().to("cuda")
    m = torch.nn.Linear(2, 2).cuda().to(torch.device("cuda"))
    out["devices"] = [str(d), isinstance(d, torch.device), str(x.device), str(next(m.parameters()).device),
                      str(torch.ones(1).to(0).device), str(x.new_zeros(1, device="cuda").device)]
    torch.cuda.synchronize(); torch.cuda.set_device(d); torch.cuda.empty_cache()
    out["cuda_api"] = [torch.cuda.is_available(), torch.cuda.device_count(), torch.cuda.max_memory_allocated()]
    import flash_attn_interface
    out["real_module_used"] = not getattr(flash_attn_interface, "__cpu_compat_standin__", False)
    if not out["real_module_used"]:
        from flash_attn_interface import flash_attn_func, flash_attn_varlen_func
        torch.manual_seed(0)
        q, k, v = torch.randn(2, 9, 4, 8), torch.randn(2, 9, 2, 8), torch.randn(2, 9, 2, 8)
        ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             is_causal=True, enable_gqa=True).transpose(1, 2)
        out["gqa_diff"] = float((flash_attn_func(q, k, v, causal=True) - ref).abs().max())
        last = cpu_compat_flash._attend(q[:, -1:], k, v, causal=True)
        out["decode_diff"] = float((last - ref[:, -1:]).abs().max())
        cu = torch.tensor([0, 4, 9], dtype=torch.int32)
        packed = flash_attn_varlen_func(q[0], k[0], v[0], cu, cu, 5, 5, causal=True)
        parts = torch.cat([flash_attn_func(q[:1, a:b], k[:1, a:b], v[:1, a:b], causal=True)[0]
                           for a, b in ((0, 4), (4, 9))])
        out["varlen_diff"] = float((packed - parts).abs().max())
        import flash_attn
        from flash_attn.flash_attn_interface import flash_attn_func as fa2
        y, lse = flash_attn_func(q, k, v, causal=True)
        out["fa3_pair"] = [list(y.shape), list(lse.shape), float((y - ref).abs().max())]
        out["fa2_diff"] = float((fa2(q, k, v, 0.0, causal=True) - ref).abs().max())
    import torch.distributed as dist
    dist.init_process_group(backend="nccl", device_id=d)
    t = torch.ones(3, device="cuda")
    dist.all_reduce(t)
    out["dist"] = [dist.get_backend(), dist.get_world_size(), t.tolist()]
    dist.destroy_process_group()
    import subprocess
    out["nvidia_smi_rc"] = subprocess.run(["nvidia-smi"], capture_output=True).returncode
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        out["autocast_dtype"] = str(m(torch.randn(1, 2)).dtype)
    with torch.inference_mode():
        table = torch.ones(2)
    w = torch.ones(2, requires_grad=True)
    (w * table).sum().backward()
    out["inference_then_backward"] = bool(w.grad is not None)
    out["used"] = cpu_compat_usage.USED
    print(json.dumps(out))
""")


def _run(tmp_path, real_module: bool = False) -> dict:
    script = tmp_path / "checks.py"
    script.write_text(CHECKS)
    argv = [sys.executable, str(script), str(INJECT_DIR)]
    if real_module:
        real = tmp_path / "real"
        real.mkdir()
        (real / "flash_attn_interface.py").write_text("def flash_attn_func(*a, **k):\n    raise NotImplementedError\n")
        argv.append(str(real))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
                               "TORCHDYNAMO_DISABLE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def checks(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("compat"))


def test_cuda_devices_are_the_cpu(checks):
    """torch.device("cuda", i), .cuda(), .to("cuda"/0), Module.to and new_* all land on the CPU device."""
    assert checks["devices"] == ["cpu", True, "cpu", "cpu", "cpu", "cpu"]


def test_cuda_api_reports_one_device(checks):
    """is_available is True, one device, and synchronize/set_device/empty_cache return without error."""
    assert checks["cuda_api"] == [True, 1, 0]


def test_fa3_standin_matches_sdpa_with_grouped_kv_heads(checks):
    """flash_attn_func on (B, T, H, D) with fewer KV heads equals causal SDPA with GQA."""
    assert checks["gqa_diff"] < 1e-5


def test_fa2_standin_takes_dropout_positionally(checks):
    """flash_attn.flash_attn_interface.flash_attn_func (FA2 argument order) gives the same attention."""
    assert checks["fa2_diff"] < 1e-5


def test_fa3_output_also_unpacks_as_out_and_lse(checks):
    """`y, lse = flash_attn_func(...)` (FA3's early API) gives the (B, T, H, D) output and a (B, H, T) lse."""
    assert checks["fa3_pair"][:2] == [[2, 9, 4, 8], [2, 4, 9]]
    assert checks["fa3_pair"][2] < 1e-5


def test_causal_alignment_is_bottom_right_for_short_queries(checks):
    """One query against all keys (decode) sees every key, like the last row of full causal attention."""
    assert checks["decode_diff"] < 1e-5


def test_varlen_standin_keeps_sequences_apart(checks):
    """flash_attn_varlen_func equals attention run on each cu_seqlens segment alone."""
    assert checks["varlen_diff"] < 1e-5


def test_nccl_becomes_a_one_process_gloo_group(checks):
    """init_process_group("nccl", device_id=...) with no rendezvous gives a working gloo group of one."""
    assert checks["dist"] == ["gloo", 1, [1.0, 1.0, 1.0]]


def test_nvidia_smi_runs_the_stand_in(checks):
    """nvidia-smi run through subprocess exits 0."""
    assert checks["nvidia_smi_rc"] == 0


def test_cuda_autocast_is_cpu_autocast_with_its_dtype(checks):
    """autocast("cuda", bfloat16) runs a Linear in bfloat16 on the CPU, as the GPU run would."""
    assert checks["autocast_dtype"] == "torch.bfloat16"


def test_inference_mode_tensors_can_be_trained_on_later(checks):
    """A table cached under torch.inference_mode can be used in a later backward (it is a no_grad tensor)."""
    assert checks["inference_then_backward"] is True


def test_stand_ins_reached_are_reported(checks):
    """Each stand-in the code reached is listed once, in first-use order."""
    used = checks["used"]
    assert len(used) == len(set(used))
    assert {"cuda_device", "cuda_available", "cuda_synchronize", "flash_attn_module", "flash_attn_standin",
            "nccl_to_gloo", "single_process_group", "nvidia_smi", "autocast_cuda_to_cpu"} <= set(used)


def test_an_importable_real_module_wins_over_the_standin(tmp_path):
    """When a real flash_attn_interface is importable, the stand-in is not used."""
    assert _run(tmp_path, real_module=True)["real_module_used"] is True
