// glibc 2.28 has no `__libc_single_threaded` (2.32). GCC 12's libstdc++ headers ask it whether reference counts
// may skip atomics; answering "never single-threaded" keeps them atomic, as GCC 8's headers always did.
#pragma once
static constexpr char __libc_single_threaded = 0;
