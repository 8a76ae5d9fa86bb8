// Peak memory of libtorch's CUDA caching allocator, which tch does not expose (torch.cuda.max_memory_allocated in
// Python). Built by build.rs into a small shared library that e3pipe loads with dlopen only when CUDA is usable, so
// CPU-only installs never need libc10_cuda's dependencies.
// c10's device-generic allocator interface: no CUDA headers needed (the wheel lacks some of them), and the CUDA
// caching allocator registers itself under it when libtorch_cuda is loaded.
#include <c10/core/CachingDeviceAllocator.h>

#include <cstdint>

extern "C" {

// Resets the peak counters of `device`; 0 on success, -1 on failure.
int e3pipe_cuda_reset_peak(int device) {
  try {
    c10::getDeviceAllocator(c10::DeviceType::CUDA)->resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Peak bytes allocated on `device` since the last reset; -1 on failure.
int64_t e3pipe_cuda_peak_bytes(int device) {
  try {
    auto stats = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  } catch (...) {
    return -1;
  }
}

// Peak bytes reserved (allocated plus cached free blocks) on `device` since the last reset; -1 on failure.
int64_t e3pipe_cuda_reserved_peak_bytes(int device) {
  try {
    auto stats = c10::getDeviceAllocator(c10::DeviceType::CUDA)->getDeviceStats(static_cast<c10::DeviceIndex>(device));
    return stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
  } catch (...) {
    return -1;
  }
}
}
