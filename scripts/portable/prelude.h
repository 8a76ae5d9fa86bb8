// Force-included (`-include`) into the C++ glue of the worker's bundle build (scripts/portable/cxx.sh): libtorch's
// wheel needs only the libstdc++ of GCC 8 (GLIBCXX_3.4.25); these keep the glue from needing a newer one.
// 1. Instantiate libstdc++'s templates here instead of calling the copies in libstdc++.so: GCC 12's headers
//    declare `basic_ostringstream()` and `basic_string::operator basic_string_view` as explicit instantiations
//    that exist only in GLIBCXX_3.4.26.
#include <bits/c++config.h>
#undef _GLIBCXX_EXTERN_TEMPLATE
#define _GLIBCXX_EXTERN_TEMPLATE 0
// 2. `std::__throw_bad_array_new_length` (GLIBCXX_3.4.29, called by GCC 11+'s `std::allocator`): a weak local
//    definition, so the executable binds to its own copy.
#include <new>
#include <bits/functexcept.h>
namespace std {
__attribute__((weak, noreturn)) void __throw_bad_array_new_length() { throw bad_array_new_length(); }
}
