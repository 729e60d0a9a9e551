// core/shape: the one way errors and logs spell a tensor shape: "[4, 64]" ("[]" for a scalar).
#pragma once
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <string>

namespace sq {

std::string shape_str(c10::IntArrayRef sizes);

}  // namespace sq
