#include "report.h"

#include <cstdio>

namespace gyre_bench {

void Bench::write() const {
  if (path.empty()) return;
  std::string text;
  root.dump(text);
  text += "\n";
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (!f) { std::fprintf(stderr, "gyre_bench: cannot write %s\n", tmp.c_str()); return; }
  std::fputs(text.c_str(), f);
  std::fclose(f);
  std::rename(tmp.c_str(), path.c_str());
}

void Bench::save() {
  root.set("seconds", seconds_since(start));
  root.set("phases", phases);
  write();
}

void Bench::fail(const char* phase, const std::string& what) {
  std::fprintf(stderr, "gyre_bench: %s: %s\n", phase, what.c_str());
  Json e = Json::obj();
  e.set("error", what);
  phases.set(std::string(phase) + "_error", e);  // rows measured before the error stay
  ++failures;
  save();
}

}  // namespace gyre_bench
