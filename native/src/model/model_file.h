// Opening a file of a model folder, which is untrusted input (src/model/model_file.ts keeps the
// same rules): the name is a plain file name; the file, after symlinks, lies inside the folder;
// it is a regular file (a FIFO or device would block or never end), opened non-blocking and
// checked on the descriptor; its size is bounded before it is read. Messages name the file and
// never echo its bytes. Also the bounds every count read from a folder is held to.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gyre/error.h"

namespace gyre {

// JSON files of a model folder (config.json, the shard index); a safetensors header.
constexpr size_t kMaxJsonBytes = size_t(16) << 20;
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;
// weight_map entries and distinct shard files of an index; tensors of one file; dimensions.
constexpr size_t kMaxWeightMapEntries = 65536;
constexpr size_t kMaxShards = 4096;
constexpr size_t kMaxTensorsPerFile = 65536;
constexpr size_t kMaxDims = 8;

inline bool is_plain_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find_first_of(std::string("/\\\0", 3)) == std::string::npos;
}

// Opens dir/name (O_RDONLY | O_NONBLOCK) after the checks above; returns the fd and its size.
inline int open_model_file(const std::string& dir, const std::string& name, size_t* size) {
  const std::string path = dir + "/" + name;
  if (!is_plain_name(name)) throw Error(path + ": '" + name + "' is not a plain file name inside the model folder");
  char real[PATH_MAX], real_dir[PATH_MAX];
  if (!::realpath(path.c_str(), real)) throw Error(path + ": cannot open: " + std::strerror(errno));
  if (!::realpath(dir.c_str(), real_dir)) throw Error(dir + ": cannot open: " + std::strerror(errno));
  const std::string r(real), d(real_dir);
  if (r.compare(0, d.size() + 1, d == "/" ? d : d + "/") != 0)
    throw Error(path + ": a symlink that leads outside the model folder; copy the file in instead (cp -L)");
  int fd = ::open(real, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  *size = static_cast<size_t>(st.st_size);
  return fd;
}

// The whole of dir/name, refused above max_bytes.
inline std::string read_model_file(const std::string& dir, const std::string& name, size_t max_bytes = kMaxJsonBytes) {
  size_t size = 0;
  int fd = open_model_file(dir, name, &size);
  if (size > max_bytes) {
    ::close(fd);
    throw Error(dir + "/" + name + ": " + std::to_string(size) + " bytes, over the limit of " +
                std::to_string(max_bytes) + " for this file");
  }
  std::string text(size, '\0');
  size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, &text[got], size - got, static_cast<off_t>(got));
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  text.resize(got);
  return text;
}

// a * b, or false when it leaves [0, 2^62] (every size and offset stays well inside int64).
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r) || r > (int64_t(1) << 62)) return false;
  *out = r;
  return true;
}

}  // namespace gyre
