// One run's JSON report and its bookkeeping. The file is rewritten (through a temporary and a
// rename) after every phase, so a run killed by a time limit keeps what it had; a phase's failure
// is recorded as "<phase>_error" and the next phase runs.
#pragma once
#include <string>

#include "common.h"
#include "options.h"

namespace gyre_bench {

struct Bench {
  explicit Bench(const Options& options) : o(options), path(options.json_path) {}
  const Options& o;
  const Clock::time_point start = Clock::now();
  Json root = Json::obj();
  Json phases = Json::obj();
  int failures = 0;

  bool has(const char* phase) const { return has_phase(o, phase); }
  bool over_time() const { return o.time_limit_s > 0 && seconds_since(start) > o.time_limit_s; }
  // Sets "seconds" and "phases", then writes the file (when --json was given).
  void save();
  // Prints and records the phase's error (the rows it measured stay) and counts a failure.
  void fail(const char* phase, const std::string& what);
  // Writes the file as it is.
  void write() const;

 private:
  std::string path;
};

}  // namespace gyre_bench
