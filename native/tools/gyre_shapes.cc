// gyre_shapes: prints the shape table (gyre/shapes.h) as JSON, for native/scripts/shapes.json,
// which the Python peer reads (it runs without Node or the addon).
//   gyre_shapes > native/scripts/shapes.json
#include <cstdio>

#include "gyre/shapes.h"

int main() {
  std::fputs(gyre::shapes_json().c_str(), stdout);
  return 0;
}
