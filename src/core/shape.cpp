// core/shape: shape_str (see the header).
#include "sliderquant/core/shape.h"

#include <sstream>

namespace sq {

std::string shape_str(c10::IntArrayRef sizes) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < sizes.size(); ++i) os << (i ? ", " : "") << sizes[i];
  os << "]";
  return os.str();
}

}  // namespace sq
