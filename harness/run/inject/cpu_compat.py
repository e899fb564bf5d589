"""Opt-in CPU compatibility layer for the probed process: lets a script written for CUDA GPUs run on the CPU.

The probe enables it (plan key ``cpu_compat``) so that baseline-derived records, which assume an H100, run at tiny
scale on a CPU-only torch. The script's own checks see a CUDA device, while every tensor and module stays on the CPU:

* devices: ``torch.device("cuda"/"cuda:N"/("cuda", i))`` is a CPU device (``isinstance`` still works);
  ``device=`` of the tensor factories, ``Tensor.to/.cuda/.new_*``, ``Module.to/.cuda``, ``torch.load(map_location)``,
  ``torch.set_default_device`` and ``torch.Generator(device)`` map CUDA to the CPU;
* ``torch.cuda``: ``is_available`` -> True, one device; ``synchronize``, ``set_device``, ``empty_cache``, seeds,
  peak-memory statistics, streams and events are harmless stand-ins;
* ``torch.autocast("cuda", dtype)`` is the CPU's autocast with that dtype (disabled where the CPU cannot); eager code
  replaces ``torch.compile`` (the identity), so ``torch.inference_mode`` is ``no_grad`` (see ``_NoGrad``);
  ``torch.backends.cuda.enable_*_sdp`` and ``sdpa_kernel`` restrictions are no-ops;
* ``torch.distributed``: NCCL becomes gloo, a one-process group needs no rendezvous (an in-memory store); DDP drops
  its CUDA ``device_ids``;
* ``nvidia-smi`` run through ``subprocess``/``os.system`` finds a stand-in executable on PATH;
* ``flash_attn``, ``flash_attn.flash_attn_interface`` and ``flash_attn_interface`` (FlashAttention 2/3) are served
  by stand-ins built on ``scaled_dot_product_attention`` (``(B, T, H, D)`` layout, GQA by repeating KV heads,
  bottom-right causal alignment, sliding windows, softcap, variable-length batches), only when the real modules
  cannot be imported (a finder at the end of ``sys.meta_path``): cpu_compat_flash.py.

Each stand-in that the script actually reaches is reported once through the ``notify`` callback given to
``install`` (and recorded in cpu_compat_usage.USED), so the harness can say which findings came from a run under
this layer. The layer's modules are imported as top-level modules; nothing here imports harness/.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
import time
import types

from cpu_compat_flash import StandinFinder
from cpu_compat_usage import set_notify, used

FACTORIES = ("tensor", "as_tensor", "asarray", "zeros", "ones", "empty", "full", "arange", "range", "linspace",
             "logspace", "eye", "rand", "randn", "randint", "randperm", "normal", "zeros_like", "ones_like",
             "empty_like", "full_like", "rand_like", "randn_like", "randint_like", "empty_strided", "tril_indices",
             "triu_indices", "scalar_tensor", "sparse_coo_tensor", "bernoulli", "multinomial", "polar", "complex",
             "hann_window", "hamming_window", "kaiser_window", "from_file")
TENSOR_NEW = ("new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "new_empty_strided")


# -----------------------------------------------------------------------------
# Devices

def _is_cuda(dev) -> bool:
    if isinstance(dev, str):
        return dev.split(":", 1)[0].strip() == "cuda"
    if isinstance(dev, int) and not isinstance(dev, bool):
        return True  # a bare index names an accelerator
    return getattr(dev, "type", None) == "cuda"


def map_device(dev):
    """CUDA (string, index, or device) -> the CPU device; anything else unchanged."""
    if dev is not None and _is_cuda(dev):
        used("cuda_device")
        return _REAL["device"]("cpu")
    return dev


_REAL: dict[str, object] = {}


class _DeviceMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, cls._real)

    def __subclasscheck__(cls, sub) -> bool:
        return issubclass(sub, cls._real)


def _device_class(real):
    class device(metaclass=_DeviceMeta):  # noqa: N801 - stands in for torch.device
        """torch.device whose CUDA devices are the CPU."""

        _real = real

        def __new__(cls, *args, **kwargs):
            made = real(*args, **kwargs)
            return map_device(made) if made.type == "cuda" else made

    device.__module__ = "torch"
    device.__qualname__ = "device"
    return device


def _generator_class(real):
    class Generator(metaclass=_DeviceMeta):
        """torch.Generator whose CUDA devices are the CPU."""

        _real = real

        def __new__(cls, device="cpu", *args, **kwargs):
            return real(map_device(device), *args, **kwargs)

    Generator.__module__ = "torch"
    return Generator


def _map_kw(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if "device" in kwargs:
            kwargs["device"] = map_device(kwargs["device"])
        return fn(*args, **kwargs)

    wrapper.__wrapped_by_cpu_compat__ = True
    return wrapper


def _map_to_args(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Arguments of Tensor.to / Module.to with any CUDA device replaced by the CPU."""
    if args and (isinstance(args[0], str) or (isinstance(args[0], int) and not isinstance(args[0], bool))
                 or isinstance(args[0], _REAL["device"])):
        args = (map_device(args[0]),) + tuple(args[1:])
    if "device" in kwargs:
        kwargs["device"] = map_device(kwargs["device"])
    return args, kwargs


def _patch_devices(torch) -> None:
    _REAL["device"] = torch.device
    torch.device = _device_class(torch.device)
    torch.Generator = _generator_class(torch.Generator)
    for name in FACTORIES:
        fn = getattr(torch, name, None)
        if fn is not None and not getattr(fn, "__wrapped_by_cpu_compat__", False):
            setattr(torch, name, _map_kw(fn))
    T = torch.Tensor
    for name in TENSOR_NEW:
        if hasattr(T, name):
            setattr(T, name, _map_kw(getattr(T, name)))
    tensor_to = T.to

    def to(self, *args, **kwargs):
        args, kwargs = _map_to_args(args, kwargs)
        return tensor_to(self, *args, **kwargs)

    def cuda(self, device=None, non_blocking=False, memory_format=None):
        used("cuda_device")
        return self if memory_format is None else self.contiguous(memory_format=memory_format)

    def pin_memory(self, *args, **kwargs):
        used("pin_memory")
        return self

    T.to, T.cuda, T.pin_memory = to, cuda, pin_memory
    T.is_pinned = lambda self, *a, **k: False
    T.record_stream = lambda self, *a, **k: None
    M = torch.nn.Module
    module_to = M.to

    def module_to_cpu(self, *args, **kwargs):
        args, kwargs = _map_to_args(args, kwargs)
        return module_to(self, *args, **kwargs)

    def module_cuda(self, device=None):
        used("cuda_device")
        return self

    M.to, M.cuda = module_to_cpu, module_cuda
    if hasattr(M, "to_empty"):
        M.to_empty = _map_kw(M.to_empty)
    load = torch.load

    @functools.wraps(load)
    def torch_load(*args, **kwargs):
        loc = kwargs.get("map_location")
        if loc is not None and not callable(loc) and not isinstance(loc, dict):
            kwargs["map_location"] = map_device(loc)
        return load(*args, **kwargs)

    torch.load = torch_load
    set_default = torch.set_default_device
    torch.set_default_device = lambda device: set_default(map_device(device))


# -----------------------------------------------------------------------------
# torch.cuda

class _Event:
    """A CUDA event measured with the wall clock."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False) -> None:
        self.t = None

    def record(self, stream=None) -> None:
        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def wait(self, stream=None) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_time(self, end: "_Event") -> float:
        return ((end.t or 0.0) - (self.t or 0.0)) * 1000.0


class _Stream:
    """A CUDA stream that runs everything in order on the CPU."""

    def __init__(self, device=None, priority: int = 0, **kwargs) -> None:
        self.device = _REAL["device"]("cpu")

    def synchronize(self) -> None:
        pass

    def wait_stream(self, other) -> None:
        pass

    def wait_event(self, event) -> None:
        pass

    def record_event(self, event=None):
        event = event or _Event()
        event.record()
        return event

    def query(self) -> bool:
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _props():
    return types.SimpleNamespace(name="CPU (probe CUDA stand-in)", major=9, minor=0, total_memory=80 * 2 ** 30,
                                 multi_processor_count=132, is_integrated=False, is_multi_gpu_board=False,
                                 L2_cache_size=50 * 2 ** 20)


def _noop(name: str, result=None):
    def fn(*args, **kwargs):
        used(name)
        return result

    fn.__name__ = name
    return fn


def _patch_cuda(torch) -> None:
    cuda = torch.cuda

    def is_available() -> bool:
        used("cuda_available")
        return True

    stubs = {
        "is_available": is_available, "device_count": lambda: 1, "current_device": lambda: 0,
        "is_initialized": lambda: True, "init": lambda: None, "set_device": _noop("cuda_set_device"),
        "synchronize": _noop("cuda_synchronize"), "empty_cache": _noop("cuda_empty_cache"),
        "manual_seed": _noop("cuda_manual_seed"), "manual_seed_all": _noop("cuda_manual_seed"),
        "seed": _noop("cuda_manual_seed"), "seed_all": _noop("cuda_manual_seed"),
        "max_memory_allocated": _noop("cuda_memory_stats", 0), "max_memory_reserved": _noop("cuda_memory_stats", 0),
        "memory_allocated": _noop("cuda_memory_stats", 0), "memory_reserved": _noop("cuda_memory_stats", 0),
        "reset_peak_memory_stats": _noop("cuda_memory_stats"), "reset_max_memory_allocated":
            _noop("cuda_memory_stats"), "reset_accumulated_memory_stats": _noop("cuda_memory_stats"),
        "memory_summary": _noop("cuda_memory_stats", ""), "memory_stats": _noop("cuda_memory_stats", {}),
        "mem_get_info": lambda *a, **k: (80 * 2 ** 30, 80 * 2 ** 30),
        "get_device_name": lambda *a, **k: _props().name, "get_device_properties": lambda *a, **k: _props(),
        "get_device_capability": lambda *a, **k: (9, 0), "is_bf16_supported": lambda *a, **k: True,
        "get_rng_state": lambda *a, **k: torch.get_rng_state(), "get_rng_state_all": lambda: [torch.get_rng_state()],
        "set_rng_state": lambda *a, **k: None, "set_rng_state_all": lambda *a, **k: None,
        "Event": _Event, "Stream": _Stream, "current_stream": lambda *a, **k: _Stream(),
        "default_stream": lambda *a, **k: _Stream(), "stream": lambda s=None: contextlib.nullcontext(s),
        "device": lambda *a, **k: contextlib.nullcontext(), "utilization": lambda *a, **k: 0,
    }
    for name, fn in stubs.items():
        setattr(cuda, name, fn)
    try:
        import torch.cuda.amp as amp

        amp.autocast = lambda *a, **k: _cpu_autocast(*a, **k)
        amp.GradScaler = lambda *a, **k: torch.amp.GradScaler("cpu", enabled=False)
    except Exception:  # noqa: BLE001 - older/newer layouts: nothing to replace
        pass
    for mod in (torch.backends.cuda,):
        for name in ("enable_flash_sdp", "enable_mem_efficient_sdp", "enable_math_sdp", "enable_cudnn_sdp"):
            if hasattr(mod, name):
                setattr(mod, name, _noop("sdp_backend_flags"))
        if hasattr(mod, "sdp_kernel"):
            mod.sdp_kernel = lambda *a, **k: (used("sdp_backend_flags"), contextlib.nullcontext())[1]
    try:
        import torch.nn.attention as attention

        real = attention.sdpa_kernel

        def sdpa_kernel(*args, **kwargs):
            used("sdp_backend_flags")
            return contextlib.nullcontext()

        sdpa_kernel.__wrapped__ = getattr(real, "__wrapped__", real)
        attention.sdpa_kernel = sdpa_kernel
    except Exception:  # noqa: BLE001
        pass


def _disabled_autocast():
    used("autocast_cuda_disabled")
    return _REAL["autocast"]("cpu", enabled=False)


def _cpu_autocast(dtype=None, enabled: bool = True, cache_enabled=None):
    """autocast("cuda", dtype) as the CPU's autocast with the same dtype: the same mixed precision as on the GPU
    (scripts that leave fp32 x bf16 products to autocast run); disabled when the CPU cannot autocast to it."""
    import torch

    used("autocast_cuda_to_cpu")
    try:
        return _REAL["autocast"]("cpu", dtype=dtype or torch.bfloat16, enabled=enabled, cache_enabled=cache_enabled)
    except Exception:  # noqa: BLE001 - a dtype the CPU autocast refuses
        return _disabled_autocast()


class _NoGrad:
    """torch.inference_mode as torch.no_grad: same values, but tensors made inside stay usable by autograd later
    (eager code that caches, e.g., rotary tables under inference mode and trains on them later fails; compiled code
    did not)."""

    def __new__(cls, mode=True):
        import torch

        used("inference_mode_as_no_grad")
        if callable(mode):  # bare @torch.inference_mode
            return torch.no_grad()(mode)
        return torch.no_grad() if mode else _Unchanged()


class _Unchanged(contextlib.ContextDecorator):
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


def _patch_autocast(torch) -> None:
    real = torch.autocast
    _REAL["autocast"] = real

    def autocast(device_type=None, *args, **kwargs):
        if device_type is not None and _is_cuda(device_type):
            return _cpu_autocast(*args, **kwargs)
        return real(device_type, *args, **kwargs)

    torch.autocast = autocast
    torch.amp.autocast = autocast
    torch.inference_mode = _NoGrad


def _patch_compile(torch) -> None:
    def compile(model=None, *args, **kwargs):  # noqa: A001 - stands in for torch.compile
        used("compile_identity")
        return model if model is not None else (lambda fn: fn)

    torch.compile = compile


# -----------------------------------------------------------------------------
# torch.distributed

def _patch_distributed(torch) -> None:
    import torch.distributed as dist

    if not dist.is_available():
        return
    init = dist.init_process_group

    @functools.wraps(init)
    def init_process_group(backend=None, *args, **kwargs):
        if backend is None or "nccl" in str(backend):
            used("nccl_to_gloo")
            backend = "gloo"
        kwargs.pop("device_id", None)
        world = kwargs.get("world_size", int(os.environ.get("WORLD_SIZE", "1") or 1))
        if world in (None, -1, 1) and kwargs.get("store") is None and "init_method" not in kwargs and not args:
            used("single_process_group")
            kwargs.update(store=dist.HashStore(), rank=0, world_size=1)
        return init(backend, *args, **kwargs)

    dist.init_process_group = init_process_group
    new_group = dist.new_group

    @functools.wraps(new_group)
    def new_group_gloo(*args, **kwargs):
        if "nccl" in str(kwargs.get("backend", "")):
            kwargs["backend"] = "gloo"
        kwargs.pop("device_id", None)
        return new_group(*args, **kwargs)

    dist.new_group = new_group_gloo
    from torch.nn.parallel import DistributedDataParallel as DDP

    ddp_init = DDP.__init__

    def ddp_cpu_init(self, module, *args, **kwargs):
        if kwargs.get("device_ids") is not None or kwargs.get("output_device") is not None:
            used("ddp_cpu")
        kwargs["device_ids"], kwargs["output_device"] = None, None
        return ddp_init(self, module, *args, **kwargs)

    DDP.__init__ = ddp_cpu_init


# -----------------------------------------------------------------------------
# nvidia-smi

def _fake_nvidia_smi() -> None:
    """A stand-in `nvidia-smi` first on PATH (an audit hook reports when the script runs it)."""
    folder = tempfile.mkdtemp(prefix="pgolf-cpu-compat-")
    exe = os.path.join(folder, "nvidia-smi")
    with open(exe, "w", encoding="utf-8") as fh:
        fh.write("#!/bin/sh\necho 'nvidia-smi: no GPU (pgolf probe CPU compatibility layer)'\nexit 0\n")
    os.chmod(exe, 0o755)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")

    def audit(event: str, args) -> None:
        if event == "subprocess.Popen" and args:
            argv = args[1] if len(args) > 1 else None
            first = argv[0] if isinstance(argv, (list, tuple)) and argv else argv
            if isinstance(first, (str, bytes)) and os.path.basename(os.fsdecode(first).split()[0]) == "nvidia-smi":
                used("nvidia_smi")
        elif event == "os.system" and args and "nvidia-smi" in os.fsdecode(args[0]):
            used("nvidia_smi")

    sys.addaudithook(audit)


# -----------------------------------------------------------------------------

def install(notify=None) -> None:
    """Install every stand-in in this process; `notify(name)` is called once per stand-in the script reaches."""
    import torch

    set_notify(notify)
    try:  # torch._dynamo reads some of the functions replaced below when it is first imported (optimizers do)
        import torch._dynamo  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
    _patch_devices(torch)
    _patch_cuda(torch)
    _patch_autocast(torch)
    _patch_compile(torch)
    _patch_distributed(torch)
    _fake_nvidia_smi()
    if not any(isinstance(f, StandinFinder) for f in sys.meta_path):
        sys.meta_path.append(StandinFinder())
