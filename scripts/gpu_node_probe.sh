#!/usr/bin/env bash
# What a GPU node offers e3pipe, read without e3pipe itself (which needs libtorch 2.13; see README "Not done yet"):
# the GPU listing e3pipe parses, the driver file it checks, the node PyTorch and where its cuBLAS lies (the path
# e3pipe's CUDA detection looks at), and whether NVML loads and has the total-energy counter the energy meter reads.
# Run on the node: bash scripts/gpu_node_probe.sh (about 10 s; it runs 50 fp16 matmuls to read the counter).
set -x
nvidia-smi --query-gpu=name,uuid,memory.total,compute_cap --format=csv,noheader
CUDA_DEVICE_ORDER=PCI_BUS_ID nvidia-smi -L
ls -la /proc/driver/nvidia/version && cat /proc/driver/nvidia/version
python3 - <<'PY'
import torch, os, glob, ctypes, time
lib = os.path.join(os.path.dirname(torch.__file__), "lib")
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
print("lib", lib)
print("version.py", open(os.path.join(os.path.dirname(torch.__file__), "version.py")).read())
print("libtorch_cuda", os.path.exists(os.path.join(lib, "libtorch_cuda.so")))
print("e3pipe cublas probe (lib/../../nvidia/cu13/lib):", glob.glob(os.path.join(lib, "../../nvidia/cu13/lib/libcublas.so*")))
print("other cublas:", glob.glob(os.path.join(lib, "../../nvidia/*/lib/libcublas.so*"))[:5], glob.glob("/usr/local/cuda*/lib64/libcublas.so*")[:3])
try:
    nv = ctypes.CDLL("libnvidia-ml.so.1"); print("libnvidia-ml.so.1 loads")
except OSError as e:
    print("libnvidia-ml.so.1:", e)
import pynvml
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
uuid = pynvml.nvmlDeviceGetUUID(h); print("uuid", uuid)
h2 = pynvml.nvmlDeviceGetHandleByUUID(uuid); print("by uuid ok")
try:
    e0 = pynvml.nvmlDeviceGetTotalEnergyConsumption(h2); print("total energy mJ", e0)
except pynvml.NVMLError as e:
    print("total energy:", e)
print("power mW", pynvml.nvmlDeviceGetPowerUsage(h2))
x = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
torch.cuda.synchronize(); t = time.time()
for _ in range(50): y = x @ x
torch.cuda.synchronize(); dt = time.time() - t
try:
    e1 = pynvml.nvmlDeviceGetTotalEnergyConsumption(h2); print("energy over 50 fp16 8192^3 matmuls: %.1f J in %.3f s" % ((e1 - e0) / 1e3, dt))
except Exception as e:
    print(e)
print("fp16 TFLOP/s %.0f" % (50 * 2 * 8192**3 / dt / 1e12))
print("max_memory_allocated", torch.cuda.max_memory_allocated())
PY
