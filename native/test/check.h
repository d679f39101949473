// A minimal test harness: TEST(name) { CHECK(...); }, run by main() in each *_test.cc via
// GYRE_TEST_MAIN. Prints one line per test and a closing "N passed, M failed, K skipped" line.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace gyre_test {

struct Case { const char* name; std::function<void()> fn; };
inline std::vector<Case>& cases() { static std::vector<Case> c; return c; }
struct Register { Register(const char* n, std::function<void()> f) { cases().push_back({n, std::move(f)}); } };
struct Failure { std::string message; };

// A test that cannot run here throws Skip (SKIP(reason)): it is counted and printed as skipped.
struct Skip {
  std::string reason;
};

// The slow set (GYRE_TEST_SLOW=1, as .ci/run sets): tests keep their large shapes for it and run
// a smaller selection of the same cases in every `npm test`.
inline bool slow() {
  const char* v = std::getenv("GYRE_TEST_SLOW");
  return v && std::string(v) == "1";
}

// Exit status: 0 when something passed and nothing failed; 77 (ctest's SKIP_RETURN_CODE) when
// everything selected was skipped; 1 otherwise.
constexpr int kSkipExit = 77;

inline int run_all(int argc, char** argv) {
  int passed = 0, failed = 0, skipped = 0;
  for (auto& c : cases()) {
    if (argc > 1 && std::string(c.name).find(argv[1]) == std::string::npos) continue;
    // CPU seconds beside wall seconds: on a shared machine the CPU time is the fairer cost.
    const auto wall0 = std::chrono::steady_clock::now();
    const std::clock_t cpu0 = std::clock();
    try {
      c.fn();
      ++passed;
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
      std::printf("ok   %s (%.2f s, %.2f s CPU)\n", c.name, wall, double(std::clock() - cpu0) / CLOCKS_PER_SEC);
    } catch (const Skip& s) {
      ++skipped;
      std::printf("skip %s: %s\n", c.name, s.reason.c_str());
    } catch (const Failure& f) {
      ++failed;
      std::printf("FAIL %s: %s\n", c.name, f.message.c_str());
    } catch (const std::exception& e) {
      ++failed;
      std::printf("FAIL %s: exception: %s\n", c.name, e.what());
    }
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  if (failed) return 1;
  return passed > 0 ? 0 : (skipped > 0 ? kSkipExit : 1);
}

}  // namespace gyre_test

#define GYRE_CAT2(a, b) a##b
#define GYRE_CAT(a, b) GYRE_CAT2(a, b)
#define TEST(name)                                                                  \
  static void name();                                                               \
  static gyre_test::Register GYRE_CAT(reg_, name)(#name, name);                     \
  static void name()
#define SKIP(reason) throw gyre_test::Skip{reason}
#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::ostringstream os_;                                                       \
      os_ << __FILE__ << ":" << __LINE__ << ": CHECK(" #cond ") failed";            \
      throw gyre_test::Failure{os_.str()};                                          \
    }                                                                               \
  } while (0)
#define CHECK_MSG(cond, msg)                                                        \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::ostringstream os_;                                                       \
      os_ << __FILE__ << ":" << __LINE__ << ": " << msg;                            \
      throw gyre_test::Failure{os_.str()};                                          \
    }                                                                               \
  } while (0)
#define CHECK_EQ(a, b) CHECK_MSG((a) == (b), #a " == " #b ": " << (a) << " vs " << (b))
#define CHECK_THROWS_WITH(expr, substr)                                             \
  do {                                                                              \
    bool thrown_ = false;                                                           \
    try { expr; } catch (const std::exception& e_) {                                \
      thrown_ = true;                                                               \
      CHECK_MSG(std::string(e_.what()).find(substr) != std::string::npos,           \
                "message '" << e_.what() << "' lacks '" << substr << "'");          \
    }                                                                               \
    CHECK_MSG(thrown_, #expr " did not throw");                                     \
  } while (0)
#define GYRE_TEST_MAIN \
  int main(int argc, char** argv) { return gyre_test::run_all(argc, argv); }
// The main of a test binary with nothing to run in this build: ctest shows it as skipped.
#define GYRE_SKIP_MAIN(reason)                                                      \
  int main() {                                                                      \
    std::printf("skipped: %s\n", reason);                                           \
    return gyre_test::kSkipExit;                                                    \
  }
